//! The UDP worker answers without allocating: ClusterIP names, an
//! ExternalName whose target is outside the zone on a server without
//! upstream (nothing can be chased: the CNAME alone, as the zone stored
//! it), and cache hits of the forwarder. Allocations are counted in the
//! whole process, since the server's threads run in it; this file holds
//! one test so that no other test allocates meanwhile, and its server has
//! one UDP worker and one forwarding thread, each past its first
//! (allocating) exchange before counting starts.
#![cfg(all(feature = "linux", target_os = "linux"))]
#![allow(unsafe_code)] // the counting allocator below, and nothing else

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use k8snet_dns::forward::{ForwardConfig, Forwarder};
use k8snet_dns::server::{Server, ServerConfig};
use k8snet_dns::{LiveZone, Zone, ZoneConfig};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Counts every allocation of the process.
struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn query(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new(0x0A0B, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().unwrap()
}

/// Sends `query` `rounds` times (after one warm-up exchange) and returns
/// the last reply (the warm-up's if `rounds` is 0) and the allocations
/// the process made meanwhile. The
/// socket and the buffer are made before counting; sending to and
/// receiving from a `SocketAddr` does not allocate.
fn exchange(server: SocketAddr, query: &[u8], rounds: usize) -> (Vec<u8>, u64) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = vec![0u8; 1500];
    sock.send_to(query, server).unwrap();
    let mut len = sock.recv(&mut buf).unwrap();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..rounds {
        sock.send_to(query, server).unwrap();
        len = sock.recv(&mut buf).unwrap();
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    buf.truncate(len);
    (buf, allocations)
}

fn data(reply: &[u8]) -> Vec<String> {
    let m = Message::from_vec(reply).unwrap();
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

/// A server on 127.0.0.1 with one UDP worker and one forwarding thread,
/// and its address. The exchanges before counting run every thread that
/// allocates when it starts: the UDP worker (each `exchange` warms it
/// up), the forwarding thread (a miss), and the TCP acceptor, here: one
/// query over TCP is answered once it runs.
fn server(zone: Zone, forwarder: Option<Forwarder>) -> (Server, SocketAddr) {
    let mut cfg = ServerConfig::new(vec!["127.0.0.1:0".parse().unwrap()]);
    cfg.udp_workers = 1;
    cfg.forward_threads = 1;
    let s = Server::start(&cfg, LiveZone::new(zone), forwarder).unwrap();
    let addr = s.local_addrs()[0];
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let q = query("svc1.testns.svc.cluster.local.", RecordType::A, false);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    tcp.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tcp.read_exact(&mut reply).unwrap();
    assert_eq!(data(&reply), ["198.19.0.1"]);
    (s, addr)
}

#[test]
fn the_udp_worker_answers_without_allocating() {
    const ROUNDS: usize = 100;
    let zone = Zone::build(&common::cluster(common::FIXTURE), &ZoneConfig::default()).unwrap();
    let (s, addr) = server(zone.clone(), None);

    let (reply, n) = exchange(
        addr,
        &query("svc1.testns.svc.cluster.local.", RecordType::A, true),
        ROUNDS,
    );
    assert_eq!(data(&reply), ["198.19.0.1"]);
    assert_eq!(n, 0, "ClusterIP A: {n} allocations in {ROUNDS} queries");

    // `external` is an ExternalName to ext.interwebs.test, outside the
    // zone: without upstream, the zone's CNAME is the whole answer.
    for t in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
        for edns in [false, true] {
            let q = query("External.testns.svc.cluster.local.", t, edns);
            let (reply, n) = exchange(addr, &q, ROUNDS);
            let m = Message::from_vec(&reply).unwrap();
            assert_eq!(data(&reply), ["ext.interwebs.test."], "{m}");
            assert!(!m.metadata.recursion_available, "{m}");
            assert_eq!(m.edns.is_some(), edns, "{m}");
            assert_eq!(
                &reply[12..q.len() - if edns { 11 } else { 0 }],
                &q[12..q.len() - if edns { 11 } else { 0 }],
                "the question's case"
            );
            assert_eq!(
                n, 0,
                "ExternalName out of the zone, {t} (EDNS {edns}), no upstream: \
                 {n} allocations in {ROUNDS} queries"
            );
        }
    }
    s.shutdown();

    // Cache hits, with and without EDNS (nothing listens on the discard
    // port: every answer comes from the cache).
    let f = Forwarder::new(ForwardConfig::new(vec!["127.0.0.1:9".parse().unwrap()]));
    let q = query("www.example.test.", RecordType::A, false);
    let mut upstream = q.clone();
    upstream[2] = 0x81;
    upstream[3] = 0x80;
    upstream[7] = 1;
    upstream.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 14, 16, 0, 4, 192, 0, 2, 1]);
    f.cache().insert(&q, &upstream, Instant::now());
    let (s, addr) = server(zone, Some(f));
    // A miss first: the forwarding thread answers SERVFAIL (nothing
    // listens upstream), past its first exchange.
    let (reply, _) = exchange(addr, &query("miss.example.test.", RecordType::A, false), 0);
    assert_eq!(reply[3] & 0x0F, 2, "SERVFAIL");
    for edns in [false, true] {
        let q = query("www.example.test.", RecordType::A, edns);
        let (reply, n) = exchange(addr, &q, ROUNDS);
        let m = Message::from_vec(&reply).unwrap();
        assert!(
            matches!(m.answers[..], [ref a] if matches!(a.data, RData::A(_))),
            "{m}"
        );
        assert_eq!(
            n, 0,
            "cache hit (EDNS {edns}): {n} allocations in {ROUNDS} queries"
        );
    }
    s.shutdown();
}
