//! The 10,000-object input of the k8snet-model load benchmark, shared by
//! `benches/model.rs` (criterion) and the `load_10k` example (timing and
//! callgrind runs), so both measure the same text.

/// 10,000 objects: 100 namespaces, 6,000 pods, 1,500 services, 1,500
/// endpoint slices, 900 network policies — a realistic mix.
fn mixed_manifests() -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut out = Vec::with_capacity(10_000);
    for ns in 0..100 {
        out.push(json!({"apiVersion":"v1","kind":"Namespace",
            "metadata":{"name":format!("ns-{ns}"),"labels":{"team":format!("t{}", ns % 7)}}}));
    }
    for i in 0..6_000u32 {
        out.push(json!({"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":format!("pod-{i}"),"namespace":format!("ns-{}", i % 100),
                "labels":{"app":format!("app-{}", i % 15),"tier":"backend"}},
            "spec":{"nodeName":format!("node-{}", i % 20),"containers":[{"name":"c","image":"registry.example/app:1",
                "ports":[{"name":"http","containerPort":8080},{"name":"metrics","containerPort":9090}]}]},
            "status":{"phase":"Running","podIP":format!("198.18.{}.{}", i / 250, i % 250 + 2),
                "podIPs":[{"ip":format!("198.18.{}.{}", i / 250, i % 250 + 2)}],
                "conditions":[{"type":"Ready","status":"True"}]}}));
    }
    for i in 0..1_500u32 {
        out.push(json!({"apiVersion":"v1","kind":"Service",
            "metadata":{"name":format!("svc-{i}"),"namespace":format!("ns-{}", i % 100)},
            "spec":{"clusterIP":format!("198.19.{}.{}", i / 250, i % 250 + 1),"selector":{"app":format!("app-{}", i % 15)},
                "ports":[{"name":"http","port":80,"targetPort":"http"},{"name":"metrics","port":9090}]}}));
        out.push(json!({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
            "metadata":{"name":format!("svc-{i}-abc"),"namespace":format!("ns-{}", i % 100),
                "labels":{"kubernetes.io/service-name":format!("svc-{i}")}},
            "addressType":"IPv4",
            "endpoints":[
                {"addresses":[format!("198.18.{}.{}", i / 250, i % 250 + 2)],"conditions":{"ready":true},"nodeName":"node-1"},
                {"addresses":[format!("198.18.{}.{}", (i + 1) / 250 % 24, (i + 1) % 250 + 2)],"conditions":{"ready":true},"nodeName":"node-2"}],
            "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}));
    }
    for i in 0..900u32 {
        out.push(json!({"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy",
            "metadata":{"name":format!("np-{i}"),"namespace":format!("ns-{}", i % 100)},
            "spec":{"podSelector":{"matchLabels":{"app":format!("app-{}", i % 15)}},
                "ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"team":"t1"}},"podSelector":{"matchExpressions":[{"key":"tier","operator":"In","values":["frontend","backend"]}]}},
                                     {"ipBlock":{"cidr":"198.51.100.0/24","except":["198.51.100.128/25"]}}],
                            "ports":[{"port":"http"},{"port":9000,"endPort":9100}]}]}}));
    }
    out
}

/// The 10,000 objects as one JSON `kind: List` document.
pub(crate) fn mixed_json() -> String {
    let values = mixed_manifests();
    assert_eq!(values.len(), 10_000);
    serde_json::json!({"apiVersion":"v1","kind":"List","items":values}).to_string()
}
