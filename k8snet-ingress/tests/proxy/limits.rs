//! Request smuggling attempts and limits, on raw sockets and with curl.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Backend, curl, ingress, load, proxy, service, simple_rule, url};

fn setup(annotations: &str) -> (Backend, k8snet_ingress::proxy::Proxy) {
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&ingress(
        "i",
        annotations,
        &simple_rule("shop.com", "web"),
    )));
    let p = proxy(objects, false);
    (b, p)
}

/// Writes raw bytes and reads until the proxy closes the connection.
fn raw(p: &k8snet_ingress::proxy::Proxy, bytes: &str) -> String {
    let mut s = TcpStream::connect(p.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn responses(text: &str) -> usize {
    text.matches("HTTP/1.1 ").count()
}

#[test]
fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let (b, p) = setup("");
    // CL.TE: a front end trusting Content-Length would see one request and
    // forward the rest; here chunked wins, the rest is never read as a
    // request, and the connection is closed after the one response.
    let cl_te = "POST /a HTTP/1.1\r\nHost: shop.com\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: shop.com\r\n\r\n";
    let got = raw(&p, cl_te);
    assert_eq!(responses(&got), 1, "{got}");
    // TE.CL: the header order reversed, a chunk that hides a request.
    let hidden = "GET /smuggled2 HTTP/1.1\r\nHost: shop.com\r\n\r\n";
    let te_cl = format!(
        "POST /b HTTP/1.1\r\nHost: shop.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\nGET /smuggled3 HTTP/1.1\r\nHost: shop.com\r\n\r\n",
        hidden.len()
    );
    let got = raw(&p, &te_cl);
    assert_eq!(responses(&got), 1, "{got}");
    assert!(
        got.contains(&format!("body={}", hidden.len())),
        "the chunk was read as body: {got}"
    );
    let seen = b.seen();
    assert_eq!(seen, ["/a", "/b"], "nothing smuggled reached the backend");
}

#[test]
fn ambiguous_framing_is_refused_with_400() {
    let (b, p) = setup("");
    for attempt in [
        // Two different lengths.
        "POST /c HTTP/1.1\r\nHost: shop.com\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
        // A coding that does not end in chunked.
        "POST /d HTTP/1.1\r\nHost: shop.com\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        "POST /e HTTP/1.1\r\nHost: shop.com\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        // Transfer-Encoding does not exist in HTTP/1.0.
        "POST /f HTTP/1.0\r\nHost: shop.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // Whitespace before the colon (a classic parser disagreement).
        "POST /g HTTP/1.1\r\nHost: shop.com\r\nContent-Length : 5\r\n\r\nhello",
        // A length that is not a number.
        "POST /h HTTP/1.1\r\nHost: shop.com\r\nContent-Length: +5\r\n\r\nhello",
    ] {
        let got = raw(&p, attempt);
        assert!(got.starts_with("HTTP/1.1 400"), "{attempt:?} → {got}");
        assert_eq!(responses(&got), 1);
    }
    assert!(b.seen().is_empty(), "{:?}", b.seen());
}

#[test]
fn oversized_heads_and_bodies_are_refused() {
    let (b, p) = setup("nginx.ingress.kubernetes.io/proxy-body-size: 1k");
    let (resolve, u) = url(&p, "shop.com", "/upload");
    let big_header = format!("X-Big: {}", "a".repeat(40 * 1024));
    assert_eq!(
        curl(&["--resolve", &resolve, "-H", &big_header, &u]).status,
        431
    );
    let body = "b".repeat(2048);
    let got = curl(&["--resolve", &resolve, "--data-binary", &body, &u]);
    assert_eq!(got.status, 413, "{got:?}");
    assert!(got.body.contains("proxy-body-size"), "{}", got.body);
    assert!(b.seen().is_empty(), "refused before reaching the backend");
    // Chunked, so the length is known only while streaming.
    let got = curl(&[
        "--resolve",
        &resolve,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &body,
        &u,
    ]);
    assert_eq!(got.status, 413, "{got:?}");
    let small = "c".repeat(1000);
    let got = curl(&["--resolve", &resolve, "--data-binary", &small, &u]);
    assert_eq!((got.status, got.field("body")), (200, Some("1000")));
}

#[test]
fn a_slow_client_is_cut_off_after_the_header_timeout() {
    let (_b, p) = setup("");
    let mut s = TcpStream::connect(p.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\nHost: shop.com\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let waited = start.elapsed();
    // header_read_timeout is 2 s in these tests.
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}
