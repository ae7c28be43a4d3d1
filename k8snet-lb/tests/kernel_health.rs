//! The `healthCheckNodePort` server in a node namespace: with no address
//! list it answers on every address of the node, IPv4 and IPv6; with one it
//! answers only there. The load balancer's probes come from an outside
//! client namespace.
#![cfg(all(feature = "linux", target_os = "linux"))]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use k8snet_lb::health::{ProxyHealth, ServiceHealthServer};
use k8snet_lb::plan::HealthCheck;
use k8snet_testnet::{Netns, Testnet, kernel_test, plan};

/// `GET /` from `ns` to `to`: the status code, or the connect error.
fn probe(ns: &Netns, to: SocketAddr) -> std::io::Result<u16> {
    ns.run(|| {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        out.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no status in {out:?}")))
    })
    .expect("entering the namespace")
}

fn check(port: u16) -> HealthCheck {
    HealthCheck {
        namespace: "default".into(),
        name: "web".into(),
        node_port: port,
        local_endpoints: 1,
    }
}

#[test]
fn health_check_ports_listen_on_all_node_addresses_or_the_given_ones() {
    kernel_test!();
    let mut tn = Testnet::new("lbhealth").unwrap();
    let outside = tn
        .add_pod("lb", &[plan::client_v4(2), plan::client_v6(2)])
        .unwrap();
    for a in [
        plan::client_v4(1),
        plan::client_v6(1),
        plan::node_v4(1),
        plan::node_v6(1),
    ] {
        outside.add_node_addr(a).unwrap();
    }
    outside.set_gateway(plan::client_v4(1).addr()).unwrap();
    outside.set_gateway(plan::client_v6(1).addr()).unwrap();
    let node_v4 = plan::node_v4(1).addr();
    let node_v6 = plan::node_v6(1).addr();
    let health = Arc::new(ProxyHealth::default());

    // Every address: both families, from outside and on the node's own
    // loopback.
    let all = tn
        .node()
        .run(|| {
            let s = ServiceHealthServer::new(Vec::new(), health.clone()).unwrap();
            assert!(s.sync(&[check(31_000)]).is_empty());
            s
        })
        .unwrap();
    let out = outside.netns();
    for ip in [node_v4, node_v6] {
        assert_eq!(
            probe(out, SocketAddr::new(ip, 31_000)).unwrap(),
            200,
            "{ip}"
        );
    }
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(probe(tn.node(), SocketAddr::new(lo, 31_000)).unwrap(), 200);
    assert_eq!(
        probe(tn.node(), "[::1]:31000".parse().unwrap()).unwrap(),
        200
    );

    // Only the node's IPv4 address.
    let one = tn
        .node()
        .run(|| {
            let s = ServiceHealthServer::new(vec![node_v4], health.clone()).unwrap();
            assert!(s.sync(&[check(31_001)]).is_empty());
            s
        })
        .unwrap();
    assert_eq!(
        one.local_addrs("default", "web"),
        [SocketAddr::new(node_v4, 31_001)]
    );
    assert_eq!(probe(out, SocketAddr::new(node_v4, 31_001)).unwrap(), 200);
    for to in [
        SocketAddr::new(node_v6, 31_001),
        SocketAddr::new(lo, 31_001),
    ] {
        let ns = if to.ip() == lo { tn.node() } else { out };
        let e = probe(ns, to).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{to}: {e}");
    }

    // The Service goes: refused everywhere.
    assert!(all.sync(&[]).is_empty());
    for ip in [node_v4, node_v6] {
        let e = probe(out, SocketAddr::new(ip, 31_000)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{ip}: {e}");
    }
    drop(one);
    let e = probe(out, SocketAddr::new(node_v4, 31_001)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
}
