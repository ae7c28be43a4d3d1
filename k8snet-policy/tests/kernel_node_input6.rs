//! With `RulesetOptions::with_node_input(true)` a pod's egress policy is
//! enforced on its traffic to the node's own addresses, but IPv6
//! neighbour discovery between the pod and its node (ICMPv6 from the pod's
//! address, delivered to the node's input hook, never "established") must
//! still pass, or an egress-isolated pod could not even reach its gateway.
//! Proven against the kernel both ways: with the ruleset as generated, an
//! isolated pod resolves the node and reaches the pod its policy allows
//! while its TCP to the node is denied; with the one ICMPv6 rule deleted
//! from the kernel's `input` chain, the same allowed connection fails.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod routed;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use k8snet_model::{Cluster, Manifests, Protocol};
use k8snet_policy::{Flow, Options, PolicySet, RulesetOptions, Verdict};
use k8snet_testnet::{Netns, Testnet, kernel_test};
use routed::{enforce_in, routed_ns, tcp_probe};

const WEB: &str = "fd00:18::2";
const CLI: &str = "fd00:18::5";
const GATEWAY: &str = "fd00:18::1";
const NODE: &str = "fd00:19:1::2";

const CLUSTER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
status: {hostIP: 'fd00:19:1::2', podIPs: [{ip: 'fd00:18::2'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cli, namespace: shop, labels: {app: cli}}
status: {hostIP: 'fd00:19:1::2', podIPs: [{ip: 'fd00:18::5'}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cli-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: cli}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 80}]
";

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Accepts TCP connections on `at` inside `ns` and echoes what they send.
fn echo(ns: &Netns, at: SocketAddr) {
    let listener = ns.run(move || TcpListener::bind(at).unwrap()).unwrap();
    thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut buf = [0u8; 16];
                while let Ok(n @ 1..) = c.read(&mut buf) {
                    if c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// [`tcp_probe`] from inside `ns`.
fn connect(ns: &Netns, to: SocketAddr, wait: Duration) -> Verdict {
    ns.run(move || tcp_probe(to, wait)).unwrap()
}

/// Forgets every IPv6 neighbour in each namespace, so the next packet
/// starts with neighbour discovery.
fn flush_neighbours(namespaces: &[&Netns]) {
    for ns in namespaces {
        ns.ip(&["-6", "neigh", "flush", "all"]).unwrap();
    }
}

#[test]
fn egress_isolated_pod_keeps_ipv6_neighbour_discovery_with_node_input() {
    kernel_test!();
    let mut tn = Testnet::new("polnd6").unwrap();
    tn.enable_forwarding().unwrap();
    tn.node()
        .ip(&["-6", "addr", "add", &format!("{NODE}/128"), "dev", "lo"])
        .unwrap();
    let web = routed_ns(&mut tn, "web", &[addr(WEB)], &[addr(GATEWAY)]);
    let cli = routed_ns(&mut tn, "cli", &[addr(CLI)], &[addr(GATEWAY)]);
    let node = tn.node().clone();
    let web_80 = SocketAddr::new(addr(WEB), 80);
    let node_8080 = SocketAddr::new(addr(NODE), 8080);
    echo(web.netns(), web_80);
    echo(&node, node_8080);
    let all = [&node, web.netns(), cli.netns()];

    let mut m = Manifests::new();
    m.load_str("cluster.yaml", CLUSTER);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let set = PolicySet::compile(&Cluster::from_manifests(&m), &Options::default());
    let flow = |to: SocketAddr| Flow::new(addr(CLI), to.ip(), Protocol::Tcp, to.port());
    assert_eq!(set.verdict(&flow(web_80)), Verdict::Allow);
    assert_eq!(set.verdict(&flow(node_8080)), Verdict::Deny);

    enforce_in(
        &node,
        &set,
        &RulesetOptions::default().with_node_input(true),
    );
    flush_neighbours(&all);
    // cli resolves its gateway (a neighbour solicitation from fd00:18::5
    // to the node) and the node resolves cli: the allowed connection works.
    assert_eq!(
        connect(cli.netns(), web_80, Duration::from_secs(3)),
        Verdict::Allow
    );
    let neighbours = cli.netns().ip(&["-6", "neigh", "show", GATEWAY]).unwrap();
    assert!(
        !neighbours.contains("FAILED") && neighbours.contains("lladdr"),
        "cli's gateway is resolved: {neighbours}"
    );
    // The input hook does enforce cli's egress: TCP to the node is denied.
    assert_eq!(
        connect(cli.netns(), node_8080, Duration::from_millis(500)),
        Verdict::Deny
    );

    // The same flow without the ICMPv6 rule: neighbour discovery from cli
    // meets cli's egress chain at the input hook and is dropped, so cli
    // cannot reach even the pod its policy allows.
    let chain = node
        .cmd(&[
            "nft",
            "-a",
            "list",
            "chain",
            "inet",
            "k8snet-policy",
            "input",
        ])
        .unwrap();
    let handle = chain
        .lines()
        .find(|l| l.contains("ipv6-icmp accept"))
        .and_then(|l| l.rsplit("# handle ").next())
        .unwrap_or_else(|| panic!("no ICMPv6 rule in the input chain:\n{chain}"))
        .trim()
        .to_owned();
    node.cmd(&[
        "nft",
        "delete",
        "rule",
        "inet",
        "k8snet-policy",
        "input",
        "handle",
        &handle,
    ])
    .unwrap();
    flush_neighbours(&all);
    assert_eq!(
        connect(cli.netns(), web_80, Duration::from_secs(2)),
        Verdict::Deny,
        "without the ICMPv6 rule neighbour discovery should fail"
    );
}
