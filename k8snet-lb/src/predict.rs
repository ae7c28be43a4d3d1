//! Where the kernel sends a flow, computed in user space from the plan.

use std::net::IpAddr;

use ipnet::IpNet;
use k8snet_model::Protocol;
use k8snet_nft::{DataType, Key, Value, key_bytes, predict_jhash_slot};
use serde::Serialize;

use crate::plan::{Family, Pool, ServicePort, ServiceTable, Target};

/// A new connection's first packet, as the node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Flow {
    /// Source address.
    pub saddr: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub daddr: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// What the data plane does with a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Prediction {
    /// DNAT to this endpoint.
    Endpoint {
        /// The endpoint's address.
        ip: IpAddr,
        /// The endpoint's port.
        port: u16,
        /// Whether the source is masqueraded on the way.
        masquerade: bool,
    },
    /// Refused at once: a TCP reset, ICMP port unreachable for other
    /// protocols (`connect` fails with `ECONNREFUSED` either way).
    Reject,
    /// Dropped.
    Drop,
    /// Not a Service frontend: the table does not touch it.
    Pass,
}

fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// The endpoint the kernel picks in `pool`: slot
/// `reciprocal_scale(jhash(saddr . sport, seed), M)` of its Maglev table
/// (source address only with ClientIP affinity, for a client the affinity
/// sets have not seen yet).
pub fn pick<'a>(
    pool: &'a Pool,
    seed: u32,
    flow: &Flow,
    affinity: bool,
) -> Option<&'a crate::plan::Endpoint> {
    let addr = match flow.saddr {
        IpAddr::V4(a) => (Value::Ipv4(a), DataType::Ipv4Addr),
        IpAddr::V6(a) => (Value::Ipv6(a), DataType::Ipv6Addr),
    };
    let (key, types) = if affinity {
        (Key(vec![addr.0]), vec![addr.1])
    } else {
        (
            Key(vec![addr.0, Value::Port(flow.sport)]),
            vec![addr.1, DataType::InetService],
        )
    };
    let bytes = key_bytes(&key, &types)?;
    let m = u32::try_from(pool.slots.len()).ok().filter(|m| *m > 0)?;
    let slot = predict_jhash_slot(&bytes, seed, m);
    let ep = *pool.slots.get(slot as usize)?;
    pool.endpoints.get(ep as usize)
}

/// What the node does with `flow` under `table` (the first packet of a new
/// connection; established connections keep their conntrack entry).
///
/// ```
/// use k8snet_lb::predict::{Flow, Prediction, predict};
/// let table = k8snet_lb::plan(&k8snet_model::Cluster::new(), &k8snet_lb::NodeContext::new("n"));
/// let flow = Flow {
///     saddr: "198.18.0.2".parse()?, sport: 40000,
///     daddr: "198.19.0.9".parse()?, dport: 80,
///     protocol: k8snet_model::Protocol::Tcp,
/// };
/// assert_eq!(predict(&table, &flow), Prediction::Pass);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn predict(table: &ServiceTable, flow: &Flow) -> Prediction {
    let family = Family::of(flow.daddr);
    let ports = table
        .ports
        .iter()
        .filter(|p| p.id.family == family && p.id.protocol == flow.protocol);
    for p in ports {
        if p.cluster_ip == flow.daddr && p.port == flow.dport {
            return internal(table, p, flow);
        }
        let ext_ip = p.port == flow.dport
            && (p.external_ips.contains(&flow.daddr) || p.load_balancer_ips.contains(&flow.daddr));
        let node_port = p.node_port == Some(flow.dport) && table.node_ips.contains(&flow.daddr);
        if ext_ip || node_port {
            let firewalled = p.load_balancer_ips.contains(&flow.daddr) && p.port == flow.dport;
            if firewalled && !p.source_ranges.is_empty() && !contains(&p.source_ranges, flow.saddr)
            {
                return Prediction::Drop;
            }
            return external(table, p, flow);
        }
    }
    // Still addressed to a ClusterIP: a port (or protocol) no Service uses
    // there. `cluster-ips-check` rejects it.
    if table
        .ports
        .iter()
        .any(|p| p.id.family == family && p.cluster_ip == flow.daddr)
    {
        return Prediction::Reject;
    }
    Prediction::Pass
}

/// The cluster CIDRs of `ip`'s family: empty when the node knows none of
/// that family (no way to tell pods from other sources then).
fn family_cidrs(table: &ServiceTable, ip: IpAddr) -> Vec<IpNet> {
    table
        .cluster_cidrs
        .iter()
        .copied()
        .filter(|n| Family::of(n.addr()) == Family::of(ip))
        .collect()
}

/// Whether the node holds `ip` as a local address (what `fib saddr type
/// local` asks the kernel): one of its IPs, another address it holds
/// ([`ServiceTable::local_addrs`]) or loopback. Addresses the node holds
/// that the table was not told of are unknown here.
fn node_holds(table: &ServiceTable, ip: IpAddr) -> bool {
    ip.is_loopback()
        || table.node_ips.contains(&ip)
        || table.local_addrs.iter().any(|n| n.contains(&ip))
}

fn to_pool(
    table: &ServiceTable,
    p: &ServicePort,
    t: Target,
    flow: &Flow,
    masq: bool,
) -> Prediction {
    match t {
        Target::Reject => Prediction::Reject,
        Target::Drop => Prediction::Drop,
        _ => match p
            .pool(t)
            .and_then(|pool| pick(pool, table.seed, flow, p.affinity_timeout.is_some()))
        {
            // A loopback source travels only through `lo`: to a frontend
            // and an endpoint the node holds. Otherwise IPv4 refuses to
            // route it (before DNAT `connect` fails with EINVAL, after it
            // the packet is dropped; `route_localnet` is off) and IPv6
            // drops `::1` arriving on any other link; the masquerade that
            // would rewrite it comes too late.
            Some(e)
                if flow.saddr.is_loopback()
                    && !(node_holds(table, flow.daddr) && node_holds(table, e.ip)) =>
            {
                Prediction::Drop
            }
            Some(e) => Prediction::Endpoint {
                ip: e.ip,
                port: e.port,
                // Hairpin: a pod of this node reaching itself is
                // masqueraded (the `hairpin` set holds the endpoints that
                // may be on this node: local ones and those naming none).
                masquerade: masq || (e.ip == flow.saddr && (e.local || e.node.is_none())),
            },
            None => Prediction::Drop,
        },
    }
}

fn internal(table: &ServiceTable, p: &ServicePort, flow: &Flow) -> Prediction {
    let cidrs = family_cidrs(table, flow.saddr);
    let masq = p.masquerade_off_cluster
        && !matches!(p.internal, Target::Reject | Target::Drop)
        && !cidrs.is_empty()
        && !contains(&cidrs, flow.saddr);
    to_pool(table, p, p.internal, flow, masq)
}

fn external(table: &ServiceTable, p: &ServicePort, flow: &Flow) -> Prediction {
    let Some(ext) = &p.external else {
        return Prediction::Pass;
    };
    if !p.has_endpoints() {
        return Prediction::Reject;
    }
    if ext.masquerade_all {
        return to_pool(table, p, ext.target, flow, true);
    }
    if p.cluster_pool.is_some() {
        if contains(&table.cluster_cidrs, flow.saddr) {
            return to_pool(table, p, Target::ClusterPool, flow, false);
        }
        if node_holds(table, flow.saddr) {
            return to_pool(table, p, Target::ClusterPool, flow, true);
        }
    }
    to_pool(table, p, ext.target, flow, false)
}
