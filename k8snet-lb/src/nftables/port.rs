//! One Service port (of one family) as nftables objects: its chains, the
//! sets only it uses, and its elements in the shared maps.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use k8snet_nft::{
    Chain, DataType, DynsetOp, Element, Expr, Field, IpFamily, Key, KeyExpr, MapValue, Nat,
    NatKind, NatTo, Rule, Set, SetFlags, Value, Verdict,
};

use super::skeleton::{
    Fam, MARK_MASQ, REJECT, V4, V6, firewall_ips, ip_value, no_endpoint_nodeports,
    no_endpoint_services, service_ips, service_nodeports,
};

/// The route type `local` (`RTN_LOCAL`).
const RTN_LOCAL: u32 = 2;
use crate::hash::xxhash64;
use crate::plan::{Family, Pool, ServicePort, Target};

/// Which pool of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PoolKind {
    Cluster,
    Local,
}

/// Where a pool's slots live in a shared slot map: the map and the offset
/// of its 16-bit window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) map: String,
    pub(crate) offset: u32,
}

/// A port's share of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fragment {
    pub(crate) chains: BTreeMap<String, Chain>,
    /// Sets and maps only this port uses (affinity).
    pub(crate) sets: BTreeMap<String, Set>,
    /// Elements of shared sets and maps: (set, key, element).
    pub(crate) elements: Vec<(String, Key, Element)>,
    /// Slot-map contents, kept compact (a pool's table may have 65,521
    /// slots): per pool its window and the endpoint of each slot.
    pub(crate) slots: Vec<Slots>,
    /// The endpoint IPs of its pools that may be on this node: local,
    /// or naming no node (for the hairpin set).
    pub(crate) hairpin_ips: Vec<IpAddr>,
    /// Its ClusterIP (for the `cluster-ips` set).
    pub(crate) cluster_ip: IpAddr,
}

pub(crate) fn fam(f: Family) -> &'static Fam {
    match f {
        Family::IPv4 => &V4,
        Family::IPv6 => &V6,
    }
}

fn nat_family(f: Family) -> IpFamily {
    match f {
        Family::IPv4 => IpFamily::V4,
        Family::IPv6 => IpFamily::V6,
    }
}

/// The readable, unique part of the port's object names:
/// `<hash>-<ns>/<name>/<proto>/<port>` (kube-proxy's form, cut so that rule
/// texts stay within the kernel's 256 bytes of rule userdata).
pub(crate) fn base_name(p: &ServicePort) -> String {
    let id = &p.id;
    let h = xxhash64(id.to_string().as_bytes(), 0);
    let mut s = format!(
        "{:08x}-{}/{}/{}/{}",
        h >> 32,
        id.namespace,
        id.name,
        id.protocol.as_str().to_ascii_lowercase(),
        id.port
    );
    s.truncate(72);
    s
}

fn sfx(f: Family) -> &'static str {
    match f {
        Family::IPv4 => "4",
        Family::IPv6 => "6",
    }
}

pub(crate) fn chain_name(kind: &str, p: &ServicePort) -> String {
    format!("{kind}{}-{}", sfx(p.id.family), base_name(p))
}

fn pool_chain(p: &ServicePort, k: PoolKind) -> String {
    chain_name(
        if k == PoolKind::Cluster {
            "svc"
        } else {
            "local"
        },
        p,
    )
}

fn ep_suffix(ip: IpAddr, port: u16) -> String {
    format!("{}/{port}", ip.to_string().replace(':', "."))
}

fn r(exprs: Vec<Expr>) -> Rule {
    Rule::new(exprs)
}

fn goto(chain: &str) -> MapValue {
    MapValue::Verdict(Verdict::Goto(chain.to_owned()))
}

fn svc_key(ip: IpAddr, proto: u8, port: u16) -> Key {
    Key(vec![ip_value(ip), Value::Proto(proto), Value::Port(port)])
}

fn elem(v: MapValue) -> Element {
    Element {
        value: Some(v),
        ..Element::default()
    }
}

/// `saddr` matches (or, negated, misses) every CIDR of `nets` of family `f`.
fn saddr_in(f: Family, nets: &[IpNet], negate: bool) -> Option<Expr> {
    let nets: Vec<&IpNet> = nets.iter().filter(|n| Family::of(n.addr()) == f).collect();
    let field = fam(f).saddr;
    match nets.as_slice() {
        [] => None,
        [one] => Some(Expr::Prefix {
            field,
            negate,
            addr: one.network(),
            len: one.prefix_len(),
        }),
        many => Some(Expr::AnonLookup {
            key: KeyExpr::field(field),
            negate,
            elements: many
                .iter()
                .map(|n| {
                    let (a, b) = (n.network(), n.broadcast());
                    (
                        Key::one(ip_value(a)),
                        (a != b).then(|| Key::one(ip_value(b))),
                    )
                })
                .collect(),
        }),
    }
}

/// One pool's slots in a shared slot map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slots {
    pub(crate) window: Window,
    /// Slot `i` (key `window.offset + i`) → endpoint.
    pub(crate) targets: Vec<(IpAddr, u16)>,
}

impl Slots {
    /// The map elements.
    pub(crate) fn elements(&self) -> impl Iterator<Item = (Key, Element)> + '_ {
        self.targets.iter().enumerate().map(|(i, (ip, port))| {
            let k = Key::one(Value::Int(u64::from(self.window.offset) + i as u64));
            let v = MapValue::Data(Key(vec![ip_value(*ip), Value::Port(*port)]));
            (k, elem(v))
        })
    }
}

/// What the port's lowering needs besides the port.
pub(crate) struct Context<'a> {
    pub(crate) seed: u32,
    pub(crate) cluster_cidrs: &'a [IpNet],
    /// The slot window of each pool (absent for affinity pools, which use
    /// a verdict map of their own).
    pub(crate) windows: &'a BTreeMap<PoolKind, Window>,
}

/// Lowers one port.
pub(crate) fn lower_port(p: &ServicePort, cx: &Context<'_>) -> Fragment {
    let mut fr = Fragment {
        chains: BTreeMap::new(),
        sets: BTreeMap::new(),
        elements: Vec::new(),
        slots: Vec::new(),
        hairpin_ips: Vec::new(),
        cluster_ip: p.cluster_ip,
    };
    let f = fam(p.id.family);
    let proto = p.id.protocol.ip_proto();
    let cluster_chain = p
        .cluster_pool
        .as_ref()
        .map(|_| pool_chain(p, PoolKind::Cluster));
    let local_chain = p
        .local_pool
        .as_ref()
        .map(|_| pool_chain(p, PoolKind::Local));
    let target_chain = |t: Target| match t {
        Target::ClusterPool => cluster_chain.clone(),
        Target::LocalPool => local_chain.clone(),
        _ => None,
    };
    let no_endpoints = |t: Target| match t {
        Target::Reject => Some(goto(REJECT)),
        Target::Drop => Some(MapValue::Verdict(Verdict::Drop)),
        _ => None,
    };

    // ClusterIP.
    let cip = svc_key(p.cluster_ip, proto, p.port);
    if let Some(c) = target_chain(p.internal) {
        fr.elements.push((service_ips(f), cip, elem(goto(&c))));
    } else if let Some(v) = no_endpoints(p.internal) {
        fr.elements.push((no_endpoint_services(f), cip, elem(v)));
    }

    // External frontends.
    if let Some(ext) = &p.external {
        let ext_chain = chain_name("ext", p);
        let has_endpoints = p.has_endpoints();
        let dead = no_endpoints(ext.target);
        for ip in p.external_ips.iter().chain(&p.load_balancer_ips) {
            let k = svc_key(*ip, proto, p.port);
            if has_endpoints {
                fr.elements
                    .push((service_ips(f), k.clone(), elem(goto(&ext_chain))));
            }
            if let Some(v) = &dead {
                fr.elements
                    .push((no_endpoint_services(f), k, elem(v.clone())));
            }
        }
        if let Some(np) = p.node_port {
            let k = Key(vec![Value::Proto(proto), Value::Port(np)]);
            if has_endpoints {
                fr.elements
                    .push((service_nodeports(f), k.clone(), elem(goto(&ext_chain))));
            }
            if let Some(v) = &dead {
                fr.elements
                    .push((no_endpoint_nodeports(f), k, elem(v.clone())));
            }
        }
        if !p.source_ranges.is_empty() && !p.load_balancer_ips.is_empty() {
            let fw = chain_name("fw", p);
            for ip in &p.load_balancer_ips {
                fr.elements.push((
                    firewall_ips(f),
                    svc_key(*ip, proto, p.port),
                    elem(goto(&fw)),
                ));
            }
            let mut rule = vec![];
            rule.extend(saddr_in(p.id.family, &p.source_ranges, true));
            rule.push(Expr::Verdict(Verdict::Drop));
            fr.chains.insert(fw, Chain::regular().with_rule(r(rule)));
        }
        if has_endpoints {
            let mut ch = Chain::regular();
            if ext.masquerade_all {
                ch = ch.with_rule(r(vec![Expr::jump(MARK_MASQ)]));
            } else if let Some(cc) = &cluster_chain {
                // Pods and the node itself skip the policy, as if they had
                // gone out to the load balancer and come back.
                if let Some(m) = saddr_in(p.id.family, cx.cluster_cidrs, false) {
                    ch = ch.with_rule(
                        r(vec![m, Expr::goto(cc)]).with_comment("short-circuit pod traffic"),
                    );
                }
                // Any address the node holds (its IPs, a VIP on `lo`): kube-proxy's
                // `fib saddr type local`.
                let from_node = || Expr::eq(Field::FibSaddrType, Value::FibAddrType(RTN_LOCAL));
                ch = ch
                    .with_rule(
                        r(vec![from_node(), Expr::jump(MARK_MASQ)])
                            .with_comment("masquerade local traffic"),
                    )
                    .with_rule(
                        r(vec![from_node(), Expr::goto(cc)])
                            .with_comment("short-circuit local traffic"),
                    );
            }
            if let Some(c) = target_chain(ext.target) {
                ch = ch.with_rule(r(vec![Expr::goto(&c)]));
            }
            fr.chains.insert(ext_chain, ch);
        }
    }

    // Pools.
    let affinity = p.affinity_timeout;
    let mut ep_chains: BTreeMap<(IpAddr, u16), String> = BTreeMap::new();
    for (kind, pool) in [
        (PoolKind::Cluster, &p.cluster_pool),
        (PoolKind::Local, &p.local_pool),
    ] {
        let Some(pool) = pool else { continue };
        // The endpoints that can hairpin here: a pair only matches when a
        // pod of this node reached itself, so local endpoints, and those
        // naming no node (the field is optional: one may be on this node).
        // Remote endpoints never match, and leaving them out keeps the set
        // from growing with the cluster.
        fr.hairpin_ips.extend(
            pool.endpoints
                .iter()
                .filter(|e| e.local || e.node.is_none())
                .map(|e| e.ip),
        );
        let name = pool_chain(p, kind);
        let mut ch = Chain::regular();
        let internal_here = target_chain(p.internal).as_deref() == Some(name.as_str());
        // Only with cluster CIDRs of the port's family (kube-proxy writes
        // the rule only when that family's local-traffic detector exists).
        let off_cluster = saddr_in(p.id.family, cx.cluster_cidrs, true);
        if internal_here
            && p.masquerade_off_cluster
            && let Some(off_cluster) = off_cluster
        {
            ch = ch.with_rule(r(vec![
                Expr::eq(f.daddr, ip_value(p.cluster_ip)),
                Expr::eq(Field::MetaL4proto, Value::Proto(proto)),
                Expr::eq(Field::ThDport, Value::Port(p.port)),
                off_cluster,
                Expr::jump(MARK_MASQ),
            ]));
        }
        match affinity {
            Some(timeout) => {
                ch = affinity_pool(&mut fr, p, kind, pool, ch, timeout, cx.seed, &mut ep_chains);
            }
            None => {
                let Some(w) = cx.windows.get(&kind) else {
                    continue;
                };
                let targets = pool
                    .slots
                    .iter()
                    .filter_map(|ep| pool.endpoints.get(*ep as usize))
                    .map(|e| (e.ip, e.port))
                    .collect();
                fr.slots.push(Slots {
                    window: w.clone(),
                    targets,
                });
                ch = ch.with_rule(r(vec![
                    Expr::eq(Field::MetaL4proto, Value::Proto(proto)),
                    Expr::Nat(Nat {
                        kind: NatKind::Dnat,
                        family: nat_family(p.id.family),
                        to: NatTo::Map {
                            key: KeyExpr::Jhash {
                                fields: vec![f.saddr, Field::ThSport],
                                modulus: pool.slots.len() as u32,
                                seed: cx.seed,
                                offset: w.offset,
                            },
                            map: w.map.clone(),
                            port: None,
                        },
                    }),
                ]));
            }
        }
        fr.chains.insert(name, ch);
    }
    fr
}

/// An affinity pool, kube-proxy style: an affinity set and a chain per
/// endpoint; a client seen recently goes to its endpoint, a new one to the
/// Maglev choice by source address (so affinity also holds across nodes).
#[allow(clippy::too_many_arguments)]
fn affinity_pool(
    fr: &mut Fragment,
    p: &ServicePort,
    kind: PoolKind,
    pool: &Pool,
    mut ch: Chain,
    timeout: u32,
    seed: u32,
    ep_chains: &mut BTreeMap<(IpAddr, u16), String>,
) -> Chain {
    let f = fam(p.id.family);
    let proto = p.id.protocol.ip_proto();
    // Shorter than other names: an affinity rule names a set and a chain.
    let mut base = base_name(p);
    base.truncate(40);
    let s = sfx(p.id.family);
    for e in &pool.endpoints {
        let suffix = ep_suffix(e.ip, e.port);
        let set = format!("aff{s}-{base}__{suffix}");
        let chain = ep_chains.entry((e.ip, e.port)).or_insert_with(|| {
            let name = format!("ep{s}-{base}__{suffix}");
            let flags = SetFlags {
                dynamic: true,
                timeout: true,
                ..SetFlags::default()
            };
            fr.sets.insert(
                set.clone(),
                Set::new(vec![f.addr])
                    .with_flags(flags)
                    .with_timeout(Duration::from_secs(timeout.into())),
            );
            let ep = Chain::regular()
                .with_rule(r(vec![
                    Expr::eq(f.saddr, ip_value(e.ip)),
                    Expr::jump(MARK_MASQ),
                ]))
                .with_rule(r(vec![Expr::Dynset {
                    op: DynsetOp::Update,
                    set: set.clone(),
                    key: vec![f.saddr],
                    timeout: None,
                }]))
                .with_rule(r(vec![
                    Expr::eq(Field::MetaL4proto, Value::Proto(proto)),
                    Expr::Nat(Nat {
                        kind: NatKind::Dnat,
                        family: nat_family(p.id.family),
                        to: NatTo::Addr {
                            addr: e.ip,
                            port: Some(e.port),
                        },
                    }),
                ]));
            fr.chains.insert(name.clone(), ep);
            name
        });
        ch = ch.with_rule(r(vec![
            Expr::lookup(KeyExpr::field(f.saddr), &set),
            Expr::goto(chain),
        ]));
    }
    let map = format!(
        "aslots{s}-{base}-{}",
        if kind == PoolKind::Cluster {
            "cluster"
        } else {
            "local"
        }
    );
    let mut vm = Set::verdict_map(vec![DataType::Integer(32)]);
    for (slot, ep) in pool.slots.iter().enumerate() {
        let e = &pool.endpoints[*ep as usize];
        if let Some(c) = ep_chains.get(&(e.ip, e.port)) {
            vm = vm.with_mapping(Key::one(Value::Int(slot as u64)), goto(c));
        }
    }
    fr.sets.insert(map.clone(), vm);
    ch.with_rule(r(vec![Expr::Vmap {
        key: KeyExpr::Jhash {
            fields: vec![f.saddr],
            modulus: pool.slots.len() as u32,
            seed,
            offset: 0,
        },
        map,
    }]))
}
