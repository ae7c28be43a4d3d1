//! Incremental updates: after a watch event is applied to the
//! [`Cluster`], [`PolicySet::apply`] recompiles only what it touches.

use std::collections::BTreeSet;

use k8snet_model::{Cluster, Kind, NsName, ObjectRef};

use crate::compile::PolicySet;
use crate::compile::peers::Addr;
use crate::compile::policies::CompiledPolicy;
use crate::compile::world::IdentityId;
use crate::options::HostNetwork;

/// What [`PolicySet::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Update {
    /// Identities whose programs were rebuilt.
    pub identities: usize,
    /// Whether everything was recompiled (Node changes: node addresses feed
    /// the own-node exemption and `nodes` peers of every pod).
    pub full: bool,
}

impl PolicySet {
    /// Brings the set up to date after `changed` was added, modified or
    /// deleted in `cluster` (apply the event to the cluster first). Kinds
    /// that do not affect policy are ignored.
    ///
    /// - a Pod: its identity is looked up; only a new identity is compiled
    ///   (peer-set bits, selecting policies, programs). A pod in a namespace
    ///   the set has not seen (one the cluster knows only implicitly, with
    ///   its `kubernetes.io/metadata.name` label) brings that namespace's
    ///   labels along;
    /// - a Namespace: the identities of that namespace;
    /// - a policy of any kind: the identities its old or new subject selects;
    /// - a Node: everything.
    ///
    /// ```
    /// use k8snet_model::{Cluster, Manifests, Object, ObjectRef, Protocol};
    /// use k8snet_policy::{Endpoint, Flow, Options, PolicySet, Verdict};
    ///
    /// let mut m = Manifests::new();
    /// m.load_str("a.yaml", "
    /// apiVersion: v1
    /// kind: Pod
    /// metadata: {name: a, namespace: x, labels: {pod: a}}
    /// ---
    /// apiVersion: v1
    /// kind: Pod
    /// metadata: {name: b, namespace: x, labels: {pod: b}}
    /// ");
    /// m.load_str("deny.yaml", "
    /// apiVersion: networking.k8s.io/v1
    /// kind: NetworkPolicy
    /// metadata: {name: deny, namespace: x}
    /// spec: {podSelector: {matchLabels: {pod: a}}}
    /// ");
    /// let deny = m.objects()[2].object.clone();
    /// let mut cluster = Cluster::from_objects(m.objects()[..2].iter().map(|l| l.object.clone()));
    /// let mut set = PolicySet::compile(&cluster, &Options::default());
    /// let flow = Flow::new(Endpoint::pod("x", "b"), Endpoint::pod("x", "a"), Protocol::Tcp, 80);
    /// assert_eq!(set.verdict(&flow), Verdict::Allow);
    ///
    /// let r: ObjectRef = deny.reference();
    /// cluster.upsert(deny)?;
    /// let update = set.apply(&cluster, &r);
    /// assert_eq!(update.identities, 1); // only x/a's identity
    /// assert_eq!(set.verdict(&flow), Verdict::Deny);
    /// # Ok::<(), k8snet_model::Error>(())
    /// ```
    pub fn apply(&mut self, cluster: &Cluster, changed: &ObjectRef) -> Update {
        match changed.kind {
            Kind::Pod => {
                let ns = changed.namespace.as_deref().unwrap_or("default");
                self.update_pod(cluster, &NsName::new(ns, changed.name.clone()))
            }
            Kind::Namespace => self.update_namespace(cluster, &changed.name),
            Kind::NetworkPolicy
            | Kind::AdminNetworkPolicy
            | Kind::BaselineAdminNetworkPolicy
            | Kind::ClusterNetworkPolicy => self.update_policy(cluster, changed),
            Kind::Node => {
                *self = Self::compile(cluster, &self.options);
                Update {
                    identities: self.world.live_identities().count(),
                    full: true,
                }
            }
            _ => Update::default(),
        }
    }

    fn compile_identity(&mut self, id: IdentityId) {
        self.peers.update_identity(&self.world, id);
        self.reselect(id);
        self.rebuild(id);
    }

    fn update_pod(&mut self, cluster: &Cluster, key: &NsName) -> Update {
        let as_node = self.options.host_network == HostNetwork::AsNode;
        // Hold the old identity while the pod is replaced, so a pod whose
        // labels did not change keeps its compiled identity.
        let old = self
            .world
            .by_key
            .get(key)
            .and_then(|&s| self.world.slot(s))
            .map(|s| s.identity);
        if let Some(id) = old {
            self.world.identities[id as usize].pods += 1;
        }
        // A pod may be the first object of its namespace: the Cluster then
        // knows the namespace implicitly (with its name label), and no
        // Namespace event comes to tell this set. Read its labels as a
        // fresh compile would, so namespace selectors see the pod.
        if !self.world.namespaces.contains_key(&key.namespace)
            && let Some(labels) = cluster.namespace_labels(&key.namespace)
        {
            self.world
                .namespaces
                .insert(key.namespace.clone(), labels.clone());
        }
        self.world.remove_pod(key);
        let new = cluster
            .pod(key)
            .and_then(|p| self.world.add_pod(p, as_node, &mut self.names));
        if let Some(id) = old {
            self.world.release_identity(id);
        }
        if let Some(slot) = self.world.by_key.get(key).and_then(|&s| self.world.slot(s)) {
            let addrs: Vec<Addr> = slot.ips.iter().map(|&ip| Addr::from(ip)).collect();
            self.peers.note_pod_addrs(&addrs);
        }
        match new {
            Some((id, true)) => {
                self.compile_identity(id);
                Update {
                    identities: 1,
                    full: false,
                }
            }
            _ => Update::default(),
        }
    }

    fn update_namespace(&mut self, cluster: &Cluster, name: &str) -> Update {
        match cluster.namespace_labels(name) {
            Some(labels) => {
                self.world
                    .namespaces
                    .insert(name.to_string(), labels.clone());
            }
            None => {
                self.world.namespaces.remove(name);
            }
        }
        let ids = self.world.identities_in(name).to_vec();
        for &id in &ids {
            self.compile_identity(id);
        }
        Update {
            identities: ids.len(),
            full: false,
        }
    }

    fn read_policy(&mut self, cluster: &Cluster, r: &ObjectRef) -> Option<CompiledPolicy> {
        let name = r.name.as_str();
        let mut lower = self.lower();
        match r.kind {
            Kind::NetworkPolicy => {
                let ns = r.namespace.as_deref().unwrap_or("default");
                cluster
                    .network_policies_in(ns)
                    .find(|p| p.metadata.name == name)
                    .map(|p| lower.network_policy(p))
            }
            Kind::AdminNetworkPolicy => cluster
                .admin_network_policies()
                .find(|p| p.metadata.name == name)
                .map(|p| lower.admin_network_policy(p)),
            Kind::BaselineAdminNetworkPolicy => cluster
                .baseline_admin_network_policy()
                .filter(|p| p.metadata.name == name)
                .map(|p| lower.baseline(p)),
            Kind::ClusterNetworkPolicy => cluster
                .cluster_network_policies()
                .find(|p| p.metadata.name == name)
                .map(|p| lower.cluster_network_policy(p)),
            _ => None,
        }
    }

    fn update_policy(&mut self, cluster: &Cluster, changed: &ObjectRef) -> Update {
        let key = ObjectRef {
            kind: changed.kind,
            namespace: (changed.kind == Kind::NetworkPolicy).then(|| {
                changed
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into())
            }),
            name: changed.name.clone(),
        };
        // Lower the new version first, so peer sets it shares with the old
        // one stay alive instead of being freed and rebuilt.
        let new = self.read_policy(cluster, &key);
        let mut affected = BTreeSet::new();
        if let Some((old_id, old)) = self.policies.remove(&key) {
            let candidates: Vec<IdentityId> = match &key.namespace {
                Some(ns) => self.world.identities_in(ns).to_vec(),
                None => self.world.live_identities().collect(),
            };
            for id in candidates {
                let list = &mut self.world.identities[id as usize].policies;
                if let Some(pos) = list.iter().position(|&p| p == old_id) {
                    list.remove(pos);
                    affected.insert(id);
                }
            }
            for set in old.peer_sets() {
                self.peers.release(set);
            }
        }
        if let Some(p) = new {
            let id = self.policies.insert(p);
            affected.extend(self.attach(id));
        }
        for &id in &affected {
            self.rebuild(id);
        }
        Update {
            identities: affected.len(),
            full: false,
        }
    }
}
