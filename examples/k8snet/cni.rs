//! `k8snet cni add|del|check|gc|status`: run a CNI configuration list the
//! way a container runtime does (libcni's duties: plugin chaining, the
//! result cache in libcni's format), like `cnitool`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use k8snet::cni::{Attachment, NetConfList, Runtime, RuntimeConf, parse_args};

/// Arguments of `cni`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Attach: ADD through every plugin, print the result; a failed ADD is
    /// followed by a DEL, as the spec asks of runtimes.
    Add(Attach),
    /// Detach: DEL through every plugin in reverse, with the cached result.
    Del(Attach),
    /// Verify an attachment (CHECK, from 0.4.0).
    Check(Attach),
    /// Garbage-collect: DEL cached attachments not listed, then GC (1.1.0).
    Gc(GcArgs),
    /// Ask every plugin whether it is ready (STATUS, 1.1.0).
    Status(Common),
}

/// What every subcommand needs.
#[derive(Debug, clap::Args)]
struct Common {
    /// The network configuration list (`.conflist`) or single `.conf`.
    #[arg(long = "conf", short = 'c')]
    conf: PathBuf,
    /// Where plugins are looked up (`:`-separated); default `$CNI_PATH`, else
    /// the directory of this program (where the k8snet plugins are built).
    #[arg(long)]
    cni_path: Option<String>,
    /// The cache directory (results under `results/`), libcni's format.
    #[arg(long, default_value = "/var/lib/cni")]
    cache_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
struct Attach {
    #[command(flatten)]
    common: Common,
    /// The container's network namespace path (optional for DEL).
    #[arg(long)]
    netns: Option<PathBuf>,
    /// The container ID; default: derived from the netns path.
    #[arg(long)]
    container_id: Option<String>,
    /// The interface inside the container.
    #[arg(long, default_value = "eth0")]
    ifname: String,
    /// `CNI_ARGS` (`K=V;K2=V2`).
    #[arg(long, default_value = "")]
    args: String,
    /// Capability arguments as a JSON object (`{"portMappings": [...]}`).
    #[arg(long)]
    capability_args: Option<String>,
}

#[derive(Debug, clap::Args)]
struct GcArgs {
    #[command(flatten)]
    common: Common,
    /// A valid attachment, `CONTAINERID/IFNAME`; repeatable. None listed:
    /// every cached attachment of the network is deleted.
    #[arg(long = "valid")]
    valid: Vec<String>,
}

impl Common {
    fn load(&self) -> anyhow::Result<(NetConfList, Runtime)> {
        let bytes = std::fs::read(&self.conf)
            .with_context(|| format!("reading {}", self.conf.display()))?;
        let list =
            NetConfList::from_slice(&bytes).with_context(|| self.conf.display().to_string())?;
        let path = plugin_path(self.cni_path.as_deref());
        Ok((list, Runtime::new(path, &self.cache_dir)))
    }
}

/// Where CNI plugins are looked up: `explicit` (`:`-separated), else
/// `$CNI_PATH`, else the directory of this program (where cargo builds the
/// `k8snet-*` plugin examples).
pub(crate) fn plugin_path(explicit: Option<&str>) -> Vec<PathBuf> {
    let from_env = std::env::var_os("CNI_PATH");
    match explicit.map(std::ffi::OsStr::new).or(from_env.as_deref()) {
        Some(p) => std::env::split_paths(p).collect(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
            .into_iter()
            .collect(),
    }
}

impl Attach {
    fn runtime_conf(&self) -> anyhow::Result<RuntimeConf> {
        let container_id = match &self.container_id {
            Some(id) => id.clone(),
            // cnitool hashes the netns path; any stable valid ID will do.
            None => {
                let p = self
                    .netns
                    .as_ref()
                    .context("--container-id or --netns is required")?;
                let h = p
                    .to_string_lossy()
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                    });
                format!("{h:016x}")
            }
        };
        let capability_args = match &self.capability_args {
            Some(text) => {
                serde_json::from_str(text).context("--capability-args must be a JSON object")?
            }
            None => serde_json::Map::new(),
        };
        Ok(RuntimeConf {
            container_id,
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args: parse_args(&self.args)?,
            capability_args,
        })
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Add(a) => {
            let (list, rt) = a.common.load()?;
            let conf = a.runtime_conf()?;
            match rt.add_list(&list, &conf) {
                Ok(result) => {
                    println!("{}", result.to_json_string(list.version()));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    if let Err(cleanup) = rt.del_list(&list, &conf) {
                        eprintln!("warning: DEL after the failed ADD: {cleanup}");
                    }
                    Err(anyhow::Error::new(e).context("ADD failed"))
                }
            }
        }
        Command::Del(a) => {
            let (list, rt) = a.common.load()?;
            rt.del_list(&list, &a.runtime_conf()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(a) => {
            let (list, rt) = a.common.load()?;
            rt.check_list(&list, &a.runtime_conf()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Gc(g) => {
            let (list, rt) = g.common.load()?;
            let valid = g
                .valid
                .iter()
                .map(|v| {
                    let (c, i) = v
                        .split_once('/')
                        .with_context(|| format!("--valid {v:?}: want CONTAINERID/IFNAME"))?;
                    Ok(Attachment {
                        container_id: c.to_owned(),
                        ifname: i.to_owned(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            rt.gc_list(&list, &valid)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(c) => {
            let (list, rt) = c.load()?;
            rt.status_list(&list)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
