//! Fuzz the manifest loader: any bytes, as YAML or JSON, must give objects
//! or errors — never a panic — and whatever loads must save and load back
//! to equal objects.
#![no_main]

use k8snet_model::{Cluster, Manifests};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut m = Manifests::new();
    m.load_reader("fuzz", data);
    for e in m.errors() {
        let _ = e.to_string();
    }
    if m.objects().is_empty() {
        return;
    }
    let mut cluster = Cluster::from_manifests(&m);
    cluster.derive_missing_endpoint_slices();
    let yaml = m
        .to_yaml()
        .expect("the YAML writer never fails on our types");
    let mut again = Manifests::new();
    again.load_str("again", &yaml);
    let a: Vec<_> = m.objects().iter().map(|l| &l.object).collect();
    let b: Vec<_> = again.objects().iter().map(|l| &l.object).collect();
    assert_eq!(a, b, "round trip changed the objects:\n{yaml}");
});
