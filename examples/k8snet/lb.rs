//! `k8snet lb maglev …` and `k8snet lb plan -f … --node NAME`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use k8snet::lb::hash::{Backend, ConsistentHash, Maglev};
use k8snet::lb::{NodeContext, plan};
use k8snet::model::Cluster;

use crate::Inputs;

/// Arguments of `lb`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: LbCommand,
}

#[derive(Debug, Subcommand)]
enum LbCommand {
    /// Build a Maglev table and report its balance (JSON).
    Maglev(MaglevArgs),
    /// The Service table of one node.
    Plan(PlanArgs),
}

#[derive(Debug, clap::Args)]
struct MaglevArgs {
    /// Number of backends (keys `backend-00000`, `backend-00001`, …).
    #[arg(long)]
    backends: u32,
    /// Table size: a prime (65537 is the paper's and Envoy's default).
    #[arg(long, default_value_t = Maglev::DEFAULT_SIZE)]
    size: u32,
    /// Comma-separated weights, one per backend (default: all 1).
    #[arg(long, value_delimiter = ',')]
    weights: Vec<u32>,
    /// Add the slot count of every backend.
    #[arg(long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// The node to plan for (its IPs, zone and local endpoints).
    #[arg(long)]
    node: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Cluster (pod) CIDRs; default: the union of the Nodes' podCIDRs.
    #[arg(long = "cluster-cidr")]
    cluster_cidrs: Vec<String>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        LbCommand::Maglev(a) => maglev(a),
        LbCommand::Plan(a) => plan_cmd(a),
    }
}

fn maglev(a: &MaglevArgs) -> anyhow::Result<ExitCode> {
    if !a.weights.is_empty() && a.weights.len() != a.backends as usize {
        bail!(
            "--weights has {} values for {} backends",
            a.weights.len(),
            a.backends
        );
    }
    let backends: Vec<Backend> = (0..a.backends)
        .map(|i| {
            Backend::weighted(
                format!("backend-{i:05}"),
                a.weights.get(i as usize).copied().unwrap_or(1),
            )
        })
        .collect();
    let t0 = Instant::now();
    let table = Maglev::new(a.size, backends)?;
    let build_ns = t0.elapsed().as_nanos();
    let counts = table.counts();
    let total_w: f64 = table.backends().iter().map(|b| f64::from(b.weight)).sum();
    let max_over_mean = counts
        .iter()
        .zip(table.backends())
        .map(|(c, b)| f64::from(*c) / (f64::from(a.size) * f64::from(b.weight) / total_w))
        .fold(0.0, f64::max);
    let mut out = serde_json::json!({
        "size": a.size,
        "backends": a.backends,
        "max_over_mean": max_over_mean,
        "min_slots": counts.iter().min(),
        "max_slots": counts.iter().max(),
        "build_ns": build_ns,
    });
    if a.verbose {
        out["counts"] = table
            .backends()
            .iter()
            .zip(&counts)
            .map(|(b, c)| serde_json::json!({"backend": b.key, "weight": b.weight, "slots": c}))
            .collect();
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

fn plan_cmd(a: &PlanArgs) -> anyhow::Result<ExitCode> {
    let m = a.inputs.load();
    for e in m.errors() {
        eprintln!("skipped: {e}");
    }
    let mut cluster = Cluster::from_manifests(&m);
    cluster.derive_missing_endpoint_slices();
    let mut node = match NodeContext::from_cluster(&cluster, &a.node) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("warning: {e}; planning without node IPs or zone");
            NodeContext::new(&a.node)
        }
    };
    if !a.cluster_cidrs.is_empty() {
        node.cluster_cidrs = a
            .cluster_cidrs
            .iter()
            .map(|c| c.parse().with_context(|| format!("--cluster-cidr {c:?}")))
            .collect::<anyhow::Result<_>>()?;
    }
    let table = plan(&cluster, &node);
    match a.format {
        Format::Text => print!("{table}"),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&table).context("encoding the table")?
        ),
    }
    Ok(ExitCode::SUCCESS)
}
