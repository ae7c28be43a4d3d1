//! Real traffic over IPv4 and IPv6, TCP, UDP and (where the kernel has it)
//! SCTP, between routed pod namespaces and outside-client namespaces,
//! filtered by the ruleset `k8snet_policy::enforce` programs in the node
//! namespace: for every probe the outcome equals `PolicySet::verdict` of
//! the same flow. Outside clients (198.19.200.0/24, fd00:19:2::/64, and a
//! second node's address) reach a pod only through an `ipBlock` (its
//! `except` keeps one client out), a pod's egress to a client is denied by
//! an egress `ipBlock` policy, and the pods' own node reaches them even
//! where outsiders may not.
//!
//! SCTP is probed only when `socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)`
//! works here (the kernel's `sctp` module); otherwise those probes are
//! skipped with the reason printed, also under `CI=true`.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod routed;

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use k8snet_model::{Cluster, Manifests, Protocol};
use k8snet_nft::Nft;
use k8snet_policy::{Flow, Options, PolicySet, RulesetOptions, Verdict, enforce};
use k8snet_testnet::{Netns, Testnet, kernel_test};
use socket2::{Domain, Socket, Type};

/// An endpoint of the test: a pod (with its namespace and app label) or an
/// outside client (not in the cluster), its IPv4 and IPv6 addresses.
struct Spec {
    name: &'static str,
    /// `Some((namespace, app))` for a pod.
    pod: Option<(&'static str, &'static str)>,
    v4: &'static str,
    v6: &'static str,
}

const ENDPOINTS: [Spec; 7] = [
    Spec {
        name: "web",
        pod: Some(("shop", "web")),
        v4: "198.18.0.2",
        v6: "fd00:18::2",
    },
    Spec {
        name: "api",
        pod: Some(("shop", "api")),
        v4: "198.18.0.3",
        v6: "fd00:18::3",
    },
    Spec {
        name: "cli",
        pod: Some(("lab", "cli")),
        v4: "198.18.0.5",
        v6: "fd00:18::5",
    },
    Spec {
        name: "mon",
        pod: Some(("lab", "mon")),
        v4: "198.18.0.6",
        v6: "fd00:18::6",
    },
    // Outside clients: one inside web's ipBlocks, one in their `except`.
    Spec {
        name: "ext1",
        pod: None,
        v4: "198.19.200.5",
        v6: "fd00:19:2::5",
    },
    Spec {
        name: "ext2",
        pod: None,
        v4: "198.19.200.200",
        v6: "fd00:19:2::c8",
    },
    // Another node of the cluster (not the pods' node).
    Spec {
        name: "node2",
        pod: None,
        v4: "198.19.128.2",
        v6: "fd00:19:1::2",
    },
];

/// The pods' node: its address sits on the node namespace's `lo`.
const NODE_V4: &str = "198.19.128.1";

const TCP_PORTS: [u16; 2] = [80, 8080];
const UDP_PORT: u16 = 53;
const SCTP_PORT: u16 = 9003;

const POLICIES: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{port: 80}, {port: 53, protocol: UDP}, {port: 9003, protocol: SCTP}]
  - from: [{ipBlock: {cidr: 198.19.200.0/24, except: [198.19.200.128/25]}}]
    ports: [{port: 80}, {port: 9003, protocol: SCTP}]
  - from: [{ipBlock: {cidr: 'fd00:19:2::/64', except: ['fd00:19:2::80/121']}}]
    ports: [{port: 80}, {port: 53, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: mon-egress, namespace: lab}
spec:
  podSelector: {matchLabels: {app: mon}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {team: shop}}}]
  - to:
    - ipBlock: {cidr: 0.0.0.0/0, except: [198.19.200.0/24]}
    - ipBlock: {cidr: '::/0', except: ['fd00:19:2::/64']}
  - to: [{ipBlock: {cidr: 198.19.200.128/25}}, {ipBlock: {cidr: 'fd00:19:2::80/121'}}]
    ports: [{port: 8080}, {port: 9003, protocol: SCTP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{podSelector: {}}, {namespaceSelector: {matchLabels: {team: lab}}}]
    ports: [{port: 8080}, {port: 53, protocol: UDP}, {port: 9003, protocol: SCTP}]
";

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cluster() -> Cluster {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: shop}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: lab, labels: {team: lab}}\n",
    );
    for e in &ENDPOINTS {
        let Some((ns, app)) = e.pod else { continue };
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {}, namespace: {ns}, labels: {{app: {app}}}}}\n\
             status: {{hostIP: {NODE_V4}, podIPs: [{{ip: {}}}, {{ip: '{}'}}]}}\n",
            e.name, e.v4, e.v6
        ));
    }
    yaml.push_str("---\n");
    yaml.push_str(POLICIES);
    let mut m = Manifests::new();
    m.load_str("cluster.yaml", &yaml);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    Cluster::from_manifests(&m)
}

/// A namespace routed to the node (see [`routed::routed_ns`]) with both
/// of `e`'s addresses, `gw4`/`gw6` as its gateways.
fn routed(tn: &mut Testnet, e: &Spec, gw4: &str, gw6: &str) -> Netns {
    let addrs = [addr(e.v4), addr(e.v6)];
    routed::routed_ns(tn, e.name, &addrs, &[addr(gw4), addr(gw6)])
        .netns()
        .clone()
}

fn sctp() -> socket2::Protocol {
    socket2::Protocol::from(132)
}

fn domain(ip: IpAddr) -> Domain {
    if ip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

/// Echoes what a stream connection sends until it closes.
fn echo_stream(mut c: impl Read + Write + Send + 'static) {
    thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 || c.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
}

fn stream_listener(ip: IpAddr, port: u16, protocol: Option<socket2::Protocol>) -> Socket {
    let l = Socket::new(domain(ip), Type::STREAM, protocol).unwrap();
    l.set_reuse_address(true).unwrap();
    l.bind(&SocketAddr::from((ip, port)).into()).unwrap();
    l.listen(64).unwrap();
    l
}

/// Echo servers in `ns` on both addresses: TCP on every probe port, UDP,
/// and SCTP when `with_sctp`.
fn serve(ns: &Netns, e: &Spec, with_sctp: bool) {
    let ips = [addr(e.v4), addr(e.v6)];
    let (streams, udp) = ns
        .run(move || {
            let mut streams = Vec::new();
            let mut udp = Vec::new();
            for ip in ips {
                for port in TCP_PORTS {
                    streams.push(stream_listener(ip, port, None));
                }
                if with_sctp {
                    streams.push(stream_listener(ip, SCTP_PORT, Some(sctp())));
                }
                udp.push(UdpSocket::bind((ip, UDP_PORT)).unwrap());
            }
            (streams, udp)
        })
        .unwrap();
    for l in streams {
        thread::spawn(move || {
            while let Ok((c, _)) = l.accept() {
                echo_stream(c);
            }
        });
    }
    for u in udp {
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = u.recv_from(&mut buf) {
                let _ = u.send_to(&buf[..n], from);
            }
        });
    }
}

/// A TCP or SCTP connection from `src` to `dst` that echoes: allowed;
/// one whose handshake times out: denied (anything else fails the test).
fn stream_probe(
    protocol: Option<socket2::Protocol>,
    src: IpAddr,
    dst: SocketAddr,
    wait: Duration,
) -> Verdict {
    let s = Socket::new(domain(src), Type::STREAM, protocol).unwrap();
    s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    match s.connect_timeout(&dst.into(), wait) {
        Ok(()) => {
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut s = &s;
            s.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf)
                .unwrap_or_else(|e| panic!("{src} -> {dst}: no echo: {e}"));
            assert_eq!(&buf, b"ping");
            Verdict::Allow
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Verdict::Deny
        }
        Err(e) => panic!("{src} -> {dst}: unexpected {e}"),
    }
}

/// The real outcome of one probe; a denial is retried once with a long
/// wait when `verdict()` allows it (a slow first packet: neighbour
/// discovery), so a mismatch is never a timing artefact of an allow.
fn probe(src: IpAddr, dst: IpAddr, protocol: Protocol, port: u16, want: Verdict) -> Verdict {
    let to = SocketAddr::from((dst, port));
    let once = |wait| match protocol {
        Protocol::Udp => routed::udp_probe(src, to, wait),
        Protocol::Sctp => stream_probe(Some(sctp()), src, to, wait),
        _ => stream_probe(None, src, to, wait),
    };
    let got = once(Duration::from_millis(300));
    if got != want && want == Verdict::Allow {
        return once(Duration::from_secs(3));
    }
    got
}

/// One probe's record: (flow text, verdict(), real outcome).
type Outcome = (String, Verdict, Verdict);

/// Every probe from `src` (its namespace, its addresses) to every other
/// endpoint of the same family, on every protocol and port.
fn probes_from(ns: &Netns, src: &Spec, set: &PolicySet, with_sctp: bool) -> Vec<Outcome> {
    let mut protocols: Vec<(Protocol, u16)> =
        TCP_PORTS.iter().map(|&p| (Protocol::Tcp, p)).collect();
    protocols.push((Protocol::Udp, UDP_PORT));
    if with_sctp {
        protocols.push((Protocol::Sctp, SCTP_PORT));
    }
    let pairs: Vec<(IpAddr, IpAddr)> = ENDPOINTS
        .iter()
        .filter(|d| d.name != src.name)
        .flat_map(|d| [(addr(src.v4), addr(d.v4)), (addr(src.v6), addr(d.v6))])
        .collect();
    ns.run(move || {
        let mut out = Vec::new();
        for (s, d) in pairs {
            for &(proto, port) in &protocols {
                let flow = Flow::new(s, d, proto, port);
                let want = set.verdict(&flow);
                let got = probe(s, d, proto, port, want);
                out.push((flow.to_string(), want, got));
            }
        }
        out
    })
    .unwrap()
}

/// All probes, sources in parallel, each from its own namespace.
fn check_all(namespaces: &[Netns], set: &PolicySet, with_sctp: bool) -> Vec<Outcome> {
    let all: Vec<Outcome> = thread::scope(|s| {
        let handles: Vec<_> = namespaces
            .iter()
            .zip(&ENDPOINTS)
            .map(|(ns, e)| s.spawn(move || probes_from(ns, e, set, with_sctp)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let wrong: Vec<_> = all.iter().filter(|(_, w, g)| w != g).collect();
    assert!(wrong.is_empty(), "real outcome != verdict(): {wrong:#?}");
    all
}

/// The verdict `check_all` recorded for a flow (which it also proved
/// the kernel gives).
fn recorded(all: &[Outcome], src: &str, dst: &str, protocol: Protocol, port: u16) -> Verdict {
    let flow = Flow::new(addr(src), addr(dst), protocol, port).to_string();
    all.iter()
        .find(|(f, _, _)| *f == flow)
        .unwrap_or_else(|| panic!("{flow} was not probed"))
        .2
}

/// Whether SCTP sockets work here (`None`) or why not.
fn sctp_unavailable(node: &Netns) -> Option<String> {
    node.run(|| Socket::new(Domain::IPV4, Type::STREAM, Some(sctp())).err())
        .unwrap()
        .map(|e| e.to_string())
}

#[test]
fn outside_clients_ipv6_and_sctp_match_verdicts() {
    kernel_test!();
    let mut tn = Testnet::new("polext").unwrap();
    tn.enable_forwarding().unwrap();
    tn.node()
        .ip(&["addr", "add", &format!("{NODE_V4}/32"), "dev", "lo"])
        .unwrap();
    let with_sctp = match sctp_unavailable(tn.node()) {
        None => true,
        Some(why) => {
            println!(
                "skipped the SCTP probes: socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) fails: {why}"
            );
            false
        }
    };
    let namespaces: Vec<Netns> = ENDPOINTS
        .iter()
        .map(|e| match (e.pod, e.v4.starts_with("198.19.128.")) {
            (Some(_), _) => routed(&mut tn, e, "198.18.0.1", "fd00:18::1"),
            (None, false) => routed(&mut tn, e, "198.19.200.1", "fd00:19:2::1"),
            (None, true) => routed(&mut tn, e, "198.19.128.254", "fd00:19:1::fe"),
        })
        .collect();
    for (ns, e) in namespaces.iter().zip(&ENDPOINTS) {
        serve(ns, e, with_sctp);
    }

    // Routing works both ways for both families: with no policy and no
    // ruleset every probe connects.
    let open = PolicySet::compile(&Cluster::new(), &Options::default());
    let all = check_all(&namespaces, &open, with_sctp);
    assert!(all.iter().all(|(_, _, got)| *got == Verdict::Allow));

    let set = PolicySet::compile(&cluster(), &Options::default());
    let enforce_in = |node: &Netns| {
        node.run(|| {
            let mut nft = Nft::new().expect("netlink socket");
            enforce(&mut nft, &set, &RulesetOptions::default().with_log(true)).expect("enforce")
        })
        .unwrap()
    };
    assert!(enforce_in(tn.node()).messages > 0);
    // The interval maps read back exactly as written: enforcing the same
    // set again sends nothing.
    let again = enforce_in(tn.node());
    assert_eq!(again.messages, 0, "{again:?}");
    let rendered = tn
        .node()
        .cmd(&["nft", "list", "table", "inet", "k8snet-policy"])
        .unwrap();
    assert!(rendered.contains("flags interval"), "{rendered}");
    // Both directions, both families, dispatched per pod address.
    assert!(rendered.contains("ip6 daddr vmap @in6"), "{rendered}");
    assert!(rendered.contains("ip saddr vmap @eg4"), "{rendered}");
    assert!(rendered.contains("fd00:18::2 : goto t-"), "{rendered}");
    // The SCTP port rules are in the kernel whether or not it has SCTP
    // sockets (9003 is an SCTP port only here).
    assert!(
        rendered.contains("sctp") && rendered.contains("9003"),
        "{rendered}"
    );

    let all = check_all(&namespaces, &set, with_sctp);
    let allowed = all.iter().filter(|(_, w, _)| *w == Verdict::Allow).count();
    println!(
        "{allowed} of {} probes allowed, every one as verdict() says (SCTP {})",
        all.len(),
        if with_sctp { "probed" } else { "skipped" }
    );

    // The cases this test is about, each proved by the kernel above.
    let tcp = Protocol::Tcp;
    let cases = [
        // An outside client reaches web only through the ipBlock...
        ("198.19.200.5", "198.18.0.2", tcp, 80, Verdict::Allow),
        ("fd00:19:2::5", "fd00:18::2", tcp, 80, Verdict::Allow),
        (
            "fd00:19:2::5",
            "fd00:18::2",
            Protocol::Udp,
            53,
            Verdict::Allow,
        ),
        // ... on the ports it names ...
        ("198.19.200.5", "198.18.0.2", tcp, 8080, Verdict::Deny),
        ("fd00:19:2::5", "fd00:18::2", tcp, 8080, Verdict::Deny),
        // ... not from its `except` ...
        ("198.19.200.200", "198.18.0.2", tcp, 80, Verdict::Deny),
        ("fd00:19:2::c8", "fd00:18::2", tcp, 80, Verdict::Deny),
        (
            "fd00:19:2::c8",
            "fd00:18::2",
            Protocol::Udp,
            53,
            Verdict::Deny,
        ),
        // ... nor from another node.
        ("198.19.128.2", "198.18.0.2", tcp, 80, Verdict::Deny),
        // api admits pods only; outside clients are not pods.
        ("198.19.200.5", "198.18.0.3", tcp, 8080, Verdict::Deny),
        ("198.18.0.5", "198.18.0.3", tcp, 8080, Verdict::Allow),
        ("fd00:18::5", "fd00:18::3", tcp, 8080, Verdict::Allow),
        ("fd00:18::5", "fd00:18::3", tcp, 80, Verdict::Deny),
        (
            "fd00:18::5",
            "fd00:18::3",
            Protocol::Udp,
            53,
            Verdict::Allow,
        ),
        ("fd00:18::6", "fd00:18::2", Protocol::Udp, 53, Verdict::Deny),
        (
            "fd00:18::3",
            "fd00:18::2",
            Protocol::Udp,
            53,
            Verdict::Allow,
        ),
        // mon's egress to the outside clients: denied...
        ("198.18.0.6", "198.19.200.5", tcp, 80, Verdict::Deny),
        ("fd00:18::6", "fd00:19:2::5", tcp, 80, Verdict::Deny),
        (
            "fd00:18::6",
            "fd00:19:2::5",
            Protocol::Udp,
            53,
            Verdict::Deny,
        ),
        // ... but for 8080 to the `except` half, and to anything else.
        ("198.18.0.6", "198.19.200.200", tcp, 8080, Verdict::Allow),
        ("198.18.0.6", "198.19.200.200", tcp, 80, Verdict::Deny),
        ("fd00:18::6", "fd00:19:2::c8", tcp, 8080, Verdict::Allow),
        ("198.18.0.6", "198.19.128.2", tcp, 80, Verdict::Allow),
        // cli has no policy: open both ways.
        ("198.18.0.5", "198.19.200.200", tcp, 80, Verdict::Allow),
        ("fd00:19:2::c8", "fd00:18::5", tcp, 80, Verdict::Allow),
    ];
    for (src, dst, protocol, port, want) in cases {
        assert_eq!(
            recorded(&all, src, dst, protocol, port),
            want,
            "{src} -> {dst} {protocol} {port}"
        );
    }
    if with_sctp {
        for (src, dst, want) in [
            ("198.18.0.3", "198.18.0.2", Verdict::Allow),
            ("198.18.0.5", "198.18.0.2", Verdict::Deny),
            ("198.19.200.5", "198.18.0.2", Verdict::Allow),
            ("198.19.200.200", "198.18.0.2", Verdict::Deny),
            ("fd00:19:2::5", "fd00:18::2", Verdict::Deny),
            ("198.18.0.6", "198.19.200.5", Verdict::Deny),
            ("198.18.0.6", "198.19.200.200", Verdict::Allow),
        ] {
            assert_eq!(
                recorded(&all, src, dst, Protocol::Sctp, SCTP_PORT),
                want,
                "{src} -> {dst} SCTP"
            );
        }
    }

    // The pods' own node (its address on the node namespace's lo) reaches
    // them even on ports outsiders may not use: node-local traffic is
    // exempt (and never crosses the forward hook).
    let node = addr(NODE_V4);
    let node_probes: Vec<(IpAddr, u16)> = ENDPOINTS
        .iter()
        .filter(|e| e.pod.is_some())
        .flat_map(|e| TCP_PORTS.map(|p| (addr(e.v4), p)))
        .collect();
    let results = tn
        .node()
        .run(|| {
            node_probes
                .iter()
                .map(|&(dst, port)| {
                    let want = set.verdict(&Flow::new(node, dst, Protocol::Tcp, port));
                    (dst, port, want, probe(node, dst, Protocol::Tcp, port, want))
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
    for (dst, port, want, got) in results {
        assert_eq!(want, Verdict::Allow, "node -> {dst}:{port}");
        assert_eq!(got, want, "node -> {dst}:{port}");
    }
}
