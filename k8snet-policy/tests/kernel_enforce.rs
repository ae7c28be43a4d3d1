//! Real traffic between routed pod namespaces, filtered by the ruleset
//! `k8snet_policy::enforce` programs in the node namespace, matches
//! `PolicySet::verdict` for every probe (TCP and UDP, IPv4); after a policy
//! change the new verdicts hold and an open allowed connection survives;
//! an invalid policy update is refused and the ruleset stays as it was.
//!
//! IPv6, SCTP and traffic to and from outside the pod network are probed
//! in `kernel_external.rs`.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod routed;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use k8snet_model::{Cluster, Manifests, Object, Protocol};
use k8snet_policy::{Flow, Options, PolicySet, RulesetOptions, Verdict};
use k8snet_testnet::{Netns, Pod, Testnet, kernel_test};
use routed::{Ports, enforce_in, ip, load_one, probe_all, routed_pod, serve, verdict_of};

/// (namespace, name, app label, host). job and job2 share an identity;
/// an ipBlock admitting only job's address tells them apart, so address
/// peers inside the pod network are exercised too.
const PODS: [(&str, &str, &str, u8); 7] = [
    ("shop", "web", "web", 2),
    ("shop", "api", "api", 3),
    ("shop", "db", "db", 4),
    ("lab", "cli", "cli", 5),
    ("lab", "mon", "mon", 6),
    ("lab", "job", "job", 7),
    ("lab", "job2", "job", 8),
];
const TCP_PORTS: [u16; 3] = [80, 5432, 8080];
const UDP_PORT: u16 = 53;
const PORTS: Ports = Ports {
    tcp: &TCP_PORTS,
    udp: UDP_PORT,
};

const POLICIES: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: api}}
    - namespaceSelector: {matchLabels: {team: lab}}
      podSelector: {matchLabels: {app: cli}}
    ports: [{port: 80}, {port: 53, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}, {podSelector: {matchLabels: {app: api}}}]
    ports: [{port: 5432}]
  - from: [{ipBlock: {cidr: 198.18.0.7/32}}]
    ports: [{port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: mon-egress, namespace: lab}
spec:
  podSelector: {matchLabels: {app: mon}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {team: shop}}}], ports: [{port: 80}, {port: 8080}, {port: 5432}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: job-ingress, namespace: lab}
spec:
  podSelector: {matchLabels: {app: job}}
  ingress: [{from: [{podSelector: {}}]}]
";

/// The changed web-ingress: only lab/cli, TCP 80 and 8080 (api loses it).
const WEB_V2: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: lab}}
      podSelector: {matchLabels: {app: cli}}
    ports: [{port: 80}, {port: 8080}]
";

fn cluster() -> Cluster {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: shop}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: lab, labels: {team: lab}}\n",
    );
    for (ns, name, app, host) in PODS {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {app}}}}}\n\
             status: {{podIP: {}}}\n",
            ip(host)
        ));
    }
    yaml.push_str("---\n");
    yaml.push_str(POLICIES);
    let mut m = Manifests::new();
    m.load_str("cluster.yaml", &yaml);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    Cluster::from_manifests(&m)
}

/// Every (src, dst, protocol, port) probe between the pods: the real
/// outcome equals `verdict()`. Returns (probes, allowed).
fn check_all(pods: &[Pod], set: &PolicySet) -> (usize, usize) {
    let srcs: Vec<(&Pod, Ipv4Addr)> = PODS
        .iter()
        .zip(pods)
        .map(|(p, pod)| (pod, ip(p.3)))
        .collect();
    let dsts: Vec<Ipv4Addr> = PODS.iter().map(|p| ip(p.3)).collect();
    let all = probe_all(&srcs, &dsts, &PORTS, &verdict_of(set));
    let allowed = all.iter().filter(|(_, w, _)| *w == Verdict::Allow).count();
    (all.len(), allowed)
}

/// `enforce` in the node namespace, denials logged.
fn enforce_logged(node: &Netns, set: &PolicySet) -> k8snet_nft::ApplyStats {
    enforce_in(node, set, &RulesetOptions::default().with_log(true))
}

#[test]
fn real_traffic_matches_verdicts_across_an_update() {
    kernel_test!();
    let mut tn = Testnet::new("polenf").unwrap();
    tn.enable_forwarding().unwrap();
    let pods: Vec<Pod> = PODS
        .iter()
        .map(|&(_, name, _, host)| routed_pod(&mut tn, name, host))
        .collect();
    for (pod, &(_, _, _, host)) in pods.iter().zip(&PODS) {
        serve(pod.netns(), ip(host), &TCP_PORTS, UDP_PORT);
    }

    // Routing works: without a ruleset every probe connects.
    let open_set = PolicySet::compile(&Cluster::new(), &Options::default());
    let (n0, allowed0) = check_all(&pods, &open_set);
    assert_eq!(n0, allowed0);

    let mut cluster = cluster();
    let mut set = PolicySet::compile(&cluster, &Options::default());
    let first = enforce_logged(tn.node(), &set);
    assert!(first.messages > 0);
    let rendered = tn
        .node()
        .cmd(&["nft", "list", "table", "inet", "k8snet-policy"])
        .unwrap();
    assert!(
        rendered.contains("ct state established,related accept"),
        "{rendered}"
    );
    assert!(rendered.contains("k8snet-policy deny"), "{rendered}");
    // Per-direction dispatch: db's ingress chain, keyed by its address;
    // job's /32 ipBlock makes an interval peer set.
    assert!(rendered.contains("ip daddr vmap @in4"), "{rendered}");
    assert!(rendered.contains("198.18.0.4 : goto t-"), "{rendered}");
    assert!(rendered.contains("flags interval"), "{rendered}");

    let (n, allowed) = check_all(&pods, &set);
    assert_eq!(n, 7 * 6 * 4);
    assert!(allowed > 0 && allowed < n, "{allowed} of {n} allowed");
    println!("before the update: {allowed} of {n} probes allowed, all as verdict() says");

    // An allowed connection api -> web:80, open across the update.
    let web = SocketAddr::from((ip(2), 80));
    let mut open = pods[1]
        .netns()
        .run(move || TcpStream::connect_timeout(&web, Duration::from_secs(3)))
        .unwrap()
        .unwrap();
    open.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut roundtrip = |msg: &[u8; 4]| {
        open.write_all(msg).unwrap();
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, msg);
    };
    roundtrip(b"one!");

    // The change: web-ingress no longer admits api.
    let v2 = load_one(WEB_V2);
    let r = v2.reference();
    cluster.upsert(v2).unwrap();
    set.apply(&cluster, &r);
    let flow = Flow::new(IpAddr::V4(ip(3)), IpAddr::V4(ip(2)), Protocol::Tcp, 80);
    assert_eq!(set.verdict(&flow), Verdict::Deny);
    let second = enforce_logged(tn.node(), &set);
    assert!(second.messages > 0);
    let (n, allowed) = check_all(&pods, &set);
    println!("after the update: {allowed} of {n} probes allowed, all as verdict() says");
    // The open connection still carries data; a new one is dropped.
    roundtrip(b"two!");
    let fresh = pods[1]
        .netns()
        .run(move || TcpStream::connect_timeout(&web, Duration::from_millis(300)))
        .unwrap();
    assert!(fresh.is_err(), "new api -> web:80 must be dropped");

    // An invalid update (endPort below port) is refused before it reaches
    // the policy set; enforcing again changes nothing in the kernel.
    let mut bad = load_one(WEB_V2);
    if let Object::NetworkPolicy(np) = &mut bad {
        let rules = np.spec.ingress.as_mut().unwrap();
        rules[0].ports.as_mut().unwrap()[0].end_port = Some(1);
    } else {
        panic!("not a NetworkPolicy");
    }
    assert!(cluster.upsert(bad).is_err(), "invalid policy accepted");
    let third = enforce_logged(tn.node(), &set);
    assert_eq!(third.messages, 0, "{third:?}");
    check_all(&pods, &set);
    roundtrip(b"3rd!");
}
