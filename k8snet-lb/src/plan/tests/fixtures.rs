//! Manifests for the plan tests: two nodes in two zones, Service `shop/web`.

use super::super::*;
use k8snet_model::Manifests;

pub(crate) const READY: &str = "{ready: true, serving: true, terminating: false}";
pub(crate) const NOT_READY: &str = "{ready: false, serving: false, terminating: false}";
pub(crate) const TERMINATING: &str = "{ready: false, serving: true, terminating: true}";
pub(crate) const GONE: &str = "{ready: false, serving: false, terminating: true}";

const NODES: &str = "apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {topology.kubernetes.io/zone: zone-a}}
spec: {podCIDRs: [198.18.0.0/24]}
status: {addresses: [{type: InternalIP, address: 198.19.128.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {topology.kubernetes.io/zone: zone-b}}
spec: {podCIDRs: [198.18.1.0/24]}
status: {addresses: [{type: InternalIP, address: 198.19.128.2}]}
";

/// Service `shop/web`, ClusterIP 198.19.0.20, port `http` 80 -> 8080, plus
/// `extra` spec lines (indented two spaces; a later key wins).
pub(crate) fn svc(extra: &str) -> String {
    svc_p("[{name: http, port: 80, targetPort: 8080}]", extra)
}

/// `shop/web` with these `ports`.
pub(crate) fn svc_p(ports: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\nspec:\n  clusterIP: 198.19.0.20\n  ports: {ports}\n{extra}"
    )
}

const NODE_PORTS: &str = "[{name: http, port: 80, targetPort: 8080, nodePort: 30080}]";

pub(crate) fn node_port_svc(extra: &str) -> String {
    svc_p(NODE_PORTS, &format!("  type: NodePort\n{extra}"))
}

pub(crate) fn node_port_svc_named(name: &str) -> String {
    node_port_svc("")
        .replace("name: web,", &format!("name: {name},"))
        .replace("198.19.0.20", "198.19.0.99")
        .replace("30080", "30099")
}

/// A LoadBalancer `shop/web` with `ingress` as its status.
pub(crate) fn lb_svc(extra: &str, ingress: &str) -> String {
    format!(
        "{}status: {{loadBalancer: {{ingress: {ingress}}}}}\n",
        svc_p(NODE_PORTS, &format!("  type: LoadBalancer\n{extra}"))
    )
}

/// One endpoint (YAML flow mapping) on `node`, zone from the node.
pub(crate) fn ep(ip: &str, node: &str, conditions: &str) -> String {
    let zone = node.replace("node", "zone");
    format!("{{addresses: [{ip}], nodeName: {node}, zone: {zone}, conditions: {conditions}}}")
}

pub(crate) fn slice_named<S: AsRef<str>>(name: &str, eps: &[S], family: &str) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}\naddressType: {family}\nendpoints: [{}]\nports: [{{name: http, port: 8080, protocol: TCP}}]\n",
        eps.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ")
    )
}

pub(crate) fn slice<S: AsRef<str>>(eps: &[S]) -> String {
    slice_named("web-a", eps, "IPv4")
}

pub(crate) fn slice6<S: AsRef<str>>(eps: &[S]) -> String {
    slice_named("web-6", eps, "IPv6")
}

pub(crate) fn cluster(docs: &[String]) -> Cluster {
    let mut all = vec![NODES.to_string()];
    all.extend(docs.iter().cloned());
    let mut m = Manifests::new();
    m.load_str("test.yaml", &all.join("---\n"));
    let errors: Vec<String> = m.errors().iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    Cluster::from_manifests(&m)
}

/// The plan of node-a (zone-a).
pub(crate) fn plan_yaml(docs: &[String]) -> ServiceTable {
    let c = cluster(docs);
    plan(&c, &NodeContext::from_cluster(&c, "node-a").unwrap())
}

pub(crate) fn one(t: &ServiceTable) -> &ServicePort {
    assert_eq!(t.ports.len(), 1, "{t:#?}");
    &t.ports[0]
}

pub(crate) fn keys(p: Option<&Pool>) -> Vec<String> {
    p.map(|p| p.endpoints.iter().map(Endpoint::key).collect())
        .unwrap_or_default()
}
