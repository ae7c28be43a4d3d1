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
//! `br_netfilter` is loaded); that is the documented choice.
//!
//! ```text
//! table inet k8snet-policy {
//!     set id-0-v4 { type ipv4_addr; elements = { 198.18.0.2 } }  # pods of identity 0
//!     set id-0-v6 { type ipv6_addr; ... }
//!     map from4 { type ipv4_addr : verdict; elements = { 198.18.0.3 : goto from-1 } }
//!     map pairs4 { type ipv4_addr . ipv4_addr : verdict; ... }     # exceptions
//!     chain forward {
//!         type filter hook forward priority 0; policy accept;
//!         ct state established,related accept
//!         ip saddr . ip daddr vmap @pairs4
//!         ip6 saddr . ip6 daddr vmap @pairs6
//!         ip saddr vmap @from4
//!         ip6 saddr vmap @from6
//!     }
//!     chain from-1 {                       # what identity 1 may open
//!         ip daddr @id-0-v4 goto conn-0
//!         ip6 daddr @id-0-v6 goto conn-0
//!     }
//!     chain conn-0 {                       # one chain per distinct allowed set
//!         meta l4proto tcp th dport 80 counter accept
//!         log prefix "k8snet-policy deny a-80: " counter drop
//!     }
//! }
//! ```
//!
//! Pods are grouped by their policy identity (namespace, labels, named
//! ports), and each identity's addresses form the named sets
//! `id-<n>-v4`/`id-<n>-v6`. What a source may open to a destination is
//! the exact [`Matrix`] cell of the pair (the port space cut at every rule
//! boundary, both directions combined). When every pod pair of two
//! identities has the same cell, the source identity's chain `from-<n>`
//! (reached through the `from4`/`from6` verdict maps, keyed by source
//! address) sends the destination identity's set to the chain of that
//! cell; a cell allowing everything needs no rule (the base chain's policy
//! accepts). When the cells differ inside an identity pair (an `ipBlock`
//! that holds some pods' addresses), every address pair becomes an
//! element of `pairs4`/`pairs6`, which are looked up first. A cell chain
//! `conn-<n>` lists the allowed (protocol, port range) pairs, each with a
//! counter, and ends in a counted drop, optionally logged with the
//! policies that deny a sample port of the pair; chains are shared by
//! equal cells. So for every pod-to-pod flow the ruleset decides exactly
//! as [`PolicySet::verdict`]; protocols other than TCP, UDP and SCTP are
//! accepted only where the pair allows everything.
//!
//! The two directions are combined per identity pair rather than kept as
//! separate egress and ingress maps: a pair's verdict is one lookup, and
//! the rule count grows with the square of the identities (not of pods).
//!
//! **Scope.** Only pod-to-pod traffic is filtered: flows from or to
//! addresses outside the pod network (and node traffic) are accepted by
//! the chain's policy. Rules grow with the square of the identities;
//! this layout suits clusters with up to a few hundred identities.
//!
//! Connection tracking makes replies and established connections pass
//! first, so an update (one transaction, see [`k8snet_nft::diff`]) keeps
//! open allowed connections alive even when their pair is now denied for
//! new connections.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8snet_model::{NsName, Protocol};
use k8snet_nft::{
    Chain, ChainType, DataType, Family, Hook, Key, MapValue, Policy, Rule, Set, Table, Value,
};

use crate::compile::PolicySet;
use crate::connset::ConnSet;
use crate::explain::{Decision, Reason};
use crate::flow::{Endpoint, Flow, Verdict};
use crate::matrix::{Matrix, MatrixEndpoint, MatrixOptions};

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

fn log_prefix(set: &PolicySet, src: &NsName, dst: &NsName, conns: &ConnSet) -> String {
    let who = sample_denied(conns).map(|(p, port)| {
        let why = set.explain(&Flow::new(
            Endpoint::Pod(src.clone()),
            Endpoint::Pod(dst.clone()),
            p,
            port,
        ));
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

/// A pod of an identity: (matrix index, name, addresses).
type Member<'a> = (usize, &'a NsName, &'a [IpAddr]);

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
    // Identities with their pods (matrix index, name, addresses), named
    // by the order of their first pod's name so names are deterministic.
    let mut by_identity: BTreeMap<u32, Vec<Member<'_>>> = BTreeMap::new();
    for (_, slot) in set.world.pod_slots() {
        if let Some(&i) = index.get(&slot.key) {
            by_identity
                .entry(slot.identity)
                .or_default()
                .push((i, &slot.key, slot.ips.as_slice()));
        }
    }
    let mut classes: Vec<Vec<Member<'_>>> = by_identity.into_values().collect();
    for c in &mut classes {
        c.sort_by_key(|p| p.1);
    }
    classes.sort_by(|a, b| a.first().map(|p| p.1).cmp(&b.first().map(|p| p.1)));

    let mut table = Table::new(Family::Inet, TABLE);
    let mut pairs4 = Set::verdict_map(vec![DataType::Ipv4Addr, DataType::Ipv4Addr]);
    let mut pairs6 = Set::verdict_map(vec![DataType::Ipv6Addr, DataType::Ipv6Addr]);
    let mut from4 = Set::verdict_map(vec![DataType::Ipv4Addr]);
    let mut from6 = Set::verdict_map(vec![DataType::Ipv6Addr]);
    for (n, class) in classes.iter().enumerate() {
        let mut v4 = Set::new(vec![DataType::Ipv4Addr]);
        let mut v6 = Set::new(vec![DataType::Ipv6Addr]);
        for ip in class.iter().flat_map(|p| p.2) {
            match ip {
                IpAddr::V4(a) => v4 = v4.with_element(Key(vec![Value::Ipv4(*a)])),
                IpAddr::V6(a) => v6 = v6.with_element(Key(vec![Value::Ipv6(*a)])),
            }
        }
        table = table
            .with_set(&format!("id-{n}-v4"), v4)
            .with_set(&format!("id-{n}-v6"), v6);
    }
    // (allowed set, log prefix) -> (chain name, chain).
    let mut chains: BTreeMap<(String, Option<String>), (String, Chain)> = BTreeMap::new();
    let mut target = |src: &NsName, dst: &NsName, conns: &ConnSet| -> k8snet_nft::Verdict {
        if conns.is_all() {
            return k8snet_nft::Verdict::Accept;
        }
        let prefix = options.log.then(|| log_prefix(set, src, dst, conns));
        let n = chains.len();
        let (name, _) = chains
            .entry((conns.to_string(), prefix.clone()))
            .or_insert_with(|| (format!("conn-{n}"), conn_chain(conns, prefix.as_deref())));
        k8snet_nft::Verdict::Goto(name.clone())
    };
    for (a, src_class) in classes.iter().enumerate() {
        let mut from = Chain::regular();
        for (b, dst_class) in classes.iter().enumerate() {
            let cells: Vec<_> = src_class
                .iter()
                .flat_map(|s| dst_class.iter().map(move |d| (s, d)))
                .filter(|(s, d)| s.0 != d.0)
                .filter_map(|(s, d)| Some((s, d, &matrix.cell(s.0, d.0)?.conns)))
                .collect();
            let Some(&(s0, d0, first)) = cells.first() else {
                continue;
            };
            if cells.iter().all(|(_, _, c)| *c == first) {
                // Uniform: one rule per family on the identity sets.
                if first.is_all() {
                    continue;
                }
                let verdict = match target(s0.1, d0.1, first) {
                    k8snet_nft::Verdict::Goto(c) => c,
                    _ => continue,
                };
                from = from
                    .with_rule(rule(&format!("ip daddr @id-{b}-v4 goto {verdict}")))
                    .with_rule(rule(&format!("ip6 daddr @id-{b}-v6 goto {verdict}")));
                continue;
            }
            // Not uniform (an ipBlock that holds some pods' addresses):
            // every pair of addresses is an exception, looked up first.
            for (s, d, conns) in cells {
                let verdict = target(s.1, d.1, conns);
                for sip in s.2 {
                    for dip in d.2 {
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
        if from.rules.is_empty() {
            continue;
        }
        let name = format!("from-{a}");
        for ip in src_class.iter().flat_map(|p| p.2) {
            let value = MapValue::Verdict(k8snet_nft::Verdict::Goto(name.clone()));
            match ip {
                IpAddr::V4(x) => from4 = from4.with_mapping(Key(vec![Value::Ipv4(*x)]), value),
                IpAddr::V6(x) => from6 = from6.with_mapping(Key(vec![Value::Ipv6(*x)]), value),
            }
        }
        table = table.with_chain(&name, from);
    }
    let forward = Chain::base(ChainType::Filter, Hook::Forward, 0, Policy::Accept)
        .with_rule(rule("ct state established,related accept"))
        .with_rule(rule("ip saddr . ip daddr vmap @pairs4"))
        .with_rule(rule("ip6 saddr . ip6 daddr vmap @pairs6"))
        .with_rule(rule("ip saddr vmap @from4"))
        .with_rule(rule("ip6 saddr vmap @from6"));
    table = table
        .with_set("pairs4", pairs4)
        .with_set("pairs6", pairs6)
        .with_set("from4", from4)
        .with_set("from6", from6)
        .with_chain("forward", forward);
    for (name, chain) in chains.into_values() {
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

    /// What the forward chain decides for a new IPv4 connection (a tiny
    /// interpreter of the shapes `ruleset` emits).
    fn simulate(t: &Table, s: IpAddr, d: IpAddr, p: Protocol, port: u16) -> Verdict {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (s, d) else {
            panic!("v4 only")
        };
        let lookup = |set: &str, key: Key| {
            t.sets[set]
                .elements
                .get(&key)
                .map(|el| match el.value.as_ref() {
                    Some(MapValue::Verdict(v)) => v.clone(),
                    other => panic!("{other:?}"),
                })
        };
        let mut verdict = lookup("pairs4", Key(vec![Value::Ipv4(s), Value::Ipv4(d)]));
        if verdict.is_none()
            && let Some(k8snet_nft::Verdict::Goto(from)) =
                lookup("from4", Key(vec![Value::Ipv4(s)]))
        {
            for r in &t.chains[from.as_str()].rules {
                let text = k8snet_nft::rule_text(r);
                let Some(rest) = text.strip_prefix("ip daddr @") else {
                    continue;
                };
                let (name, to) = rest.split_once(" goto ").unwrap();
                if t.sets[name]
                    .elements
                    .contains_key(&Key(vec![Value::Ipv4(d)]))
                {
                    verdict = Some(k8snet_nft::Verdict::Goto(to.to_string()));
                    break;
                }
            }
        }
        let chain = match verdict {
            None | Some(k8snet_nft::Verdict::Accept) => return Verdict::Allow,
            Some(k8snet_nft::Verdict::Goto(c)) => &t.chains[c.as_str()],
            other => panic!("{other:?}"),
        };
        for r in &chain.rules {
            let text = k8snet_nft::rule_text(r);
            let Some(rest) = text.strip_prefix("meta l4proto ") else {
                return Verdict::Deny;
            };
            let mut words = rest.split_whitespace();
            let proto = words.next().unwrap();
            let ports = words.nth(2).unwrap();
            let (lo, hi) = match ports.split_once('-') {
                Some((a, b)) => (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap()),
                None => (ports.parse().unwrap(), ports.parse().unwrap()),
            };
            if proto == proto_name(p) && lo <= port && port <= hi {
                return Verdict::Allow;
            }
        }
        Verdict::Deny
    }
}
