//! The Service proxy plan: [`plan`] turns a [`Cluster`] and a
//! [`NodeContext`] into a [`ServiceTable`] with kube-proxy's semantics
//! (pkg/proxy: `CategorizeEndpoints`, the nftables proxier's per-port
//! decisions), and Maglev tables choosing among endpoints.

mod endpoints;
mod text;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use k8snet_model::validate::{parse_cidr_legacy, parse_ip_legacy};
use k8snet_model::{Cluster, NsName, Service, ServiceType, TrafficPolicy};

pub use types::{
    Endpoint, External, Family, HealthCheck, Policy, Pool, PortId, ServicePort, ServiceTable,
    Target,
};

use crate::error::{Error, Result};
use crate::frontend::{self, Claim, Frontend, Source};
use crate::hash::{Backend, Maglev};

/// The seed of the kernel's `jhash` when none is configured; the same on
/// every node, so every node sends a flow to the same endpoint.
pub const DEFAULT_SEED: u32 = 0x6b38_736e;

/// Kernel slot-table sizes: primes roughly doubling, so that a pool's size
/// changes rarely as endpoints come and go (a new size reshuffles flows).
/// All stay below 2^16 so that each table fits a 16-bit window of a shared
/// map (see the nftables layout).
pub const SLOT_SIZES: [u32; 12] = [
    31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521,
];

/// What the plan needs to know about the node it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeContext {
    /// The node's name (endpoints with this `nodeName` are local).
    pub name: String,
    /// The node's IPs: they accept NodePorts; a source range holding one
    /// admits the load balancer IPs as sources too.
    pub ips: Vec<IpAddr>,
    /// Every other address (or prefix) the node's kernel holds as local:
    /// uplink addresses missing from `Node.status.addresses`, VIPs on
    /// `lo`, AnyIP prefixes. The data plane recognises the node's own
    /// traffic by `fib saddr type local`, which asks the kernel, so the
    /// table does not depend on this; [`crate::predict`] does, to tell
    /// what the kernel calls local. Empty by default: the node holds just
    /// `ips` (and loopback). `linux::local_addrs` reads them from the
    /// kernel.
    pub local_addrs: Vec<IpNet>,
    /// The node's zone (`topology.kubernetes.io/zone`).
    pub zone: Option<String>,
    /// The cluster (pod) CIDRs: traffic from them is "from a pod". None of
    /// a family means unknown for that family: no off-cluster masquerade
    /// and no pod short-circuit there, as kube-proxy without that family's
    /// local-traffic detector.
    pub cluster_cidrs: Vec<IpNet>,
    /// Kernel slots per endpoint: a pool of `n` gets the smallest of
    /// [`SLOT_SIZES`] `>= n · slots_per_endpoint`.
    pub slots_per_endpoint: u32,
    /// The jhash seed, equal on all nodes.
    pub seed: u32,
}

impl NodeContext {
    /// A node with no IPs, zone or CIDRs yet; 6 slots per endpoint.
    ///
    /// Why 6: every slot is a kernel map element. At 6, a pool of 10
    /// endpoints gets 61 slots (each endpoint 6 or 7: the busiest gets 15%
    /// more flows than the mean) and 10,000 such Services load in 3.6 s of
    /// kernel time; at 12 (127 slots, 3% over the mean) in 4.7 s, which
    /// misses the 5 s full-sync budget once planning is added. Raise it
    /// where balance matters more than sync time.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ips: Vec::new(),
            local_addrs: Vec::new(),
            zone: None,
            cluster_cidrs: Vec::new(),
            slots_per_endpoint: 6,
            seed: DEFAULT_SEED,
        }
    }

    /// The node as the cluster describes it: its `InternalIP`/`ExternalIP`
    /// addresses (in list order, each once, read as kube-proxy reads them:
    /// [`Node::addresses_of`](k8snet_model::Node::addresses_of)), its zone
    /// label, and the cluster CIDRs as the union of all nodes' `podCIDRs`.
    ///
    /// # Errors
    /// [`Error::Invalid`] if the cluster has no Node of that name.
    pub fn from_cluster(cluster: &Cluster, name: &str) -> Result<Self> {
        let node = cluster.node(name).ok_or_else(|| {
            Error::invalid(
                format!("node {name}"),
                "metadata.name",
                "no such Node in the manifests",
            )
        })?;
        let mut ctx = Self::new(name);
        ctx.ips = node.addresses_of(&["InternalIP", "ExternalIP"]);
        ctx.zone = node.zone().map(str::to_string);
        // Pod CIDRs as the apiserver stores them and kube-proxy reads them
        // (the model's legacy parser: leading zeros, IPv4-mapped, host bits).
        let mut cidrs = BTreeSet::new();
        for n in cluster.nodes() {
            cidrs.extend(n.pod_cidrs());
        }
        ctx.cluster_cidrs = cidrs.into_iter().collect();
        Ok(ctx)
    }

    fn slot_size(&self, endpoints: usize) -> u32 {
        let want = (endpoints as u64).saturating_mul(u64::from(self.slots_per_endpoint.max(1)));
        SLOT_SIZES
            .iter()
            .copied()
            .find(|s| u64::from(*s) >= want)
            .unwrap_or(SLOT_SIZES[SLOT_SIZES.len() - 1])
    }
}

/// The Service table of one node: every proxied Service port of every
/// family, with kube-proxy's decisions, and the health check answers.
///
/// Services that are not proxied are left out, as kube-proxy does:
/// ExternalName, headless (`clusterIP: None`) and Services without a
/// cluster IP. When two Services claim the same frontend (an external IP,
/// load balancer IP or node port with the same protocol and port), the
/// first in name order keeps it and a warning names the other.
pub fn plan(cluster: &Cluster, node: &NodeContext) -> ServiceTable {
    let mut table = ServiceTable {
        node: node.name.clone(),
        seed: node.seed,
        cluster_cidrs: node.cluster_cidrs.clone(),
        node_ips: node.ips.clone(),
        local_addrs: node.local_addrs.clone(),
        ports: Vec::new(),
        health_checks: Vec::new(),
        warnings: Vec::new(),
    };
    let mut ports = Vec::new();
    for svc in cluster.services() {
        let key = NsName::new(
            svc.metadata.namespace_or_default(),
            svc.metadata.name.clone(),
        );
        let (p, health) = plan_one(cluster, node, svc, &key, &mut table.warnings);
        ports.extend(p);
        table.health_checks.extend(health);
    }
    // Cluster IPs first: they are allocated uniquely, so an external or
    // load balancer IP that copies another Service's cluster IP loses,
    // whatever the names. A port whose own cluster IP is taken (a
    // duplicate port, or a duplicate cluster IP the apiserver would have
    // refused) is not proxied.
    let mut claimed: BTreeMap<Frontend, (PortId, Source)> = BTreeMap::new();
    let mut kept = Vec::with_capacity(ports.len());
    for p in ports {
        let c = frontend::cluster_ip_claim(&p);
        match claimed.get(&c.frontend) {
            Some((owner, _)) => table.warnings.push(format!(
                "{}: {} is already used by {owner}; not proxied",
                p.id,
                c.describe()
            )),
            None => {
                claimed.insert(c.frontend, (p.id.clone(), c.source));
                kept.push(p);
            }
        }
    }
    for mut p in kept {
        release_conflicts(&mut p, &mut claimed, &mut table.warnings);
        table.ports.push(p);
    }
    table.ports.sort_by(|a, b| a.id.cmp(&b.id));
    table
}

/// The ports of one Service (for incremental updates: a changed Service or
/// EndpointSlice replans only its Service). Conflicts with other Services
/// are not resolved here: [`crate::nftables::Layout::update_service`]
/// refuses ports that claim another Service's frontend.
pub fn plan_service(cluster: &Cluster, node: &NodeContext, service: &NsName) -> Vec<ServicePort> {
    match cluster.service(service) {
        Some(svc) => plan_one(cluster, node, svc, service, &mut Vec::new()).0,
        None => Vec::new(),
    }
}

/// The `healthCheckNodePort` answer of one Service on this node, if it has
/// one (a LoadBalancer with `externalTrafficPolicy: Local`): what
/// [`plan`] puts in [`ServiceTable::health_checks`] for it, for
/// incremental updates of a health check server.
pub fn plan_health_check(
    cluster: &Cluster,
    node: &NodeContext,
    service: &NsName,
) -> Option<HealthCheck> {
    let svc = cluster.service(service)?;
    plan_one(cluster, node, svc, service, &mut Vec::new()).1
}

/// Drops the external IPs, load balancer IPs and node port of `p` that
/// another port (or another field of this one) claimed first, with a
/// warning each, and repeats within a list silently; claims the rest.
fn release_conflicts(
    p: &mut ServicePort,
    claimed: &mut BTreeMap<Frontend, (PortId, Source)>,
    warnings: &mut Vec<String>,
) {
    let id = p.id.clone();
    let mut keep = |c: Claim| match claimed.get(&c.frontend) {
        Some((owner, source)) if *owner == id && *source == c.source => false,
        Some((owner, _)) => {
            warnings.push(format!(
                "{id}: {} is already used by {owner}; ignored",
                c.describe()
            ));
            false
        }
        None => {
            claimed.insert(c.frontend, (id.clone(), c.source));
            true
        }
    };
    let (proto, port) = (p.id.protocol, p.port);
    let ip_claim = |ip: IpAddr, source| Claim {
        frontend: Frontend::Ip(ip, proto, port),
        source,
    };
    p.external_ips
        .retain(|ip| keep(ip_claim(*ip, Source::ExternalIp)));
    p.load_balancer_ips
        .retain(|ip| keep(ip_claim(*ip, Source::LoadBalancerIp)));
    if let Some(np) = p.node_port
        && !keep(Claim {
            frontend: Frontend::NodePort(p.id.family, proto, np),
            source: Source::NodePort,
        })
    {
        p.node_port = None;
    }
}

fn policy(p: Option<TrafficPolicy>) -> Policy {
    match p {
        Some(TrafficPolicy::Local) => Policy::Local,
        _ => Policy::Cluster,
    }
}

fn plan_one(
    cluster: &Cluster,
    node: &NodeContext,
    svc: &Service,
    key: &NsName,
    warnings: &mut Vec<String>,
) -> (Vec<ServicePort>, Option<HealthCheck>) {
    let kind = svc.service_type();
    if kind == ServiceType::ExternalName || svc.is_headless() {
        return (Vec::new(), None);
    }
    let object = format!("Service {key}");
    // IPs and CIDRs are read with the model's legacy parsers, as the
    // apiserver validates these fields (IsValidIPForLegacyField,
    // IsValidCIDRForLegacyField) and kube-proxy reads them (ParseIPSloppy,
    // ParseCIDRSloppy): `010.1.1.1` is 10.1.1.1, `::ffff:10.1.1.1` IPv4.
    let parse_ips = |list: Vec<(String, &str)>, warnings: &mut Vec<String>| {
        let mut out = Vec::new();
        for (path, s) in list {
            match parse_ip_legacy(s) {
                Ok(ip) => out.push(ip),
                Err(e) => warnings.push(format!("{object}: {path}: {e}; ignored")),
            }
        }
        out
    };
    let listed = svc.spec.external_ips.iter().enumerate();
    let listed = listed.map(|(i, s)| (format!("spec.externalIPs[{i}]"), s.as_str()));
    let external_ips = parse_ips(listed.collect(), warnings);
    // Load balancer IPs and source ranges are read whatever the type, as
    // kube-proxy's `newBaseServiceInfo` reads them.
    let ingress = svc.status.load_balancer.iter().flat_map(|l| &l.ingress);
    // `ipMode: Proxy` load balancers send traffic to the node, not to the
    // VIP: kube-proxy does not capture those IPs.
    let vips = ingress
        .enumerate()
        .filter(|(_, i)| i.ip_mode.as_deref() != Some("Proxy"))
        .filter_map(|(n, i)| {
            let path = format!("status.loadBalancer.ingress[{n}].ip");
            i.ip.as_deref().map(|ip| (path, ip))
        });
    let mut lb_ips = parse_ips(vips.collect(), warnings);
    let mut ranges: Vec<IpNet> = Vec::new();
    for (i, r) in svc.spec.load_balancer_source_ranges.iter().enumerate() {
        match parse_cidr_legacy(r.trim()) {
            Ok(c) => ranges.push(c.net),
            Err(e) => {
                // Fail closed. A range that cannot be read (only in a
                // Service built without validation: the apiserver refuses
                // it) might have refused any source, and its family is
                // unknown; skipping it would admit sources the Service
                // excludes, or everyone when it was the only range. So the
                // Service's load balancer IPs (the only frontends source
                // ranges guard) are not captured, in any family.
                if !lb_ips.is_empty() {
                    warnings.push(format!(
                        "{object}: spec.loadBalancerSourceRanges[{i}]: {e}; \
                         load balancer IPs not captured (a range that cannot be read \
                         must not admit every source)"
                    ));
                }
                lb_ips.clear();
            }
        }
    }
    // `externalTrafficPolicy` counts only for Services the apiserver calls
    // externally accessible (kube-proxy's `apiservice.ExternalPolicyLocal`).
    let accessible = matches!(kind, ServiceType::NodePort | ServiceType::LoadBalancer)
        || (kind == ServiceType::ClusterIP && !svc.spec.external_ips.is_empty());
    let etp = if accessible {
        policy(svc.spec.external_traffic_policy)
    } else {
        Policy::Cluster
    };
    let itp = policy(svc.spec.internal_traffic_policy);
    let slices: Vec<_> = cluster.slices_for_service(key).collect();

    let mut out = Vec::new();
    let mut local_ready: BTreeSet<IpAddr> = BTreeSet::new();
    for cluster_ip in svc.cluster_ips() {
        let family = Family::of(cluster_ip);
        for sp in &svc.spec.ports {
            let protocol = sp.protocol.unwrap_or_default();
            let Ok(port) = u16::try_from(sp.port) else {
                continue;
            };
            let port_name = sp.name.clone().unwrap_or_default();
            let node_port = match kind {
                ServiceType::NodePort | ServiceType::LoadBalancer => sp
                    .node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0),
                _ => None,
            };
            let fam = |ips: &[IpAddr]| -> Vec<IpAddr> {
                ips.iter()
                    .copied()
                    .filter(|ip| Family::of(*ip) == family)
                    .collect()
            };
            let ext_ips = fam(&external_ips);
            let lbs = fam(&lb_ips);
            let externally = node_port.is_some() || !ext_ips.is_empty() || !lbs.is_empty();
            let etp = if externally { etp } else { Policy::Cluster };
            // Cluster endpoints also serve the Local-policy short-circuit, so any
            // externally accessible port uses them (kube-proxy's
            // `UsesClusterEndpoints`).
            let uses_cluster = itp == Policy::Cluster || externally;
            let uses_local = itp == Policy::Local || (externally && etp == Policy::Local);

            let mut raw = endpoints::collect(
                slices.iter().copied(),
                &port_name,
                protocol,
                family,
                &node.name,
            );
            endpoints::fill_hints(&mut raw, svc.spec.traffic_distribution.as_deref());
            let mut serving_endpoints: Vec<SocketAddr> = raw
                .iter()
                .filter(|e| e.ep.serving)
                .map(|e| SocketAddr::new(e.ep.ip, e.ep.port))
                .collect();
            serving_endpoints.sort();
            local_ready.extend(
                raw.iter()
                    .filter(|e| e.ep.local && e.ep.ready)
                    .map(|e| e.ep.ip),
            );
            let cat = endpoints::categorize(
                &raw,
                uses_cluster,
                uses_local,
                &node.name,
                node.zone.as_deref(),
            );

            let has_local = !cat.local.is_empty();
            let internal = if !cat.has_any {
                Target::Reject
            } else if itp == Policy::Local {
                if has_local {
                    Target::LocalPool
                } else {
                    Target::Drop
                }
            } else {
                Target::ClusterPool
            };
            let external = externally.then(|| {
                let target = if !cat.has_any {
                    Target::Reject
                } else if etp == Policy::Local {
                    if has_local {
                        Target::LocalPool
                    } else {
                        Target::Drop
                    }
                } else {
                    Target::ClusterPool
                };
                External {
                    policy: etp,
                    target,
                    masquerade_all: etp == Policy::Cluster,
                    short_circuit: etp == Policy::Local,
                }
            });
            // The cluster pool also serves the Local-policy short-circuit.
            let cluster_pool =
                (uses_cluster && !cat.cluster.is_empty()).then(|| pool(node, cat.cluster.clone()));
            let local_pool = (uses_local && has_local).then(|| pool(node, cat.local.clone()));
            let source_ranges = if lbs.is_empty() || ranges.is_empty() {
                Vec::new()
            } else {
                // Ranges of the other family do not apply (kube-proxy keeps
                // only this family's; none left means no firewall).
                let mut r: Vec<IpNet> = ranges
                    .iter()
                    .copied()
                    .filter(|n| Family::of(n.addr()) == family)
                    .collect();
                if !r.is_empty() && node.ips.iter().any(|ip| r.iter().any(|n| n.contains(ip))) {
                    r.extend(lbs.iter().map(|ip| IpNet::from(*ip)));
                }
                r
            };
            out.push(ServicePort {
                id: PortId {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    port: port_name,
                    protocol,
                    family,
                },
                cluster_ip,
                port,
                node_port,
                external_ips: ext_ips,
                load_balancer_ips: lbs,
                source_ranges,
                affinity_timeout: svc.affinity_timeout(),
                internal_policy: itp,
                internal,
                // Per family: without a cluster CIDR of this family there is
                // no way to tell pods from the rest (kube-proxy writes the
                // rule only when the family's local-traffic detector exists).
                masquerade_off_cluster: node
                    .cluster_cidrs
                    .iter()
                    .any(|c| Family::of(c.addr()) == family),
                external,
                cluster_pool,
                local_pool,
                serving_endpoints,
            });
        }
    }
    let health = match (
        kind,
        svc.spec.external_traffic_policy,
        svc.spec.health_check_node_port,
    ) {
        (ServiceType::LoadBalancer, Some(TrafficPolicy::Local), Some(p)) => u16::try_from(p)
            .ok()
            .filter(|p| *p > 0)
            .map(|node_port| HealthCheck {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                node_port,
                local_endpoints: local_ready.len(),
            }),
        _ => None,
    };
    (out, health)
}

/// A pool: endpoints sorted by key and their Maglev table.
fn pool(node: &NodeContext, mut endpoints: Vec<Endpoint>) -> Pool {
    endpoints.sort_by_key(Endpoint::key);
    let size = node.slot_size(endpoints.len());
    // Keys are unique (one endpoint per ip:port) and the sizes are primes
    // at least as large as any pool, so building cannot fail; an empty
    // table would only mean no pool, which callers never ask for.
    let slots = Maglev::new(size, endpoints.iter().map(|e| Backend::new(e.key())))
        .map(|m| m.slots().to_vec())
        .unwrap_or_default();
    Pool { endpoints, slots }
}

#[cfg(test)]
pub(crate) mod tests;
