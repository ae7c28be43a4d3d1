//! Loading: YAML streams, JSON, lists, directories, defaults, errors with
//! file and line, round trips.

use k8snet_model::{
    Error, IntOrString, Kind, Manifests, Object, ObjectRef, PolicyType, Protocol, ServiceType,
    SessionAffinity, Skipped, TrafficPolicy,
};

fn load(text: &str) -> Manifests {
    let mut m = Manifests::new();
    m.load_str("t.yaml", text);
    m
}

fn only(m: &Manifests, kind: Kind) -> Vec<&Object> {
    m.objects()
        .iter()
        .map(|l| &l.object)
        .filter(|o| o.kind() == kind)
        .collect()
}

#[test]
fn defaults_are_applied_on_load() {
    let m = load(
        "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  clusterIP: 198.19.0.5
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: a}
spec:
  podSelector: {}
  egress: [{ports: [{port: 53}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: q, namespace: a}
spec:
  podSelector: {}
  egress: []
---
apiVersion: v1
kind: Namespace
metadata: {name: a}
",
    );
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let Object::Service(svc) = only(&m, Kind::Service)[0] else {
        unreachable!()
    };
    assert_eq!(svc.metadata.namespace.as_deref(), Some("default"));
    let port = &svc.spec.ports[0];
    assert_eq!(port.protocol, Some(Protocol::Tcp));
    assert_eq!(port.target_port, Some(IntOrString::Int(80)));
    assert_eq!(svc.spec.service_type, Some(ServiceType::NodePort));
    assert_eq!(svc.spec.session_affinity, Some(SessionAffinity::ClientIP));
    assert_eq!(svc.affinity_timeout(), Some(10_800));
    assert_eq!(
        svc.spec.external_traffic_policy,
        Some(TrafficPolicy::Cluster)
    );
    assert_eq!(svc.spec.cluster_ips, vec!["198.19.0.5".to_string()]);

    let policies = only(&m, Kind::NetworkPolicy);
    let Object::NetworkPolicy(p) = policies[0] else {
        unreachable!()
    };
    assert_eq!(
        p.spec.policy_types,
        vec![PolicyType::Ingress, PolicyType::Egress]
    );
    let Object::NetworkPolicy(q) = policies[1] else {
        unreachable!()
    };
    // `egress: []` without policyTypes does not isolate egress (defaults.go
    // tests len(egress) != 0).
    assert_eq!(q.spec.policy_types, vec![PolicyType::Ingress]);

    let Object::Namespace(ns) = only(&m, Kind::Namespace)[0] else {
        unreachable!()
    };
    assert_eq!(ns.metadata.labels["kubernetes.io/metadata.name"], "a");
}

#[test]
fn lists_from_kubectl_and_json_streams() {
    let yaml = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: a}
- apiVersion: v1
  kind: Namespace
  metadata: {name: b}
";
    let m = load(yaml);
    assert_eq!(m.objects().len(), 2);
    assert_eq!(m.objects()[1].at.line, 7);

    let json = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}
{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}"#;
    let m = load(json);
    assert_eq!(m.objects().len(), 2);
    assert_eq!(m.objects()[1].at.line, 2);
}

#[test]
fn unknown_kinds_are_skipped_with_a_warning_that_names_them() {
    let m = load("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n");
    assert!(m.errors().is_empty());
    assert_eq!(m.warnings().len(), 1);
    let w = m.warnings()[0].to_string();
    assert!(
        w.contains("Deployment") && w.starts_with("t.yaml:1:"),
        "{w}"
    );
}

#[test]
fn old_api_versions_and_opaque_secrets_are_skipped() {
    let m = load(
        "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\n",
    );
    assert!(m.objects().is_empty());
    assert_eq!(m.warnings().len(), 2, "{:?}", m.warnings());
}

#[test]
fn decode_errors_carry_file_line_object_and_path() {
    let m = load(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports:\n  - {port: 80}\n  - {port: 81, protocol: ICMP}\n",
    );
    assert_eq!(m.objects().len(), 1);
    let e = m.errors()[0].to_string();
    assert!(
        e.starts_with("t.yaml:5: Service shop/web: spec.ports[1].protocol: unknown variant `ICMP`"),
        "{e}"
    );
    assert!(matches!(m.errors()[0], Error::Decode { .. }));
}

#[test]
fn wrong_types_are_errors_not_panics() {
    for doc in [
        "apiVersion: v1\nkind: Pod\nmetadata: []\n",
        "apiVersion: v1\nkind: Pod\nspec: {containers: 5}\n",
        "apiVersion: v1\nkind: Service\nspec: {ports: [{port: abc}]}\n",
        "apiVersion: v1\nkind: Service\nspec: {ports: [{port: 99999999999}]}\n",
        "- a\n- b\n",
        "42\n",
        "kind: 7\n",
        "apiVersion: v1\n",
    ] {
        let m = load(doc);
        assert!(m.objects().is_empty(), "{doc}");
        assert!(!m.errors().is_empty(), "{doc}: no error");
    }
}

#[test]
fn a_syntax_error_in_one_document_keeps_the_others() {
    let m = load(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkey: [1,\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
    );
    assert_eq!(m.objects().len(), 2);
    assert_eq!(m.errors().len(), 1);
    assert_eq!(m.errors()[0].location().unwrap().line, 5);
}

#[test]
fn duplicates_are_reported() {
    let m = load(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
    );
    assert_eq!(m.objects().len(), 1);
    assert_eq!(m.errors().len(), 1);
    assert!(
        m.errors()[0]
            .to_string()
            .contains("t.yaml:5: Namespace a: metadata.name")
    );
}

#[test]
fn directories_recursively_in_name_order() {
    let dir = std::env::temp_dir().join(format!("k8snet-load-{}", std::process::id()));
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
    )
    .unwrap();
    std::fs::write(
        sub.join("a.json"),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
    let mut m = Manifests::new();
    m.load_path(&dir);
    let names: Vec<&str> = m
        .objects()
        .iter()
        .map(|l| l.object.meta().name.as_str())
        .collect();
    assert_eq!(names, vec!["b", "a"], "b.yaml sorts before sub/a.json");
    m.load_path(dir.join("missing.yaml"));
    assert!(matches!(m.errors().last(), Some(Error::Io { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn examples_round_trip_through_yaml_and_json() {
    let mut m = Manifests::new();
    m.load_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/manifests/good"
    ));
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    assert!(m.objects().len() >= 5);
    let yaml = m.to_yaml().unwrap();
    let mut again = Manifests::new();
    again.load_str("out.yaml", &yaml);
    assert!(again.errors().is_empty(), "{:?}\n{yaml}", again.errors());
    let a: Vec<&Object> = m.objects().iter().map(|l| &l.object).collect();
    let b: Vec<&Object> = again.objects().iter().map(|l| &l.object).collect();
    assert_eq!(a, b);
    let mut json = Manifests::new();
    json.load_str("out.json", &m.to_json());
    let c: Vec<&Object> = json.objects().iter().map(|l| &l.object).collect();
    assert_eq!(a, c);
}

#[test]
fn the_apiservers_quieter_service_and_pod_defaults() {
    let m = load(
        "apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  clusterIP: 198.19.0.6
  externalIPs: [198.19.200.10]
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 30}}
  ports: [{name: a, port: 80, targetPort: 0}, {name: b, port: 81, targetPort: ''}]
---
apiVersion: v1
kind: Pod
metadata: {name: host}
spec:
  hostNetwork: true
  containers: [{name: c, ports: [{containerPort: 9100}]}]
",
    );
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let Object::Service(svc) = only(&m, Kind::Service)[0] else {
        unreachable!()
    };
    let targets: Vec<_> = svc
        .spec
        .ports
        .iter()
        .map(|p| p.target_port.clone())
        .collect();
    assert_eq!(
        targets,
        vec![Some(IntOrString::Int(80)), Some(IntOrString::Int(81))]
    );
    assert_eq!(
        svc.spec.session_affinity_config, None,
        "dropped with affinity None"
    );
    assert_eq!(
        svc.spec.external_traffic_policy,
        Some(TrafficPolicy::Cluster)
    );
    let Object::Pod(pod) = only(&m, Kind::Pod)[0] else {
        unreachable!()
    };
    assert_eq!(pod.spec.containers[0].ports[0].host_port, Some(9100));
}

#[test]
fn large_streams_load_in_parallel_with_sequential_results() {
    // Enough documents to take the parallel paths (YAML parse and decode).
    let mut yaml = String::new();
    for i in 0..4_000 {
        let name = match i {
            1_500 => "Bad_Name".to_string(),
            3_999 => "ns-7".to_string(), // a duplicate, across chunks
            _ => format!("ns-{i}"),
        };
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{idx: 'n{i}', pad: '{}'}}\n",
            "x".repeat(60)
        ));
    }
    assert!(yaml.len() > 512 * 1024);
    let m = load(&yaml);
    assert_eq!(m.objects().len(), 3_998);
    assert_eq!(m.objects()[1].at.line, 8);
    assert_eq!(m.objects()[3_997].object.meta().name, "ns-3998");
    assert_eq!(m.objects()[3_997].at.line, 3_998 * 6 + 2);
    let errors: Vec<String> = m.errors().iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "t.yaml:{}: Namespace Bad_Name: metadata.name",
            1_500 * 6 + 2
        )),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(&format!(
            "t.yaml:{}: Namespace ns-7: metadata.name",
            3_999 * 6 + 2
        )),
        "{}",
        errors[1]
    );

    // The same through the JSON fast path.
    let mut again = Manifests::new();
    again.load_str("t.json", &m.to_json());
    assert_eq!(again.objects().len(), 3_998);
}

#[test]
fn a_broken_json_list_item_is_judged_with_the_whole_text() {
    // `tru` is not JSON, so the text is not JSON: it is read as YAML (flow
    // style), where `tru` is a string, as before list items were split
    // without validating them. Both items must come through that reading.
    let m = load(
        "{\"kind\":\"List\",\"items\":[\n{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a\"}},\n{\"kind\": tru}]}",
    );
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    assert_eq!(only(&m, Kind::Namespace).len(), 1);
    assert_eq!(m.warnings().len(), 1, "{:?}", m.warnings());
    assert!(
        m.warnings()[0].to_string().contains("skipping tru"),
        "{}",
        m.warnings()[0]
    );
}

/// A skipped document of a kind this crate reads names its object, so
/// that a server holding that object can keep it; one of an unknown kind
/// or of another API group names none.
#[test]
fn skipped_documents_name_their_object_when_the_kind_is_read() {
    let m = load(
        "apiVersion: v1
kind: Secret
metadata: {name: c, namespace: shop}
type: Opaque
---
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: i, namespace: shop}
---
apiVersion: extensions/v1beta1
kind: NetworkPolicy
metadata: {name: p}
---
apiVersion: example.com/v1
kind: Service
metadata: {name: s, namespace: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: m, namespace: shop}
",
    );
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let named = |kind, ns: &str, name: &str| ObjectRef {
        kind,
        namespace: Some(ns.into()),
        name: name.into(),
    };
    let skipped: Vec<_> = m.warnings().iter().map(|w| w.skipped.clone()).collect();
    assert!(
        matches!(&skipped[0], Some(Skipped::SecretType { object, secret_type, .. })
            if *object == named(Kind::Secret, "shop", "c") && secret_type == "Opaque"),
        "{skipped:?}"
    );
    assert!(
        matches!(&skipped[1], Some(Skipped::ApiVersion { object, api_version, .. })
            if *object == named(Kind::Ingress, "shop", "i") && api_version == "networking.k8s.io/v1beta1"),
        "{skipped:?}"
    );
    assert_eq!(
        skipped[2].as_ref().and_then(Skipped::object),
        Some(&named(Kind::NetworkPolicy, "default", "p"))
    );
    assert_eq!(skipped[3], Some(Skipped::Kind));
    assert_eq!(skipped[4], Some(Skipped::Kind));
    assert_eq!(skipped.len(), 5);
}
