//! Random clusters for property tests, built from a byte string: every
//! decision reads one byte (0 once the bytes run out), so proptest's
//! shrinking of the bytes shrinks the cluster towards fewer, plainer
//! objects. Objects go through `Cluster::upsert`, so they are defaulted
//! and validated like loaded manifests; the few invalid ones are dropped.

#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;

use k8snet_model::*;
use k8snet_policy::{Endpoint, Flow};

/// A decision source.
pub struct Gen<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Gen<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// 0..n.
    pub fn pick(&mut self, n: usize) -> usize {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        usize::from(b) % n.max(1)
    }

    /// True with probability about `percent`%.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.pick(100) < percent
    }

    pub fn choose<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.pick(items.len())].clone()
    }
}

pub const NAMESPACES: [&str; 4] = ["x", "y", "z", "w"];
const APPS: [&str; 3] = ["web", "db", "api"];
const TIERS: [&str; 2] = ["fe", "be"];
pub const PORTS: [u16; 8] = [53, 80, 81, 90, 443, 8080, 9003, 1234];
const CIDRS: [(&str, &[&str]); 9] = [
    ("198.18.0.0/16", &[]),
    ("198.18.0.0/16", &["198.18.0.2/32", "198.18.0.64/26"]),
    ("198.18.0.3/32", &[]),
    ("0.0.0.0/0", &["198.18.0.0/16"]),
    ("0.0.0.0/0", &[]),
    ("203.0.113.0/24", &[]),
    ("198.19.128.0/24", &[]),
    ("fd00:18::/64", &["fd00:18::1/128"]),
    ("::/0", &[]),
];
pub const EXTERNAL: [&str; 10] = [
    "203.0.113.5",
    "8.8.8.8",
    "198.19.128.1",
    "198.19.128.2",
    "fd00:19:1::1",
    "fd00:19:1::2",
    "198.18.0.250",
    "198.18.0.2",
    "fd00:18::99",
    "2001:db8::1",
];

fn map(pairs: &[(&str, &str)]) -> StringMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pod_labels(g: &mut Gen<'_>) -> StringMap {
    let mut l = StringMap::new();
    if !g.chance(10) {
        l.insert("app".into(), g.choose(&APPS).into());
    }
    if g.chance(50) {
        l.insert("tier".into(), g.choose(&TIERS).into());
    }
    l
}

fn ns_labels(g: &mut Gen<'_>) -> StringMap {
    let mut l = StringMap::new();
    if g.chance(60) {
        l.insert("team".into(), g.choose(&["a", "b"]).into());
    }
    if g.chance(40) {
        l.insert("env".into(), g.choose(&["prod", "dev"]).into());
    }
    l
}

fn requirement(g: &mut Gen<'_>, ns: bool) -> LabelSelectorRequirement {
    let (key, values): (&str, &[&str]) = match (ns, g.pick(2)) {
        (false, 0) => ("app", &APPS),
        (false, _) => ("tier", &TIERS),
        (true, 0) => ("team", &["a", "b"]),
        (true, _) => ("kubernetes.io/metadata.name", &NAMESPACES),
    };
    let operator = g.choose(&[
        SelectorOperator::In,
        SelectorOperator::NotIn,
        SelectorOperator::Exists,
        SelectorOperator::DoesNotExist,
    ]);
    let values = match operator {
        SelectorOperator::In | SelectorOperator::NotIn => {
            let mut v = vec![g.choose(values).to_string()];
            if g.chance(30) {
                v.push(g.choose(values).to_string());
            }
            v
        }
        _ => Vec::new(),
    };
    LabelSelectorRequirement {
        key: key.into(),
        operator,
        values,
    }
}

/// A selector: often empty, else one or two requirements.
pub fn selector(g: &mut Gen<'_>, ns: bool) -> LabelSelector {
    let mut s = LabelSelector::default();
    match g.pick(5) {
        0 => {}
        1 | 2 => {
            let (k, v) = if ns {
                ("kubernetes.io/metadata.name", g.choose(&NAMESPACES))
            } else {
                ("app", g.choose(&APPS))
            };
            s.match_labels.insert(k.into(), v.into());
        }
        3 => s.match_expressions.push(requirement(g, ns)),
        _ => {
            s.match_expressions.push(requirement(g, ns));
            s.match_expressions.push(requirement(g, ns));
        }
    }
    s
}

fn protocol(g: &mut Gen<'_>) -> Protocol {
    g.choose(&[Protocol::Tcp, Protocol::Tcp, Protocol::Udp, Protocol::Sctp])
}

fn np_port(g: &mut Gen<'_>) -> NetworkPolicyPort {
    let protocol = if g.chance(30) {
        None
    } else {
        Some(protocol(g))
    };
    let (port, end_port) = match g.pick(4) {
        0 => (None, None),
        1 => {
            let p = i32::from(g.choose(&PORTS));
            let end = g.chance(40).then(|| p + g.choose(&[0, 1, 10, 1000]));
            (Some(IntOrString::Int(p)), end)
        }
        _ => {
            let name = g.choose(&["http", "dns", "sctp", "nope"]);
            (Some(IntOrString::String(name.into())), None)
        }
    };
    NetworkPolicyPort {
        protocol,
        port,
        end_port,
    }
}

fn ip_block(g: &mut Gen<'_>) -> IpBlock {
    let (cidr, except) = g.choose(&CIDRS);
    IpBlock {
        cidr: cidr.into(),
        except: except.iter().map(|e| e.to_string()).collect(),
    }
}

fn np_peer(g: &mut Gen<'_>) -> NetworkPolicyPeer {
    match g.pick(4) {
        0 => NetworkPolicyPeer {
            pod_selector: Some(selector(g, false)),
            ..Default::default()
        },
        1 => NetworkPolicyPeer {
            namespace_selector: Some(selector(g, true)),
            ..Default::default()
        },
        2 => NetworkPolicyPeer {
            pod_selector: Some(selector(g, false)),
            namespace_selector: Some(selector(g, true)),
            ..Default::default()
        },
        _ => NetworkPolicyPeer {
            ip_block: Some(ip_block(g)),
            ..Default::default()
        },
    }
}

fn some_list<T>(
    g: &mut Gen<'_>,
    max: usize,
    mut f: impl FnMut(&mut Gen<'_>) -> T,
) -> Option<Vec<T>> {
    if g.chance(35) {
        return None;
    }
    let n = g.pick(max + 1);
    Some((0..n).map(|_| f(g)).collect())
}

pub fn network_policy(g: &mut Gen<'_>, name: &str) -> NetworkPolicy {
    let ns = g.choose(&NAMESPACES);
    let ingress = some_list(g, 2, |g| NetworkPolicyIngressRule {
        ports: some_list(g, 2, np_port),
        from: some_list(g, 2, np_peer),
    });
    let egress = some_list(g, 2, |g| NetworkPolicyEgressRule {
        ports: some_list(g, 2, np_port),
        to: some_list(g, 2, np_peer),
    });
    let policy_types = match g.pick(5) {
        0 => vec![PolicyType::Ingress],
        1 => vec![PolicyType::Egress],
        2 => vec![PolicyType::Ingress, PolicyType::Egress],
        _ => Vec::new(), // defaulted on upsert
    };
    NetworkPolicy {
        metadata: ObjectMeta::namespaced(ns, name),
        spec: NetworkPolicySpec {
            pod_selector: selector(g, false),
            ingress,
            egress,
            policy_types,
        },
    }
}

fn subject(g: &mut Gen<'_>) -> AdminPolicySubject {
    if g.chance(50) {
        AdminPolicySubject {
            namespaces: Some(selector(g, true)),
            pods: None,
        }
    } else {
        AdminPolicySubject {
            namespaces: None,
            pods: Some(NamespacedPod {
                namespace_selector: selector(g, true),
                pod_selector: selector(g, false),
            }),
        }
    }
}

fn ingress_peer(g: &mut Gen<'_>) -> AdminIngressPeer {
    let s = subject(g);
    AdminIngressPeer {
        namespaces: s.namespaces,
        pods: s.pods,
    }
}

/// An egress peer; `pods_only` when the rule uses named ports;
/// `domains` when the rule allows (only Allow/Accept rules may name
/// domains, and never the baseline API).
fn egress_peer(g: &mut Gen<'_>, pods_only: bool, domains: bool) -> AdminEgressPeer {
    let mut p = AdminEgressPeer::default();
    let kinds = if domains { 5 } else { 4 };
    match if pods_only { 0 } else { g.pick(kinds) } {
        0 | 1 => {
            let s = subject(g);
            p.namespaces = s.namespaces;
            p.pods = s.pods;
        }
        2 => {
            p.nodes = Some(if g.chance(50) {
                LabelSelector::default()
            } else {
                LabelSelector::from_labels([("zone", "a")])
            })
        }
        3 => {
            p.networks.push(g.choose(&CIDRS).0.into());
            if g.chance(30) {
                let n = g.choose(&CIDRS).0.to_string();
                if !p.networks.contains(&n) {
                    p.networks.push(n);
                }
            }
        }
        _ => p.domain_names.push("example.com".into()),
    }
    p
}

fn admin_ports(g: &mut Gen<'_>, named: bool) -> Option<Vec<AdminPolicyPort>> {
    if g.chance(40) {
        return None;
    }
    let n = 1 + g.pick(2);
    Some(
        (0..n)
            .map(|_| {
                let mut p = AdminPolicyPort::default();
                match g.pick(if named { 3 } else { 2 }) {
                    0 => {
                        p.port_number = Some(AdminPortNumber {
                            protocol: Some(protocol(g)),
                            port: i32::from(g.choose(&PORTS)),
                        });
                    }
                    1 => {
                        let start = i32::from(g.choose(&PORTS));
                        p.port_range = Some(AdminPortRange {
                            protocol: Some(protocol(g)),
                            start,
                            end: start + g.choose(&[1, 10, 1000]),
                        });
                    }
                    _ => p.named_port = Some(g.choose(&["http", "dns", "sctp"]).into()),
                }
                p
            })
            .collect(),
    )
}

fn admin_action(g: &mut Gen<'_>, baseline: bool) -> AdminPolicyAction {
    if baseline {
        g.choose(&[AdminPolicyAction::Allow, AdminPolicyAction::Deny])
    } else {
        g.choose(&[
            AdminPolicyAction::Allow,
            AdminPolicyAction::Deny,
            AdminPolicyAction::Pass,
        ])
    }
}

type Rules = (Vec<AdminIngressRule>, Vec<AdminEgressRule>);

fn admin_rules(g: &mut Gen<'_>, baseline: bool) -> Rules {
    let ni = g.pick(3);
    let ingress = (0..ni)
        .map(|i| AdminIngressRule {
            name: g.chance(50).then(|| format!("in-{i}")),
            action: admin_action(g, baseline),
            from: (0..1 + g.pick(2)).map(|_| ingress_peer(g)).collect(),
            ports: admin_ports(g, true),
        })
        .collect();
    let ne = g.pick(3);
    let egress = (0..ne)
        .map(|i| {
            let named = g.chance(30);
            let action = admin_action(g, baseline);
            let domains = !baseline && action == AdminPolicyAction::Allow;
            AdminEgressRule {
                name: g.chance(50).then(|| format!("out-{i}")),
                action,
                to: (0..1 + g.pick(2))
                    .map(|_| egress_peer(g, named, domains))
                    .collect(),
                ports: admin_ports(g, named),
            }
        })
        .collect();
    (ingress, egress)
}

pub fn admin_network_policy(g: &mut Gen<'_>, name: &str) -> AdminNetworkPolicy {
    let (ingress, egress) = admin_rules(g, false);
    AdminNetworkPolicy {
        metadata: ObjectMeta::cluster(name),
        spec: AdminNetworkPolicySpec {
            priority: g.choose(&[1, 2, 3]),
            subject: subject(g),
            ingress,
            egress,
        },
    }
}

pub fn baseline(g: &mut Gen<'_>) -> BaselineAdminNetworkPolicy {
    let (ingress, egress) = admin_rules(g, true);
    BaselineAdminNetworkPolicy {
        metadata: ObjectMeta::cluster("default"),
        spec: BaselineAdminNetworkPolicySpec {
            subject: subject(g),
            ingress,
            egress,
        },
    }
}

fn cluster_protocols(g: &mut Gen<'_>, named: bool) -> Option<Vec<ClusterPolicyProtocol>> {
    if g.chance(40) {
        return None;
    }
    let n = 1 + g.pick(2);
    Some(
        (0..n)
            .map(|_| {
                let mut p = ClusterPolicyProtocol::default();
                let k = g.pick(if named { 4 } else { 3 });
                let port = i32::from(g.choose(&PORTS));
                let destination_port = match g.pick(3) {
                    0 => None,
                    1 => Some(ClusterPolicyPort {
                        number: Some(port),
                        range: None,
                    }),
                    _ => Some(ClusterPolicyPort {
                        number: None,
                        range: Some(PortRange {
                            start: port,
                            end: port + 10,
                        }),
                    }),
                };
                let ports = Some(ProtocolPorts { destination_port });
                match k {
                    0 => p.tcp = ports,
                    1 => p.udp = ports,
                    2 => p.sctp = ports,
                    _ => p.destination_named_port = Some(g.choose(&["http", "dns"]).into()),
                }
                p
            })
            .collect(),
    )
}

fn cluster_action(g: &mut Gen<'_>) -> ClusterPolicyAction {
    g.choose(&[
        ClusterPolicyAction::Accept,
        ClusterPolicyAction::Deny,
        ClusterPolicyAction::Pass,
    ])
}

pub fn cluster_network_policy(g: &mut Gen<'_>, name: &str) -> ClusterNetworkPolicy {
    let tier = g.choose(&[PolicyTier::Admin, PolicyTier::Baseline]);
    let ingress = (0..g.pick(3))
        .map(|_| ClusterPolicyIngressRule {
            name: None,
            action: cluster_action(g),
            from: (0..1 + g.pick(2)).map(|_| ingress_peer(g)).collect(),
            protocols: cluster_protocols(g, true),
        })
        .collect();
    let egress = (0..g.pick(3))
        .map(|_| {
            let named = g.chance(30);
            let action = cluster_action(g);
            let domains = action == ClusterPolicyAction::Accept;
            ClusterPolicyEgressRule {
                name: None,
                action,
                to: (0..1 + g.pick(2))
                    .map(|_| egress_peer(g, named, domains))
                    .collect(),
                protocols: cluster_protocols(g, named),
            }
        })
        .collect();
    ClusterNetworkPolicy {
        metadata: ObjectMeta::cluster(name),
        spec: ClusterNetworkPolicySpec {
            tier,
            priority: g.choose(&[1, 2, 3]),
            subject: subject(g),
            ingress,
            egress,
        },
    }
}

fn container_ports(g: &mut Gen<'_>) -> Vec<ContainerPort> {
    let choices: [(&str, Protocol, i32); 6] = [
        ("http", Protocol::Tcp, 80),
        ("http", Protocol::Tcp, 8080),
        ("http", Protocol::Udp, 81),
        ("dns", Protocol::Udp, 53),
        ("dns", Protocol::Tcp, 53),
        ("sctp", Protocol::Sctp, 9003),
    ];
    let mut out: Vec<ContainerPort> = Vec::new();
    for _ in 0..g.pick(3) {
        let (name, protocol, port) = g.choose(&choices);
        // Port names are unique within a pod (the apiserver checks).
        if out.iter().any(|p| p.name.as_deref() == Some(name)) {
            continue;
        }
        out.push(ContainerPort {
            name: Some(name.into()),
            container_port: port,
            protocol: Some(protocol),
            ..Default::default()
        });
    }
    out
}

/// Pod `i`: addresses 198.18.0.(i+1) (and fd00:18::(i+1) when dual-stack).
pub fn pod(g: &mut Gen<'_>, i: usize) -> Pod {
    let ns = g.choose(&NAMESPACES);
    let mut p = Pod {
        metadata: ObjectMeta::namespaced(ns, format!("p{i}")),
        ..Default::default()
    };
    p.metadata.labels = pod_labels(g);
    let node = g.pick(3);
    if node > 0 {
        p.spec.node_name = Some(format!("n{node}"));
        p.status.host_ip = Some(format!("198.19.128.{node}"));
        // A dual-stack node lists its IPv6 address in `hostIPs` only.
        if g.chance(40) {
            p.status.host_ips = vec![
                HostIp {
                    ip: format!("198.19.128.{node}"),
                },
                HostIp {
                    ip: format!("fd00:19:1::{node}"),
                },
            ];
        }
    }
    p.spec.host_network = node > 0 && g.chance(10);
    p.spec.containers = vec![Container {
        name: "c".into(),
        ports: container_ports(g),
        ..Default::default()
    }];
    if p.spec.host_network {
        p.status.pod_ip = Some(format!("198.19.128.{node}"));
    } else if !g.chance(5) {
        let v4 = format!("198.18.0.{}", i + 1);
        p.status.pod_ip = Some(v4.clone());
        if g.chance(50) {
            p.status.pod_ips = vec![
                PodIp { ip: v4 },
                PodIp {
                    ip: format!("fd00:18::{:x}", i + 1),
                },
            ];
        }
    }
    p.status.phase = Some(if g.chance(5) {
        PodPhase::Succeeded
    } else {
        PodPhase::Running
    });
    p
}

pub fn namespace(g: &mut Gen<'_>, name: &str) -> Namespace {
    let mut n = Namespace {
        metadata: ObjectMeta::cluster(name),
    };
    n.metadata.labels = ns_labels(g);
    n
}

pub fn node(g: &mut Gen<'_>, k: usize) -> Node {
    let mut n = Node::default();
    n.metadata.name = format!("n{k}");
    n.metadata.labels = map(&[("zone", if g.chance(50) { "a" } else { "b" })]);
    n.status.addresses = vec![NodeAddress {
        address_type: "InternalIP".into(),
        address: format!("198.19.128.{k}"),
    }];
    n
}

/// A random cluster.
pub fn cluster(g: &mut Gen<'_>) -> Cluster {
    let mut c = Cluster::new();
    let mut put = |o: Object| {
        let _ = c.upsert(o);
    };
    for ns in NAMESPACES {
        // Some namespaces have no object: the cluster knows them only
        // implicitly, from the objects in them.
        if g.chance(75) {
            put(namespace(g, ns).into());
        }
    }
    for k in 1..=2 {
        if g.chance(70) {
            put(node(g, k).into());
        }
    }
    for i in 0..2 + g.pick(8) {
        put(pod(g, i).into());
    }
    for i in 0..g.pick(6) {
        put(network_policy(g, &format!("np{i}")).into());
    }
    for i in 0..g.pick(3) {
        put(admin_network_policy(g, &format!("a{i}")).into());
    }
    if g.chance(40) {
        put(baseline(g).into());
    }
    for i in 0..g.pick(3) {
        put(cluster_network_policy(g, &format!("c{i}")).into());
    }
    c
}

/// A deterministic stream of flows over a cluster's pods and some outside
/// addresses.
pub struct Flows {
    state: u64,
    endpoints: Vec<Endpoint>,
}

impl Flows {
    pub fn new(cluster: &Cluster, seed: u64) -> Self {
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for p in cluster.pods() {
            endpoints.push(Endpoint::pod(
                p.metadata.namespace_or_default(),
                p.metadata.name.clone(),
            ));
            endpoints.extend(p.ips().into_iter().map(Endpoint::Ip));
        }
        endpoints.extend(
            EXTERNAL
                .iter()
                .map(|s| Endpoint::Ip(s.parse::<IpAddr>().unwrap())),
        );
        endpoints.push(Endpoint::pod("x", "no-such-pod"));
        Self {
            state: seed | 1,
            endpoints,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn next_flow(&mut self) -> Flow {
        let n = self.endpoints.len() as u64;
        let (a, b) = (self.next_u64() % n, self.next_u64() % n);
        let src = self.endpoints[a as usize].clone();
        let dst = self.endpoints[b as usize].clone();
        let protocol =
            [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][(self.next_u64() % 3) as usize];
        let port = PORTS[(self.next_u64() % PORTS.len() as u64) as usize];
        Flow::new(src, dst, protocol, port)
    }
}
