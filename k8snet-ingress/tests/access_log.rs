//! The access log: one `tracing` event per request, captured here by a
//! subscriber installed for this test binary alone (the proxy's workers
//! run on their own threads, so it has to be the global one).
#![cfg(feature = "linux")]
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "proxy/support.rs"]
mod support;

#[path = "proxy/access_capture.rs"]
mod access_capture;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use access_capture::{events, logged};
use support::{Backend, get, ingress, load, proxy, service, simple_rule};

fn setup() -> (Backend, k8snet_ingress::proxy::Proxy) {
    events();
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&ingress("i", "", &simple_rule("shop.com", "web"))));
    (b, proxy(objects, false))
}

#[test]
fn a_proxied_request_is_logged_once_with_its_fields() {
    let (b, p) = setup();
    let got = get(&p, "shop.com", "/orders/42?page=2");
    assert_eq!(got.status, 200);
    let port = p.local_addrs()[0].port();
    let events = logged("/orders/42");
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    let field = |k: &str| e.get(k).map(String::as_str);
    assert_eq!(field("level"), Some("INFO"));
    assert_eq!(field("method"), Some("GET"));
    assert_eq!(field("host"), Some(format!("shop.com:{port}").as_str()));
    assert_eq!(field("status"), Some("200"));
    assert_eq!(field("upstream"), Some(b.addr.to_string().as_str()));
    assert_eq!(field("ingress"), Some("web/i"));
    assert_eq!(field("client"), Some("127.0.0.1"));
    let micros: u64 = field("duration_us").unwrap().parse().unwrap();
    assert!(micros > 0 && micros < 10_000_000, "{micros}");
}

#[test]
fn unrouted_and_refused_requests_are_logged_with_their_status() {
    let (b, p) = setup();
    let got = get(&p, "nowhere.example", "/missing");
    assert_eq!(got.status, 404);
    let e = logged("/missing");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0]["status"], "404");
    assert_eq!(e[0]["upstream"], "-");
    assert_eq!(
        e[0]["host"],
        format!("nowhere.example:{}", p.local_addrs()[0].port())
    );

    // Refused for ambiguous framing before hyper (and the handler) see it.
    let mut s = TcpStream::connect(p.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"POST /smuggle HTTP/1.1\r\nHost: shop.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 400 "));
    let e = logged("/smuggle");
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(
        (
            e[0]["method"].as_str(),
            e[0]["status"].as_str(),
            e[0]["host"].as_str()
        ),
        ("POST", "400", "shop.com")
    );
    assert_eq!(e[0]["refused"], "both Content-Length and Transfer-Encoding");
    assert!(b.seen().is_empty());
}
