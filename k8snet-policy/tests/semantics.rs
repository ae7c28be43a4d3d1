//! One test per semantic rule of the crate docs that the fixtures do not
//! already pin down: policyTypes defaulting, the own-node exemption, the
//! options, the admin tiers and the explanation texts.

use k8snet_model::IpFamily;
use k8snet_model::{Cluster, Manifests, Protocol};
use k8snet_policy::{
    Endpoint, Flow, HostNetwork, Matrix, MatrixOptions, Options, PolicySet, Reason, SelfTraffic,
    Tier, Verdict,
};

/// Two namespaces, three pods on two nodes, plus `extra` manifests.
fn cluster(extra: &str) -> Cluster {
    let base = r#"
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: "y", labels: {team: b}}
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {zone: a}}
status: {addresses: [{type: InternalIP, address: 198.19.128.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {zone: b}}
status: {addresses: [{type: InternalIP, address: 198.19.128.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec:
  nodeName: n1
  containers: [{name: c, ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]}]
status: {hostIP: 198.19.128.1, podIP: 198.18.1.1, podIPs: [{ip: 198.18.1.1}, {ip: "fd00:18::11"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec: {nodeName: n2, containers: [{name: c, ports: [{name: http, containerPort: 9090}]}]}
status: {hostIP: 198.19.128.2, podIP: 198.18.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: "y", labels: {app: a}}
spec: {nodeName: n2}
status: {hostIP: 198.19.128.2, podIP: 198.18.2.1}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: x, labels: {app: agent}}
spec: {nodeName: n1, hostNetwork: true}
status: {hostIP: 198.19.128.1, podIP: 198.19.128.1}
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: x, labels: {app: a}}
status: {phase: Succeeded, podIP: 198.18.1.9}
"#;
    let mut m = Manifests::new();
    m.load_str("base.yaml", base);
    m.load_str("extra.yaml", extra);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    Cluster::from_manifests(&m)
}

fn ep(s: &str) -> Endpoint {
    s.parse().unwrap()
}

fn flow(from: &str, to: &str, protocol: Protocol, port: u16) -> Flow {
    Flow::new(ep(from), ep(to), protocol, port)
}

fn tcp(from: &str, to: &str, port: u16) -> Flow {
    flow(from, to, Protocol::Tcp, port)
}

fn set(extra: &str) -> PolicySet {
    PolicySet::compile(&cluster(extra), &Options::default())
}

fn says(set: &PolicySet, f: &Flow) -> String {
    set.explain(f).to_string()
}

#[test]
fn policy_types_default_from_egress_rules() {
    // Egress rules without policyTypes isolate egress too…
    let s = set("
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec: {podSelector: {matchLabels: {app: a}}, egress: [{ports: [{port: 53, protocol: UDP}]}]}
");
    assert_eq!(s.verdict(&tcp("x/a", "y/a", 80)), Verdict::Deny);
    assert_eq!(
        s.verdict(&flow("x/a", "y/a", Protocol::Udp, 53)),
        Verdict::Allow
    );
    assert_eq!(s.verdict(&tcp("x/b", "x/a", 80)), Verdict::Deny); // and ingress
    // …but `egress: []` does not (defaults.go tests len(egress) != 0).
    let s = set("
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec: {podSelector: {matchLabels: {app: a}}, egress: []}
");
    assert_eq!(s.verdict(&tcp("x/a", "y/a", 80)), Verdict::Allow);
    assert_eq!(s.verdict(&tcp("x/b", "x/a", 80)), Verdict::Deny);
}

#[test]
fn rules_of_a_direction_not_in_policy_types_are_ignored() {
    let s = set("
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress]
  ingress: [{ports: [{port: 80}]}]
  egress: [{ports: [{port: 53, protocol: UDP}]}]
");
    // Egress is not isolated: the egress rule neither restricts nor admits.
    assert_eq!(s.verdict(&tcp("x/a", "y/a", 443)), Verdict::Allow);
    let e = s.explain(&tcp("x/a", "y/a", 443));
    assert_eq!(e.egress.reason, Reason::Default);
}

#[test]
fn ingress_from_the_own_node_is_always_allowed() {
    let s = set("
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
");
    // x/a runs on n1 (198.19.128.1): kubelet probes from there pass.
    let probe = tcp("198.19.128.1", "x/a", 8080);
    assert_eq!(s.verdict(&probe), Verdict::Allow);
    assert_eq!(
        says(&s, &probe),
        "allow: ingress to x/a: from the pod's own node (always allowed)"
    );
    // Another node is just an address.
    assert_eq!(s.verdict(&tcp("198.19.128.2", "x/a", 8080)), Verdict::Deny);
    // The host-network agent on n1 is node traffic from n1.
    assert_eq!(s.verdict(&tcp("x/agent", "x/a", 8080)), Verdict::Allow);
    assert_eq!(s.verdict(&tcp("x/agent", "x/b", 9090)), Verdict::Deny);
}

#[test]
fn host_network_pods_are_node_traffic_by_default() {
    let extra = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-egress, namespace: x}
spec: {podSelector: {}, policyTypes: [Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-nodes, namespace: \"y\"}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 198.19.128.0/24}}]}, {from: [{podSelector: {matchLabels: {app: agent}}, namespaceSelector: {}}]}]
";
    let c = cluster(extra);
    let s = PolicySet::compile(&c, &Options::default());
    // No policy selects the agent: its egress is not isolated by x's policy.
    let f = tcp("x/agent", "y/a", 80);
    assert_eq!(s.verdict(&f), Verdict::Allow);
    let e = s.explain(&f);
    assert_eq!(e.egress.reason, Reason::NotAPod);
    // y/a admits it through the ipBlock of node addresses, not the selector.
    match &e.ingress.reason {
        Reason::Rule(r) => assert_eq!(r.index, 0, "{e}"),
        other => panic!("{other:?}"),
    }

    // As pods: x's deny-egress now selects the agent.
    let mut o = Options::default();
    o.host_network = HostNetwork::AsPod;
    let s = PolicySet::compile(&c, &o);
    let e = s.explain(&f);
    assert_eq!(e.verdict(), Verdict::Deny, "{e}");
    assert!(matches!(e.egress.reason, Reason::Isolated { .. }));
    // An address is never attributed to a host-network pod.
    let by_ip = tcp("198.19.128.1", "y/a", 80);
    assert_eq!(s.explain(&by_ip).egress.reason, Reason::NotAPod);
}

#[test]
fn self_traffic_is_allowed_unless_evaluated() {
    let extra = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
";
    let c = cluster(extra);
    let f = tcp("x/a", "198.18.1.1", 8080);
    let s = PolicySet::compile(&c, &Options::default());
    assert_eq!(s.verdict(&f), Verdict::Allow);
    assert_eq!(
        says(&s, &f),
        "allow: a pod's traffic to itself (always allowed)"
    );
    let mut o = Options::default();
    o.self_traffic = SelfTraffic::Evaluate;
    assert_eq!(PolicySet::compile(&c, &o).verdict(&f), Verdict::Deny);
}

#[test]
fn ipblock_on_pod_addresses_is_an_option() {
    let c = cluster(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: v6-only, namespace: \"y\"}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: \"fd00:18::/64\"}}]}]
",
    );
    let s = PolicySet::compile(&c, &Options::default());
    // x/a is dual-stack, y/a IPv4 only: a connection between them is
    // IPv4, so x/a's IPv6 address does not count, named or not; by address,
    // only that address.
    assert_eq!(s.verdict(&tcp("x/a", "y/a", 80)), Verdict::Deny);
    assert_eq!(s.verdict(&tcp("fd00:18::11", "y/a", 80)), Verdict::Allow);
    assert_eq!(s.verdict(&tcp("198.18.1.1", "y/a", 80)), Verdict::Deny);
    assert_eq!(s.verdict(&tcp("fd00:18::99", "y/a", 80)), Verdict::Allow); // not a pod
    let mut o = Options::default();
    o.ipblock_matches_pods = false;
    let s = PolicySet::compile(&c, &o);
    assert_eq!(s.verdict(&tcp("x/a", "y/a", 80)), Verdict::Deny);
    assert_eq!(s.verdict(&tcp("fd00:18::99", "y/a", 80)), Verdict::Allow);
}

#[test]
fn named_ports_resolve_on_the_destination_pod() {
    let s = set("
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: http-out, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress: [{ports: [{port: http}]}]
");
    // x/b's `http` is 9090: the same name means another number there.
    assert_eq!(s.verdict(&tcp("x/a", "x/b", 9090)), Verdict::Allow);
    assert_eq!(s.verdict(&tcp("x/a", "x/b", 8080)), Verdict::Deny);
    // y/a declares no `http`; external addresses have no named ports.
    assert_eq!(s.verdict(&tcp("x/a", "y/a", 8080)), Verdict::Deny);
    assert_eq!(s.verdict(&tcp("x/a", "203.0.113.1", 8080)), Verdict::Deny);
}

#[test]
fn finished_and_unknown_pods() {
    let s = set("");
    let f = tcp("x/done", "x/a", 80);
    assert_eq!(s.verdict(&f), Verdict::Deny);
    assert_eq!(says(&s, &f), "deny: unknown pod x/done");
    assert!(!s.contains_pod(&k8snet_model::NsName::new("x", "done")));
    // Its address belongs to nobody now.
    let e = s.explain(&tcp("198.18.1.9", "x/a", 80));
    assert_eq!(e.verdict(), Verdict::Allow);
    assert_eq!(e.egress.reason, Reason::NotAPod);
}

const ADMIN: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: \"y\"}
spec: {podSelector: {}, ingress: [{}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: b-allow-monitoring}
spec:
  priority: 5
  subject: {namespaces: {matchLabels: {team: a}}}
  ingress:
  - {name: from-y, action: Allow, from: [{namespaces: {matchLabels: {team: b}}}], ports: [{portNumber: {protocol: TCP, port: 8080}}]}
  - {name: pass-y, action: Pass, from: [{namespaces: {matchLabels: {team: b}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a-block-db}
spec:
  priority: 5
  subject: {namespaces: {}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}], ports: [{portRange: {protocol: TCP, start: 5432, end: 5433}}]}
  egress:
  - {name: imds, action: Deny, to: [{networks: [169.254.169.254/32]}]}
  - {name: nodes, action: Allow, to: [{nodes: {matchLabels: {zone: a}}}]}
  - {name: names, action: Allow, to: [{domainNames: [example.com]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {matchLabels: {team: a}}}
  egress:
  - {name: no-internet, action: Deny, to: [{networks: [0.0.0.0/0]}]}
";

#[test]
fn admin_tier_overrides_network_policy() {
    let s = set(ADMIN);
    // Allow beats x's deny-all.
    let f = tcp("y/a", "x/a", 8080);
    assert_eq!(
        says(&s, &f),
        "allow: egress from y/a: no policy applies (default allow); ingress to x/a: \
         AdminNetworkPolicy b-allow-monitoring rule 0 \"from-y\" (Allow)"
    );
    // Deny beats y's allow-all; equal priorities are ordered by name.
    // A denial in both directions shows both.
    let e = s.explain(&tcp("x/b", "y/a", 5433));
    assert_eq!(e.verdict(), Verdict::Deny);
    assert_eq!(e.ingress.tier(), Some(Tier::Admin));
    assert_eq!(
        e.to_string(),
        "deny: egress from x/b: BaselineAdminNetworkPolicy default rule 0 \"no-internet\" (Deny); \
         ingress to y/a: AdminNetworkPolicy a-block-db rule 0 (Deny)"
    );
    // Admin pod peers never match outside addresses: y's allow-all decides.
    let e = s.explain(&tcp("203.0.113.7", "y/a", 5433));
    assert_eq!(e.verdict(), Verdict::Allow);
    assert_eq!(e.ingress.tier(), Some(Tier::NetworkPolicy));
}

#[test]
fn pass_goes_to_network_policy_then_baseline() {
    let s = set(ADMIN);
    // Pass, then x's deny-all decides.
    let e = s.explain(&tcp("y/a", "x/a", 80));
    assert_eq!(e.verdict(), Verdict::Deny);
    assert_eq!(
        e.to_string(),
        "deny: ingress to x/a: AdminNetworkPolicy b-allow-monitoring rule 1 \"pass-y\" (Pass), \
         then isolated by NetworkPolicy x/deny-all; no rule admits TCP 80 from y/a"
    );
    // No NetworkPolicy isolates egress: the baseline decides.
    let e = s.explain(&tcp("x/a", "203.0.113.9", 443));
    assert_eq!(e.egress.tier(), Some(Tier::Baseline));
    assert_eq!(
        e.to_string(),
        "deny: egress from x/a: BaselineAdminNetworkPolicy default rule 0 \"no-internet\" (Deny)"
    );
    // `networks` match pod addresses too: 0.0.0.0/0 denies x/a's traffic
    // to pods as well (no NetworkPolicy isolates x/a's egress).
    let e = s.explain(&tcp("x/a", "y/a", 5000));
    assert_eq!(e.verdict(), Verdict::Deny);
    assert_eq!(e.egress.tier(), Some(Tier::Baseline));
}

#[test]
fn admin_peers_networks_nodes_and_domain_names() {
    let s = set(ADMIN);
    assert_eq!(
        says(&s, &tcp("x/a", "169.254.169.254", 80)),
        "deny: egress from x/a: AdminNetworkPolicy a-block-db rule 0 \"imds\" (Deny)"
    );
    // n1 is in zone a: allowed before the baseline's internet deny.
    assert_eq!(
        s.verdict(&tcp("x/a", "198.19.128.1", 10250)),
        Verdict::Allow
    );
    assert_eq!(s.verdict(&tcp("x/a", "198.19.128.2", 10250)), Verdict::Deny);
    // domainNames cannot be resolved here: they match nothing.
    assert_eq!(s.verdict(&tcp("x/a", "93.184.216.34", 443)), Verdict::Deny);
}

#[test]
fn cluster_network_policy_tiers() {
    let s = set("
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: admin-sctp}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - {action: Deny, from: [{namespaces: {}}], protocols: [{sctp: {}}]}
  - {action: Pass, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: b}}}}]}
  - {action: Accept, from: [{namespaces: {}}], protocols: [{destinationNamedPort: dns}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - {action: Pass, from: [{namespaces: {matchLabels: {team: b}}}]}
  - {action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {range: {start: 1, end: 1024}}}}]}
");
    assert_eq!(
        says(&s, &flow("y/a", "x/a", Protocol::Sctp, 9)),
        "deny: ingress to x/a: ClusterNetworkPolicy admin-sctp rule 0 (Deny)"
    );
    // destinationNamedPort with the flow's protocol: x/a's dns is UDP 53.
    assert_eq!(
        says(&s, &flow("y/a", "x/a", Protocol::Udp, 53)),
        "allow: egress from y/a: no policy applies (default allow); \
         ingress to x/a: ClusterNetworkPolicy admin-sctp rule 2 (Accept)"
    );
    assert_eq!(
        s.verdict(&flow("y/a", "x/a", Protocol::Tcp, 53)),
        Verdict::Allow
    ); // baseline passes y
    // A baseline Pass ends the baseline: default allow.
    let e = s.explain(&tcp("y/a", "x/a", 80));
    assert_eq!(e.ingress.reason, Reason::Default);
    assert!(e.ingress.passed.is_some());
    // x/b's ingress from x: baseline denies low TCP ports.
    assert_eq!(s.verdict(&tcp("x/a", "x/b", 80)), Verdict::Deny);
    assert_eq!(s.verdict(&tcp("x/a", "x/b", 8080)), Verdict::Allow);
    // x/b is passed by the admin tier, the baseline still applies to it.
    let e = s.explain(&tcp("x/b", "y/a", 80));
    assert_eq!(e.ingress.tier(), Some(Tier::Baseline), "{e}");
}

#[test]
fn explanation_names_both_directions_when_allowed() {
    let s = set("
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: x}
spec: {podSelector: {matchLabels: {app: b}}, ingress: [{from: [{podSelector: {}}], ports: [{port: http}]}]}
");
    assert_eq!(
        says(&s, &tcp("x/a", "x/b", 9090)),
        "allow: egress from x/a: no policy applies (default allow); \
         ingress to x/b: NetworkPolicy x/web rule 0 (Allow)"
    );
    assert_eq!(
        says(&s, &tcp("203.0.113.1", "x/b", 9090)),
        "deny: ingress to x/b: isolated by NetworkPolicy x/web; no rule admits TCP 9090 from 203.0.113.1"
    );
    assert_eq!(
        says(&s, &tcp("203.0.113.1", "203.0.113.2", 1)),
        "allow: no pod involved (no policy applies)"
    );
    let e = s.explain(&tcp("x/a", "x/b", 1));
    assert_eq!(
        e.reason(),
        "ingress to x/b: isolated by NetworkPolicy x/web; no rule admits TCP 1 from x/a"
    );
}

/// Ingress from the pod's own node is always allowed (API reference). A
/// dual-stack pod lists its node's addresses of both families in
/// `status.hostIPs` (GA since Kubernetes 1.30; `kubectl get pod -o yaml`
/// prints it): with no Node object in the manifests, the node's IPv6
/// address is the own node too. (Before `hostIPs` was read, the IPv6 probe
/// was denied: "isolated by NetworkPolicy x/deny-all".)
#[test]
fn own_node_ipv6_address_from_host_ips_is_node_local() {
    let mut m = Manifests::new();
    m.load_str(
        "t.yaml",
        "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x}
spec: {nodeName: n1}
status:
  hostIP: 198.19.128.1
  hostIPs: [{ip: 198.19.128.1}, {ip: 'fd00:19:1::1'}]
  podIP: 198.18.0.2
  podIPs: [{ip: 198.18.0.2}, {ip: 'fd00:18::2'}]
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: x}
spec: {nodeName: n1, hostNetwork: true}
status:
  hostIP: 198.19.128.1
  hostIPs: [{ip: 198.19.128.1}, {ip: 'fd00:19:1::1'}]
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: x, labels: {app: db}}
spec: {nodeName: n2}
status:
  hostIP: 198.19.128.2
  hostIPs: [{ip: 198.19.128.2}, {ip: 'fd00:19:1::2'}]
  podIPs: [{ip: 198.18.0.3}, {ip: 'fd00:18::3'}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-n1-v6, namespace: x}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{ipBlock: {cidr: 'fd00:19:1::1/128'}}]}]
",
    );
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let s = PolicySet::compile(&Cluster::from_manifests(&m), &Options::default());
    let v4 = tcp("198.19.128.1", "198.18.0.2", 8080);
    assert_eq!(s.verdict(&v4), Verdict::Allow, "{}", says(&s, &v4));
    let v6 = tcp("fd00:19:1::1", "fd00:18::2", 8080);
    assert_eq!(s.verdict(&v6), Verdict::Allow, "{}", says(&s, &v6));
    assert_eq!(s.explain(&v6).ingress.reason, Reason::NodeLocal);
    // Another address of that /64 is not the node.
    let other = tcp("fd00:19:1::2", "fd00:18::2", 8080);
    assert_eq!(s.verdict(&other), Verdict::Deny);
    // A host-network pod with no podIPs stands for its node's addresses,
    // of both families: its IPv6 one is admitted on the other node.
    let agent = tcp("x/agent", "x/db", 5432);
    assert_eq!(s.verdict(&agent), Verdict::Allow, "{}", says(&s, &agent));
    assert_eq!(s.verdict(&tcp("198.19.128.1", "x/db", 5432)), Verdict::Deny);
}

/// Two dual-stack pods, and policies that admit a's egress to b over IPv4
/// only and b's ingress from a over IPv6 only: `extra` adds more.
fn dual_stack(extra: &str) -> PolicySet {
    let mut m = Manifests::new();
    m.load_str(
        "t.yaml",
        "
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
status: {podIPs: [{ip: 198.18.0.2}, {ip: 'fd00:18::2'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {pod: b}}
status: {podIPs: [{ip: 198.18.0.3}, {ip: 'fd00:18::3'}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-to-b-v4, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 198.18.0.3/32}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a-v6, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress: [{from: [{ipBlock: {cidr: 'fd00:18::2/128'}}]}]
",
    );
    m.load_str("extra.yaml", extra);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    PolicySet::compile(&Cluster::from_manifests(&m), &Options::default())
}

/// A connection between two dual-stack pods uses one family end to end.
/// Here a's egress admits only b's IPv4 address and b's ingress only a's
/// IPv6 address, so neither an IPv4 nor an IPv6 connection can be made:
/// the named flow (`policy eval x/a x/b`, the matrix cell) is denied too.
/// (Before the fix each direction picked its own family and the named
/// flow was allowed: "allow: egress from x/a: NetworkPolicy x/a-to-b-v4
/// rule 0 (Allow); ingress to x/b: NetworkPolicy x/b-from-a-v6 rule 0
/// (Allow)".)
#[test]
fn named_dual_stack_flow_is_decided_per_family() {
    let s = dual_stack("");
    let v4 = tcp("198.18.0.2", "198.18.0.3", 80);
    let v6 = tcp("fd00:18::2", "fd00:18::3", 80);
    assert_eq!(s.verdict(&v4), Verdict::Deny, "{}", says(&s, &v4));
    assert_eq!(s.verdict(&v6), Verdict::Deny, "{}", says(&s, &v6));
    let by_name = tcp("x/a", "x/b", 80);
    assert_eq!(s.verdict(&by_name), Verdict::Deny, "{}", says(&s, &by_name));
    // Both families are explained, each named.
    let e = s.explain(&by_name);
    assert_eq!(e.verdict(), Verdict::Deny);
    assert_eq!(e.family, Some(IpFamily::IPv4));
    assert_eq!(
        e.other.as_ref().and_then(|o| o.family),
        Some(IpFamily::IPv6)
    );
    assert_eq!(
        e.to_string(),
        "deny: over IPv4: ingress to x/b: isolated by NetworkPolicy x/b-from-a-v6; \
         no rule admits TCP 80 from x/a; \
         over IPv6: egress from x/a: isolated by NetworkPolicy x/a-to-b-v4; \
         no rule admits TCP 80 to x/b"
    );
    let m = Matrix::build(&s, &MatrixOptions::default());
    assert_eq!(
        m.get("x/a", "x/b").map(ToString::to_string).as_deref(),
        Some("No Connections")
    );
    // The pods' flows the other way are not restricted at all.
    assert_eq!(s.verdict(&tcp("x/b", "x/a", 80)), Verdict::Allow);
    assert_eq!(s.explain(&tcp("x/b", "x/a", 80)).family, None);
}

/// Once one family is admitted both ways, the named flow is allowed, and
/// the explanation says over which family; the matrix agrees.
#[test]
fn named_dual_stack_flow_is_allowed_over_the_family_that_allows() {
    let s = dual_stack(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-to-b-v6, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 'fd00:18::3/128'}}]}]
",
    );
    assert_eq!(
        s.verdict(&tcp("fd00:18::2", "fd00:18::3", 80)),
        Verdict::Allow
    );
    assert_eq!(
        s.verdict(&tcp("198.18.0.2", "198.18.0.3", 80)),
        Verdict::Deny
    );
    let by_name = tcp("x/a", "x/b", 80);
    assert_eq!(s.verdict(&by_name), Verdict::Allow);
    let e = s.explain(&by_name);
    assert_eq!(e.family, Some(IpFamily::IPv6));
    assert_eq!(
        e.to_string(),
        "allow: over IPv6: egress from x/a: NetworkPolicy x/a-to-b-v6 rule 0 (Allow); \
         ingress to x/b: NetworkPolicy x/b-from-a-v6 rule 0 (Allow)"
    );
    assert_eq!(
        e.reason(),
        "over IPv6: egress from x/a: NetworkPolicy x/a-to-b-v6 rule 0 (Allow); \
         ingress to x/b: NetworkPolicy x/b-from-a-v6 rule 0 (Allow)"
    );
    let m = Matrix::build(&s, &MatrixOptions::default());
    assert_eq!(
        m.get("x/a", "x/b").map(ToString::to_string).as_deref(),
        Some("All Connections")
    );
}

/// Between a named pod and an address, only the pod's address of the
/// address's family counts.
#[test]
fn named_pod_and_an_address_use_the_address_family() {
    let s = dual_stack("");
    // b admits only a's IPv6 address: from a by name to b's IPv4 address
    // (an IPv4 connection) a's IPv6 address does not count.
    let f = tcp("x/a", "198.18.0.3", 80);
    assert_eq!(s.verdict(&f), Verdict::Deny, "{}", says(&s, &f));
    assert_eq!(
        says(&s, &f),
        "deny: ingress to x/b (198.18.0.3): isolated by NetworkPolicy x/b-from-a-v6; \
         no rule admits TCP 80 from x/a"
    );
    // a's egress admits only b's IPv4 address: to b by name from a's IPv6
    // address, b's IPv4 address does not count.
    let f = tcp("fd00:18::2", "x/b", 80);
    assert_eq!(s.verdict(&f), Verdict::Deny, "{}", says(&s, &f));
    let e = s.explain(&f);
    assert!(matches!(e.egress.reason, Reason::Isolated { .. }), "{e}");
    assert_eq!(e.ingress.verdict, Verdict::Allow, "{e}");
}

/// An `ipBlock` whose CIDR has bits set beyond the prefix (`198.18.5.7/24`)
/// is stored by a default apiserver (the strict check is behind an alpha
/// gate): the policy is kept, with a warning, and its blocks are the
/// networks, as Go's `net.ParseCIDR` reads them — the same verdicts and
/// the same kernel ruleset as the canonical spelling. (Before, the loader
/// refused the policy, and the pod it isolates was left open.)
#[test]
fn ipblock_cidrs_with_host_bits_are_their_networks() {
    let policy = |cidr: &str, except: &str| {
        format!(
            "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: from-block, namespace: x}}
spec:
  podSelector: {{matchLabels: {{app: b}}}}
  ingress: [{{from: [{{ipBlock: {{cidr: {cidr}, except: [{except}]}}}}]}}]
"
        )
    };
    let mut m = Manifests::new();
    m.load_str("p.yaml", &policy("198.18.5.7/24", "198.18.5.130/25"));
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    assert_eq!(m.warnings().len(), 2, "{:?}", m.warnings());
    let sloppy = set(&policy("198.18.5.7/24", "198.18.5.130/25"));
    let canonical = set(&policy("198.18.5.0/24", "198.18.5.128/25"));
    for (from, want) in [
        ("198.18.5.1", Verdict::Allow),
        ("198.18.5.7", Verdict::Allow),
        ("198.18.5.127", Verdict::Allow),
        ("198.18.5.130", Verdict::Deny),
        ("198.18.5.200", Verdict::Deny),
        ("198.18.6.1", Verdict::Deny),
    ] {
        let f = tcp(from, "x/b", 9090);
        assert_eq!(sloppy.verdict(&f), want, "{}", says(&sloppy, &f));
        assert_eq!(sloppy.explain(&f), canonical.explain(&f));
    }
    let opts = k8snet_policy::RulesetOptions::default();
    assert_eq!(
        k8snet_nft::render(&k8snet_policy::ruleset(&sloppy, &opts)),
        k8snet_nft::render(&k8snet_policy::ruleset(&canonical, &opts))
    );
}

/// A default apiserver stores `ipBlock` CIDRs in legacy spellings (IPv4
/// parts and prefix lengths with leading zeros, IPv4-mapped IPv6) and reads
/// them with `netutils.ParseCIDRSloppy`: the set decides, explains and
/// renders them as the canonical block.
#[test]
fn ipblock_legacy_spellings_are_read_as_the_apiserver_reads_them() {
    let policy = |cidr: &str, except: &str| {
        format!(
            "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: from-block, namespace: x}}
spec:
  podSelector: {{matchLabels: {{app: b}}}}
  ingress: [{{from: [{{ipBlock: {{cidr: '{cidr}', except: ['{except}']}}}}]}}]
"
        )
    };
    let canonical = set(&policy("198.18.0.0/16", "198.18.5.0/24"));
    let opts = k8snet_policy::RulesetOptions::default();
    for (cidr, except) in [
        ("198.018.0.0/16", "198.18.005.0/24"),
        ("198.18.0.0/016", "198.18.5.0/024"),
        ("::ffff:198.18.0.0/112", "::ffff:198.18.5.0/120"),
    ] {
        let sloppy = set(&policy(cidr, except));
        for (from, want) in [
            ("198.18.4.1", Verdict::Allow),
            ("198.18.5.1", Verdict::Deny),
            ("8.8.8.8", Verdict::Deny),
        ] {
            let f = tcp(from, "x/b", 9090);
            assert_eq!(sloppy.verdict(&f), want, "{cidr}: {}", says(&sloppy, &f));
            assert_eq!(sloppy.explain(&f), canonical.explain(&f), "{cidr}");
        }
        assert_eq!(
            k8snet_nft::render(&k8snet_policy::ruleset(&sloppy, &opts)),
            k8snet_nft::render(&k8snet_policy::ruleset(&canonical, &opts)),
            "{cidr}"
        );
    }
}

/// A policy that skipped validation (`Cluster::from_objects`) with a CIDR
/// the compiler cannot read: the rule fails closed and
/// `PolicySet::errors` names the object and field. An unreadable `except`
/// never widens the block to its `cidr`; an unreadable Deny network
/// denies every address.
#[test]
fn unreadable_cidrs_fail_closed_and_are_reported() {
    use k8snet_model::{AdminNetworkPolicy, NetworkPolicy, Object, apply_defaults};
    let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "from-block", "namespace": "x"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "b"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "a"}}},
                          {"ipBlock": {"cidr": "198.18.0.0/16", "except": ["198.18.5.0/24", "198.18.6.0/33"]}}]},
                {"from": [{"ipBlock": {"cidr": "198.18.0.0/99"}}]}
            ]
        }
    }))
    .unwrap();
    let anp: AdminNetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "deny-out"},
        "spec": {
            "priority": 5,
            "subject": {"namespaces": {"matchLabels": {"team": "b"}}},
            "egress": [{"name": "bad", "action": "Deny", "to": [{"networks": ["203.0.113.0/24", "nope"]}]}]
        }
    }))
    .unwrap();
    let mut objects = cluster("").objects();
    for mut o in [Object::NetworkPolicy(np), Object::AdminNetworkPolicy(anp)] {
        apply_defaults(&mut o);
        objects.push(o);
    }
    let s = PolicySet::compile(&Cluster::from_objects(objects), &Options::default());
    let errors: Vec<String> = s.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        [
            "NetworkPolicy x/from-block: spec.ingress[0].from[1].ipBlock.except[1]: \"198.18.6.0/33\": prefix length must be a decimal number in 0..=32",
            "NetworkPolicy x/from-block: spec.ingress[1].from[0].ipBlock.cidr: \"198.18.0.0/99\": prefix length must be a decimal number in 0..=32",
            "AdminNetworkPolicy deny-out: spec.egress[0].to[0].networks[1]: \"nope\": must be a valid CIDR value (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ]
    );
    // The block admits nothing (not 198.18.0.0/16 without its excepts);
    // the rule's readable peer still admits.
    for from in ["198.18.4.1", "198.18.6.1", "198.18.5.1"] {
        let f = tcp(from, "x/b", 9090);
        assert_eq!(s.verdict(&f), Verdict::Deny, "{from}: {}", says(&s, &f));
    }
    assert_eq!(s.verdict(&tcp("x/a", "x/b", 9090)), Verdict::Allow);
    // The Deny rule with an unreadable network denies every address, not
    // only the readable 203.0.113.0/24.
    for to in ["203.0.113.9", "8.8.8.8", "2001:db8::1"] {
        let f = tcp("y/a", to, 443);
        assert_eq!(s.verdict(&f), Verdict::Deny, "{to}: {}", says(&s, &f));
    }
    // Validated policies have none.
    assert!(set("").errors().is_empty());
}

/// An admin Pass rule whose `networks` entry cannot be read (an object
/// that skipped validation) never admits more than any readable value
/// would: neither "nothing" (the flow falls through to a later Allow) nor
/// "everything" (it skips a later Deny) is safe, so the rule denies every
/// address. An Allow rule's unreadable entry matches nothing.
mod unreadable_pass {
    use k8snet_model::{
        AdminNetworkPolicy, Cluster, ClusterNetworkPolicy, Manifests, NetworkPolicy, Object,
        apply_defaults,
    };
    use k8snet_policy::{Endpoint, Flow, Options, PolicySet, RulesetOptions, Verdict};

    fn base() -> Vec<Object> {
        let mut m = Manifests::new();
        m.load_str(
            "base.yaml",
            r#"
apiVersion: v1
kind: Namespace
metadata: {name: "y", labels: {team: b}}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
status: {addresses: [{type: InternalIP, address: 198.19.128.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: "y", labels: {app: a}}
spec: {nodeName: n2, containers: [{name: c}]}
status: {hostIP: 198.19.128.2, podIP: 198.18.2.1}
"#,
        );
        assert!(m.errors().is_empty(), "{:?}", m.errors());
        Cluster::from_manifests(&m).objects()
    }

    fn anp(name: &str, priority: i32, action: &str, networks: &[&str]) -> Object {
        let p: AdminNetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"priority": priority, "subject": {"namespaces": {"matchLabels": {"team": "b"}}},
                     "egress": [{"name": "p", "action": action, "to": [{"networks": networks}]}]}
        }))
        .unwrap();
        Object::AdminNetworkPolicy(p)
    }

    fn cnp(name: &str, tier: &str, priority: i32, action: &str, networks: &[&str]) -> Object {
        let p: ClusterNetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"tier": tier, "priority": priority,
                     "subject": {"namespaces": {"matchLabels": {"team": "b"}}},
                     "egress": [{"name": "p", "action": action, "to": [{"networks": networks}]}]}
        }))
        .unwrap();
        Object::ClusterNetworkPolicy(p)
    }

    fn deny_egress() -> Object {
        let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "deny-egress", "namespace": "y"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"]}
        }))
        .unwrap();
        Object::NetworkPolicy(np)
    }

    fn compile(extra: Vec<Object>) -> PolicySet {
        let mut objects = base();
        for mut o in extra {
            apply_defaults(&mut o);
            objects.push(o);
        }
        PolicySet::compile(&Cluster::from_objects(objects), &Options::default())
    }

    fn to(s: &PolicySet, dst: &str) -> Verdict {
        let f = Flow::new(
            "y/a".parse::<Endpoint>().unwrap(),
            dst.parse::<Endpoint>().unwrap(),
            k8snet_model::Protocol::Tcp,
            443,
        );
        s.verdict(&f)
    }

    fn render(s: &PolicySet) -> String {
        k8snet_nft::render(&k8snet_policy::ruleset(s, &RulesetOptions::default()))
    }

    fn pass_then_allow(network: &str) -> PolicySet {
        compile(vec![
            anp("pass-some", 5, "Pass", &[network]),
            anp("allow-rest", 10, "Allow", &["0.0.0.0/0"]),
            deny_egress(),
        ])
    }

    fn verdict_with_pass_network(network: &str) -> Verdict {
        to(&pass_then_allow(network), "8.8.8.8")
    }

    #[test]
    fn an_unreadable_pass_network_does_not_admit_more_than_a_readable_one() {
        assert_eq!(verdict_with_pass_network("8.8.8.0/24"), Verdict::Deny);
        assert_eq!(verdict_with_pass_network("8.8.8.0/33"), Verdict::Deny);
        // Outside any readable value the readable Pass falls through to the
        // Allow; the unreadable one denies there too.
        assert_eq!(
            to(&pass_then_allow("8.8.8.0/24"), "1.1.1.1"),
            Verdict::Allow
        );
        let s = pass_then_allow("8.8.8.0/33");
        assert_eq!(to(&s, "1.1.1.1"), Verdict::Deny);
        assert_eq!(
            s.explain(&Flow::new(
                "y/a".parse::<Endpoint>().unwrap(),
                "8.8.8.8".parse::<Endpoint>().unwrap(),
                k8snet_model::Protocol::Tcp,
                443
            ))
            .to_string(),
            "deny: egress from y/a: AdminNetworkPolicy pass-some rule 0 \"p\" (Deny)"
        );
        let errors: Vec<String> = s.errors().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                "AdminNetworkPolicy pass-some: spec.egress[0].to[0].networks[0]: \"8.8.8.0/33\": prefix length must be a decimal number in 0..=32"
            ]
        );
        // The nftables ruleset is that of a rule denying every address.
        let deny_all = compile(vec![
            anp("pass-some", 5, "Deny", &["0.0.0.0/0", "::/0"]),
            anp("allow-rest", 10, "Allow", &["0.0.0.0/0"]),
            deny_egress(),
        ]);
        assert_eq!(render(&s), render(&deny_all));
        assert_ne!(render(&s), render(&pass_then_allow("8.8.8.0/24")));
    }

    /// Without the NetworkPolicy, a Pass falls to the default allow: the
    /// unreadable Pass still denies rather than admitting (it must not
    /// admit more than a readable value, which may exclude the address and
    /// fall through to a later admin Deny).
    #[test]
    fn an_unreadable_pass_network_never_skips_a_later_deny() {
        let s = compile(vec![
            anp("pass-some", 5, "Pass", &["bad"]),
            anp("deny-rest", 10, "Deny", &["0.0.0.0/0"]),
        ]);
        assert_eq!(to(&s, "8.8.8.8"), Verdict::Deny);
    }

    /// An unreadable Allow network matches nothing: the flow falls through
    /// to the later tiers, which admit at most what the Allow would.
    #[test]
    fn an_unreadable_allow_network_matches_nothing() {
        let s = compile(vec![
            anp("allow-some", 5, "Allow", &["8.8.8.0/33"]),
            deny_egress(),
        ]);
        assert_eq!(to(&s, "8.8.8.8"), Verdict::Deny);
        let s = compile(vec![anp("allow-some", 5, "Allow", &["8.8.8.0/33"])]);
        assert_eq!(to(&s, "8.8.8.8"), Verdict::Allow); // default allow
        assert_eq!(s.errors().len(), 1);
    }

    /// ClusterNetworkPolicy: an Admin-tier Pass with an unreadable network
    /// denies every address, like an AdminNetworkPolicy's; a Baseline-tier
    /// Pass ends the baseline (default allow), so there an unreadable
    /// entry matching nothing admits no more than a readable one.
    #[test]
    fn cluster_network_policy_tiers_fail_closed_too() {
        let s = compile(vec![
            cnp("pass-some", "Admin", 5, "Pass", &["8.8.8.0/33"]),
            cnp("accept-rest", "Admin", 10, "Accept", &["0.0.0.0/0"]),
            deny_egress(),
        ]);
        assert_eq!(to(&s, "8.8.8.8"), Verdict::Deny);
        assert_eq!(s.errors().len(), 1);
        let readable = compile(vec![
            cnp("pass-some", "Admin", 5, "Pass", &["8.8.8.0/24"]),
            cnp("accept-rest", "Admin", 10, "Accept", &["0.0.0.0/0"]),
            deny_egress(),
        ]);
        assert_eq!(to(&readable, "8.8.8.8"), Verdict::Deny);

        let baseline = |network: &str| {
            compile(vec![
                cnp("pass-some", "Baseline", 5, "Pass", &[network]),
                cnp("deny-rest", "Baseline", 10, "Deny", &["0.0.0.0/0"]),
            ])
        };
        assert_eq!(to(&baseline("8.8.8.0/24"), "8.8.8.8"), Verdict::Allow);
        assert_eq!(to(&baseline("8.8.8.0/24"), "1.1.1.1"), Verdict::Deny);
        for dst in ["8.8.8.8", "1.1.1.1"] {
            assert_eq!(to(&baseline("8.8.8.0/33"), dst), Verdict::Deny, "{dst}");
        }
    }

    /// `domainNames` are refused in a Deny or Pass rule by validation and
    /// cannot be resolved here; an object that skipped validation with
    /// one fails closed and is reported.
    #[test]
    fn domain_names_outside_allow_rules_fail_closed() {
        let p: AdminNetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "deny-dns"},
            "spec": {"priority": 5, "subject": {"namespaces": {"matchLabels": {"team": "b"}}},
                     "egress": [{"name": "d", "action": "Deny", "to": [{"domainNames": ["example.com"]}]}]}
        }))
        .unwrap();
        let s = compile(vec![Object::AdminNetworkPolicy(p)]);
        assert_eq!(to(&s, "93.184.216.34"), Verdict::Deny);
        let errors: Vec<String> = s.errors().iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .starts_with("AdminNetworkPolicy deny-dns: spec.egress[0].to[0].domainNames: "),
            "{errors:?}"
        );
    }
}

/// A Node's InternalIP/ExternalIP addresses in a legacy spelling (accepted
/// by the model with a warning, read by kube-proxy with `ParseIPSloppy`)
/// are the node's addresses for admin `nodes` peers.
#[test]
fn node_addresses_in_legacy_spellings_match_nodes_peers() {
    let mut m = Manifests::new();
    m.load_str(
        "t.yaml",
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: "y", labels: {team: b}}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {zone: b}}
status:
  addresses:
  - {type: InternalIP, address: 198.019.128.002}
  - {type: ExternalIP, address: '::ffff:198.19.200.2'}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: "y", labels: {app: a}}
spec: {nodeName: n2}
status: {podIP: 198.18.2.1}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: no-nodes}
spec:
  priority: 5
  subject: {namespaces: {}}
  egress:
  - {name: kubelet, action: Deny, to: [{nodes: {matchLabels: {zone: b}}}]}
"#,
    );
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let s = PolicySet::compile(&Cluster::from_manifests(&m), &Options::default());
    for node_ip in ["198.19.128.2", "198.19.200.2"] {
        let f = tcp("y/a", node_ip, 10250);
        assert_eq!(s.verdict(&f), Verdict::Deny, "{node_ip}: {}", says(&s, &f));
    }
    assert_eq!(
        s.verdict(&tcp("y/a", "198.19.128.3", 10250)),
        Verdict::Allow
    );
}
