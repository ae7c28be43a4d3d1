//! `k8snet`: the command line of the k8snet crates (see `shared/design.md` §3).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cni;
mod dns;
mod ingress;
mod lb;
#[cfg(feature = "linux")]
mod node;
mod policy;
mod validate;

/// Kubernetes node networking data plane: validate manifests, evaluate
/// policy, plan load balancing, serve DNS and Ingress.
#[derive(Debug, Parser)]
#[command(name = "k8snet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse, default and validate every object; one line per error.
    Validate(validate::Args),
    /// Evaluate network policy: probe verdicts, the connectivity matrix.
    Policy(policy::Args),
    /// Cluster DNS: answer a query from the zone, or serve it.
    Dns(dns::Args),
    /// Run a CNI configuration list as a runtime does (add, del, check, gc, status).
    Cni(cni::Args),
    /// Load balancing: build a Maglev table, plan a node's Service table.
    Lb(lb::Args),
    /// Ingress: the route a request takes, or serve the HTTP(S) proxy.
    Ingress(ingress::Args),
    /// The reference node stack: every crate composed in network namespaces.
    #[cfg(feature = "linux")]
    Node(node::Args),
}

/// `-f` inputs shared by the subcommands that read manifests.
#[derive(Debug, clap::Args)]
struct Inputs {
    /// A manifest file, a directory (read recursively) or `-` for stdin; repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
}

impl Inputs {
    fn load(&self) -> k8snet::model::Manifests {
        let mut m = k8snet::model::Manifests::new();
        for f in &self.files {
            m.load_path(f);
        }
        m
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Policy(args) => policy::run(&args),
        Command::Dns(args) => dns::run(&args),
        Command::Cni(args) => cni::run(&args),
        Command::Lb(args) => lb::run(&args),
        Command::Ingress(args) => ingress::run(&args),
        #[cfg(feature = "linux")]
        Command::Node(args) => node::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
