//! Loopback and link-local endpoint addresses: refused as the apiserver
//! refuses them by default, kept with a warning under
//! `LocalEndpoints::Warn` (local serving), and still refused when the
//! object has any other error.

use k8snet_model::{
    Cluster, Error, Kind, LoadOptions, LocalEndpoints, Location, Manifests, NsName, Object,
};

fn strict(text: &str) -> Manifests {
    let mut m = Manifests::new();
    m.load_str("t.yaml", text);
    m
}

fn lenient(text: &str) -> Manifests {
    let mut m = Manifests::with_options(LoadOptions::new().local_endpoints(LocalEndpoints::Warn));
    m.load_str("t.yaml", text);
    m
}

fn texts<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// An EndpointSlice of Service `shop/web` named `name`, starting on line 2
/// of its document.
fn slice(name: &str, address_type: &str, endpoints: &str, ports: &str) -> String {
    format!(
        "
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}
addressType: {address_type}
endpoints: {endpoints}
ports: {ports}
"
    )
}

const HTTP: &str = "[{name: http, port: 8080}]";

#[test]
fn default_options_are_apiserver_exact() {
    assert_eq!(Manifests::new().options(), LoadOptions::new());
    assert_eq!(
        LoadOptions::default().local_endpoints_mode(),
        LocalEndpoints::Refuse
    );
    let m = strict(&slice(
        "web-local",
        "IPv4",
        "[{addresses: [127.0.0.1]}, {addresses: [169.254.3.4]}]",
        HTTP,
    ));
    assert!(m.objects().is_empty());
    assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    assert_eq!(
        texts(m.errors()),
        [
            "t.yaml:2: EndpointSlice shop/web-local: endpoints[0].addresses[0]: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "t.yaml:2: EndpointSlice shop/web-local: endpoints[1].addresses[0]: \"169.254.3.4\": may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ]
    );
}

#[test]
fn warn_keeps_loopback_and_link_local_endpoints_with_one_warning_per_address() {
    let text = [
        slice(
            "v4",
            "IPv4",
            "[{addresses: [127.0.0.1]}, {addresses: [198.18.0.9]}, {addresses: [127.1.2.3, 169.254.3.4]}]",
            HTTP,
        ),
        slice("v6", "IPv6", "[{addresses: ['::1']}, {addresses: ['fe80::1']}]", HTTP),
    ]
    .join("---");
    let m = lenient(&text);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    assert_eq!(
        texts(m.warnings()),
        [
            "t.yaml:2: EndpointSlice shop/v4: endpoints[0].addresses[0]: 127.0.0.1 is a loopback address (accepted for local serving)",
            "t.yaml:2: EndpointSlice shop/v4: endpoints[2].addresses[0]: 127.1.2.3 is a loopback address (accepted for local serving)",
            "t.yaml:2: EndpointSlice shop/v4: endpoints[2].addresses[1]: 169.254.3.4 is a link-local address (accepted for local serving)",
            "t.yaml:9: EndpointSlice shop/v6: endpoints[0].addresses[0]: ::1 is a loopback address (accepted for local serving)",
            "t.yaml:9: EndpointSlice shop/v6: endpoints[1].addresses[0]: fe80::1 is a link-local address (accepted for local serving)",
        ]
    );
    // The warnings carry their location as data too.
    assert_eq!(m.warnings()[3].at, Location::new("t.yaml", 9));

    // The objects are kept as written, and reach the snapshot.
    let cluster = Cluster::from_manifests(&m);
    let v4 = cluster
        .endpoint_slice(&NsName::new("shop", "v4"))
        .expect("the loopback slice is kept");
    let addresses: Vec<&str> = v4
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().map(String::as_str))
        .collect();
    assert_eq!(
        addresses,
        ["127.0.0.1", "198.18.0.9", "127.1.2.3", "169.254.3.4"]
    );
    let slices: Vec<&str> = cluster
        .slices_for_service(&NsName::new("shop", "web"))
        .map(|s| s.metadata.name.as_str())
        .collect();
    assert_eq!(slices, ["v4", "v6"]);
}

#[test]
fn warn_still_refuses_an_object_with_any_other_error() {
    let text = [
        // A loopback address and a bad port.
        slice(
            "bad-port",
            "IPv4",
            "[{addresses: [127.0.0.1]}]",
            "[{name: http, port: 99999}]",
        ),
        // A loopback address of the wrong family for the slice.
        slice("bad-family", "IPv4", "[{addresses: ['::1']}]", HTTP),
        // A loopback address and a bad hostname.
        slice(
            "bad-hostname",
            "IPv4",
            "[{addresses: [127.0.0.1], hostname: Not_A_Label}]",
            HTTP,
        ),
    ]
    .join("---");
    let m = lenient(&text);
    assert!(m.objects().is_empty(), "{:?}", m.objects());
    // Only the other errors refuse them; a refused object gets no
    // "accepted" warning, since nothing was accepted.
    assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    let errors = texts(m.errors());
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].starts_with("t.yaml:2: EndpointSlice shop/bad-port: ports[0].port: 99999"),
        "{errors:#?}"
    );
    assert!(
        errors[1].starts_with(
            "t.yaml:9: EndpointSlice shop/bad-family: endpoints[0].addresses[0]: \"::1\": must be a valid IPv4 address"
        ),
        "{errors:#?}"
    );
    assert!(
        errors[2].starts_with(
            "t.yaml:16: EndpointSlice shop/bad-hostname: endpoints[0].hostname: \"Not_A_Label\""
        ),
        "{errors:#?}"
    );
    for e in m.errors() {
        let Error::Invalid { object, .. } = e else {
            panic!("not a validation error: {e}");
        };
        assert_eq!(object.kind, Kind::EndpointSlice);
    }
}

#[test]
fn warn_accepts_only_addresses_a_local_backend_can_listen_on() {
    // Unspecified and link-local multicast addresses stay errors.
    let text = [
        slice("zero", "IPv4", "[{addresses: [0.0.0.0]}]", HTTP),
        slice("mcast", "IPv4", "[{addresses: [224.0.0.251]}]", HTTP),
        slice("mcast6", "IPv6", "[{addresses: ['ff02::fb']}]", HTTP),
    ]
    .join("---");
    let m = lenient(&text);
    assert!(m.objects().is_empty());
    assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    let errors = texts(m.errors());
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].contains("may not be unspecified"), "{errors:#?}");
    assert!(
        errors[1].contains("link-local multicast") && errors[2].contains("link-local multicast"),
        "{errors:#?}"
    );
}

#[test]
fn warn_is_only_about_endpoints() {
    // A Service's externalIPs are not endpoints: a loopback one is still
    // refused.
    let m = lenient(
        "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  externalIPs: [127.0.0.1]
  ports: [{port: 80}]
",
    );
    assert!(m.objects().is_empty());
    assert!(m.warnings().is_empty());
    assert_eq!(
        texts(m.errors()),
        [
            "t.yaml:2: Service shop/web: spec.externalIPs[0]: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
        ]
    );
}

#[test]
fn a_refused_duplicate_brings_no_warnings() {
    let one = slice("web-local", "IPv4", "[{addresses: [127.0.0.1]}]", HTTP);
    let two = slice("web-local", "IPv4", "[{addresses: [127.0.0.2]}]", HTTP);
    let m = lenient(&format!("{one}---{two}"));
    assert_eq!(m.objects().len(), 1);
    assert_eq!(
        texts(m.warnings()),
        [
            "t.yaml:2: EndpointSlice shop/web-local: endpoints[0].addresses[0]: 127.0.0.1 is a loopback address (accepted for local serving)"
        ]
    );
    let errors = texts(m.errors());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("t.yaml:9: EndpointSlice shop/web-local: metadata.name"),
        "{errors:#?}"
    );
}

#[test]
fn options_apply_to_every_way_of_loading() {
    let options = LoadOptions::new().local_endpoints(LocalEndpoints::Warn);

    // load_value.
    let mut m = Manifests::with_options(options);
    assert_eq!(m.options().local_endpoints_mode(), LocalEndpoints::Warn);
    m.load_value(
        Location::new("api", 0),
        serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "s", "namespace": "shop"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"]}],
        }),
    );
    assert_eq!(m.objects().len(), 1, "{:?}", m.errors());
    assert_eq!(
        texts(m.warnings()),
        [
            "api:0: EndpointSlice shop/s: endpoints[0].addresses[0]: 127.0.0.1 is a loopback address (accepted for local serving)"
        ]
    );

    // load_path on a file, and the same text as JSON (the fast path).
    let dir = std::env::temp_dir().join(format!("k8snet-model-local-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("local.yaml");
    std::fs::write(
        &file,
        slice("web-local", "IPv4", "[{addresses: [127.0.0.1]}]", HTTP),
    )
    .unwrap();
    let mut from_file = Manifests::with_options(options);
    from_file.load_path(&file);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(from_file.objects().len(), 1, "{:?}", from_file.errors());
    assert_eq!(
        texts(from_file.warnings()),
        [format!(
            "{}:2: EndpointSlice shop/web-local: endpoints[0].addresses[0]: 127.0.0.1 is a loopback address (accepted for local serving)",
            file.display()
        )]
    );
    let json = from_file.to_json();
    let mut from_json = Manifests::with_options(options);
    from_json.load_str("t.json", &json);
    assert_eq!(from_json.objects().len(), 1, "{:?}", from_json.errors());
    assert_eq!(from_json.warnings().len(), 1);
    // And the strict loader refuses the same JSON.
    let mut strict_json = Manifests::new();
    strict_json.load_str("t.json", &json);
    assert!(strict_json.objects().is_empty());
    assert_eq!(strict_json.errors().len(), 1);
}

#[test]
fn warn_reaches_the_parallel_loader() {
    // Enough documents to be split over threads: every chunk must use the
    // options, and the warnings come out in input order.
    let mut yaml = String::new();
    for i in 0..3_000 {
        yaml.push_str("---");
        yaml.push_str(&slice(
            &format!("s-{i}"),
            "IPv4",
            &format!("[{{addresses: [127.0.{}.{}]}}]", i / 256, i % 256),
            HTTP,
        ));
    }
    let m = lenient(&yaml);
    assert!(m.errors().is_empty(), "{:?}", &m.errors()[..1]);
    assert_eq!(m.objects().len(), 3_000);
    assert_eq!(m.warnings().len(), 3_000);
    assert!(
        m.warnings()[2_999]
            .message
            .starts_with("EndpointSlice shop/s-2999: endpoints[0].addresses[0]: 127.0.11.183 is"),
        "{}",
        m.warnings()[2_999]
    );
    let Object::EndpointSlice(last) = &m.objects()[2_999].object else {
        panic!("not a slice");
    };
    assert_eq!(last.endpoints[0].addresses, ["127.0.11.183"]);
    // The strict loader refuses every one of them.
    assert!(strict(&yaml).objects().is_empty());
}
