//! The ctnetlink client against the kernel: a UDP flow over loopback in a
//! test namespace is dumped with both tuples and its id; a delete carrying
//! another id leaves it alone (so a delete names exactly one entry); the
//! right delete removes it, and a second one finds it gone (not an error).
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use common::{in_ns, rule};
use k8snet_nft::conntrack::{AF_INET, AF_INET6, Conntrack, Entry, UDP};
use k8snet_nft::{Chain, ChainType, Family, Hook, Policy, Table, diff};
use k8snet_testnet::{Testnet, kernel_test};

const CLIENT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 40001);
const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 40002);

/// A table whose rule uses conntrack, so the namespace tracks flows.
fn tracking_table() -> Table {
    let out = Chain::base(ChainType::Filter, Hook::Output, 0, Policy::Accept)
        .with_rule(rule("ct state invalid drop"));
    Table::new(Family::Inet, "k8snet-ct").with_chain("out", out)
}

/// The entry of the flow CLIENT → SERVER, if the kernel has one.
fn flow(ct: &mut Conntrack) -> Option<Entry> {
    ct.entries(AF_INET).unwrap().into_iter().find(|e| {
        e.orig.proto == UDP
            && (e.orig.src, e.orig.sport) == (CLIENT.ip(), CLIENT.port())
            && (e.orig.dst, e.orig.dport) == (SERVER.ip(), SERVER.port())
    })
}

#[test]
fn lists_and_deletes_exactly_the_dumped_entry() {
    kernel_test!();
    let tn = Testnet::new("nftct").unwrap();
    in_ns(tn.node(), |nft| {
        nft.apply(&diff(None, &tracking_table()).unwrap()).unwrap();
    });
    tn.node()
        .run(|| {
            let server = UdpSocket::bind(SERVER).unwrap();
            let client = UdpSocket::bind(CLIENT).unwrap();
            client.send_to(b"ping", SERVER).unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(server.recv(&mut buf).unwrap(), 4);

            let mut ct = Conntrack::open().unwrap();
            let e = flow(&mut ct).expect("the flow's entry");
            assert_eq!(e.family, AF_INET);
            let reply = e.reply.expect("a dumped entry has a reply tuple");
            assert_eq!((reply.src, reply.sport), (SERVER.ip(), SERVER.port()));
            assert_eq!((reply.dst, reply.dport), (CLIENT.ip(), CLIENT.port()));
            assert_eq!(e.zone, None);
            let id = e.id.expect("the kernel dumps the entry's id");
            // Both families: the flow is there, and nothing of IPv6 is.
            let all = ct.list().unwrap();
            assert!(all.contains(&e), "{all:?}");
            assert!(ct.entries(AF_INET6).unwrap().is_empty());

            // Another id: not this entry.
            let other = Entry {
                id: Some(id.wrapping_add(1)),
                ..e
            };
            assert!(!ct.delete(&other).unwrap());
            assert_eq!(flow(&mut ct), Some(e));

            assert!(ct.delete(&e).unwrap());
            assert_eq!(flow(&mut ct), None);
            assert!(!ct.delete(&e).unwrap(), "gone already");

            // delete_where counts what it deleted, in the families given.
            client.send_to(b"again", SERVER).unwrap();
            assert_eq!(server.recv(&mut buf).unwrap(), 5);
            let ours = |e: &Entry| e.orig.sport == CLIENT.port();
            assert_eq!(ct.delete_where(&[AF_INET6], ours).unwrap(), 0);
            assert!(flow(&mut ct).is_some());
            assert_eq!(ct.delete_where(&[AF_INET, AF_INET6], ours).unwrap(), 1);
            assert_eq!(flow(&mut ct), None);
        })
        .unwrap();
}
