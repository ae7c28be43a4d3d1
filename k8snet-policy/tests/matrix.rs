//! The connectivity matrix and its four renderings.

use k8snet_model::{Cluster, Manifests};
use k8snet_policy::{ConnSet, Format, Matrix, MatrixOptions, Options, PolicySet, SelfTraffic};

fn set(options: &Options) -> PolicySet {
    let mut m = Manifests::new();
    m.load_str(
        "m.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec: {containers: [{name: c, ports: [{name: web, containerPort: 8080}]}]}
status: {podIP: 198.18.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: "y", labels: {pod: b}}
status: {podIP: 198.18.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {}}]
    ports: [{port: web}, {port: 9000, endPort: 9010, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: out, namespace: "y"}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}, {to: [{podSelector: {}, namespaceSelector: {}}]}]
"#,
    );
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    PolicySet::compile(&Cluster::from_manifests(&m), options)
}

fn matrix(options: &MatrixOptions) -> Matrix {
    Matrix::build(&set(&Options::default()), options)
}

#[test]
fn cells_are_exact_port_sets() {
    let m = matrix(&MatrixOptions::default());
    let names: Vec<String> = m.endpoints().iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "x/a",
            "y/b",
            "0.0.0.0-9.255.255.255",
            "10.0.0.0/8",
            "11.0.0.0-255.255.255.255"
        ]
    );
    assert_eq!(
        m.get("y/b", "x/a").unwrap().to_string(),
        "TCP 8080,UDP 9000-9010"
    );
    assert_eq!(m.get("x/a", "y/b").unwrap(), &ConnSet::all());
    assert!(m.get("10.0.0.0/8", "x/a").unwrap().is_empty());
    assert_eq!(m.get("y/b", "10.0.0.0/8").unwrap(), &ConnSet::all());
    assert!(m.get("y/b", "11.0.0.0-255.255.255.255").unwrap().is_empty());
    // Not computed: a pod to itself (always allowed), outside to outside.
    assert!(m.get("x/a", "x/a").is_none());
    assert!(m.get("10.0.0.0/8", "0.0.0.0-9.255.255.255").is_none());
}

#[test]
fn self_traffic_cells_appear_when_evaluated() {
    let mut o = Options::default();
    o.self_traffic = SelfTraffic::Evaluate;
    let m = Matrix::build(&set(&o), &MatrixOptions::default());
    // x/a's ingress admits only pods and port web/UDP range; itself included.
    assert_eq!(
        m.get("x/a", "x/a").unwrap().to_string(),
        "TCP 8080,UDP 9000-9010"
    );
}

#[test]
fn port_filter_restricts_cells() {
    let mut o = MatrixOptions::default();
    o.ports = Some("TCP 1-9000,UDP 9005".parse().unwrap());
    o.pods_only = true;
    let m = matrix(&o);
    assert_eq!(m.endpoints().len(), 2);
    assert_eq!(
        m.get("y/b", "x/a").unwrap().to_string(),
        "TCP 8080,UDP 9005"
    );
    assert_eq!(
        m.get("x/a", "y/b").unwrap().to_string(),
        "TCP 1-9000,UDP 9005"
    );
}

#[test]
fn renders_table_csv_json_dot() {
    let mut o = MatrixOptions::default();
    o.pods_only = true;
    let m = matrix(&o);
    assert_eq!(
        m.render(Format::Table),
        "from \\ to  x/a                     y/b\n\
         x/a        -                       All Connections\n\
         y/b        TCP 8080,UDP 9000-9010  -\n"
    );
    assert_eq!(
        m.render(Format::Csv),
        "src,dst,conn\nx/a,y/b,All Connections\ny/b,x/a,\"TCP 8080,UDP 9000-9010\"\n"
    );
    let json: serde_json::Value = serde_json::from_str(&m.render(Format::Json)).unwrap();
    assert_eq!(
        json["endpoints"][1],
        serde_json::json!({"name": "y/b", "kind": "pod"})
    );
    assert_eq!(
        json["connections"][1],
        serde_json::json!({"src": "y/b", "dst": "x/a", "conn": "TCP 8080,UDP 9000-9010"})
    );
    let dot = m.render(Format::Dot);
    assert!(dot.starts_with("digraph k8snet_policy {\n"), "{dot}");
    assert!(dot.contains("  subgraph \"cluster_x\" {\n    label=\"x\";\n    \"x/a\" [shape=box, label=\"a\"];\n  }\n"), "{dot}");
    assert!(
        dot.contains("  \"y/b\" -> \"x/a\" [label=\"TCP 8080,UDP 9000-9010\"];\n"),
        "{dot}"
    );
    assert!(dot.ends_with("}\n"));
}

#[test]
fn explained_cells_group_ports_by_reason() {
    let mut o = MatrixOptions::default();
    o.pods_only = true;
    o.explain = true;
    let m = matrix(&o);
    let (_, _, cell) = m.cells().find(|(i, j, _)| (*i, *j) == (1, 0)).unwrap();
    let lines: Vec<String> = cell
        .segments
        .iter()
        .map(|s| format!("{} {} | {} | {}", s.verdict, s.conns, s.egress, s.ingress))
        .collect();
    assert_eq!(
        lines,
        [
            "allow TCP 8080,UDP 9000-9010 | NetworkPolicy y/out rule 1 (Allow) | NetworkPolicy x/web rule 0 (Allow)",
            "deny SCTP 1-65535,TCP 1-8079,8081-65535,UDP 1-8999,9011-65535 | NetworkPolicy y/out rule 1 (Allow) | isolated by NetworkPolicy x/web",
        ]
    );
    let csv = m.render(Format::Csv);
    assert!(
        csv.starts_with("src,dst,conn,verdict,egress,ingress\n"),
        "{csv}"
    );
    let table = m.render(Format::Table);
    assert!(
        table.contains("\ny/b => x/a:\n  allow TCP 8080,UDP 9000-9010: egress: "),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&m.render(Format::Json)).unwrap();
    assert_eq!(json["connections"][1]["explanation"][1]["verdict"], "deny");
    assert!("yaml".parse::<Format>().is_err());
}
