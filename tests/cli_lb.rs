//! `k8snet lb maglev` and `k8snet lb plan`: the command-line contract of
//! design.md §3.

mod common;
use common::k8snet;

#[test]
fn maglev_reports_size_balance_and_build_time_as_json() {
    let out = k8snet()
        .args(["lb", "maglev", "--backends", "1000", "--size", "65537"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["size"], 65537);
    let mom = v["max_over_mean"].as_f64().unwrap();
    assert!((1.0..1.01).contains(&mom), "{v}");
    assert!(v["build_ns"].as_u64().unwrap() > 0);
    assert!(v.get("counts").is_none(), "counts only with --verbose");
}

#[test]
fn maglev_verbose_lists_weighted_counts() {
    let out = k8snet()
        .args([
            "lb",
            "maglev",
            "--backends",
            "2",
            "--size",
            "65537",
            "--weights",
            "1,2",
            "--verbose",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slots: Vec<u64> = v["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slots"].as_u64().unwrap())
        .collect();
    assert_eq!(slots, [21_846, 43_691]);
}

#[test]
fn maglev_refuses_a_size_that_is_not_prime() {
    let out = k8snet()
        .args(["lb", "maglev", "--backends", "3", "--size", "65536"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("size 65536 is not prime"), "{err}");
    assert!(out.stdout.is_empty());
}

const MANIFESTS: &str = "apiVersion: v1
kind: Node
metadata: {name: node-a}
spec: {podCIDRs: [198.18.0.0/24]}
status: {addresses: [{type: InternalIP, address: 198.19.128.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}}
spec: {nodeName: node-a, containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {phase: Running, podIP: 198.18.0.2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIP: 198.19.0.20
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]
";

fn plan(format: &str) -> std::process::Output {
    common::run_with_stdin(
        &[
            "lb", "plan", "-f", "-", "--node", "node-a", "--format", format,
        ],
        MANIFESTS,
    )
}

#[test]
fn plan_prints_the_nodes_service_table_as_text() {
    let out = plan("text");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("node node-a (198.19.128.1), 1 service ports"),
        "{text}"
    );
    assert!(
        text.contains("shop/web:http/TCP/v4  198.19.0.20:80"),
        "{text}"
    );
    assert!(
        text.contains("nodePort 30080 (Cluster policy) -> cluster pool"),
        "{text}"
    );
    // The endpoint was derived from the Pod (named target port resolved).
    assert!(text.contains("198.18.0.2:8080"), "{text}");
}

#[test]
fn plan_prints_json_with_format_json() {
    let out = plan("json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node"], "node-a");
    let port = &v["ports"][0];
    assert_eq!(port["node_port"], 30080);
    assert_eq!(port["cluster_pool"]["endpoints"][0]["ip"], "198.18.0.2");
    assert_eq!(port["cluster_pool"]["slots"].as_array().unwrap().len(), 31);
}
