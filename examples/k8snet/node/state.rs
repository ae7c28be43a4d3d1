//! What `node up` made, on disk, so that `node status` can show it and
//! `node down` can remove it, even after `up` crashed. Every namespace and
//! file is recorded *before* it is made.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Where the stack keeps its state, IPAM data, CNI cache and log.
pub(crate) const STATE_DIR: &str = "/run/k8snet-node";

/// The recorded state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct State {
    /// The daemon's process ID.
    pub pid: Option<u32>,
    /// `starting`, `ready`, `failed`, `stopped`.
    pub phase: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The manifest directories.
    pub manifests: Vec<PathBuf>,
    /// Whether the daemon watches them.
    pub watch: bool,
    /// Network namespaces made (or about to be).
    pub namespaces: BTreeSet<String>,
    /// Files and directories made outside [`STATE_DIR`].
    pub files: BTreeSet<PathBuf>,
    /// Node name → (namespace, addresses).
    pub nodes: Vec<NodeState>,
    /// Pod `ns/name` → (node, namespace, IPs).
    pub pods: Vec<PodState>,
}

/// A node as `status` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct NodeState {
    pub name: String,
    pub netns: String,
    pub addrs: Vec<String>,
}

/// A pod as `status` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PodState {
    pub name: String,
    pub node: String,
    pub netns: String,
    pub ips: Vec<String>,
    pub ports: Vec<String>,
}

impl State {
    /// The state file.
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Reads the state, `None` when there is none.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = Self::path(dir);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{}: not a k8snet node state", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the state atomically (a rename), so a crash never leaves
    /// half a file.
    pub(crate) fn save(&self, dir: &Path) -> anyhow::Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join("state.json.tmp");
        let mut f = fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        fs::rename(&tmp, Self::path(dir))?;
        Ok(())
    }
}
