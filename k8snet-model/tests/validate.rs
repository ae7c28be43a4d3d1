//! Validation: one failing case per rule (exact path, kind, and the
//! offending value in the message) and realistic objects that pass.
//!
//! Objects are built as the loader builds them: JSON → typed object →
//! `apply_defaults` → `validate`. Cases are a valid base object plus a JSON
//! merge patch (objects merge, `null` deletes, arrays replace).

use k8snet_model::FieldErrorKind::{
    Duplicate, Forbidden, Invalid, NotSupported, Required, TooLong, TooMany,
};
use k8snet_model::validate::validate_selector;
use k8snet_model::{FieldError, FieldErrorKind, LabelSelector, Object, apply_defaults, validate};
use serde_json::{Value, json};

fn load(v: Value) -> Object {
    let kind = v["kind"].as_str().expect("kind").to_string();
    macro_rules! decode {
        ($($k:ident),*) => {
            match kind.as_str() {
                $(stringify!($k) => Object::$k(serde_json::from_value(v).expect(stringify!($k))),)*
                other => panic!("unknown kind {other}"),
            }
        };
    }
    let mut obj = decode!(
        Namespace,
        Node,
        Pod,
        Service,
        EndpointSlice,
        Ingress,
        IngressClass,
        Secret,
        NetworkPolicy,
        AdminNetworkPolicy,
        BaselineAdminNetworkPolicy,
        ClusterNetworkPolicy
    );
    apply_defaults(&mut obj);
    obj
}

fn errors(v: Value) -> Vec<FieldError> {
    validate(&load(v))
}

/// RFC 7386 merge patch.
fn merge(base: &Value, patch: &Value) -> Value {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            let mut out = b.clone();
            for (k, pv) in p {
                if pv.is_null() {
                    out.remove(k);
                } else {
                    let merged = merge(b.get(k).unwrap_or(&Value::Null), pv);
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        (_, p) => p.clone(),
    }
}

/// One case: a patch on a base object and the single error it must cause.
type Case = (
    &'static str,
    Value,
    FieldErrorKind,
    &'static str,
    &'static str,
);

/// Runs cases: each must yield exactly one error, with that kind and path,
/// whose message contains `needle` (the offending value).
fn run(base: &Value, cases: Vec<Case>) {
    assert_eq!(
        errors(base.clone()),
        vec![],
        "the base object must be valid"
    );
    let mut failures = Vec::new();
    for (name, patch, kind, path, needle) in cases {
        let errs = errors(merge(base, &patch));
        let ok = errs.len() == 1
            && errs[0].kind == kind
            && errs[0].path == path
            && errs[0].message.contains(needle);
        if !ok {
            failures.push(format!(
                "{name}: want {kind:?} {path} containing {needle:?}, got {errs:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Asserts that `errs` has an error of that kind and path mentioning `needle`.
fn has(errs: &[FieldError], kind: FieldErrorKind, path: &str, needle: &str) {
    assert!(
        errs.iter()
            .any(|e| e.kind == kind && e.path == path && e.message.contains(needle)),
        "want {kind:?} {path} containing {needle:?} in {errs:#?}"
    );
}

// ---------------------------------------------------------------- metadata

#[test]
#[rustfmt::skip]
fn metadata() {
    let pod = json!({"kind": "Pod", "metadata": {"name": "web-0", "namespace": "shop"}});
    run(
        &pod,
        vec![
            ("name required", json!({"metadata": {"name": null}}), Required, "metadata.name", "required"),
            ("name subdomain", json!({"metadata": {"name": "Web_0"}}), Invalid, "metadata.name", "\"Web_0\": a lowercase RFC 1123 subdomain"),
            ("namespace label", json!({"metadata": {"namespace": "Shop"}}), Invalid, "metadata.namespace", "\"Shop\""),
            ("namespace empty", json!({"metadata": {"namespace": ""}}), Required, "metadata.namespace", "required"),
            ("label key", json!({"metadata": {"labels": {"-app": "x"}}}), Invalid, "metadata.labels", "\"-app\""),
            ("label key prefix", json!({"metadata": {"labels": {"Example.com/app": "x"}}}), Invalid, "metadata.labels", "\"Example.com/app\""),
            ("label value", json!({"metadata": {"labels": {"app": "a b"}}}), Invalid, "metadata.labels", "\"a b\""),
            ("annotation key", json!({"metadata": {"annotations": {"a/b/c": "x"}}}), Invalid, "metadata.annotations", "\"a/b/c\""),
            ("annotations size", json!({"metadata": {"annotations": {"big": "x".repeat(256 * 1024)}}}), TooLong, "metadata.annotations", "262147"),
        ],
    );
    // Annotation keys are compared lowercased, so an upper-case prefix passes.
    let ok = merge(
        &pod,
        &json!({"metadata": {"annotations": {"Example.com/Key": "v"}}}),
    );
    assert_eq!(errors(ok), vec![]);
}

#[test]
#[rustfmt::skip]
fn names_per_kind() {
    let ns = json!({"kind": "Namespace", "metadata": {"name": "shop"}});
    run(
        &ns,
        vec![
            ("namespace is a label", json!({"metadata": {"name": "a.b"}}), Invalid, "metadata.name", "\"a.b\": a lowercase RFC 1123 label"),
            ("namespace upper", json!({"metadata": {"name": "Web"}}), Invalid, "metadata.name", "\"Web\": a lowercase RFC 1123 label must"),
        ],
    );
    let svc =
        json!({"kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
    run(
        &svc,
        vec![(
            "service is DNS-1035",
            json!({"metadata": {"name": "1web"}}),
            Invalid,
            "metadata.name",
            "\"1web\": a DNS-1035 label",
        )],
    );
    let node = json!({"kind": "Node", "metadata": {"name": "node-1.example"}});
    run(
        &node,
        vec![(
            "cluster-scoped namespace",
            json!({"metadata": {"namespace": "default"}}),
            Forbidden,
            "metadata.namespace",
            "\"default\"",
        )],
    );
}

#[test]
fn selectors() {
    let sel: LabelSelector = serde_json::from_value(json!({
        "matchLabels": {"app": "web", "bad key": "x", "tier": "-x"},
        "matchExpressions": [
            {"key": "env", "operator": "In"},
            {"key": "zone", "operator": "Exists", "values": ["a"]},
            {"key": "_k", "operator": "NotIn", "values": ["ok", "bad value"]}
        ]
    }))
    .unwrap();
    let errs = validate_selector(&sel, "spec.podSelector");
    has(
        &errs,
        Invalid,
        "spec.podSelector.matchLabels",
        "\"bad key\"",
    );
    has(&errs, Invalid, "spec.podSelector.matchLabels", "\"-x\"");
    has(
        &errs,
        Required,
        "spec.podSelector.matchExpressions[0].values",
        "\"env\"",
    );
    has(
        &errs,
        Forbidden,
        "spec.podSelector.matchExpressions[1].values",
        "[\"a\"]",
    );
    has(
        &errs,
        Invalid,
        "spec.podSelector.matchExpressions[2].key",
        "\"_k\"",
    );
    has(
        &errs,
        Invalid,
        "spec.podSelector.matchExpressions[2].values[1]",
        "\"bad value\"",
    );
    assert_eq!(errs.len(), 6, "{errs:#?}");
    assert_eq!(validate_selector(&LabelSelector::default(), "x"), vec![]);
}

// ---------------------------------------------------------------- Pod

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "nodeName": "node-1",
            "hostname": "web-0", "subdomain": "web",
            "containers": [
                {"name": "app", "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"name": "dns", "containerPort": 53, "protocol": "UDP", "hostPort": 5353}
                ]},
                {"name": "sidecar", "ports": [{"name": "http", "containerPort": 9090}]}
            ],
            "initContainers": [{"name": "init"}]
        },
        "status": {
            "phase": "Running", "hostIP": "198.19.128.1",
            "hostIPs": [{"ip": "198.19.128.1"}, {"ip": "fd00:19:1::1"}],
            "podIP": "198.18.0.5", "podIPs": [{"ip": "198.18.0.5"}, {"ip": "fd00:18::5"}]
        }
    })
}

fn containers(c: Value) -> Value {
    json!({"spec": {"containers": c}})
}

#[test]
#[rustfmt::skip]
fn pod_rules() {
    let c = |ports: Value| containers(json!([{"name": "app", "ports": ports}]));
    run(
        &pod(),
        vec![
            ("container name required", containers(json!([{"ports": []}])), Required, "spec.containers[0].name", "required"),
            ("container name label", containers(json!([{"name": "App"}])), Invalid, "spec.containers[0].name", "\"App\""),
            ("container name unique", containers(json!([{"name": "init"}])), Duplicate, "spec.initContainers[0].name", "\"init\""),
            ("containerPort required", c(json!([{"containerPort": 0}])), Required, "spec.containers[0].ports[0].containerPort", "required"),
            ("containerPort range", c(json!([{"containerPort": 70000}])), Invalid, "spec.containers[0].ports[0].containerPort", "70000 is not in 1..=65535"),
            ("hostPort range", c(json!([{"containerPort": 80, "hostPort": 70000}])), Invalid, "spec.containers[0].ports[0].hostPort", "70000 is not in 1..=65535"),
            ("hostPort negative", c(json!([{"containerPort": 80, "hostPort": -1}])), Invalid, "spec.containers[0].ports[0].hostPort", "-1"),
            ("port name syntax", c(json!([{"name": "HTTP", "containerPort": 80}])), Invalid, "spec.containers[0].ports[0].name", "\"HTTP\""),
            ("port name too long", c(json!([{"name": "a-very-long-port-name", "containerPort": 80}])), Invalid, "spec.containers[0].ports[0].name", "\"a-very-long-port-name\""),
            ("port name unique", c(json!([{"name": "web", "containerPort": 80}, {"name": "web", "containerPort": 81}])), Duplicate, "spec.containers[0].ports[1].name", "\"web\""),
            ("hostPort conflict", containers(json!([{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}, {"name": "b", "ports": [{"containerPort": 81, "hostPort": 8080}]}])), Duplicate, "spec.containers[1].ports[0].hostPort", "8080/TCP"),
            ("hostIP", c(json!([{"containerPort": 80, "hostPort": 80, "hostIP": "1.2.3"}])), Invalid, "spec.containers[0].ports[0].hostIP", "\"1.2.3\""),
            ("hostNetwork hostPort", json!({"spec": {"hostNetwork": true, "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}), Invalid, "spec.containers[0].ports[0].hostPort", "8080"),
            ("hostname", json!({"spec": {"hostname": "web_0"}}), Invalid, "spec.hostname", "\"web_0\""),
            ("subdomain", json!({"spec": {"subdomain": "web.shop"}}), Invalid, "spec.subdomain", "\"web.shop\""),
            ("nodeName", json!({"spec": {"nodeName": "Node_1"}}), Invalid, "spec.nodeName", "\"Node_1\""),
            ("dnsPolicy", json!({"spec": {"dnsPolicy": "ClusterLast"}}), NotSupported, "spec.dnsPolicy", "\"ClusterLast\""),
            ("podIP syntax", json!({"status": {"podIP": "198.18.0.300", "podIPs": null}}), Invalid, "status.podIP", "\"198.18.0.300\""),
            ("podIP leading zero", json!({"status": {"podIP": "198.018.0.5", "podIPs": null}}), Invalid, "status.podIP", "\"198.18.0.5\""),
            ("podIPs syntax", json!({"status": {"podIP": null, "podIPs": [{"ip": "x"}]}}), Invalid, "status.podIPs[0]", "\"x\""),
            ("podIPs one per family", json!({"status": {"podIP": null, "podIPs": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}}), Invalid, "status.podIPs", "10.0.0.2"),
            ("podIPs at most two", json!({"status": {"podIP": null, "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}, {"ip": "fd00::2"}]}}), Invalid, "status.podIPs", "fd00::2"),
            ("podIPs unique", json!({"status": {"podIP": null, "podIPs": [{"ip": "fd00::1"}, {"ip": "fd00::1"}]}}), Duplicate, "status.podIPs[1]", "\"fd00::1\""),
            ("podIP is podIPs[0]", json!({"status": {"podIP": "198.18.0.6"}}), Invalid, "status.podIP", "\"198.18.0.6\""),
            ("hostIP status", json!({"status": {"hostIP": "::ffff:1.2.3.4", "hostIPs": null}}), Invalid, "status.hostIP", "\"::ffff:1.2.3.4\""),
            // validateHostIPs: hostIPs[0] equals hostIP (also when hostIP is unset),
            // each entry is an IP (reported at status.hostIPs[i]), no repeats, one per family.
            ("hostIPs[0] is hostIP", json!({"status": {"hostIPs": [{"ip": "198.19.128.2"}]}}), Invalid, "status.hostIPs[0].ip", "must be equal to `hostIP` (\"198.19.128.1\")"),
            ("hostIPs needs hostIP", json!({"status": {"hostIP": null}}), Invalid, "status.hostIPs[0].ip", "not set"),
            ("hostIPs syntax", json!({"status": {"hostIPs": [{"ip": "198.19.128.1"}, {"ip": "fd00:19:1::g"}]}}), Invalid, "status.hostIPs[1]", "\"fd00:19:1::g\""),
            ("hostIPs strict", json!({"status": {"hostIPs": [{"ip": "198.19.128.1"}, {"ip": "::ffff:1.2.3.4"}]}}), Invalid, "status.hostIPs[1]", "IPv4-mapped"),
            ("hostIPs one per family", json!({"status": {"hostIPs": [{"ip": "198.19.128.1"}, {"ip": "198.19.128.2"}]}}), Invalid, "status.hostIPs", "198.19.128.2"),
            ("hostIPs at most two", json!({"status": {"hostIPs": [{"ip": "198.19.128.1"}, {"ip": "fd00:19:1::1"}, {"ip": "fd00:19:1::2"}]}}), Invalid, "status.hostIPs", "fd00:19:1::2"),
            ("hostIPs unique", json!({"status": {"hostIPs": [{"ip": "198.19.128.1"}, {"ip": "198.19.128.1"}]}}), Duplicate, "status.hostIPs[1]", "\"198.19.128.1\""),
        ],
    );
    // hostNetwork pods whose host ports match their container ports are fine.
    let host = merge(
        &pod(),
        &json!({"spec": {"hostNetwork": true, "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 80}]}]}}),
    );
    assert_eq!(errors(host), vec![]);
}

// ---------------------------------------------------------------- Node

#[test]
#[rustfmt::skip]
fn node_rules() {
    let node = json!({
        "kind": "Node",
        "metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "z1"}},
        "spec": {"podCIDR": "198.18.0.0/24", "podCIDRs": ["198.18.0.0/24", "fd00:18::/64"]},
        "status": {"addresses": [
            {"type": "InternalIP", "address": "198.19.128.1"},
            {"type": "InternalIP", "address": "fd00:19:1::1"},
            {"type": "Hostname", "address": "node-1"}
        ]}
    });
    let addr = |t: &str, a: &str| json!({"status": {"addresses": [{"type": t, "address": a}]}});
    run(
        &node,
        vec![
            ("podCIDRs syntax", json!({"spec": {"podCIDR": null, "podCIDRs": ["198.18.0.0/33"]}}), Invalid, "spec.podCIDRs[0]", "\"198.18.0.0/33\""),
            ("podCIDRs per family", json!({"spec": {"podCIDR": null, "podCIDRs": ["10.0.0.0/24", "10.1.0.0/24"]}}), Invalid, "spec.podCIDRs", "10.1.0.0/24"),
            ("podCIDRs unique", json!({"spec": {"podCIDR": null, "podCIDRs": ["fd00::/64", "fd00::/64"]}}), Duplicate, "spec.podCIDRs[1]", "\"fd00::/64\""),
            ("podCIDR is podCIDRs[0]", json!({"spec": {"podCIDR": "10.9.0.0/24"}}), Invalid, "spec.podCIDR", "\"10.9.0.0/24\""),
            ("podCIDR alone", json!({"spec": {"podCIDR": "10.9.0.0", "podCIDRs": null}}), Invalid, "spec.podCIDR", "\"10.9.0.0\""),
            ("address type", addr("PublicIP", "1.2.3.4"), NotSupported, "status.addresses[0].type", "\"PublicIP\""),
            ("address required", addr("Hostname", ""), Required, "status.addresses[0].address", "required"),
            ("InternalIP is an IP", addr("InternalIP", "node-1"), Invalid, "status.addresses[0].address", "\"node-1\""),
            ("addresses unique", json!({"status": {"addresses": [{"type": "Hostname", "address": "n"}, {"type": "Hostname", "address": "n"}]}}), Duplicate, "status.addresses[1]", "\"n\""),
        ],
    );
    // The apiserver's IsValidCIDR lets host bits through on podCIDRs.
    let host_bits = merge(
        &node,
        &json!({"spec": {"podCIDR": null, "podCIDRs": ["198.18.0.1/24"]}}),
    );
    assert_eq!(errors(host_bits), vec![]);
}

// ---------------------------------------------------------------- Secret

#[test]
#[rustfmt::skip]
fn secret_rules() {
    let tls = json!({
        "kind": "Secret", "metadata": {"name": "web-tls", "namespace": "shop"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "LS0tLS1CRUdJTg==", "tls.key": "LS0tLS1CRUdJTg=="}
    });
    run(
        &tls,
        vec![
            ("tls.key required", json!({"data": {"tls.key": null}}), Required, "data[tls.key]", "\"tls.key\""),
            ("tls.crt required", json!({"data": {"tls.crt": null}}), Required, "data[tls.crt]", "\"tls.crt\""),
            ("data key", json!({"data": {"a/b": "eA=="}}), Invalid, "data[a/b]", "\"a/b\""),
            ("stringData key", json!({"stringData": {"..x": "y"}}), Invalid, "stringData[..x]", "\"..x\""),
            ("base64", json!({"data": {"tls.key": "not base64!"}}), Invalid, "data[tls.key]", "\"tls.key\""),
            ("size", json!({"stringData": {"big": "x".repeat(1024 * 1024)}}), TooLong, "data", "1048596"),
        ],
    );
    // stringData counts for the TLS keys (the apiserver merges it into data).
    let string_data = merge(
        &tls,
        &json!({"data": null, "stringData": {"tls.crt": "-----BEGIN", "tls.key": "-----BEGIN"}}),
    );
    assert_eq!(errors(string_data), vec![]);
}

// ---------------------------------------------------------------- Service

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "https", "port": 443, "targetPort": 8443, "appProtocol": "kubernetes.io/h2c"}
            ]
        }
    })
}

fn ports(p: Value) -> Value {
    json!({"spec": {"ports": p}})
}

#[test]
#[rustfmt::skip]
fn service_ports() {
    let lb = |p: Value| json!({"spec": {"type": "NodePort", "ports": p}});
    run(
        &service(),
        vec![
            ("ports required", ports(json!([])), Required, "spec.ports", "required"),
            ("port range", ports(json!([{"port": 70000}])), Invalid, "spec.ports[0].port", "70000 is not in 1..=65535"),
            ("port zero", ports(json!([{"port": 0}])), Invalid, "spec.ports[0].port", "0 is not in 1..=65535"),
            ("name required with two ports", ports(json!([{"name": "a", "port": 80}, {"port": 81}])), Required, "spec.ports[1].name", "81"),
            ("name is a label", ports(json!([{"name": "Http", "port": 80}])), Invalid, "spec.ports[0].name", "\"Http\""),
            ("names unique", ports(json!([{"name": "a", "port": 80}, {"name": "a", "port": 81}])), Duplicate, "spec.ports[1].name", "\"a\""),
            ("port+protocol unique", ports(json!([{"name": "a", "port": 80}, {"name": "b", "port": 80}])), Duplicate, "spec.ports[1]", "80/TCP"),
            ("targetPort number", ports(json!([{"port": 80, "targetPort": 70000}])), Invalid, "spec.ports[0].targetPort", "70000 is not in 1..=65535"),
            ("targetPort name", ports(json!([{"port": 80, "targetPort": "http_alt"}])), Invalid, "spec.ports[0].targetPort", "\"http_alt\""),
            ("appProtocol", ports(json!([{"port": 80, "appProtocol": "a b"}])), Invalid, "spec.ports[0].appProtocol", "\"a b\""),
            ("nodePort on ClusterIP", ports(json!([{"port": 80, "nodePort": 30080}])), Forbidden, "spec.ports[0].nodePort", "30080"),
            ("nodePort range", lb(json!([{"port": 80, "nodePort": 70000}])), Invalid, "spec.ports[0].nodePort", "70000 is not in 1..=65535"),
            ("nodePort unique", lb(json!([{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}])), Duplicate, "spec.ports[1].nodePort", "30080/TCP"),
        ],
    );
    // Same port on two protocols, and targetPort 0 / "" (defaulted to port).
    let ok = merge(
        &service(),
        &ports(json!([
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 0},
            {"name": "dns-tcp", "port": 53, "targetPort": ""}
        ])),
    );
    assert_eq!(errors(ok), vec![]);
}

#[test]
#[rustfmt::skip]
fn service_ips_and_types() {
    let spec = |s: Value| json!({"spec": s});
    run(
        &service(),
        vec![
            ("clusterIP syntax", spec(json!({"clusterIP": "10.0.0.300"})), Invalid, "spec.clusterIP", "\"10.0.0.300\""),
            ("clusterIPs[0] matches", spec(json!({"clusterIP": "198.19.0.10", "clusterIPs": ["198.19.0.11"]})), Invalid, "spec.clusterIPs[0]", "\"198.19.0.11\""),
            ("clusterIPs need clusterIP", spec(json!({"clusterIPs": ["198.19.0.10"]})), Invalid, "spec.clusterIPs", "must be empty when `clusterIP` is not specified"),
            ("clusterIPs syntax", spec(json!({"clusterIP": "198.19.0.10", "clusterIPs": ["198.19.0.10", "fd00:19::zz"], "ipFamilyPolicy": "PreferDualStack"})), Invalid, "spec.clusterIPs[1]", "\"fd00:19::zz\""),
            ("clusterIPs per family", spec(json!({"clusterIP": "198.19.0.10", "clusterIPs": ["198.19.0.10", "198.19.0.11"], "ipFamilyPolicy": "PreferDualStack"})), Invalid, "spec.clusterIPs", "198.19.0.11"),
            ("clusterIPs at most two", spec(json!({"clusterIP": "198.19.0.10", "clusterIPs": ["198.19.0.10", "fd00:19::a", "fd00:19::b"], "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"})), Invalid, "spec.clusterIPs", "fd00:19::b"),
            ("None alone", spec(json!({"clusterIP": "None", "clusterIPs": ["None", "fd00:19::a"], "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"})), Invalid, "spec.clusterIPs[0]", "\"None\" must be the first and only"),
            ("ipFamilies match", spec(json!({"clusterIP": "198.19.0.10", "ipFamilies": ["IPv6"]})), Invalid, "spec.clusterIPs[0]", "\"198.19.0.10\": expected an IPv6"),
            ("ipFamilies unique", spec(json!({"clusterIP": "None", "ipFamilies": ["IPv4", "IPv4"], "ipFamilyPolicy": "PreferDualStack"})), Duplicate, "spec.ipFamilies[1]", "IPv4"),
            ("SingleStack with two", spec(json!({"clusterIP": "198.19.0.10", "clusterIPs": ["198.19.0.10", "fd00:19::a"], "ipFamilyPolicy": "SingleStack"})), Invalid, "spec.ipFamilyPolicy", "\"SingleStack\""),
            ("no policy is SingleStack", spec(json!({"ipFamilies": ["IPv6", "IPv4"]})), Invalid, "spec.ipFamilyPolicy", "'RequireDualStack' or 'PreferDualStack'"),
            ("NodePort not headless", spec(json!({"type": "NodePort", "clusterIP": "None"})), Invalid, "spec.clusterIP", "\"None\""),
            ("externalIPs syntax", spec(json!({"externalIPs": ["203.0.113.300"]})), Invalid, "spec.externalIPs[0]", "\"203.0.113.300\""),
            ("externalIPs loopback", spec(json!({"externalIPs": ["127.0.0.1"]})), Invalid, "spec.externalIPs[0]", "\"127.0.0.1\": may not be in the loopback range"),
            ("externalIPs unspecified", spec(json!({"externalIPs": ["0.0.0.0"]})), Invalid, "spec.externalIPs[0]", "\"0.0.0.0\""),
            ("externalIPs link-local", spec(json!({"externalIPs": ["169.254.169.254"]})), Invalid, "spec.externalIPs[0]", "\"169.254.169.254\""),
            ("externalIPs ll multicast", spec(json!({"externalIPs": ["ff02::1"]})), Invalid, "spec.externalIPs[0]", "\"ff02::1\""),
            ("selector key", spec(json!({"selector": {"app/x/y": "web"}})), Invalid, "spec.selector", "\"app/x/y\""),
            ("selector value", spec(json!({"selector": {"app": "web!"}})), Invalid, "spec.selector", "\"web!\""),
            ("trafficDistribution", spec(json!({"trafficDistribution": "PreferFar"})), NotSupported, "spec.trafficDistribution", "\"PreferFar\""),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn service_kinds_and_policies() {
    let spec = |s: Value| json!({"spec": s});
    run(
        &service(),
        vec![
            ("affinity timeout low", spec(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}})), Invalid, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "0 is not in 1..=86400"),
            ("affinity timeout high", spec(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}})), Invalid, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "86401"),
            ("sourceRanges only for LB", spec(json!({"loadBalancerSourceRanges": ["203.0.113.0/24"]})), Forbidden, "spec.loadBalancerSourceRanges", "203.0.113.0/24"),
            ("sourceRanges syntax", spec(json!({"type": "LoadBalancer", "loadBalancerSourceRanges": ["203.0.113.0/33"]})), Invalid, "spec.loadBalancerSourceRanges[0]", "\"203.0.113.0/33\""),
            ("allocateLoadBalancerNodePorts only for LB", spec(json!({"type": "NodePort", "allocateLoadBalancerNodePorts": false})), Forbidden, "spec.allocateLoadBalancerNodePorts", "false"),
            ("loadBalancerClass only for LB", spec(json!({"loadBalancerClass": "k8snet.io/lb"})), Forbidden, "spec.loadBalancerClass", "\"k8snet.io/lb\""),
            ("loadBalancerClass syntax", spec(json!({"type": "LoadBalancer", "loadBalancerClass": "a/b/c"})), Invalid, "spec.loadBalancerClass", "\"a/b/c\""),
            ("loadBalancerIP", spec(json!({"type": "LoadBalancer", "loadBalancerIP": "lb"})), Invalid, "spec.loadBalancerIP", "\"lb\""),
            ("externalTrafficPolicy needs exposure", spec(json!({"externalTrafficPolicy": "Local"})), Invalid, "spec.externalTrafficPolicy", "Local"),
            ("healthCheckNodePort needs LB+Local", spec(json!({"type": "NodePort", "healthCheckNodePort": 30999})), Invalid, "spec.healthCheckNodePort", "30999"),
            ("healthCheckNodePort range", spec(json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 70000})), Invalid, "spec.healthCheckNodePort", "70000 is not in 1..=65535"),
            ("lb ip", json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.1.1"}]}}}), Invalid, "status.loadBalancer.ingress[0].ip", "\"203.0.113.1.1\""),
            ("lb ipMode", json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.1", "ipMode": "Tunnel"}]}}}), NotSupported, "status.loadBalancer.ingress[0].ipMode", "\"Tunnel\""),
            ("lb ipMode without ip", json!({"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com", "ipMode": "VIP"}]}}}), Forbidden, "status.loadBalancer.ingress[0].ipMode", "\"VIP\""),
            ("lb hostname", json!({"status": {"loadBalancer": {"ingress": [{"hostname": "203.0.113.1"}]}}}), Invalid, "status.loadBalancer.ingress[0].hostname", "\"203.0.113.1\""),
        ],
    );
    // externalTrafficPolicy is allowed on a ClusterIP Service with externalIPs;
    // a leftover sessionAffinityConfig with affinity None is dropped, not refused.
    let ok = merge(
        &service(),
        &spec(json!({
            "externalIPs": ["203.0.113.7"], "externalTrafficPolicy": "Local",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}
        })),
    );
    assert_eq!(errors(ok), vec![]);
}

#[test]
#[rustfmt::skip]
fn service_external_name() {
    let ext = json!({
        "kind": "Service", "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com."}
    });
    run(
        &ext,
        vec![
            ("externalName required", json!({"spec": {"externalName": null}}), Required, "spec.externalName", "required"),
            ("externalName syntax", json!({"spec": {"externalName": "db_main.example.com"}}), Invalid, "spec.externalName", "\"db_main.example.com\""),
            ("no clusterIP", json!({"spec": {"clusterIP": "198.19.0.9"}}), Forbidden, "spec.clusterIP", "\"198.19.0.9\""),
            ("no clusterIPs", json!({"spec": {"clusterIPs": ["198.19.0.9"]}}), Forbidden, "spec.clusterIPs", "\"198.19.0.9\""),
            ("no clusterIPs, even empty", json!({"spec": {"clusterIPs": [""]}}), Forbidden, "spec.clusterIPs", "[\"\"]"),
            ("no ipFamilies", json!({"spec": {"ipFamilies": ["IPv4"]}}), Forbidden, "spec.ipFamilies", "IPv4"),
            ("no ipFamilyPolicy", json!({"spec": {"ipFamilyPolicy": "SingleStack"}}), Forbidden, "spec.ipFamilyPolicy", "SingleStack"),
        ],
    );
}

#[test]
fn service_reports_every_error() {
    let svc = merge(
        &service(),
        &json!({"metadata": {"name": "Web"}, "spec": {
            "ports": [{"name": "http", "port": 70000}, {"name": "http", "port": 81}]
        }}),
    );
    let errs = errors(svc);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    has(&errs, Invalid, "metadata.name", "\"Web\"");
    has(
        &errs,
        Invalid,
        "spec.ports[0].port",
        "70000 is not in 1..=65535",
    );
    has(&errs, Duplicate, "spec.ports[1].name", "\"http\"");
    assert_eq!(
        errs[1].to_string(),
        "spec.ports[0].port: 70000 is not in 1..=65535"
    );
}

#[test]
fn services_that_pass() {
    let cases = [
        json!({"kind": "Service", "metadata": {"name": "web"}, "spec": {
            "type": "LoadBalancer", "selector": {"app": "web"},
            "clusterIP": "198.19.0.20", "clusterIPs": ["198.19.0.20", "fd00:19::20"],
            "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack",
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "loadBalancerSourceRanges": [" 203.0.113.0/24", "2001:db8::/32"],
            "loadBalancerClass": "k8snet.io/lb",
            "sessionAffinity": "ClientIP",
            "trafficDistribution": "PreferSameZone",
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}
            ]
        }, "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]}}}),
        json!({"kind": "Service", "metadata": {"name": "peers", "namespace": "db"}, "spec": {
            "clusterIP": "None", "selector": {"app": "db"}, "publishNotReadyAddresses": true
        }}),
        json!({"kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system"}, "spec": {
            "clusterIP": "198.19.0.10",
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}]
        }}),
        json!({"kind": "Service", "metadata": {"name": "manual"}, "spec": {"clusterIP": "", "ports": [{"port": 80}]}}),
    ];
    for c in cases {
        assert_eq!(errors(c.clone()), vec![], "{c}");
    }
}

// ---------------------------------------------------------------- EndpointSlice

fn slice() -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc12", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["198.18.0.5"], "conditions": {"ready": true}, "nodeName": "node-1",
             "zone": "z1", "hostname": "web-0", "hints": {"forZones": [{"name": "z1"}], "forNodes": [{"name": "node-1"}]},
             "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "shop"}}
        ],
        "ports": [{"name": "http", "port": 8080, "appProtocol": "http"}, {"name": "", "port": 9090}]
    })
}

fn endpoint(ep: Value) -> Value {
    json!({"endpoints": [ep]})
}

#[test]
#[rustfmt::skip]
fn endpoint_slice_rules() {
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"addresses": ["198.18.0.5"]}))
        .collect();
    let many_addrs: Vec<String> = (0..101).map(|i| format!("198.18.1.{}", i + 1)).collect();
    let many_ports: Vec<Value> = (0..101)
        .map(|i| json!({"name": format!("p{i}"), "port": 1000 + i}))
        .collect();
    let nine_zones: Vec<Value> = (0..9).map(|i| json!({"name": format!("z{i}")})).collect();
    run(
        &slice(),
        vec![
            ("at most 1000 endpoints", json!({"endpoints": many}), TooMany, "endpoints", "1001"),
            ("addresses required", endpoint(json!({"addresses": []})), Required, "endpoints[0].addresses", "at least 1"),
            ("at most 100 addresses", endpoint(json!({"addresses": many_addrs})), TooMany, "endpoints[0].addresses", "101"),
            ("IPv4 syntax", endpoint(json!({"addresses": ["198.18.0.256"]})), Invalid, "endpoints[0].addresses[0]", "\"198.18.0.256\""),
            ("IPv4 family", endpoint(json!({"addresses": ["fd00:18::5"]})), Invalid, "endpoints[0].addresses[0]", "\"fd00:18::5\""),
            ("loopback", endpoint(json!({"addresses": ["127.0.0.1"]})), Invalid, "endpoints[0].addresses[0]", "\"127.0.0.1\": may not be in the loopback range"),
            ("link-local", endpoint(json!({"addresses": ["169.254.0.1"]})), Invalid, "endpoints[0].addresses[0]", "\"169.254.0.1\""),
            ("IPv6 family", json!({"addressType": "IPv6"}), Invalid, "endpoints[0].addresses[0]", "\"198.18.0.5\""),
            ("IPv6 loopback", json!({"addressType": "IPv6", "endpoints": [{"addresses": ["::1"]}]}), Invalid, "endpoints[0].addresses[0]", "\"::1\""),
            ("FQDN syntax", json!({"addressType": "FQDN", "endpoints": [{"addresses": ["db_1.example.com"]}]}), Invalid, "endpoints[0].addresses[0]", "\"db_1.example.com\""),
            ("FQDN two labels", json!({"addressType": "FQDN", "endpoints": [{"addresses": ["localhost"]}]}), Invalid, "endpoints[0].addresses[0]", "\"localhost\""),
            ("nodeName", endpoint(json!({"addresses": ["198.18.0.5"], "nodeName": "Node 1"})), Invalid, "endpoints[0].nodeName", "\"Node 1\""),
            ("hostname", endpoint(json!({"addresses": ["198.18.0.5"], "hostname": "web.0"})), Invalid, "endpoints[0].hostname", "\"web.0\""),
            ("zone", endpoint(json!({"addresses": ["198.18.0.5"], "zone": "zone one"})), Invalid, "endpoints[0].zone", "\"zone one\""),
            ("at most 8 zone hints", endpoint(json!({"addresses": ["198.18.0.5"], "hints": {"forZones": nine_zones}})), TooMany, "endpoints[0].hints.forZones", "9"),
            ("zone hints unique", endpoint(json!({"addresses": ["198.18.0.5"], "hints": {"forZones": [{"name": "z1"}, {"name": "z1"}]}})), Duplicate, "endpoints[0].hints.forZones[1].name", "\"z1\""),
            ("zone hint syntax", endpoint(json!({"addresses": ["198.18.0.5"], "hints": {"forZones": [{"name": "z 1"}]}})), Invalid, "endpoints[0].hints.forZones[0].name", "\"z 1\""),
            ("node hint syntax", endpoint(json!({"addresses": ["198.18.0.5"], "hints": {"forNodes": [{"name": "Node_1"}]}})), Invalid, "endpoints[0].hints.forNodes[0].name", "\"Node_1\""),
            ("at most 100 ports", json!({"ports": many_ports}), TooMany, "ports", "101"),
            ("port name", json!({"ports": [{"name": "HTTP", "port": 80}]}), Invalid, "ports[0].name", "\"HTTP\""),
            ("port names unique", json!({"ports": [{"port": 80}, {"port": 81}]}), Duplicate, "ports[1].name", "\"\""),
            ("port range", json!({"ports": [{"name": "a", "port": 0}]}), Invalid, "ports[0].port", "0 is not in 1..=65535"),
            ("appProtocol", json!({"ports": [{"name": "a", "port": 80, "appProtocol": "-h2c"}]}), Invalid, "ports[0].appProtocol", "\"-h2c\""),
        ],
    );
    let fqdn = json!({"kind": "EndpointSlice", "metadata": {"name": "ext"}, "addressType": "FQDN",
        "endpoints": [{"addresses": ["db.example.com."]}], "ports": [{"port": null}]});
    assert_eq!(errors(fqdn), vec![]);
}

// ---------------------------------------------------------------- NetworkPolicy

fn netpol() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web-allow", "namespace": "shop"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "front"}},
                     "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge"]}]}},
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}
                ],
                "ports": [{"port": "http"}, {"port": 8000, "endPort": 8100}, {"protocol": "UDP"}]
            }],
            "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/8"}}]}, {}],
            "policyTypes": ["Ingress", "Egress"]
        }
    })
}

fn rule_ports(p: Value) -> Value {
    json!({"spec": {"ingress": [{"ports": p}]}})
}

fn from(peers: Value) -> Value {
    json!({"spec": {"ingress": [{"from": peers}]}})
}

fn ip_block(b: Value) -> Value {
    from(json!([{"ipBlock": b}]))
}

#[test]
#[rustfmt::skip]
fn network_policy_rules() {
    run(
        &netpol(),
        vec![
            ("podSelector In needs values", json!({"spec": {"podSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": []}]}}}), Required, "spec.podSelector.matchExpressions[0].values", "\"app\""),
            ("podSelector Exists has none", json!({"spec": {"podSelector": {"matchExpressions": [{"key": "app", "operator": "DoesNotExist", "values": ["x"]}]}}}), Forbidden, "spec.podSelector.matchExpressions[0].values", "[\"x\"]"),
            ("peer selector key", from(json!([{"podSelector": {"matchLabels": {"a b": "x"}}}])), Invalid, "spec.ingress[0].from[0].podSelector.matchLabels", "\"a b\""),
            ("policyTypes at most two", json!({"spec": {"policyTypes": ["Ingress", "Egress", "Egress"]}}), Invalid, "spec.policyTypes", "more than two"),
            ("port range", rule_ports(json!([{"port": 70000}])), Invalid, "spec.ingress[0].ports[0].port", "70000 is not in 1..=65535"),
            ("named port syntax", rule_ports(json!([{"port": "HTTP"}])), Invalid, "spec.ingress[0].ports[0].port", "\"HTTP\""),
            ("endPort with named port", rule_ports(json!([{"port": "http", "endPort": 90}])), Invalid, "spec.ingress[0].ports[0].endPort", "90: may not be specified when `port` is a named port"),
            ("endPort without port", rule_ports(json!([{"endPort": 90}])), Invalid, "spec.ingress[0].ports[0].endPort", "90: may not be specified when `port` is not specified"),
            ("endPort below port", rule_ports(json!([{"port": 90, "endPort": 80}])), Invalid, "spec.ingress[0].ports[0].endPort", "80: must be greater than or equal to `port` (90)"),
            ("endPort range", rule_ports(json!([{"port": 90, "endPort": 65536}])), Invalid, "spec.ingress[0].ports[0].endPort", "65536 is not in 1..=65535"),
            ("peer needs a field", from(json!([{}])), Required, "spec.ingress[0].from[0]", "must specify a peer"),
            ("ipBlock alone", from(json!([{"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}])), Forbidden, "spec.ingress[0].from[0]", "ipBlock"),
            ("cidr required", ip_block(json!({"cidr": ""})), Required, "spec.ingress[0].from[0].ipBlock.cidr", "required"),
            ("cidr bad part", ip_block(json!({"cidr": "10.0.0.0256/8"})), Invalid, "spec.ingress[0].from[0].ipBlock.cidr", "\"10.0.0.0256/8\": must be a valid CIDR"),
            ("cidr prefix too long", ip_block(json!({"cidr": "10.0.0.0/033"})), Invalid, "spec.ingress[0].from[0].ipBlock.cidr", "\"10.0.0.0/033\": prefix length must be a decimal number in 0..=32"),
            ("cidr syntax", ip_block(json!({"cidr": "10.0.0.0"})), Invalid, "spec.ingress[0].from[0].ipBlock.cidr", "\"10.0.0.0\": must be a valid CIDR"),
            ("except syntax", ip_block(json!({"cidr": "10.0.0.0/8", "except": ["10.1.0.0/33"]})), Invalid, "spec.ingress[0].from[0].ipBlock.except[0]", "\"10.1.0.0/33\""),
            ("except outside", ip_block(json!({"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]})), Invalid, "spec.ingress[0].from[0].ipBlock.except[0]", "\"11.0.0.0/16\": must be a strict subset of `cidr` (\"10.0.0.0/8\")"),
            ("except not smaller", ip_block(json!({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]})), Invalid, "spec.ingress[0].from[0].ipBlock.except[0]", "\"10.0.0.0/8\""),
            ("except other family", ip_block(json!({"cidr": "10.0.0.0/8", "except": ["fd00::/16"]})), Invalid, "spec.ingress[0].from[0].ipBlock.except[0]", "\"fd00::/16\""),
            // Host bits are accepted (with a warning, see apiserver_parity.rs), but
            // the networks are compared: 10.1.2.3/8 is 10.0.0.0/8, not smaller.
            ("except host bits not smaller", ip_block(json!({"cidr": "10.0.0.0/8", "except": ["10.1.2.3/8"]})), Invalid, "spec.ingress[0].from[0].ipBlock.except[0]", "\"10.1.2.3/8\": must be a strict subset"),
            ("except host bits outside", ip_block(json!({"cidr": "10.0.0.1/16", "except": ["10.1.2.3/24"]})), Invalid, "spec.ingress[0].from[0].ipBlock.except[0]", "\"10.1.2.3/24\": must be a strict subset"),
        ],
    );
    // Leading zeros (an IPv4 part read as decimal) are no error but a
    // warning naming what the apiserver reads (ParseCIDRSloppy).
    let zeros = merge(&netpol(), &ip_block(json!({"cidr": "010.0.0.0/8"})));
    assert_eq!(errors(zeros.clone()), vec![]);
    let mut m = k8snet_model::Manifests::new();
    m.load_str("p.json", &zeros.to_string());
    let warnings: Vec<String> = m.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("spec.ingress[0].from[0].ipBlock.cidr: \"010.0.0.0/8\": non-standard CIDR value; read as \"10.0.0.0/8\""),
        "{warnings:#?}"
    );
    // Deny-all: an empty selector, no rules, both types.
    let deny = json!({"kind": "NetworkPolicy", "metadata": {"name": "deny-all"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}});
    assert_eq!(errors(deny), vec![]);
}

// ---------------------------------------------------------------- Ingress

fn ingress() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {
            "ingressClassName": "k8snet",
            "tls": [{"hosts": ["shop.example.com", "*.shop.example.com"], "secretName": "shop-tls"}],
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "rules": [{
                "host": "shop.example.com",
                "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
                    {"path": "/", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                    {"pathType": "ImplementationSpecific", "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static"}}}
                ]}
            }, {"host": "*.shop.example.com"}]
        }
    })
}

fn rule(r: Value) -> Value {
    json!({"spec": {"rules": [r]}})
}

fn path(path: &str, ty: &str) -> Value {
    rule(
        json!({"http": {"paths": [{"path": path, "pathType": ty, "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}),
    )
}

fn backend(b: Value) -> Value {
    json!({"spec": {"defaultBackend": b}})
}

#[test]
#[rustfmt::skip]
fn ingress_rules() {
    // Without the default backend, so each case can set its own.
    let base = merge(&ingress(), &json!({"spec": {"defaultBackend": null}}));
    run(
        &base,
        vec![
            ("rules or defaultBackend", json!({"spec": {"rules": null}}), Invalid, "spec", "either `defaultBackend` or `rules`"),
            ("host not an IP", rule(json!({"host": "203.0.113.5"})), Invalid, "spec.rules[0].host", "\"203.0.113.5\": must be a DNS name"),
            ("host syntax", rule(json!({"host": "Shop.example.com"})), Invalid, "spec.rules[0].host", "\"Shop.example.com\""),
            ("host wildcard", rule(json!({"host": "*.*.example.com"})), Invalid, "spec.rules[0].host", "\"*.*.example.com\""),
            ("paths required", rule(json!({"http": {"paths": []}})), Required, "spec.rules[0].http.paths", "required"),
            ("Prefix absolute", path("api", "Prefix"), Invalid, "spec.rules[0].http.paths[0].path", "\"api\": must be an absolute path"),
            ("Exact //", path("/a//b", "Exact"), Invalid, "spec.rules[0].http.paths[0].path", "\"/a//b\": must not contain '//'"),
            ("Exact /./", path("/a/./b", "Exact"), Invalid, "spec.rules[0].http.paths[0].path", "\"/a/./b\""),
            ("Prefix %2F", path("/a%2Fb", "Prefix"), Invalid, "spec.rules[0].http.paths[0].path", "\"/a%2Fb\": must not contain '%2F'"),
            ("Prefix ends /.", path("/a/.", "Prefix"), Invalid, "spec.rules[0].http.paths[0].path", "\"/a/.\": cannot end with '/.'"),
            ("ImplementationSpecific absolute", path("a", "ImplementationSpecific"), Invalid, "spec.rules[0].http.paths[0].path", "\"a\""),
            ("both backends", backend(json!({"service": {"name": "web", "port": {"number": 80}}, "resource": {"kind": "B", "name": "b"}})), Invalid, "spec.defaultBackend", "both"),
            ("no backend", backend(json!({})), Invalid, "spec.defaultBackend", "resource or service backend is required"),
            ("service name", backend(json!({"service": {"name": "1web", "port": {"number": 80}}})), Invalid, "spec.defaultBackend.service.name", "\"1web\""),
            ("port both", backend(json!({"service": {"name": "web", "port": {"name": "http", "number": 80}}})), Invalid, "spec.defaultBackend", "\"http\" and number 80"),
            ("port neither", backend(json!({"service": {"name": "web", "port": {}}})), Required, "spec.defaultBackend", "\"web\""),
            ("port number", backend(json!({"service": {"name": "web", "port": {"number": 70000}}})), Invalid, "spec.defaultBackend.service.port.number", "70000 is not in 1..=65535"),
            ("port name", backend(json!({"service": {"name": "web", "port": {"name": "http--alt"}}})), Invalid, "spec.defaultBackend.service.port.name", "\"http--alt\""),
            ("resource kind", backend(json!({"resource": {"kind": "", "name": "b"}})), Required, "spec.defaultBackend.resource.kind", "required"),
            ("resource name", backend(json!({"resource": {"kind": "B", "name": "a/b"}})), Invalid, "spec.defaultBackend.resource.name", "\"a/b\""),
            ("tls host", json!({"spec": {"tls": [{"hosts": ["shop_example.com"]}]}}), Invalid, "spec.tls[0].hosts[0]", "\"shop_example.com\""),
            ("tls secretName", json!({"spec": {"tls": [{"secretName": "Shop-TLS"}]}}), Invalid, "spec.tls[0].secretName", "\"Shop-TLS\""),
            ("ingressClassName", json!({"spec": {"ingressClassName": "K8snet"}}), Invalid, "spec.ingressClassName", "\"K8snet\""),
            ("class annotation agrees", json!({"metadata": {"annotations": {"kubernetes.io/ingress.class": "nginx"}}}), Invalid, "metadata.annotations[kubernetes.io/ingress.class]", "\"nginx\""),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn ingress_class_rules() {
    let class = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "k8snet", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "k8snet.io/ingress", "parameters": {"apiGroup": "k8snet.io", "kind": "IngressParameters", "name": "default"}}
    });
    let params = |p: Value| json!({"spec": {"parameters": p}});
    run(
        &class,
        vec![
            ("controller required", json!({"spec": {"controller": ""}}), Required, "spec.controller", "required"),
            ("controller too long", json!({"spec": {"controller": format!("k8snet.io/{}", "a".repeat(250))}}), TooLong, "spec.controller", "260"),
            ("controller domain-prefixed", json!({"spec": {"controller": "ingress"}}), Invalid, "spec.controller", "\"ingress\": must be a domain-prefixed path"),
            ("controller domain", json!({"spec": {"controller": "K8snet.io/ingress"}}), Invalid, "spec.controller", "\"K8snet.io/ingress\""),
            ("controller path", json!({"spec": {"controller": "k8snet.io/in gress"}}), Invalid, "spec.controller", "\"k8snet.io/in gress\""),
            ("parameters kind", params(json!({"kind": ""})), Required, "spec.parameters.kind", "required"),
            ("parameters name", params(json!({"name": ".."})), Invalid, "spec.parameters.name", "\"..\""),
            ("parameters apiGroup", params(json!({"apiGroup": "K8snet"})), Invalid, "spec.parameters.apiGroup", "\"K8snet\""),
            ("scope Namespace needs namespace", params(json!({"scope": "Namespace"})), Required, "spec.parameters.namespace", "Namespace"),
            ("scope Namespace namespace syntax", params(json!({"scope": "Namespace", "namespace": "Ing"})), Invalid, "spec.parameters.namespace", "\"Ing\""),
            ("scope Cluster forbids namespace", params(json!({"scope": "Cluster", "namespace": "ing"})), Forbidden, "spec.parameters.namespace", "\"ing\""),
            ("scope supported", params(json!({"scope": "Global"})), NotSupported, "spec.parameters.scope", "\"Global\""),
        ],
    );
}

// ---------------------------------------------------------------- admin policies

fn anp() -> Value {
    json!({
        "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
        "metadata": {"name": "cluster-control"},
        "spec": {
            "priority": 10,
            "subject": {"pods": {"namespaceSelector": {"matchLabels": {"team": "shop"}}, "podSelector": {}}},
            "ingress": [{
                "name": "allow-monitoring", "action": "Allow",
                "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                "ports": [{"portNumber": {"protocol": "TCP", "port": 9090}}, {"namedPort": "metrics"}, {"portRange": {"start": 8000, "end": 8100}}]
            }],
            "egress": [
                {"name": "dns", "action": "Pass", "to": [{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}}]},
                {"name": "internet", "action": "Allow", "to": [{"networks": ["0.0.0.0/0", "::/0"]}, {"domainNames": ["*.example.com"]}], "ports": [{"portNumber": {"port": 443}}]},
                {"action": "Deny", "to": [{"nodes": {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}}]}
            ]
        }
    })
}

fn anp_ingress(r: Value) -> Value {
    json!({"spec": {"ingress": [r]}})
}

fn anp_egress(r: Value) -> Value {
    json!({"spec": {"egress": [r]}})
}

fn ns_peer() -> Value {
    json!([{"namespaces": {}}])
}

#[test]
#[rustfmt::skip]
fn admin_network_policy_rules() {
    let rules: Vec<Value> = (0..101)
        .map(|_| json!({"action": "Deny", "from": ns_peer()}))
        .collect();
    let peers: Vec<Value> = (0..101).map(|_| json!({"namespaces": {}})).collect();
    let nets: Vec<String> = (0..26).map(|i| format!("10.{i}.0.0/16")).collect();
    let port = |p: Value| anp_ingress(json!({"action": "Allow", "from": ns_peer(), "ports": p}));
    let net = |n: Value| anp_egress(json!({"action": "Deny", "to": [{"networks": n}]}));
    run(
        &anp(),
        vec![
            ("priority range", json!({"spec": {"priority": 1001}}), Invalid, "spec.priority", "1001 is not in 0..=1000"),
            ("subject required", json!({"spec": {"subject": {"pods": null}}}), Required, "spec.subject", "exactly one of namespaces or pods"),
            ("subject one field", json!({"spec": {"subject": {"namespaces": {}}}}), Invalid, "spec.subject", "[\"namespaces\", \"pods\"]"),
            ("subject selector", json!({"spec": {"subject": {"pods": {"podSelector": {"matchLabels": {"app": "-"}}}}}}), Invalid, "spec.subject.pods.podSelector.matchLabels", "\"-\""),
            ("at most 100 ingress rules", json!({"spec": {"ingress": rules}}), TooMany, "spec.ingress", "101"),
            ("rule name length", anp_ingress(json!({"name": "n".repeat(101), "action": "Deny", "from": ns_peer()})), TooLong, "spec.ingress[0].name", "101"),
            ("from required", anp_ingress(json!({"action": "Deny", "from": []})), Required, "spec.ingress[0].from", "at least one peer"),
            ("at most 100 peers", anp_ingress(json!({"action": "Deny", "from": peers})), TooMany, "spec.ingress[0].from", "101"),
            ("peer one field", anp_ingress(json!({"action": "Deny", "from": [{}]})), Required, "spec.ingress[0].from[0]", "exactly one of namespaces or pods"),
            ("egress peer one field", anp_egress(json!({"action": "Deny", "to": [{"namespaces": {}, "networks": ["10.0.0.0/8"]}]})), Invalid, "spec.egress[0].to[0]", "[\"namespaces\", \"networks\"]"),
            ("at most 25 networks", net(json!(nets)), TooMany, "spec.egress[0].to[0].networks", "26"),
            ("network syntax", net(json!(["10.0.0.0/33"])), Invalid, "spec.egress[0].to[0].networks[0]", "\"10.0.0.0/33\""),
            ("network host bits", net(json!(["10.0.0.1/8"])), Invalid, "spec.egress[0].to[0].networks[0]", "\"10.0.0.0/8\""),
            ("network embedded v4", net(json!(["::ffff:10.0.0.0/104"])), Invalid, "spec.egress[0].to[0].networks[0]", "\"::ffff:10.0.0.0/104\""),
            ("networks unique", net(json!(["10.0.0.0/8", "10.0.0.0/8"])), Duplicate, "spec.egress[0].to[0].networks[1]", "\"10.0.0.0/8\""),
            ("domainNames only for Allow", anp_egress(json!({"action": "Deny", "to": [{"domainNames": ["example.com"]}]})), Forbidden, "spec.egress[0].to[0].domainNames", "example.com"),
            ("domainName syntax", anp_egress(json!({"action": "Allow", "to": [{"domainNames": ["*.*.example.com"]}]})), Invalid, "spec.egress[0].to[0].domainNames[0]", "\"*.*.example.com\""),
            ("ports not empty", port(json!([])), Required, "spec.ingress[0].ports", "at least one port"),
            ("port one field", port(json!([{}])), Required, "spec.ingress[0].ports[0]", "portNumber, namedPort or portRange"),
            ("port two fields", port(json!([{"namedPort": "http", "portNumber": {"port": 80}}])), Invalid, "spec.ingress[0].ports[0]", "[\"portNumber\", \"namedPort\"]"),
            ("portNumber range", port(json!([{"portNumber": {"port": 0}}])), Invalid, "spec.ingress[0].ports[0].portNumber.port", "0 is not in 1..=65535"),
            ("portRange order", port(json!([{"portRange": {"start": 9000, "end": 9000}}])), Invalid, "spec.ingress[0].ports[0].portRange", "start 9000 must be less than end 9000"),
            ("portRange bounds", port(json!([{"portRange": {"start": 9000, "end": 65536}}])), Invalid, "spec.ingress[0].ports[0].portRange.end", "65536"),
            ("namedPort syntax", port(json!([{"namedPort": "HTTP"}])), Invalid, "spec.ingress[0].ports[0].namedPort", "\"HTTP\""),
            ("namedPort with networks", anp_egress(json!({"action": "Deny", "to": [{"networks": ["10.0.0.0/8"]}], "ports": [{"namedPort": "http"}]})), Forbidden, "spec.egress[0].ports[0].namedPort", "\"http\""),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn baseline_admin_network_policy_rules() {
    let banp = json!({
        "apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {
            "subject": {"namespaces": {}},
            "ingress": [{"name": "default-deny", "action": "Deny", "from": [{"namespaces": {}}]}],
            "egress": [{"action": "Allow", "to": [{"networks": ["10.0.0.0/8"]}], "ports": [{"portRange": {"protocol": "UDP", "start": 53, "end": 54}}]}]
        }
    });
    run(
        &banp,
        vec![
            ("singleton name", json!({"metadata": {"name": "baseline"}}), Invalid, "metadata.name", "\"baseline\""),
            ("no Pass", json!({"spec": {"ingress": [{"action": "Pass", "from": [{"namespaces": {}}]}]}}), NotSupported, "spec.ingress[0].action", "\"Pass\""),
            ("no domainNames", json!({"spec": {"egress": [{"action": "Allow", "to": [{"domainNames": ["example.com"]}]}]}}), Forbidden, "spec.egress[0].to[0].domainNames", "example.com"),
            ("cluster-scoped", json!({"metadata": {"namespace": "default"}}), Forbidden, "metadata.namespace", "\"default\""),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn cluster_network_policy_rules() {
    let cnp = json!({
        "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "tenant-isolation"},
        "spec": {
            "tier": "Admin", "priority": 50,
            "subject": {"namespaces": {"matchLabels": {"tenant": "a"}}},
            "ingress": [{"action": "Accept", "from": [{"namespaces": {"matchLabels": {"tenant": "a"}}}],
                         "protocols": [{"tcp": {"destinationPort": {"number": 80}}}, {"udp": {"destinationPort": {"range": {"start": 5000, "end": 6000}}}}, {"destinationNamedPort": "dns"}, {"sctp": {}}]}],
            "egress": [{"name": "web", "action": "Accept", "to": [{"domainNames": ["example.com"]}, {"networks": ["fd00::/8"]}], "protocols": [{"tcp": {"destinationPort": {"number": 443}}}]}]
        }
    });
    let rules: Vec<Value> = (0..26)
        .map(|_| json!({"action": "Deny", "to": [{"namespaces": {}}]}))
        .collect();
    let peers: Vec<Value> = (0..26).map(|_| json!({"namespaces": {}})).collect();
    let proto = |p: Value| json!({"spec": {"ingress": [{"action": "Deny", "from": [{"namespaces": {}}], "protocols": p}]}});
    let egress = |r: Value| json!({"spec": {"egress": [r]}});
    run(
        &cnp,
        vec![
            ("priority range", json!({"spec": {"priority": -1}}), Invalid, "spec.priority", "-1 is not in 0..=1000"),
            ("at most 25 egress rules", json!({"spec": {"egress": rules}}), TooMany, "spec.egress", "26"),
            ("at most 25 peers", json!({"spec": {"ingress": [{"action": "Deny", "from": peers}]}}), TooMany, "spec.ingress[0].from", "26"),
            ("protocols not empty", proto(json!([])), Required, "spec.ingress[0].protocols", "at least one protocol"),
            ("protocol one field", proto(json!([{}])), Required, "spec.ingress[0].protocols[0]", "tcp, udp, sctp or destinationNamedPort"),
            ("protocol two fields", proto(json!([{"tcp": {}, "udp": {}}])), Invalid, "spec.ingress[0].protocols[0]", "[\"tcp\", \"udp\"]"),
            ("destinationPort one field", proto(json!([{"tcp": {"destinationPort": {}}}])), Required, "spec.ingress[0].protocols[0].tcp.destinationPort", "number or range"),
            ("destinationPort two fields", proto(json!([{"udp": {"destinationPort": {"number": 53, "range": {"start": 1, "end": 2}}}}])), Invalid, "spec.ingress[0].protocols[0].udp.destinationPort", "[\"number\", \"range\"]"),
            ("number range", proto(json!([{"sctp": {"destinationPort": {"number": 0}}}])), Invalid, "spec.ingress[0].protocols[0].sctp.destinationPort.number", "0 is not in 1..=65535"),
            ("range order", proto(json!([{"tcp": {"destinationPort": {"range": {"start": 90, "end": 80}}}}])), Invalid, "spec.ingress[0].protocols[0].tcp.destinationPort.range", "start 90 must be less than end 80"),
            ("named port syntax", proto(json!([{"destinationNamedPort": "Dns"}])), Invalid, "spec.ingress[0].protocols[0].destinationNamedPort", "\"Dns\""),
            ("domainNames only for Accept", egress(json!({"action": "Pass", "to": [{"domainNames": ["example.com"]}]})), Forbidden, "spec.egress[0].to[0].domainNames", "Accept"),
            ("networks", egress(json!({"action": "Deny", "to": [{"networks": ["fd00::1/8"]}]})), Invalid, "spec.egress[0].to[0].networks[0]", "\"fd00::/8\""),
            ("named port with domainNames", egress(json!({"action": "Accept", "to": [{"domainNames": ["example.com"]}], "protocols": [{"destinationNamedPort": "https"}]})), Forbidden, "spec.egress[0].protocols[0].destinationNamedPort", "\"https\""),
        ],
    );
}

// ---------------------------------------------------------------- objects that pass

#[test]
fn realistic_objects_pass() {
    for v in [pod(), service(), slice(), netpol(), ingress(), anp()] {
        assert_eq!(errors(v.clone()), vec![], "{v}");
    }
}

#[test]
fn never_panics_on_odd_input() {
    // Empty objects of every kind: errors, but no panic.
    for kind in [
        "Namespace",
        "Node",
        "Pod",
        "Service",
        "EndpointSlice",
        "Ingress",
        "IngressClass",
        "Secret",
        "NetworkPolicy",
        "AdminNetworkPolicy",
        "BaselineAdminNetworkPolicy",
    ] {
        let errs = errors(json!({"kind": kind, "addressType": "IPv4"}));
        has(&errs, Required, "metadata.name", "required");
    }
    let cnp = json!({"kind": "ClusterNetworkPolicy", "spec": {"tier": "Baseline"}});
    let errs = errors(cnp);
    has(&errs, Required, "spec.subject", "exactly one");
    // Odd strings in every IP-ish field.
    let odd = [
        "",
        "/",
        "::",
        "1.2.3.4/",
        "%",
        "\u{0}",
        "999999999999999999999",
    ];
    for s in odd {
        let svc = merge(
            &service(),
            &json!({"spec": {"clusterIP": s, "externalIPs": [s], "type": "LoadBalancer", "loadBalancerSourceRanges": [s]}}),
        );
        let _ = errors(svc);
        let np = merge(&netpol(), &ip_block(json!({"cidr": s, "except": [s]})));
        let _ = errors(np);
    }
}

proptest::proptest! {
    /// Arbitrary strings and numbers in the IP, CIDR, name and port fields
    /// produce errors, never a panic.
    #[test]
    fn arbitrary_fields_never_panic(s in "\\PC{0,48}", n in proptest::num::i32::ANY) {
        let _ = k8snet_model::validate::parse_cidr_strict(&s);
        let _ = k8snet_model::validate::parse_ip_strict(&s);
        let svc = merge(&service(), &json!({"spec": {
            "type": "LoadBalancer", "clusterIP": s, "clusterIPs": [s, s, s], "externalIPs": [s],
            "loadBalancerSourceRanges": [s], "loadBalancerIP": s, "healthCheckNodePort": n,
            "ports": [{"name": s, "port": n, "nodePort": n, "targetPort": s}]
        }}));
        let _ = errors(svc);
        let np = merge(&netpol(), &rule_ports(json!([{"port": n, "endPort": n}])));
        let _ = errors(np);
        let np = merge(&netpol(), &ip_block(json!({"cidr": s, "except": [s, "10.0.0.0/8"]})));
        let _ = errors(np);
        let ep = merge(&slice(), &endpoint(json!({"addresses": [s], "hostname": s, "zone": s})));
        let _ = errors(ep);
        let ing = merge(&ingress(), &path(&s, "Prefix"));
        let _ = errors(ing);
    }
}
