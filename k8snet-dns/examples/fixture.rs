//! Writes the benchmark cluster and its equivalents for the side-by-side
//! run (`benches/compare/dns.sh`):
//!
//! - `cluster.json`: the Services and EndpointSlices, as a `kind: List`
//!   that `k8snet dns serve -f` loads;
//! - `cluster.local.zone`: the same zone as a zone file, for NSD (the
//!   records `Zone` lists, reverse names left out);
//! - `queries.txt`: a dnsperf query file, 60 % A, 10 % AAAA, 10 % SRV,
//!   20 % NXDOMAIN, in a fixed shuffled order.
//!
//! `cargo run --release -p k8snet-dns --example fixture -- DIR [SERVICES]`

use std::fmt::Write as _;
use std::path::PathBuf;

use k8snet_dns::{Zone, ZoneConfig};
use k8snet_model::Cluster;

#[path = "../benches/common/mod.rs"]
mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: fixture DIR [SERVICES]")?);
    let services: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    std::fs::create_dir_all(&dir)?;
    let f = common::fixture(services, 10);

    let items: Vec<_> = f.objects.iter().map(|o| o.to_value()).collect();
    let list = serde_json_list(&items);
    std::fs::write(dir.join("cluster.json"), list)?;

    let cluster = Cluster::from_objects(f.objects.clone());
    let zone = Zone::build(&cluster, &ZoneConfig::default().serial(1))?;
    let mut text = String::from("$ORIGIN cluster.local.\n");
    for line in zone.to_string().lines() {
        let owner = line.split_whitespace().next().unwrap_or_default();
        if owner.ends_with("cluster.local.") {
            text.push_str(line);
            text.push('\n');
        }
    }
    std::fs::write(dir.join("cluster.local.zone"), text)?;

    // A fixed pseudo-random order (xorshift), 100,000 queries.
    let mut q = String::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pick = (x >> 32) as usize;
        let (names, t) = match x % 10 {
            0..=5 => (&f.a, "A"),
            6 => (&f.aaaa, "AAAA"),
            7 => (&f.srv, "SRV"),
            _ => (&f.nx, "A"),
        };
        let _ = writeln!(q, "{} {t}", names[pick % names.len()]);
    }
    std::fs::write(dir.join("queries.txt"), q)?;
    eprintln!(
        "{}: {} services, {} names",
        dir.display(),
        services,
        zone.stats().names
    );
    Ok(())
}

/// `{"apiVersion":"v1","kind":"List","items":[…]}` without a JSON crate:
/// each item is already a JSON value and prints as JSON.
fn serde_json_list(items: &[impl std::fmt::Display]) -> String {
    let mut s = String::from("{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{item}");
    }
    s.push_str("]}");
    s
}
