//! Forwarding to a real upstream: NSD from Debian, started on loopback by
//! each test with a generated zone for the test-only domain
//! `upstream.test`, and killed when the test ends.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::time::{Duration, Instant};

use common::{Nsd, TestServer, dig};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use k8snet_dns::forward::{ForwardConfig, Forwarder};
use k8snet_dns::{Transport, Zone, ZoneConfig};

/// www: A and AAAA (TTL 60); big: 12 TXT records of 200 bytes, more than
/// any UDP reply may carry; negative TTL min(60, 30) = 30.
fn zone_text() -> String {
    let mut z = String::from(
        "$ORIGIN upstream.test.\n$TTL 60\n\
         @ IN SOA ns.upstream.test. host.upstream.test. 1 3600 600 86400 30\n\
         @ IN NS ns\nns IN A 127.0.0.1\nwww IN A 192.0.2.1\nwww IN AAAA 2001:db8::1\n",
    );
    for i in 0..12 {
        z.push_str(&format!("big IN TXT \"{i:02}{}\"\n", "x".repeat(198)));
    }
    z
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

fn forwarder(nsd: &Nsd) -> Forwarder {
    let mut cfg = ForwardConfig::new(vec![nsd.addr]);
    cfg.timeout = Duration::from_millis(500);
    Forwarder::new(cfg)
}

fn resolve(f: &Forwarder, name: &str, t: RecordType, transport: Transport) -> Message {
    let mut out = vec![0u8; 65_535];
    let len = f.resolve(&query(name, t), transport, &mut out);
    let m = Message::from_vec(&out[..len]).unwrap();
    assert_eq!(m.metadata.id, 0x4242);
    m
}

#[test]
fn forwards_through_the_server_and_answers_from_the_cache_once_upstream_is_gone() {
    let mut nsd = Nsd::start("upstream.test", &zone_text());
    let zone = Zone::build(&common::cluster(common::FIXTURE), &ZoneConfig::default()).unwrap();
    let s = TestServer::start(zone, Some(forwarder(&nsd)));
    for (addr, opts) in [(s.v4, &[][..]), (s.v6, &["+tcp"][..])] {
        let d = dig(addr, "www.upstream.test", "A", opts);
        assert_eq!(d.status, "NOERROR", "{}", d.text);
        assert_eq!(d.data(), ["192.0.2.1"]);
        assert!(
            d.flags.contains(&"ra".to_string()) && !d.flags.contains(&"aa".to_string()),
            "{}",
            d.text
        );
    }
    // Cluster names are still answered by the zone, now with RA.
    let d = dig(s.v4, "svc1.testns.svc.cluster.local", "A", &[]);
    assert_eq!(d.data(), ["198.19.0.1"]);
    assert!(d.flags.contains(&"ra".to_string()) && d.flags.contains(&"aa".to_string()));
    let nx = dig(s.v4, "nosuch.upstream.test", "A", &[]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.text);
    nsd.stop();
    // Upstream gone: positive and negative answers come from the cache,
    // in the asker's case.
    let d = dig(s.v4, "WWW.Upstream.TEST", "A", &[]);
    assert_eq!(d.data(), ["192.0.2.1"], "{}", d.text);
    assert_eq!(
        d.answer[0].split_whitespace().next(),
        Some("WWW.Upstream.TEST.")
    );
    let ttl: u32 = d.answer[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!((50..=60).contains(&ttl), "TTL counts down from 60: {ttl}");
    assert_eq!(
        dig(s.v6, "nosuch.upstream.test", "A", &[]).status,
        "NXDOMAIN"
    );
    // Not cached and no upstream: SERVFAIL.
    assert_eq!(
        dig(s.v4, "other.upstream.test", "A", &[]).status,
        "SERVFAIL"
    );
}

#[test]
fn negative_answers_are_cached_for_the_soa_ttl() {
    let nsd = Nsd::start("upstream.test", &zone_text());
    let f = forwarder(&nsd);
    let m = resolve(&f, "nosuch.upstream.test.", RecordType::A, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = resolve(&f, "www.upstream.test.", RecordType::TXT, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty(), "NODATA");
    let m = resolve(&f, "www.upstream.test.", RecordType::AAAA, Transport::Udp);
    assert_eq!(m.answers.len(), 1);
    assert_eq!((f.cache().len(), f.cache().negative_len()), (3, 2));
    // min(SOA TTL 60, minimum 30) = 30 s for the negative entries; 60 s
    // for the positive one.
    let q = query("nosuch.upstream.test.", RecordType::A);
    let mut out = vec![0u8; 4096];
    let now = Instant::now();
    assert!(
        f.cache()
            .lookup(&q, now + Duration::from_secs(29), &mut out)
            .is_some()
    );
    assert!(
        f.cache()
            .lookup(&q, now + Duration::from_secs(31), &mut out)
            .is_none()
    );
    let q = query("www.upstream.test.", RecordType::AAAA);
    assert!(
        f.cache()
            .lookup(&q, now + Duration::from_secs(55), &mut out)
            .is_some()
    );
    assert!(
        f.cache()
            .lookup(&q, now + Duration::from_secs(61), &mut out)
            .is_none()
    );
}

#[test]
fn truncated_upstream_replies_are_retried_over_tcp() {
    let nsd = Nsd::start("upstream.test", &zone_text());
    // NSD truncates this over UDP (dig without TCP retry sees TC).
    let direct = dig(nsd.addr, "big.upstream.test", "TXT", &["+ignore"]);
    assert!(direct.flags.contains(&"tc".to_string()), "{}", direct.text);
    let f = forwarder(&nsd);
    let reply = f
        .exchange(&query("big.upstream.test.", RecordType::TXT))
        .unwrap();
    let m = Message::from_vec(&reply).unwrap();
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 12, "the forwarder fell back to TCP");
    // A UDP client gets TC from us, then everything over TCP.
    let m = resolve(&f, "big.upstream.test.", RecordType::TXT, Transport::Udp);
    assert!(m.metadata.truncation && m.answers.is_empty());
    let m = resolve(&f, "big.upstream.test.", RecordType::TXT, Transport::Tcp);
    assert_eq!(m.answers.len(), 12);
    let zone = Zone::build(&common::cluster(common::FIXTURE), &ZoneConfig::default()).unwrap();
    let s = TestServer::start(zone, Some(forwarder(&nsd)));
    let d = dig(s.v4, "big.upstream.test", "TXT", &[]);
    assert!(
        d.text.contains("Truncated, retrying in TCP mode"),
        "{}",
        d.text
    );
    assert_eq!(d.answer.len(), 12, "{}", d.text);
}

#[test]
fn a_dead_upstream_is_skipped_and_all_dead_is_servfail() {
    let nsd = Nsd::start("upstream.test", &zone_text());
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let mut cfg = ForwardConfig::new(vec![dead, nsd.addr]);
    cfg.timeout = Duration::from_millis(300);
    let f = Forwarder::new(cfg);
    // Upstreams are taken in turn: the dead one is asked first by the
    // first and third queries, and fails over to NSD each time.
    for (name, t) in [
        ("www", RecordType::A),
        ("ns", RecordType::A),
        ("www", RecordType::AAAA),
    ] {
        let m = resolve(&f, &format!("{name}.upstream.test."), t, Transport::Udp);
        assert_eq!(m.answers.len(), 1, "{name} {t}");
    }
    assert!(
        f.upstreams().is_down(dead, Instant::now()),
        "two failures mark it down"
    );
    assert_eq!(f.upstreams().order(Instant::now()), vec![nsd.addr, dead]);
    let mut cfg = ForwardConfig::new(vec![dead]);
    cfg.timeout = Duration::from_millis(300);
    let f = Forwarder::new(cfg);
    let m = resolve(&f, "www.upstream.test.", RecordType::A, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn external_names_are_followed_to_the_upstream_or_the_zone() {
    let nsd = Nsd::start("upstream.test", &zone_text());
    let yaml = format!(
        "{}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: out, namespace: testns}}\n\
         spec: {{type: ExternalName, externalName: www.upstream.test}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: in, namespace: testns}}\n\
         spec: {{type: ExternalName, externalName: svc1.testns.svc.cluster.local}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: missing, namespace: testns}}\n\
         spec: {{type: ExternalName, externalName: nosuch.upstream.test}}\n",
        common::FIXTURE
    );
    let zone = Zone::build(&common::cluster(&yaml), &ZoneConfig::default()).unwrap();
    let s = TestServer::start(zone, Some(forwarder(&nsd)));
    for opts in [&[][..], &["+tcp"][..]] {
        let d = dig(s.v4, "out.testns.svc.cluster.local", "A", opts);
        assert_eq!(d.data(), ["www.upstream.test.", "192.0.2.1"], "{}", d.text);
        let d = dig(s.v6, "in.testns.svc.cluster.local", "A", opts);
        assert_eq!(
            d.data(),
            ["svc1.testns.svc.cluster.local.", "198.19.0.1"],
            "{}",
            d.text
        );
        // The CNAME itself is answered as is.
        let d = dig(s.v4, "out.testns.svc.cluster.local", "CNAME", opts);
        assert_eq!(d.data(), ["www.upstream.test."], "{}", d.text);
        // A target the upstream does not know: the CNAME, the upstream's
        // NXDOMAIN and SOA (RFC 2308, RFC 6604); RA, as we recurse.
        let d = dig(s.v4, "missing.testns.svc.cluster.local", "A", opts);
        assert_eq!(d.status, "NXDOMAIN", "{}", d.text);
        assert_eq!(d.data(), ["nosuch.upstream.test."], "{}", d.text);
        assert_eq!(d.authority.len(), 1, "{}", d.text);
        assert!(d.authority[0].starts_with("upstream.test."), "{}", d.text);
        assert!(d.flags.contains(&"ra".to_string()), "{}", d.text);
        // NODATA from the zone (svc1 has no AAAA): the CNAME and our SOA.
        let d = dig(s.v6, "in.testns.svc.cluster.local", "AAAA", opts);
        assert_eq!(d.status, "NOERROR", "{}", d.text);
        assert_eq!(d.data(), ["svc1.testns.svc.cluster.local."], "{}", d.text);
        assert_eq!(d.authority.len(), 1, "{}", d.text);
        assert!(d.authority[0].starts_with("cluster.local."), "{}", d.text);
    }
}
