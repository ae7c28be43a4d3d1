//! Endpoints of a Service port from its EndpointSlices, and kube-proxy's
//! `CategorizeEndpoints` (pkg/proxy/topology.go): which of them Cluster
//! and Local traffic policy may use on this node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8snet_model::{AddressType, EndpointSlice, Protocol};

use super::types::{Endpoint, Family};

/// One endpoint as read from a slice, with what topology needs.
#[derive(Debug, Clone)]
pub(crate) struct RawEndpoint {
    pub(crate) ep: Endpoint,
    pub(crate) zone: Option<String>,
    pub(crate) zone_hints: BTreeSet<String>,
    pub(crate) node_hints: BTreeSet<String>,
}

/// The endpoints of port `(name, protocol)` of family `family`, as
/// kube-proxy's EndpointSliceCache reads them: the slice port matched by
/// name and protocol (a port without a number is skipped), the first
/// address of each endpoint, conditions defaulted (`ready` and `serving`
/// true when unset, `terminating` false), one endpoint per `ip:port` where
/// a non-terminating copy wins over a terminating one.
pub(crate) fn collect<'a>(
    slices: impl Iterator<Item = &'a EndpointSlice>,
    port_name: &str,
    protocol: Protocol,
    family: Family,
    node: &str,
) -> Vec<RawEndpoint> {
    let want = match family {
        Family::IPv4 => AddressType::IPv4,
        Family::IPv6 => AddressType::IPv6,
    };
    let mut by_key: BTreeMap<(IpAddr, u16), RawEndpoint> = BTreeMap::new();
    for slice in slices.filter(|s| s.address_type == want) {
        for sp in &slice.ports {
            if sp.name.as_deref().unwrap_or("") != port_name
                || sp.protocol.unwrap_or_default() != protocol
            {
                continue;
            }
            let Some(port) = sp
                .port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
            else {
                continue;
            };
            for e in &slice.endpoints {
                let Some(ip) = e.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                if Family::of(ip) != family {
                    continue;
                }
                let c = &e.conditions;
                let terminating = c.terminating.unwrap_or(false);
                let raw = RawEndpoint {
                    ep: Endpoint {
                        ip,
                        port,
                        node: e.node_name.clone(),
                        local: e.node_name.as_deref() == Some(node),
                        ready: c.ready.unwrap_or(true),
                        serving: c.serving.unwrap_or(true),
                        terminating,
                    },
                    zone: e.zone.clone(),
                    zone_hints: e
                        .hints
                        .iter()
                        .flat_map(|h| &h.for_zones)
                        .map(|z| z.name.clone())
                        .collect(),
                    node_hints: e
                        .hints
                        .iter()
                        .flat_map(|h| &h.for_nodes)
                        .map(|n| n.name.clone())
                        .collect(),
                };
                let k = (ip, port);
                if !by_key.contains_key(&k) || !terminating {
                    by_key.insert(k, raw);
                }
            }
        }
    }
    by_key.into_values().collect()
}

/// `trafficDistribution` values that ask for topology hints.
const CLOSE: [&str; 3] = ["PreferClose", "PreferSameZone", "PreferSameNode"];

/// Fills the hints the EndpointSlice controller's `trafficdist` heuristic
/// would, when the Service asks for it and *no* endpoint carries hints
/// (slices written by hand or derived from Pods): every ready endpoint is
/// hinted for its own zone, and for its own node with `PreferSameNode`.
/// Slices that carry hints are used as they are, as kube-proxy does.
pub(crate) fn fill_hints(eps: &mut [RawEndpoint], traffic_distribution: Option<&str>) {
    let Some(td) = traffic_distribution.filter(|t| CLOSE.contains(t)) else {
        return;
    };
    if eps
        .iter()
        .any(|e| !e.zone_hints.is_empty() || !e.node_hints.is_empty())
    {
        return;
    }
    for e in eps.iter_mut().filter(|e| e.ep.ready) {
        e.zone_hints.extend(e.zone.clone());
        if td == "PreferSameNode" {
            e.node_hints.extend(e.ep.node.clone());
        }
    }
}

/// How topology narrows the cluster endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    None,
    SameZone,
    SameNode,
}

fn topology_mode(eps: &[RawEndpoint], node: &str, zone: Option<&str>) -> Topology {
    let ready: Vec<&RawEndpoint> = eps.iter().filter(|e| e.ep.ready).collect();
    if ready.is_empty() {
        return Topology::None;
    }
    if ready.iter().all(|e| !e.node_hints.is_empty())
        && ready.iter().any(|e| e.node_hints.contains(node))
    {
        return Topology::SameNode;
    }
    if let Some(zone) = zone
        && ready.iter().all(|e| !e.zone_hints.is_empty())
        && ready.iter().any(|e| e.zone_hints.contains(zone))
    {
        return Topology::SameZone;
    }
    Topology::None
}

/// The result of categorizing.
#[derive(Debug, Default)]
pub(crate) struct Categorized {
    /// Endpoints for Cluster policy (when it is used).
    pub(crate) cluster: Vec<Endpoint>,
    /// Endpoints for Local policy (when it is used).
    pub(crate) local: Vec<Endpoint>,
    /// Whether the Service has a usable endpoint anywhere.
    pub(crate) has_any: bool,
}

/// kube-proxy's `CategorizeEndpoints`.
pub(crate) fn categorize(
    eps: &[RawEndpoint],
    uses_cluster: bool,
    uses_local: bool,
    node: &str,
    zone: Option<&str>,
) -> Categorized {
    let mut out = Categorized::default();
    let pick = |f: &dyn Fn(&RawEndpoint) -> bool| -> Vec<Endpoint> {
        eps.iter().filter(|e| f(e)).map(|e| e.ep.clone()).collect()
    };
    if uses_cluster {
        let mode = topology_mode(eps, node, zone);
        out.cluster = pick(&|e| {
            e.ep.ready
                && match mode {
                    Topology::None => true,
                    Topology::SameNode => e.node_hints.contains(node),
                    Topology::SameZone => zone.is_some_and(|z| e.zone_hints.contains(z)),
                }
        });
        // No ready endpoint anywhere (topology never empties the list: a
        // mode is only chosen when it keeps one): serving-terminating ones.
        if out.cluster.is_empty() {
            out.cluster = pick(&|e| e.ep.serving && e.ep.terminating);
        }
        out.has_any = !out.cluster.is_empty();
    }
    if uses_local {
        out.has_any |= eps
            .iter()
            .any(|e| e.ep.ready || (e.ep.serving && e.ep.terminating));
        out.local = pick(&|e| e.ep.local && e.ep.ready);
        if out.local.is_empty() {
            out.local = pick(&|e| e.ep.local && e.ep.serving && e.ep.terminating);
        }
    }
    out
}
