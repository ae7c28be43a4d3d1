//! Diff-based updates: apply A, then `diff(A, B)`; the kernel reads back as
//! B, and a TCP connection that a `ct state established` rule accepts keeps
//! working across the update, while the rule that let it in is gone (a new
//! connection is dropped). Then back from B to A.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{IO_TIMEOUT, in_ns, key, rule, v4};
use k8snet_nft::{
    Chain, ChainType, DataType, Family, Hook, Policy, Set, Table, Value, diff, render,
};
use k8snet_testnet::{Testnet, kernel_test, plan};

fn table_a() -> Table {
    let input = Chain::base(ChainType::Filter, Hook::Input, 0, Policy::Drop)
        .with_rule(rule("ct state established,related accept"))
        .with_rule(rule("tcp dport 9000 accept"))
        .with_rule(rule("ip saddr @friends jump audit"));
    let output =
        Chain::base(ChainType::Filter, Hook::Output, 0, Policy::Accept).with_rule(rule("counter"));
    let friends = Set::new(vec![DataType::Ipv4Addr])
        .with_element(key(&[v4("198.18.0.7")]))
        .with_element(key(&[v4("198.18.0.8")]));
    let ports = Set::new(vec![DataType::InetService]).with_element(key(&[Value::Port(22)]));
    Table::new(Family::Inet, "k8snet-upd")
        .with_set("friends", friends)
        .with_set("ports", ports)
        .with_chain("input", input)
        .with_chain("output", output)
        .with_chain("audit", Chain::regular().with_rule(rule("counter return")))
}

/// B: the port 9000 rule is gone, set elements change, a set changes type
/// (deleted and created again), a chain goes and one comes, and the output
/// chain moves to another priority (deleted and created again).
fn table_b() -> Table {
    let input = Chain::base(ChainType::Filter, Hook::Input, 0, Policy::Drop)
        .with_rule(rule("ct state established,related accept"))
        .with_rule(rule("ip saddr . tcp dport @ports accept"))
        .with_rule(rule("ip saddr @friends jump audit2"));
    let output =
        Chain::base(ChainType::Filter, Hook::Output, 10, Policy::Accept).with_rule(rule("counter"));
    let friends = Set::new(vec![DataType::Ipv4Addr])
        .with_element(key(&[v4("198.18.0.8")]))
        .with_element(key(&[v4("198.18.0.9")]));
    let ports = Set::new(vec![DataType::Ipv4Addr, DataType::InetService])
        .with_element(key(&[v4("198.18.0.9"), Value::Port(9001)]));
    Table::new(Family::Inet, "k8snet-upd")
        .with_set("friends", friends)
        .with_set("ports", ports)
        .with_chain("input", input)
        .with_chain("output", output)
        .with_chain("audit2", Chain::regular().with_rule(rule("counter return")))
}

fn exchange(s: &mut TcpStream, byte: u8) -> std::io::Result<u8> {
    s.write_all(&[byte])?;
    let mut b = [0u8];
    s.read_exact(&mut b)?;
    Ok(b[0])
}

#[test]
fn an_established_connection_survives_a_diff_update() {
    kernel_test!();
    let mut tn = Testnet::new("nftupdate").unwrap();
    let br = tn.add_bridge("br0", &plan::gateways(0)).unwrap();
    let client = tn
        .add_bridged_pod(&br, "client", &[plan::pod_v4(0, 2)])
        .unwrap();
    let server = tn
        .add_bridged_pod(&br, "server", &[plan::pod_v4(0, 3)])
        .unwrap();
    let addr = SocketAddr::from((server.ipv4().unwrap(), 9000));

    // An echo server for one connection, bounded in time.
    let listener = server
        .netns()
        .run(|| TcpListener::bind(addr))
        .unwrap()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let echo = thread::spawn(move || {
        let start = Instant::now();
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(_) if start.elapsed() < Duration::from_secs(20) => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("no connection: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut b = [0u8];
        while conn.read_exact(&mut b).is_ok() {
            conn.write_all(&b).unwrap();
        }
    });

    let (a, b) = (table_a(), table_b());
    in_ns(server.netns(), |nft| {
        nft.apply(&diff(None, &a).unwrap()).unwrap()
    });
    let mut conn = client
        .netns()
        .run(|| TcpStream::connect_timeout(&addr, IO_TIMEOUT))
        .unwrap()
        .unwrap();
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(exchange(&mut conn, 1).unwrap(), 1);

    let batch = diff(Some(&a), &b).unwrap();
    let back = in_ns(server.netns(), |nft| {
        nft.apply(&batch).unwrap_or_else(|e| panic!("{e}\n{batch}"));
        nft.read_table(Family::Inet, "k8snet-upd").unwrap()
    });
    assert_eq!(
        back.as_ref(),
        Some(&b),
        "readback:\n{}",
        back.as_ref().map(render).unwrap_or_default()
    );

    // The established connection still works; a new one is dropped.
    assert_eq!(exchange(&mut conn, 2).unwrap(), 2);
    let fresh = client
        .netns()
        .run(|| TcpStream::connect_timeout(&addr, Duration::from_millis(500)))
        .unwrap();
    assert!(
        fresh.is_err(),
        "port 9000 is closed for new connections under B"
    );
    assert_eq!(exchange(&mut conn, 3).unwrap(), 3);
    drop(conn);
    echo.join().unwrap();

    // And back: B to A.
    let back = in_ns(server.netns(), |nft| {
        nft.apply(&diff(Some(&b), &a).unwrap()).unwrap();
        nft.read_table(Family::Inet, "k8snet-upd").unwrap()
    });
    assert_eq!(back.as_ref(), Some(&a));
}

/// The diff property against the real kernel: for generated pairs of
/// states, applying `diff(a, b)` over `a` reads back as `b`.
#[test]
fn generated_diffs_read_back_as_the_new_state() {
    kernel_test!();
    let tn = Testnet::new("nftprop").unwrap();
    in_ns(tn.node(), |nft| {
        let mut current = None;
        for seed in 1..=40u64 {
            let next = common::generate::gen_table(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let batch = diff(current.as_ref(), &next).unwrap();
            nft.apply(&batch)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{batch}"));
            let back = nft.read_table(Family::Inet, &next.name).unwrap();
            assert_eq!(back.as_ref(), Some(&next), "seed {seed}\n{batch}");
            current = back;
        }
    });
}
