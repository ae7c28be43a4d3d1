//! `node up --dry-run` (and `up` without root): the whole plan as text —
//! namespaces, addresses and routes, each node's nftables (load balancer
//! and policy) as `nft` prints it, the DNS zone and the ingress routes —
//! then DNS and the ingress proxy served on loopback ports.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use k8snet::dns::server::{ServerConfig, SignalKind, Signals};
use k8snet::dns::{LiveZone, Zone};
use k8snet::ingress::proxy::{Proxy, ProxyConfig};
use k8snet::model::Object;
use k8snet::policy::{Options, PolicySet, RulesetOptions, ruleset};

use super::UpArgs;
use super::agent::{ingress, lb_table, zone_config};
use super::plan;

pub(super) fn run(args: &UpArgs, objects: Vec<Object>) -> anyhow::Result<ExitCode> {
    // Before any thread starts, so that every thread inherits the mask.
    let signals = Signals::block()?;
    let mut p = match plan::build(objects) {
        Ok(p) => p,
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    p.predict_pod_ips();
    println!("# k8snet node stack: dry run (nothing in the kernel changes)");
    for n in &p.notes {
        println!("# note: {n}");
    }
    println!("\n## topology (pod IPs as host-local would assign them)\n");
    print!("{}", p.topology_text());
    let set = PolicySet::compile(&p.cluster, &Options::default());
    let policy = k8snet_nft::render(&ruleset(&set, &RulesetOptions::default()));
    for n in &p.nodes {
        let table = lb_table(&p.cluster, &n.name)?;
        let mut layout = k8snet::lb::nftables::Layout::new();
        layout.sync(&table)?;
        println!("\n## node {}: nftables (namespace {})\n", n.name, n.netns);
        print!("{}", k8snet_nft::render(&layout.table()));
        print!("{policy}");
    }
    let zone = Zone::build(&p.cluster, &zone_config())?;
    let st = zone.stats();
    println!(
        "\n## DNS zone {}: {} names in {} shards, served on {} and {}",
        plan::ZONE,
        st.names,
        st.shards,
        plan::DNS_V4,
        plan::DNS_V6
    );
    let (router, upstreams) = ingress(&p.cluster);
    let rs = router.stats();
    println!(
        "## ingress: {} Ingresses, {} hosts, {} rules, {} certificates, {} upstreams",
        rs.ingresses,
        rs.hosts,
        rs.rules,
        rs.certificates,
        upstreams.len()
    );
    for r in router.reports() {
        println!("# ingress warning: {r}");
    }
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    let mut cfg = ServerConfig::new(vec![args.dns_listen]);
    cfg.udp_workers = 1;
    let dns = k8snet::dns::server::Server::start(&cfg, LiveZone::new(zone), None)
        .context("starting DNS on loopback")?;
    let mut pcfg = ProxyConfig::new(vec![args.http_listen]).tls_listen(vec![args.https_listen]);
    pcfg.workers = 1;
    let proxy =
        Proxy::start(pcfg, router, upstreams).context("starting the ingress proxy on loopback")?;
    let show = |a: &[SocketAddr]| {
        a.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("\nserving DNS on {} (udp, tcp)", show(dns.local_addrs()));
    println!(
        "serving the ingress proxy on {} (http) and {} (https)",
        show(proxy.local_addrs()),
        show(proxy.tls_local_addrs())
    );
    println!(
        "try: dig @{} -p {} <service>.<namespace>.svc.{} ; Ctrl-C stops",
        dns.local_addrs()[0].ip(),
        dns.local_addrs()[0].port(),
        plan::ZONE
    );
    use std::io::Write as _;
    std::io::stdout().flush()?;
    loop {
        if signals.wait()? != SignalKind::Hangup {
            break;
        }
    }
    proxy.shutdown();
    dns.shutdown();
    Ok(ExitCode::SUCCESS)
}
