//! What policies are evaluated against: namespaces, nodes, pods and the
//! identities pods are grouped into.
//!
//! An identity is what policies can tell pods apart by: namespace (its
//! labels follow from it), pod labels, host-network, and the named
//! container ports (pods of one workload share them). Every selector treats
//! the pods of an identity alike and named ports resolve alike on them, so
//! peer sets are bit sets over identities and each identity has one
//! compiled program per direction, whatever the number of pods or policies.
//! What differs between pods of an identity — addresses (for `ipBlock`s)
//! and the node — stays on the pod.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use k8snet_model::{Cluster, IpClaim, NsName, Pod, StringMap};

use crate::flow::proto;
use rustc_hash::{FxHashMap, FxHasher};

use super::peers::{Addr, Range};
use super::policies::PolicyId;
use super::program::{Origin, Program};

/// Index of an identity.
pub(crate) type IdentityId = u32;
/// Index of a pod slot.
pub(crate) type SlotId = u32;

/// A named container port of a pod: what a named port of a rule resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NamedPort {
    /// Interned name (see [`Names`]).
    pub(crate) name: u32,
    /// Protocol bit.
    pub(crate) proto: u8,
    /// The number.
    pub(crate) port: u16,
}

/// Resolves a named port on a pod as the endpoints controller does: the
/// first container port with that name and protocol.
#[inline]
pub(crate) fn resolve_named(ports: &[NamedPort], name: u32, proto: u8) -> Option<u16> {
    ports
        .iter()
        .find(|p| p.name == name && p.proto == proto)
        .map(|p| p.port)
}

/// A pod that takes part in policy.
#[derive(Debug, Clone)]
pub(crate) struct PodSlot {
    pub(crate) key: NsName,
    /// Its standing among pods that claim one of its addresses.
    pub(crate) claim: IpClaim,
    pub(crate) identity: IdentityId,
    pub(crate) ips: Vec<IpAddr>,
    pub(crate) node: Option<String>,
    /// The addresses of the pod's own node (its `hostIPs`/`hostIP` and the
    /// Node's addresses): ingress from them is always allowed.
    pub(crate) node_ips: Vec<IpAddr>,
}

/// A host-network pod under [`HostNetwork::AsNode`](crate::HostNetwork):
/// node traffic, kept so flows can still name it.
#[derive(Debug, Clone)]
pub(crate) struct HostPod {
    pub(crate) ips: Vec<IpAddr>,
    pub(crate) node: Option<String>,
}

/// An identity (what the verdict path needs is in [`World::hot`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    pub(crate) namespace: String,
    pub(crate) labels: StringMap,
    pub(crate) host_network: bool,
    /// The pods' named container ports, in declaration order.
    pub(crate) named: Vec<NamedPort>,
    /// Pods with this identity; 0 = free for reuse.
    pub(crate) pods: u32,
    /// The policies whose subject selects it.
    pub(crate) policies: Vec<PolicyId>,
    /// `[ingress, egress]`: the NetworkPolicies that isolate it, by name.
    pub(crate) isolated_by: [Vec<PolicyId>; 2],
    /// `[ingress, egress]`: where each program entry came from.
    pub(crate) origins: [Box<[Origin]>; 2],
}

/// The per-identity data of the verdict path, in one place: both programs
/// and the named ports egress rules resolve on (two cache lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[repr(align(64))]
pub(crate) struct Hot {
    /// `[ingress, egress]`.
    pub(crate) programs: [Program; 2],
    pub(crate) named: Box<[NamedPort]>,
}

/// What an address lookup yields: enough for the verdict path to go
/// straight to the identity's programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PodRef {
    pub(crate) slot: SlotId,
    pub(crate) identity: IdentityId,
}

/// Pods by address: one integer-keyed map per family, so the IPv4 table
/// (the common case) has 12-byte slots and stays cache-resident.
#[derive(Debug, Clone, Default)]
pub(crate) struct ByIp {
    v4: FxHashMap<u32, PodRef>,
    v6: FxHashMap<u128, PodRef>,
}

impl ByIp {
    #[inline]
    pub(crate) fn get(&self, ip: IpAddr) -> Option<PodRef> {
        match ip {
            IpAddr::V4(a) => self.v4.get(&u32::from(a)).copied(),
            IpAddr::V6(a) => self.v6.get(&u128::from(a)).copied(),
        }
    }

    fn insert(&mut self, ip: IpAddr, r: PodRef) {
        match ip {
            IpAddr::V4(a) => self.v4.insert(u32::from(a), r),
            IpAddr::V6(a) => self.v6.insert(u128::from(a), r),
        };
    }

    fn remove(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.v4.remove(&u32::from(a)),
            IpAddr::V6(a) => self.v6.remove(&u128::from(a)),
        };
    }
}

/// Interned names of named ports (0 is "no name"). Port names are short
/// IANA service names, so the fast hasher suits them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    ids: FxHashMap<String, u32>,
}

impl Names {
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.ids.len() + 1).unwrap_or(u32::MAX);
        self.ids.insert(name.to_string(), id);
        id
    }
}

/// A node: labels (for `nodes` peers) and addresses.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeInfo {
    pub(crate) labels: StringMap,
    pub(crate) ips: Vec<IpAddr>,
}

/// Everything but the policies.
#[derive(Debug, Clone, Default)]
pub(crate) struct World {
    pub(crate) namespaces: BTreeMap<String, StringMap>,
    pub(crate) nodes: BTreeMap<String, NodeInfo>,
    pub(crate) slots: Vec<Option<PodSlot>>,
    free_slots: Vec<SlotId>,
    pub(crate) by_key: HashMap<NsName, SlotId>,
    /// The owner of each pod address (see [`IpClaim`]): what the verdict
    /// path reads.
    pub(crate) by_ip: ByIp,
    /// The addresses two or more pods claim, with every claimant, owner
    /// first (sorted by claim, then key), so that removing the owner hands
    /// the address to the next claimant instead of dropping it.
    contested: FxHashMap<IpAddr, Vec<SlotId>>,
    /// Every address of every pod slot (with a count, for pods sharing
    /// one), sorted: which address blocks contain pods.
    pod_addrs: BTreeMap<(bool, u128), u32>,
    pub(crate) hosts: HashMap<NsName, HostPod>,
    pub(crate) identities: Vec<Identity>,
    /// What the verdict path reads, indexed like `identities`.
    pub(crate) hot: Vec<Hot>,
    free_identities: Vec<IdentityId>,
    identity_index: HashMap<u64, Vec<IdentityId>>,
    pub(crate) by_ns: HashMap<String, Vec<IdentityId>>,
}

static EMPTY: StringMap = StringMap::new();

fn identity_hash(namespace: &str, labels: &StringMap, host: bool, named: &[NamedPort]) -> u64 {
    let mut h = FxHasher::default();
    namespace.hash(&mut h);
    labels.hash(&mut h);
    host.hash(&mut h);
    named.hash(&mut h);
    h.finish()
}

impl World {
    /// The labels of a namespace (none if unknown).
    pub(crate) fn ns_labels(&self, ns: &str) -> &StringMap {
        self.namespaces.get(ns).unwrap_or(&EMPTY)
    }

    /// Reads namespaces and nodes from the cluster.
    pub(crate) fn load_namespaces_and_nodes(&mut self, cluster: &Cluster) {
        self.namespaces = cluster
            .namespaces()
            .map(|n| (n.metadata.name.clone(), n.metadata.labels.clone()))
            .collect();
        self.nodes = cluster
            .nodes()
            .map(|n| {
                // The address types that hold IPs, read as kube-proxy
                // reads them (`ParseIPSloppy`); names are not addresses.
                let ips = n.addresses_of(&["InternalIP", "ExternalIP"]);
                let info = NodeInfo {
                    labels: n.metadata.labels.clone(),
                    ips,
                };
                (n.metadata.name.clone(), info)
            })
            .collect();
    }

    /// The live identities.
    pub(crate) fn live_identities(&self) -> impl Iterator<Item = IdentityId> + '_ {
        (0..self.identities.len() as IdentityId).filter(|&i| self.identities[i as usize].pods > 0)
    }

    /// The live identities of a namespace.
    pub(crate) fn identities_in(&self, ns: &str) -> &[IdentityId] {
        self.by_ns.get(ns).map_or(&[], Vec::as_slice)
    }

    /// The identity of a pod, created if new (`true` = created).
    fn intern_identity(
        &mut self,
        ns: &str,
        labels: &StringMap,
        host: bool,
        named: Vec<NamedPort>,
    ) -> (IdentityId, bool) {
        let hash = identity_hash(ns, labels, host, &named);
        if let Some(ids) = self.identity_index.get(&hash) {
            for &id in ids {
                let i = &self.identities[id as usize];
                if i.namespace == ns
                    && i.labels == *labels
                    && i.host_network == host
                    && i.named == named
                {
                    return (id, false);
                }
            }
        }
        let hot = Hot {
            programs: Default::default(),
            named: named.clone().into_boxed_slice(),
        };
        let identity = Identity {
            namespace: ns.to_string(),
            labels: labels.clone(),
            host_network: host,
            named,
            pods: 0,
            policies: Vec::new(),
            isolated_by: Default::default(),
            origins: Default::default(),
        };
        let id = match self.free_identities.pop() {
            Some(id) => {
                self.identities[id as usize] = identity;
                self.hot[id as usize] = hot;
                id
            }
            None => {
                self.identities.push(identity);
                self.hot.push(hot);
                (self.identities.len() - 1) as IdentityId
            }
        };
        self.identity_index.entry(hash).or_default().push(id);
        self.by_ns.entry(ns.to_string()).or_default().push(id);
        (id, true)
    }

    /// Drops one pod's reference; frees the identity when it was the last.
    pub(crate) fn release_identity(&mut self, id: IdentityId) {
        let Some(identity) = self.identities.get_mut(id as usize) else {
            return;
        };
        identity.pods = identity.pods.saturating_sub(1);
        if identity.pods > 0 {
            return;
        }
        let hash = identity_hash(
            &identity.namespace,
            &identity.labels,
            identity.host_network,
            &identity.named,
        );
        let ns = std::mem::take(&mut identity.namespace);
        identity.policies.clear();
        identity.isolated_by = Default::default();
        identity.origins = Default::default();
        identity.named.clear();
        if let Some(h) = self.hot.get_mut(id as usize) {
            *h = Hot::default();
        }
        if let Some(ids) = self.identity_index.get_mut(&hash) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.identity_index.remove(&hash);
            }
        }
        if let Some(ids) = self.by_ns.get_mut(&ns) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.by_ns.remove(&ns);
            }
        }
        self.free_identities.push(id);
    }

    /// The standing of a live slot among the claimants of an address.
    fn rank(slots: &[Option<PodSlot>], id: SlotId) -> Option<(IpClaim, &NsName)> {
        let slot = slots.get(id as usize)?.as_ref()?;
        Some((slot.claim, &slot.key))
    }

    /// Records that the pod in `slot_id` (already stored) claims `ip`.
    fn claim_ip(&mut self, ip: IpAddr, slot_id: SlotId) {
        let Some(identity) = self.slot(slot_id).map(|s| s.identity) else {
            return;
        };
        let current = match self.by_ip.get(ip) {
            None => {
                let r = PodRef {
                    slot: slot_id,
                    identity,
                };
                self.by_ip.insert(ip, r);
                return;
            }
            Some(r) if r.slot == slot_id => return,
            Some(r) => r.slot,
        };
        let slots = &self.slots;
        let claimants = self.contested.entry(ip).or_insert_with(|| vec![current]);
        let me = Self::rank(slots, slot_id);
        if let Err(at) = claimants.binary_search_by(|&s| Self::rank(slots, s).cmp(&me)) {
            claimants.insert(at, slot_id);
        }
        self.settle(ip);
    }

    /// Drops the claim of the pod in `slot_id` (still stored) on `ip`.
    fn unclaim_ip(&mut self, ip: IpAddr, slot_id: SlotId) {
        let slots = &self.slots;
        if let Some(claimants) = self.contested.get_mut(&ip) {
            let me = Self::rank(slots, slot_id);
            if let Ok(at) = claimants.binary_search_by(|&s| Self::rank(slots, s).cmp(&me)) {
                claimants.remove(at);
            }
            let uncontested = claimants.len() < 2;
            self.settle(ip);
            if uncontested {
                self.contested.remove(&ip);
            }
        } else if self.by_ip.get(ip).is_some_and(|r| r.slot == slot_id) {
            self.by_ip.remove(ip);
        }
    }

    /// Points the address index of a contested `ip` at its first claimant.
    fn settle(&mut self, ip: IpAddr) {
        let owner = self
            .contested
            .get(&ip)
            .and_then(|c| c.first())
            .and_then(|&s| Some((s, self.slot(s)?.identity)));
        match owner {
            Some((slot, identity)) => self.by_ip.insert(ip, PodRef { slot, identity }),
            None => self.by_ip.remove(ip),
        }
    }

    /// Removes a pod; returns its identity if it had one.
    pub(crate) fn remove_pod(&mut self, key: &NsName) -> Option<IdentityId> {
        self.hosts.remove(key);
        let slot_id = self.by_key.remove(key)?;
        // Unclaim the addresses while the slot is still stored: the other
        // claimants are ordered against it.
        let ips = std::mem::take(&mut self.slots.get_mut(slot_id as usize)?.as_mut()?.ips);
        for &ip in &ips {
            self.unclaim_ip(ip, slot_id);
        }
        let slot = self.slots.get_mut(slot_id as usize)?.take()?;
        for &ip in &ips {
            let a = Addr::from(ip);
            if let Some(n) = self.pod_addrs.get_mut(&(a.v6, a.bits)) {
                *n -= 1;
                if *n == 0 {
                    self.pod_addrs.remove(&(a.v6, a.bits));
                }
            }
        }
        self.free_slots.push(slot_id);
        self.release_identity(slot.identity);
        Some(slot.identity)
    }

    /// Adds a pod (finished pods own nothing and are left out). Returns its
    /// identity and whether the identity is new.
    pub(crate) fn add_pod(
        &mut self,
        pod: &Pod,
        as_node: bool,
        names: &mut Names,
    ) -> Option<(IdentityId, bool)> {
        if pod.is_finished() {
            return None;
        }
        let key = NsName::new(
            pod.metadata.namespace_or_default(),
            pod.metadata.name.clone(),
        );
        let node = pod.spec.node_name.clone();
        if pod.spec.host_network && as_node {
            let mut ips = pod.ips();
            if ips.is_empty() {
                ips = pod.host_ips();
            }
            self.hosts.insert(key, HostPod { ips, node });
            return None;
        }
        let named = pod
            .container_ports()
            .filter_map(|p| {
                let name = p.name.as_deref()?;
                Some(NamedPort {
                    name: names.intern(name),
                    proto: proto::bit(p.protocol.unwrap_or_default()),
                    port: u16::try_from(p.container_port).ok()?,
                })
            })
            .collect();
        let labels = &pod.metadata.labels;
        let host = pod.spec.host_network;
        let (identity, created) = self.intern_identity(&key.namespace, labels, host, named);
        self.identities[identity as usize].pods += 1;
        // Every address the pod's status gives its node (`hostIPs`, one per
        // family, and `hostIP`), then the Node object's, if there is one.
        let mut node_ips = pod.host_ips();
        if let Some(n) = node.as_deref().and_then(|n| self.nodes.get(n)) {
            node_ips.extend(n.ips.iter().copied());
        }
        let ips = pod.ips();
        for &ip in &ips {
            let a = Addr::from(ip);
            *self.pod_addrs.entry((a.v6, a.bits)).or_default() += 1;
        }
        let slot = PodSlot {
            key: key.clone(),
            claim: IpClaim::of(pod),
            identity,
            ips: ips.clone(),
            node,
            node_ips,
        };
        let slot_id = match self.free_slots.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(slot);
                id
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as SlotId
            }
        };
        // Host-network pods share the node's address: never attribute it.
        if !pod.spec.host_network {
            for ip in ips {
                self.claim_ip(ip, slot_id);
            }
        }
        self.by_key.insert(key, slot_id);
        Some((identity, created))
    }

    /// Whether some pod address in `range` satisfies `test`.
    pub(crate) fn any_pod_addr_in(&self, test: impl Fn(Addr) -> bool, range: Range) -> bool {
        self.pod_addrs
            .range((range.v6, range.lo)..=(range.v6, range.hi))
            .any(|(&(v6, bits), _)| test(Addr { v6, bits }))
    }

    /// The pod that owns an address (host-network pods never do). When
    /// several pods claim it, the one [`Cluster::pod_by_ip`] names, whatever
    /// order they were added and removed in.
    #[inline]
    pub(crate) fn pod_by_ip(&self, ip: IpAddr) -> Option<PodRef> {
        self.by_ip.get(ip)
    }

    /// A pod slot.
    #[inline]
    pub(crate) fn slot(&self, id: SlotId) -> Option<&PodSlot> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// The pod slots, in no particular order.
    pub(crate) fn pod_slots(&self) -> impl Iterator<Item = (SlotId, &PodSlot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as SlotId, s)))
    }
}

#[cfg(test)]
mod hash_tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;
    use std::net::{IpAddr, Ipv4Addr};

    use rustc_hash::FxBuildHasher;

    /// The address index hashes pod IPs of one subnet, which differ only in
    /// their low bits: the hasher must still spread them over the buckets
    /// (hashbrown picks buckets by the low bits of the hash).
    #[test]
    fn addresses_of_one_subnet_spread_over_buckets() {
        let low_bits: HashSet<u64> = (0..1024u32)
            .map(|i| {
                let ip = IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i));
                FxBuildHasher.hash_one(ip) & 0x3ff
            })
            .collect();
        // 1024 addresses over 1024 buckets: a good hash fills most of them.
        assert!(low_bits.len() > 550, "{} distinct buckets", low_bits.len());
    }
}

/// Pods that share an address: the World names the same owner as
/// `Cluster::pod_by_ip`, incrementally and on a fresh compile.
#[cfg(test)]
mod shared_ips {
    use std::net::IpAddr;

    use k8snet_model::{Cluster, Kind, NsName, Object, ObjectRef, Pod, Protocol};
    use proptest::prelude::*;

    use crate::{Endpoint, Flow, HostNetwork, Options, PolicySet};

    const IPS: [&str; 3] = ["198.18.0.5", "198.18.0.6", "fd00:18::5"];

    /// A pod in namespace `x` with the given addresses.
    fn pod(name: &str, ips: &[&str], phase: &str, terminating: bool, host: bool) -> Object {
        let mut status = serde_json::json!({"phase": phase});
        if let Some(first) = ips.first() {
            status["podIP"] = (*first).into();
            status["podIPs"] = ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect();
        }
        let mut v = serde_json::json!({
            "metadata": {"name": name, "namespace": "x", "labels": {"app": name}},
            "spec": {"containers": [{"name": "c"}], "hostNetwork": host},
            "status": status,
        });
        if terminating {
            v["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        Object::Pod(serde_json::from_value::<Pod>(v).unwrap())
    }

    fn pod_ref(name: &str) -> ObjectRef {
        ObjectRef {
            kind: Kind::Pod,
            namespace: Some("x".into()),
            name: name.into(),
        }
    }

    /// The pod the set takes `ip` for.
    fn owner(set: &PolicySet, ip: &str) -> Option<NsName> {
        let ip: IpAddr = ip.parse().unwrap();
        let flow = Flow::new(
            Endpoint::Ip(ip),
            Endpoint::Ip("203.0.113.1".parse().unwrap()),
            Protocol::Tcp,
            80,
        );
        set.explain(&flow).src_pod
    }

    fn cluster_owner(c: &Cluster, ip: &str) -> Option<NsName> {
        c.pod_by_ip(ip.parse().unwrap())
            .map(|p| NsName::new(p.metadata.namespace_or_default(), p.metadata.name.clone()))
    }

    fn upsert(c: &mut Cluster, set: &mut PolicySet, o: Object) {
        let r = o.reference();
        c.upsert(o).unwrap();
        set.apply(c, &r);
    }

    fn delete(c: &mut Cluster, set: &mut PolicySet, name: &str) {
        c.delete(&pod_ref(name));
        set.apply(c, &pod_ref(name));
    }

    /// The set agrees with the cluster on every address, and so does a
    /// fresh compile.
    fn agree(c: &Cluster, set: &PolicySet) -> Result<(), String> {
        let fresh = PolicySet::compile(c, set.options());
        for ip in IPS {
            let want = cluster_owner(c, ip);
            let (got, fresh) = (owner(set, ip), owner(&fresh, ip));
            if got != want || fresh != want {
                return Err(format!(
                    "{ip}: cluster {want:?}, incremental {got:?}, fresh {fresh:?}"
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn deleting_one_of_two_pods_on_an_ip_keeps_the_other() {
        const IP: &str = "198.18.0.5";
        for (first, second) in [("a", "b"), ("b", "a")] {
            for gone in ["a", "b"] {
                let mut c = Cluster::new();
                let mut set = PolicySet::compile(&c, &Options::default());
                upsert(&mut c, &mut set, pod(first, &[IP], "Running", false, false));
                upsert(
                    &mut c,
                    &mut set,
                    pod(second, &[IP], "Running", false, false),
                );
                // Equal standing: the first by name, whoever came last.
                assert_eq!(
                    owner(&set, IP),
                    Some(NsName::new("x", "a")),
                    "{first},{second}"
                );
                delete(&mut c, &mut set, gone);
                let survivor = if gone == "a" { "b" } else { "a" };
                assert_eq!(
                    owner(&set, IP),
                    Some(NsName::new("x", survivor)),
                    "{first},{second} minus {gone}"
                );
                agree(&c, &set).unwrap();
                delete(&mut c, &mut set, survivor);
                assert_eq!(owner(&set, IP), None);
            }
        }
    }

    #[test]
    fn a_live_running_pod_owns_a_shared_ip() {
        const IP: &str = "198.18.0.5";
        for reversed in [false, true] {
            let mut events = vec![
                pod("a", &[IP], "Running", true, false),
                pod("b", &[IP], "Pending", false, false),
                pod("c", &[IP], "Running", false, false),
            ];
            if reversed {
                events.reverse();
            }
            let mut c = Cluster::new();
            let mut set = PolicySet::compile(&c, &Options::default());
            for e in events {
                upsert(&mut c, &mut set, e);
            }
            // Not terminating and Running first, then not terminating.
            assert_eq!(owner(&set, IP), Some(NsName::new("x", "c")));
            agree(&c, &set).unwrap();
            delete(&mut c, &mut set, "c");
            assert_eq!(owner(&set, IP), Some(NsName::new("x", "b")));
            delete(&mut c, &mut set, "b");
            assert_eq!(owner(&set, IP), Some(NsName::new("x", "a")));
        }
        // A pod that finishes, or starts terminating, hands the IP over.
        let mut c = Cluster::new();
        let mut set = PolicySet::compile(&c, &Options::default());
        upsert(&mut c, &mut set, pod("a", &[IP], "Running", false, false));
        upsert(&mut c, &mut set, pod("b", &[IP], "Running", false, false));
        upsert(&mut c, &mut set, pod("a", &[IP], "Running", true, false));
        assert_eq!(owner(&set, IP), Some(NsName::new("x", "b")));
        upsert(&mut c, &mut set, pod("b", &[IP], "Succeeded", false, false));
        assert_eq!(owner(&set, IP), Some(NsName::new("x", "a")));
        agree(&c, &set).unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert {
            name: usize,
            /// Indexes into `IPS`: at most one IPv4 address (0 or 1) and
            /// the IPv6 one (2), in either order.
            ips: Vec<usize>,
            phase: usize,
            terminating: bool,
            host: bool,
        },
        Delete(usize),
    }

    const NAMES: [&str; 4] = ["a", "b", "c", "d"];
    const PHASES: [&str; 4] = ["Running", "Pending", "Succeeded", "Unknown"];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (
                0..NAMES.len(),
                proptest::option::of(0..2usize),
                any::<bool>(),
                any::<bool>(),
                0..PHASES.len(),
                any::<bool>(),
                proptest::bool::weighted(0.15),
            )
                .prop_map(|(name, v4, v6, v6_first, phase, terminating, host)| {
                    // At most one address per family, as validation requires.
                    let mut ips: Vec<usize> = v4.into_iter().chain(v6.then_some(2)).collect();
                    if v6_first {
                        ips.reverse();
                    }
                    Op::Upsert {
                        name,
                        ips,
                        phase,
                        terminating,
                        host,
                    }
                }),
            1 => (0..NAMES.len()).prop_map(Op::Delete),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Any sequence of pod events, under either host-network mode.
        #[test]
        fn the_owner_of_an_ip_is_the_clusters(
            ops in proptest::collection::vec(op(), 1..24),
            as_node in any::<bool>(),
        ) {
            let options = Options {
                host_network: if as_node { HostNetwork::AsNode } else { HostNetwork::AsPod },
                ..Options::default()
            };
            let mut c = Cluster::new();
            let mut set = PolicySet::compile(&c, &options);
            for op in &ops {
                match op {
                    Op::Upsert { name, ips, phase, terminating, host } => {
                        let ips: Vec<&str> = ips.iter().map(|&i| IPS[i]).collect();
                        let o = pod(NAMES[*name], &ips, PHASES[*phase], *terminating, *host);
                        upsert(&mut c, &mut set, o);
                    }
                    Op::Delete(name) => delete(&mut c, &mut set, NAMES[*name]),
                }
                if let Err(e) = agree(&c, &set) {
                    return Err(TestCaseError::fail(format!("after {op:?}: {e}")));
                }
            }
        }
    }
}
