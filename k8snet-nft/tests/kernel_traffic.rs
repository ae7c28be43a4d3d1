//! Real TCP traffic between test namespaces proves that what we program
//! behaves as written: a verdict map drops one port and accepts another; a
//! `jhash ... mod M seed S map @slots` DNAT sends each flow to the backend
//! `predict_jhash_slot` names; an element added with a 1 s timeout matches,
//! then expires; a dynamic set learns clients from the packet path.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::thread;
use std::time::{Duration, Instant};

use common::{NameServer, ask, ask_from, in_ns, key, rule, v4};
use k8snet_nft::{
    Batch, Chain, ChainType, DataType, Element, Family, Hook, Key, MapValue, Op, Policy, Set,
    SetFlags, Table, Value, Verdict, diff, key_bytes, predict_jhash_slot,
};
use k8snet_testnet::{Testnet, kernel_test, plan};

const SEED: u32 = 0xabc;
const SLOTS: u32 = 4;
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

fn backend(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 10 + u8::try_from(i).unwrap())
}

/// The client's table: DNAT of the service by jhash of source address and
/// port into a slot map.
fn client_table() -> Table {
    let mut slots = Set::map(
        vec![DataType::Integer(32)],
        vec![DataType::Ipv4Addr, DataType::InetService],
    );
    for i in 0..SLOTS {
        slots = slots.with_mapping(
            Key::one(Value::Int(u64::from(i))),
            MapValue::Data(key(&[Value::Ipv4(backend(i)), Value::Port(8080)])),
        );
    }
    let out = Chain::base(ChainType::Nat, Hook::Output, -100, Policy::Accept).with_rule(rule(&format!(
        "ip daddr {SERVICE} tcp dport 80 dnat ip to jhash ip saddr . tcp sport mod {SLOTS} seed {SEED:#x} map @slots"
    )));
    Table::new(Family::Inet, "k8snet-lb")
        .with_set("slots", slots)
        .with_chain("out", out)
}

/// Backend 0's table: a verdict map by port, a timeout blocklist and a
/// dynamic set of clients seen.
fn server_table() -> Table {
    let ports = Set::verdict_map(vec![DataType::InetService])
        .with_mapping(
            Key::one(Value::Port(7001)),
            MapValue::Verdict(Verdict::Drop),
        )
        .with_mapping(
            Key::one(Value::Port(7002)),
            MapValue::Verdict(Verdict::Accept),
        );
    let blocked = Set::new(vec![DataType::Ipv4Addr]).with_flags(SetFlags {
        timeout: true,
        ..SetFlags::default()
    });
    let clients = Set::new(vec![DataType::Ipv4Addr]).with_flags(SetFlags {
        timeout: true,
        dynamic: true,
        ..SetFlags::default()
    });
    let input = Chain::base(ChainType::Filter, Hook::Input, 0, Policy::Accept)
        .with_rule(rule("ct state new update @clients { ip saddr timeout 1m }"))
        .with_rule(rule("ip saddr @blocked drop"))
        .with_rule(rule("tcp dport vmap @ports"));
    Table::new(Family::Inet, "k8snet-pol")
        .with_set("ports", ports)
        .with_set("blocked", blocked)
        .with_set("clients", clients)
        .with_chain("input", input)
}

#[test]
fn maps_hashes_and_timeouts_steer_real_traffic() {
    kernel_test!();
    let mut tn = Testnet::new("nfttraffic").unwrap();
    let br = tn.add_bridge("br0", &plan::gateways(0)).unwrap();
    let client = tn
        .add_bridged_pod(&br, "client", &[plan::pod_v4(0, 2)])
        .unwrap();
    let servers: Vec<_> = (0..SLOTS)
        .map(|i| {
            let host = 10 + u8::try_from(i).unwrap();
            tn.add_bridged_pod(&br, &format!("srv{i}"), &[plan::pod_v4(0, host)])
                .unwrap()
        })
        .collect();
    let mut running = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let addr = SocketAddr::from((backend(u32::try_from(i).unwrap()), 8080));
        running.push(NameServer::start(s.netns(), addr, &format!("srv{i}")));
    }
    for port in [7001, 7002] {
        running.push(NameServer::start(
            servers[0].netns(),
            SocketAddr::from((backend(0), port)),
            "srv0",
        ));
    }

    in_ns(client.netns(), |nft| {
        nft.apply(&diff(None, &client_table()).unwrap()).unwrap()
    });
    in_ns(servers[0].netns(), |nft| {
        nft.apply(&diff(None, &server_table()).unwrap()).unwrap()
    });

    // jhash DNAT: every flow lands on the predicted backend.
    let types = [DataType::Ipv4Addr, DataType::InetService];
    let mut hit = [0u32; SLOTS as usize];
    for sport in 40_000..40_024u16 {
        let k = key_bytes(&key(&[Value::Ipv4(CLIENT), Value::Port(sport)]), &types).unwrap();
        let slot = predict_jhash_slot(&k, SEED, SLOTS);
        let got = ask_from(
            client.netns(),
            SocketAddrV4::new(CLIENT, sport),
            SocketAddrV4::new(SERVICE, 80),
        )
        .unwrap_or_else(|e| panic!("flow from port {sport}: {e}"));
        assert_eq!(got, format!("srv{slot}"), "flow from port {sport}");
        hit[slot as usize] += 1;
    }
    assert!(
        hit.iter().filter(|n| **n > 0).count() >= 2,
        "flows spread: {hit:?}"
    );

    // Verdict map: 7001 dropped, 7002 accepted.
    let short = Duration::from_millis(500);
    let to = |port| SocketAddr::from((backend(0), port));
    assert_eq!(ask(client.netns(), to(7002), short).unwrap(), "srv0");
    assert!(
        ask(client.netns(), to(7001), short).is_err(),
        "port 7001 must be dropped"
    );

    // The dynamic set learnt the client from the packet path.
    let learnt = in_ns(servers[0].netns(), |nft| {
        nft.read_table(Family::Inet, "k8snet-pol").unwrap().unwrap()
    });
    assert!(
        learnt.sets["clients"]
            .elements
            .contains_key(&Key::one(Value::Ipv4(CLIENT)))
    );

    // A blocklist element with a 1 s timeout matches, then expires.
    let mut batch = Batch::new(Family::Inet, "k8snet-pol");
    batch.know_set("blocked", &server_table().sets["blocked"]);
    let element = Element {
        timeout: Some(Duration::from_secs(1)),
        ..Element::default()
    };
    batch.push(Op::AddElements {
        set: "blocked".into(),
        elements: vec![(Key::one(v4("198.18.0.2")), element)],
    });
    let added = Instant::now();
    in_ns(servers[0].netns(), |nft| nft.apply(&batch).unwrap());
    assert!(
        ask(client.netns(), to(7002), short).is_err(),
        "blocked while the element lives"
    );
    let deadline = added + Duration::from_secs(10);
    let reopened = loop {
        if ask(client.netns(), to(7002), Duration::from_millis(200)).is_ok() {
            break added.elapsed();
        }
        assert!(Instant::now() < deadline, "the element never expired");
        thread::sleep(Duration::from_millis(100));
    };
    assert!(
        reopened >= Duration::from_millis(900),
        "expired after {reopened:?}"
    );
    let after = in_ns(servers[0].netns(), |nft| {
        nft.read_table(Family::Inet, "k8snet-pol").unwrap().unwrap()
    });
    assert!(after.sets["blocked"].elements.is_empty());

    let served: usize = running.into_iter().map(NameServer::stop).sum();
    assert!(served >= 24, "servers answered {served}");
}
