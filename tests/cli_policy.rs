//! `k8snet policy eval|matrix`: the command-line contract of design.md §3.

use std::path::PathBuf;
use std::process::Output;

mod common;

fn good() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/manifests/good")
}

/// Runs `k8snet` with `stdin` piped in.
fn run(args: &[&str], stdin: &str) -> Output {
    common::run_with_stdin(args, stdin)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const PROBES: &str = "
- {from: shop/api-0, to: shop/web-0, port: 8080}
- {from: 203.0.113.9, to: shop/web-0, port: 8080}
- {from: shop/web-0, to: 198.18.0.3, port: 53, protocol: UDP}
- {from: 203.0.113.9, to: \"fd00:18::2\", port: 80, protocol: SCTP}
";

#[test]
fn eval_prints_a_json_array_in_probe_order() {
    let dir = good();
    let out = run(
        &[
            "policy",
            "eval",
            "-f",
            dir.to_str().unwrap(),
            "--probes",
            "-",
        ],
        PROBES,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = serde_json::json!([
        {"from": "shop/api-0", "to": "shop/web-0", "port": 8080, "protocol": "TCP", "verdict": "allow",
         "reason": "egress from shop/api-0: no policy applies (default allow); ingress to shop/web-0: NetworkPolicy shop/web-ingress rule 0 (Allow)"},
        {"from": "203.0.113.9", "to": "shop/web-0", "port": 8080, "protocol": "TCP", "verdict": "deny",
         "reason": "ingress to shop/web-0: isolated by NetworkPolicy shop/web-ingress; no rule admits TCP 8080 from 203.0.113.9"},
        {"from": "shop/web-0", "to": "198.18.0.3", "port": 53, "protocol": "UDP", "verdict": "allow",
         "reason": "egress from shop/web-0: no policy applies (default allow); ingress to shop/api-0 (198.18.0.3): no policy applies (default allow)"},
        {"from": "203.0.113.9", "to": "fd00:18::2", "port": 80, "protocol": "SCTP", "verdict": "deny",
         "reason": "ingress to shop/web-0 (fd00:18::2): isolated by NetworkPolicy shop/web-ingress; no rule admits SCTP 80 from 203.0.113.9"},
    ]);
    assert_eq!(v, want);
    // Keys in the contract's order.
    let stdout = text(&out.stdout);
    let keys = [
        "\"from\"",
        "\"to\"",
        "\"port\"",
        "\"protocol\"",
        "\"verdict\"",
        "\"reason\"",
    ];
    let pos: Vec<usize> = keys.iter().map(|k| stdout.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{stdout}");
}

#[test]
fn eval_reads_a_probe_file_and_refuses_unknown_pods() {
    let probes = std::env::temp_dir().join(format!("k8snet-probes-{}.yaml", std::process::id()));
    std::fs::write(&probes, "- {from: shop/nope, to: shop/web-0, port: 80}\n").unwrap();
    let dir = good();
    let out = run(
        &[
            "policy",
            "eval",
            "-f",
            dir.to_str().unwrap(),
            "--probes",
            probes.to_str().unwrap(),
        ],
        "",
    );
    let _ = std::fs::remove_file(&probes);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("probe 0: unknown pod shop/nope"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn eval_rejects_bad_probes_and_invalid_manifests() {
    let dir = good();
    let out = run(
        &[
            "policy",
            "eval",
            "-f",
            dir.to_str().unwrap(),
            "--probes",
            "-",
        ],
        "- {from: shop/web-0, to: shop/api-0, port: 80, protocol: ICMP}\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid probe list"),
        "{}",
        text(&out.stderr)
    );
    // An invalid object would change verdicts if it were dropped: exit 1.
    let broken = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/manifests/broken");
    let out = run(
        &[
            "policy",
            "eval",
            "-f",
            broken.to_str().unwrap(),
            "--probes",
            "-",
        ],
        "[]",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("NetworkPolicy shop/bad-cidr"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn matrix_in_every_format() {
    let dir = good();
    let dir = dir.to_str().unwrap();
    let table = run(&["policy", "matrix", "-f", dir], "");
    assert!(table.status.success(), "{}", text(&table.stderr));
    assert_eq!(
        text(&table.stdout),
        "from \\ to   shop/api-0       shop/web-0      0.0.0.0/0        ::/0\n\
         shop/api-0  -                TCP 8080        All Connections  All Connections\n\
         shop/web-0  All Connections  -               All Connections  All Connections\n\
         0.0.0.0/0   All Connections  No Connections  -                -\n\
         ::/0        All Connections  No Connections  -                -\n"
    );
    let csv = run(
        &[
            "policy",
            "matrix",
            "-f",
            dir,
            "--format",
            "csv",
            "--pods-only",
        ],
        "",
    );
    assert_eq!(
        text(&csv.stdout),
        "src,dst,conn\nshop/api-0,shop/web-0,TCP 8080\nshop/web-0,shop/api-0,All Connections\n"
    );
    let json = run(
        &[
            "policy",
            "matrix",
            "-f",
            dir,
            "--format",
            "json",
            "--explain",
        ],
        "",
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["endpoints"][2],
        serde_json::json!({"name": "0.0.0.0/0", "kind": "external"})
    );
    assert_eq!(
        v["connections"][0]["explanation"][0]["ingress"],
        "NetworkPolicy shop/web-ingress rule 0 (Allow)"
    );
    let dot = run(
        &[
            "policy", "matrix", "-f", dir, "--format", "dot", "--ports", "TCP 8080",
        ],
        "",
    );
    let dot = text(&dot.stdout);
    assert!(
        dot.contains("\"shop/api-0\" -> \"shop/web-0\" [label=\"TCP 8080\"];"),
        "{dot}"
    );
    assert!(!dot.contains("\"0.0.0.0/0\" -> \"shop/web-0\""), "{dot}");
}

#[test]
fn matrix_rejects_unknown_formats() {
    let dir = good();
    let out = run(
        &[
            "policy",
            "matrix",
            "-f",
            dir.to_str().unwrap(),
            "--format",
            "yaml",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("yaml"));
}
