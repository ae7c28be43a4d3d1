//! The node stack as plain data: which namespaces, which addresses, which
//! pod goes on which node, which Services get which IPs. Computed from the
//! manifests without touching the kernel, so `--dry-run` prints it and the
//! kernel side only carries it out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use k8snet::model::{
    Cluster, IpFamily, Node, NodeAddress, NsName, Object, Pod, PodCondition, PodIp, PodPhase,
    Protocol, ServiceType,
};

/// The cluster DNS address (design.md §5), and its IPv6 twin.
pub(crate) const DNS_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
pub(crate) const DNS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 0x0a);
/// The cluster domain.
pub(crate) const ZONE: &str = "cluster.local";
/// The node name used when the manifests have no Node.
pub(crate) const DEFAULT_NODE: &str = "node";
/// The namespace joining the nodes and the outside client.
pub(crate) const FABRIC_NS: &str = "k8snet-fabric";
/// The outside client's namespace.
pub(crate) const CLIENT_NS: &str = "k8snet-client";
/// The bridge in each node namespace the pods hang off.
pub(crate) const POD_BRIDGE: &str = "k8s0";
/// At most this many nodes: node `k` owns `198.18.k.0/24`.
const MAX_NODES: usize = 200;

/// The fabric router's addresses (in `k8snet-fabric`).
pub(crate) fn fabric_addrs() -> [IpNet; 4] {
    [
        net("198.19.128.254/24"),
        net("fd00:19:1::fffe/64"),
        net("198.19.200.1/24"),
        net("fd00:19:2::1/64"),
    ]
}

/// The outside client's addresses.
pub(crate) fn client_addrs() -> [IpNet; 2] {
    [net("198.19.200.2/24"), net("fd00:19:2::2/64")]
}

fn net(s: &str) -> IpNet {
    s.parse().expect("a constant of the address plan")
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodePlan {
    /// The Node's name.
    pub name: String,
    /// Its network namespace, `k8snet-<name>`.
    pub netns: String,
    /// Its index `k` in the address plan.
    pub index: u8,
    /// `198.19.128.<k+1>/24` and `fd00:19:1::<k+1>/64`, on its fabric link.
    pub addrs: [IpNet; 2],
    /// `198.18.<k>.0/24` and `fd00:18:0:<k>::/64`.
    pub pod_cidrs: [IpNet; 2],
}

impl NodePlan {
    fn new(name: &str, index: u8) -> Self {
        let k = index;
        Self {
            name: name.to_owned(),
            netns: format!("k8snet-{name}"),
            index: k,
            addrs: [
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(198, 19, 128, k + 1), 24)),
                IpNet::V6(Ipv6Net::new_assert(
                    Ipv6Addr::new(0xfd00, 0x19, 1, 0, 0, 0, 0, u16::from(k) + 1),
                    64,
                )),
            ],
            pod_cidrs: [
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(198, 18, k, 0), 24)),
                IpNet::V6(Ipv6Net::new_assert(
                    Ipv6Addr::new(0xfd00, 0x18, 0, u16::from(k), 0, 0, 0, 0),
                    64,
                )),
            ],
        }
    }

    /// The pods' gateways on the node's bridge (`.1`, `::1`).
    pub(crate) fn gateways(&self) -> [IpNet; 2] {
        self.pod_cidrs.map(|c| {
            let first = match c.network() {
                IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) + 1)),
                IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + 1)),
            };
            IpNet::new_assert(first, c.prefix_len())
        })
    }

    /// The node's IPs without prefix.
    pub(crate) fn ips(&self) -> [IpAddr; 2] {
        self.addrs.map(|a| a.addr())
    }
}

/// A `hostPort` mapping: (protocol, host port, container port).
pub(crate) type HostPort = (Protocol, u16, u16);

/// A route of a node namespace, via its fabric link `eth0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub dst: IpNet,
    pub via: IpAddr,
}

impl std::fmt::Display for Route {
    /// As `ip route` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {} dev eth0", self.dst, self.via)
    }
}

/// One pod and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodPlan {
    /// Namespace and name.
    pub key: NsName,
    /// Index into [`Plan::nodes`].
    pub node: usize,
    /// Its network namespace (`k8snet-<ns>-<pod>`); the node's for
    /// `hostNetwork` pods.
    pub netns: String,
    /// Whether it shares the node's namespace.
    pub host_network: bool,
    /// The IPs the manifest gives it (requested from IPAM); empty: IPAM picks.
    pub requested: Vec<IpAddr>,
    /// The ports its demo server listens on.
    pub ports: Vec<(Protocol, u16)>,
    /// `hostPort` mappings: (protocol, host port, container port).
    pub host_ports: Vec<HostPort>,
}

/// Everything the stack is made of.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The nodes, in name order.
    pub nodes: Vec<NodePlan>,
    /// The pods, in namespace/name order.
    pub pods: Vec<PodPlan>,
    /// The snapshot: the manifests' objects with Nodes (addresses, pod
    /// CIDRs) and Service IPs filled in. Pod IPs are added as IPAM gives
    /// them ([`assign_pod_ips`]).
    pub cluster: Cluster,
    /// Services whose EndpointSlices we derive (the manifests carry none).
    pub derived: BTreeSet<NsName>,
    /// What was filled in or adjusted, for the user.
    pub notes: Vec<String>,
}

/// Builds the plan from valid objects.
///
/// # Errors
/// One message per problem the stack cannot run with (a pod on a Node
/// the manifests do not have, too many nodes, a pod IP outside its
/// node's range).
pub(crate) fn build(objects: Vec<Object>) -> Result<Plan, Vec<String>> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut node_names: Vec<String> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Node(n) => Some(n.metadata.name.clone()),
            _ => None,
        })
        .collect();
    node_names.sort();
    if node_names.is_empty() {
        node_names.push(DEFAULT_NODE.to_owned());
        notes.push(format!(
            "no Node in the manifests: one node `{DEFAULT_NODE}` (namespace k8snet-{DEFAULT_NODE})"
        ));
    }
    if node_names.len() > MAX_NODES {
        errors.push(format!(
            "{} Nodes: the address plan has room for {MAX_NODES}",
            node_names.len()
        ));
        return Err(errors);
    }
    let nodes: Vec<NodePlan> = node_names
        .iter()
        .enumerate()
        .map(|(i, n)| NodePlan::new(n, u8::try_from(i).unwrap_or(u8::MAX)))
        .collect();
    let node_index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();

    let mut cluster = Cluster::new();
    let mut pods_in = Vec::new();
    let mut services_with_slices = BTreeSet::new();
    let mut others = Vec::new();
    for o in objects {
        match o {
            Object::Pod(p) => pods_in.push(p),
            Object::Node(_) => {}
            Object::EndpointSlice(s) => {
                if let Some(svc) = s.metadata.labels.get("kubernetes.io/service-name") {
                    services_with_slices
                        .insert(NsName::new(s.metadata.namespace_or_default(), svc.clone()));
                }
                others.push(Object::EndpointSlice(s));
            }
            other => others.push(other),
        }
    }
    for n in &nodes {
        upsert(&mut cluster, Object::Node(node_object(n)), &mut errors);
    }
    allocate_service_ips(&mut others, &mut notes);
    for o in others {
        upsert(&mut cluster, o, &mut errors);
    }

    pods_in.sort_by(|a, b| {
        (a.metadata.namespace_or_default(), &a.metadata.name)
            .cmp(&(b.metadata.namespace_or_default(), &b.metadata.name))
    });
    let mut pods = Vec::new();
    let mut next_node = 0usize;
    for mut pod in pods_in {
        let key = NsName::new(
            pod.metadata.namespace_or_default(),
            pod.metadata.name.clone(),
        );
        let node = match pod.spec.node_name.as_deref() {
            Some(n) => match node_index.get(n) {
                Some(&i) => i,
                None if nodes.len() == 1 && nodes[0].name == DEFAULT_NODE => 0,
                None => {
                    errors.push(format!(
                        "Pod {key}: spec.nodeName: no Node {n:?} in the manifests (nodes: {})",
                        node_names.join(", ")
                    ));
                    continue;
                }
            },
            None => {
                // What a scheduler would do, deterministically: round robin.
                let i = next_node % nodes.len();
                next_node += 1;
                i
            }
        };
        pod.spec.node_name = Some(nodes[node].name.clone());
        let host_network = pod.spec.host_network;
        let requested = pod.ips();
        if host_network {
            // A host-network pod has the node's addresses.
            set_ips(&mut pod, &nodes[node].ips());
        } else {
            for ip in &requested {
                if !nodes[node].pod_cidrs.iter().any(|c| c.contains(ip)) {
                    errors.push(format!(
                        "Pod {key}: status.podIPs: {ip} is outside node {}'s pod CIDRs {} and {}",
                        nodes[node].name, nodes[node].pod_cidrs[0], nodes[node].pod_cidrs[1]
                    ));
                }
            }
        }
        let (ports, host_ports) = pod_ports(&pod);
        let netns = if host_network {
            nodes[node].netns.clone()
        } else {
            pod_netns(&key)
        };
        pods.push(PodPlan {
            key,
            node,
            netns,
            host_network,
            requested: if host_network { Vec::new() } else { requested },
            ports,
            host_ports,
        });
        upsert(&mut cluster, Object::Pod(pod), &mut errors);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let derived: BTreeSet<NsName> = cluster
        .services()
        .filter(|s| s.spec.selector.is_some())
        .map(|s| NsName::new(s.metadata.namespace_or_default(), s.metadata.name.clone()))
        .filter(|k| !services_with_slices.contains(k))
        .collect();
    let mut plan = Plan {
        nodes,
        pods,
        cluster,
        derived,
        notes,
    };
    plan.rederive_all();
    Ok(plan)
}

impl Plan {
    /// Recomputes the derived EndpointSlices of every Service we derive.
    pub(crate) fn rederive_all(&mut self) {
        for s in self.derived.clone() {
            self.cluster.rederive_endpoint_slices(&s);
        }
    }

    /// IPs for pods without any, as host-local would hand them out in pod
    /// order (`.2` upwards, skipping requested ones): what `--dry-run`
    /// shows, since it runs no IPAM.
    pub(crate) fn predict_pod_ips(&mut self) {
        let mut used: BTreeSet<IpAddr> = self
            .pods
            .iter()
            .flat_map(|p| p.requested.iter().copied())
            .collect();
        let mut next: Vec<[u128; 2]> = vec![[2, 2]; self.nodes.len()];
        for p in self.pods.clone() {
            if p.host_network || !p.requested.is_empty() {
                continue;
            }
            let node = &self.nodes[p.node];
            let mut ips = Vec::new();
            for (fam, cidr) in node.pod_cidrs.iter().enumerate() {
                loop {
                    let n = next[p.node][fam];
                    next[p.node][fam] += 1;
                    let ip = match cidr.network() {
                        IpAddr::V4(a) => {
                            IpAddr::V4(Ipv4Addr::from(u32::from(a) + u32::try_from(n).unwrap_or(0)))
                        }
                        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + n)),
                    };
                    if used.insert(ip) {
                        ips.push(ip);
                        break;
                    }
                }
            }
            assign_pod_ips(&mut self.cluster, &p.key, &ips);
        }
        self.rederive_all();
    }

    /// The routes each node namespace gets through its fabric link `eth0`:
    /// (destination, next hop).
    pub(crate) fn routes(&self, node: &NodePlan) -> Vec<Route> {
        let mut out: Vec<Route> = self
            .nodes
            .iter()
            .filter(|other| other.name != node.name)
            .flat_map(|other| other.pod_cidrs.into_iter().zip(other.ips()))
            .map(|(dst, via)| Route { dst, via })
            .collect();
        let fabric = fabric_addrs();
        for (client, router) in client_addrs().iter().zip(&fabric) {
            out.push(Route {
                dst: client.trunc(),
                via: router.addr(),
            });
        }
        out
    }

    /// A human summary of the topology.
    pub(crate) fn topology_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "namespace {FABRIC_NS}: bridge fab0, router {}",
            join(&fabric_addrs())
        );
        let _ = writeln!(
            s,
            "namespace {CLIENT_NS}: outside client {}",
            join(&client_addrs())
        );
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "node {} (namespace {}): eth0 {}, pods {} on bridge {POD_BRIDGE} (gateways {}), DNS {DNS_V4} {DNS_V6}",
                n.name,
                n.netns,
                join(&n.addrs),
                join(&n.pod_cidrs),
                join(&n.gateways()),
            );
            for r in self.routes(n) {
                let _ = writeln!(s, "  route {r}");
            }
            for p in self.pods.iter().filter(|p| p.node == n.index as usize) {
                let ips = self
                    .cluster
                    .pod(&p.key)
                    .map(|pod| pod.ips())
                    .unwrap_or_default();
                let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
                let ports: Vec<String> = p
                    .ports
                    .iter()
                    .map(|(proto, port)| format!("{port}/{}", proto_name(*proto)))
                    .collect();
                let _ = writeln!(
                    s,
                    "  pod {} (namespace {}{}): {} serving {}",
                    p.key,
                    p.netns,
                    if p.host_network { ", hostNetwork" } else { "" },
                    if ips.is_empty() {
                        "IPs from IPAM".to_owned()
                    } else {
                        ips.join(" ")
                    },
                    if ports.is_empty() {
                        "nothing".to_owned()
                    } else {
                        ports.join(" ")
                    },
                );
            }
        }
        s
    }
}

fn join(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
        _ => "tcp",
    }
}

/// `k8snet-<ns>-<pod>`.
pub(crate) fn pod_netns(key: &NsName) -> String {
    format!("k8snet-{}-{}", key.namespace, key.name)
}

fn upsert(cluster: &mut Cluster, o: Object, errors: &mut Vec<String>) {
    if let Err(e) = cluster.upsert(o) {
        errors.push(e.to_string());
    }
}

/// The Node object the stack runs: its addresses and pod CIDRs replace
/// whatever the manifest said (the address plan is fixed).
fn node_object(n: &NodePlan) -> Node {
    let mut node = Node::default();
    node.metadata.name = n.name.clone();
    node.spec.pod_cidrs = n.pod_cidrs.iter().map(ToString::to_string).collect();
    node.spec.pod_cidr = Some(n.pod_cidrs[0].to_string());
    node.status.addresses = n
        .ips()
        .iter()
        .map(|ip| NodeAddress {
            address_type: "InternalIP".into(),
            address: ip.to_string(),
        })
        .collect();
    node
}

/// Sets a pod's IPs, marks it Running and Ready (as kubelet reports it
/// once its sandbox is up) and stores it.
pub(crate) fn assign_pod_ips(cluster: &mut Cluster, key: &NsName, ips: &[IpAddr]) {
    let Some(mut pod) = cluster.pod(key).cloned() else {
        return;
    };
    set_ips(&mut pod, ips);
    if let Err(e) = cluster.upsert(Object::Pod(pod)) {
        tracing::warn!("Pod {key}: assigned IPs refused: {e}");
    }
}

fn set_ips(pod: &mut Pod, ips: &[IpAddr]) {
    pod.status.pod_ips = ips.iter().map(|ip| PodIp { ip: ip.to_string() }).collect();
    pod.status.pod_ip = ips.first().map(ToString::to_string);
    pod.status.phase = Some(PodPhase::Running);
    if !pod
        .status
        .conditions
        .iter()
        .any(|c| c.condition_type == "Ready")
    {
        pod.status.conditions.push(PodCondition {
            condition_type: "Ready".into(),
            status: "True".into(),
        });
    }
}

/// The ports a pod's demo server listens on, and its host ports.
fn pod_ports(pod: &Pod) -> (Vec<(Protocol, u16)>, Vec<HostPort>) {
    let mut ports = BTreeSet::new();
    let mut host_ports = Vec::new();
    for c in pod.spec.containers.iter().chain(&pod.spec.init_containers) {
        for p in &c.ports {
            let proto = p.protocol.unwrap_or_default();
            let Ok(port) = u16::try_from(p.container_port) else {
                continue;
            };
            ports.insert((proto, port));
            if let Some(hp) = p.host_port.and_then(|h| u16::try_from(h).ok())
                && hp != 0
            {
                host_ports.push((proto, hp, port));
            }
        }
    }
    (ports.into_iter().collect(), host_ports)
}

/// Gives Services without a cluster IP one from `198.19.0.0/17` (and
/// `fd00:19::/112` when they ask for IPv6), and NodePort Services without
/// node ports one from 30000–32767, as the apiserver's allocators would.
fn allocate_service_ips(objects: &mut [Object], notes: &mut Vec<String>) {
    let mut used_ips: BTreeSet<IpAddr> = BTreeSet::from([IpAddr::V4(DNS_V4), IpAddr::V6(DNS_V6)]);
    let mut used_ports: BTreeSet<i32> = BTreeSet::new();
    for o in objects.iter() {
        if let Object::Service(s) = o {
            // Read as the apiserver's allocator and kube-proxy read them
            // (`198.019.000.100` is 198.19.0.100), so none is handed out twice.
            used_ips.extend(s.cluster_ips());
            used_ports.extend(s.spec.ports.iter().filter_map(|p| p.node_port));
        }
    }
    let mut next_v4: u32 = u32::from(Ipv4Addr::new(198, 19, 0, 100));
    let mut next_v6: u128 = u128::from(Ipv6Addr::new(0xfd00, 0x19, 0, 0, 0, 0, 0, 0x100));
    let mut next_port = 30000;
    for o in objects.iter_mut() {
        let Object::Service(s) = o else { continue };
        let key = NsName::new(s.metadata.namespace_or_default(), s.metadata.name.clone());
        let ty = s.spec.service_type.unwrap_or_default();
        if ty == ServiceType::ExternalName {
            continue;
        }
        if s.spec.cluster_ip.is_none() && s.spec.cluster_ips.is_empty() {
            let families = if s.spec.ip_families.is_empty() {
                vec![IpFamily::IPv4]
            } else {
                s.spec.ip_families.clone()
            };
            let mut ips = Vec::new();
            for f in families {
                let ip = loop {
                    let ip = match f {
                        IpFamily::IPv6 => {
                            next_v6 += 1;
                            IpAddr::V6(Ipv6Addr::from(next_v6 - 1))
                        }
                        _ => {
                            next_v4 += 1;
                            IpAddr::V4(Ipv4Addr::from(next_v4 - 1))
                        }
                    };
                    if used_ips.insert(ip) {
                        break ip;
                    }
                };
                ips.push(ip.to_string());
            }
            notes.push(format!(
                "Service {key}: clusterIP {} allocated",
                ips.join(",")
            ));
            s.spec.cluster_ip = ips.first().cloned();
            s.spec.cluster_ips = ips;
        }
        if matches!(ty, ServiceType::NodePort | ServiceType::LoadBalancer) {
            for (i, p) in s.spec.ports.iter_mut().enumerate() {
                if p.node_port.is_none() {
                    while used_ports.contains(&next_port) {
                        next_port += 1;
                    }
                    used_ports.insert(next_port);
                    p.node_port = Some(next_port);
                    notes.push(format!(
                        "Service {key}: spec.ports[{i}].nodePort {next_port} allocated"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8snet::model::Manifests;

    fn plan_of(yaml: &str) -> Result<Plan, Vec<String>> {
        let mut m = Manifests::new();
        m.load_str("t.yaml", yaml);
        assert!(m.errors().is_empty(), "{:?}", m.errors());
        build(m.into_objects())
    }

    const TWO_NODES: &str = "
apiVersion: v1
kind: Node
metadata: {name: b}
---
apiVersion: v1
kind: Node
metadata: {name: a}
---
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: x, labels: {app: w}}
spec: {nodeName: b, containers: [{name: c, ports: [{containerPort: 8080}, {containerPort: 53, protocol: UDP}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: p2, namespace: x, labels: {app: w}}
spec: {containers: [{name: c, ports: [{containerPort: 8080, hostPort: 8081}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: w, namespace: x}
spec: {type: NodePort, selector: {app: w}, ports: [{port: 80, targetPort: 8080}]}
";

    #[test]
    fn nodes_are_indexed_by_name_with_the_address_plan() {
        let p = plan_of(TWO_NODES).unwrap();
        let names: Vec<_> = p.nodes.iter().map(|n| n.netns.as_str()).collect();
        assert_eq!(names, ["k8snet-a", "k8snet-b"]);
        assert_eq!(p.nodes[1].addrs[0].to_string(), "198.19.128.2/24");
        assert_eq!(p.nodes[1].pod_cidrs[1].to_string(), "fd00:18:0:1::/64");
        assert_eq!(p.nodes[1].gateways()[0].to_string(), "198.18.1.1/24");
        let node = p.cluster.node("b").unwrap();
        assert_eq!(node.spec.pod_cidrs, ["198.18.1.0/24", "fd00:18:0:1::/64"]);
        // b's routes reach a's pods through a's address.
        assert!(
            p.routes(&p.nodes[1])
                .iter()
                .any(|r| r.to_string() == "198.18.0.0/24 via 198.19.128.1 dev eth0")
        );
    }

    #[test]
    fn pods_are_placed_and_get_ports_and_namespaces() {
        let p = plan_of(TWO_NODES).unwrap();
        assert_eq!(p.pods[0].node, 1); // p1: nodeName b
        assert_eq!(p.pods[1].node, 0); // p2: round robin starts at a
        assert_eq!(p.pods[0].netns, "k8snet-x-p1");
        assert_eq!(
            p.pods[0].ports,
            [(Protocol::Tcp, 8080), (Protocol::Udp, 53)]
        );
        assert_eq!(p.pods[1].host_ports, [(Protocol::Tcp, 8081, 8080)]);
    }

    #[test]
    fn services_get_cluster_ips_and_node_ports() {
        let p = plan_of(TWO_NODES).unwrap();
        let s = p.cluster.service(&NsName::new("x", "w")).unwrap();
        assert_eq!(s.spec.cluster_ip.as_deref(), Some("198.19.0.100"));
        assert_eq!(s.spec.ports[0].node_port, Some(30000));
        assert!(p.derived.contains(&NsName::new("x", "w")));
    }

    /// A cluster IP in a legacy spelling (stored by a default apiserver)
    /// is taken as the address it is read as: the allocator does not hand
    /// that address to another Service.
    #[test]
    fn a_legacy_cluster_ip_is_not_allocated_again() {
        let p = plan_of(
            "
apiVersion: v1
kind: Node
metadata: {name: a}
---
apiVersion: v1
kind: Service
metadata: {name: fixed, namespace: x}
spec: {clusterIP: 198.019.000.100, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: w, namespace: x}
spec: {ports: [{port: 80}]}
",
        )
        .unwrap();
        let ip = |name: &str| {
            let s = p.cluster.service(&NsName::new("x", name)).unwrap();
            s.cluster_ips()
        };
        let fixed: IpAddr = "198.19.0.100".parse().unwrap();
        assert_eq!(ip("fixed"), [fixed]);
        assert_eq!(ip("w").len(), 1);
        assert_ne!(ip("w"), [fixed]);
    }

    #[test]
    fn predicted_ips_fill_endpoint_slices() {
        let mut p = plan_of(TWO_NODES).unwrap();
        p.predict_pod_ips();
        let ips = p.cluster.pod(&NsName::new("x", "p1")).unwrap().ips();
        assert_eq!(ips[0].to_string(), "198.18.1.2");
        assert_eq!(ips[1].to_string(), "fd00:18:0:1::2");
        let slices: Vec<_> = p
            .cluster
            .slices_for_service(&NsName::new("x", "w"))
            .collect();
        let addrs: BTreeSet<String> = slices
            .iter()
            .flat_map(|s| s.endpoints.iter().flat_map(|e| e.addresses.clone()))
            .collect();
        assert!(
            addrs.contains("198.18.1.2") && addrs.contains("198.18.0.2"),
            "{addrs:?}"
        );
    }

    #[test]
    fn an_unknown_node_and_a_foreign_ip_are_errors() {
        let errs = plan_of(
            "
apiVersion: v1
kind: Node
metadata: {name: a}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: x}
spec: {nodeName: zz}
---
apiVersion: v1
kind: Pod
metadata: {name: q, namespace: x}
spec: {nodeName: a}
status: {podIP: 198.18.7.2}
",
        )
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("Pod x/p: spec.nodeName: no Node \"zz\"")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("Pod x/q: status.podIPs: 198.18.7.2 is outside")),
            "{errs:?}"
        );
    }

    #[test]
    fn without_nodes_there_is_one_default_node() {
        let p = plan_of(
            "
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: x}
spec: {nodeName: whatever}
",
        )
        .unwrap();
        assert_eq!(p.nodes.len(), 1);
        assert_eq!(p.nodes[0].netns, "k8snet-node");
        assert_eq!(p.pods[0].node, 0);
    }
}
