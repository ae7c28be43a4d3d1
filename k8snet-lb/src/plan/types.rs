//! The plan's plain data: what each Service port does on this node.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use k8snet_model::Protocol;
use serde::Serialize;

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum Family {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Self::IPv4 } else { Self::IPv6 }
    }
}

/// One Service port of one IP family: the unit the data plane programs
/// (kube-proxy's `ServicePortName`, per family).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PortId {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name (`""` when unnamed).
    pub port: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The family.
    pub family: Family,
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = match self.family {
            Family::IPv4 => "v4",
            Family::IPv6 => "v6",
        };
        write!(
            f,
            "{}/{}:{}/{}/{fam}",
            self.namespace, self.name, self.port, self.protocol
        )
    }
}

/// A traffic policy (`externalTrafficPolicy`, `internalTrafficPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum Policy {
    /// Any usable endpoint in the cluster.
    Cluster,
    /// Only endpoints on this node.
    Local,
}

/// Where a class of traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Target {
    /// Load-balanced over the cluster pool.
    ClusterPool,
    /// Load-balanced over the local pool.
    LocalPool,
    /// Refused at once (a TCP reset, ICMP port unreachable for other
    /// protocols): the Service has no usable endpoint anywhere.
    Reject,
    /// Dropped: a `Local` policy without a local endpoint (other nodes may
    /// still serve, so the client should not be told "refused").
    Drop,
}

/// One usable endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    /// The address.
    pub ip: IpAddr,
    /// The target port.
    pub port: u16,
    /// The node hosting it, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// On this node.
    pub local: bool,
    /// `ready` (false means it is used only as a terminating fallback).
    pub ready: bool,
    /// `serving`.
    pub serving: bool,
    /// `terminating`.
    pub terminating: bool,
}

impl Endpoint {
    /// The stable key Maglev hashes: `ip:port`, `[ipv6]:port` (Envoy's
    /// address string).
    pub fn key(&self) -> String {
        std::net::SocketAddr::new(self.ip, self.port).to_string()
    }
}

/// A set of endpoints and the Maglev table that spreads flows over them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Pool {
    /// The endpoints, sorted by key (the table indexes this list).
    pub endpoints: Vec<Endpoint>,
    /// Slot → index into `endpoints`; its length is the table size `M`
    /// (prime). The kernel picks slot `jhash(key, seed)·M >> 32`.
    pub slots: Vec<u32>,
}

impl Pool {
    /// Slots per endpoint, in endpoint order.
    pub fn counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.endpoints.len()];
        for &s in &self.slots {
            if let Some(n) = c.get_mut(s as usize) {
                *n += 1;
            }
        }
        c
    }
}

/// External traffic (NodePort, externalIPs, load balancer IPs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct External {
    /// `externalTrafficPolicy`.
    pub policy: Policy,
    /// Where external traffic goes when no short-circuit applies.
    pub target: Target,
    /// With `Cluster` policy every external packet is masqueraded (it may
    /// leave the node); with `Local` only traffic from this node itself.
    pub masquerade_all: bool,
    /// With `Local` policy, traffic from pods (the cluster CIDRs) and from
    /// this node takes the cluster pool, as if it had gone out to the load
    /// balancer and come back (kube-proxy's "short-circuit").
    pub short_circuit: bool,
}

/// Everything one Service port of one family does on this node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ServicePort {
    /// Which Service port.
    pub id: PortId,
    /// The cluster IP of this family.
    pub cluster_ip: IpAddr,
    /// The Service port.
    pub port: u16,
    /// The node port, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
    /// `externalIPs` of this family.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<IpAddr>,
    /// Load balancer ingress IPs of this family (`ipMode: VIP`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_ips: Vec<IpAddr>,
    /// Sources allowed to the load balancer IPs (empty: all). Includes the
    /// load balancer IPs themselves when a range holds a node IP (VIP
    /// traffic from the node loops back with the VIP as source).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ranges: Vec<IpNet>,
    /// ClientIP affinity timeout, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity_timeout: Option<u32>,
    /// `internalTrafficPolicy`.
    pub internal_policy: Policy,
    /// Where ClusterIP traffic goes.
    pub internal: Target,
    /// Whether ClusterIP traffic from outside the cluster CIDRs is
    /// masqueraded (it may have been routed here from off-cluster).
    pub masquerade_off_cluster: bool,
    /// External traffic handling, when the port is externally accessible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<External>,
    /// Endpoints for `Cluster` policy (topology-filtered, ready, else
    /// serving-terminating), when some traffic uses them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_pool: Option<Pool>,
    /// Endpoints for `Local` policy (local ready, else local
    /// serving-terminating), when some traffic uses them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_pool: Option<Pool>,
    /// Every endpoint of the port (this family) that is `serving`, on any
    /// node, whatever the traffic policies, topology or `terminating` say:
    /// flows already answered by one of them are kept, and UDP conntrack
    /// entries answered by anything else are stale (kube-proxy's
    /// `CleanStaleEntries`). Sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub serving_endpoints: Vec<SocketAddr>,
}

impl ServicePort {
    /// The pool a target names.
    pub fn pool(&self, t: Target) -> Option<&Pool> {
        match t {
            Target::ClusterPool => self.cluster_pool.as_ref(),
            Target::LocalPool => self.local_pool.as_ref(),
            _ => None,
        }
    }

    /// Whether any frontend (ClusterIP or external) sends to a pool.
    pub fn has_endpoints(&self) -> bool {
        self.internal != Target::Reject
    }
}

/// The answer of a `healthCheckNodePort` (kube-proxy's service health
/// server): 200 while this node has a local ready endpoint, else 503.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The health check node port.
    pub node_port: u16,
    /// Distinct local ready endpoint IPs, over all ports and families.
    pub local_endpoints: usize,
}

impl HealthCheck {
    /// HTTP status, headers and body, as kube-proxy answers them: 200 when
    /// there are local endpoints and the proxy is healthy, else 503; the
    /// JSON body laid out as kube-proxy writes it (see [`crate::health`]).
    pub fn response(&self, proxy_healthy: bool) -> crate::health::Answer {
        let status = if self.local_endpoints > 0 && proxy_healthy {
            200
        } else {
            503
        };
        let body = crate::health::service_body(
            &self.namespace,
            &self.name,
            self.local_endpoints,
            proxy_healthy,
        );
        let mut headers = crate::health::json_headers();
        headers.push((
            "X-Load-Balancing-Endpoint-Weight".to_string(),
            self.local_endpoints.to_string(),
        ));
        (status, headers, body)
    }
}

/// The Service proxy plan of one node: plain data that prints as text or
/// JSON, is compared in tests and is lowered to nftables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceTable {
    /// The node.
    pub node: String,
    /// The jhash seed every node uses (so all pick the same backend).
    pub seed: u32,
    /// The cluster (pod) CIDRs that count as "inside the cluster".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_cidrs: Vec<IpNet>,
    /// The node's IPs (they accept NodePorts).
    pub node_ips: Vec<IpAddr>,
    /// Other addresses the node holds ([`crate::NodeContext::local_addrs`]):
    /// with `node_ips` and loopback, what `fib saddr type local` matches,
    /// for [`crate::predict`]. Not programmed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub local_addrs: Vec<IpNet>,
    /// Service ports, by id.
    pub ports: Vec<ServicePort>,
    /// Health check node ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
    /// What was left out and why (conflicting frontends, bad addresses).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
