//! The running stack: brings the plan up in the kernel, keeps it in step
//! with the manifests (`--watch`), and takes everything down on SIGTERM.
//!
//! Bringing up and updating are the same operation, [`Stack::reconcile`]:
//! from what runs and a new set of objects it computes a new plan (keeping
//! the IPs IPAM gave and the ClusterIPs allocated before), tears down the
//! pods that went away or moved, sets up the new ones, and sends the new
//! snapshot to every node's agent with the list of objects that changed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use k8snet::dns::server::{SignalKind, Signals};
use k8snet::model::{Manifests, NsName, Object, ObjectRef};

use super::agent::{Applied, NodeAgent};
use super::kernel::{del_netns, make_fabric, make_node};
use super::plan::{self, Plan, PodPlan, assign_pod_ips};
use super::pods::{Cni, port_text, write_resolv_conf};
use super::servers::PodServers;
use super::state::{NodeState, PodState, State};

/// Loads the manifests: every object valid, or the errors.
pub(crate) fn load(files: &[PathBuf]) -> Result<Vec<Object>, Vec<String>> {
    let mut m = Manifests::new();
    for f in files {
        m.load_path(f);
    }
    for w in m.warnings() {
        tracing::warn!("{w}");
    }
    if !m.errors().is_empty() {
        return Err(m.errors().iter().map(ToString::to_string).collect());
    }
    Ok(m.into_objects())
}

/// What runs.
pub(crate) struct Stack {
    dir: PathBuf,
    pub state: State,
    plan: Option<Plan>,
    cni: Cni,
    servers: PodServers,
    agents: Vec<NodeAgent>,
}

impl Stack {
    /// Makes the fabric and the node namespaces of `plan`, then the pods
    /// and the node agents.
    pub(crate) fn up(dir: &Path, mut state: State, objects: Vec<Object>) -> anyhow::Result<Self> {
        let first = plan::build(objects.clone()).map_err(errors)?;
        let cni = Cni::new(dir)?;
        make_fabric(&mut state, dir)?;
        for n in &first.nodes {
            make_node(&mut state, dir, &first, n)?;
        }
        state.nodes = first
            .nodes
            .iter()
            .map(|n| NodeState {
                name: n.name.clone(),
                netns: n.netns.clone(),
                addrs: n.ips().iter().map(ToString::to_string).collect(),
            })
            .collect();
        state.save(dir)?;
        let mut stack = Self {
            dir: dir.to_owned(),
            state,
            plan: None,
            cni,
            servers: PodServers::new()?,
            agents: Vec::new(),
        };
        stack.reconcile(objects)?;
        Ok(stack)
    }

    /// Brings what runs in line with `objects`.
    pub(crate) fn reconcile(&mut self, mut objects: Vec<Object>) -> anyhow::Result<Applied> {
        if let Some(old) = &self.plan {
            carry_over(old, &mut objects);
        }
        let mut next = plan::build(objects).map_err(errors)?;
        if let Some(old) = &self.plan
            && old.nodes != next.nodes
        {
            bail!(
                "the Nodes changed: that needs `k8snet node down` and `up` again (kept the running stack)"
            );
        }
        let old_pods: BTreeMap<NsName, PodPlan> = self
            .plan
            .as_ref()
            .map(|p| p.pods.iter().map(|x| (x.key.clone(), x.clone())).collect())
            .unwrap_or_default();
        let new_pods: BTreeMap<NsName, PodPlan> = next
            .pods
            .iter()
            .map(|x| (x.key.clone(), x.clone()))
            .collect();
        // Gone or moved: torn down first, so a moved pod's namespace is free.
        for (key, old) in &old_pods {
            if new_pods.get(key).is_none_or(|n| !same_sandbox(old, n)) {
                self.remove_pod(old)?;
            }
        }
        for (key, pod) in &new_pods {
            if old_pods.get(key).is_some_and(|o| same_sandbox(o, pod)) {
                continue;
            }
            let node = next.nodes[pod.node].clone();
            if !pod.host_network {
                let ips = self.cni.add(&mut self.state, &self.dir, &node, pod)?;
                assign_pod_ips(&mut next.cluster, key, &ips);
            }
            self.servers.start(&pod.netns, key, &pod.ports)?;
            write_resolv_conf(&mut self.state, &self.dir, &next.cluster, pod)?;
        }
        next.rederive_all();
        self.state.pods = next
            .pods
            .iter()
            .map(|p| PodState {
                name: p.key.to_string(),
                node: next.nodes[p.node].name.clone(),
                netns: p.netns.clone(),
                ips: next
                    .cluster
                    .pod(&p.key)
                    .map(|x| x.ips().iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
                ports: p.ports.iter().map(port_text).collect(),
            })
            .collect();
        self.state.save(&self.dir)?;

        let snapshot = Arc::new(next.cluster.clone());
        let mut applied = Applied::default();
        if self.agents.is_empty() {
            for n in &next.nodes {
                self.agents.push(NodeAgent::start(n, snapshot.clone())?);
            }
        } else {
            let changed = self
                .plan
                .as_ref()
                .map(|old| changed_refs(&old.cluster.objects(), &next.cluster.objects()));
            for a in &self.agents {
                let r = a
                    .update(snapshot.clone(), changed.clone())
                    .with_context(|| format!("node {}", a.name))?;
                applied.lb = applied.lb.max(r.lb);
                applied.policy = applied.policy.max(r.policy);
                applied.dns = applied.dns.max(r.dns);
                applied.ingress = applied.ingress.max(r.ingress);
            }
        }
        self.plan = Some(next);
        Ok(applied)
    }

    fn remove_pod(&mut self, pod: &PodPlan) -> anyhow::Result<()> {
        self.servers.stop(&pod.key);
        if pod.host_network {
            return Ok(());
        }
        let plan = self.plan.as_ref().context("no plan")?;
        let node = plan.nodes[pod.node].clone();
        if let Err(e) = self.cni.del(&node, pod) {
            tracing::warn!("{e:#}");
        }
        let etc = Path::new("/etc/netns").join(&pod.netns);
        let _ = std::fs::remove_dir_all(&etc);
        self.state.files.remove(&etc);
        self.state.namespaces.remove(&pod.netns);
        self.state.save(&self.dir)?;
        Ok(())
    }

    /// Stops everything and removes every namespace and file it made.
    pub(crate) fn down(mut self) {
        for a in self.agents.drain(..) {
            a.stop();
        }
        if let Some(plan) = self.plan.take() {
            for p in &plan.pods {
                self.servers.stop(&p.key);
            }
        }
        remove_all(&self.state);
    }

    /// A one-line summary for the log.
    pub(crate) fn summary(&self) -> String {
        let Some(p) = &self.plan else {
            return "nothing".into();
        };
        format!(
            "{} nodes, {} pods, {} services",
            p.nodes.len(),
            p.pods.len(),
            p.cluster.services().count()
        )
    }
}

/// Removes what `state` records: namespaces, files, the state directory
/// is left to the caller.
pub(crate) fn remove_all(state: &State) {
    for ns in state.namespaces.iter().rev() {
        if let Err(e) = del_netns(ns) {
            tracing::warn!("{e:#}");
        }
    }
    for f in &state.files {
        // Only what we wrote under /etc/netns.
        if f.starts_with("/etc/netns/") {
            let _ = std::fs::remove_dir_all(f);
        }
    }
    if state.files.contains(Path::new("/etc/netns")) {
        // Made by us; left alone if something else put files there since.
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

fn errors(list: Vec<String>) -> anyhow::Error {
    anyhow::anyhow!("{}", list.join("\n"))
}

/// Whether two plans of a pod can share one sandbox.
fn same_sandbox(a: &PodPlan, b: &PodPlan) -> bool {
    a.node == b.node
        && a.netns == b.netns
        && a.host_network == b.host_network
        && a.ports == b.ports
        && a.host_ports == b.host_ports
}

/// Keeps what the running stack assigned: pod IPs from IPAM and allocated
/// ClusterIPs and node ports, for objects whose manifests leave them out.
fn carry_over(old: &Plan, objects: &mut [Object]) {
    for o in objects.iter_mut() {
        match o {
            Object::Pod(p) if !p.spec.host_network => {
                let key = NsName::new(p.metadata.namespace_or_default(), p.metadata.name.clone());
                // Only for a pod staying on its node: a moved pod gets new IPs.
                let same_node = |x: &PodPlan| {
                    p.spec
                        .node_name
                        .as_deref()
                        .is_none_or(|n| n == old.nodes[x.node].name)
                };
                let Some(running) = old.cluster.pod(&key) else {
                    continue;
                };
                if !old
                    .pods
                    .iter()
                    .any(|x| x.key == key && !x.host_network && same_node(x))
                {
                    continue;
                }
                // What kubelet reported stays unless the manifest says otherwise.
                if p.ips().is_empty() {
                    p.status.pod_ips = running.status.pod_ips.clone();
                    p.status.pod_ip = running.status.pod_ip.clone();
                }
                if p.status.phase.is_none() {
                    p.status.phase = running.status.phase;
                }
                if p.status.conditions.is_empty() {
                    p.status.conditions = running.status.conditions.clone();
                }
            }
            Object::Service(s) => {
                let key = NsName::new(s.metadata.namespace_or_default(), s.metadata.name.clone());
                let Some(running) = old.cluster.service(&key) else {
                    continue;
                };
                if s.spec.cluster_ip.is_none() && s.spec.cluster_ips.is_empty() {
                    s.spec.cluster_ip = running.spec.cluster_ip.clone();
                    s.spec.cluster_ips = running.spec.cluster_ips.clone();
                }
                for p in &mut s.spec.ports {
                    if p.node_port.is_none() {
                        p.node_port = running
                            .spec
                            .ports
                            .iter()
                            .find(|r| r.port == p.port && r.protocol == p.protocol)
                            .and_then(|r| r.node_port);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The objects added, changed or removed between two snapshots.
fn changed_refs(old: &[Object], new: &[Object]) -> Vec<ObjectRef> {
    let old: BTreeMap<ObjectRef, &Object> = old.iter().map(|o| (o.reference(), o)).collect();
    let new: BTreeMap<ObjectRef, &Object> = new.iter().map(|o| (o.reference(), o)).collect();
    let keys: BTreeSet<&ObjectRef> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

/// A fingerprint of the manifest files (names, sizes, modification times).
pub(crate) fn fingerprint(files: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    fn walk(p: &Path, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        if meta.is_dir() {
            let Ok(rd) = std::fs::read_dir(p) else { return };
            let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            for e in entries {
                walk(&e, out);
            }
        } else {
            out.push((p.to_owned(), meta.len(), meta.modified().ok()));
        }
    }
    let mut out = Vec::new();
    for f in files {
        walk(f, &mut out);
    }
    out
}

/// The daemon's main loop after bring-up: SIGHUP or (with `watch`) a
/// change of the files reconciles; SIGTERM/SIGINT end it.
pub(crate) fn serve(
    stack: &mut Stack,
    signals: Signals,
    files: &[PathBuf],
    watch: bool,
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(s) = signals.wait() {
                if tx.send(s).is_err() {
                    break;
                }
            }
        })?;
    let mut seen = fingerprint(files);
    loop {
        let reload = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(SignalKind::Hangup) => true,
            Ok(_) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !watch {
                    continue;
                }
                let now = fingerprint(files);
                if now == seen {
                    continue;
                }
                seen = now;
                true
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if reload {
            let t = Instant::now();
            match load(files) {
                Err(errs) => {
                    for e in errs {
                        eprintln!("error: {e}");
                    }
                    eprintln!("the manifests have errors: kept the running stack unchanged");
                }
                Ok(objects) => match stack.reconcile(objects) {
                    Ok(a) => eprintln!(
                        "applied in {:.0?} (lb {:.0?}, policy {:.0?}, dns {:.0?}, ingress {:.0?}): {}",
                        t.elapsed(),
                        a.lb,
                        a.policy,
                        a.dns,
                        a.ingress,
                        stack.summary()
                    ),
                    Err(e) => eprintln!("error: {e:#}"),
                },
            }
        }
    }
}
