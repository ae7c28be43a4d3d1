//! The server in a few lines: serve the zone of the manifests given on
//! loopback until SIGTERM/SIGINT.
//!
//! `cargo run --release -p k8snet-dns --features linux --example serve -- FILE ADDR:PORT [WORKERS]`

#[cfg(all(feature = "linux", target_os = "linux"))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use k8snet_dns::server::{Server, ServerConfig, Signals};
    use k8snet_dns::{LiveZone, Zone, ZoneConfig};
    use k8snet_model::{Cluster, Manifests};

    let mut args = std::env::args().skip(1);
    let file = args.next().ok_or("usage: serve FILE ADDR:PORT [WORKERS]")?;
    let addr = args
        .next()
        .ok_or("usage: serve FILE ADDR:PORT [WORKERS]")?
        .parse()?;
    let signals = Signals::block()?;
    let mut m = Manifests::new();
    m.load_path(&file);
    let zone = Zone::build(&Cluster::from_manifests(&m), &ZoneConfig::default())?;
    let mut cfg = ServerConfig::new(vec![addr]);
    if let Some(w) = args.next() {
        cfg.udp_workers = w.parse()?;
    }
    let server = Server::start(&cfg, LiveZone::new(zone), None)?;
    eprintln!("serving on {:?}", server.local_addrs());
    let signal = signals.wait()?;
    let t = std::time::Instant::now();
    server.shutdown();
    eprintln!("{signal:?}: stopped in {:?}", t.elapsed());
    Ok(())
}

#[cfg(not(all(feature = "linux", target_os = "linux")))]
fn main() {
    eprintln!("needs the `linux` feature");
}
