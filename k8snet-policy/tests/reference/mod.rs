//! The reference evaluator: the semantics of `k8snet-policy`, written as
//! directly as possible from the API documentation. It reads the policies
//! of the `Cluster` one at a time for every flow, matches selectors
//! without compiling them, and shares no code with the crate — so the
//! compiled evaluator can be checked against it.

#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;

use k8snet_model::{
    AdminEgressPeer, AdminIngressPeer, AdminPolicyAction, AdminPolicyPort, AdminPolicySubject,
    Cluster, ClusterPolicyAction, ClusterPolicyProtocol, IntOrString, LabelSelector,
    NetworkPolicyPeer, NetworkPolicyPort, NsName, Pod, PolicyTier, PolicyType, Protocol, StringMap,
};
use k8snet_policy::{Endpoint, Flow, HostNetwork, Options, SelfTraffic, Tier, Verdict};

/// What decided one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// A rule: tier, `Kind ns/name` of the policy, rule index.
    Rule(Tier, String, usize),
    /// NetworkPolicy isolation with no admitting rule.
    Isolated,
    /// Nothing decided.
    Default,
    /// Not a pod, own node, self traffic, or an unknown pod.
    Exempt,
}

/// The decision of one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    pub verdict: Verdict,
    pub by: By,
}

fn allow(by: By) -> Dir {
    Dir {
        verdict: Verdict::Allow,
        by,
    }
}

/// A resolved endpoint.
enum Side<'a> {
    Pod(&'a Pod, Vec<IpAddr>),
    Host(Vec<IpAddr>, Option<&'a str>),
    Unknown,
}

fn resolve<'a>(cluster: &'a Cluster, opts: &Options, ep: &Endpoint) -> Side<'a> {
    match ep {
        Endpoint::Ip(ip) => match cluster.pod_by_ip(*ip) {
            Some(p) => Side::Pod(p, vec![*ip]),
            None => Side::Host(vec![*ip], None),
        },
        Endpoint::Pod(key) => match cluster.pod(key) {
            None => Side::Unknown,
            Some(p) if p.is_finished() => Side::Unknown,
            Some(p) if p.spec.host_network && opts.host_network == HostNetwork::AsNode => {
                let mut ips = p.ips();
                if ips.is_empty() {
                    // The node's addresses, as the status lists them.
                    ips.extend(
                        p.status
                            .host_ips
                            .iter()
                            .map(|h| h.ip.as_str())
                            .chain(p.status.host_ip.as_deref())
                            .filter_map(|s| s.parse::<IpAddr>().ok()),
                    );
                }
                Side::Host(ips, p.spec.node_name.as_deref())
            }
            Some(p) => Side::Pod(p, p.ips()),
        },
    }
}

fn ns_of(p: &Pod) -> &str {
    p.metadata.namespace_or_default()
}

fn ns_labels<'a>(cluster: &'a Cluster, ns: &str) -> &'a StringMap {
    static EMPTY: StringMap = StringMap::new();
    cluster.namespace_labels(ns).unwrap_or(&EMPTY)
}

fn in_block(ip: IpAddr, cidr: &str, except: &[String]) -> bool {
    let Ok(net) = cidr.parse::<ipnet::IpNet>() else {
        return false;
    };
    net.contains(&ip)
        && !except
            .iter()
            .filter_map(|e| e.parse::<ipnet::IpNet>().ok())
            .any(|e| e.contains(&ip))
}

fn proto_of(p: Option<Protocol>) -> Protocol {
    p.unwrap_or(Protocol::Tcp)
}

/// A NetworkPolicy port entry against (protocol, port, destination).
fn np_port(p: &NetworkPolicyPort, flow: &Flow, dst: &Side<'_>) -> bool {
    if proto_of(p.protocol) != flow.protocol {
        return false;
    }
    match &p.port {
        None => true,
        Some(IntOrString::Int(n)) => {
            let end = p.end_port.unwrap_or(*n);
            i32::from(flow.port) >= *n && i32::from(flow.port) <= end
        }
        Some(IntOrString::String(name)) => match dst {
            Side::Pod(pod, _) => pod.named_port(name, flow.protocol) == Some(flow.port),
            _ => false,
        },
    }
}

fn np_peer(
    cluster: &Cluster,
    opts: &Options,
    peer: &NetworkPolicyPeer,
    policy_ns: &str,
    other: &Side<'_>,
) -> bool {
    if let Some(b) = &peer.ip_block {
        return match other {
            Side::Pod(_, ips) => {
                opts.ipblock_matches_pods && ips.iter().any(|&ip| in_block(ip, &b.cidr, &b.except))
            }
            Side::Host(ips, _) => ips.iter().any(|&ip| in_block(ip, &b.cidr, &b.except)),
            Side::Unknown => false,
        };
    }
    let Side::Pod(pod, _) = other else {
        return false;
    };
    let ns_ok = match &peer.namespace_selector {
        Some(sel) => sel.matches(ns_labels(cluster, ns_of(pod))),
        None => ns_of(pod) == policy_ns,
    };
    let pod_ok = peer
        .pod_selector
        .as_ref()
        .is_none_or(|s| s.matches(&pod.metadata.labels));
    ns_ok && pod_ok
}

/// An admin-tier subject or pod peer.
fn admin_pods(
    cluster: &Cluster,
    namespaces: Option<&LabelSelector>,
    pods: Option<(&LabelSelector, &LabelSelector)>,
    pod: &Pod,
) -> bool {
    if pod.spec.host_network {
        return false;
    }
    let labels = ns_labels(cluster, ns_of(pod));
    match (namespaces, pods) {
        (Some(ns), _) => ns.matches(labels),
        (None, Some((ns, p))) => ns.matches(labels) && p.matches(&pod.metadata.labels),
        (None, None) => false,
    }
}

fn subject(cluster: &Cluster, s: &AdminPolicySubject, pod: &Pod) -> bool {
    let pods = s
        .pods
        .as_ref()
        .map(|p| (&p.namespace_selector, &p.pod_selector));
    admin_pods(cluster, s.namespaces.as_ref(), pods, pod)
}

fn ingress_peer(cluster: &Cluster, p: &AdminIngressPeer, other: &Side<'_>) -> bool {
    let Side::Pod(pod, _) = other else {
        return false;
    };
    let pods = p
        .pods
        .as_ref()
        .map(|p| (&p.namespace_selector, &p.pod_selector));
    admin_pods(cluster, p.namespaces.as_ref(), pods, pod)
}

fn egress_peer(cluster: &Cluster, p: &AdminEgressPeer, other: &Side<'_>) -> bool {
    if let Side::Pod(pod, _) = other {
        let pods = p
            .pods
            .as_ref()
            .map(|p| (&p.namespace_selector, &p.pod_selector));
        if (p.namespaces.is_some() || p.pods.is_some())
            && admin_pods(cluster, p.namespaces.as_ref(), pods, pod)
        {
            return true;
        }
    }
    let ips: &[IpAddr] = match other {
        Side::Pod(_, ips) | Side::Host(ips, _) => ips,
        Side::Unknown => &[],
    };
    if ips
        .iter()
        .any(|&ip| p.networks.iter().any(|n| in_block(ip, n, &[])))
    {
        return true;
    }
    if let (Some(sel), Side::Host(ips, _)) = (&p.nodes, other) {
        return cluster
            .nodes()
            .filter(|n| sel.matches(&n.metadata.labels))
            .flat_map(node_ips)
            .any(|a| ips.contains(&a));
    }
    false
}

fn v1a1_port(p: &AdminPolicyPort, flow: &Flow, dst: &Side<'_>) -> bool {
    if let Some(n) = &p.port_number {
        return proto_of(n.protocol) == flow.protocol && i32::from(flow.port) == n.port;
    }
    if let Some(r) = &p.port_range {
        let port = i32::from(flow.port);
        return proto_of(r.protocol) == flow.protocol && r.start <= port && port <= r.end;
    }
    if let (Some(name), Side::Pod(pod, _)) = (&p.named_port, dst) {
        return pod.named_port(name, flow.protocol) == Some(flow.port);
    }
    false
}

fn v1a2_port(p: &ClusterPolicyProtocol, flow: &Flow, dst: &Side<'_>) -> bool {
    let by_proto = match flow.protocol {
        Protocol::Tcp => p.tcp.as_ref(),
        Protocol::Udp => p.udp.as_ref(),
        Protocol::Sctp => p.sctp.as_ref(),
        _ => None,
    };
    if let Some(ports) = by_proto {
        let port = i32::from(flow.port);
        return match &ports.destination_port {
            None => true,
            Some(d) => match (d.number, &d.range) {
                (Some(n), _) => n == port,
                (None, Some(r)) => r.start <= port && port <= r.end,
                (None, None) => true,
            },
        };
    }
    if let (Some(name), Side::Pod(pod, _)) = (&p.destination_named_port, dst) {
        return pod.named_port(name, flow.protocol) == Some(flow.port);
    }
    false
}

/// One admin-tier policy that applies: its sort key (priority, name,
/// kind), its `Kind name`, and its rules of the direction.
type Applied = ((i32, String, u8), String, Vec<AdminRule>);

/// A NetworkPolicy rule: its ports and its peers.
type NpRule<'a> = (
    Option<&'a [NetworkPolicyPort]>,
    Option<&'a [NetworkPolicyPeer]>,
);

/// An admin-tier rule reduced to what the walk needs.
struct AdminRule {
    action: Option<bool>, // Some(allow?) or None for Pass
    matches: bool,
}

/// The admin-tier policies that apply to `subject_pod`, in order: one
/// entry per policy with its rules for `dir`.
fn tier_rules(
    cluster: &Cluster,
    tier: Tier,
    dir: PolicyType,
    subject_pod: &Pod,
    flow: &Flow,
    dst: &Side<'_>,
    peer: &Side<'_>,
) -> Vec<Applied> {
    let mut out = Vec::new();
    let ingress = dir == PolicyType::Ingress;
    let v1a1 = |ingress_rules: &[k8snet_model::AdminIngressRule],
                egress_rules: &[k8snet_model::AdminEgressRule]| {
        if ingress {
            ingress_rules
                .iter()
                .map(|r| AdminRule {
                    action: a1(r.action),
                    matches: r.from.iter().any(|p| ingress_peer(cluster, p, peer))
                        && ports1(r.ports.as_deref(), flow, dst),
                })
                .collect::<Vec<_>>()
        } else {
            egress_rules
                .iter()
                .map(|r| AdminRule {
                    action: a1(r.action),
                    matches: r.to.iter().any(|p| egress_peer(cluster, p, peer))
                        && ports1(r.ports.as_deref(), flow, dst),
                })
                .collect()
        }
    };
    if tier == Tier::Admin {
        for p in cluster.admin_network_policies() {
            if subject(cluster, &p.spec.subject, subject_pod) {
                let key = (p.spec.priority, p.metadata.name.clone(), 0);
                let name = format!("AdminNetworkPolicy {}", p.metadata.name);
                out.push((key, name, v1a1(&p.spec.ingress, &p.spec.egress)));
            }
        }
    } else if let Some(p) = cluster.baseline_admin_network_policy()
        && subject(cluster, &p.spec.subject, subject_pod)
    {
        let key = (i32::MAX, p.metadata.name.clone(), 1);
        let name = format!("BaselineAdminNetworkPolicy {}", p.metadata.name);
        out.push((key, name, v1a1(&p.spec.ingress, &p.spec.egress)));
    }
    for p in cluster.cluster_network_policies() {
        let in_tier = match p.spec.tier {
            PolicyTier::Admin => tier == Tier::Admin,
            _ => tier == Tier::Baseline,
        };
        if !in_tier || !subject(cluster, &p.spec.subject, subject_pod) {
            continue;
        }
        let rules = if ingress {
            p.spec
                .ingress
                .iter()
                .map(|r| AdminRule {
                    action: a2(r.action),
                    matches: r.from.iter().any(|q| ingress_peer(cluster, q, peer))
                        && ports2(r.protocols.as_deref(), flow, dst),
                })
                .collect()
        } else {
            p.spec
                .egress
                .iter()
                .map(|r| AdminRule {
                    action: a2(r.action),
                    matches: r.to.iter().any(|q| egress_peer(cluster, q, peer))
                        && ports2(r.protocols.as_deref(), flow, dst),
                })
                .collect()
        };
        let key = (p.spec.priority, p.metadata.name.clone(), 2);
        out.push((
            key,
            format!("ClusterNetworkPolicy {}", p.metadata.name),
            rules,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn a1(a: AdminPolicyAction) -> Option<bool> {
    match a {
        AdminPolicyAction::Allow => Some(true),
        AdminPolicyAction::Pass => None,
        _ => Some(false),
    }
}

fn a2(a: ClusterPolicyAction) -> Option<bool> {
    match a {
        ClusterPolicyAction::Accept => Some(true),
        ClusterPolicyAction::Pass => None,
        _ => Some(false),
    }
}

fn ports1(ports: Option<&[AdminPolicyPort]>, flow: &Flow, dst: &Side<'_>) -> bool {
    match ports {
        None => true,
        Some([]) => true,
        Some(list) => list.iter().any(|p| v1a1_port(p, flow, dst)),
    }
}

fn ports2(ports: Option<&[ClusterPolicyProtocol]>, flow: &Flow, dst: &Side<'_>) -> bool {
    match ports {
        None | Some([]) => true,
        Some(list) => list.iter().any(|p| v1a2_port(p, flow, dst)),
    }
}

/// Evaluates one direction for `subject_pod`; `peer` is the other side.
fn direction(
    cluster: &Cluster,
    opts: &Options,
    dir: PolicyType,
    subject_pod: &Pod,
    flow: &Flow,
    dst: &Side<'_>,
    peer: &Side<'_>,
) -> Dir {
    for (_, name, rules) in tier_rules(cluster, Tier::Admin, dir, subject_pod, flow, dst, peer) {
        let hit = rules.iter().enumerate().find(|(_, r)| r.matches);
        if let Some((i, r)) = hit {
            match r.action {
                Some(a) => {
                    return Dir {
                        verdict: if a { Verdict::Allow } else { Verdict::Deny },
                        by: By::Rule(Tier::Admin, name, i),
                    };
                }
                None => break, // Pass: on to NetworkPolicy
            }
        }
    }
    // NetworkPolicy: read every policy, keep those of the pod's namespace
    // that select it for this direction.
    let mut isolated = false;
    for np in cluster.network_policies() {
        let ns = np.metadata.namespace_or_default();
        if ns != ns_of(subject_pod)
            || !np.spec.policy_types.contains(&dir)
            || !np.spec.pod_selector.matches(&subject_pod.metadata.labels)
        {
            continue;
        }
        isolated = true;
        let name = format!("NetworkPolicy {ns}/{}", np.metadata.name);
        let rules: Vec<NpRule<'_>> = if dir == PolicyType::Ingress {
            np.spec
                .ingress
                .iter()
                .flatten()
                .map(|r| (r.ports.as_deref(), r.from.as_deref()))
                .collect()
        } else {
            np.spec
                .egress
                .iter()
                .flatten()
                .map(|r| (r.ports.as_deref(), r.to.as_deref()))
                .collect()
        };
        for (i, (ports, peers)) in rules.into_iter().enumerate() {
            let ports_ok = match ports {
                None | Some([]) => true,
                Some(list) => list.iter().any(|p| np_port(p, flow, dst)),
            };
            let peers_ok = match peers {
                None | Some([]) => true,
                Some(list) => list.iter().any(|p| np_peer(cluster, opts, p, ns, peer)),
            };
            if ports_ok && peers_ok {
                return allow(By::Rule(Tier::NetworkPolicy, name, i));
            }
        }
    }
    if isolated {
        return Dir {
            verdict: Verdict::Deny,
            by: By::Isolated,
        };
    }
    for (_, name, rules) in tier_rules(cluster, Tier::Baseline, dir, subject_pod, flow, dst, peer) {
        if let Some((i, r)) = rules.iter().enumerate().find(|(_, r)| r.matches) {
            match r.action {
                Some(a) => {
                    return Dir {
                        verdict: if a { Verdict::Allow } else { Verdict::Deny },
                        by: By::Rule(Tier::Baseline, name, i),
                    };
                }
                None => return allow(By::Default),
            }
        }
    }
    allow(By::Default)
}

fn own_node(cluster: &Cluster, src: &Side<'_>, dst: &Pod) -> bool {
    let Side::Host(ips, host_node) = src else {
        return false;
    };
    let mut node_ips: Vec<IpAddr> = dst
        .status
        .host_ips
        .iter()
        .map(|h| h.ip.as_str())
        .chain(dst.status.host_ip.as_deref())
        .filter_map(|s| s.parse().ok())
        .collect();
    if let Some(node) = dst.spec.node_name.as_deref().and_then(|n| cluster.node(n)) {
        node_ips.extend(self::node_ips(node));
    }
    ips.iter().any(|ip| node_ips.contains(ip))
        || host_node.is_some_and(|n| dst.spec.node_name.as_deref() == Some(n))
}

/// A Node's InternalIP and ExternalIP addresses, read as kube-proxy reads
/// them (`ParseIPSloppy`).
fn node_ips(node: &k8snet_model::Node) -> Vec<IpAddr> {
    node.status
        .addresses
        .iter()
        .filter(|a| a.address_type == "InternalIP" || a.address_type == "ExternalIP")
        .filter_map(|a| k8snet_model::validate::parse_ip_legacy(&a.address).ok())
        .collect()
}

fn same_pod(a: &Pod, b: &Pod) -> bool {
    NsName::new(ns_of(a), a.metadata.name.clone()) == NsName::new(ns_of(b), b.metadata.name.clone())
}

/// `[egress, ingress]` of a flow.
pub fn evaluate(cluster: &Cluster, opts: &Options, flow: &Flow) -> [Dir; 2] {
    let src = resolve(cluster, opts, &flow.src);
    let dst = resolve(cluster, opts, &flow.dst);
    let exempt = allow(By::Exempt);
    if matches!(src, Side::Unknown) || matches!(dst, Side::Unknown) {
        let deny = Dir {
            verdict: Verdict::Deny,
            by: By::Exempt,
        };
        return [deny.clone(), deny];
    }
    if let (Side::Pod(a, _), Side::Pod(b, _)) = (&src, &dst)
        && opts.self_traffic == SelfTraffic::Allow
        && same_pod(a, b)
    {
        return [exempt.clone(), exempt];
    }
    // A connection uses one family end to end: when both sides have
    // addresses, only the families both have count, one at a time.
    let (v4, v6) = (families(&src), families(&dst));
    let shared = (v4.0 && v6.0, v4.1 && v6.1);
    match shared {
        (true, true) => {
            let over4 = directions(cluster, opts, flow, &only(&src, true), &only(&dst, true));
            let over6 = directions(cluster, opts, flow, &only(&src, false), &only(&dst, false));
            // Decided alike, or IPv4 allows, or neither does: IPv4's
            // decisions; else IPv6's.
            if over4 == over6 || allows(&over4) || !allows(&over6) {
                over4
            } else {
                over6
            }
        }
        (true, false) => directions(cluster, opts, flow, &only(&src, true), &only(&dst, true)),
        (false, true) => directions(cluster, opts, flow, &only(&src, false), &only(&dst, false)),
        (false, false) => directions(cluster, opts, flow, &src, &dst),
    }
}

fn allows(dirs: &[Dir; 2]) -> bool {
    dirs.iter().all(|d| d.verdict == Verdict::Allow)
}

/// Whether a side has IPv4 and IPv6 addresses.
fn families(side: &Side<'_>) -> (bool, bool) {
    let ips: &[IpAddr] = match side {
        Side::Pod(_, ips) | Side::Host(ips, _) => ips,
        Side::Unknown => &[],
    };
    (
        ips.iter().any(IpAddr::is_ipv4),
        ips.iter().any(IpAddr::is_ipv6),
    )
}

/// A side with only its addresses of one family.
fn only<'a>(side: &Side<'a>, v4: bool) -> Side<'a> {
    let keep = |ips: &[IpAddr]| -> Vec<IpAddr> {
        ips.iter()
            .copied()
            .filter(|ip| ip.is_ipv4() == v4)
            .collect()
    };
    match side {
        Side::Pod(p, ips) => Side::Pod(p, keep(ips)),
        Side::Host(ips, node) => Side::Host(keep(ips), *node),
        Side::Unknown => Side::Unknown,
    }
}

/// `[egress, ingress]` between two resolved sides.
fn directions(
    cluster: &Cluster,
    opts: &Options,
    flow: &Flow,
    src: &Side<'_>,
    dst: &Side<'_>,
) -> [Dir; 2] {
    let exempt = allow(By::Exempt);
    let egress = match src {
        Side::Pod(p, _) => direction(cluster, opts, PolicyType::Egress, p, flow, dst, dst),
        _ => exempt.clone(),
    };
    let ingress = match dst {
        Side::Pod(p, _) if own_node(cluster, src, p) => exempt,
        Side::Pod(p, _) => direction(cluster, opts, PolicyType::Ingress, p, flow, dst, src),
        _ => exempt,
    };
    [egress, ingress]
}

/// The verdict of a flow.
pub fn verdict(cluster: &Cluster, opts: &Options, flow: &Flow) -> Verdict {
    let [e, i] = evaluate(cluster, opts, flow);
    if e.verdict == Verdict::Allow && i.verdict == Verdict::Allow {
        Verdict::Allow
    } else {
        Verdict::Deny
    }
}
