//! Lowering a [`PolicySet`] to an nftables ruleset (table
//! `inet k8snet-policy`), and with the `linux` feature enforcing it.
//! The layout is documented on [`ruleset`].

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use k8snet_nft::{
    Chain, ChainType, DataType, Element, Expr, Family, Field, Hook, Key, KeyExpr, MapValue, Policy,
    Rule, Set, SetFlags, Table, Value, Verdict as NftVerdict,
};
use rustc_hash::FxHasher;

use crate::compile::PolicySet;
use crate::compile::peers::{ANY, PeerSetId};
use crate::compile::policies::{ANY_PORT, CRule, EGRESS, INGRESS, PolicyId, PortMatch};
use crate::compile::program::tier_order;
use crate::compile::world::IdentityId;
use crate::explain::{Action, Tier};
use crate::flow::proto;
use crate::matrix::external;
use crate::options::SelfTraffic;

/// The name of the table.
pub const TABLE: &str = "k8snet-policy";

/// How to lower a policy set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RulesetOptions {
    /// Log denied connection attempts (`log prefix "k8snet-policy deny
    /// <policy>: "`).
    pub log: bool,
    /// Also enforce a pod's egress policy on its traffic to the node's own
    /// addresses (an `input` base chain). Default `false`.
    ///
    /// The API is silent on this corner: [`PolicySet::verdict`] applies
    /// the pod's egress rules to a flow towards a node address, but
    /// node-local DNS caches, kubelet health endpoints and node proxies
    /// listen on the node, and most deployments expect pods to reach them
    /// whatever their egress policy says (a default-deny egress policy
    /// would otherwise cut DNS). So by default only forwarded traffic is
    /// filtered; turn this on to make the kernel match `verdict()` for
    /// pod → node flows too. The node's own traffic to its pods is never
    /// filtered (the API's node-local ingress exemption).
    pub node_input: bool,
}

impl RulesetOptions {
    /// With logging of denials on or off.
    pub fn with_log(mut self, log: bool) -> Self {
        self.log = log;
        self
    }

    /// With pod → node traffic (input hook) filtered by the pod's egress
    /// policy, or not (the default).
    pub fn with_node_input(mut self, on: bool) -> Self {
        self.node_input = on;
        self
    }
}

fn rule(text: &str) -> Rule {
    // Only for the fixed rules of the base chains; unit tests render and
    // parse each of them.
    text.parse()
        .unwrap_or_else(|e| panic!("k8snet-policy built an invalid rule {text:?}: {e}"))
}

/// The families, as indexes: 0 = IPv4, 1 = IPv6.
const FAMILIES: [bool; 2] = [false, true];

fn fam(v6: bool) -> usize {
    usize::from(v6)
}

fn suffix(v6: bool) -> &'static str {
    if v6 { "6" } else { "4" }
}

fn addr_type(v6: bool) -> DataType {
    if v6 {
        DataType::Ipv6Addr
    } else {
        DataType::Ipv4Addr
    }
}

fn value(ip: IpAddr) -> Value {
    match ip {
        IpAddr::V4(a) => Value::Ipv4(a),
        IpAddr::V6(a) => Value::Ipv6(a),
    }
}

/// The address field of a direction's peer (`saddr` for ingress) or of
/// the destination (`daddr`).
fn addr_field(v6: bool, source: bool) -> Field {
    match (v6, source) {
        (false, true) => Field::IpSaddr,
        (false, false) => Field::IpDaddr,
        (true, true) => Field::Ip6Saddr,
        (true, false) => Field::Ip6Daddr,
    }
}

fn lookup(fields: Vec<Field>, set: &str, negate: bool) -> Expr {
    Expr::Lookup {
        key: KeyExpr::Fields(fields),
        set: set.to_string(),
        negate,
    }
}

fn proto_number(bit: u8) -> u8 {
    match bit {
        proto::UDP => 17,
        proto::SCTP => 132,
        _ => 6,
    }
}

/// Inclusive ranges of address bits: sorted, merged where they overlap
/// or touch.
fn merge(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some((_, end)) if end.checked_add(1).is_none_or(|next| a <= next) => {
                *end = (*end).max(b);
            }
            _ => out.push((a, b)),
        }
    }
    out
}

/// `lo..=hi` without the (merged) `holes`.
fn subtract(lo: u128, hi: u128, holes: &[(u128, u128)], out: &mut Vec<(u128, u128)>) {
    let mut from = lo;
    for &(a, b) in holes {
        if b < from || a > hi {
            continue;
        }
        if a > from {
            out.push((from, a - 1));
        }
        match b.checked_add(1) {
            Some(next) => from = next,
            None => return,
        }
        if from > hi {
            return;
        }
    }
    out.push((from, hi));
}

/// A condition of a rule: its expressions and the family it is limited
/// to (`None`: both).
#[derive(Debug, Clone)]
struct Cond {
    v6: Option<bool>,
    exprs: Vec<Expr>,
}

impl Cond {
    fn any() -> Self {
        Self {
            v6: None,
            exprs: Vec::new(),
        }
    }

    fn and(&self, other: &Self) -> Option<Self> {
        let v6 = match (self.v6, other.v6) {
            (Some(a), Some(b)) if a != b => return None,
            (a, b) => a.or(b),
        };
        let mut exprs = self.exprs.clone();
        exprs.extend(other.exprs.iter().cloned());
        Some(Self { v6, exprs })
    }
}

/// The sets of a peer list that hold something, per family.
#[derive(Debug, Clone, Default)]
struct PeerSetNames {
    /// Pods and the blocks that match pods too.
    all: [Option<String>; 2],
    /// Blocks that match only addresses outside the pod network.
    outside: [Option<String>; 2],
}

/// Counts of what a lowered ruleset holds, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RulesetStats {
    /// Chains (base chains included).
    pub chains: usize,
    /// Rules over all chains.
    pub rules: usize,
    /// Named sets and maps.
    pub sets: usize,
    /// Elements over all sets and maps.
    pub elements: usize,
}

impl RulesetStats {
    /// The counts of a table.
    pub fn of(table: &Table) -> Self {
        Self {
            chains: table.chains.len(),
            rules: table.rule_count(),
            sets: table.sets.len(),
            elements: table.sets.values().map(|s| s.elements.len()).sum(),
        }
    }
}

/// What is built while lowering.
struct Builder<'a> {
    set: &'a PolicySet,
    options: &'a RulesetOptions,
    /// The addresses each identity's pods own (index = identity), as the
    /// verdict path attributes them.
    ips: Vec<Vec<IpAddr>>,
    sets: BTreeMap<String, Set>,
    chains: BTreeMap<String, Chain>,
    peer_sets: HashMap<PeerSetId, PeerSetNames>,
    named_sets: HashMap<u32, [Option<String>; 2]>,
    /// (policy, direction) -> its chain (`None`: no rule can match).
    policy_chains: HashMap<(PolicyId, usize), Option<String>>,
}

impl<'a> Builder<'a> {
    fn new(set: &'a PolicySet, options: &'a RulesetOptions) -> Self {
        let world = &set.world;
        let mut ips = vec![Vec::new(); world.identities.len()];
        for (slot_id, slot) in world.pod_slots() {
            for &ip in &slot.ips {
                if world.pod_by_ip(ip).is_some_and(|r| r.slot == slot_id)
                    && let Some(list) = ips.get_mut(slot.identity as usize)
                {
                    list.push(ip);
                }
            }
        }
        for list in &mut ips {
            list.sort_unstable();
        }
        Self {
            set,
            options,
            ips,
            sets: BTreeMap::new(),
            chains: BTreeMap::new(),
            peer_sets: HashMap::new(),
            named_sets: HashMap::new(),
            policy_chains: HashMap::new(),
        }
    }

    /// Adds a chain named `<prefix>-<hash of its rules>` (equal chains
    /// are one) and returns the name.
    fn chain(&mut self, prefix: &str, chain: Chain) -> String {
        let mut h = FxHasher::default();
        chain.rules.hash(&mut h);
        self.chain_named(format!("{prefix}-{:016x}", h.finish()), chain)
    }

    /// Adds a chain named `base` (or `base-<n>` if another chain has that
    /// name) and returns the name.
    fn chain_named(&mut self, base: String, chain: Chain) -> String {
        let mut name = base.clone();
        let mut n = 1;
        loop {
            match self.chains.get(&name) {
                None => {
                    self.chains.insert(name.clone(), chain);
                    return name;
                }
                Some(c) if *c == chain => return name,
                Some(_) => {
                    n += 1;
                    name = format!("{base}-{n}");
                }
            }
        }
    }

    /// Every pod address of a family, as the set `pods4`/`pods6`.
    fn pods_set(&mut self, v6: bool) -> String {
        let name = format!("pods{}", suffix(v6));
        if !self.sets.contains_key(&name) {
            let mut s = Set::new(vec![addr_type(v6)]);
            for ip in self.ips.iter().flatten().filter(|ip| ip.is_ipv6() == v6) {
                s.elements.insert(Key(vec![value(*ip)]), Element::default());
            }
            self.sets.insert(name.clone(), s);
        }
        name
    }

    /// A set of single addresses, or with `interval` of ranges.
    fn address_set(v6: bool, ranges: &[(u128, u128)], interval: bool) -> Set {
        let mut s = Set::new(vec![addr_type(v6)]);
        if interval {
            s = s.with_flags(SetFlags {
                interval: true,
                ..SetFlags::default()
            });
        }
        for &(a, b) in ranges {
            let start = Key(vec![value(external::addr(v6, a))]);
            let end = (a != b).then(|| Key(vec![value(external::addr(v6, b))]));
            s.elements.insert(
                start,
                Element {
                    end,
                    ..Element::default()
                },
            );
        }
        s
    }

    /// The named sets of a peer list.
    fn peer_set(&mut self, id: PeerSetId) -> PeerSetNames {
        if let Some(names) = self.peer_sets.get(&id) {
            return names.clone();
        }
        let peers = &self.set.peers;
        let mut pods: [Vec<(u128, u128)>; 2] = Default::default();
        for (identity, ips) in self.ips.iter().enumerate() {
            if !ips.is_empty() && peers.members.contains(id, identity as IdentityId) {
                for &ip in ips {
                    let (v6, bits) = external::bits(ip);
                    pods[fam(v6)].push((bits, bits));
                }
            }
        }
        let mut blocks: [Vec<(u128, u128)>; 2] = Default::default();
        let mut outside: [Vec<(u128, u128)>; 2] = Default::default();
        let list = peers.list.get(id as usize).map_or(&[][..], |s| &s.blocks);
        for b in list {
            let (v6, lo) = external::bits(b.net.network());
            let (_, hi) = external::bits(b.net.broadcast());
            let holes = merge(
                b.except
                    .iter()
                    .filter(|e| e.network().is_ipv6() == v6)
                    .map(|e| {
                        (
                            external::bits(e.network()).1,
                            external::bits(e.broadcast()).1,
                        )
                    })
                    .collect(),
            );
            let out = if b.pods { &mut blocks } else { &mut outside };
            subtract(lo, hi, &holes, &mut out[fam(v6)]);
        }
        let mut names = PeerSetNames::default();
        for v6 in FAMILIES {
            let f = fam(v6);
            let has_blocks = !blocks[f].is_empty();
            let mut all = std::mem::take(&mut pods[f]);
            all.append(&mut blocks[f]);
            if !all.is_empty() {
                let (name, ranges) = if has_blocks {
                    (format!("pc{id}-{}", suffix(v6)), merge(all))
                } else {
                    (format!("p{id}-{}", suffix(v6)), all)
                };
                let s = Self::address_set(v6, &ranges, has_blocks);
                self.sets.insert(name.clone(), s);
                names.all[f] = Some(name);
            }
            let outside = merge(std::mem::take(&mut outside[f]));
            if !outside.is_empty() {
                let name = format!("px{id}-{}", suffix(v6));
                self.sets
                    .insert(name.clone(), Self::address_set(v6, &outside, true));
                names.outside[f] = Some(name);
            }
        }
        self.peer_sets.insert(id, names.clone());
        names
    }

    /// The sets `address . protocol . port` of a named port, per family.
    fn named_set(&mut self, name: u32) -> [Option<String>; 2] {
        if let Some(names) = self.named_sets.get(&name) {
            return names.clone();
        }
        let types = |v6| vec![addr_type(v6), DataType::InetProto, DataType::InetService];
        let mut sets = [Set::new(types(false)), Set::new(types(true))];
        for (identity, ips) in self.ips.iter().enumerate() {
            let Some(hot) = self.set.world.hot.get(identity) else {
                continue;
            };
            if ips.is_empty() || hot.named.is_empty() {
                continue;
            }
            for bit in [proto::TCP, proto::UDP, proto::SCTP] {
                let Some(port) = crate::compile::world::resolve_named(&hot.named, name, bit) else {
                    continue;
                };
                for &ip in ips {
                    let key = Key(vec![
                        value(ip),
                        Value::Proto(proto_number(bit)),
                        Value::Port(port),
                    ]);
                    sets[fam(ip.is_ipv6())]
                        .elements
                        .insert(key, Element::default());
                }
            }
        }
        let mut names: [Option<String>; 2] = [None, None];
        for (v6, s) in FAMILIES.into_iter().zip(sets) {
            if !s.elements.is_empty() {
                let n = format!("nm{name}-{}", suffix(v6));
                self.sets.insert(n.clone(), s);
                names[fam(v6)] = Some(n);
            }
        }
        self.named_sets.insert(name, names.clone());
        names
    }

    /// The ways a peer list matches (any one suffices); none when it can
    /// match nothing. `source`: the peer is the packet's source.
    fn peer_conds(&mut self, id: PeerSetId, source: bool) -> Vec<Cond> {
        if id == ANY {
            return vec![Cond::any()];
        }
        let names = self.peer_set(id);
        let mut out = Vec::new();
        for v6 in FAMILIES {
            let field = addr_field(v6, source);
            if let Some(s) = &names.all[fam(v6)] {
                out.push(Cond {
                    v6: Some(v6),
                    exprs: vec![lookup(vec![field], s, false)],
                });
            }
            if let Some(s) = &names.outside[fam(v6)] {
                let pods = self.pods_set(v6);
                out.push(Cond {
                    v6: Some(v6),
                    exprs: vec![
                        lookup(vec![field], s, false),
                        lookup(vec![field], &pods, true),
                    ],
                });
            }
        }
        out
    }

    /// The ways a port condition matches.
    fn port_conds(&mut self, p: &PortMatch) -> Vec<Cond> {
        const NAMED: u8 = proto::TCP | proto::UDP | proto::SCTP;
        let l4 = |bit: u8| Expr::eq(Field::MetaL4proto, Value::Proto(proto_number(bit)));
        let bits = [proto::TCP, proto::UDP, proto::SCTP]
            .into_iter()
            .filter(|&b| p.protos & b != 0);
        if p.named != 0 {
            let names = self.named_set(p.named);
            let mut out = Vec::new();
            for v6 in FAMILIES {
                let Some(s) = &names[fam(v6)] else { continue };
                let key = vec![addr_field(v6, false), Field::MetaL4proto, Field::ThDport];
                if p.protos & NAMED == NAMED {
                    out.push(Cond {
                        v6: Some(v6),
                        exprs: vec![lookup(key, s, false)],
                    });
                } else {
                    for bit in bits.clone() {
                        out.push(Cond {
                            v6: Some(v6),
                            exprs: vec![l4(bit), lookup(key.clone(), s, false)],
                        });
                    }
                }
            }
            return out;
        }
        let full = p.lo == 0 && p.hi == u16::MAX;
        if full && p.protos & proto::OTHER != 0 {
            return vec![Cond::any()];
        }
        bits.map(|bit| {
            let mut exprs = vec![l4(bit)];
            if !full {
                exprs.push(if p.lo == p.hi {
                    Expr::eq(Field::ThDport, Value::Port(p.lo))
                } else {
                    Expr::Range {
                        field: Field::ThDport,
                        negate: false,
                        from: Value::Port(p.lo),
                        to: Value::Port(p.hi),
                    }
                });
            }
            Cond { v6: None, exprs }
        })
        .collect()
    }

    /// The rules of one policy rule: every (peer, port) way of matching,
    /// each ending in `tail`.
    fn rule_rules(&mut self, r: &CRule, dir: usize, tail: &[Expr], out: &mut Vec<Rule>) {
        let peers = self.peer_conds(r.peers, dir == INGRESS);
        if peers.is_empty() {
            return;
        }
        let ports = if r.ports.is_empty() {
            std::slice::from_ref(&ANY_PORT)
        } else {
            r.ports.as_slice()
        };
        for port in ports {
            for pc in self.port_conds(port) {
                for peer in &peers {
                    if let Some(c) = peer.and(&pc) {
                        let mut exprs = c.exprs;
                        exprs.extend(tail.iter().cloned());
                        out.push(Rule::new(exprs));
                    }
                }
            }
        }
    }

    /// `[log prefix "k8snet-policy deny <who>: "] counter drop`.
    fn drop_tail(&self, who: &str) -> Vec<Expr> {
        let mut tail = Vec::new();
        if self.options.log {
            let mut prefix = format!("k8snet-policy deny {who}");
            // nft log prefixes hold at most 127 bytes; keep room.
            let mut cut = prefix.len().min(60);
            while !prefix.is_char_boundary(cut) {
                cut -= 1;
            }
            prefix.truncate(cut);
            prefix.retain(|c| c != '"' && c != '\\');
            prefix.push_str(": ");
            tail.push(Expr::Log {
                prefix: Some(prefix),
            });
        }
        tail.push(Expr::Counter);
        tail.push(Expr::Verdict(NftVerdict::Drop));
        tail
    }

    fn accept_tail() -> Vec<Expr> {
        vec![Expr::Counter, Expr::Verdict(NftVerdict::Accept)]
    }

    /// The chain of one NetworkPolicy or baseline policy in a direction:
    /// NetworkPolicy rules accept; baseline rules accept (Allow, Pass) or
    /// drop (Deny), the first match deciding.
    fn policy_chain(&mut self, id: PolicyId, dir: usize) -> Option<String> {
        if let Some(name) = self.policy_chains.get(&(id, dir)) {
            return name.clone();
        }
        let set = self.set;
        let p = set.policies.get(id)?;
        let mut rules = Vec::new();
        for r in &p.rules[dir] {
            let tail = match (p.tier, r.action) {
                (Tier::NetworkPolicy, _) | (_, Action::Allow | Action::Pass) => Self::accept_tail(),
                _ => self.drop_tail(&p.reference.name),
            };
            self.rule_rules(r, dir, &tail, &mut rules);
        }
        // Named by the policy, not by its rules: when its rules change,
        // only this chain is rewritten, and the chains jumping to it stay.
        let name = (!rules.is_empty()).then(|| {
            let chain = rules.into_iter().fold(Chain::regular(), Chain::with_rule);
            let mut h = FxHasher::default();
            p.reference.hash(&mut h);
            let d = if dir == INGRESS { "in" } else { "eg" };
            self.chain_named(format!("r-{:016x}-{d}", h.finish()), chain)
        });
        self.policy_chains.insert((id, dir), name.clone());
        name
    }

    /// The chain deciding one identity's direction (`None`: everything
    /// allowed, so no chain and no map element).
    fn identity_chain(&mut self, identity: IdentityId, dir: usize) -> Option<String> {
        let set = self.set;
        let id = set.world.identities.get(identity as usize)?;
        let [admin, np, baseline] = tier_order(id, &set.policies);
        let isolating: Vec<PolicyId> = np
            .into_iter()
            .filter(|&p| set.policies.get(p).is_some_and(|p| p.isolates[dir]))
            .collect();
        // The tier after the admin tier.
        let next = if isolating.is_empty() {
            let mut chain = Chain::regular();
            for p in baseline {
                if let Some(c) = self.policy_chain(p, dir) {
                    chain = chain.with_rule(Rule::new(vec![Expr::jump(&c)]));
                }
            }
            (!chain.rules.is_empty()).then(|| self.chain("t", chain))
        } else {
            let mut chain = Chain::regular();
            let mut who = Vec::new();
            for &p in &isolating {
                if let Some(c) = self.policy_chain(p, dir) {
                    chain = chain.with_rule(Rule::new(vec![Expr::jump(&c)]));
                }
                if let Some(p) = set.policies.get(p) {
                    who.push(p.reference.name.clone());
                }
            }
            chain = chain.with_rule(Rule::new(self.drop_tail(&who.join(","))));
            Some(self.chain("t", chain))
        };
        let mut rules = Vec::new();
        for p in admin {
            let Some(policy) = set.policies.get(p) else {
                continue;
            };
            for r in &policy.rules[dir] {
                let tail = match (r.action, &next) {
                    (Action::Allow, _) | (Action::Pass, None) => Self::accept_tail(),
                    (Action::Pass, Some(n)) => vec![Expr::Counter, Expr::goto(n)],
                    _ => self.drop_tail(&policy.reference.name),
                };
                self.rule_rules(r, dir, &tail, &mut rules);
            }
        }
        if rules.is_empty() {
            return next;
        }
        if let Some(n) = &next {
            rules.push(Rule::new(vec![Expr::goto(n)]));
        }
        let chain = rules.into_iter().fold(Chain::regular(), Chain::with_rule);
        Some(self.chain("a", chain))
    }
}

/// Lowers a policy set to the desired state of table `inet k8snet-policy`.
///
/// # Layout
///
/// The ruleset is meant for the **node** network namespace and filters the
/// `forward` hook, so it sees traffic between pods that the node *routes*:
/// each pod is a veth whose node end is its gateway (a /32 route per pod,
/// as Calico and Cilium's routed mode do). Same-node pod-to-pod traffic is
/// routed too and therefore filtered. Pods on a Linux bridge are **not**
/// covered (bridged frames skip the `inet` forward hook unless
/// `br_netfilter` is loaded); that is the documented choice. Traffic
/// between a bridged pod and anything off its bridge is routed through
/// the bridge's gateway address, so it is filtered like a routed pod's.
///
/// The two directions are kept apart, each in a base chain of its own on
/// the forward hook: `egress` (priority 0) decides the source pod's
/// egress, `ingress` (priority 1) the destination pod's ingress. A packet
/// must be accepted by both (an `accept` in one base chain hands it to
/// the next; a `drop` is final), which is exactly "the source's egress AND
/// the destination's ingress".
///
/// ```text
/// table inet k8snet-policy {
///     set p3-4 { type ipv4_addr; elements = { 198.18.0.2, ... } }   # peer set 3: its pods
///     set pc5-4 { type ipv4_addr; flags interval;                   # peer set 5: pods + ipBlocks
///                 elements = { 198.18.0.7, 198.19.200.0/25 } }
///     set nm1-4 { type ipv4_addr . inet_proto . inet_service;       # named port "http",
///                 elements = { 198.18.0.2 . tcp . 8080 } }          # resolved per pod
///     set local4 { type ipv4_addr . ipv4_addr; elements = { 198.19.128.1 . 198.18.0.2 } }
///     set same4 { type ipv4_addr . ipv4_addr; elements = { 198.18.0.2 . 198.18.0.2 } }
///     map eg4 { type ipv4_addr : verdict; elements = { 198.18.0.6 : goto t-9f..} }
///     map in4 { type ipv4_addr : verdict; elements = { 198.18.0.2 : goto t-31.. } }
///     chain egress {
///         type filter hook forward priority 0; policy accept;
///         ct state established,related accept
///         ip saddr . ip daddr @same4 accept        # a pod to itself (hairpin)
///         ip6 saddr . ip6 daddr @same6 accept
///         ip saddr vmap @eg4
///         ip6 saddr vmap @eg6
///     }
///     chain ingress {
///         type filter hook forward priority 1; policy accept;
///         ct state established,related accept
///         ip saddr . ip daddr @same4 accept
///         ip6 saddr . ip6 daddr @same6 accept
///         ip saddr . ip daddr @local4 accept       # the pod's own node
///         ip6 saddr . ip6 daddr @local6 accept
///         ip daddr vmap @in4
///         ip6 daddr vmap @in6
///     }
///     chain a-0c..  {                             # admin tier of some identities
///         ip saddr @p7-4 meta l4proto tcp counter accept            # Allow
///         ip saddr @p8-4 counter goto t-31..                        # Pass
///         ip saddr @pc9-4 log prefix "..." counter drop              # Deny
///         goto t-31..
///     }
///     chain t-31.. {                              # NetworkPolicy tier, isolated
///         jump r-77..                             # one chain per policy and direction
///         jump r-5a..
///         log prefix "k8snet-policy deny web-ingress: " counter drop
///     }
///     chain r-77.. {                              # a NetworkPolicy's ingress rules
///         ip saddr @p3-4 meta l4proto tcp th dport 80 counter accept
///         ip saddr @p3-4 ip daddr . meta l4proto . th dport @nm1-4 counter accept
///     }
/// }
/// ```
///
/// **Dispatch.** The verdict maps `eg4`/`eg6` (keyed by source address)
/// and `in4`/`in6` (by destination address) send a pod's packets to the
/// chain of its identity's direction; a pod whose direction allows
/// everything (not isolated, no admin or baseline rule) has no element,
/// so its packets fall through to the policy `accept`. Traffic from the
/// pod's **own node** (its `hostIP`, its Node's addresses) is always
/// admitted (the API's node-local exemption): each pair `node . pod` is an
/// element of `local4`/`local6`, looked up before `in4`/`in6`.
///
/// **One direction of one identity** is a chain for the Admin tier, its
/// rules in priority order (`Allow` accepts, `Deny` drops, `Pass` goes to
/// the next tier), ending in a `goto` to the chain of the next tier;
/// without admin rules the map goes to that chain directly. The next tier
/// is the NetworkPolicy tier when some NetworkPolicy isolates the
/// identity in that direction (a `jump` to the chain of each isolating
/// policy, whose rules `accept`, then a counted, optionally logged, drop),
/// and otherwise the Baseline tier (a `jump` to each baseline policy's
/// chain, whose first matching rule accepts for `Allow`/`Pass` or drops
/// for `Deny`; nothing matching falls back to the policy `accept`). So the
/// order is exactly [`PolicySet::verdict`]'s: Admin → NetworkPolicy →
/// Baseline → default allow.
///
/// **Peers and ports.** A rule's peer list is a named set per family: the
/// addresses of the pods of its member identities, plus the `ipBlock`,
/// `networks` and `nodes` ranges (with their `except`s cut out), shared
/// by every rule with an equal peer list. Blocks that must not match pod
/// addresses (`Options::ipblock_matches_pods` off, `nodes` peers) go to a
/// second set matched together with `!= @pods4`. Numeric ports are
/// `meta l4proto` and `th dport` matches in the rule. A named port
/// resolves on the destination pod, so it is a concatenated set
/// `address . protocol . port` holding each pod's resolution of the name
/// (`nm<n>-4`), matched against the packet's destination: the same set
/// serves ingress rules (the destination is the selected pod) and egress
/// rules (the destination is the peer). Peers and ports that can match
/// nothing produce no rule.
///
/// **Size.** Elements grow with pods (one per pod in the dispatch maps,
/// one per pod in each peer set naming it, one per pod and named port);
/// rules with the policies' rules (one chain per policy and direction,
/// shared by every identity it selects, named by the policy so an edit
/// rewrites that chain only); the other chains are named by a hash of
/// their contents, so identities with equal tiers share them. Nothing
/// grows with the square of pods or identities. Lookups are hash sets and
/// verdict maps (O(1)), or interval sets (O(log n)) where a peer list has
/// address blocks.
///
/// So for every flow that crosses the forward hook (pod to pod, pod to
/// outside, outside to pod) the ruleset decides exactly as
/// [`PolicySet::verdict`] for TCP, UDP and SCTP, IPv4 and IPv6; flows
/// between two outside addresses are accepted, as `verdict()` allows
/// them. Other protocols (ICMP) match only rules without ports.
///
/// **Scope.** The node's own traffic to its pods (output hook) is never
/// filtered, as the API's node-local exemption says. A pod's traffic to
/// the node's *own* addresses (the input hook: a DNS cache or a health
/// endpoint in the node namespace) is a disputed corner: [`verdict()`]
/// applies the pod's egress rules to it, but many deployments rely on
/// node-local DNS and health checks working whatever a pod's egress
/// policy says, so by default it is not filtered;
/// [`RulesetOptions::with_node_input`] adds an `input` base chain that
/// enforces the pod's egress there too (with the same `eg4`/`eg6` maps).
///
/// Connection tracking makes replies and established connections pass
/// first, so an update (one transaction, see [`k8snet_nft::diff`]) keeps
/// open allowed connections alive even when their pair is now denied for
/// new connections. Chains whose contents did not change keep their name
/// and are not touched: a pod change touches elements only, a policy
/// whose rules change (but not what it selects or isolates) its own
/// chain only.
///
/// [`verdict()`]: PolicySet::verdict
///
/// # Example
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
/// // x/a's ingress: its policy's chain, then a drop; x/b opens anything.
/// assert!(text.contains("198.18.0.2 : goto t-"), "{text}");
/// assert!(!text.contains("198.18.0.3 :"), "{text}");
/// assert!(text.contains("meta l4proto tcp th dport 80 counter accept"), "{text}");
/// ```
pub fn ruleset(set: &PolicySet, options: &RulesetOptions) -> Table {
    let mut b = Builder::new(set, options);
    let mut maps: [[Set; 2]; 2] = std::array::from_fn(|_| {
        [
            Set::verdict_map(vec![DataType::Ipv4Addr]),
            Set::verdict_map(vec![DataType::Ipv6Addr]),
        ]
    });
    let mut local = [
        Set::new(vec![DataType::Ipv4Addr, DataType::Ipv4Addr]),
        Set::new(vec![DataType::Ipv6Addr, DataType::Ipv6Addr]),
    ];
    let live: Vec<IdentityId> = set.world.live_identities().collect();
    for identity in live {
        if b.ips.get(identity as usize).is_none_or(Vec::is_empty) {
            continue;
        }
        for dir in [EGRESS, INGRESS] {
            let Some(chain) = b.identity_chain(identity, dir) else {
                continue;
            };
            for &ip in &b.ips[identity as usize] {
                maps[dir][fam(ip.is_ipv6())].elements.insert(
                    Key(vec![value(ip)]),
                    Element {
                        value: Some(MapValue::Verdict(NftVerdict::Goto(chain.clone()))),
                        ..Element::default()
                    },
                );
            }
        }
    }
    // Traffic from a pod's own node is always admitted: (node, pod) pairs
    // for the pods whose ingress is filtered.
    let pod_owned = |ip: IpAddr| set.world.pod_by_ip(ip).is_some();
    for (slot_id, slot) in set.world.pod_slots() {
        for &ip in &slot.ips {
            let key = Key(vec![value(ip)]);
            let owned = set.world.pod_by_ip(ip).is_some_and(|r| r.slot == slot_id);
            if !owned || !maps[INGRESS][fam(ip.is_ipv6())].elements.contains_key(&key) {
                continue;
            }
            for &node in &slot.node_ips {
                if node.is_ipv6() == ip.is_ipv6() && !pod_owned(node) {
                    local[fam(ip.is_ipv6())]
                        .elements
                        .insert(Key(vec![value(node), value(ip)]), Element::default());
                }
            }
        }
    }
    // A pod's traffic to itself is allowed (`SelfTraffic::Allow`, the
    // default), and the forward hook does see it: a pod that reaches its
    // own Service is DNATed back to itself before forwarding. (pod, pod)
    // pairs of the pods whose egress or ingress is filtered.
    let mut same = [
        Set::new(vec![DataType::Ipv4Addr, DataType::Ipv4Addr]),
        Set::new(vec![DataType::Ipv6Addr, DataType::Ipv6Addr]),
    ];
    if set.options().self_traffic == SelfTraffic::Allow {
        for (slot_id, slot) in set.world.pod_slots() {
            let owned = |ip: IpAddr| set.world.pod_by_ip(ip).is_some_and(|r| r.slot == slot_id);
            for &a in slot.ips.iter().filter(|&&ip| owned(ip)) {
                let f = fam(a.is_ipv6());
                let key = Key(vec![value(a)]);
                if !maps[EGRESS][f].elements.contains_key(&key)
                    && !maps[INGRESS][f].elements.contains_key(&key)
                {
                    continue;
                }
                for &b in slot.ips.iter().filter(|&&ip| owned(ip)) {
                    if b.is_ipv6() == a.is_ipv6() {
                        same[f]
                            .elements
                            .insert(Key(vec![value(a), value(b)]), Element::default());
                    }
                }
            }
        }
    }
    let egress = Chain::base(ChainType::Filter, Hook::Forward, 0, Policy::Accept)
        .with_rule(rule("ct state established,related accept"))
        .with_rule(rule("ip saddr . ip daddr @same4 accept"))
        .with_rule(rule("ip6 saddr . ip6 daddr @same6 accept"))
        .with_rule(rule("ip saddr vmap @eg4"))
        .with_rule(rule("ip6 saddr vmap @eg6"));
    let ingress = Chain::base(ChainType::Filter, Hook::Forward, 1, Policy::Accept)
        .with_rule(rule("ct state established,related accept"))
        .with_rule(rule("ip saddr . ip daddr @same4 accept"))
        .with_rule(rule("ip6 saddr . ip6 daddr @same6 accept"))
        .with_rule(rule("ip saddr . ip daddr @local4 accept"))
        .with_rule(rule("ip6 saddr . ip6 daddr @local6 accept"))
        .with_rule(rule("ip daddr vmap @in4"))
        .with_rule(rule("ip6 daddr vmap @in6"));
    let mut table = Table::new(Family::Inet, TABLE)
        .with_chain("egress", egress)
        .with_chain("ingress", ingress);
    if options.node_input {
        // ICMPv6 first: neighbour and router discovery from a pod to its
        // node carries the pod's address, is never "established", and
        // must not meet the pod's egress policy (NetworkPolicy governs
        // TCP, UDP and SCTP only).
        let input = Chain::base(ChainType::Filter, Hook::Input, 0, Policy::Accept)
            .with_rule(rule("ct state established,related accept"))
            .with_rule(rule("meta l4proto ipv6-icmp accept"))
            .with_rule(rule("ip saddr vmap @eg4"))
            .with_rule(rule("ip6 saddr vmap @eg6"));
        table = table.with_chain("input", input);
    }
    let [[eg4, eg6], [in4, in6]] = {
        let [i, e] = maps;
        [e, i]
    };
    let [local4, local6] = local;
    let [same4, same6] = same;
    table = table
        .with_set("same4", same4)
        .with_set("same6", same6)
        .with_set("eg4", eg4)
        .with_set("eg6", eg6)
        .with_set("in4", in4)
        .with_set("in6", in6)
        .with_set("local4", local4)
        .with_set("local6", local6);
    for (name, s) in b.sets {
        table = table.with_set(&name, s);
    }
    for (name, c) in b.chains {
        table = table.with_chain(&name, c);
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

/// Enforcement that remembers the table it last applied: after the first
/// [`Enforcer::enforce`] (which reads the kernel's table back, as
/// [`enforce`] does), updates are diffed against what this enforcer
/// applied, without reading tens of thousands of elements back from the
/// kernel. Each update is still one transaction that only touches what
/// changed.
///
/// It assumes nobody else changes table `inet k8snet-policy`. When an
/// apply fails (the kernel refused it and kept its previous state, or the
/// table was changed behind its back), the enforcer forgets what it
/// applied, so the next call reads the table back and repairs it; call
/// [`Enforcer::resync`] to force that.
#[cfg(all(feature = "linux", target_os = "linux"))]
pub struct Enforcer {
    nft: k8snet_nft::Nft,
    options: RulesetOptions,
    applied: Option<Table>,
}

#[cfg(all(feature = "linux", target_os = "linux"))]
impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer")
            .field("options", &self.options)
            .field("applied", &self.applied.as_ref().map(RulesetStats::of))
            .finish_non_exhaustive()
    }
}

#[cfg(all(feature = "linux", target_os = "linux"))]
impl Enforcer {
    /// An enforcer using `nft` (and so its network namespace) and lowering
    /// with `options`.
    pub fn new(nft: k8snet_nft::Nft, options: RulesetOptions) -> Self {
        Self {
            nft,
            options,
            applied: None,
        }
    }

    /// Makes the kernel enforce `set`: the first time (or after a failure
    /// or [`Enforcer::resync`]) as [`enforce`] does, afterwards by diffing
    /// against the table this enforcer applied last.
    ///
    /// # Errors
    ///
    /// As [`k8snet_nft::Nft::sync`]; the kernel then keeps its previous
    /// ruleset entirely.
    pub fn enforce(&mut self, set: &PolicySet) -> k8snet_nft::Result<k8snet_nft::ApplyStats> {
        let desired = ruleset(set, &self.options);
        let result = match self.applied.take() {
            None => self.nft.sync(&desired),
            Some(previous) => {
                k8snet_nft::diff(Some(&previous), &desired).and_then(|b| self.nft.apply(&b))
            }
        };
        if result.is_ok() {
            self.applied = Some(desired);
        }
        result
    }

    /// Forgets what was applied: the next [`Enforcer::enforce`] reads the
    /// kernel's table back first.
    pub fn resync(&mut self) {
        self.applied = None;
    }

    /// The netlink handle.
    pub fn nft(&mut self) -> &mut k8snet_nft::Nft {
        &mut self.nft
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8snet_model::{Cluster, Manifests, Protocol};

    use crate::flow::{Flow, Verdict};
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

    fn compile(yaml: &str, options: &Options) -> PolicySet {
        let mut m = Manifests::new();
        m.load_str("t.yaml", yaml);
        assert!(m.errors().is_empty(), "{:?}", m.errors());
        PolicySet::compile(&Cluster::from_manifests(&m), options)
    }

    fn set() -> PolicySet {
        compile(YAML, &Options::default())
    }

    /// Every rule reads back from its text as itself (the kernel backend
    /// reads rules back by their text), the table validates, and a diff
    /// from nothing rebuilds it.
    fn check_table(t: &Table) {
        k8snet_nft::validate(t).unwrap();
        for (name, c) in &t.chains {
            for r in &c.rules {
                let text = k8snet_nft::rule_text(r);
                let back: Rule = text
                    .parse()
                    .unwrap_or_else(|e| panic!("{name}: {text}: {e}"));
                assert_eq!(&back, r, "{name}: {text}");
            }
        }
        let batch = k8snet_nft::diff(None, t).unwrap();
        assert_eq!(batch.apply_to(None).unwrap(), Some(t.clone()));
    }

    #[test]
    fn renders_per_direction_chains_sets_and_logs() {
        let set = set();
        let t = ruleset(&set, &RulesetOptions::default().with_log(true));
        check_table(&t);
        let text = k8snet_nft::render(&t);
        for want in [
            "ct state established,related accept",
            "type filter hook forward priority 0; policy accept;",
            "type filter hook forward priority 1; policy accept;",
            "ip saddr vmap @eg4",
            "ip daddr vmap @in4",
            "ip saddr . ip daddr @local4 accept",
            // Only x/a is isolated (ingress): its two addresses.
            "198.18.0.2 : goto t-",
            "fd00:18::2 : goto t-",
            "meta l4proto tcp th dport 80 counter accept",
            "meta l4proto udp th dport 53 counter accept",
            "meta l4proto tcp th dport 9000-9010 counter accept",
            "meta l4proto tcp th dport 443 counter accept",
            "log prefix \"k8snet-policy deny a-in: \" counter drop",
            // The ipBlock 198.18.0.5/32 is an interval peer set.
            "flags interval",
        ] {
            assert!(text.contains(want), "{want:?} missing in {text}");
        }
        assert!(!t.chains.contains_key("input"), "{text}");
        for quiet in ["198.18.0.3 :", "198.18.0.4 :", "198.18.0.5 :"] {
            assert!(
                !text.contains(quiet),
                "{quiet} has no filtered direction: {text}"
            );
        }
    }

    /// A packet of a new connection, as the interpreter sees it.
    #[derive(Debug, Clone, Copy)]
    struct Packet {
        s: IpAddr,
        d: IpAddr,
        proto: u8,
        port: u16,
    }

    impl Packet {
        fn field(&self, f: Field) -> Option<Value> {
            let v4 = |ip: IpAddr| match ip {
                IpAddr::V4(a) => Some(Value::Ipv4(a)),
                IpAddr::V6(_) => None,
            };
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(a) => Some(Value::Ipv6(a)),
                IpAddr::V4(_) => None,
            };
            match f {
                Field::IpSaddr => v4(self.s),
                Field::IpDaddr => v4(self.d),
                Field::Ip6Saddr => v6(self.s),
                Field::Ip6Daddr => v6(self.d),
                Field::MetaL4proto => Some(Value::Proto(self.proto)),
                Field::ThDport => Some(Value::Port(self.port)),
                other => panic!("field {other:?} not interpreted"),
            }
        }

        fn key(&self, k: &KeyExpr) -> Option<Vec<Value>> {
            match k {
                KeyExpr::Fields(f) => f.iter().map(|&f| self.field(f)).collect(),
                other => panic!("key {other:?} not interpreted"),
            }
        }
    }

    /// A set or map lookup: exact, or by range for interval elements.
    fn find<'t>(t: &'t Table, set: &str, key: &[Value]) -> Option<&'t Element> {
        let s = t.sets.get(set).unwrap_or_else(|| panic!("no set {set}"));
        s.elements.iter().find_map(|(k, e)| {
            let hit = match &e.end {
                Some(end) => k.0.as_slice() <= key && key <= end.0.as_slice(),
                None => k.0 == key,
            };
            hit.then_some(e)
        })
    }

    enum End {
        Accept,
        Drop,
    }

    /// Runs a chain: `Some` when a rule ended evaluation (accept, drop),
    /// `None` when it returned (fell off its end or `return`).
    fn run(t: &Table, chain: &str, p: &Packet, depth: usize) -> Option<End> {
        assert!(depth < 16, "jump depth");
        let verdict = |v: &NftVerdict| -> Result<Option<End>, ()> {
            match v {
                NftVerdict::Accept => Ok(Some(End::Accept)),
                NftVerdict::Drop => Ok(Some(End::Drop)),
                NftVerdict::Return => Ok(None),
                NftVerdict::Goto(c) => Ok(run(t, c, p, depth + 1)),
                NftVerdict::Jump(c) => match run(t, c, p, depth + 1) {
                    Some(e) => Ok(Some(e)),
                    None => Err(()),
                },
                other => panic!("{other:?}"),
            }
        };
        'rules: for r in &t.chains[chain].rules {
            for e in &r.exprs {
                match e {
                    // A new connection.
                    Expr::CtState(_) => continue 'rules,
                    Expr::Counter | Expr::Log { .. } => {}
                    Expr::Cmp {
                        field,
                        op: k8snet_nft::CmpOp::Eq,
                        value,
                    } => {
                        if p.field(*field).as_ref() != Some(value) {
                            continue 'rules;
                        }
                    }
                    Expr::Range {
                        field,
                        negate: false,
                        from,
                        to,
                    } => match p.field(*field) {
                        Some(v) if *from <= v && v <= *to => {}
                        _ => continue 'rules,
                    },
                    Expr::Lookup { key, set, negate } => {
                        let Some(k) = p.key(key) else { continue 'rules };
                        if find(t, set, &k).is_some() == *negate {
                            continue 'rules;
                        }
                    }
                    Expr::Vmap { key, map } => {
                        let Some(k) = p.key(key) else { continue 'rules };
                        let Some(el) = find(t, map, &k) else {
                            continue 'rules;
                        };
                        let Some(MapValue::Verdict(v)) = &el.value else {
                            panic!("{map}: {el:?}")
                        };
                        match verdict(v) {
                            Ok(end) => return end,
                            Err(()) => continue 'rules,
                        }
                    }
                    Expr::Verdict(v) => match verdict(v) {
                        Ok(end) => return end,
                        Err(()) => continue 'rules,
                    },
                    other => panic!("{other:?} not interpreted in {chain}"),
                }
            }
        }
        None
    }

    /// What the base chains of `hook` decide for a new connection: each
    /// must accept (an accept hands the packet to the next base chain,
    /// a drop is final).
    fn decide(t: &Table, hook: Hook, p: Packet) -> Verdict {
        let mut bases: Vec<(&String, i32)> = t
            .chains
            .iter()
            .filter_map(|(n, c)| {
                let b = c.base.as_ref()?;
                (b.hook == hook).then_some((n, b.priority))
            })
            .collect();
        bases.sort_by_key(|&(n, prio)| (prio, n.clone()));
        for (name, _) in bases {
            if let Some(End::Drop) = run(t, name, &p, 0) {
                return Verdict::Deny;
            }
        }
        Verdict::Allow
    }

    fn simulate(t: &Table, s: IpAddr, d: IpAddr, p: Protocol, port: u16) -> Verdict {
        let proto = match p {
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            _ => 6,
        };
        decide(t, Hook::Forward, Packet { s, d, proto, port })
    }

    /// Every ordered pair of `addrs` (same family), every protocol and
    /// port: the interpreted ruleset decides as `verdict()`. Returns
    /// (allowed, denied).
    fn agree(set: &PolicySet, t: &Table, addrs: &[IpAddr], ports: &[u16]) -> (usize, usize) {
        let (mut allowed, mut denied) = (0, 0);
        for &s in addrs {
            for &d in addrs {
                // s == d included: a pod's traffic to itself (hairpin
                // through its own Service) reaches the forward hook too.
                if s.is_ipv6() != d.is_ipv6() {
                    continue;
                }
                for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
                    for &port in ports {
                        let flow = Flow::new(s, d, p, port);
                        let want = set.verdict(&flow);
                        let got = simulate(t, s, d, p, port);
                        assert_eq!(got, want, "{flow}: {}", set.explain(&flow));
                        match got {
                            Verdict::Allow => allowed += 1,
                            _ => denied += 1,
                        }
                    }
                }
            }
        }
        (allowed, denied)
    }

    fn addrs(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn chain_decisions_match_verdicts() {
        let set = set();
        let t = ruleset(&set, &RulesetOptions::default());
        let pods = addrs(&[
            "198.18.0.2",
            "198.18.0.3",
            "198.18.0.4",
            "198.18.0.5",
            "198.18.0.6",
            "fd00:18::2",
            "fd00:18::3",
            "10.0.0.1",
            "fd00:99::1",
        ]);
        let ports = [1, 53, 79, 80, 81, 443, 8999, 9000, 9005, 9010, 9011, 65535];
        let (allowed, denied) = agree(&set, &t, &pods, &ports);
        assert!(allowed > 0 && denied > 0, "{allowed} {denied}");
    }

    /// An admin Pass rule with a `networks` entry that cannot be read (an
    /// object that skipped validation) is rendered as the evaluator
    /// decides it: a Deny of every address, not a fall-through to the
    /// later admin Allow.
    #[test]
    fn unreadable_pass_network_chains_match_verdicts() {
        use k8snet_model::{AdminNetworkPolicy, NetworkPolicy, Object, apply_defaults};
        let mut m = Manifests::new();
        m.load_str(
            "t.yaml",
            "
apiVersion: v1
kind: Namespace
metadata: {name: 'y', labels: {team: b}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: 'y'}
status: {podIPs: [{ip: 198.18.2.1}, {ip: 'fd00:18::21'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x}
status: {podIPs: [{ip: 198.18.2.2}, {ip: 'fd00:18::22'}]}
",
        );
        assert!(m.errors().is_empty(), "{:?}", m.errors());
        let anp = |name: &str, priority: i32, action: &str, network: &str| {
            let p: AdminNetworkPolicy = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"priority": priority, "subject": {"namespaces": {"matchLabels": {"team": "b"}}},
                         "egress": [{"action": action, "to": [{"networks": [network]}]}]}
            }))
            .unwrap();
            Object::AdminNetworkPolicy(p)
        };
        let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "deny-egress", "namespace": "y"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"]}
        }))
        .unwrap();
        let mut objects = Cluster::from_manifests(&m).objects();
        for mut o in [
            anp("pass-some", 5, "Pass", "8.8.8.0/33"),
            anp("allow-rest", 10, "Allow", "0.0.0.0/0"),
            Object::NetworkPolicy(np),
        ] {
            apply_defaults(&mut o);
            objects.push(o);
        }
        let set = PolicySet::compile(&Cluster::from_objects(objects), &Options::default());
        assert_eq!(set.errors().len(), 1);
        let t = ruleset(&set, &RulesetOptions::default());
        check_table(&t);
        let all = addrs(&[
            "198.18.2.1",
            "198.18.2.2",
            "8.8.8.8",
            "1.1.1.1",
            "fd00:18::21",
            "fd00:18::22",
            "2001:db8::1",
        ]);
        let (allowed, denied) = agree(&set, &t, &all, &[443]);
        assert!(allowed > 0 && denied > 0, "{allowed} {denied}");
        for d in ["8.8.8.8", "1.1.1.1"] {
            let (s, d) = ("198.18.2.1".parse().unwrap(), d.parse().unwrap());
            assert_eq!(simulate(&t, s, d, Protocol::Tcp, 443), Verdict::Deny, "{d}");
        }
    }

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
        let set = compile(EXTERNAL_YAML, &Options::default());
        let t = ruleset(&set, &RulesetOptions::default().with_log(true));
        check_table(&t);
        let text = k8snet_nft::render(&t);
        // Ingress of x/a from outside: the ipBlock minus its except.
        assert!(text.contains("198.19.200.0/25"), "{text}");
        assert!(text.contains("fd00:19:2::/121"), "{text}");
        // x/b admits its own node only (198.19.128.2 for b, .1 for b2).
        assert!(text.contains("198.19.128.2 . 198.18.1.3"), "{text}");
        assert!(text.contains("198.19.128.1 . 198.18.0.6"), "{text}");
        let all = addrs(&[
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
        ]);
        let (allowed, denied) = agree(&set, &t, &all, &[1, 53, 79, 80, 81, 443, 8080, 9999, 65535]);
        assert!(allowed > 100 && denied > 100, "{allowed} {denied}");
    }

    /// The tiers, named ports and the open corners: AdminNetworkPolicy
    /// Allow over a NetworkPolicy's isolation, Deny, Pass to the
    /// NetworkPolicy tier (and to Baseline when nothing isolates),
    /// ClusterNetworkPolicy in both tiers, a baseline Deny that only
    /// non-isolated pods feel, named ports resolving differently per
    /// destination pod (ingress and egress), `nodes` peers.
    const TIERS_YAML: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: w, labels: {env: dev}}
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {role: infra}}
status: {addresses: [{type: InternalIP, address: 198.19.128.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec:
  nodeName: n1
  containers: [{name: c, ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]}]
status: {podIPs: [{ip: 198.18.0.2}, {ip: 'fd00:18::2'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec:
  containers: [{name: c, ports: [{name: http, containerPort: 8081}]}]
status: {podIP: 198.18.0.3}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: w, labels: {app: c}}
status: {podIPs: [{ip: 198.18.0.4}, {ip: 'fd00:18::4'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: d, namespace: w, labels: {app: d}}
spec:
  containers: [{name: c, ports: [{name: http, containerPort: 80}]}]
status: {podIP: 198.18.0.5}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-in, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{namespaceSelector: {}}]
    ports: [{port: http}, {port: dns, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-out, namespace: w}
spec:
  podSelector: {matchLabels: {app: c}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{port: http}]
  - to: [{ipBlock: {cidr: 198.19.200.0/24}}]
    ports: [{port: 443}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: ops}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {env: prod}}}
  ingress:
  - {name: ops-allow, action: Allow, from: [{namespaces: {matchLabels: {env: dev}}}], ports: [{portNumber: {port: 9090, protocol: TCP}}]}
  - {name: ops-pass, action: Pass, from: [{namespaces: {matchLabels: {env: dev}}}], ports: [{portRange: {start: 8000, end: 8100, protocol: TCP}}]}
  - {name: ops-deny, action: Deny, from: [{namespaces: {matchLabels: {env: dev}}}]}
  egress:
  - {name: no-infra, action: Deny, to: [{nodes: {matchLabels: {role: infra}}}], ports: [{portNumber: {port: 22, protocol: TCP}}]}
  - {name: metrics, action: Allow, to: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: d}}}}], ports: [{namedPort: http}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: later}
spec:
  priority: 9
  subject: {namespaces: {}}
  egress:
  - {name: pass-out, action: Pass, to: [{networks: [198.19.200.0/24, 'fd00:19:2::/64']}]}
  - {name: deny-out, action: Deny, to: [{networks: [198.19.0.0/16]}], ports: [{portRange: {start: 1, end: 1000, protocol: TCP}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - {name: no-b-5432, action: Deny, from: [{namespaces: {}}], ports: [{portNumber: {port: 5432, protocol: TCP}}]}
  egress:
  - {name: allow-web, action: Allow, to: [{networks: [198.19.200.0/25]}], ports: [{portNumber: {port: 443, protocol: TCP}}]}
  - {name: deny-out, action: Deny, to: [{networks: [198.19.200.0/24, 'fd00:19:2::/64']}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: cnp-admin}
spec:
  tier: Admin
  priority: 7
  subject: {namespaces: {matchLabels: {env: dev}}}
  ingress:
  - {name: udp-ok, action: Accept, from: [{namespaces: {}}], protocols: [{udp: {destinationPort: {number: 53}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: cnp-base}
spec:
  tier: Baseline
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - {name: no-sctp, action: Deny, from: [{namespaces: {}}], protocols: [{sctp: {}}]}
";

    const TIER_ADDRS: [&str; 12] = [
        "198.18.0.2",
        "198.18.0.3",
        "198.18.0.4",
        "198.18.0.5",
        "fd00:18::2",
        "fd00:18::4",
        "198.19.128.1",
        "198.19.200.5",
        "198.19.200.200",
        "198.19.3.3",
        "fd00:19:2::5",
        "fd00:19:1::9",
    ];
    const TIER_PORTS: [u16; 15] = [
        1, 22, 53, 80, 443, 1000, 1001, 5432, 8000, 8080, 8081, 8100, 8101, 9090, 9003,
    ];

    #[test]
    fn tiers_and_named_ports_match_verdicts() {
        for ipblock_matches_pods in [true, false] {
            let options = Options {
                ipblock_matches_pods,
                ..Options::default()
            };
            let set = compile(TIERS_YAML, &options);
            let t = ruleset(&set, &RulesetOptions::default().with_log(true));
            check_table(&t);
            let text = k8snet_nft::render(&t);
            // Named ports resolve per destination pod.
            assert!(text.contains("198.18.0.2 . tcp . 8080"), "{text}");
            assert!(text.contains("198.18.0.3 . tcp . 8081"), "{text}");
            assert!(text.contains("198.18.0.5 . tcp . 80"), "{text}");
            assert!(
                text.contains("ip daddr . meta l4proto . th dport @nm"),
                "{text}"
            );
            // Pass goes to the next tier's chain.
            assert!(text.contains("counter goto t-"), "{text}");
            let (allowed, denied) = agree(&set, &t, &addrs(&TIER_ADDRS), &TIER_PORTS);
            assert!(allowed > 50 && denied > 50, "{allowed} {denied}");
        }
    }

    #[test]
    fn blocks_that_skip_pods_are_matched_outside_the_pod_network_only() {
        let options = Options {
            ipblock_matches_pods: false,
            ..Options::default()
        };
        let set = compile(EXTERNAL_YAML, &options);
        let t = ruleset(&set, &RulesetOptions::default());
        check_table(&t);
        let text = k8snet_nft::render(&t);
        assert!(text.contains("!= @pods4"), "{text}");
        let all = addrs(&[
            "198.18.0.2",
            "198.18.1.3",
            "198.18.0.6",
            "198.18.0.4",
            "198.18.0.5",
            "198.18.0.9",
            "198.19.128.1",
            "198.19.200.5",
            "198.19.200.200",
            "fd00:18::2",
            "fd00:18::4",
            "fd00:19:2::5",
        ]);
        agree(&set, &t, &all, &[53, 80, 443, 8080, 9999]);
    }

    #[test]
    fn node_input_is_an_option() {
        let set = compile(TIERS_YAML, &Options::default());
        let off = ruleset(&set, &RulesetOptions::default());
        let on = ruleset(&set, &RulesetOptions::default().with_node_input(true));
        check_table(&on);
        assert!(!off.chains.contains_key("input"));
        let input = &on.chains["input"];
        assert_eq!(input.base.as_ref().map(|b| b.hook), Some(Hook::Input));
        // Only the input chain differs.
        let mut without = on.clone();
        without.chains.remove("input");
        assert_eq!(without, off);
        // Pods to a node address: the input hook decides as verdict() with
        // the option on, and lets everything through without it.
        let node: IpAddr = "198.19.128.1".parse().unwrap();
        let (mut denied, mut checked) = (0, 0);
        for pod in ["198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"] {
            let s: IpAddr = pod.parse().unwrap();
            for port in TIER_PORTS {
                for (p, proto) in [(Protocol::Tcp, 6), (Protocol::Udp, 17)] {
                    let packet = Packet {
                        s,
                        d: node,
                        proto,
                        port,
                    };
                    let want = set.verdict(&Flow::new(s, node, p, port));
                    assert_eq!(
                        decide(&on, Hook::Input, packet),
                        want,
                        "{s} -> {node} {p} {port}"
                    );
                    assert_eq!(decide(&off, Hook::Input, packet), Verdict::Allow);
                    denied += usize::from(want == Verdict::Deny);
                    checked += 1;
                }
            }
        }
        assert!(denied > 0 && denied < checked, "{denied} of {checked}");
    }

    /// `n` namespaces, each with `pods` pods of two apps and a policy per
    /// app admitting the other app on a port: a cluster of many
    /// identities and policies.
    fn many(n: usize, pods: usize) -> PolicySet {
        let mut yaml = String::new();
        for ns in 0..n {
            yaml.push_str(&format!(
                "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{ns}, labels: {{team: t{}}}}}\n",
                ns % 3
            ));
            for k in 0..pods {
                let host = ns * pods + k + 2;
                yaml.push_str(&format!(
                    "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{k}, namespace: ns{ns}, labels: {{app: a{}}}}}\n\
                     status: {{podIP: 198.18.{}.{}}}\n",
                    k % 2,
                    host / 250,
                    host % 250 + 1
                ));
            }
            for app in 0..2 {
                yaml.push_str(&format!(
                    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                     metadata: {{name: a{app}, namespace: ns{ns}}}\n\
                     spec:\n  podSelector: {{matchLabels: {{app: a{app}}}}}\n  policyTypes: [Ingress, Egress]\n\
                     \x20 ingress: [{{from: [{{podSelector: {{matchLabels: {{app: a{}}}}}}}, {{namespaceSelector: {{matchLabels: {{team: t{}}}}}}}], ports: [{{port: {}}}]}}]\n\
                     \x20 egress: [{{to: [{{podSelector: {{}}}}]}}]\n",
                    1 - app,
                    ns % 3,
                    8000 + ns
                ));
            }
        }
        compile(&yaml, &Options::default())
    }

    #[test]
    fn size_grows_linearly_with_identities_and_policies() {
        let small = RulesetStats::of(&ruleset(&many(20, 4), &RulesetOptions::default()));
        let large = RulesetStats::of(&ruleset(&many(80, 4), &RulesetOptions::default()));
        // 4x the namespaces, identities, pods and policies: about 4x the
        // rules, chains and sets (a pair matrix would be 16x).
        assert!(large.rules <= 4 * small.rules + 8, "{small:?} {large:?}");
        assert!(large.chains <= 4 * small.chains + 8, "{small:?} {large:?}");
        assert!(large.sets <= 4 * small.sets + 8, "{small:?} {large:?}");
        assert!(large.rules >= 3 * small.rules, "{small:?} {large:?}");
        // Elements: the namespace selectors' sets hold a third of all
        // pods each, so they grow with pods times the selectors using
        // them, still far from pods squared.
        assert!(large.elements <= 20 * small.elements, "{small:?} {large:?}");
    }

    #[test]
    fn a_policy_edit_rewrites_its_own_chain_only() {
        let before = compile(YAML, &Options::default());
        // a-in's first rule admits TCP 8080 instead of 80.
        let edited = YAML.replacen(
            "ports: [{port: 80}, {port: 53",
            "ports: [{port: 8080}, {port: 53",
            1,
        );
        assert_ne!(edited, YAML);
        let after = compile(&edited, &Options::default());
        let (t0, t1) = (
            ruleset(&before, &RulesetOptions::default().with_log(true)),
            ruleset(&after, &RulesetOptions::default().with_log(true)),
        );
        let batch = k8snet_nft::diff(Some(&t0), &t1).unwrap();
        let flushed: Vec<&String> = batch
            .ops
            .iter()
            .filter_map(|op| match op {
                k8snet_nft::Op::FlushChain { name } => Some(name),
                _ => None,
            })
            .collect();
        assert_eq!(flushed.len(), 1, "{batch}");
        assert!(
            flushed[0].starts_with("r-") && flushed[0].ends_with("-in"),
            "{batch}"
        );
        for op in &batch.ops {
            assert!(
                matches!(
                    op,
                    k8snet_nft::Op::FlushChain { .. } | k8snet_nft::Op::AddRule { .. }
                ),
                "{op:?} in\n{batch}"
            );
        }
        assert!(
            batch.to_string().contains("th dport 8080 counter accept"),
            "{batch}"
        );
        assert_eq!(batch.apply_to(Some(&t0)).unwrap(), Some(t1));
    }

    #[test]
    fn a_pod_change_touches_elements_only() {
        let mut yaml = YAML.to_string();
        let before = compile(&yaml, &Options::default());
        // Another pod of x/a's identity, and one of an open identity.
        yaml.push_str(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {name: a2, namespace: x, labels: {pod: a}}\n\
             status: {podIP: 198.18.0.12}\n\
             ---\napiVersion: v1\nkind: Pod\nmetadata: {name: e, namespace: z, labels: {pod: c}}\n\
             status: {podIP: 198.18.0.14}\n",
        );
        let after = compile(&yaml, &Options::default());
        let (t0, t1) = (
            ruleset(&before, &RulesetOptions::default()),
            ruleset(&after, &RulesetOptions::default()),
        );
        let batch = k8snet_nft::diff(Some(&t0), &t1).unwrap();
        assert!(!batch.ops.is_empty());
        for op in &batch.ops {
            assert!(
                matches!(op, k8snet_nft::Op::AddElements { .. }),
                "{op:?} in\n{batch}"
            );
        }
        assert!(
            batch.to_string().contains("198.18.0.12 : goto t-"),
            "{batch}"
        );
        assert_eq!(batch.apply_to(Some(&t0)).unwrap(), Some(t1));
    }
}
