//! What the kernel tests with routed pods share: pods on 198.18.0.0/24
//! routed through the node namespace, echo servers, TCP and UDP probes
//! whose real outcome is compared with an expected verdict, and
//! enforcement inside the node namespace.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use k8snet_model::{Manifests, Object, Protocol};
use k8snet_nft::Nft;
use k8snet_policy::{Flow, PolicySet, RulesetOptions, Verdict, enforce};
use k8snet_testnet::{Netns, Pod, Testnet};

/// A pod address: `198.18.0.<host>`.
pub(crate) fn ip(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, host)
}

/// The one object of a YAML document.
pub(crate) fn load_one(yaml: &str) -> Object {
    let mut m = Manifests::new();
    m.load_str("one.yaml", yaml);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    m.objects()[0].object.clone()
}

/// A routed pod: `198.18.0.<host>/32` on eth0, default route via
/// 198.18.0.1 (an address of the node's veth end), a /32 route to it in
/// the node.
pub(crate) fn routed_pod(tn: &mut Testnet, name: &str, host: u8) -> Pod {
    let addr = format!("{}/32", ip(host)).parse().unwrap();
    let pod = tn.add_pod(name, &[addr]).unwrap();
    pod.add_node_addr("198.18.0.1/32".parse().unwrap()).unwrap();
    pod.netns()
        .ip(&["-4", "route", "add", "198.18.0.1/32", "dev", "eth0"])
        .unwrap();
    pod.set_gateway(IpAddr::V4(ip(1))).unwrap();
    let dst = format!("{}/32", ip(host));
    tn.node()
        .ip(&["-4", "route", "add", &dst, "dev", pod.node_ifname()])
        .unwrap();
    pod
}

/// A namespace joined to the node by a veth and routed (no bridge), for
/// any mix of families: each of `addrs` as a host address (/32, /128) on
/// eth0, each of `gateways` (node-side addresses, one per family) on the
/// node's end and as the pod's default route, and a host route to each
/// address in the node.
pub(crate) fn routed_ns(
    tn: &mut Testnet,
    name: &str,
    addrs: &[IpAddr],
    gateways: &[IpAddr],
) -> Pod {
    let host = |a: &IpAddr| format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 });
    let family = |a: &IpAddr| if a.is_ipv4() { "-4" } else { "-6" };
    let nets: Vec<_> = addrs.iter().map(|a| host(a).parse().unwrap()).collect();
    let pod = tn.add_pod(name, &nets).unwrap();
    for gw in gateways {
        pod.add_node_addr(host(gw).parse().unwrap()).unwrap();
        pod.netns()
            .ip(&[family(gw), "route", "add", &host(gw), "dev", "eth0"])
            .unwrap();
        pod.set_gateway(*gw).unwrap();
    }
    for a in addrs {
        tn.node()
            .ip(&[
                family(a),
                "route",
                "add",
                &host(a),
                "dev",
                pod.node_ifname(),
            ])
            .unwrap();
    }
    pod
}

/// TCP echo servers on `tcp_ports` and a UDP echo server on `udp_port`,
/// bound to `a` inside `ns`.
pub(crate) fn serve(ns: &Netns, a: Ipv4Addr, tcp_ports: &'static [u16], udp_port: u16) {
    let (tcp, udp) = ns
        .run(move || {
            let tcp: Vec<TcpListener> = tcp_ports
                .iter()
                .map(|&p| TcpListener::bind((a, p)).unwrap())
                .collect();
            let udp = UdpSocket::bind((a, udp_port)).unwrap();
            (tcp, udp)
        })
        .unwrap();
    for l in tcp {
        thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { continue };
                thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
}

/// A TCP connection and an echoed ping: Allow; a timeout: Deny.
pub(crate) fn tcp_probe(dst: SocketAddr, wait: Duration) -> Verdict {
    match TcpStream::connect_timeout(&dst, wait) {
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            Verdict::Allow
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Verdict::Deny,
        Err(e) => panic!("TCP {dst}: unexpected {e}"),
    }
}

/// A UDP ping from `src` echoed by `dst`: Allow; no answer: Deny.
pub(crate) fn udp_probe(src: impl Into<IpAddr>, dst: SocketAddr, wait: Duration) -> Verdict {
    let src = src.into();
    let s = UdpSocket::bind((src, 0)).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(b"ping", dst).unwrap();
    let mut buf = [0u8; 8];
    match s.recv_from(&mut buf) {
        Ok((4, from)) if from == dst => Verdict::Allow,
        Ok(other) => panic!("UDP {src} -> {dst}: unexpected reply {other:?}"),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Verdict::Deny
        }
        Err(e) => panic!("UDP {src} -> {dst}: unexpected {e}"),
    }
}

/// One probe's description (`src -> dst proto port`), the expected
/// verdict and the real outcome.
pub(crate) type Outcome = (String, Verdict, Verdict);

/// The probe ports: every TCP port and the UDP port.
pub(crate) struct Ports {
    /// TCP ports probed (each served by [`serve`]).
    pub(crate) tcp: &'static [u16],
    /// The UDP port probed.
    pub(crate) udp: u16,
}

/// Probes every destination in `dsts` on every port from every pod (a pod
/// and its address), the sources in parallel, each from its own
/// namespace; `expect` gives the outcome each probe must have. Asserts
/// that every real outcome is the expected one and returns them all.
pub(crate) fn probe_all(
    pods: &[(&Pod, Ipv4Addr)],
    dsts: &[Ipv4Addr],
    ports: &Ports,
    expect: &(dyn Fn(Ipv4Addr, Ipv4Addr, Protocol, u16) -> Verdict + Sync),
) -> Vec<Outcome> {
    let results: Vec<Vec<Outcome>> = thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|&(pod, src)| {
                s.spawn(move || {
                    pod.netns()
                        .run(move || {
                            let mut out = Vec::new();
                            for &dst in dsts {
                                if dst == src {
                                    continue;
                                }
                                let mut probes: Vec<(Protocol, u16)> =
                                    ports.tcp.iter().map(|&p| (Protocol::Tcp, p)).collect();
                                probes.push((Protocol::Udp, ports.udp));
                                for (proto, port) in probes {
                                    let want = expect(src, dst, proto, port);
                                    let addr = SocketAddr::from((dst, port));
                                    let probe = |wait| match proto {
                                        Protocol::Udp => udp_probe(src, addr, wait),
                                        _ => tcp_probe(addr, wait),
                                    };
                                    let mut got = probe(Duration::from_millis(300));
                                    if got != want && want == Verdict::Allow {
                                        // A slow first packet (neighbour resolution).
                                        got = probe(Duration::from_secs(3));
                                    }
                                    out.push((format!("{src} -> {dst} {proto} {port}"), want, got));
                                }
                            }
                            out
                        })
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<Outcome> = results.into_iter().flatten().collect();
    let wrong: Vec<_> = all.iter().filter(|(_, w, g)| w != g).collect();
    assert!(wrong.is_empty(), "real outcome != expected: {wrong:#?}");
    all
}

/// `set.verdict()` for IPv4 flows, as [`probe_all`]'s expectation.
pub(crate) fn verdict_of(
    set: &PolicySet,
) -> impl Fn(Ipv4Addr, Ipv4Addr, Protocol, u16) -> Verdict + Sync {
    move |s, d, p, port| set.verdict(&Flow::new(IpAddr::V4(s), IpAddr::V4(d), p, port))
}

/// `enforce` inside the node namespace.
pub(crate) fn enforce_in(
    node: &Netns,
    set: &PolicySet,
    options: &RulesetOptions,
) -> k8snet_nft::ApplyStats {
    node.run(|| {
        let mut nft = Nft::new().expect("netlink socket");
        enforce(&mut nft, set, options).expect("enforce")
    })
    .unwrap()
}
