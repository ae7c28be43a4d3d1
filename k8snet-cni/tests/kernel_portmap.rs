//! The portmap plugin in namespaces made by k8snet-testnet: a node with a
//! bridge (our bridge plugin, or the reference's), two pods on it, an
//! outside client behind a veth, and hostPort 8080 → pod p0 port 80. The
//! pod's server answers with the peer address it sees, so each probe shows
//! whether the connection arrived and whether it was masqueraded:
//! - from the outside client to the node address (not masqueraded);
//! - from p0 itself to the node address (hairpin: masqueraded);
//! - from p1, on the same bridge, to the node address (masqueraded);
//! - from the node to 127.0.0.1 (localhost: masqueraded, `route_localnet`);
//! - from the node to its own address;
//! - from p1 straight to p0's port 80 (no hostPort: never masqueraded).
//!
//! A UDP test shows that ADD deletes the conntrack entries of UDP flows to
//! a new hostPort made before the mapping existed.
//!
//! The differential test runs the reference portmap (Debian's
//! containernetworking-plugins, iptables) on one node and ours (nftables)
//! on another with the same configuration, and compares every probe, CHECK,
//! DEL and what is left after DEL.

#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use k8snet_cni::linux::{Bridge, Portmap};
use k8snet_testnet::{Netns, Testnet, plan};
use serde_json::{Value, json};

/// How long a probe waits to connect (a dropped SYN is a failure).
const CONNECT: Duration = Duration::from_secs(2);

/// A TCP server on `[::]:80` in a pod that writes the peer's address.
struct PeerServer {
    ns: Netns,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeerServer {
    fn start(ns: &Netns) -> Self {
        let listener = ns.run(|| TcpListener::bind("[::]:80")).unwrap().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for s in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(mut s) = s {
                    let peer = s.peer_addr().map(|a| a.ip().to_canonical());
                    let _ = s.write_all(peer.map(|p| p.to_string()).unwrap_or_default().as_bytes());
                }
            }
        });
        Self {
            ns: ns.clone(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = self.ns.run(|| TcpStream::connect("[::1]:80"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from `ns` to `to`: `ok <peer the pod saw>` or `failed`.
fn probe(ns: &Netns, to: SocketAddr) -> String {
    let got = ns
        .run(move || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&to, CONNECT)?;
            s.set_read_timeout(Some(CONNECT))?;
            let mut b = String::new();
            s.read_to_string(&mut b)?;
            Ok(b)
        })
        .unwrap();
    match got {
        Ok(peer) if !peer.is_empty() => format!("ok {peer}"),
        _ => "failed".into(),
    }
}

fn node_v4() -> IpAddr {
    plan::node_v4(1).addr()
}

fn node_v6() -> IpAddr {
    plan::node_v6(1).addr()
}

/// One node: a bridge network with pods p0 and p1 (CNI ADD), an outside
/// client, the node's own addresses.
struct Node {
    tn: Testnet,
    pods: Vec<Netns>,
    client: Netns,
    data: TempDir,
    ours: bool,
    bridged_nat: bool,
    /// The bridge plugin's results for p0 and p1.
    results: Vec<Value>,
}

impl Node {
    /// `bridged_nat`: whether bridged IP traffic passes the node's
    /// netfilter hooks (`net.bridge.bridge-nf-call-iptables`, on by default
    /// where `br_netfilter` is loaded, as Kubernetes requires). With it on,
    /// a pod reaching its own hostPort is bridged back out of its own port,
    /// so the bridge needs `hairpinMode` (as kubelet's hairpin-veth);
    /// with it off, that traffic is routed by the node instead.
    fn new(ours: bool, bridged_nat: bool) -> Self {
        let mut tn = Testnet::new(if ours { "pmo" } else { "pmr" }).unwrap();
        let v = if bridged_nat { "1" } else { "0" };
        for key in [
            "net.bridge.bridge-nf-call-iptables",
            "net.bridge.bridge-nf-call-ip6tables",
        ] {
            // Absent without br_netfilter, which is the same as off.
            if tn.node().read_sysctl(key).is_ok() {
                tn.node().sysctl(key, v).unwrap();
            } else {
                assert!(!bridged_nat, "{key} needs br_netfilter");
            }
        }
        let pods: Vec<Netns> = (0..2)
            .map(|i| tn.add_netns(&format!("p{i}")).unwrap())
            .collect();
        let client = tn
            .add_pod("c", &[plan::client_v4(2), plan::client_v6(2)])
            .unwrap();
        // The node end of the client's link holds the node's addresses and
        // the client's gateway.
        for a in [
            plan::node_v4(1),
            plan::node_v6(1),
            plan::client_v4(1),
            plan::client_v6(1),
        ] {
            client.add_node_addr(a).unwrap();
        }
        client.set_gateway(plan::client_v4(1).addr()).unwrap();
        client.set_gateway(plan::client_v6(1).addr()).unwrap();
        let mut n = Self {
            tn,
            pods,
            client: client.netns().clone(),
            data: TempDir::new(if ours { "pmo" } else { "pmr" }),
            ours,
            bridged_nat,
            results: Vec::new(),
        };
        for i in 0..2 {
            let r = n.bridge("ADD", i);
            assert!(r.ok(), "bridge ADD p{i} (ours: {ours}): {r:?}");
            n.results.push(r.stdout);
        }
        n
    }

    fn bridge_conf(&self) -> Value {
        let (bridge, ipam) = if self.ours {
            ("k8snet-bridge", "k8snet-host-local")
        } else {
            ("bridge", "host-local")
        };
        json!({
            "cniVersion": "1.0.0", "name": "kt", "type": bridge, "bridge": "kbr0", "isGateway": true,
            "hairpinMode": self.bridged_nat,
            "ipam": {"type": ipam, "dataDir": self.data.0,
                     "ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd00:18::/64"}]],
                     "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}
        })
    }

    fn bridge(&self, command: &str, pod: usize) -> Ran {
        let id = format!("ctr{pod}");
        let netns = self.pods[pod].path();
        if self.ours {
            let e = env(command, &id, Some(&netns), "/nonexistent");
            run_ours(self.tn.node(), &Bridge, &e, &self.bridge_conf())
        } else {
            let e = env(command, &id, Some(&netns), REF_DIR);
            run_ref(self.tn.node(), "bridge", &e, &self.bridge_conf())
        }
    }

    /// The portmap configuration for p0 (`extra` merged in), with
    /// `prevResult` when `prev`.
    fn portmap_conf(&self, extra: &Value, prev: bool) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0", "name": "kt",
            "type": if self.ours { "k8snet-portmap" } else { "portmap" },
            "runtimeConfig": {"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}
            ]}
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        if prev {
            c["prevResult"] = self.results[0].clone();
        }
        c
    }

    fn portmap(&self, command: &str, conf: &Value) -> Ran {
        let netns = self.pods[0].path();
        if self.ours {
            let e = env(command, "ctr0", Some(&netns), "/nonexistent");
            run_ours(self.tn.node(), &Portmap, &e, conf)
        } else {
            let e = env(command, "ctr0", Some(&netns), REF_DIR);
            run_ref(self.tn.node(), "portmap", &e, conf)
        }
    }

    /// Every probe, by name.
    fn probes(&self) -> BTreeMap<&'static str, String> {
        let hp4 = SocketAddr::new(node_v4(), 8080);
        let hp6 = SocketAddr::new(node_v6(), 8080);
        let node = self.tn.node();
        BTreeMap::from([
            ("outside v4", probe(&self.client, hp4)),
            ("outside v6", probe(&self.client, hp6)),
            ("hairpin v4", probe(&self.pods[0], hp4)),
            ("hairpin v6", probe(&self.pods[0], hp6)),
            ("neighbour v4", probe(&self.pods[1], hp4)),
            ("neighbour v6", probe(&self.pods[1], hp6)),
            (
                "localhost v4",
                probe(node, "127.0.0.1:8080".parse().unwrap()),
            ),
            ("node address v4", probe(node, hp4)),
            // Not through the hostPort: never masqueraded, even when the
            // bridged packet passes the node's postrouting hook.
            (
                "direct v4",
                probe(&self.pods[1], "198.18.0.2:80".parse().unwrap()),
            ),
            (
                "direct v6",
                probe(&self.pods[1], "[fd00:18::2]:80".parse().unwrap()),
            ),
        ])
    }

    fn route_localnet(&self) -> String {
        self.tn
            .node()
            .read_sysctl("net.ipv4.conf.kbr0.route_localnet")
            .unwrap()
    }

    /// What our table holds (element counts per set), or the reference's
    /// per-container iptables chains.
    fn leftovers(&self) -> Vec<String> {
        let node = self.tn.node();
        if self.ours {
            let text = node
                .cmd(&["nft", "list", "table", "inet", "k8snet-portmap"])
                .unwrap_or_default();
            text.lines()
                .filter(|l| l.contains("198.18.") || l.contains("fd00:18") || l.contains("kbr0"))
                .map(|l| l.trim().to_owned())
                .collect()
        } else {
            let mut out = Vec::new();
            for cmd in ["iptables", "ip6tables"] {
                let text = node.cmd(&[cmd, "-t", "nat", "-S"]).unwrap_or_default();
                out.extend(
                    text.lines()
                        .filter(|l| l.contains("CNI-DN-") || l.contains("198.18."))
                        .map(|l| format!("{cmd}: {l}")),
                );
            }
            out
        }
    }
}

fn ok(peer: &str) -> String {
    format!("ok {peer}")
}

/// What the probes give with `snat` on (the default): the outside client
/// and the node's own address keep their source; everything that would
/// otherwise miss the node's conntrack on the way back is masqueraded to
/// the bridge's address.
fn with_snat() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("outside v4", ok("198.19.200.2")),
        ("outside v6", ok("fd00:19:2::2")),
        ("hairpin v4", ok("198.18.0.1")),
        ("hairpin v6", ok("fd00:18::1")),
        ("neighbour v4", ok("198.18.0.1")),
        ("neighbour v6", ok("fd00:18::1")),
        ("localhost v4", ok("198.18.0.1")),
        ("node address v4", ok("198.19.128.1")),
        ("direct v4", ok("198.18.0.3")),
        ("direct v6", ok("fd00:18::3")),
    ])
}

/// With `snat: false` nothing is masqueraded: hairpin and localhost fail,
/// and so does a neighbour on the same bridge unless bridged traffic passes
/// the node's netfilter hooks (then the reply, bridged straight back to the
/// neighbour, is un-DNATed on the way and the pod sees the neighbour).
fn without_snat(bridged_nat: bool) -> BTreeMap<&'static str, String> {
    let mut m = with_snat();
    for k in ["hairpin v4", "hairpin v6", "localhost v4"] {
        m.insert(k, "failed".into());
    }
    if bridged_nat {
        m.insert("neighbour v4", ok("198.18.0.3"));
        m.insert("neighbour v6", ok("fd00:18::3"));
    } else {
        m.insert("neighbour v4", "failed".into());
        m.insert("neighbour v6", "failed".into());
    }
    m
}

/// After DEL, only the direct probes (not through the hostPort) succeed.
fn only_direct_works(got: &BTreeMap<&'static str, String>) -> bool {
    got.iter()
        .all(|(k, v)| k.starts_with("direct") != (v == "failed"))
}

/// Whether bridged traffic can pass netfilter here (`br_netfilter`).
fn br_netfilter() -> bool {
    std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists()
}

#[test]
fn hairpin_neighbour_and_localhost_need_the_masquerade() {
    k8snet_testnet::kernel_test!();
    let mut modes = vec![false];
    if br_netfilter() {
        modes.push(true);
    }
    for bridged_nat in modes {
        let n = Node::new(true, bridged_nat);
        let _server = PeerServer::start(&n.pods[0]);
        // Without snat (what the plugin did before): these fail.
        let off = n.portmap_conf(&json!({"snat": false}), true);
        let a = n.portmap("ADD", &off);
        assert!(a.ok(), "{a:?}");
        assert_eq!(
            n.probes(),
            without_snat(bridged_nat),
            "snat off, {bridged_nat}"
        );
        assert_eq!(
            n.route_localnet(),
            "0",
            "snat off leaves route_localnet alone"
        );
        assert!(n.portmap("CHECK", &off).ok());
        assert!(n.portmap("DEL", &off).ok());
        assert!(n.leftovers().is_empty(), "{:?}", n.leftovers());
        // With snat: every probe arrives.
        let on = n.portmap_conf(&json!({}), true);
        let a = n.portmap("ADD", &on);
        assert!(a.ok(), "{a:?}");
        assert_eq!(a.stdout, n.results[0], "prevResult passes through");
        assert_eq!(n.probes(), with_snat(), "snat on, {bridged_nat}");
        assert_eq!(n.route_localnet(), "1");
        let d = n.portmap("DEL", &on);
        assert!(d.ok(), "{d:?}");
        assert!(n.leftovers().is_empty(), "{:?}", n.leftovers());
        assert_eq!(n.route_localnet(), "0");
    }
}

#[test]
fn check_verifies_and_del_removes_everything() {
    k8snet_testnet::kernel_test!();
    let n = Node::new(true, false);
    let _server = PeerServer::start(&n.pods[0]);
    let on = n.portmap_conf(&json!({}), true);
    let a = n.portmap("ADD", &on);
    assert!(a.ok(), "{a:?}");
    assert_eq!(n.probes(), with_snat());
    let c = n.portmap("CHECK", &on);
    assert!(c.ok(), "{c:?}");

    // CHECK notices route_localnet turned off...
    n.tn.node()
        .sysctl("net.ipv4.conf.kbr0.route_localnet", "0")
        .unwrap();
    assert_eq!(n.probes()["localhost v4"], "failed");
    let c = n.portmap("CHECK", &on);
    assert!(
        !c.ok() && c.msg().contains("route_localnet is off"),
        "{c:?}"
    );
    // ... and a masquerade element removed behind its back.
    assert!(n.portmap("ADD", &on).ok(), "ADD again repairs");
    assert_eq!(n.route_localnet(), "1");
    assert!(n.portmap("CHECK", &on).ok());
    n.tn.node()
        .cmd(&[
            "nft",
            "delete",
            "element",
            "inet",
            "k8snet-portmap",
            "masq4",
            "{ 198.18.0.2 . 198.18.0.0/24 }",
        ])
        .unwrap();
    assert_eq!(n.probes()["hairpin v4"], "failed");
    let c = n.portmap("CHECK", &on);
    assert!(!c.ok() && c.msg().contains("masq4"), "{c:?}");

    // DEL removes every element and turns route_localnet back off; a
    // second DEL and a DEL without prevResult are no-ops.
    let d = n.portmap("DEL", &on);
    assert!(d.ok(), "{d:?}");
    assert!(n.leftovers().is_empty(), "{:?}", n.leftovers());
    assert_eq!(n.route_localnet(), "0");
    assert!(n.portmap("DEL", &on).ok());
    assert!(n.portmap("DEL", &n.portmap_conf(&json!({}), false)).ok());
    assert!(!n.portmap("CHECK", &on).ok(), "CHECK after DEL fails");
    assert!(only_direct_works(&n.probes()), "{:?}", n.probes());
}

#[test]
fn route_localnet_stays_while_needed_and_is_left_alone_if_it_was_on() {
    k8snet_testnet::kernel_test!();
    let n = Node::new(true, false);
    let _server = PeerServer::start(&n.pods[0]);
    let _server1 = PeerServer::start(&n.pods[1]);
    let p1 = |command: &str, prev: bool| {
        let mut c = json!({
            "cniVersion": "1.0.0", "name": "kt", "type": "k8snet-portmap",
            "runtimeConfig": {"portMappings": [{"hostPort": 8081, "containerPort": 80}]}
        });
        if prev {
            c["prevResult"] = n.results[1].clone();
        }
        let e = env(command, "ctr1", Some(&n.pods[1].path()), "/nonexistent");
        run_ours(n.tn.node(), &Portmap, &e, &c)
    };
    let on = n.portmap_conf(&json!({}), true);
    assert!(n.portmap("ADD", &on).ok());
    assert!(p1("ADD", true).ok());
    assert_eq!(n.route_localnet(), "1");
    // p0 goes; p1 still needs route_localnet.
    assert!(n.portmap("DEL", &on).ok());
    assert_eq!(n.route_localnet(), "1");
    assert_eq!(
        probe(n.tn.node(), "127.0.0.1:8081".parse().unwrap()),
        ok("198.18.0.1")
    );
    // p1 goes too (DEL without prevResult: found by its host port).
    assert!(p1("DEL", false).ok());
    assert_eq!(n.route_localnet(), "0");
    assert!(n.leftovers().is_empty(), "{:?}", n.leftovers());

    // Switched on by someone else before ADD: DEL leaves it on.
    n.tn.node()
        .sysctl("net.ipv4.conf.kbr0.route_localnet", "1")
        .unwrap();
    assert!(n.portmap("ADD", &on).ok());
    assert!(n.portmap("DEL", &on).ok());
    assert_eq!(n.route_localnet(), "1");
    assert!(n.leftovers().is_empty(), "{:?}", n.leftovers());
}

#[test]
fn same_behaviour_as_the_reference_portmap() {
    k8snet_testnet::kernel_test!();
    if !reference_available() || !std::path::Path::new(REF_DIR).join("portmap").exists() {
        eprintln!(
            "skipped: the reference plugins are not installed in {REF_DIR} (scripts/setup.sh installs containernetworking-plugins)"
        );
        return;
    }
    let mut cases = vec![
        (json!({}), false, with_snat()),
        (json!({"snat": false}), false, without_snat(false)),
    ];
    if br_netfilter() {
        cases.push((json!({}), true, with_snat()));
        cases.push((json!({"snat": false}), true, without_snat(true)));
    }
    for (extra, bridged_nat, want) in cases {
        let (r, o) = (Node::new(false, bridged_nat), Node::new(true, bridged_nat));
        let what = format!("{extra} bridged_nat={bridged_nat}");
        let _servers = (PeerServer::start(&r.pods[0]), PeerServer::start(&o.pods[0]));
        let (rc, oc) = (r.portmap_conf(&extra, true), o.portmap_conf(&extra, true));
        let (ra, oa) = (r.portmap("ADD", &rc), o.portmap("ADD", &oc));
        assert!(ra.ok() && oa.ok(), "{what}: ADD ref {ra:?} ours {oa:?}");
        assert_same(
            &normalize_result(&oa.stdout),
            &normalize_result(&ra.stdout),
            &format!("{what}: the passed-through result"),
        );
        let (rp, op) = (r.probes(), o.probes());
        assert_eq!(op, rp, "{what}: probes, ours (left) vs the reference");
        assert_eq!(op, want, "{what}: probes");
        // route_localnet on the bridge: on with snat, on both.
        assert_eq!(
            (o.route_localnet(), r.route_localnet()),
            if extra == json!({}) {
                ("1".into(), "1".into())
            } else {
                ("0".into(), "0".into())
            },
            "{what}: route_localnet"
        );
        let (rk, ok_) = (r.portmap("CHECK", &rc), o.portmap("CHECK", &oc));
        assert!(ok_.ok(), "{what}: CHECK ours {ok_:?}");
        // The reference 1.1.1 checks a dual-stack pod's IPv4 rules against
        // ip6tables too, so its CHECK fails with this message (its bug).
        assert!(
            rk.ok()
                || rk
                    .msg()
                    .starts_with("could not check ipv6 dnat: rule [[-p tcp --dport 8080"),
            "{what}: CHECK ref {rk:?}"
        );
        assert!(!r.leftovers().is_empty() && !o.leftovers().is_empty());

        let (rd, od) = (r.portmap("DEL", &rc), o.portmap("DEL", &oc));
        assert!(rd.ok() && od.ok(), "{what}: DEL ref {rd:?} ours {od:?}");
        // Nothing of the container is left on either side...
        assert_eq!(
            (o.leftovers(), r.leftovers()),
            (Vec::new(), Vec::new()),
            "{what}: left after DEL"
        );
        // ... and no probe gets through any more.
        let (rp, op) = (r.probes(), o.probes());
        assert_eq!(op, rp, "{what}: probes after DEL");
        assert!(only_direct_works(&op), "{what}: {op:?}");
        // One deliberate difference: the reference leaves route_localnet
        // on after DEL; ours turns off what it turned on.
        assert_eq!(o.route_localnet(), "0", "{what}: ours after DEL");
        if extra == json!({}) {
            assert_eq!(r.route_localnet(), "1", "the reference after DEL");
        }
        // DEL again succeeds on both.
        let (rd, od) = (r.portmap("DEL", &rc), o.portmap("DEL", &oc));
        assert!(
            rd.ok() && od.ok(),
            "{what}: second DEL ref {rd:?} ours {od:?}"
        );
    }
}

/// The conntrack entry of the UDP flow `client` → `hostport` in the node,
/// by family: where its reply comes from (the pod once DNATed, the node
/// itself if not), or `None` without one.
fn udp_flow_reply_source(n: &Node, client: SocketAddr, hostport: SocketAddr) -> Option<IpAddr> {
    use k8snet_cni::conntrack::{AF_INET, AF_INET6, UDP};
    let family = if client.is_ipv4() { AF_INET } else { AF_INET6 };
    let entries =
        n.tn.node()
            .run(move || k8snet_cni::linux::conntrack::entries(family))
            .unwrap()
            .unwrap();
    entries
        .iter()
        .find(|e| {
            e.orig.proto == UDP
                && (e.orig.src, e.orig.sport) == (client.ip(), client.port())
                && (e.orig.dst, e.orig.dport) == (hostport.ip(), hostport.port())
        })
        .map(|e| e.reply.expect("a dumped entry has a reply tuple").src)
}

/// A UDP client that kept sending to a hostPort before the pod's ADD made
/// a conntrack entry without DNAT; ADD deletes it (after installing the
/// mapping), so the client's next datagrams, from the same source port,
/// reach the pod instead of the node (IPv4 and IPv6).
#[test]
fn udp_client_sending_before_add_reaches_the_pod() {
    k8snet_testnet::kernel_test!();
    let n = Node::new(true, false);
    // Another pod's TCP hostPort is already mapped, so the node tracks
    // connections before p0's ADD, as a node running portmap does.
    let p1 = json!({
        "cniVersion": "1.0.0", "name": "kt", "type": "k8snet-portmap",
        "runtimeConfig": {"portMappings": [{"hostPort": 8081, "containerPort": 80}]},
        "prevResult": n.results[1].clone()
    });
    let e = env("ADD", "ctr1", Some(&n.pods[1].path()), "/nonexistent");
    let a = run_ours(n.tn.node(), &Portmap, &e, &p1);
    assert!(a.ok(), "{a:?}");

    // The pod's UDP server on port 80, both families.
    let server = n.pods[0]
        .run(|| UdpSocket::bind("[::]:80"))
        .unwrap()
        .unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let flows = [
        (
            SocketAddr::new(plan::client_v4(2).addr(), 40000),
            SocketAddr::new(node_v4(), 8080),
        ),
        (
            SocketAddr::new(plan::client_v6(2).addr(), 40000),
            SocketAddr::new(node_v6(), 8080),
        ),
    ];
    // Connected, so that the node's ICMP port unreachable comes back as
    // an error: the datagram has been through the node's conntrack.
    let clients: Vec<UdpSocket> = flows
        .iter()
        .map(|&(from, to)| {
            let c = n
                .client
                .run(move || -> std::io::Result<UdpSocket> {
                    let c = UdpSocket::bind(from)?;
                    c.connect(to)?;
                    Ok(c)
                })
                .unwrap()
                .unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        })
        .collect();
    // Before the pod exists: the datagram goes to the node (nobody listens
    // there: refused) and leaves an entry whose reply would come from the
    // node itself.
    let mut buf = [0u8; 64];
    for ((from, to), c) in flows.iter().zip(&clients) {
        c.send(b"early").unwrap();
        let refused = c.recv(&mut buf).map_err(|e| e.kind());
        assert_eq!(
            refused,
            Err(std::io::ErrorKind::ConnectionRefused),
            "{from} -> {to} before ADD"
        );
        assert_eq!(
            udp_flow_reply_source(&n, *from, *to),
            Some(to.ip()),
            "the stale entry of {from} -> {to}"
        );
    }

    // A UDP flow to a port that is not mapped: its entry stays.
    let other = (
        SocketAddr::new(plan::client_v4(2).addr(), 40001),
        SocketAddr::new(node_v4(), 9090),
    );
    let oc = n
        .client
        .run(move || -> std::io::Result<UdpSocket> {
            let c = UdpSocket::bind(other.0)?;
            c.connect(other.1)?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            Ok(c)
        })
        .unwrap()
        .unwrap();
    oc.send(b"other").unwrap();
    assert_eq!(
        oc.recv(&mut buf).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    let other_entry = || {
        let family = k8snet_cni::conntrack::AF_INET;
        n.tn.node()
            .run(move || k8snet_cni::linux::conntrack::entries(family))
            .unwrap()
            .unwrap()
            .into_iter()
            .find(|e| (e.orig.src, e.orig.sport) == (other.0.ip(), other.0.port()))
            .map(|e| e.id)
    };
    let other_before = other_entry();
    assert!(other_before.is_some(), "the entry of {other:?}");

    let conf = n.portmap_conf(
        &json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "udp"}
        ]}}),
        true,
    );
    let a = n.portmap("ADD", &conf);
    assert!(a.ok(), "{a:?}");
    assert_eq!(a.stdout, n.results[0], "prevResult passes through");
    let pod_ips = [
        "198.18.0.2".parse::<IpAddr>().unwrap(),
        "fd00:18::2".parse().unwrap(),
    ];
    // The same sockets (same source ports) keep sending: the pod gets
    // their datagrams, from the clients' own addresses, and their entries
    // now reply from the pod.
    let mut got = Vec::new();
    let mut want = Vec::new();
    for (((from, to), c), pod) in flows.iter().zip(&clients).zip(pod_ips) {
        let mut received = format!("{from} -> {to}: nothing");
        for _ in 0..25 {
            // Refused (a late ICMP error) only while a stale entry still
            // sends the datagrams to the node.
            if let Err(e) = c.send(b"late") {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
            }
            if let Ok((len, peer)) = server.recv_from(&mut buf) {
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                received = format!("{from} -> {to}: {:?} from {peer}", &buf[..len]);
                break;
            }
        }
        got.push((received, udp_flow_reply_source(&n, *from, *to)));
        want.push((
            format!("{from} -> {to}: {:?} from {from}", b"late"),
            Some(pod),
        ));
    }
    assert_eq!(got, want);
    assert_eq!(
        other_entry(),
        other_before,
        "the unmapped port's entry stays"
    );
    assert!(n.portmap("CHECK", &conf).ok());
    assert!(n.portmap("DEL", &conf).ok());
}
