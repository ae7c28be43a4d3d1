//! `k8snet dns query -f … NAME [TYPE]` and `k8snet dns serve -f … --listen ADDR:PORT`.

use std::net::SocketAddr;
use std::process::ExitCode;

use k8snet::dns::{PodMode, Zone, ZoneConfig};
use k8snet::model::{Cluster, LoadOptions, LocalEndpoints, Manifests};

use crate::Inputs;

/// Arguments of `dns`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Answer one query from the zone built from the manifests (dig-like text).
    Query(QueryArgs),
    /// Serve the zone over UDP and TCP until SIGINT/SIGTERM (SIGHUP reloads).
    Serve(ServeArgs),
}

/// Zone settings shared by both subcommands.
#[derive(Debug, clap::Args)]
struct ZoneArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    zone: String,
    /// Pod records (`a-b-c-d.<ns>.pod.<zone>`): disabled, insecure or verified.
    #[arg(long, default_value = "disabled")]
    pods: PodMode,
    /// Record TTL in seconds (0..=3600).
    #[arg(long, default_value_t = k8snet::dns::DEFAULT_TTL)]
    ttl: u32,
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    #[command(flatten)]
    zone: ZoneArgs,
    /// The name to look up.
    name: String,
    /// The record type.
    #[arg(default_value = "A")]
    qtype: String,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    zone: ZoneArgs,
    /// Address to serve on, UDP and TCP; repeatable.
    #[arg(long, required = true)]
    listen: Vec<SocketAddr>,
    /// Upstream server for names outside the zone; repeatable.
    #[arg(long)]
    upstream: Vec<SocketAddr>,
    /// UDP workers per address (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
}

impl ZoneArgs {
    /// Loads the manifests (reporting problems on stderr) and builds the zone.
    ///
    /// Both `serve` and `query` (a lookup of what `serve` would answer)
    /// accept loopback and link-local endpoint addresses with a warning,
    /// since that is how a first local run points at local backends
    /// (design.md §3); `validate` still reports them as errors.
    fn build(&self) -> anyhow::Result<Zone> {
        let mut m =
            Manifests::with_options(LoadOptions::new().local_endpoints(LocalEndpoints::Warn));
        for f in &self.inputs.files {
            m.load_path(f);
        }
        report(&m);
        let cluster = Cluster::from_manifests(&m);
        let cfg = ZoneConfig::new(&self.zone).ttl(self.ttl).pods(self.pods);
        Ok(Zone::build(&cluster, &cfg)?)
    }
}

/// Prints warnings and errors: invalid objects are left out of the zone,
/// the rest is served.
fn report(m: &Manifests) {
    for w in m.warnings() {
        eprintln!("warning: {w}");
    }
    for e in m.errors() {
        eprintln!("error: {e} (left out)");
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Query(q) => {
            let zone = q.zone.build()?;
            print!("{}", zone.dig(&q.name, &q.qtype)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(s) => serve(s),
    }
}

#[cfg(feature = "linux")]
fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use k8snet::dns::LiveZone;
    use k8snet::dns::forward::{ForwardConfig, Forwarder};
    use k8snet::dns::server::{ServerConfig, SignalKind, Signals};

    // Before any thread starts, so that every thread inherits the mask.
    let signals = Signals::block()?;
    let zone = args.zone.build()?;
    eprintln!("zone {}: {} names", args.zone.zone, zone.stats().names);
    let mut cfg = ServerConfig::new(args.listen.clone());
    if let Some(w) = args.workers {
        cfg.udp_workers = w;
    }
    let forwarder = (!args.upstream.is_empty())
        .then(|| Forwarder::new(ForwardConfig::new(args.upstream.clone())));
    let server = k8snet::dns::server::Server::start(&cfg, LiveZone::new(zone), forwarder)
        .context("starting the DNS server")?;
    for a in server.local_addrs() {
        eprintln!("listening on {a} (udp, tcp)");
    }
    // SIGHUP rebuilds the zone from the files and swaps it in; SIGTERM
    // and SIGINT end the loop.
    while signals.wait()? == SignalKind::Hangup {
        match args.zone.build() {
            Ok(z) => {
                eprintln!("reloaded: {} names", z.stats().names);
                server.zone().store(z);
            }
            Err(e) => eprintln!("reload failed, keeping the old zone: {e:#}"),
        }
    }
    eprintln!("shutting down");
    server.shutdown();
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "linux"))]
fn serve(_: &ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`dns serve` needs the `linux` feature (cargo run --features linux …)")
}
