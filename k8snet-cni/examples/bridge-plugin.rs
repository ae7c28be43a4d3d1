//! The bridge plugin as a bare process, for the crate's own kernel tests
//! (they kill it mid-ADD). Users run the root package's `k8snet-bridge`.

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    if std::io::stdin().read_to_end(&mut stdin).is_err() {
        std::process::exit(1);
    }
    let out = k8snet_cni::run_with(
        &k8snet_cni::linux::Bridge,
        |k| std::env::var(k).ok(),
        &stdin,
    );
    let _ = std::io::stdout().write_all(&out.stdout);
    std::process::exit(i32::from(out.status));
}
