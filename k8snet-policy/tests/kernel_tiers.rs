//! The cluster-wide tiers in the kernel: real TCP and UDP connections
//! between routed pod namespaces, and from pods to the node's own address,
//! filtered by the per-direction ruleset `k8snet_policy::enforce`
//! programs, equal `PolicySet::verdict` for every probe. The policies make
//! each tier decide somewhere: AdminNetworkPolicy Allow over a
//! NetworkPolicy's isolation, Deny, Pass to the NetworkPolicy tier and
//! (for a pod nothing isolates) to the baseline, a ClusterNetworkPolicy in
//! the Admin tier, a BaselineAdminNetworkPolicy Deny, and named ports that
//! resolve to different numbers on different pods (ingress and egress).
//!
//! Pod → node traffic (the input hook) is left alone by default and
//! enforced with `RulesetOptions::with_node_input(true)`; both settings
//! are probed. Then an admin policy changes (Pass becomes Deny): the new
//! verdicts hold and a connection opened under the old one survives.
//! `Enforcer` (updates diffed against what it applied) is checked against
//! the kernel's table too.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod routed;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use k8snet_model::{Cluster, Manifests, Protocol};
use k8snet_nft::{Batch, Family, Nft};
use k8snet_policy::{Enforcer, Flow, Options, PolicySet, RulesetOptions, TABLE, Verdict, ruleset};
use k8snet_testnet::{Pod, Testnet, kernel_test};
use routed::{Outcome, Ports, enforce_in, ip, load_one, probe_all, routed_pod, serve, verdict_of};

/// (namespace, name, app, host, container ports as YAML).
const PODS: [(&str, &str, &str, u8, &str); 4] = [
    (
        "x",
        "a",
        "a",
        2,
        "[{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]",
    ),
    ("x", "b", "b", 3, "[{name: http, containerPort: 8081}]"),
    ("w", "c", "c", 4, "[]"),
    ("w", "d", "d", 5, "[{name: http, containerPort: 80}]"),
];
const TCP_PORTS: [u16; 7] = [22, 80, 5432, 8050, 8080, 8081, 9090];
const UDP_PORT: u16 = 53;
const PORTS: Ports = Ports {
    tcp: &TCP_PORTS,
    udp: UDP_PORT,
};
/// The node's own address (on its `lo`).
const NODE: Ipv4Addr = Ipv4Addr::new(198, 19, 128, 1);

const POLICIES: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-in, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from: [{namespaceSelector: {}}]
    ports: [{port: http}, {port: dns, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-out, namespace: w}
spec:
  podSelector: {matchLabels: {app: c}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{port: http}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: later}
spec:
  priority: 9
  subject: {namespaces: {}}
  egress:
  - {name: deny-low, action: Deny, to: [{networks: [198.19.0.0/16]}], ports: [{portRange: {start: 1, end: 1000, protocol: TCP}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - {name: no-5432, action: Deny, from: [{namespaces: {}}], ports: [{portNumber: {port: 5432, protocol: TCP}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: dns-ok}
spec:
  tier: Admin
  priority: 7
  subject: {namespaces: {matchLabels: {env: dev}}}
  ingress:
  - {name: udp-53, action: Accept, from: [{namespaces: {}}], protocols: [{udp: {destinationPort: {number: 53}}}]}
";

/// The admin policy that changes: `ops-pass` is a Pass, then a Deny.
fn ops(pass_action: &str) -> String {
    format!(
        "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {{name: ops}}
spec:
  priority: 5
  subject: {{namespaces: {{matchLabels: {{env: prod}}}}}}
  ingress:
  - {{name: ops-allow, action: Allow, from: [{{namespaces: {{matchLabels: {{env: dev}}}}}}], ports: [{{portNumber: {{port: 9090, protocol: TCP}}}}]}}
  - {{name: ops-pass, action: {pass_action}, from: [{{namespaces: {{matchLabels: {{env: dev}}}}}}], ports: [{{portRange: {{start: 8000, end: 8100, protocol: TCP}}}}]}}
  - {{name: ops-deny, action: Deny, from: [{{namespaces: {{matchLabels: {{env: dev}}}}}}], ports: [{{portNumber: {{port: 22, protocol: TCP}}}}]}}
  egress:
  - {{name: no-infra, action: Deny, to: [{{nodes: {{matchLabels: {{role: infra}}}}}}], ports: [{{portNumber: {{port: 22, protocol: TCP}}}}]}}
  - {{name: metrics, action: Allow, to: [{{pods: {{namespaceSelector: {{}}, podSelector: {{matchLabels: {{app: d}}}}}}}}], ports: [{{namedPort: http}}]}}
"
    )
}

fn cluster() -> Cluster {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: x, labels: {{env: prod}}}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: w, labels: {{env: dev}}}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {{name: n1, labels: {{role: infra}}}}\n\
         status: {{addresses: [{{type: InternalIP, address: {NODE}}}]}}\n"
    );
    for (ns, name, app, host, ports) in PODS {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {app}}}}}\n\
             spec: {{nodeName: n1, containers: [{{name: c, ports: {ports}}}]}}\n\
             status: {{hostIP: {NODE}, podIP: {}}}\n",
            ip(host)
        ));
    }
    yaml.push_str("---\n");
    yaml.push_str(POLICIES);
    yaml.push_str("---\n");
    yaml.push_str(&ops("Pass"));
    let mut m = Manifests::new();
    m.load_str("cluster.yaml", &yaml);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    Cluster::from_manifests(&m)
}

/// Probes every destination in `dsts` from every pod ([`routed::probe_all`]).
fn probe_pods(
    pods: &[Pod],
    dsts: &[Ipv4Addr],
    expect: &(dyn Fn(Ipv4Addr, Ipv4Addr, Protocol, u16) -> Verdict + Sync),
) -> Vec<Outcome> {
    let srcs: Vec<(&Pod, Ipv4Addr)> = PODS
        .iter()
        .zip(pods)
        .map(|(p, pod)| (pod, ip(p.3)))
        .collect();
    probe_all(&srcs, dsts, &PORTS, expect)
}

fn count(all: &[Outcome], v: Verdict) -> usize {
    all.iter().filter(|(_, w, _)| *w == v).count()
}

/// Whether some probe `from -> to` on `proto port` had outcome `v`.
fn outcome(all: &[Outcome], from: u8, to: Ipv4Addr, proto: &str, port: u16) -> Verdict {
    let key = format!("{} -> {to} {proto} {port}", ip(from));
    all.iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, _, got)| *got)
        .unwrap_or_else(|| panic!("no probe {key}"))
}

#[test]
fn admin_and_baseline_tiers_and_node_input_match_verdicts() {
    kernel_test!();
    let mut tn = Testnet::new("poltier").unwrap();
    tn.enable_forwarding().unwrap();
    tn.node()
        .ip(&["addr", "add", &format!("{NODE}/32"), "dev", "lo"])
        .unwrap();
    let pods: Vec<Pod> = PODS
        .iter()
        .map(|&(_, name, _, host, _)| routed_pod(&mut tn, name, host))
        .collect();
    for (pod, &(_, _, _, host, _)) in pods.iter().zip(&PODS) {
        serve(pod.netns(), ip(host), &TCP_PORTS, UDP_PORT);
    }
    serve(tn.node(), NODE, &TCP_PORTS, UDP_PORT);
    let pod_ips: Vec<Ipv4Addr> = PODS.iter().map(|p| ip(p.3)).collect();

    // Routing works: without a ruleset every probe connects.
    let open = |_: Ipv4Addr, _: Ipv4Addr, _: Protocol, _: u16| Verdict::Allow;
    probe_pods(&pods, &pod_ips, &open);
    probe_pods(&pods, &[NODE], &open);

    let mut cluster = cluster();
    let mut set = PolicySet::compile(&cluster, &Options::default());
    // Every tier decides some probe (as verdict() explains it), so the
    // kernel is checked on each.
    for (s, d, port, want) in [
        (5, 2, 9090, "AdminNetworkPolicy ops rule 0"), // Allow over a-in
        (5, 2, 8050, "AdminNetworkPolicy ops rule 1"), // Pass, then isolated
        (5, 3, 22, "AdminNetworkPolicy ops rule 2"),   // Deny
        (2, 3, 5432, "BaselineAdminNetworkPolicy default"),
        (2, 5, 80, "AdminNetworkPolicy ops rule 1"), // named port on d
    ] {
        let flow = Flow::new(IpAddr::V4(ip(s)), IpAddr::V4(ip(d)), Protocol::Tcp, port);
        let why = set.explain(&flow).to_string();
        assert!(why.contains(want), "{flow}: {why}");
    }
    let first = enforce_in(tn.node(), &set, &RulesetOptions::default().with_log(true));
    assert!(first.messages > 0);
    let between = probe_pods(&pods, &pod_ips, &verdict_of(&set));
    let (allowed, denied) = (
        count(&between, Verdict::Allow),
        count(&between, Verdict::Deny),
    );
    assert!(
        allowed > 10 && denied > 10,
        "{allowed} allowed, {denied} denied"
    );
    println!("between pods: {allowed} allowed, {denied} denied, all as verdict() says");

    // Pod -> node: not filtered by default, although verdict() denies
    // some of these flows.
    probe_pods(&pods, &[NODE], &open);
    let denied_to_node = pod_ips
        .iter()
        .flat_map(|&s| {
            let tcp = TCP_PORTS.map(|p| (s, Protocol::Tcp, p));
            tcp.into_iter().chain([(s, Protocol::Udp, UDP_PORT)])
        })
        .filter(|&(s, proto, p)| {
            set.verdict(&Flow::new(IpAddr::V4(s), IpAddr::V4(NODE), proto, p)) == Verdict::Deny
        })
        .count();
    assert!(denied_to_node > 4, "{denied_to_node}");

    // With the option, the input hook enforces each pod's egress.
    let on = RulesetOptions::default()
        .with_log(true)
        .with_node_input(true);
    assert!(enforce_in(tn.node(), &set, &on).messages > 0);
    let to_node = probe_pods(&pods, &[NODE], &verdict_of(&set));
    assert_eq!(count(&to_node, Verdict::Deny), denied_to_node);
    // Forwarded traffic is unchanged by the option.
    probe_pods(&pods, &pod_ips, &verdict_of(&set));
    println!(
        "pod -> node with node_input: {} allowed, {} denied, all as verdict() says",
        count(&to_node, Verdict::Allow),
        count(&to_node, Verdict::Deny)
    );

    // An allowed connection d -> b:8050 (Pass, then b is not isolated, so
    // the baseline, which admits it), open across the change.
    let b8050 = SocketAddr::from((ip(3), 8050));
    assert_eq!(outcome(&between, 5, ip(3), "TCP", 8050), Verdict::Allow);
    let mut conn = pods[3]
        .netns()
        .run(move || TcpStream::connect_timeout(&b8050, Duration::from_secs(3)))
        .unwrap()
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut roundtrip = |msg: &[u8; 4]| {
        conn.write_all(msg).unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, msg);
    };
    roundtrip(b"one!");

    // The change: ops-pass becomes a Deny.
    let v2 = load_one(&ops("Deny"));
    let r = v2.reference();
    cluster.upsert(v2).unwrap();
    set.apply(&cluster, &r);
    let flow = Flow::new(IpAddr::V4(ip(5)), IpAddr::V4(ip(3)), Protocol::Tcp, 8050);
    assert_eq!(set.verdict(&flow), Verdict::Deny);
    assert!(enforce_in(tn.node(), &set, &on).messages > 0);
    let after = probe_pods(&pods, &pod_ips, &verdict_of(&set));
    assert_eq!(outcome(&after, 5, ip(3), "TCP", 8050), Verdict::Deny);
    probe_pods(&pods, &[NODE], &verdict_of(&set));
    roundtrip(b"two!");
    // Enforcing the same set again sends nothing.
    assert_eq!(enforce_in(tn.node(), &set, &on).messages, 0);
}

/// `Enforcer` diffs against what it applied: the same set again sends
/// nothing, a change sends only its difference and leaves the kernel
/// holding exactly `ruleset()`; when the table changed behind its back the
/// next update fails (the kernel keeps its state) and the one after reads
/// the table back and repairs it.
#[test]
fn enforcer_updates_without_reading_back() {
    kernel_test!();
    let tn = Testnet::new("polenfr").unwrap();
    let mut cluster = cluster();
    let mut set = PolicySet::compile(&cluster, &Options::default());
    let options = RulesetOptions::default().with_node_input(true);
    tn.node()
        .run(move || {
            let mut e = Enforcer::new(Nft::new().expect("netlink"), options.clone());
            let first = e.enforce(&set).expect("first");
            assert!(first.messages > 10, "{first:?}");
            assert_eq!(e.enforce(&set).expect("again").messages, 0);

            let v2 = load_one(&ops("Deny"));
            let r = v2.reference();
            cluster.upsert(v2).unwrap();
            set.apply(&cluster, &r);
            let update = e.enforce(&set).expect("update");
            assert!(
                update.messages > 0 && update.messages < first.messages,
                "{update:?} vs {first:?}"
            );
            let want = ruleset(&set, &options);
            let held = e.nft().read_table(Family::Inet, TABLE).unwrap();
            assert_eq!(held.as_ref(), Some(&want));

            // Someone deletes the table: the enforcer's next diff names
            // objects that are gone and fails; then it reads back and
            // rebuilds everything.
            e.nft()
                .apply(&Batch::delete_table(Family::Inet, TABLE))
                .unwrap();
            let v3 = load_one(&ops("Pass"));
            let r = v3.reference();
            cluster.upsert(v3).unwrap();
            set.apply(&cluster, &r);
            assert!(e.enforce(&set).is_err());
            let rebuilt = e.enforce(&set).expect("rebuilt");
            assert_eq!(rebuilt.messages, first.messages);
            let held = e.nft().read_table(Family::Inet, TABLE).unwrap();
            assert_eq!(held, Some(ruleset(&set, &options)));
        })
        .unwrap();
}
