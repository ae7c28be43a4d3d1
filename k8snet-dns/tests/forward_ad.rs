//! The fresh (uncached) forward path clears AD for clients that set
//! neither AD nor DO (RFC 6840 5.8), and a reply with the OPT before a
//! compressed record is relayed with the same records.
#![cfg(all(feature = "linux", target_os = "linux"))]
use std::net::UdpSocket;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::MX;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8snet_dns::Transport;
use k8snet_dns::forward::{ForwardConfig, Forwarder};

/// An upstream on loopback answering each query once: AD set, OPT first
/// in the additional section, an MX glue behind it compressed.
fn upstream(n: usize) -> std::net::SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        for _ in 0..n {
            let (len, from) = s.recv_from(&mut buf).unwrap();
            let q = Message::from_vec(&buf[..len]).unwrap();
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.metadata.authentic_data = true;
            r.metadata.recursion_available = true;
            r.add_query(q.queries[0].clone());
            let name = q.queries[0].name().clone();
            let mx = Name::from_ascii("mx.up.test.").unwrap();
            r.add_answer(Record::from_rdata(
                name,
                60,
                RData::MX(MX::new(10, mx.clone())),
            ));
            r.add_additional(Record::from(&Edns::new()));
            r.add_additional(Record::from_rdata(
                mx,
                60,
                RData::A(std::net::Ipv4Addr::new(192, 0, 2, 9).into()),
            ));
            s.send_to(&r.to_vec().unwrap(), from).unwrap();
        }
    });
    addr
}

#[test]
fn the_fresh_path_clears_ad_and_keeps_records() {
    // (query AD, query DO, AD expected); distinct names: no cache hits.
    let cases = [
        (false, None, false),
        (true, None, true),
        (false, Some(false), false),
        (false, Some(true), true),
    ];
    let mut cfg = ForwardConfig::new(vec![upstream(cases.len())]);
    cfg.timeout = Duration::from_secs(2);
    let f = Forwarder::new(cfg);
    for (i, (ad, dnssec_ok, want)) in cases.into_iter().enumerate() {
        let mut q = Message::new(0x4242, MessageType::Query, OpCode::Query);
        q.metadata.recursion_desired = true;
        q.metadata.authentic_data = ad;
        q.add_query(Query::query(
            Name::from_ascii(format!("n{i}.up.test.")).unwrap(),
            RecordType::MX,
        ));
        if let Some(d) = dnssec_ok {
            let mut e = Edns::new();
            e.set_dnssec_ok(d);
            q.set_edns(e);
        }
        let mut out = vec![0u8; 65_535];
        let len = f.resolve(&q.to_vec().unwrap(), Transport::Tcp, &mut out);
        let m = Message::from_vec(&out[..len]).unwrap();
        assert_eq!(m.metadata.authentic_data, want, "case {i}: {m}");
        assert_eq!(m.answers.len(), 1, "{m}");
        assert_eq!(m.additionals.len(), 1, "{m}");
        assert_eq!(m.additionals[0].name.to_string(), "mx.up.test.");
        assert_eq!(m.edns.is_some(), dnssec_ok.is_some());
    }
}
