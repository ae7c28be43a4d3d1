//! Which UDP conntrack entries are stale after a change: kube-proxy's
//! `CleanStaleEntries` (pkg/proxy/conntrack/cleanup.go) as a pure
//! function of the plan, so it is tested without a kernel.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use k8snet_model::Protocol;

use super::conntrack::Entry;
use crate::plan::{Family, PortId, ServicePort};

/// An address and port a Service port answers on.
type Frontend = (IpAddr, u16);

/// UDP conntrack entries to delete.
///
/// - **Keep only serving** (kube-proxy's rule): for a port with serving
///   endpoints, an entry to one of its frontends whose reply does not come
///   from one of them is stale: its endpoint stopped serving, or the entry
///   was made before the port had endpoints and was never DNATed. An
///   endpoint that still serves keeps its flows, whatever policy,
///   topology or `terminating` say about new flows.
/// - **No longer serving** (beyond kube-proxy, which leaves these alone):
///   when a port is removed or keeps no serving endpoint, entries answered
///   by the endpoints that served it go, so the client's next datagram is
///   refused instead of vanishing; an entry some other port's serving
///   endpoint answers on that frontend stays.
#[derive(Debug, Default)]
pub(crate) struct StaleUdp {
    /// Frontends of changed ports → their serving endpoints.
    keep: HashMap<Frontend, BTreeSet<SocketAddr>>,
    /// Frontends of ports that lost every serving endpoint → those they had.
    gone: HashMap<Frontend, BTreeSet<SocketAddr>>,
    /// Every UDP frontend after the change → its serving endpoints.
    owned: HashMap<Frontend, BTreeSet<SocketAddr>>,
}

/// Every (address, port) a port answers on: its ClusterIP, external and
/// load balancer IPs at the Service port, its node port at each node IP
/// of its family (the addresses `nodeport-ips` accepts).
fn frontends(p: &ServicePort, node_ips: &[IpAddr]) -> Vec<Frontend> {
    let ips = [p.cluster_ip]
        .into_iter()
        .chain(p.external_ips.iter().copied())
        .chain(p.load_balancer_ips.iter().copied());
    let mut v: Vec<Frontend> = ips.map(|ip| (ip, p.port)).collect();
    if let Some(np) = p.node_port {
        v.extend(
            node_ips
                .iter()
                .filter(|ip| Family::of(**ip) == p.id.family)
                .map(|ip| (*ip, np)),
        );
    }
    v
}

/// The UDP ports of `ports`, by id.
fn udp_by_id(ports: &[ServicePort]) -> HashMap<&PortId, &ServicePort> {
    ports
        .iter()
        .filter(|p| p.id.protocol == Protocol::Udp)
        .map(|p| (&p.id, p))
        .collect()
}

fn serving(p: &ServicePort) -> BTreeSet<SocketAddr> {
    p.serving_endpoints.iter().copied().collect()
}

impl StaleUdp {
    /// The entries a change from `before` to `after` (UDP ports are picked
    /// out) makes stale; the node IPs (where node ports answer) were
    /// `ips_before` and are `ips_after`. With `all`, every port of `after`
    /// is checked, as after a start or a resync, when what conntrack holds
    /// is unknown; otherwise only the ports whose frontends (a node port at
    /// a new node IP included) or serving endpoints changed.
    pub(crate) fn new(
        before: &[ServicePort],
        after: &[ServicePort],
        ips_before: &[IpAddr],
        ips_after: &[IpAddr],
        all: bool,
    ) -> Self {
        // By id, so a full sync of many UDP ports is not quadratic.
        let (old_ports, new_ports) = (udp_by_id(before), udp_by_id(after));
        let mut out = Self::default();
        for n in new_ports.values() {
            let s = serving(n);
            if s.is_empty() {
                continue;
            }
            let fronts = frontends(n, ips_after);
            let changed = all
                || old_ports
                    .get(&n.id)
                    .is_none_or(|o| serving(o) != s || frontends(o, ips_before) != fronts);
            for f in fronts {
                out.owned.entry(f).or_default().extend(&s);
                if changed {
                    out.keep.entry(f).or_default().extend(&s);
                }
            }
        }
        for o in old_ports.values() {
            let still = new_ports
                .get(&o.id)
                .is_some_and(|n| !n.serving_endpoints.is_empty());
            if still || o.serving_endpoints.is_empty() {
                continue;
            }
            for f in frontends(o, ips_before) {
                out.gone.entry(f).or_default().extend(serving(o));
            }
        }
        out
    }

    /// Whether nothing can be stale (no need to list conntrack).
    pub(crate) fn is_empty(&self) -> bool {
        self.keep.is_empty() && self.gone.is_empty()
    }

    /// Whether `e` is stale.
    pub(crate) fn is_stale(&self, e: &Entry) -> bool {
        if e.protocol != 17 {
            return false;
        }
        let front = (e.orig_dst, e.orig_dport);
        let reply = SocketAddr::new(e.reply_src, e.reply_sport);
        if self.keep.get(&front).is_some_and(|s| !s.contains(&reply)) {
            return true;
        }
        self.gone.get(&front).is_some_and(|s| s.contains(&reply))
            && !self.owned.get(&front).is_some_and(|s| s.contains(&reply))
    }
}

#[cfg(test)]
mod tests;
