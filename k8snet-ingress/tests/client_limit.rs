//! Per-client connection limits (`ProxyConfig::max_connections_per_client`):
//! the refused requests are answered 503 and show in the access log,
//! captured here by a subscriber installed for this test binary alone.
#![cfg(feature = "linux")]
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "proxy/support.rs"]
mod support;

#[path = "proxy/access_capture.rs"]
mod access_capture;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use access_capture::{events, logged};
use support::{Backend, ingress, load, proxy_with, service, simple_rule};

/// Sends one request on a kept-alive connection and reads its response
/// (the head, then `Content-Length` bytes): `(head, body)`.
fn exchange(s: &mut TcpStream, path: &str) -> (String, String) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: shop.com\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let line = read_line(s);
            let size = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0u8; size + 2];
            s.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
        body.resize(len, 0);
        s.read_exact(&mut body).unwrap();
    }
    (head, String::from_utf8_lossy(&body).into_owned())
}

fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        s.read_exact(&mut byte).unwrap();
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A connection to `addr` from the source address `ip`.
fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        sock.connect(addr).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn connections_beyond_a_clients_limit_get_503_are_logged_and_slots_come_back() {
    events();
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&ingress("i", "", &simple_rule("shop.com", "web"))));
    let p = proxy_with(objects, false, |c| {
        c.max_connections_per_client = NonZeroUsize::new(2);
    });
    let addr = p.local_addrs()[0];

    // Two connections from 127.0.0.1: both served (and kept open).
    let mut c1 = connect(addr);
    let mut c2 = connect(addr);
    assert!(exchange(&mut c1, "/one").0.starts_with("HTTP/1.1 200"));
    assert!(exchange(&mut c2, "/two").0.starts_with("HTTP/1.1 200"));

    // The third: 503, then closed.
    let mut c3 = connect(addr);
    let (head, body) = exchange(&mut c3, "/third");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(body.contains("per-client connection limit"), "{body}");
    let mut rest = Vec::new();
    let end = c3.read_to_end(&mut rest);
    assert!(
        end.is_ok() && rest.is_empty(),
        "closed after the 503: {end:?} {:?}",
        String::from_utf8_lossy(&rest)
    );
    let e = logged("/third");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(
        (
            e[0]["status"].as_str(),
            e[0]["upstream"].as_str(),
            e[0]["client"].as_str()
        ),
        ("503", "-", "127.0.0.1")
    );
    assert_eq!(e[0]["refused"], "per-client connection limit");

    // Another client address is not held back by 127.0.0.1's connections.
    let mut other = connect_from("127.0.0.2", addr);
    let (head, body) = exchange(&mut other, "/other");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("h:x-real-ip=127.0.0.2"), "{body}");

    // Closing one connection gives its slot back (once the proxy has seen
    // the close: tried until then, for at most 5 s).
    drop(c1);
    let deadline = Instant::now() + Duration::from_secs(5);
    let head = loop {
        let mut c = connect(addr);
        let (head, _) = exchange(&mut c, "/again");
        if head.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
            break head;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The kept connection was never disturbed.
    assert!(
        exchange(&mut c2, "/two-again")
            .0
            .starts_with("HTTP/1.1 200")
    );
    assert!(!b.seen().iter().any(|p| p == "/third"), "{:?}", b.seen());
}

#[test]
fn without_a_limit_many_connections_from_one_client_are_served() {
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&ingress("i", "", &simple_rule("shop.com", "web"))));
    let p = proxy_with(objects, false, |_| {});
    let addr = p.local_addrs()[0];
    let mut conns: Vec<TcpStream> = (0..8).map(|_| connect(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let (head, _) = exchange(c, &format!("/n{i}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{i}: {head}");
    }
}

#[test]
fn a_websocket_holds_its_clients_slot_until_it_closes() {
    let b = Backend::start("ws", "127.0.0.1");
    let mut objects = service("web", "ws", &[b.addr], None);
    objects.extend(load(&ingress("i", "", &simple_rule("shop.com", "ws"))));
    let p = proxy_with(objects, false, |c| {
        c.max_connections_per_client = NonZeroUsize::new(1);
    });
    let addr = p.local_addrs()[0];
    let mut ws = connect(addr);
    ws.write_all(
        b"GET /chat HTTP/1.1\r\nHost: shop.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ws.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // The tunnel works, and outlives the HTTP connection it came from.
    ws.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    ws.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping");

    // While it is open, the client has no other slot.
    let mut c = connect(addr);
    assert!(
        exchange(&mut c, "/while-open")
            .0
            .starts_with("HTTP/1.1 503")
    );

    // Closed: the slot comes back (tried for at most 5 s).
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(5);
    let head = loop {
        let mut c = connect(addr);
        let (head, _) = exchange(&mut c, "/after-close");
        if head.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
            break head;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
