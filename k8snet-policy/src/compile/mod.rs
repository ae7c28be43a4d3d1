//! Compiling a [`Cluster`] into a [`PolicySet`].

pub(crate) mod peers;
pub(crate) mod policies;
pub(crate) mod program;
pub(crate) mod world;

use std::collections::HashMap;

use k8snet_model::{Cluster, Selector};

use crate::options::{HostNetwork, Options};

use self::peers::PeerSets;
use self::policies::{CompiledPolicy, Lower, Policies, PolicyId, Subject};
use self::world::{IdentityId, Names, World};

/// The compiled policy of a cluster: every NetworkPolicy, AdminNetworkPolicy,
/// BaselineAdminNetworkPolicy and ClusterNetworkPolicy, ready to decide flows.
///
/// Pods are grouped into identities (namespace + pod labels), so a verdict
/// costs two address lookups and a walk over the few rules that apply to
/// the two pods; [`PolicySet::apply`] recompiles only the identities a
/// change touches.
///
/// ```
/// use k8snet_model::{Cluster, Manifests, Protocol};
/// use k8snet_policy::{Endpoint, Flow, Options, PolicySet, Verdict};
///
/// let mut m = Manifests::new();
/// m.load_str("demo.yaml", "
/// apiVersion: v1
/// kind: Pod
/// metadata: {name: web, namespace: shop, labels: {app: web}}
/// status: {podIP: 198.18.0.2}
/// ---
/// apiVersion: v1
/// kind: Pod
/// metadata: {name: api, namespace: shop, labels: {app: api}}
/// status: {podIP: 198.18.0.3}
/// ---
/// apiVersion: networking.k8s.io/v1
/// kind: NetworkPolicy
/// metadata: {name: web-ingress, namespace: shop}
/// spec:
///   podSelector: {matchLabels: {app: web}}
///   ingress: [{ports: [{port: 80}]}]
/// ");
/// let cluster = Cluster::from_manifests(&m);
/// let set = PolicySet::compile(&cluster, &Options::default());
/// let api = Endpoint::pod("shop", "api");
/// let web = Endpoint::pod("shop", "web");
/// assert_eq!(set.verdict(&Flow::new(api.clone(), web.clone(), Protocol::Tcp, 80)), Verdict::Allow);
/// let denied = set.explain(&Flow::new(api, web, Protocol::Tcp, 5432));
/// assert_eq!(
///     denied.to_string(),
///     "deny: ingress to shop/web: isolated by NetworkPolicy shop/web-ingress; \
///      no rule admits TCP 5432 from shop/api"
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub(crate) options: Options,
    pub(crate) world: World,
    pub(crate) names: Names,
    pub(crate) peers: PeerSets,
    pub(crate) policies: Policies,
}

/// Sizes of a compiled policy set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Pods that are policy subjects.
    pub pods: usize,
    /// Distinct identities among them.
    pub identities: usize,
    /// Policies of all kinds.
    pub policies: usize,
    /// Distinct peer lists.
    pub peer_sets: usize,
    /// Program entries over all identities and both directions.
    pub entries: usize,
}

impl PolicySet {
    /// Compiles every policy of the cluster.
    pub fn compile(cluster: &Cluster, options: &Options) -> Self {
        let mut set = Self {
            options: options.clone(),
            ..Self::default()
        };
        set.world.load_namespaces_and_nodes(cluster);
        let as_node = options.host_network == HostNetwork::AsNode;
        for pod in cluster.pods() {
            set.world.add_pod(pod, as_node, &mut set.names);
        }
        let mut compiled: Vec<CompiledPolicy> = Vec::new();
        {
            let mut lower = set.lower();
            compiled.extend(cluster.network_policies().map(|p| lower.network_policy(p)));
            compiled.extend(
                cluster
                    .admin_network_policies()
                    .map(|p| lower.admin_network_policy(p)),
            );
            compiled.extend(
                cluster
                    .baseline_admin_network_policy()
                    .map(|p| lower.baseline(p)),
            );
            compiled.extend(
                cluster
                    .cluster_network_policies()
                    .map(|p| lower.cluster_network_policy(p)),
            );
        }
        // Policies of a namespace often share a pod selector (one per app):
        // match each (namespace, selector) against the identities once.
        let mut memo: HashMap<(String, Selector), Vec<IdentityId>> = HashMap::new();
        for p in compiled {
            let key = match &p.subject {
                Subject::Namespace { namespace, pods } => Some((namespace.clone(), pods.clone())),
                _ => None,
            };
            let id = set.policies.insert(p);
            match key.map(|k| (memo.get(&k).cloned(), k)) {
                Some((Some(ids), _)) => {
                    for i in ids {
                        set.world.identities[i as usize].policies.push(id);
                    }
                }
                Some((None, k)) => {
                    let ids = set.attach(id);
                    memo.insert(k, ids);
                }
                None => {
                    set.attach(id);
                }
            }
        }
        let live: Vec<IdentityId> = set.world.live_identities().collect();
        for id in live {
            set.rebuild(id);
        }
        set
    }

    /// The options the set was compiled with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Sizes, for logs and benchmarks.
    pub fn stats(&self) -> Stats {
        let live: Vec<IdentityId> = self.world.live_identities().collect();
        let entries = live
            .iter()
            .flat_map(|&i| &self.world.hot[i as usize].programs)
            .map(|p| p.entries().len())
            .sum();
        Stats {
            pods: self.world.by_key.len(),
            identities: live.len(),
            policies: self.policies.len(),
            peer_sets: self.peers.len(),
            entries,
        }
    }

    /// The policy fields that could not be read, by policy. Objects that
    /// passed validation (every object of [`Cluster::from_manifests`] and
    /// [`Cluster::upsert`]) have none; an object given to
    /// [`Cluster::from_objects`] unvalidated may. Each such rule is
    /// compiled failing closed, so that it never admits more than any
    /// readable value would:
    /// - an `ipBlock` that cannot be read (its `cidr` or any `except`)
    ///   admits nothing;
    /// - an admin-tier `networks` entry that cannot be read (or
    ///   `domainNames` in a rule other than Allow/Accept, which validation
    ///   refuses) matches every address in a Deny rule and none in an
    ///   Allow/Accept rule or a Baseline-tier Pass (which ends the tier:
    ///   default allow); an Admin-tier Pass rule with one becomes a Deny
    ///   of every address (its explanation says Deny), since matching
    ///   nothing would let the flow reach a later admin Allow and matching
    ///   everything would skip a later admin Deny.
    pub fn errors(&self) -> Vec<crate::Error> {
        let mut out: Vec<(&k8snet_model::ObjectRef, &crate::Error)> = self
            .policies
            .slab
            .iter()
            .flatten()
            .flat_map(|p| p.errors.iter().map(move |e| (&p.reference, e)))
            .collect();
        out.sort_by_key(|&(r, _)| r);
        out.into_iter().map(|(_, e)| e.clone()).collect()
    }

    /// Whether a flow may name this pod: it is known and not finished.
    pub fn contains_pod(&self, pod: &k8snet_model::NsName) -> bool {
        self.world.by_key.contains_key(pod) || self.world.hosts.contains_key(pod)
    }

    pub(crate) fn lower(&mut self) -> Lower<'_> {
        Lower {
            world: &self.world,
            names: &mut self.names,
            peers: &mut self.peers,
            ipblock_matches_pods: self.options.ipblock_matches_pods,
            errors: Vec::new(),
        }
    }

    /// Adds a policy to the lists of the identities it selects; returns them.
    pub(crate) fn attach(&mut self, id: PolicyId) -> Vec<IdentityId> {
        let Some(p) = self.policies.get(id) else {
            return Vec::new();
        };
        let candidates: Vec<IdentityId> = match &p.reference.namespace {
            Some(ns) => self.world.identities_in(ns).to_vec(),
            None => self.world.live_identities().collect(),
        };
        let selected: Vec<IdentityId> = candidates
            .into_iter()
            .filter(|&i| p.selects(&self.world, i))
            .collect();
        for &i in &selected {
            self.world.identities[i as usize].policies.push(id);
        }
        selected
    }

    /// Recomputes which policies select an identity.
    pub(crate) fn reselect(&mut self, id: IdentityId) {
        let Some(identity) = self.world.identities.get(id as usize) else {
            return;
        };
        let list: Vec<PolicyId> = self
            .policies
            .candidates(&identity.namespace)
            .filter(|&p| {
                self.policies
                    .get(p)
                    .is_some_and(|p| p.selects(&self.world, id))
            })
            .collect();
        self.world.identities[id as usize].policies = list;
    }

    /// Rebuilds the programs of an identity from its policy list.
    pub(crate) fn rebuild(&mut self, id: IdentityId) {
        let Some(identity) = self.world.identities.get(id as usize) else {
            return;
        };
        let built = program::build(identity, &self.policies);
        let identity = &mut self.world.identities[id as usize];
        identity.isolated_by = built.isolated_by;
        identity.origins = built.origins;
        self.world.hot[id as usize].programs = built.programs;
    }
}
