//! The fixed part of `inet k8snet-lb`: base chains, dispatch chains and the
//! shared maps (kube-proxy's nftables layout, both families in one table).

use k8snet_nft::{
    Chain, ChainType, CtStates, CtStatus, DataType, Expr, Field, Hook, Key, KeyExpr, MarkTarget,
    Policy, Reject, Rule, Set, Table, Value, Verdict,
};

/// The table this crate owns.
pub const TABLE: &str = "k8snet-lb";
/// The packet mark that asks `masquerading` to masquerade.
pub const MASQ_MARK: u32 = 0x4000;

pub(crate) const MARK_MASQ: &str = "mark-for-masquerade";
pub(crate) const REJECT: &str = "reject-chain";
const ENDPOINTS_CHECK: &str = "endpoints-check";
const FIREWALL_CHECK: &str = "firewall-check";
const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";

/// Per family: (suffix, address type, saddr, daddr).
pub(crate) struct Fam {
    pub(crate) sfx: &'static str,
    pub(crate) addr: DataType,
    pub(crate) saddr: Field,
    pub(crate) daddr: Field,
}

pub(crate) const V4: Fam = Fam {
    sfx: "",
    addr: DataType::Ipv4Addr,
    saddr: Field::IpSaddr,
    daddr: Field::IpDaddr,
};
pub(crate) const V6: Fam = Fam {
    sfx: "6",
    addr: DataType::Ipv6Addr,
    saddr: Field::Ip6Saddr,
    daddr: Field::Ip6Daddr,
};

/// Shared set names, per family suffix.
pub(crate) fn service_ips(f: &Fam) -> String {
    format!("service-ips{}", f.sfx)
}
pub(crate) fn service_nodeports(f: &Fam) -> String {
    format!("service-nodeports{}", f.sfx)
}
pub(crate) fn no_endpoint_services(f: &Fam) -> String {
    format!("no-endpoint-services{}", f.sfx)
}
pub(crate) fn no_endpoint_nodeports(f: &Fam) -> String {
    format!("no-endpoint-nodeports{}", f.sfx)
}
pub(crate) fn firewall_ips(f: &Fam) -> String {
    format!("firewall-ips{}", f.sfx)
}
pub(crate) fn nodeport_ips(f: &Fam) -> String {
    format!("nodeport-ips{}", f.sfx)
}
pub(crate) fn hairpin(f: &Fam) -> String {
    format!("hairpin{}", f.sfx)
}
pub(crate) fn cluster_ips(f: &Fam) -> String {
    format!("cluster-ips{}", f.sfx)
}

fn r(exprs: Vec<Expr>) -> Rule {
    Rule::new(exprs)
}

fn new_state() -> Expr {
    Expr::CtState(CtStates::NEW)
}

fn vmap(fields: Vec<Field>, map: String) -> Expr {
    Expr::Vmap {
        key: KeyExpr::Fields(fields),
        map,
    }
}

/// `<family daddr> . meta l4proto . th dport vmap @<map>` for both families.
fn dispatch(chain: Chain, map: fn(&Fam) -> String) -> Chain {
    [V4, V6].iter().fold(chain, |c, f| {
        c.with_rule(r(vec![vmap(
            vec![f.daddr, Field::MetaL4proto, Field::ThDport],
            map(f),
        )]))
    })
}

/// `<family daddr> @nodeport-ips meta l4proto . th dport vmap @<map>`.
fn nodeports(chain: Chain, map: fn(&Fam) -> String) -> Chain {
    [V4, V6].iter().fold(chain, |c, f| {
        c.with_rule(r(vec![
            Expr::lookup(KeyExpr::field(f.daddr), &nodeport_ips(f)),
            vmap(vec![Field::MetaL4proto, Field::ThDport], map(f)),
        ]))
    })
}

/// The table with its fixed chains and empty shared sets.
pub(crate) fn skeleton() -> Table {
    // Firewalling sees pre-DNAT addresses, so it runs before dstnat (-100);
    // the no-endpoint and ClusterIP checks run after it, at filter
    // priority, so that traffic a Service chain DNATs (the node's own
    // short-circuited traffic to an eTP=Local node port without local
    // endpoints) is no longer addressed to the frontend they guard
    // (kube-proxy #131765).
    let pre_dnat = |hook| Chain::base(ChainType::Filter, hook, -110, Policy::Accept);
    let filter = |hook| Chain::base(ChainType::Filter, hook, 0, Policy::Accept);
    let nat = |hook, prio| Chain::base(ChainType::Nat, hook, prio, Policy::Accept);
    let jump = |c: &str| r(vec![Expr::jump(c)]);
    let new_jump = |c: &str| r(vec![new_state(), Expr::jump(c)]);
    let mut t = Table::new(k8snet_nft::Family::Inet, TABLE)
        .with_chain(
            "filter-prerouting-pre-dnat",
            pre_dnat(Hook::Prerouting).with_rule(new_jump(FIREWALL_CHECK)),
        )
        .with_chain(
            "filter-output-pre-dnat",
            pre_dnat(Hook::Output).with_rule(new_jump(FIREWALL_CHECK)),
        )
        // reject is valid only in input, forward and output.
        .with_chain(
            "filter-input",
            filter(Hook::Input).with_rule(new_jump(ENDPOINTS_CHECK)),
        )
        .with_chain(
            "filter-forward",
            filter(Hook::Forward)
                .with_rule(new_jump(ENDPOINTS_CHECK))
                .with_rule(new_jump(CLUSTER_IPS_CHECK)),
        )
        .with_chain(
            "filter-output",
            filter(Hook::Output)
                .with_rule(new_jump(ENDPOINTS_CHECK))
                .with_rule(new_jump(CLUSTER_IPS_CHECK)),
        )
        .with_chain(
            "nat-prerouting",
            nat(Hook::Prerouting, -100).with_rule(jump("services")),
        )
        .with_chain(
            "nat-output",
            nat(Hook::Output, -100).with_rule(jump("services")),
        )
        .with_chain(
            "nat-postrouting",
            nat(Hook::Postrouting, 100).with_rule(jump("masquerading")),
        )
        .with_chain(
            "services",
            nodeports(dispatch(Chain::regular(), service_ips), service_nodeports),
        )
        .with_chain(
            ENDPOINTS_CHECK,
            nodeports(
                dispatch(Chain::regular(), no_endpoint_services),
                no_endpoint_nodeports,
            ),
        )
        .with_chain(FIREWALL_CHECK, dispatch(Chain::regular(), firewall_ips))
        // Still addressed to a ClusterIP after DNAT: a port no Service
        // uses (or another protocol). kube-proxy rejects it.
        .with_chain(
            CLUSTER_IPS_CHECK,
            [V4, V6].iter().fold(Chain::regular(), |c, f| {
                c.with_rule(
                    r(vec![
                        Expr::lookup(KeyExpr::field(f.daddr), &cluster_ips(f)),
                        Expr::goto(REJECT),
                    ])
                    .with_comment("reject traffic to invalid ports of ClusterIPs"),
                )
            }),
        )
        .with_chain(
            MARK_MASQ,
            Chain::regular().with_rule(r(vec![Expr::SetMark {
                target: MarkTarget::Meta,
                value: MASQ_MARK,
            }])),
        )
        // TCP gets a reset: ICMP errors are rate-limited per peer (the first
        // one to a new peer was measured to be held back a second), a reset
        // is not; connect() fails with ECONNREFUSED either way.
        .with_chain(
            REJECT,
            Chain::regular()
                .with_rule(r(vec![Expr::Reject(Reject::TcpReset)]))
                .with_rule(r(vec![Expr::Reject(Reject::PortUnreachable)])),
        );

    // Hairpin: a pod reaching itself through a Service must see another
    // source, or it would answer itself directly. After DNAT, source equals
    // destination exactly then. kube-proxy masquerades `saddr == endpoint`
    // inside the endpoint chain, so only DNATed traffic: `ct status dnat`
    // keeps a direct connection between two addresses the node holds (a
    // process reaching a host-network endpoint such as the apiserver at the
    // node IP) from being masqueraded. The pairs are the endpoints that
    // can be on this node: local ones and those naming no node.
    let mut masq = Chain::regular();
    for f in [V4, V6] {
        masq = masq.with_rule(r(vec![
            Expr::CtStatus(CtStatus::DNAT),
            Expr::lookup(KeyExpr::Fields(vec![f.saddr, f.daddr]), &hairpin(&f)),
            Expr::jump(MARK_MASQ),
        ]));
    }
    masq = masq
        .with_rule(r(vec![
            Expr::Cmp {
                field: Field::MetaMark,
                op: k8snet_nft::CmpOp::Ne,
                value: Value::Mark(MASQ_MARK),
            },
            Expr::Verdict(Verdict::Return),
        ]))
        .with_rule(r(vec![Expr::SetMark {
            target: MarkTarget::Meta,
            value: 0,
        }]))
        .with_rule(r(vec![Expr::Masquerade { fully_random: true }]));
    t = t.with_chain("masquerading", masq);

    for f in [V4, V6] {
        let a = f.addr;
        let svc_key = vec![a, DataType::InetProto, DataType::InetService];
        let port_key = vec![DataType::InetProto, DataType::InetService];
        t = t
            .with_set(&service_ips(&f), Set::verdict_map(svc_key.clone()))
            .with_set(&no_endpoint_services(&f), Set::verdict_map(svc_key.clone()))
            .with_set(&firewall_ips(&f), Set::verdict_map(svc_key))
            .with_set(&service_nodeports(&f), Set::verdict_map(port_key.clone()))
            .with_set(&no_endpoint_nodeports(&f), Set::verdict_map(port_key))
            .with_set(&nodeport_ips(&f), Set::new(vec![a]))
            .with_set(&cluster_ips(&f), Set::new(vec![a]))
            .with_set(&hairpin(&f), Set::new(vec![a, a]));
    }
    t
}

/// A set key of one address.
pub(crate) fn ip_value(ip: std::net::IpAddr) -> Value {
    match ip {
        std::net::IpAddr::V4(a) => Value::Ipv4(a),
        std::net::IpAddr::V6(a) => Value::Ipv6(a),
    }
}

/// `addr . addr` for the hairpin set.
pub(crate) fn hairpin_key(ip: std::net::IpAddr) -> Key {
    Key(vec![ip_value(ip), ip_value(ip)])
}
