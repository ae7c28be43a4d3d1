//! The Service table in nftables: [`Layout`] lowers a
//! [`crate::ServiceTable`] to the table `inet k8snet-lb` and
//! computes the smallest batch for each change.
//!
//! # Layout
//!
//! kube-proxy's nftables layout (both families in one `inet` table, IPv6
//! sets suffixed `6`): base chains `filter-*-pre-dnat` (priority -110,
//! before DNAT), `nat-*` (-100) and `filter-input`/`-forward`/`-output`
//! (0, after DNAT); `services` dispatches `daddr . l4proto . dport`
//! through the verdict map `service-ips` (ClusterIPs, external and load
//! balancer IPs) and node ports through `service-nodeports`;
//! `endpoints-check` (after DNAT) rejects or drops traffic to ports
//! without endpoints (`no-endpoint-*` maps; `reject-chain` answers at
//! once: a TCP reset, else ICMP port unreachable); `cluster-ips-check`
//! (forward and output, after DNAT) rejects what is still addressed to
//! one of the `cluster-ips`, a port no Service uses; `firewall-check`
//! (before DNAT) applies `loadBalancerSourceRanges` (`firewall-ips`);
//! `masquerading` masquerades marked traffic and DNATed hairpin traffic
//! (`ct status dnat` and `hairpin`: each endpoint that may be on this
//! node, local or naming no node, paired with itself). Per Service port:
//! `svc4-…` (cluster pool), `local4-…` (local pool), `ext4-…` (external
//! traffic; with Local policy, pods and `fib saddr type local` sources
//! short-circuit to the cluster pool), `fw4-…`.
//!
//! **Endpoint choice.** Instead of kube-proxy's `numgen random`, a pool
//! chain does `dnat to jhash <saddr> . th sport mod M seed S offset O map
//! @slots4-<g>`: the kernel hashes the flow with a seed every node shares
//! and looks the slot up in the pool's Maglev table, so every node sends a
//! flow to the same endpoint, and [`predict`](crate::predict) knows which.
//!
//! **Why shared slot maps.** Measured on Linux 6.18: the kernel finds a
//! named set by walking a list, so 10,000 per-port maps cost seconds in
//! name lookups alone (3.0 s for 10,000 one-element maps); and every
//! element added to a data map is checked against every rule bound to the
//! map (127,000 elements into one map bound by 1,000 rules: 8.2 s). So pools
//! share [`SLOT_GROUPS`] maps per family, each pool a 16-bit window of its
//! map's keys (`offset`), which bounds both costs.
//!
//! **ClientIP affinity** keeps kube-proxy's form: an affinity set and a
//! chain per endpoint, and the Maglev choice (by source address only) as a
//! verdict map of the port's own.

mod port;
mod skeleton;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use k8snet_nft::{Batch, DataType, Element, Key, Op, Set, Table, diff};

pub use skeleton::{MASQ_MARK, TABLE};

use crate::error::Result;
use crate::frontend::Claims;
use crate::hash::xxhash64;
use crate::plan::{Family, PortId, ServicePort, ServiceTable};
use port::{Context, Fragment, PoolKind, Window, fam, lower_port};
use skeleton::{cluster_ips, hairpin, hairpin_key, ip_value, nodeport_ips, skeleton};

/// Slot maps per family. Pools are spread over them by a hash of their
/// name; each holds up to 65,536 windows.
pub const SLOT_GROUPS: u32 = 1024;

/// The name of slot map `g` of family `f`.
fn slot_map(f: Family, g: u32) -> String {
    match f {
        Family::IPv4 => format!("slots4-{g}"),
        Family::IPv6 => format!("slots6-{g}"),
    }
}

/// The table's state, kept between changes so that a change is diffed only
/// where it happened: per Service port its objects, per pool its window.
///
/// [`Layout::sync`] takes a whole [`ServiceTable`]; [`Layout::update_service`]
/// one Service's ports. Both return the batch that turns the previous state
/// into the new one, touching only the changed ports' chains and elements.
/// Until something was synced, the batch creates the whole table.
///
/// ```
/// use k8snet_lb::nftables::Layout;
/// use k8snet_lb::{NodeContext, plan};
/// let cluster = k8snet_model::Cluster::new();
/// let mut layout = Layout::new();
/// let batch = layout.sync(&plan(&cluster, &NodeContext::new("node-a")))?;
/// assert!(batch.to_string().starts_with("add table inet k8snet-lb\n"));
/// let text = k8snet_nft::render(&layout.table());
/// assert!(text.contains("ip daddr . meta l4proto . th dport vmap @service-ips"));
/// # Ok::<(), k8snet_lb::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Layout {
    seed: u32,
    cluster_cidrs: Vec<IpNet>,
    node_ips: Vec<IpAddr>,
    fragments: BTreeMap<PortId, Fragment>,
    ports: BTreeMap<PortId, ServicePort>,
    windows: BTreeMap<(PortId, PoolKind), (String, u32)>,
    used: HashMap<String, BTreeSet<u32>>,
    /// Slot maps that exist (kept once made, so a partial batch never has
    /// to create or delete a map other ports use).
    maps: BTreeSet<String>,
    /// Elements of the shared address sets, counted by the ports that
    /// need them.
    refs: BaseRefs,
    /// Who owns each frontend (cluster, external and load balancer IP
    /// ports, node ports).
    claims: Claims,
    /// Whether the kernel holds what this layout describes.
    synced: bool,
}

impl Layout {
    /// An empty layout; the first batch creates the table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets what the kernel holds (after a failed apply): the next
    /// batch from [`Layout::sync`] recreates everything from nothing, so
    /// apply it to a deleted table, or use `Nft::sync` on [`Layout::table`].
    pub fn invalidate(&mut self) {
        self.synced = false;
    }

    /// Whether the last batch was accepted as applied.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The whole table as the layout describes it.
    pub fn table(&self) -> Table {
        let mut t = skeleton();
        self.add_base(&mut t);
        for m in &self.maps {
            t.sets.insert(m.clone(), slot_set(m));
        }
        for f in self.fragments.values() {
            add_fragment(&mut t, f);
        }
        t
    }

    /// The batch that creates the whole table from nothing, built directly
    /// (the operations [`k8snet_nft::diff`] would give for `None`, without
    /// building and validating an intermediate table: at 10,000 Services
    /// that took the userspace part from 3.9 s to 0.7 s).
    fn create_batch(&self) -> Batch {
        let mut b = Batch::new(k8snet_nft::Family::Inet, TABLE);
        b.push(Op::AddTable);
        let mut skel = skeleton();
        self.add_base(&mut skel);
        let frag_chains = self.fragments.values().flat_map(|f| &f.chains);
        for (name, c) in skel.chains.iter().chain(frag_chains.clone()) {
            b.push(Op::AddChain {
                name: name.clone(),
                base: c.base,
            });
        }
        let frag_sets = self.fragments.values().flat_map(|f| &f.sets);
        let maps: Vec<(String, Set)> = self.maps.iter().map(|m| (m.clone(), slot_set(m))).collect();
        let all_sets = skel
            .sets
            .iter()
            .chain(frag_sets)
            .chain(maps.iter().map(|(n, s)| (n, s)));
        for (name, set) in all_sets.clone() {
            let mut spec = set.clone();
            spec.elements.clear();
            b.push(Op::AddSet {
                name: name.clone(),
                set: spec,
            });
        }
        // Rules before elements: binding a rule to a map that already has
        // elements walks them all (measured: a tenth of a 10,000-Service
        // sync), while an element added to a bound map only checks the
        // rules bound to it.
        for (name, c) in skel.chains.iter().chain(frag_chains) {
            for (i, rule) in c.rules.iter().enumerate() {
                b.push(Op::AddRule {
                    chain: name.clone(),
                    index: i + 1,
                    rule: rule.clone(),
                });
            }
        }
        for (name, set) in all_sets {
            push_elements(
                &mut b,
                name,
                set.elements.iter().map(|(k, e)| (k.clone(), e.clone())),
            );
        }
        let mut shared: BTreeMap<&str, Vec<(Key, Element)>> = BTreeMap::new();
        for f in self.fragments.values() {
            for (set, k, e) in &f.elements {
                shared.entry(set).or_default().push((k.clone(), e.clone()));
            }
        }
        for (set, elems) in shared {
            push_elements(&mut b, set, elems.into_iter());
        }
        for f in self.fragments.values() {
            for sl in &f.slots {
                push_elements(&mut b, &sl.window.map, sl.elements());
            }
        }
        b
    }

    /// Makes the layout describe `table`; returns the batch from the
    /// previous state (or, before the first sync, from nothing).
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] if two ports of `table` claim one
    /// frontend (an `IP:port/protocol` or a node port; [`crate::plan()`]
    /// never yields such a table); the layout is then unchanged.
    /// [`crate::Error::Nft`] if the table fails the nftables layer's
    /// validation (a bug, since the plan is valid by construction).
    pub fn sync(&mut self, table: &ServiceTable) -> Result<Batch> {
        Claims::default().check(&table.ports, |_| false)?;
        let base_changed = self.seed != table.seed
            || self.cluster_cidrs != table.cluster_cidrs
            || self.node_ips != table.node_ips;
        if base_changed || !self.synced {
            // Everything depends on these: rebuild, and diff against what
            // the kernel holds (nothing, the first time).
            let old = self.synced.then(|| self.table());
            *self = Self {
                seed: table.seed,
                cluster_cidrs: table.cluster_cidrs.clone(),
                node_ips: table.node_ips.clone(),
                ..Self::default()
            };
            for p in &table.ports {
                let f = self.lower(p);
                self.insert(p, f);
            }
            self.synced = true;
            return Ok(match old {
                Some(old) => diff(Some(&old), &self.table())?,
                None => self.create_batch(),
            });
        }
        let mut by_service: BTreeMap<(&str, &str), Vec<ServicePort>> = BTreeMap::new();
        for p in &table.ports {
            by_service
                .entry((&p.id.namespace, &p.id.name))
                .or_default()
                .push(p.clone());
        }
        let gone: Vec<PortId> = self
            .fragments
            .keys()
            .filter(|id| !by_service.contains_key(&(id.namespace.as_str(), id.name.as_str())))
            .cloned()
            .collect();
        let mut change = Change::new(self);
        for id in gone {
            change.remove(self, &id);
        }
        for ports in by_service.values() {
            change.replace_ports(self, ports);
        }
        change.finish(self)
    }

    /// Replaces the ports of one Service (all its ports of all families:
    /// what [`crate::plan_service`] returns; empty to delete it) and
    /// returns the batch for just that.
    ///
    /// Conflicts a full [`crate::plan()`] would resolve are refused here: a
    /// port that claims a frontend another Service's port owns (its
    /// cluster IP and port, an external or load balancer IP and port, a
    /// node port), or two ports of the update claiming one.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] naming the Service and the field
    /// (`spec.clusterIPs`, `spec.externalIPs`,
    /// `status.loadBalancer.ingress`, `spec.ports[name=…].nodePort`) and
    /// the owner, for such a conflict or for a port of another Service;
    /// the layout is then unchanged, so nothing needs applying. Otherwise
    /// as [`Layout::sync`].
    pub fn update_service(
        &mut self,
        namespace: &str,
        name: &str,
        ports: &[ServicePort],
    ) -> Result<Batch> {
        if let Some(p) = ports
            .iter()
            .find(|p| p.id.namespace != namespace || p.id.name != name)
        {
            return Err(crate::Error::invalid(
                format!("Service {namespace}/{name}"),
                "metadata.name",
                format!("the update holds port {} of another Service", p.id),
            ));
        }
        self.claims
            .check(ports, |id| id.namespace == namespace && id.name == name)?;
        let mut change = Change::new(self);
        let old: Vec<PortId> = self
            .fragments
            .keys()
            .filter(|id| id.namespace == namespace && id.name == name)
            .cloned()
            .collect();
        for id in old.iter().filter(|id| !ports.iter().any(|p| p.id == **id)) {
            change.remove(self, id);
        }
        change.replace_ports(self, ports);
        change.finish(self)
    }

    fn context_windows(&mut self, p: &ServicePort) -> BTreeMap<PoolKind, Window> {
        let mut out = BTreeMap::new();
        if p.affinity_timeout.is_some() {
            return out;
        }
        for (kind, pool) in [
            (PoolKind::Cluster, &p.cluster_pool),
            (PoolKind::Local, &p.local_pool),
        ] {
            if pool.is_none() {
                continue;
            }
            let (map, window) = self.window(&p.id, kind);
            out.insert(
                kind,
                Window {
                    map,
                    offset: window << 16,
                },
            );
        }
        out
    }

    /// The pool's window: kept while the pool exists; a new pool takes the
    /// first free window from a hashed start in a hashed map.
    fn window(&mut self, id: &PortId, kind: PoolKind) -> (String, u32) {
        if let Some(w) = self.windows.get(&(id.clone(), kind)) {
            return w.clone();
        }
        let name = format!("{id}/{kind:?}");
        let g = (xxhash64(name.as_bytes(), 0) % u64::from(SLOT_GROUPS)) as u32;
        let map = slot_map(id.family, g);
        let used = self.used.entry(map.clone()).or_default();
        let mut w = (xxhash64(name.as_bytes(), 1) & 0xffff) as u32;
        while used.contains(&w) {
            w = (w + 1) & 0xffff;
        }
        used.insert(w);
        self.maps.insert(map.clone());
        self.windows.insert((id.clone(), kind), (map.clone(), w));
        (map, w)
    }

    fn release_windows(&mut self, id: &PortId, keep: &BTreeMap<PoolKind, Window>) {
        for kind in [PoolKind::Cluster, PoolKind::Local] {
            if keep.contains_key(&kind) {
                continue;
            }
            if let Some((map, w)) = self.windows.remove(&(id.clone(), kind))
                && let Some(u) = self.used.get_mut(&map)
            {
                u.remove(&w);
            }
        }
    }

    fn lower(&mut self, p: &ServicePort) -> Fragment {
        let windows = self.context_windows(p);
        self.release_windows(&p.id, &windows);
        let cx = Context {
            seed: self.seed,
            cluster_cidrs: &self.cluster_cidrs,
            windows: &windows,
        };
        lower_port(p, &cx)
    }

    /// The node IPs that accept node ports (`nodeport-ips`).
    pub fn node_ips(&self) -> &[IpAddr] {
        &self.node_ips
    }

    /// The Service ports the layout programs, by id.
    pub fn ports(&self) -> impl Iterator<Item = &ServicePort> {
        self.ports.values()
    }

    fn insert(&mut self, p: &ServicePort, f: Fragment) {
        self.refs.add(&f);
        self.fragments.insert(p.id.clone(), f);
        self.claims.insert(p);
        self.ports.insert(p.id.clone(), p.clone());
    }

    fn take(&mut self, id: &PortId) -> Option<Fragment> {
        if let Some(p) = self.ports.remove(id) {
            self.claims.remove(&p);
        }
        let f = self.fragments.remove(id)?;
        self.refs.remove(&f);
        Some(f)
    }

    /// Node IPs, cluster IPs and hairpin pairs.
    fn add_base(&self, t: &mut Table) {
        add_base(t, &self.node_ips, &self.refs);
    }
}

/// How many ports need each element of the shared address sets.
#[derive(Debug, Clone, Default)]
struct BaseRefs {
    /// Endpoint addresses (`hairpin` pairs).
    hairpin: BTreeMap<IpAddr, usize>,
    /// ClusterIPs (`cluster-ips`).
    cluster_ips: BTreeMap<IpAddr, usize>,
}

impl BaseRefs {
    fn add(&mut self, f: &Fragment) {
        for ip in &f.hairpin_ips {
            *self.hairpin.entry(*ip).or_default() += 1;
        }
        *self.cluster_ips.entry(f.cluster_ip).or_default() += 1;
    }

    /// These counts, for the addresses `frags` name only.
    fn restricted_to<'a>(&self, frags: impl Iterator<Item = &'a Fragment>) -> Self {
        let mut out = Self::default();
        let copy =
            |from: &BTreeMap<IpAddr, usize>, to: &mut BTreeMap<IpAddr, usize>, ip: IpAddr| {
                if let Some(n) = from.get(&ip) {
                    to.insert(ip, *n);
                }
            };
        for f in frags {
            for ip in &f.hairpin_ips {
                copy(&self.hairpin, &mut out.hairpin, *ip);
            }
            copy(&self.cluster_ips, &mut out.cluster_ips, f.cluster_ip);
        }
        out
    }

    fn remove(&mut self, f: &Fragment) {
        let release = |m: &mut BTreeMap<IpAddr, usize>, ip: &IpAddr| {
            if let Some(n) = m.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(ip);
                }
            }
        };
        for ip in &f.hairpin_ips {
            release(&mut self.hairpin, ip);
        }
        release(&mut self.cluster_ips, &f.cluster_ip);
    }
}

/// Node IPs, cluster IPs and hairpin pairs into the skeleton's sets.
fn add_base(t: &mut Table, node_ips: &[IpAddr], refs: &BaseRefs) {
    let mut put = |set: String, key: Key| {
        if let Some(s) = t.sets.get_mut(&set) {
            s.elements.insert(key, Element::default());
        }
    };
    for ip in node_ips {
        put(nodeport_ips(fam(Family::of(*ip))), Key::one(ip_value(*ip)));
    }
    for ip in refs.cluster_ips.keys() {
        put(cluster_ips(fam(Family::of(*ip))), Key::one(ip_value(*ip)));
    }
    for ip in refs.hairpin.keys() {
        put(hairpin(fam(Family::of(*ip))), hairpin_key(*ip));
    }
}

fn slot_set(name: &str) -> Set {
    let addr = if name.starts_with("slots6") {
        DataType::Ipv6Addr
    } else {
        DataType::Ipv4Addr
    };
    Set::map(
        vec![DataType::Integer(32)],
        vec![addr, DataType::InetService],
    )
}

fn add_fragment(t: &mut Table, f: &Fragment) {
    for (n, c) in &f.chains {
        t.chains.insert(n.clone(), c.clone());
    }
    for (n, s) in &f.sets {
        t.sets.insert(n.clone(), s.clone());
    }
    for (set, k, e) in &f.elements {
        let s = t.sets.entry(set.clone()).or_insert_with(|| slot_set(set));
        s.elements.insert(k.clone(), e.clone());
    }
    for sl in &f.slots {
        let s = t
            .sets
            .entry(sl.window.map.clone())
            .or_insert_with(|| slot_set(&sl.window.map));
        s.elements.extend(sl.elements());
    }
}

/// Elements per message of a batch built directly (each slot element is
/// about 120 bytes of netlink; the kernel's limit per message is 64 KiB).
const ELEMENTS_PER_OP: usize = 256;

fn push_elements(b: &mut Batch, set: &str, elements: impl Iterator<Item = (Key, Element)>) {
    let mut chunk = Vec::with_capacity(ELEMENTS_PER_OP);
    for e in elements {
        chunk.push(e);
        if chunk.len() == ELEMENTS_PER_OP {
            b.push(Op::AddElements {
                set: set.to_owned(),
                elements: std::mem::take(&mut chunk),
            });
        }
    }
    if !chunk.is_empty() {
        b.push(Op::AddElements {
            set: set.to_owned(),
            elements: chunk,
        });
    }
}

/// A change in progress: the old and new fragments of the ports it touches.
struct Change {
    old: Vec<Fragment>,
    new: Vec<Fragment>,
    maps_before: BTreeSet<String>,
}

impl Change {
    fn new(l: &Layout) -> Self {
        Self {
            old: Vec::new(),
            new: Vec::new(),
            maps_before: l.maps.clone(),
        }
    }

    fn remove(&mut self, l: &mut Layout, id: &PortId) {
        l.release_windows(id, &BTreeMap::new());
        if let Some(f) = l.take(id) {
            self.old.push(f);
        }
    }

    fn replace_ports(&mut self, l: &mut Layout, ports: &[ServicePort]) {
        for p in ports {
            let new = l.lower(p);
            if l.fragments.get(&p.id) == Some(&new) {
                // Same objects; keep the plan (endpoint flags may differ).
                if let Some(old) = l.ports.insert(p.id.clone(), p.clone()) {
                    l.claims.remove(&old);
                }
                l.claims.insert(p);
                continue;
            }
            if let Some(old) = l.take(&p.id) {
                self.old.push(old);
            }
            l.insert(p, new.clone());
            self.new.push(new);
        }
    }

    /// The batch: a diff of two small tables holding only the touched
    /// fragments, the fixed part and the base sets.
    fn finish(self, l: &mut Layout) -> Result<Batch> {
        if !l.synced {
            l.synced = true;
            return Ok(l.create_batch());
        }
        let touched: BTreeSet<&String> = self
            .old
            .iter()
            .chain(&self.new)
            .flat_map(|f| f.slots.iter().map(|s| &s.window.map))
            .collect();
        let sub = |frags: &[Fragment], maps: &BTreeSet<String>, refs: &BaseRefs| {
            let mut t = skeleton();
            add_base(&mut t, &l.node_ips, refs);
            for m in touched.iter().filter(|m| maps.contains(**m)) {
                t.sets.insert((*m).clone(), slot_set(m));
            }
            for f in frags {
                add_fragment(&mut t, f);
            }
            t
        };
        // The base sets' elements only change with fragments, so both
        // sides hold just the addresses the change's fragments name (with
        // 10,000 Services, every ClusterIP on both sides made one Service's
        // update 20 times slower): after, as the layout counts them;
        // before, with what the change removed put back and what it added
        // taken out.
        let after = l.refs.restricted_to(self.old.iter().chain(&self.new));
        let mut before = after.clone();
        for f in &self.new {
            before.remove(f);
        }
        for f in &self.old {
            before.add(f);
        }
        let old = sub(&self.old, &self.maps_before, &before);
        let new = sub(&self.new, &l.maps, &after);
        Ok(diff(Some(&old), &new)?)
    }
}

#[cfg(test)]
mod tests;
