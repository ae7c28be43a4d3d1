//! Property tests: load → save → load gives equal objects, for YAML and
//! JSON; arbitrary input never panics the loader.

use k8snet_model::{Manifests, Object};
use proptest::prelude::*;
use serde_json::{Value, json};

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,10}[a-z0-9])?"
}

fn label_map() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    proptest::collection::btree_map(
        "(example\\.com/)?[a-zA-Z][a-zA-Z0-9_.-]{0,8}[a-zA-Z0-9]",
        "([a-zA-Z0-9]([a-zA-Z0-9_.-]{0,8}[a-zA-Z0-9])?)?",
        0..4,
    )
    .prop_map(|m| m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn ipv4() -> impl Strategy<Value = String> {
    (0u8..=255, 1u8..=254).prop_map(|(a, b)| format!("198.18.{a}.{b}"))
}

const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];

fn pod() -> impl Strategy<Value = Value> {
    (dns_label(), dns_label(), label_map(), ipv4(), proptest::collection::vec((1i32..=65535, dns_label()), 0..3), any::<bool>(), (ipv4(), 0u8..3))
        .prop_map(|(ns, name, labels, ip, ports, ready, (host, host_ips))| {
            let ports: Vec<Value> = ports
                .iter()
                .enumerate()
                .map(|(i, (p, _))| json!({"containerPort": p, "name": format!("p{i}"), "protocol": PROTOCOLS[i % 3]}))
                .collect();
            let mut pod = json!({"apiVersion":"v1","kind":"Pod",
                "metadata":{"name":name,"namespace":ns,"labels":labels},
                "spec":{"containers":[{"name":"c","ports":ports}]},
                "status":{"phase":"Running","podIP":ip,"podIPs":[{"ip":ip}],
                    "conditions":[{"type":"Ready","status": if ready {"True"} else {"False"}}]}});
            // No host address, hostIP alone, or hostIP with a dual-stack hostIPs.
            if host_ips > 0 {
                pod["status"]["hostIP"] = json!(host);
            }
            if host_ips > 1 {
                pod["status"]["hostIPs"] = json!([{"ip": host}, {"ip": "fd00:19:1::1"}]);
            }
            pod
        })
}

fn service() -> impl Strategy<Value = Value> {
    (
        dns_label(),
        dns_label(),
        label_map(),
        ipv4(),
        proptest::collection::btree_set(1i32..=65535, 1..4),
        prop_oneof![Just("ClusterIP"), Just("NodePort"), Just("LoadBalancer")],
        any::<bool>(),
    )
        .prop_map(|(ns, name, selector, _ip, ports, ty, affinity)| {
            let ports: Vec<Value> = ports
                .iter()
                .enumerate()
                .map(|(i, p)| json!({"name": format!("port-{i}"), "port": p, "targetPort": if i % 2 == 0 { json!(p) } else { json!(format!("p{i}")) }}))
                .collect();
            let mut spec = json!({"type": ty, "selector": selector, "ports": ports, "clusterIP": "198.19.0.7"});
            if affinity {
                spec["sessionAffinity"] = json!("ClientIP");
                spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 60}});
            }
            json!({"apiVersion":"v1","kind":"Service","metadata":{"name":format!("s{name}"),"namespace":ns},"spec":spec})
        })
}

fn network_policy() -> impl Strategy<Value = Value> {
    (dns_label(), dns_label(), label_map(), label_map(), 1i32..=60000, 0i32..5000, any::<bool>())
        .prop_map(|(ns, name, sel, peer, port, span, egress)| {
            let rule = json!({
                "from": [{"podSelector": {"matchLabels": sel}, "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]}},
                         {"ipBlock": {"cidr": "198.51.100.0/24", "except": ["198.51.100.0/25"]}}],
                "ports": [{"port": port, "endPort": port + span, "protocol": "UDP"}, {"port": "http"}]
            });
            let mut spec = json!({"podSelector": {"matchLabels": peer}, "ingress": [rule]});
            if egress {
                spec["egress"] = json!([{"to": [{"namespaceSelector": {}}]}]);
            }
            json!({"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":name,"namespace":ns},"spec":spec})
        })
}

fn load(file: &str, text: &str) -> Vec<Object> {
    let mut m = Manifests::new();
    m.load_str(file, text);
    assert!(m.errors().is_empty(), "{:?}\n{text}", m.errors());
    m.into_objects()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn load_save_load_is_identity(docs in proptest::collection::vec(prop_oneof![pod(), service(), network_policy()], 1..6)) {
        // Names may collide across generated docs; keep the first of each.
        let mut seen = std::collections::HashSet::new();
        let docs: Vec<Value> = docs
            .into_iter()
            .filter(|d| seen.insert((d["kind"].clone(), d["metadata"]["namespace"].clone(), d["metadata"]["name"].clone())))
            .collect();
        let text = json!({"apiVersion":"v1","kind":"List","items":docs}).to_string();
        let first = load("in.json", &text);
        prop_assert_eq!(first.len(), docs.len());
        // The node addresses of pods are kept, both fields.
        for (doc, o) in docs.iter().zip(&first) {
            let v = o.to_value();
            for field in ["hostIP", "hostIPs"] {
                prop_assert_eq!(&v["status"][field], &doc["status"][field], "{}", field);
            }
        }

        let mut m = Manifests::new();
        for o in &first {
            m.load_value(k8snet_model::Location::new("mem", 0), o.to_value());
        }
        let yaml = m.to_yaml().unwrap();
        prop_assert_eq!(&load("out.yaml", &yaml), &first);
        prop_assert_eq!(&load("out.json", &m.to_json()), &first);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let mut m = Manifests::new();
        m.load_str("fuzz.yaml", &text);
    }

    #[test]
    fn mutated_manifests_never_panic(doc in prop_oneof![pod(), service(), network_policy()], cut in 0usize..400, junk in "[\\[\\]{}:,'\" \\n-]{0,4}") {
        let yaml = {
            let mut m = Manifests::new();
            m.load_str("in.json", &doc.to_string());
            m.to_yaml().unwrap()
        };
        let at = yaml.char_indices().map(|(i, _)| i).nth(cut % yaml.chars().count().max(1)).unwrap_or(0);
        let mutated = format!("{}{}{}", &yaml[..at], junk, &yaml[at..]);
        let mut m = Manifests::new();
        m.load_str("mutated.yaml", &mutated);
    }
}
