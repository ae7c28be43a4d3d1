//! EDNS in replies built by the forwarder (RFC 6891 §7): an OPT record
//! exactly when the query had one, with our payload size and the query's
//! DO bit, whatever the upstream or the cache holds.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8snet_dns::forward::{Cache, CacheConfig, servfail, truncated_reply};

const NAME: &str = "www.example.test.";

fn query_for(name: &str, t: RecordType, id: u16, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some((payload, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn query(id: u16, edns: bool) -> Vec<u8> {
    query_for(NAME, RecordType::A, id, edns.then_some((1232, false)))
}

/// The upstream's reply, with an OPT record (payload 4096) when `edns`.
fn upstream_reply(edns: bool) -> Vec<u8> {
    let mut m = Message::new(1, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.add_query(Query::query(Name::from_ascii(NAME).unwrap(), RecordType::A));
    m.add_answer(Record::from_rdata(
        Name::from_ascii(NAME).unwrap(),
        60,
        RData::A(Ipv4Addr::new(192, 0, 2, 1).into()),
    ));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(4096);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn cached_reply(stored_with_edns: bool, asked: Option<(u16, bool)>) -> Message {
    let cache = Cache::new(CacheConfig::default());
    let t0 = Instant::now();
    cache.insert(
        &query(1, stored_with_edns),
        &upstream_reply(stored_with_edns),
        t0,
    );
    let mut out = [0u8; 1232];
    let q = query_for(NAME, RecordType::A, 2, asked);
    let len = cache
        .lookup(&q, t0 + Duration::from_secs(10), &mut out)
        .expect("a hit");
    let m = Message::from_vec(&out[..len]).unwrap();
    assert_eq!(m.metadata.id, 2);
    assert_eq!(m.answers.len(), 1, "{m}");
    // The TTL still counts down with the OPT record appended.
    assert_eq!(m.answers[0].ttl, 50, "{m}");
    m
}

#[test]
fn a_cache_hit_has_opt_exactly_when_the_query_had_it() {
    for stored in [false, true] {
        let m = cached_reply(stored, None);
        assert!(
            m.edns.is_none(),
            "OPT sent to a client that sent none:\n{m}"
        );
        assert_eq!(m.additionals.len(), 0, "{m}");
        let m = cached_reply(stored, Some((1232, false)));
        let e = m.edns.as_ref().expect("OPT for a client that sent one");
        // Our payload size, not the upstream's 4096.
        assert_eq!(e.max_payload(), k8snet_dns::DEFAULT_UDP_PAYLOAD, "{m}");
        assert!(!e.flags().dnssec_ok);
    }
}

#[test]
fn a_cache_hit_echoes_the_queries_do_bit() {
    let cache = Cache::new(CacheConfig::default());
    let t0 = Instant::now();
    let q = query_for(NAME, RecordType::A, 1, Some((1232, true)));
    cache.insert(&q, &upstream_reply(true), t0);
    let mut out = [0u8; 1232];
    let len = cache.lookup(&q, t0, &mut out).expect("a hit");
    let m = Message::from_vec(&out[..len]).unwrap();
    assert!(m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok), "{m}");
}

#[test]
fn an_upstream_reply_with_an_extended_rcode_is_not_cached() {
    // BADVERS is rcode 16: header bits 0 (NOERROR), extended bits in OPT.
    let mut m = Message::from_vec(&upstream_reply(true)).unwrap();
    m.metadata.response_code = ResponseCode::BADVERS;
    let reply = m.to_vec().unwrap();
    assert_eq!(reply[3] & 0x0F, 0);
    let cache = Cache::new(CacheConfig::default());
    cache.insert(&query(1, true), &reply, Instant::now());
    assert!(cache.is_empty());
}

#[test]
fn tc_and_servfail_replies_carry_opt_exactly_when_the_query_had_it() {
    for edns in [false, true] {
        let q = query(3, edns);
        let mut out = [0u8; 512];
        let n = truncated_reply(&q, &mut out);
        let m = Message::from_vec(&out[..n]).unwrap();
        assert!(m.metadata.truncation);
        assert_eq!(m.metadata.id, 3);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.edns.is_some(), edns, "TC reply:\n{m}");
        let n = servfail(&q, &mut out);
        let m = Message::from_vec(&out[..n]).unwrap();
        assert_eq!(m.metadata.response_code.low(), 2);
        assert_eq!(m.edns.is_some(), edns, "SERVFAIL:\n{m}");
        if let Some(e) = &m.edns {
            assert_eq!(e.max_payload(), k8snet_dns::DEFAULT_UDP_PAYLOAD);
        }
    }
}

#[test]
fn a_cached_ad_bit_reaches_only_clients_that_set_ad_or_do() {
    // RFC 6840 §5.8: AD only for a query with AD or DO. The reply was
    // stored for a query that set AD; others are answered from it.
    let mut reply = Message::from_vec(&upstream_reply(false)).unwrap();
    reply.metadata.authentic_data = true;
    let reply = reply.to_vec().unwrap();
    let with_ad = |mut q: Vec<u8>, ad: bool| {
        if ad {
            q[3] |= 0x20;
        }
        q
    };
    for dnssec_ok in [false, true] {
        let cache = Cache::new(CacheConfig::default());
        let t0 = Instant::now();
        let edns = Some((1232, dnssec_ok));
        cache.insert(
            &with_ad(query_for(NAME, RecordType::A, 1, edns), true),
            &reply,
            t0,
        );
        for (ad, edns) in [
            (false, None),
            (true, None),
            (false, Some((1232, false))),
            (true, Some((1232, false))),
        ] {
            // The DO bit is part of the cache key: ask with the stored one.
            let edns = if dnssec_ok { Some((1232, true)) } else { edns };
            let q = with_ad(query_for(NAME, RecordType::A, 2, edns), ad);
            let mut out = [0u8; 1232];
            let len = cache.lookup(&q, t0, &mut out).expect("a hit");
            let m = Message::from_vec(&out[..len]).unwrap();
            assert_eq!(
                m.metadata.authentic_data,
                ad || dnssec_ok,
                "query AD {ad}, EDNS {edns:?}:\n{m}"
            );
        }
    }
}

#[test]
fn an_upstream_reply_with_opt_in_the_answer_section_is_not_cached() {
    // An OPT record only belongs in the additional section (RFC 6891
    // §6.1.1): such a reply is malformed.
    let mut reply = upstream_reply(false);
    reply[7] += 1; // ANCOUNT 2
    reply.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    let cache = Cache::new(CacheConfig::default());
    cache.insert(&query(1, false), &reply, Instant::now());
    assert!(cache.is_empty());
    // The same OPT where it belongs is cached.
    let mut reply = upstream_reply(false);
    reply[11] += 1;
    reply.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    cache.insert(&query(1, false), &reply, Instant::now());
    assert_eq!(cache.len(), 1);
}

#[cfg(all(feature = "linux", target_os = "linux"))]
mod forwarder {
    use std::net::{SocketAddr, UdpSocket};
    use std::thread::JoinHandle;

    use hickory_proto::rr::rdata::TXT;
    use k8snet_dns::Transport;
    use k8snet_dns::forward::{ForwardConfig, Forwarder};

    use super::*;

    /// A reply of exactly `size` bytes without OPT: one TXT record.
    fn reply_of_size(name: &str, size: usize) -> Vec<u8> {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.recursion_available = true;
        m.add_query(Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::TXT,
        ));
        // header 12 + question (name + 4) + record (2 + 10 + rdata)
        let fixed = 12 + (name.len() + 1) + 4 + 12;
        let rdata = size - fixed;
        let strings = vec!["x".repeat(255), "y".repeat(rdata - 256 - 1)];
        m.add_answer(Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::TXT(TXT::new(strings)),
        ));
        let bytes = m.to_vec().unwrap();
        assert_eq!(bytes.len(), size);
        bytes
    }

    /// A forwarder whose only upstream is `upstream`; our payload 1400.
    fn forwarder(upstream: SocketAddr) -> Forwarder {
        let mut cfg = ForwardConfig::new(vec![upstream]);
        cfg.timeout = Duration::from_secs(2);
        cfg.max_udp_payload = 1400;
        Forwarder::new(cfg)
    }

    #[test]
    fn the_opt_record_counts_in_the_size_limit_of_a_cache_hit() {
        // Nothing listens there: only the cache answers.
        let f = forwarder("127.0.0.1:9".parse().unwrap());
        let name = "big.example.test.";
        f.cache().insert(
            &query_for(name, RecordType::TXT, 1, None),
            &reply_of_size(name, 505),
            Instant::now(),
        );
        let mut out = vec![0u8; 65_535];
        // Without EDNS: 505 bytes fit in 512.
        let q = query_for(name, RecordType::TXT, 2, None);
        let n = f.cached(&q, Transport::Udp, &mut out).expect("a hit");
        assert_eq!(n, 505);
        // With EDNS 512: 505 + 11 (OPT) do not fit: TC, with OPT.
        let q = query_for(name, RecordType::TXT, 3, Some((512, false)));
        let n = f.cached(&q, Transport::Udp, &mut out).expect("a hit");
        let m = Message::from_vec(&out[..n]).unwrap();
        assert!(m.metadata.truncation, "{m}");
        assert!(m.answers.is_empty());
        assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(1400), "{m}");
        // With EDNS 1232: the whole answer and our OPT.
        let q = query_for(name, RecordType::TXT, 4, Some((1232, false)));
        let n = f.cached(&q, Transport::Udp, &mut out).expect("a hit");
        assert_eq!(n, 516);
        let m = Message::from_vec(&out[..n]).unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(1400), "{m}");
    }

    /// An upstream that answers `count` queries with one A record, and
    /// an OPT record (payload 4096) when the first label is `opt`.
    fn fake_upstream(count: usize) -> (SocketAddr, JoinHandle<()>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            for _ in 0..count {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    return;
                };
                let q = Message::from_vec(&buf[..n]).unwrap();
                let name = q.queries[0].name().clone();
                let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
                r.metadata.recursion_desired = true;
                r.metadata.recursion_available = true;
                r.add_query(q.queries[0].clone());
                r.add_answer(Record::from_rdata(
                    name.clone(),
                    60,
                    RData::A(Ipv4Addr::new(192, 0, 2, 7).into()),
                ));
                if name.to_string().starts_with("opt.") {
                    let mut e = Edns::new();
                    e.set_max_payload(4096);
                    r.set_edns(e);
                }
                sock.send_to(&r.to_vec().unwrap(), from).unwrap();
            }
        });
        (addr, t)
    }

    #[test]
    fn a_relayed_reply_has_opt_exactly_when_the_query_had_it() {
        let (addr, upstream) = fake_upstream(4);
        let f = forwarder(addr);
        let mut out = vec![0u8; 65_535];
        let cases = [
            // (name, upstream adds OPT, the client's EDNS)
            ("opt.a.test.", None),
            ("bare.b.test.", Some((1232, false))),
            ("opt.c.test.", Some((1232, true))),
            ("bare.d.test.", None),
        ];
        for (i, (name, edns)) in cases.into_iter().enumerate() {
            let q = query_for(name, RecordType::A, 0x100 + i as u16, edns);
            let n = f.resolve(&q, Transport::Udp, &mut out);
            let m = Message::from_vec(&out[..n]).unwrap();
            assert_eq!(m.metadata.id, 0x100 + i as u16);
            assert_eq!(m.answers.len(), 1, "{name}: {m}");
            match edns {
                None => assert!(m.edns.is_none(), "{name}: OPT without EDNS:\n{m}"),
                Some((_, dnssec_ok)) => {
                    let e = m.edns.as_ref().expect("OPT for an EDNS query");
                    assert_eq!(e.max_payload(), 1400, "{name}: our payload");
                    assert_eq!(e.flags().dnssec_ok, dnssec_ok, "{name}");
                }
            }
        }
        upstream.join().unwrap();
    }

    #[test]
    fn servfail_from_a_dead_upstream_carries_opt_for_an_edns_query() {
        // Port 9 (discard) on loopback: nothing listens, the send is refused.
        let f = forwarder("127.0.0.1:9".parse().unwrap());
        let mut out = vec![0u8; 65_535];
        for edns in [None, Some((1232, false))] {
            let q = query_for("dead.example.test.", RecordType::A, 9, edns);
            let n = f.resolve(&q, Transport::Udp, &mut out);
            let m = Message::from_vec(&out[..n]).unwrap();
            assert_eq!(m.metadata.response_code.low(), 2, "{m}");
            assert_eq!(m.edns.is_some(), edns.is_some(), "{m}");
            if let Some(e) = &m.edns {
                assert_eq!(e.max_payload(), 1400);
            }
        }
    }

    /// The types of a message's records, walked by its counts; `None`
    /// unless the counts match the bytes exactly. (hickory-proto cannot
    /// check these replies: it refuses records with empty RDATA.)
    fn record_types(m: &[u8]) -> Option<Vec<u16>> {
        let be16 = |at: usize| Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]));
        let skip_name = |mut at: usize| loop {
            match *m.get(at)? {
                0 => return Some(at + 1),
                l if l & 0xC0 == 0xC0 => return Some(at + 2),
                l => at += 1 + usize::from(l),
            }
        };
        let mut pos = 12;
        for _ in 0..be16(4)? {
            pos = skip_name(pos)? + 4;
        }
        let mut types = Vec::new();
        for _ in 0..u32::from(be16(6)?) + u32::from(be16(8)?) + u32::from(be16(10)?) {
            pos = skip_name(pos)?;
            types.push(be16(pos)?);
            pos += 10 + usize::from(be16(pos + 8)?);
        }
        (pos == m.len()).then_some(types)
    }

    /// An upstream answering one query with `<qname> A 192.0.2.1`, its
    /// OPT record (payload 4096), then a NULL record and a private-use
    /// one, both with empty RDATA (legal, RFC 3597).
    fn upstream_with_empty_records_behind_its_opt() -> (SocketAddr, JoinHandle<()>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            let q = &buf[..n];
            let question_end = 12 + (NAME.len() + 1) + 4;
            let mut r = q[..question_end].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 3]);
            r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
            r.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
            r.extend_from_slice(&[0xC0, 12, 0, 10, 0, 1, 0, 0, 0, 60, 0, 0]);
            r.extend_from_slice(&[0xC0, 12, 0xFF, 0, 0, 1, 0, 0, 0, 60, 0, 0]);
            sock.send_to(&r, from).unwrap();
        });
        (addr, t)
    }

    #[test]
    fn records_with_empty_rdata_behind_the_upstreams_opt_are_relayed_and_cached() {
        let (addr, upstream) = upstream_with_empty_records_behind_its_opt();
        let f = forwarder(addr);
        let mut out = vec![0u8; 65_535];
        let mut ask = |id: u16, edns: Option<(u16, bool)>| {
            let q = query_for(NAME, RecordType::A, id, edns);
            let n = f.resolve(&q, Transport::Udp, &mut out);
            let r = &out[..n];
            assert_eq!(&r[..2], &id.to_be_bytes());
            assert_eq!(r[3] & 0x0F, 0, "NOERROR, not SERVFAIL: {r:?}");
            let mut want = vec![1, 10, 0xFF00];
            if edns.is_some() {
                want.push(41);
                assert_eq!(
                    &r[n - 11..n - 6],
                    &[0, 0, 41, 0x05, 0x78],
                    "our OPT, payload 1400"
                );
            }
            assert_eq!(record_types(r), Some(want), "{r:?}");
        };
        ask(0x51, Some((1232, false)));
        upstream.join().unwrap();
        // The upstream is gone: from the cache.
        ask(0x52, None);
        assert_eq!(f.cache().len(), 1);
    }
}
