//! ExternalName services whose target is a cluster name, on a server with
//! no upstream (as `k8snet node up` and `dns serve` without `--upstream`
//! run it): the CNAME is followed inside the zone, as CoreDNS does
//! (handler_test.go "CNAME External To Internal Service").
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::TestServer;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8snet_dns::{Zone, ZoneConfig};

fn server() -> TestServer {
    let yaml = format!(
        "{}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: alias, namespace: testns}}\n\
         spec: {{type: ExternalName, externalName: svc1.testns.svc.cluster.local}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: chain, namespace: testns}}\n\
         spec: {{type: ExternalName, externalName: alias.testns.svc.cluster.local}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: gone, namespace: testns}}\n\
         spec: {{type: ExternalName, externalName: nosuch.testns.svc.cluster.local}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: loop1, namespace: testns}}\n\
         spec: {{type: ExternalName, externalName: loop2.testns.svc.cluster.local}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: loop2, namespace: testns}}\n\
         spec: {{type: ExternalName, externalName: loop1.testns.svc.cluster.local}}\n",
        common::FIXTURE
    );
    let zone = Zone::build(&common::cluster(&yaml), &ZoneConfig::default()).unwrap();
    TestServer::start(zone, None)
}

fn query(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn over_udp(server: SocketAddr, q: &[u8]) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.send_to(q, server).unwrap();
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

fn over_tcp(server: SocketAddr, q: &[u8]) -> Message {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

/// Asks over UDP and TCP, with and without EDNS; checks what every reply
/// must have and returns one reply per way, all equal in records.
fn ask(s: &TestServer, name: &str, t: RecordType) -> Message {
    let mut replies = Vec::new();
    for edns in [false, true] {
        let q = query(name, t, edns);
        for m in [over_udp(s.v4, &q), over_tcp(s.v4, &q)] {
            assert_eq!(m.metadata.id, 0x1234);
            // No upstream: we do not recurse, whatever RD asked.
            assert!(!m.metadata.recursion_available, "RA without upstream:\n{m}");
            assert!(m.metadata.authoritative, "{m}");
            assert_eq!(m.edns.is_some(), edns, "OPT exactly when asked:\n{m}");
            replies.push(m);
        }
    }
    let first = replies[0].clone();
    for m in &replies[1..] {
        assert_eq!(m.answers, first.answers);
        assert_eq!(m.authorities, first.authorities);
        assert_eq!(m.metadata.response_code, first.metadata.response_code);
    }
    first
}

fn data(m: &Message) -> Vec<String> {
    m.answers.iter().map(|a| a.data.to_string()).collect()
}

fn soa_of_the_zone(m: &Message) {
    assert_eq!(m.authorities.len(), 1, "{m}");
    let RData::SOA(soa) = &m.authorities[0].data else {
        panic!("{m}")
    };
    assert_eq!(m.authorities[0].name.to_string(), "cluster.local.");
    assert_eq!(soa.mname.to_string(), "ns.dns.cluster.local.");
}

#[test]
fn external_name_to_a_cluster_service_is_chased_without_upstream() {
    let s = server();
    let m = ask(&s, "alias.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        data(&m),
        ["svc1.testns.svc.cluster.local.", "198.19.0.1"],
        "{m}"
    );
    assert!(m.authorities.is_empty(), "{m}");
    // A chain of two ExternalNames is followed to the end.
    let m = ask(&s, "chain.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(
        data(&m),
        [
            "alias.testns.svc.cluster.local.",
            "svc1.testns.svc.cluster.local.",
            "198.19.0.1"
        ],
        "{m}"
    );
    // The CNAME itself is answered as is.
    let m = ask(&s, "alias.testns.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(data(&m), ["svc1.testns.svc.cluster.local."], "{m}");
}

#[test]
fn a_chased_target_without_data_keeps_the_cname_and_the_soa() {
    let s = server();
    // NODATA: svc1 has no AAAA.
    let m = ask(&s, "alias.testns.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m}");
    assert_eq!(data(&m), ["svc1.testns.svc.cluster.local."], "{m}");
    soa_of_the_zone(&m);
    // NXDOMAIN: the target does not exist (RFC 6604: the target's rcode).
    let m = ask(&s, "gone.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m}");
    assert_eq!(data(&m), ["nosuch.testns.svc.cluster.local."], "{m}");
    soa_of_the_zone(&m);
    // A loop ends: each link once.
    let m = ask(&s, "loop1.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(
        data(&m),
        [
            "loop2.testns.svc.cluster.local.",
            "loop1.testns.svc.cluster.local."
        ],
        "{m}"
    );
    // A target outside the zone, with no upstream: the CNAME alone.
    let m = ask(&s, "external.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m}");
    assert_eq!(data(&m), ["ext.interwebs.test."], "{m}");
    assert!(m.authorities.is_empty(), "{m}");
}
