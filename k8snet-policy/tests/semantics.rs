//! One test per semantic rule of the crate docs that the fixtures do not
//! already pin down: policyTypes defaulting, the own-node exemption, the
//! options, the admin tiers and the explanation texts.

use k8snet_model::{Cluster, Manifests, Protocol};
use k8snet_policy::{
    Endpoint, Flow, HostNetwork, Options, PolicySet, Reason, SelfTraffic, Tier, Verdict,
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
    // x/a is dual-stack: named, any of its addresses counts; by address,
    // only that address.
    assert_eq!(s.verdict(&tcp("x/a", "y/a", 80)), Verdict::Allow);
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
