//! `k8snet validate`: the command-line contract of design.md §3.

use std::path::PathBuf;

mod common;
use common::k8snet;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/manifests")
}

#[test]
fn good_manifests_exit_zero() {
    let out = k8snet()
        .args(["validate", "-f"])
        .arg(examples().join("good"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn broken_manifests_print_one_line_per_error_and_exit_one() {
    let out = k8snet()
        .args(["validate", "-f"])
        .arg(examples())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = examples().join("broken/broken.yaml");
    let file = file.display();
    for want in [
        format!("{file}:2: Service default/web: spec.ports[1].port: 70000 is not in 1..=65535"),
        format!("{file}:12: Service default/proto: spec.ports[0].protocol: unknown variant `ICMP`"),
        format!(
            "{file}:20: NetworkPolicy shop/bad-cidr: spec.ingress[0].from[0].ipBlock.except[0]"
        ),
        format!("{file}:35: Pod default/Bad_Name: metadata.name"),
        format!("{file}:40: "),
        format!("warning: {file}:31: skipping ConfigMap"),
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(&want)),
            "missing a line starting with {want:?} in:\n{stderr}"
        );
    }
}

#[test]
fn stdin_is_read_with_dash() {
    use std::io::Write;
    let mut child = k8snet()
        .args(["validate", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("<stdin>:1: Namespace Bad: metadata.name"),
        "{stderr}"
    );
}
