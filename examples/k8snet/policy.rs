//! `k8snet policy eval -f … --probes P` and `k8snet policy matrix -f …`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use k8snet::model::Cluster;
use k8snet::policy::{
    ConnSet, Format, HostNetwork, Matrix, MatrixOptions, Options, PolicySet, SelfTraffic,
    parse_probes,
};

use crate::Inputs;

/// Arguments of `policy`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// The verdict of each probe, as a JSON array in probe order.
    Eval(EvalArgs),
    /// All-pairs connectivity of the pods and external address groups.
    Matrix(MatrixArgs),
}

/// The evaluation options (the corners the API leaves open).
#[derive(Debug, clap::Args)]
struct OptionArgs {
    /// NetworkPolicy ipBlocks never match pod addresses (Cilium, np-guard);
    /// by default they do, as the upstream e2e tests assert.
    #[arg(long)]
    ipblock_excludes_pods: bool,
    /// Treat host-network pods as pods (default: as node traffic).
    #[arg(long)]
    host_network_as_pods: bool,
    /// Evaluate a pod's traffic to itself (default: always allowed).
    #[arg(long)]
    evaluate_self_traffic: bool,
}

impl OptionArgs {
    fn options(&self) -> Options {
        let mut o = Options::default();
        o.ipblock_matches_pods = !self.ipblock_excludes_pods;
        if self.host_network_as_pods {
            o.host_network = HostNetwork::AsPod;
        }
        if self.evaluate_self_traffic {
            o.self_traffic = SelfTraffic::Evaluate;
        }
        o
    }
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// A YAML list of `{from, to, port, protocol}` (`-` for stdin); `from`
    /// and `to` are `ns/pod` or an IP, the protocol defaults to TCP.
    #[arg(long)]
    probes: PathBuf,
    #[command(flatten)]
    options: OptionArgs,
}

#[derive(Debug, clap::Args)]
struct MatrixArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv", "dot"])]
    format: String,
    /// Say why each part of each cell is allowed or denied.
    #[arg(long)]
    explain: bool,
    /// Only these protocols and ports, e.g. `TCP 80,443,UDP 53`.
    #[arg(long)]
    ports: Option<String>,
    /// Leave out the external address groups.
    #[arg(long)]
    pods_only: bool,
    #[command(flatten)]
    options: OptionArgs,
}

/// Runs `policy eval` or `policy matrix`.
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        PolicyCommand::Eval(a) => eval(a),
        PolicyCommand::Matrix(a) => matrix(a),
    }
}

/// Loads the manifests; an invalid object is an error here (dropping a
/// policy silently would change verdicts).
fn cluster(inputs: &Inputs) -> Result<Cluster, ExitCode> {
    let m = inputs.load();
    for w in m.warnings() {
        eprintln!("warning: {w}");
    }
    for e in m.errors() {
        eprintln!("{e}");
    }
    if m.errors().is_empty() {
        Ok(Cluster::from_manifests(&m))
    } else {
        Err(ExitCode::FAILURE)
    }
}

fn eval(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let text = if args.probes.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(&args.probes)
            .with_context(|| format!("reading {}", args.probes.display()))?
    };
    let probes = parse_probes(&text).with_context(|| args.probes.display().to_string())?;
    let cluster = match cluster(&args.inputs) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let set = PolicySet::compile(&cluster, &args.options.options());
    let mut results = Vec::with_capacity(probes.len());
    for (i, p) in probes.iter().enumerate() {
        results.push(set.probe(p).with_context(|| format!("probe {i}"))?);
    }
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(ExitCode::SUCCESS)
}

fn matrix(args: &MatrixArgs) -> anyhow::Result<ExitCode> {
    let format: Format = args.format.parse()?;
    let mut options = MatrixOptions::default();
    options.explain = args.explain;
    options.pods_only = args.pods_only;
    if let Some(p) = &args.ports {
        let ports: ConnSet = p.parse()?;
        if ports.is_empty() {
            bail!("--ports {p:?} selects nothing");
        }
        options.ports = Some(ports);
    }
    let cluster = match cluster(&args.inputs) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let set = PolicySet::compile(&cluster, &args.options.options());
    print!("{}", Matrix::build(&set, &options).render(format));
    Ok(ExitCode::SUCCESS)
}
