//! `dig` against the server on 127.0.0.1 and ::1, over UDP and TCP: every
//! record kind and every negative case, truncation, case echo, a zone
//! swap under way, and the TCP connection limit.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Dig, TestServer, dig};
use k8snet_dns::server::{Server, ServerConfig};
use k8snet_dns::{LiveZone, Zone, ZoneConfig};

/// The four ways to reach the server.
fn ways(s: &TestServer) -> Vec<(SocketAddr, &'static [&'static str])> {
    vec![
        (s.v4, &[]),
        (s.v4, &["+tcp"]),
        (s.v6, &[]),
        (s.v6, &["+tcp"]),
    ]
}

fn check(d: &Dig, status: &str, data: &[&str], ctx: &str) {
    assert_eq!(d.status, status, "{ctx}\n{}", d.text);
    assert_eq!(d.data(), data, "{ctx}\n{}", d.text);
    assert!(
        d.flags.contains(&"aa".to_string()) || status == "REFUSED",
        "{ctx}\n{}",
        d.text
    );
}

fn negative(d: &Dig, status: &str, ctx: &str) {
    check(d, status, &[], ctx);
    assert_eq!(d.authority.len(), 1, "{ctx}\n{}", d.text);
    assert!(
        d.authority[0].contains("SOA\tns.dns.cluster.local. hostmaster.cluster.local."),
        "{ctx}\n{}",
        d.text
    );
}

#[test]
fn every_record_kind_over_udp_and_tcp_ipv4_and_ipv6() {
    let s = TestServer::fixture();
    let z = "testns.svc.cluster.local";
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        (format!("svc1.{z}"), "A", vec!["198.19.0.1"]),
        (format!("svc6.{z}"), "AAAA", vec!["fd00:19::1"]),
        (format!("svc-dual.{z}"), "A", vec!["198.19.0.3"]),
        (format!("svc-dual.{z}"), "AAAA", vec!["fd00:19::3"]),
        (
            format!("_http._tcp.svc1.{z}"),
            "SRV",
            vec!["0 100 80 svc1.testns.svc.cluster.local."],
        ),
        (
            format!("_dns._udp.multi.{z}"),
            "SRV",
            vec!["0 100 53 multi.testns.svc.cluster.local."],
        ),
        (
            "1.0.19.198.in-addr.arpa".into(),
            "PTR",
            vec!["svc1.testns.svc.cluster.local."],
        ),
        (
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.1.0.0.0.0.d.f.ip6.arpa".into(),
            "PTR",
            vec!["svc6.testns.svc.cluster.local."],
        ),
        (
            "4.0.18.198.in-addr.arpa".into(),
            "PTR",
            vec!["dup-name.hdls1.testns.svc.cluster.local."],
        ),
        (
            format!("hdls1.{z}"),
            "A",
            vec!["198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"],
        ),
        (
            format!("hdls1.{z}"),
            "AAAA",
            vec!["fd00:18::1", "fd00:18::2"],
        ),
        (
            format!("dup-name.hdls1.{z}"),
            "A",
            vec!["198.18.0.4", "198.18.0.5"],
        ),
        (format!("198-18-0-3.hdls1.{z}"), "A", vec!["198.18.0.3"]),
        (
            format!("_http._tcp.hdls1.{z}"),
            "SRV",
            vec![
                "0 16 8080 198-18-0-2.hdls1.testns.svc.cluster.local.",
                "0 16 8080 198-18-0-3.hdls1.testns.svc.cluster.local.",
                "0 16 8080 dup-name.hdls1.testns.svc.cluster.local.",
                "0 16 8080 fd00-18--1.hdls1.testns.svc.cluster.local.",
                "0 16 8080 fd00-18--2.hdls1.testns.svc.cluster.local.",
            ],
        ),
        (
            format!("external.{z}"),
            "CNAME",
            vec!["ext.interwebs.test."],
        ),
        (format!("external.{z}"), "A", vec!["ext.interwebs.test."]),
        ("dns-version.cluster.local".into(), "TXT", vec!["\"1.1.0\""]),
        ("cluster.local".into(), "NS", vec!["ns.dns.cluster.local."]),
        ("ns.dns.cluster.local".into(), "A", vec!["198.19.0.10"]),
    ];
    for (addr, opts) in ways(&s) {
        for (name, t, want) in &cases {
            let d = dig(addr, name, t, opts);
            check(
                &d,
                "NOERROR",
                want,
                &format!("{name} {t} via {addr} {opts:?}"),
            );
        }
        let d = dig(addr, "cluster.local", "SOA", opts);
        assert_eq!(d.answer.len(), 1, "{}", d.text);
        assert!(d.answer[0].contains("ns.dns.cluster.local. hostmaster.cluster.local."));
        let d = dig(addr, &format!("_http._tcp.svc1.{z}"), "SRV", opts);
        assert_eq!(
            d.additional.len(),
            1,
            "SRV carries its target's address\n{}",
            d.text
        );
    }
}

#[test]
fn every_negative_case_over_udp_and_tcp_ipv4_and_ipv6() {
    let s = TestServer::fixture();
    let z = "testns.svc.cluster.local";
    let nxdomain = [
        (format!("svc0.{z}"), "A"),
        ("svc1.nons.svc.cluster.local".to_string(), "A"),
        ("foo.cluster.local".into(), "A"),
        (format!("hdls-down.{z}"), "A"),
        (format!("198-18-0-6.hdls1.{z}"), "A"),
        (format!("_http._udp.svc1.{z}"), "SRV"),
        (format!("_tcp.svc1.{z}"), "SRV"),
        (format!("endpoint.external.{z}"), "CNAME"),
        ("dns-version.cluster.local".into(), "A"),
        ("1-2-3-4.testns.pod.cluster.local".into(), "A"),
    ];
    let nodata = [
        (format!("svc1.{z}"), "AAAA"),
        (format!("svc6.{z}"), "A"),
        (format!("svc1.{z}"), "TXT"),
        ("svc.cluster.local".to_string(), "A"),
        ("pod.cluster.local".into(), "A"),
        ("testns.svc.cluster.local".into(), "A"),
        ("svc.cluster.local".into(), "NS"),
        ("cluster.local".into(), "HINFO"),
    ];
    for (addr, opts) in ways(&s) {
        for (name, t) in &nxdomain {
            negative(
                &dig(addr, name, t, opts),
                "NXDOMAIN",
                &format!("{name} {t} via {addr} {opts:?}"),
            );
        }
        for (name, t) in &nodata {
            negative(
                &dig(addr, name, t, opts),
                "NOERROR",
                &format!("{name} {t} via {addr} {opts:?}"),
            );
        }
        // Other zones, unknown reverse names, zone transfers: REFUSED.
        for (name, t) in [
            ("example.com", "A"),
            ("9.9.9.9.in-addr.arpa", "PTR"),
            ("cluster.local", "AXFR"),
        ] {
            let d = dig(addr, name, t, opts);
            if t == "AXFR" {
                assert!(
                    d.text.contains("Transfer failed") || d.status == "REFUSED",
                    "{}",
                    d.text
                );
            } else {
                assert_eq!(d.status, "REFUSED", "{name}\n{}", d.text);
            }
        }
    }
}

#[test]
fn answers_echo_the_query_case() {
    let s = TestServer::fixture();
    let d = dig(s.v4, "SVC1.TestNS.svc.Cluster.LOCAL", "A", &[]);
    assert_eq!(d.data(), ["198.19.0.1"]);
    assert_eq!(
        d.answer[0].split_whitespace().next(),
        Some("SVC1.TestNS.svc.Cluster.LOCAL."),
        "{}",
        d.text
    );
}

fn big_zone(n: usize) -> Zone {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: ns}\nspec: {clusterIP: None}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: big-1, namespace: ns, labels: {kubernetes.io/service-name: big}}\n\
         addressType: IPv4\nendpoints:\n",
    );
    for i in 0..n {
        yaml.push_str(&format!("- {{addresses: [198.18.1.{}]}}\n", i + 1));
    }
    Zone::build(&common::cluster(&yaml), &ZoneConfig::default()).unwrap()
}

#[test]
fn truncated_over_udp_complete_over_tcp() {
    let s = TestServer::start(big_zone(100), None);
    for addr in [s.v4, s.v6] {
        // Without retrying over TCP, the UDP reply is truncated…
        let d = dig(
            addr,
            "big.ns.svc.cluster.local",
            "A",
            &["+ignore", "+noedns"],
        );
        assert!(d.flags.contains(&"tc".to_string()), "{}", d.text);
        assert!(!d.answer.is_empty() && d.answer.len() < 100, "{}", d.text);
        let d = dig(
            addr,
            "big.ns.svc.cluster.local",
            "A",
            &["+ignore", "+bufsize=1232"],
        );
        assert!(d.flags.contains(&"tc".to_string()), "{}", d.text);
        assert_eq!(
            d.answer.len(),
            (1232 - (12 + 26 + 4) - 11) / 16,
            "{}",
            d.text
        );
        // …dig then retries over TCP and gets everything.
        let d = dig(addr, "big.ns.svc.cluster.local", "A", &[]);
        assert!(
            d.text.contains("Truncated, retrying in TCP mode"),
            "{}",
            d.text
        );
        assert_eq!(d.answer.len(), 100, "{}", d.text);
    }
}

#[test]
fn zone_swaps_while_serving() {
    let s = TestServer::start(big_zone(1), None);
    assert_eq!(
        dig(s.v4, "big.ns.svc.cluster.local", "A", &[]).data(),
        ["198.18.1.1"]
    );
    s.server.as_ref().unwrap().zone().store(big_zone(2));
    assert_eq!(
        dig(s.v4, "big.ns.svc.cluster.local", "A", &[]).data(),
        ["198.18.1.1", "198.18.1.2"]
    );
    assert_eq!(
        dig(s.v6, "big.ns.svc.cluster.local", "A", &["+tcp"]).data(),
        ["198.18.1.1", "198.18.1.2"]
    );
}

#[test]
fn tcp_connection_limit_and_idle_timeout() {
    let mut cfg = ServerConfig::new(vec!["127.0.0.1:0".parse().unwrap()]);
    cfg.udp_workers = 1;
    cfg.tcp_max_connections = 2;
    cfg.tcp_idle_timeout = Duration::from_millis(600);
    let server = Server::start(&cfg, LiveZone::new(big_zone(1)), None).unwrap();
    let addr = server.local_addrs()[0];
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(server.tcp_connections(), 2);
    // The third is closed at once.
    let mut third = TcpStream::connect(addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 2];
    assert!(
        matches!(third.read(&mut buf), Ok(0) | Err(_)),
        "over the limit: closed"
    );
    // Idle connections are closed after the timeout, freeing the slots.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(server.tcp_connections(), 0);
    let mut c = held.into_iter().next().unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = c.write_all(&[0, 12]);
    assert!(
        matches!(c.read(&mut buf), Ok(0) | Err(_)),
        "idle connection was closed"
    );
    // A new connection is served again.
    assert_eq!(
        dig(addr, "big.ns.svc.cluster.local", "A", &["+tcp"]).data(),
        ["198.18.1.1"]
    );
    let started = std::time::Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "graceful shutdown is prompt"
    );
}
