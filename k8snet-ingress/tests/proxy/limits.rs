//! Request smuggling attempts and limits, on raw sockets and with curl.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Backend, curl, ingress, load, proxy, proxy_with, service, simple_rule, url};

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
    raw_closed(p, bytes).0
}

/// Writes raw bytes and reads for up to 5 s: what came, and whether the
/// proxy closed the connection (rather than the read timing out).
fn raw_closed(p: &k8snet_ingress::proxy::Proxy, bytes: &str) -> (String, bool) {
    let mut s = TcpStream::connect(p.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes.as_bytes()).unwrap();
    let mut out = Vec::new();
    let closed = s.read_to_end(&mut out).is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

fn responses(text: &str) -> usize {
    text.matches("HTTP/1.1 ").count()
}

#[test]
fn content_length_with_transfer_encoding_is_refused_with_400_and_closed() {
    let (b, p) = setup("");
    // CL.TE: a front end trusting Content-Length would see one request and
    // forward the rest as the next one.
    let cl_te = "POST /a HTTP/1.1\r\nHost: shop.com\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: shop.com\r\n\r\n";
    // TE.CL: the header order reversed, a chunk that hides a request.
    let hidden = "GET /smuggled2 HTTP/1.1\r\nHost: shop.com\r\n\r\n";
    let te_cl = format!(
        "POST /b HTTP/1.1\r\nHost: shop.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\nGET /smuggled3 HTTP/1.1\r\nHost: shop.com\r\n\r\n",
        hidden.len()
    );
    // Any coding, any case, the head arriving in one piece or byte by byte.
    let odd = "POST /c HTTP/1.1\r\nhost: shop.com\r\ncontent-length: 0\r\nTRANSFER-ENCODING: gzip, chunked\r\n\r\n0\r\n\r\n";
    for attempt in [cl_te, &te_cl, odd] {
        let (got, closed) = raw_closed(&p, attempt);
        assert!(got.starts_with("HTTP/1.1 400 "), "{attempt:?} → {got}");
        assert_eq!(responses(&got), 1, "{got}");
        assert!(closed, "the connection stays open after {attempt:?}");
    }
    let mut s = TcpStream::connect(p.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for byte in cl_te.as_bytes() {
        if s.write_all(&[*byte]).is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    assert!(s.read_to_end(&mut out).is_ok(), "closed");
    assert!(
        out.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        b.seen().is_empty(),
        "nothing reached the backend: {:?}",
        b.seen()
    );
}

#[test]
fn requests_before_a_refused_one_are_answered_in_order() {
    let (b, p) = setup("");
    // Pipelined: a GET, a POST with a body that looks like a refused head
    // (it is only a body), then the refused request and one after it.
    let body = "GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let stream = format!(
        "GET /first HTTP/1.1\r\nHost: shop.com\r\n\r\n\
         POST /second HTTP/1.1\r\nHost: shop.com\r\nContent-Length: {}\r\n\r\n{body}\
         POST /third HTTP/1.1\r\nHost: shop.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
         GET /fourth HTTP/1.1\r\nHost: shop.com\r\n\r\n",
        body.len()
    );
    let (got, closed) = raw_closed(&p, &stream);
    let statuses: Vec<&str> = got
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &got[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "400"], "{got}");
    assert!(got.contains(&format!("body={}", body.len())), "{got}");
    assert!(closed);
    assert_eq!(b.seen(), ["/first", "/second"]);
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

/// A client that keeps sending, one byte of its head every 40 ms, never
/// pauses long enough for an idle timeout: the header timeout bounds the
/// whole head (nginx's `client_header_timeout`), so it is cut anyway.
#[test]
fn a_client_dripping_its_head_is_cut_at_the_header_timeout() {
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&ingress("i", "", &simple_rule("shop.com", "web"))));
    let p = proxy_with(objects, false, |c| {
        c.header_read_timeout = Duration::from_millis(200);
    });
    let head = format!(
        "GET /drip HTTP/1.1\r\nHost: shop.com\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(40)
    );
    let mut s = TcpStream::connect(p.local_addrs()[0]).unwrap();
    let mut reader = s.try_clone().unwrap();
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let read = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        (out, start.elapsed())
    });
    // The whole head takes about 3 s at this pace.
    for byte in head.as_bytes() {
        if read.is_finished() || s.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    let (out, waited) = read.join().unwrap();
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_millis(1500),
        "cut after {waited:?}"
    );
    assert!(b.seen().is_empty());
}

/// A connection that sends nothing at all is closed at the header timeout
/// too (before the proxy has even seen which HTTP version it speaks).
#[test]
fn a_silent_connection_is_closed_at_the_header_timeout() {
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&ingress("i", "", &simple_rule("shop.com", "web"))));
    let p = proxy_with(objects, false, |c| {
        c.header_read_timeout = Duration::from_millis(200);
    });
    let mut s = TcpStream::connect(p.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let closed = s.read_to_end(&mut out).is_ok();
    let waited = start.elapsed();
    assert!(closed && out.is_empty(), "{closed} {out:?}");
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_millis(1500),
        "closed after {waited:?}"
    );
}

/// Reads one (chunked) response.
fn read_response(s: &mut TcpStream) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        // The proxy sends the test backend's answers chunked.
        if out.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Beyond `max_connections`, a connection waits (it is not refused) and is
/// served as soon as an open one ends.
#[test]
fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&ingress("i", "", &simple_rule("shop.com", "web"))));
    let p = proxy_with(objects, false, |c| {
        c.max_connections = std::num::NonZeroUsize::new(1);
        c.header_read_timeout = Duration::from_secs(30);
    });
    let request = b"GET /held HTTP/1.1\r\nHost: shop.com\r\n\r\n";
    let mut first = TcpStream::connect(p.local_addrs()[0]).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    first.write_all(request).unwrap();
    let got = read_response(&mut first).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");

    // The kernel completes the handshake; the proxy does not serve it.
    let mut second = TcpStream::connect(p.local_addrs()[0]).unwrap();
    second
        .write_all(b"GET /waiting HTTP/1.1\r\nHost: shop.com\r\n\r\n")
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let err = second.read(&mut byte).expect_err("served beyond the limit");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    // The first connection is still served meanwhile (it holds the slot).
    first.write_all(request).unwrap();
    assert!(
        read_response(&mut first)
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    assert_eq!(b.seen(), ["/held", "/held"]);

    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let got = read_response(&mut second).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(b.seen(), ["/held", "/held", "/waiting"]);
}
