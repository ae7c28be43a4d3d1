//! Lowering a [`PolicySet`] to an nftables ruleset (table
//! `inet k8snet-policy`), and with the `linux` feature enforcing it.
//!
//! # Layout
//!
//! The ruleset is meant for the **node** network namespace and filters the
//! `forward` hook, so it sees traffic between pods that the node *routes*:
//! each pod is a veth whose node end is its gateway (a /32 route per pod,
//! as Calico and Cilium's routed mode do). Same-node pod-to-pod traffic is
//! routed too and therefore filtered. Pods on a Linux bridge are **not**
//! covered (bridged frames skip the `inet` forward hook unless
//! `br_netfilter` is loaded); that is the documented choice. Traffic
//! between a bridged pod and anything off its bridge is routed through
//! the bridge's gateway address, so it is filtered like a routed pod's.
//!
//! ```text
//! table inet k8snet-policy {
//!     set id-0-v4 { type ipv4_addr; elements = { 198.18.0.2 } }  # pods of identity 0
//!     set id-0-v6 { type ipv6_addr; ... }
//!     set pods4 { type ipv4_addr; ... }                # every pod address: the pod network
//!     set pods6 { type ipv6_addr; ... }
//!     map pairs4 { type ipv4_addr . ipv4_addr : verdict; ... }     # exceptions
//!     map from4 { type ipv4_addr : verdict; elements = { 198.18.0.3 : goto from-1 } }
//!     map to4 { type ipv4_addr : verdict; elements = { 198.18.0.2 : goto to-0 } }
//!     map out4-0 { type ipv4_addr : verdict; flags interval;  # egress to outside
//!                  elements = { 198.19.200.0/24 : goto conn-1 } }
//!     map in4-0 { type ipv4_addr : verdict; flags interval;   # ingress from outside
//!                 elements = { 0.0.0.0-198.19.199.255 : goto conn-0, ... } }
//!     chain forward {
//!         type filter hook forward priority 0; policy accept;
//!         ct state established,related accept
//!         ip saddr . ip daddr vmap @pairs4
//!         ip6 saddr . ip6 daddr vmap @pairs6
//!         ip saddr vmap @from4
//!         ip6 saddr vmap @from6
//!         ip saddr @pods4 accept
//!         ip6 saddr @pods6 accept
//!         ip daddr vmap @to4
//!         ip6 daddr vmap @to6
//!     }
//!     chain from-1 {                       # what identity 1 may open
//!         ip daddr @id-0-v4 goto conn-0
//!         ip6 daddr @id-0-v6 goto conn-0
//!         ip daddr @pods4 accept           # only when it has an outside row
//!         ip daddr vmap @out4-0
//!     }
//!     chain to-0 {                         # what outside addresses may open
//!         ip saddr vmap @in4-0
//!         ip6 saddr vmap @in6-0
//!     }
//!     chain conn-0 {                       # one chain per distinct allowed set
//!         meta l4proto tcp th dport 80 counter accept
//!         log prefix "k8snet-policy deny a-80: " counter drop
//!     }
//! }
//! ```
//!
//! **Between pods.** Pods are grouped by their policy identity
//! (namespace, labels, named ports), and each identity's addresses form
//! the named sets `id-<n>-v4`/`id-<n>-v6`. What a source may open to a
//! destination is the exact [`Matrix`] cell of the pair (the port space
//! cut at every rule boundary, both directions combined). When every pod
//! pair of two identities has the same cell, the source identity's chain
//! `from-<n>` (reached through the `from4`/`from6` verdict maps, keyed by
//! source address) sends the destination identity's set to the chain of
//! that cell; a cell allowing everything needs no rule. When the cells
//! differ inside an identity pair (an `ipBlock` that holds some pods'
//! addresses), every address pair becomes an element of `pairs4`/`pairs6`,
//! which are looked up first. A cell chain `conn-<n>` lists the allowed
//! (protocol, port range) pairs, each with a counter, and ends in a
//! counted drop, optionally logged with the policies that deny a sample
//! port of the pair; chains are shared by equal cells.
//!
//! **Between a pod and the outside.** The pod network is the set of pod
//! addresses the [`PolicySet`] knows (`pods4`/`pods6`); every other
//! address (outside clients, nodes, host-network pods, Service IPs that
//! were not translated) is outside. Each address family is cut into
//! ranges at the first address of every CIDR and `except` some peer set
//! holds (`ipBlock`s, `networks`, `nodes` addresses) and after its last,
//! so every outside address of a range gets the same verdicts. For each
//! identity and family the cells towards (egress) and from (ingress) each
//! range form a *row*; adjacent ranges with equal cells merge, and ranges
//! whose cell allows everything are left out. A non-empty egress row is an
//! interval verdict map `out4-<n>`/`out6-<n>`, looked up at the end of the
//! identity's `from-<n>` chain after `@pods4`/`@pods6` (pod destinations)
//! are accepted. A non-empty ingress row is an interval map
//! `in4-<n>`/`in6-<n>`, reached from the `to4`/`to6` maps (keyed by the
//! pod's address) through chain `to-<n>`, only for sources outside the
//! pod network (pod sources are decided before). Equal rows share a map.
//! Ingress from the pod's **own node** is always allowed (the API's
//! node-local exemption, [`PolicySet::verdict`]'s `NodeLocal`): each of the
//! pod's node addresses (`status.hostIP`, the Node's addresses) is an
//! `accept` element `node . pod` of `pairs4`/`pairs6`. Traffic from the
//! node namespace itself is local output and never crosses the forward
//! hook, so it is never filtered. Host-network pods are addresses like
//! any other outside one (as [`PolicySet::verdict`] treats an address:
//! [`crate::HostNetwork`] only matters for flows that name them).
//!
//! So for every flow that crosses the forward hook (pod to pod, pod to
//! outside, outside to pod) the ruleset decides exactly as
//! [`PolicySet::verdict`] for TCP, UDP and SCTP, IPv4 and IPv6; flows
//! between two outside addresses are accepted, as `verdict()` allows
//! them. Protocols other than TCP, UDP and SCTP (ICMP) are accepted only
//! where the pair (or range) allows everything.
//!
//! The two directions are combined per identity pair rather than kept as
//! separate egress and ingress maps: a pair's verdict is one lookup, and
//! the rule count grows with the square of the identities (not of pods).
//! Outside ranges add two interval maps per distinct row, whose elements
//! grow with the CIDR boundaries the policies mention, not with the pods;
//! lookups in them are O(log n) (rbtree).
//!
//! **Scope.** Only the forward hook is filtered. A pod's traffic to the
//! node's *own* addresses (input hook: a DNS server or proxy in the node
//! namespace) is not filtered, although [`PolicySet::verdict`] applies
//! the pod's egress rules to it; nor is the node's own traffic to its pods
//! (output hook), which `verdict()` allows when it knows the node's
//! addresses. Rules grow with the square of the identities; this layout
//! suits clusters with up to a few hundred identities.
//!
//! Connection tracking makes replies and established connections pass
//! first, so an update (one transaction, see [`k8snet_nft::diff`]) keeps
//! open allowed connections alive even when their pair is now denied for
//! new connections.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use k8snet_model::{NsName, Protocol};
use k8snet_nft::{
    Chain, ChainType, DataType, Element, Family, Hook, Key, MapValue, Policy, Rule, Set, SetFlags,
    Table, Value,
};

use crate::compile::PolicySet;
use crate::compile::policies::{EGRESS, INGRESS};
use crate::connset::ConnSet;
use crate::explain::{Decision, Reason};
use crate::flow::{Endpoint, Flow, Verdict};
use crate::matrix::{self, Matrix, MatrixEndpoint, MatrixOptions, external};

/// The name of the table.
pub const TABLE: &str = "k8snet-policy";

/// How to lower a policy set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RulesetOptions {
    /// Log denied connection attempts (`log prefix "k8snet-policy deny
    /// <policy>: "`).
    pub log: bool,
}

impl RulesetOptions {
    /// With logging of denials on or off.
    pub fn with_log(mut self, log: bool) -> Self {
        self.log = log;
        self
    }
}

fn rule(text: &str) -> Rule {
    // Every text here is built from a fixed grammar the parser accepts
    // (unit tests render and parse each shape).
    text.parse()
        .unwrap_or_else(|e| panic!("k8snet-policy built an invalid rule {text:?}: {e}"))
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
        _ => "tcp",
    }
}

/// A (protocol, port) the set does not hold, if any.
fn sample_denied(conns: &ConnSet) -> Option<(Protocol, u16)> {
    for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
        let mut next: u32 = 1;
        for &(lo, hi) in conns.ranges(p) {
            if u32::from(lo) > next {
                break;
            }
            next = u32::from(hi) + 1;
        }
        if let Ok(port) = u16::try_from(next) {
            return Some((p, port));
        }
    }
    None
}

/// The policies that deny a direction, for the log prefix.
fn denier(d: &Decision) -> Option<String> {
    if d.verdict == Verdict::Allow {
        return None;
    }
    Some(match &d.reason {
        Reason::Rule(r) => r.policy.name.clone(),
        Reason::Isolated { policies } => policies
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        _ => "unknown".to_string(),
    })
}

fn log_prefix(set: &PolicySet, src: &Endpoint, dst: &Endpoint, conns: &ConnSet) -> String {
    let who = sample_denied(conns).map(|(p, port)| {
        let why = set.explain(&Flow::new(src.clone(), dst.clone(), p, port));
        [denier(&why.egress), denier(&why.ingress)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(",")
    });
    let mut prefix = format!("k8snet-policy deny {}", who.unwrap_or_default());
    // nft log prefixes hold at most 127 bytes; keep room for rule text.
    let mut cut = prefix.len().min(60);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    prefix.truncate(cut);
    prefix.retain(|c| c != '"' && c != '\\');
    prefix.push_str(": ");
    prefix
}

/// The chain body for an allowed set (never "all").
fn conn_chain(conns: &ConnSet, log: Option<&str>) -> Chain {
    let mut chain = Chain::regular();
    for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
        for &(lo, hi) in conns.ranges(p) {
            let ports = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            };
            chain = chain.with_rule(rule(&format!(
                "meta l4proto {} th dport {ports} counter accept",
                proto_name(p)
            )));
        }
    }
    match log {
        Some(prefix) => chain.with_rule(rule(&format!("log prefix \"{prefix}\" counter drop"))),
        None => chain.with_rule(rule("counter drop")),
    }
}

/// A pod of an identity.
#[derive(Debug, Clone, Copy)]
struct Member<'a> {
    /// Its row in the pods-only matrix.
    index: usize,
    name: &'a NsName,
    ips: &'a [IpAddr],
    /// The addresses of its node (traffic from them is node-local).
    node_ips: &'a [IpAddr],
}

/// The cell chains, shared by equal (allowed set, log prefix).
struct ConnChains<'a> {
    set: &'a PolicySet,
    log: bool,
    /// (allowed set, log prefix) -> (chain name, chain).
    chains: BTreeMap<(String, Option<String>), (String, Chain)>,
}

impl ConnChains<'_> {
    /// Where a connection `src -> dst` that may use `conns` goes: accept
    /// when `conns` is everything, else the chain of `conns`.
    fn target(&mut self, src: &Endpoint, dst: &Endpoint, conns: &ConnSet) -> k8snet_nft::Verdict {
        if conns.is_all() {
            return k8snet_nft::Verdict::Accept;
        }
        let prefix = self.log.then(|| log_prefix(self.set, src, dst, conns));
        let n = self.chains.len();
        let (name, _) = self
            .chains
            .entry((conns.to_string(), prefix.clone()))
            .or_insert_with(|| (format!("conn-{n}"), conn_chain(conns, prefix.as_deref())));
        k8snet_nft::Verdict::Goto(name.clone())
    }
}

/// One family's verdicts for addresses outside the pod network: merged
/// inclusive ranges of address bits, those that accept left out.
type Row = Vec<(u128, u128, k8snet_nft::Verdict)>;

/// The external address space of one family, as the ranges of
/// [`external::ranges`] with a representative each: the first address of
/// the range that is neither a pod's nor a pod's node's, so it stands for
/// every address of the range (`None`: pod addresses only, which the
/// ruleset decides elsewhere, so the range's verdict does not matter). A
/// range holding nothing but pod and node addresses is split into single
/// addresses, so each node address is its own representative.
struct Space {
    v6: bool,
    ranges: Vec<(u128, u128, Option<IpAddr>)>,
}

impl Space {
    fn new(set: &PolicySet, v6: bool, pods: &HashSet<IpAddr>, nodes: &HashSet<IpAddr>) -> Self {
        let taken = |ip: &IpAddr| pods.contains(ip) || nodes.contains(ip);
        let mut ranges = Vec::new();
        for (a, b) in external::ranges(set, v6) {
            // Each step past `a` skips one taken address: bounded.
            let mut x = a;
            let free = loop {
                let ip = external::addr(v6, x);
                if !taken(&ip) {
                    break Some(ip);
                }
                if x == b {
                    break None;
                }
                x += 1;
            };
            match free {
                Some(rep) => ranges.push((a, b, Some(rep))),
                // At most as many addresses as pods and nodes hold.
                None => ranges.extend((a..=b).map(|x| {
                    let ip = external::addr(v6, x);
                    (x, x, (!pods.contains(&ip)).then_some(ip))
                })),
            }
        }
        Self { v6, ranges }
    }

    /// The row `decide` gives the representatives. Ranges of pod
    /// addresses only take their neighbour's verdict, so they merge.
    fn row(&self, mut decide: impl FnMut(IpAddr) -> k8snet_nft::Verdict) -> Row {
        let mut values: Vec<Option<k8snet_nft::Verdict>> = self
            .ranges
            .iter()
            .map(|&(_, _, rep)| rep.map(&mut decide))
            .collect();
        let first = values.iter().flatten().next().cloned();
        let mut last = first;
        for v in &mut values {
            match v {
                Some(v) => last = Some(v.clone()),
                None => v.clone_from(&last),
            }
        }
        let mut row: Row = Vec::new();
        for (&(a, b, _), v) in self.ranges.iter().zip(values) {
            let Some(v) = v else { continue };
            match row.last_mut() {
                Some((_, end, prev)) if *prev == v && end.checked_add(1) == Some(a) => *end = b,
                _ => row.push((a, b, v)),
            }
        }
        row.retain(|(_, _, v)| *v != k8snet_nft::Verdict::Accept);
        row
    }

    fn value(&self, n: u128) -> Value {
        match external::addr(self.v6, n) {
            IpAddr::V4(a) => Value::Ipv4(a),
            IpAddr::V6(a) => Value::Ipv6(a),
        }
    }

    /// The row as an interval verdict map.
    fn map(&self, row: &Row) -> Set {
        let ty = if self.v6 {
            DataType::Ipv6Addr
        } else {
            DataType::Ipv4Addr
        };
        let mut map = Set::verdict_map(vec![ty]).with_flags(SetFlags {
            interval: true,
            ..SetFlags::default()
        });
        for (a, b, v) in row {
            let element = Element {
                end: (a != b).then(|| Key(vec![self.value(*b)])),
                value: Some(MapValue::Verdict(v.clone())),
                ..Element::default()
            };
            map.elements.insert(Key(vec![self.value(*a)]), element);
        }
        map
    }
}

/// Interval maps named `<stem><n>`, one per distinct row.
struct RowMaps {
    stem: &'static str,
    maps: BTreeMap<Row, String>,
}

impl RowMaps {
    fn new(stem: &'static str) -> Self {
        Self {
            stem,
            maps: BTreeMap::new(),
        }
    }

    /// The name of the map holding `row` (`None` for an empty row: every
    /// address accepted).
    fn name(&mut self, row: Row) -> Option<String> {
        if row.is_empty() {
            return None;
        }
        let n = self.maps.len();
        let stem = self.stem;
        Some(
            self.maps
                .entry(row)
                .or_insert_with(|| format!("{stem}{n}"))
                .clone(),
        )
    }

    fn add_to(self, mut table: Table, space: &Space) -> Table {
        for (row, name) in self.maps {
            table = table.with_set(&name, space.map(&row));
        }
        table
    }
}

/// Whether an identity's program for `dir` allows every flow whatever
/// the peer (not isolated, no admin or baseline entries), as
/// [`PolicySet::verdict`] decides: its outside row is then empty.
fn allows_all(set: &PolicySet, identity: u32, dir: usize) -> bool {
    set.world.hot.get(identity as usize).is_none_or(|h| {
        let p = &h.programs[dir];
        let (admin, _, baseline) = p.tiers();
        !p.isolated && admin.is_empty() && baseline.is_empty()
    })
}

fn map_element(ip: IpAddr, verdict: k8snet_nft::Verdict) -> (bool, Key, MapValue) {
    let value = MapValue::Verdict(verdict);
    match ip {
        IpAddr::V4(a) => (false, Key(vec![Value::Ipv4(a)]), value),
        IpAddr::V6(a) => (true, Key(vec![Value::Ipv6(a)]), value),
    }
}

/// Lowers a policy set to the desired state of table `inet k8snet-policy`.
///
/// ```
/// use k8snet_model::{Cluster, Manifests};
/// use k8snet_policy::{Options, PolicySet, RulesetOptions, ruleset};
/// let mut m = Manifests::new();
/// m.load_str("m.yaml", "
/// apiVersion: v1
/// kind: Pod
/// metadata: {name: a, namespace: x, labels: {pod: a}}
/// status: {podIP: 198.18.0.2}
/// ---
/// apiVersion: v1
/// kind: Pod
/// metadata: {name: b, namespace: x, labels: {pod: b}}
/// status: {podIP: 198.18.0.3}
/// ---
/// apiVersion: networking.k8s.io/v1
/// kind: NetworkPolicy
/// metadata: {name: a-80, namespace: x}
/// spec: {podSelector: {matchLabels: {pod: a}}, ingress: [{ports: [{port: 80}]}]}
/// ");
/// let set = PolicySet::compile(&Cluster::from_manifests(&m), &Options::default());
/// let text = k8snet_nft::render(&ruleset(&set, &RulesetOptions::default()));
/// assert!(text.contains("198.18.0.3 : goto from-1"), "{text}");
/// assert!(text.contains("ip daddr @id-0-v4 goto conn-0"), "{text}");
/// assert!(!text.contains("chain from-0"), "x/a may open anything: {text}");
/// assert!(text.contains("meta l4proto tcp th dport 80 counter accept"), "{text}");
/// // Outside the pod network, x/a admits TCP 80 only too.
/// assert!(text.contains("198.18.0.2 : goto to-0"), "{text}");
/// assert!(text.contains("0.0.0.0/0 : goto conn-0"), "{text}");
/// ```
pub fn ruleset(set: &PolicySet, options: &RulesetOptions) -> Table {
    let matrix = Matrix::build(
        set,
        &MatrixOptions {
            pods_only: true,
            ..MatrixOptions::default()
        },
    );
    let index: BTreeMap<&NsName, usize> = matrix
        .endpoints()
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            MatrixEndpoint::Pod(k) => Some((k, i)),
            MatrixEndpoint::External(_) => None,
        })
        .collect();
    // Identities with their pods, named by the order of their first pod's
    // name so names are deterministic.
    let mut by_identity: BTreeMap<u32, Vec<Member<'_>>> = BTreeMap::new();
    for (_, slot) in set.world.pod_slots() {
        if let Some(&i) = index.get(&slot.key) {
            by_identity.entry(slot.identity).or_default().push(Member {
                index: i,
                name: &slot.key,
                ips: &slot.ips,
                node_ips: &slot.node_ips,
            });
        }
    }
    let mut by_first: Vec<(u32, Vec<Member<'_>>)> = by_identity.into_iter().collect();
    for (_, c) in &mut by_first {
        c.sort_by_key(|p| p.name);
    }
    by_first.sort_by(|a, b| {
        a.1.first()
            .map(|p| p.name)
            .cmp(&b.1.first().map(|p| p.name))
    });
    let (identities, classes): (Vec<u32>, Vec<Vec<Member<'_>>>) = by_first.into_iter().unzip();

    let mut table = Table::new(Family::Inet, TABLE);
    let mut pairs4 = Set::verdict_map(vec![DataType::Ipv4Addr, DataType::Ipv4Addr]);
    let mut pairs6 = Set::verdict_map(vec![DataType::Ipv6Addr, DataType::Ipv6Addr]);
    let mut from4 = Set::verdict_map(vec![DataType::Ipv4Addr]);
    let mut from6 = Set::verdict_map(vec![DataType::Ipv6Addr]);
    let mut to4 = Set::verdict_map(vec![DataType::Ipv4Addr]);
    let mut to6 = Set::verdict_map(vec![DataType::Ipv6Addr]);
    let mut pods4 = Set::new(vec![DataType::Ipv4Addr]);
    let mut pods6 = Set::new(vec![DataType::Ipv6Addr]);
    for (n, class) in classes.iter().enumerate() {
        let mut v4 = Set::new(vec![DataType::Ipv4Addr]);
        let mut v6 = Set::new(vec![DataType::Ipv6Addr]);
        for ip in class.iter().flat_map(|p| p.ips) {
            match ip {
                IpAddr::V4(a) => v4 = v4.with_element(Key(vec![Value::Ipv4(*a)])),
                IpAddr::V6(a) => v6 = v6.with_element(Key(vec![Value::Ipv6(*a)])),
            }
        }
        pods4.elements.extend(v4.elements.clone());
        pods6.elements.extend(v6.elements.clone());
        table = table
            .with_set(&format!("id-{n}-v4"), v4)
            .with_set(&format!("id-{n}-v6"), v6);
    }
    let pod_ips: HashSet<IpAddr> = classes
        .iter()
        .flatten()
        .flat_map(|p| p.ips.iter().copied())
        .collect();
    let node_ips: HashSet<IpAddr> = classes
        .iter()
        .flatten()
        .flat_map(|p| p.node_ips.iter().copied())
        .collect();
    let spaces = [
        Space::new(set, false, &pod_ips, &node_ips),
        Space::new(set, true, &pod_ips, &node_ips),
    ];
    let mut conns = ConnChains {
        set,
        log: options.log,
        chains: BTreeMap::new(),
    };
    let mut out_maps = [RowMaps::new("out4-"), RowMaps::new("out6-")];
    let mut in_maps = [RowMaps::new("in4-"), RowMaps::new("in6-")];
    // (in4 map, in6 map) -> to-chain name.
    let mut to_chains: BTreeMap<(Option<String>, Option<String>), String> = BTreeMap::new();
    for (a, src_class) in classes.iter().enumerate() {
        let mut from = Chain::regular();
        for (b, dst_class) in classes.iter().enumerate() {
            let cells: Vec<_> = src_class
                .iter()
                .flat_map(|s| dst_class.iter().map(move |d| (s, d)))
                .filter(|(s, d)| s.index != d.index)
                .filter_map(|(s, d)| Some((s, d, &matrix.cell(s.index, d.index)?.conns)))
                .collect();
            let Some(&(s0, d0, first)) = cells.first() else {
                continue;
            };
            let pod = |m: &Member<'_>| Endpoint::Pod(m.name.clone());
            if cells.iter().all(|(_, _, c)| *c == first) {
                // Uniform: one rule per family on the identity sets.
                let k8snet_nft::Verdict::Goto(verdict) = conns.target(&pod(s0), &pod(d0), first)
                else {
                    continue;
                };
                from = from
                    .with_rule(rule(&format!("ip daddr @id-{b}-v4 goto {verdict}")))
                    .with_rule(rule(&format!("ip6 daddr @id-{b}-v6 goto {verdict}")));
                continue;
            }
            // Not uniform (an ipBlock that holds some pods' addresses):
            // every pair of addresses is an exception, looked up first.
            for (s, d, c) in cells {
                let verdict = conns.target(&pod(s), &pod(d), c);
                for sip in s.ips {
                    for dip in d.ips {
                        let value = MapValue::Verdict(verdict.clone());
                        match (sip, dip) {
                            (IpAddr::V4(x), IpAddr::V4(y)) => {
                                let key = Key(vec![Value::Ipv4(*x), Value::Ipv4(*y)]);
                                pairs4 = pairs4.with_mapping(key, value);
                            }
                            (IpAddr::V6(x), IpAddr::V6(y)) => {
                                let key = Key(vec![Value::Ipv6(*x), Value::Ipv6(*y)]);
                                pairs6 = pairs6.with_mapping(key, value);
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        // Egress to addresses outside the pod network: the identity's
        // row of external ranges (named ports never match there, so any
        // pod of the identity stands for all).
        let has = |class: &[Member<'_>], v6: bool| {
            class
                .iter()
                .flat_map(|p| p.ips)
                .any(|ip| ip.is_ipv6() == v6)
        };
        let src = Endpoint::Pod(src_class[0].name.clone());
        for (space, maps) in spaces.iter().zip(&mut out_maps) {
            if !has(src_class, space.v6) || allows_all(set, identities[a], EGRESS) {
                continue;
            }
            let row = space.row(|rep| {
                let dst = Endpoint::Ip(rep);
                let c = matrix::cell(set, &src, &dst, &MatrixOptions::default()).conns;
                conns.target(&src, &dst, &c)
            });
            if let Some(map) = maps.name(row) {
                let ip = if space.v6 { "ip6" } else { "ip" };
                let pods = if space.v6 { "pods6" } else { "pods4" };
                from = from
                    .with_rule(rule(&format!("{ip} daddr @{pods} accept")))
                    .with_rule(rule(&format!("{ip} daddr vmap @{map}")));
            }
        }
        if !from.rules.is_empty() {
            let name = format!("from-{a}");
            for &ip in src_class.iter().flat_map(|p| p.ips) {
                match map_element(ip, k8snet_nft::Verdict::Goto(name.clone())) {
                    (false, k, v) => from4 = from4.with_mapping(k, v),
                    (true, k, v) => from6 = from6.with_mapping(k, v),
                }
            }
            table = table.with_chain(&name, from);
        }
        // Ingress from addresses outside the pod network: the identity's
        // row, decided for a pod of it whose node the address is not (the
        // node's own addresses are exempt per pod, through `pairs`).
        let mut names: [Option<String>; 2] = [None, None];
        for ((space, maps), name) in spaces.iter().zip(&mut in_maps).zip(&mut names) {
            if !has(src_class, space.v6) || allows_all(set, identities[a], INGRESS) {
                continue;
            }
            let row = space.row(|rep| {
                // Only a single-address range is a node address; pods on
                // that node admit it through `pairs` whatever this says.
                let m = src_class
                    .iter()
                    .find(|m| !m.node_ips.contains(&rep))
                    .unwrap_or(&src_class[0]);
                let (src, dst) = (Endpoint::Ip(rep), Endpoint::Pod(m.name.clone()));
                let c = matrix::cell(set, &src, &dst, &MatrixOptions::default()).conns;
                conns.target(&src, &dst, &c)
            });
            *name = maps.name(row);
        }
        if names.iter().all(Option::is_none) {
            continue;
        }
        let n = to_chains.len();
        let to = to_chains
            .entry((names[0].clone(), names[1].clone()))
            .or_insert_with(|| format!("to-{n}"))
            .clone();
        for m in src_class {
            for &ip in m.ips {
                if names[usize::from(ip.is_ipv6())].is_none() {
                    continue;
                }
                match map_element(ip, k8snet_nft::Verdict::Goto(to.clone())) {
                    (false, k, v) => to4 = to4.with_mapping(k, v),
                    (true, k, v) => to6 = to6.with_mapping(k, v),
                }
                // Traffic from the pod's own node is always admitted.
                for &node in m.node_ips.iter().filter(|n| !pod_ips.contains(n)) {
                    let value = MapValue::Verdict(k8snet_nft::Verdict::Accept);
                    match (node, ip) {
                        (IpAddr::V4(x), IpAddr::V4(y)) => {
                            pairs4 = pairs4
                                .with_mapping(Key(vec![Value::Ipv4(x), Value::Ipv4(y)]), value);
                        }
                        (IpAddr::V6(x), IpAddr::V6(y)) => {
                            pairs6 = pairs6
                                .with_mapping(Key(vec![Value::Ipv6(x), Value::Ipv6(y)]), value);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    for ((in4, in6), name) in to_chains {
        let mut chain = Chain::regular();
        if let Some(m) = in4 {
            chain = chain.with_rule(rule(&format!("ip saddr vmap @{m}")));
        }
        if let Some(m) = in6 {
            chain = chain.with_rule(rule(&format!("ip6 saddr vmap @{m}")));
        }
        table = table.with_chain(&name, chain);
    }
    let [out4, out6] = out_maps;
    let [in4, in6] = in_maps;
    table = out4.add_to(table, &spaces[0]);
    table = out6.add_to(table, &spaces[1]);
    table = in4.add_to(table, &spaces[0]);
    table = in6.add_to(table, &spaces[1]);
    let forward = Chain::base(ChainType::Filter, Hook::Forward, 0, Policy::Accept)
        .with_rule(rule("ct state established,related accept"))
        .with_rule(rule("ip saddr . ip daddr vmap @pairs4"))
        .with_rule(rule("ip6 saddr . ip6 daddr vmap @pairs6"))
        .with_rule(rule("ip saddr vmap @from4"))
        .with_rule(rule("ip6 saddr vmap @from6"))
        .with_rule(rule("ip saddr @pods4 accept"))
        .with_rule(rule("ip6 saddr @pods6 accept"))
        .with_rule(rule("ip daddr vmap @to4"))
        .with_rule(rule("ip6 daddr vmap @to6"));
    table = table
        .with_set("pods4", pods4)
        .with_set("pods6", pods6)
        .with_set("pairs4", pairs4)
        .with_set("pairs6", pairs6)
        .with_set("from4", from4)
        .with_set("from6", from6)
        .with_set("to4", to4)
        .with_set("to6", to6)
        .with_chain("forward", forward);
    for (name, chain) in conns.chains.into_values() {
        table = table.with_chain(&name, chain);
    }
    table
}

/// Makes the nftables of `nft`'s network namespace enforce `set`: table
/// `inet k8snet-policy` is read back, diffed against [`ruleset`] and the
/// difference applied in one transaction (nothing when equal). If the
/// kernel refuses any part, it keeps the previous ruleset entirely.
///
/// # Errors
///
/// As [`k8snet_nft::Nft::sync`].
#[cfg(all(feature = "linux", target_os = "linux"))]
pub fn enforce(
    nft: &mut k8snet_nft::Nft,
    set: &PolicySet,
    options: &RulesetOptions,
) -> k8snet_nft::Result<k8snet_nft::ApplyStats> {
    nft.sync(&ruleset(set, options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8snet_model::{Cluster, Manifests};

    use crate::options::Options;

    const YAML: &str = "
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
status: {podIPs: [{ip: 198.18.0.2}, {ip: 'fd00:18::2'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {pod: b}}
status: {podIPs: [{ip: 198.18.0.3}, {ip: 'fd00:18::3'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: z, labels: {pod: c}}
status: {podIP: 198.18.0.4}
---
apiVersion: v1
kind: Pod
metadata: {name: d1, namespace: w, labels: {app: d}}
status: {podIP: 198.18.0.5}
---
apiVersion: v1
kind: Pod
metadata: {name: d2, namespace: w, labels: {app: d}}
status: {podIP: 198.18.0.6}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-in, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{podSelector: {}}]
    ports: [{port: 80}, {port: 53, protocol: UDP}, {port: 9000, endPort: 9010}]
  - from: [{ipBlock: {cidr: 198.18.0.5/32}}]
    ports: [{port: 443}]
";

    fn set() -> PolicySet {
        let mut m = Manifests::new();
        m.load_str("t.yaml", YAML);
        assert!(m.errors().is_empty(), "{:?}", m.errors());
        PolicySet::compile(&Cluster::from_manifests(&m), &Options::default())
    }

    #[test]
    fn renders_identity_sets_chains_and_logs() {
        let set = set();
        let t = ruleset(&set, &RulesetOptions::default().with_log(true));
        let text = k8snet_nft::render(&t);
        assert!(
            text.contains("ct state established,related accept"),
            "{text}"
        );
        // Identities by their first pod's name: w/d1+d2 0, x/a 1, x/b 2, z/c 3.
        assert!(text.contains("set id-0-v4 {"), "{text}");
        assert!(
            text.contains("elements = { 198.18.0.5,\n\t\t             198.18.0.6 }"),
            "{text}"
        );
        assert!(text.contains("198.18.0.3 : goto from-2"), "{text}");
        assert!(text.contains("fd00:18::3 : goto from-2"), "{text}");
        assert!(text.contains("ip daddr @id-1-v4 goto conn-"), "{text}");
        assert!(text.contains("ip6 daddr @id-1-v6 goto conn-"), "{text}");
        // w/d1 and w/d2 differ towards x/a (the ipBlock): exceptions.
        assert!(
            text.contains("198.18.0.5 . 198.18.0.2 : goto conn-"),
            "{text}"
        );
        assert!(
            text.contains("198.18.0.6 . 198.18.0.2 : goto conn-"),
            "{text}"
        );
        assert!(
            !text.contains("chain from-1 "),
            "x/a opens anything: {text}"
        );
        assert!(
            text.contains("meta l4proto tcp th dport 80 counter accept"),
            "{text}"
        );
        assert!(
            text.contains("meta l4proto udp th dport 53 counter accept"),
            "{text}"
        );
        assert!(
            text.contains("meta l4proto tcp th dport 9000-9010 counter accept"),
            "{text}"
        );
        assert!(
            text.contains("meta l4proto tcp th dport 443 counter accept"),
            "{text}"
        );
        assert!(
            text.contains("log prefix \"k8snet-policy deny a-in: \" counter drop"),
            "{text}"
        );
        // Round trip through the diff machinery.
        let batch = k8snet_nft::diff(None, &t).unwrap();
        assert_eq!(batch.apply_to(None).unwrap(), Some(t));
    }

    #[test]
    fn chain_decisions_match_verdicts() {
        // Interpret the lowered ruleset for every pod pair and sample port.
        let set = set();
        let t = ruleset(&set, &RulesetOptions::default());
        let pods: Vec<IpAddr> = (2..=6).map(|h| IpAddr::from([198, 18, 0, h])).collect();
        let mut allowed = 0;
        for &s in &pods {
            for &d in &pods {
                if s == d {
                    continue;
                }
                for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                    for port in [1, 53, 79, 80, 81, 443, 8999, 9000, 9005, 9010, 9011, 65535] {
                        let want = set.verdict(&Flow::new(s, d, p, port));
                        let got = simulate(&t, s, d, p, port);
                        assert_eq!(got, want, "{s} -> {d} {p} {port}");
                        allowed += usize::from(got == Verdict::Allow);
                    }
                }
            }
        }
        assert!(allowed > 0);
    }

    /// What the forward chain decides for a new connection: an
    /// interpreter of the rule shapes `ruleset` emits (it panics on any
    /// other shape, so a new shape needs a new arm here).
    fn simulate(t: &Table, s: IpAddr, d: IpAddr, p: Protocol, port: u16) -> Verdict {
        // Falling off the end of the base chain (or of a chain reached by
        // `goto` from it) applies the base chain's policy: accept.
        run_chain(t, "forward", s, d, p, port).unwrap_or(Verdict::Allow)
    }

    fn ip_of(v: &Value) -> IpAddr {
        match v {
            Value::Ipv4(a) => IpAddr::V4(*a),
            Value::Ipv6(a) => IpAddr::V6(*a),
            other => panic!("not an address: {other:?}"),
        }
    }

    /// A map or set lookup: exact for concatenations, by range for
    /// interval elements.
    fn find<'t>(t: &'t Table, set: &str, key: &[IpAddr]) -> Option<&'t k8snet_nft::Element> {
        t.sets[set].elements.iter().find_map(|(k, e)| {
            let start: Vec<IpAddr> = k.0.iter().map(ip_of).collect();
            let hit = match (&e.end, key) {
                (Some(end), [x]) => {
                    let end = ip_of(&end.0[0]);
                    start[0].is_ipv6() == x.is_ipv6() && start[0] <= *x && *x <= end
                }
                (Some(_), _) => panic!("ranges are one-field here"),
                (None, _) => start == key,
            };
            hit.then_some(e)
        })
    }

    fn run_chain(
        t: &Table,
        chain: &str,
        s: IpAddr,
        d: IpAddr,
        p: Protocol,
        port: u16,
    ) -> Option<Verdict> {
        let go = |v: &k8snet_nft::Verdict| match v {
            k8snet_nft::Verdict::Accept => Some(Verdict::Allow),
            k8snet_nft::Verdict::Drop => Some(Verdict::Deny),
            k8snet_nft::Verdict::Goto(c) => run_chain(t, c, s, d, p, port),
            other => panic!("{other:?}"),
        };
        let value = |e: &k8snet_nft::Element| match e.value.as_ref() {
            Some(MapValue::Verdict(v)) => v.clone(),
            other => panic!("{other:?}"),
        };
        for r in &t.chains[chain].rules {
            let text = k8snet_nft::rule_text(r);
            let w: Vec<&str> = text.split_whitespace().collect();
            let family_ok = |f: &str| match f {
                "ip" => s.is_ipv4(),
                "ip6" => s.is_ipv6(),
                other => panic!("{other} in {text}"),
            };
            let field = |f: &str| match f {
                "saddr" => s,
                "daddr" => d,
                other => panic!("{other} in {text}"),
            };
            match w.as_slice() {
                ["ct", "state", "established,related", "accept"] => {}
                [f, "saddr", ".", _, "daddr", "vmap", map] => {
                    if family_ok(f)
                        && let Some(e) = find(t, &map[1..], &[s, d])
                    {
                        return go(&value(e));
                    }
                }
                [f, which, "vmap", map] => {
                    if family_ok(f)
                        && let Some(e) = find(t, &map[1..], &[field(which)])
                    {
                        return go(&value(e));
                    }
                }
                [f, which, set, verdict @ ..] if set.starts_with('@') => {
                    if family_ok(f) && find(t, &set[1..], &[field(which)]).is_some() {
                        return match verdict {
                            ["accept"] => Some(Verdict::Allow),
                            ["goto", c] => run_chain(t, c, s, d, p, port),
                            other => panic!("{other:?}"),
                        };
                    }
                }
                [
                    "meta",
                    "l4proto",
                    proto,
                    "th",
                    "dport",
                    ports,
                    "counter",
                    "accept",
                ] => {
                    let (lo, hi) = match ports.split_once('-') {
                        Some((a, b)) => (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap()),
                        None => (ports.parse().unwrap(), ports.parse().unwrap()),
                    };
                    if *proto == proto_name(p) && lo <= port && port <= hi {
                        return Some(Verdict::Allow);
                    }
                }
                [.., "counter", "drop"] => return Some(Verdict::Deny),
                _ => panic!("unknown rule shape {text:?}"),
            }
        }
        None
    }

    /// Pods on two nodes, dual-stack and IPv4-only, and policies on
    /// addresses outside the pod network: ingress ipBlocks with `except`
    /// (both families), egress that denies an outside range, egress
    /// limited to the pod network, ingress closed to all but the node.
    const EXTERNAL_YAML: &str = "
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
status: {hostIP: 198.19.128.1, podIPs: [{ip: 198.18.0.2}, {ip: 'fd00:18::2'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {pod: b}}
status: {hostIP: 198.19.128.2, podIPs: [{ip: 198.18.1.3}, {ip: 'fd00:18:0:1::3'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b2, namespace: x, labels: {pod: b}}
status: {hostIP: 198.19.128.1, podIPs: [{ip: 198.18.0.6}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: z, labels: {pod: c}}
status: {podIPs: [{ip: 198.18.0.4}, {ip: 'fd00:18::4'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: d, namespace: z, labels: {pod: d}}
status: {podIP: 198.18.0.5}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-in, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{ipBlock: {cidr: 198.19.200.0/24, except: [198.19.200.128/25]}}]
    ports: [{port: 80}]
  - from: [{ipBlock: {cidr: 'fd00:19:2::/64', except: ['fd00:19:2::80/121']}}]
    ports: [{port: 80}, {port: 53, protocol: UDP}]
  - from: [{podSelector: {}}]
    ports: [{port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-in, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-out, namespace: z}
spec:
  podSelector: {matchLabels: {pod: c}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [198.19.200.0/24]}}, {ipBlock: {cidr: '::/0', except: ['fd00:19:2::/64']}}]
  - to: [{ipBlock: {cidr: 198.19.200.128/25}}]
    ports: [{port: 443}]
  # Only cuts the address space: 198.19.128.1-198.19.128.2 is a range of
  # node addresses only (x/a's node and x/b's), each its own verdict.
  - to: [{ipBlock: {cidr: 198.19.128.0/30, except: [198.19.128.0/32, 198.19.128.3/32]}}]
    ports: [{port: 9999}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: d-out, namespace: z}
spec:
  podSelector: {matchLabels: {pod: d}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 198.18.0.0/16}}]
  - ports: [{port: 53, protocol: UDP}]
";

    #[test]
    fn external_and_ipv6_decisions_match_verdicts() {
        let mut m = Manifests::new();
        m.load_str("t.yaml", EXTERNAL_YAML);
        assert!(m.errors().is_empty(), "{:?}", m.errors());
        let set = PolicySet::compile(&Cluster::from_manifests(&m), &Options::default());
        let t = ruleset(&set, &RulesetOptions::default().with_log(true));
        k8snet_nft::validate(&t).unwrap();
        let batch = k8snet_nft::diff(None, &t).unwrap();
        assert_eq!(batch.apply_to(None).unwrap(), Some(t.clone()));
        let text = k8snet_nft::render(&t);
        // Ingress of x/a from outside: the ipBlock minus its except.
        assert!(text.contains("198.19.200.0/25 : goto conn-2"), "{text}");
        assert!(text.contains("flags interval"), "{text}");
        // x/b admits its own node only (198.19.128.2 for b, .1 for b2).
        assert!(
            text.contains("198.19.128.2 . 198.18.1.3 : accept"),
            "{text}"
        );
        assert!(
            text.contains("198.19.128.1 . 198.18.0.6 : accept"),
            "{text}"
        );
        let addrs: Vec<IpAddr> = [
            // pods
            "198.18.0.2",
            "fd00:18::2",
            "198.18.1.3",
            "fd00:18:0:1::3",
            "198.18.0.6",
            "198.18.0.4",
            "fd00:18::4",
            "198.18.0.5",
            // not pods: unused pod-network addresses, nodes, outside clients
            "198.18.0.9",
            "198.19.128.0",
            "198.19.128.1",
            "198.19.128.2",
            "198.19.128.3",
            "198.19.200.5",
            "198.19.200.127",
            "198.19.200.128",
            "198.19.200.200",
            "10.1.2.3",
            "255.255.255.255",
            "0.0.0.0",
            "fd00:19:2::5",
            "fd00:19:2::7f",
            "fd00:19:2::80",
            "fd00:19:2::ff",
            "fd00:19:2::100",
            "fd00:19:1::1",
            "2001:db8::1",
            "::",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let (mut allowed, mut denied, mut external) = (0, 0, 0);
        for &s in &addrs {
            for &d in &addrs {
                if s == d || s.is_ipv6() != d.is_ipv6() {
                    continue;
                }
                for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                    for port in [1, 53, 79, 80, 81, 443, 8080, 65535] {
                        let flow = Flow::new(s, d, p, port);
                        let want = set.verdict(&flow);
                        let got = simulate(&t, s, d, p, port);
                        assert_eq!(got, want, "{flow}");
                        match got {
                            Verdict::Allow => allowed += 1,
                            _ => denied += 1,
                        }
                        external += usize::from(
                            set.explain(&flow).src_pod.is_none()
                                || set.explain(&flow).dst_pod.is_none(),
                        );
                    }
                }
            }
        }
        assert!(
            allowed > 100 && denied > 100 && external > 1000,
            "{allowed} {denied} {external}"
        );
    }
}
