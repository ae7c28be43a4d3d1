//! Helpers shared by the command-line tests.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The `k8snet` example binary, which `cargo test` builds beside the tests.
pub(crate) fn k8snet() -> Command {
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    if exe.ends_with("deps") {
        exe.pop();
    }
    Command::new(exe.join("examples").join("k8snet"))
}

/// Runs `k8snet` with `args`, `stdin` piped in, and collects its output.
#[allow(dead_code)] // not every test binary pipes stdin
pub(crate) fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = k8snet()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
