//! Helpers shared by the integration tests: real TCP/UDP exchanges between
//! namespaces, and a snapshot of the host's network state.

#![allow(dead_code, unreachable_pub)] // each test binary uses a subset

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::thread;
use std::time::Duration;

use k8snet_testnet::Netns;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Listens on `server_ip` inside `server`, connects from `client`, and checks
/// a request/reply both ways plus the source address the server saw.
pub fn tcp_exchange(server: &Netns, server_ip: IpAddr, client: &Netns, client_ip: IpAddr) {
    let listener = server
        .run(|| TcpListener::bind((server_ip, 0)))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // The listener lives in the server namespace whatever thread accepts.
    let accepter = thread::spawn(move || {
        let (mut conn, peer) = listener.accept().unwrap();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0; 4];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        conn.write_all(b"pong").unwrap();
        peer.ip()
    });
    let reply = client
        .run(|| {
            let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.write_all(b"ping").unwrap();
            let mut buf = [0; 4];
            s.read_exact(&mut buf).unwrap();
            buf
        })
        .unwrap();
    assert_eq!(&reply, b"pong");
    assert_eq!(accepter.join().unwrap(), client_ip);
}

/// The same over UDP; the client retries a few times (bounded) in case the
/// first datagram races neighbour resolution.
pub fn udp_exchange(server: &Netns, server_ip: IpAddr, client: &Netns, client_ip: IpAddr) {
    let sock = server
        .run(|| UdpSocket::bind((server_ip, 0)))
        .unwrap()
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let echo = thread::spawn(move || {
        sock.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0; 16];
        let (n, peer) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
        // Answer every retry that may follow, until the client goes quiet.
        sock.send_to(b"pong", peer).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        while let Ok((_, p)) = sock.recv_from(&mut buf) {
            sock.send_to(b"pong", p).unwrap();
        }
        peer.ip()
    });
    let reply = client
        .run(|| udp_ask(addr, client_ip))
        .unwrap()
        .expect("no UDP reply");
    assert_eq!(&reply, b"pong");
    assert_eq!(echo.join().unwrap(), client_ip);
}

fn udp_ask(server: SocketAddr, client_ip: IpAddr) -> Option<[u8; 4]> {
    let s = UdpSocket::bind((client_ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for _ in 0..10 {
        s.send_to(b"ping", server).unwrap();
        let mut buf = [0; 4];
        if let Ok((4, from)) = s.recv_from(&mut buf) {
            assert_eq!(from, server);
            return Some(buf);
        }
    }
    None
}

/// The host's links, addresses and routes, with lifetimes (which count
/// down by themselves) removed. Runs on the calling thread: the test thread
/// stays in the host namespace.
pub fn host_snapshot() -> String {
    let mut out = String::new();
    for args in [
        &["-o", "link"][..],
        &["-o", "addr"],
        &["route"],
        &["-6", "route"],
    ] {
        let o = Command::new("ip").args(args).output().unwrap();
        assert!(o.status.success(), "ip {args:?}");
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            out.push_str(&without_lifetimes(line));
            out.push('\n');
        }
    }
    out
}

fn without_lifetimes(line: &str) -> String {
    let mut words = Vec::new();
    let mut skip_next = false;
    for w in line.split_whitespace() {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        skip_next = matches!(w, "valid_lft" | "preferred_lft" | "expires");
        if !skip_next {
            words.push(w);
        }
    }
    words.join(" ")
}

/// Names in `ip netns list`.
pub fn netns_list() -> Vec<String> {
    let o = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}
