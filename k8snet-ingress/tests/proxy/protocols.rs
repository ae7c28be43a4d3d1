//! HTTP/2 both ways, gRPC with trailers, TLS backends, WebSocket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::support::{
    AcceptAnyCert, Backend, curl, get, ingress, load, proxy, service, simple_rule, tables, url,
};

#[test]
fn h2c_clients_and_h2c_backends() {
    let (h1, h2) = (
        Backend::start("h1", "127.0.0.1"),
        Backend::start("h2", "127.0.0.1"),
    );
    let mut objects = service("web", "h1", &[h1.addr], None);
    // A port whose appProtocol asks for HTTP/2 without TLS.
    objects.extend(service("web", "h2", &[h2.addr], Some("kubernetes.io/h2c")));
    objects.extend(load(&format!(
        "{}{}",
        ingress("a", "", &simple_rule("one.com", "h1")),
        ingress("b", "", &simple_rule("two.com", "h2"))
    )));
    let p = proxy(objects, false);
    for (host, backend_version) in [("one.com", "HTTP/1.1"), ("two.com", "HTTP/2.0")] {
        let (resolve, u) = url(&p, host, "/v");
        let got = curl(&["--http2-prior-knowledge", "--resolve", &resolve, &u]);
        assert_eq!((got.status, got.version.as_str()), (200, "2"), "{got:?}");
        assert_eq!(got.field("version"), Some(backend_version), "{host}");
        let got = get(&p, host, "/v");
        assert_eq!((got.status, got.version.as_str()), (200, "1.1"));
        assert_eq!(got.field("version"), Some(backend_version));
    }
}

#[test]
fn grpc_over_h2c_keeps_trailers() {
    let g = Backend::start("grpc", "127.0.0.1");
    grpc_call(&g, "GRPC");
    assert_eq!(
        g.seen(),
        ["http://grpc.com/helloworld.Greeter/SayHello"],
        "an HTTP/2 request with :authority"
    );
}

/// `backend-protocol: GRPCS`: HTTP/2 over TLS to the backend (which only
/// speaks TLS, so a plain-text attempt would end in 502), trailers kept.
#[test]
fn grpcs_reaches_a_tls_backend_and_keeps_trailers() {
    let g = Backend::start_tls("grpc", "127.0.0.1");
    grpc_call(&g, "GRPCS");
    assert_eq!(
        g.seen(),
        ["https://grpc.com/helloworld.Greeter/SayHello"],
        "an HTTP/2 request over TLS"
    );
}

/// One unary gRPC call through the proxy (h2c from the client) to `g`,
/// reached with `backend-protocol: <protocol>`.
fn grpc_call(g: &Backend, protocol: &str) {
    let mut objects = service("web", "grpc", &[g.addr], None);
    objects.extend(load(&ingress(
        "grpc",
        &format!("nginx.ingress.kubernetes.io/backend-protocol: {protocol}"),
        &simple_rule("grpc.com", "grpc"),
    )));
    let p = proxy(objects, false);
    let addr = p.local_addrs()[0];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::post("http://grpc.com/helloworld.Greeter/SayHello")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{protocol}");
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let body = resp.into_body().collect().await.unwrap();
        let trailers = body.trailers().cloned().expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "from-grpc");
    });
}

#[test]
fn https_backends_are_reached_over_tls() {
    let b = Backend::start_tls("secure", "127.0.0.1");
    let mut objects = service("web", "secure", &[b.addr], None);
    objects.extend(load(&ingress(
        "s",
        "nginx.ingress.kubernetes.io/backend-protocol: HTTPS",
        &simple_rule("s.com", "secure"),
    )));
    let p = proxy(objects, false);
    let got = get(&p, "s.com", "/tls");
    assert_eq!((got.status, got.backend()), (200, "secure"), "{got:?}");
}

fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn echo(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).unwrap();
    buf
}

const UPGRADE: &str = "GET /chat HTTP/1.1\r\nHost: ws.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn a_websocket_stays_up_across_a_route_reload() {
    let ws = Backend::start("ws", "127.0.0.1");
    let other = Backend::start("other", "127.0.0.1");
    let mut base = service("web", "ws", &[ws.addr], None);
    base.extend(service("web", "other", &[other.addr], None));
    let mut with_ws = base.clone();
    with_ws.extend(load(&ingress("ws", "", &simple_rule("ws.com", "ws"))));
    let p = proxy(with_ws, false);

    let mut s = TcpStream::connect(p.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(UPGRADE.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    assert_eq!(echo(&mut s, b"before reload"), b"before reload");

    // The route goes away (ws.com now goes elsewhere): the open tunnel stays.
    let mut without = base;
    without.extend(load(&ingress("ws", "", &simple_rule("ws.com", "other"))));
    let (router, upstreams) = tables(without);
    p.update(router, upstreams);
    assert_eq!(echo(&mut s, b"after reload"), b"after reload");
    assert_eq!(
        echo(&mut s, &[0x81, 0x05, b'h', b'e', b'l', b'l', b'o']),
        [0x81, 0x05, b'h', b'e', b'l', b'l', b'o']
    );
    // New requests follow the new routes.
    assert_eq!(get(&p, "ws.com", "/").backend(), "other");
    assert_eq!(ws.seen(), ["/chat"]);
}

/// Opens a WebSocket over HTTP/2 (RFC 8441) on `h2` (a connection to the
/// proxy): an extended CONNECT to `authority` `/chat`.
async fn ws_over_h2(
    h2: &mut h2::client::SendRequest<Bytes>,
    authority: &str,
) -> (hyper::StatusCode, h2::SendStream<Bytes>, h2::RecvStream) {
    // The server announces extended CONNECT in its SETTINGS, which the
    // client has once the connection has run a little.
    let mut ready = h2.clone().ready().await.unwrap();
    for _ in 0..500 {
        if ready.is_extended_connect_protocol_enabled() {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        ready = h2.clone().ready().await.unwrap();
    }
    assert!(
        ready.is_extended_connect_protocol_enabled(),
        "SETTINGS_ENABLE_CONNECT_PROTOCOL"
    );
    let req = hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri(format!("http://{authority}/chat"))
        .extension(h2::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "chat")
        .body(())
        .unwrap();
    let (resp, send) = ready.send_request(req, false).unwrap();
    let resp = resp.await.unwrap();
    (resp.status(), send, resp.into_body())
}

/// Sends `msg` on the stream and reads back as many bytes.
async fn h2_echo(
    send: &mut h2::SendStream<Bytes>,
    recv: &mut h2::RecvStream,
    msg: &[u8],
) -> Vec<u8> {
    send.send_data(Bytes::copy_from_slice(msg), false).unwrap();
    let mut got = Vec::new();
    while got.len() < msg.len() {
        let chunk = tokio::time::timeout(Duration::from_secs(5), recv.data())
            .await
            .expect("echo within 5 s")
            .expect("the stream is open")
            .unwrap();
        let _ = recv.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    got
}

#[test]
fn a_websocket_over_http2_reaches_an_http1_backend_and_survives_a_reload() {
    let ws = Backend::start("ws", "127.0.0.1");
    let other = Backend::start("other", "127.0.0.1");
    let mut base = service("web", "ws", &[ws.addr], None);
    base.extend(service("web", "other", &[other.addr], None));
    let mut with_ws = base.clone();
    with_ws.extend(load(&ingress("ws", "", &simple_rule("ws.com", "ws"))));
    let p = proxy(with_ws, false);
    let addr = p.local_addrs()[0];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // HTTP/2 with prior knowledge, as the plain listener takes it.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let (status, mut send, mut recv) = ws_over_h2(&mut h2, "ws.com").await;
        assert_eq!(status, 200, "the backend's 101 becomes 200 on HTTP/2");
        assert_eq!(
            h2_echo(&mut send, &mut recv, b"before reload").await,
            b"before reload"
        );

        // ws.com now goes elsewhere: the open stream stays on its backend.
        let mut without = base;
        without.extend(load(&ingress("ws", "", &simple_rule("ws.com", "other"))));
        let (router, upstreams) = tables(without);
        p.update(router, upstreams);
        assert_eq!(
            h2_echo(&mut send, &mut recv, b"after reload").await,
            b"after reload"
        );
        let frame = [0x81, 0x05, b'h', b'e', b'l', b'l', b'o'];
        assert_eq!(h2_echo(&mut send, &mut recv, &frame).await, frame);

        // A new WebSocket on the same connection follows the new route.
        let (status, mut send2, mut recv2) = ws_over_h2(&mut h2, "ws.com").await;
        assert_eq!(status, 200);
        assert_eq!(h2_echo(&mut send2, &mut recv2, b"second").await, b"second");
        // The first tunnel still works next to it.
        assert_eq!(h2_echo(&mut send, &mut recv, b"still").await, b"still");
    });
    // Each backend saw one HTTP/1.1 upgrade, in origin form.
    assert_eq!(ws.seen(), ["/chat"]);
    assert_eq!(other.seen(), ["/chat"]);
}

/// A backend that answers every request on every connection with
/// `response`, ignoring any upgrade.
fn canned_backend(response: &'static str) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                while !read_head(&mut s).is_empty() {
                    if s.write_all(response.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn an_http2_websocket_whose_backend_does_not_switch_is_not_a_tunnel() {
    let ok = canned_backend("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let missing = canned_backend("HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
    let mut objects = service("web", "ok", &[ok], None);
    objects.extend(service("web", "missing", &[missing], None));
    objects.extend(load(&format!(
        "{}{}{}",
        ingress("a", "", &simple_rule("ok.com", "ok")),
        ingress("b", "", &simple_rule("missing.com", "missing")),
        ingress(
            "c",
            "nginx.ingress.kubernetes.io/backend-protocol: GRPC",
            &simple_rule("grpc.com", "ok")
        ),
    )));
    let p = proxy(objects, false);
    let addr = p.local_addrs()[0];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        // A 200 instead of 101 would read as an open tunnel on HTTP/2: 502.
        assert_eq!(ws_over_h2(&mut h2, "ok.com").await.0, 502);
        // A refusal is passed on as it is.
        assert_eq!(ws_over_h2(&mut h2, "missing.com").await.0, 404);
        // An HTTP/2 backend cannot be upgraded.
        assert_eq!(ws_over_h2(&mut h2, "grpc.com").await.0, 502);
    });
}

/// The same over TLS: ALPN h2 on the HTTPS listener, whose default
/// certificate (no Secret for ws.com) the client accepts unverified.
#[test]
fn a_websocket_over_http2_on_tls_reaches_its_backend() {
    let ws = Backend::start("ws", "127.0.0.1");
    let mut objects = service("web", "ws", &[ws.addr], None);
    objects.extend(load(&ingress("ws", "", &simple_rule("ws.com", "ws"))));
    let p = proxy(objects, true);
    let addr = p.tls_local_addrs()[0];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAnyCert::new(provider)))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(
                rustls::pki_types::ServerName::try_from("ws.com").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut h2, conn) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let (status, mut send, mut recv) = ws_over_h2(&mut h2, "ws.com").await;
        assert_eq!(status, 200);
        assert_eq!(
            h2_echo(&mut send, &mut recv, b"over tls").await,
            b"over tls"
        );
    });
    assert_eq!(ws.seen(), ["/chat"]);
}

/// An upgraded connection is a tunnel both ways until each side closes:
/// when the backend half-closes (ends its sending side) while the client
/// is still sending, everything the client sends still reaches it. (The
/// connection guard used to take that half-close for the end of an HTTP
/// exchange with the client's bytes waiting, and read and discarded them:
/// a lingering close.)
#[test]
fn a_tunnel_half_closed_by_the_backend_still_carries_the_clients_bytes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const SENT: usize = 32 * 1024 * 1024;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = l.local_addr().unwrap();
    let (half_close, on_half_close) = std::sync::mpsc::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        read_head(&mut s);
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .unwrap();
        // Not reading yet: the client's bytes pile up in the proxy.
        on_half_close.recv().unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = 0usize;
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n @ 1..) = s.read(&mut buf) {
            got += n;
        }
        tx.send(got).unwrap();
    });
    let mut objects = service("web", "ws", &[backend], None);
    objects.extend(load(&ingress("ws", "", &simple_rule("ws.com", "ws"))));
    let p = proxy(objects, false);
    let mut c = TcpStream::connect(p.local_addrs()[0]).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(UPGRADE.as_bytes()).unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let written = std::sync::Arc::new(AtomicUsize::new(0));
    let mut w = c.try_clone().unwrap();
    let counter = written.clone();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..SENT / chunk.len() {
            w.write_all(&chunk).unwrap();
            counter.fetch_add(chunk.len(), Ordering::Relaxed);
        }
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    // Half-close once the client has sent a good part and the socket
    // buffers on the way are full.
    while written.load(Ordering::Relaxed) < 2 * 1024 * 1024 {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    half_close.send(()).unwrap();
    // The backend's end of stream reaches the client...
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    // ...and all of the client's bytes the other way.
    let got = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    writer.join().unwrap();
    assert_eq!(got, SENT);
}

/// One HTTP/2 (h2c) request to `shop.com` with these headers (repeats
/// allowed); the backend's description of what it got.
fn h2c_get(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = Request::get("http://shop.com/c");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = tx
            .send_request(req.body(http_body_util::Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    })
}

/// RFC 9113 §8.2.3: "If there are multiple cookie header fields after
/// decompression, these MUST be concatenated into a single octet string
/// using the two-octet delimiter of 0x3b, 0x20 ("; ") before being passed
/// into a non-HTTP/2 context, such as an HTTP/1.1 connection". nginx joins
/// them (ngx_http_v2_construct_cookie_header); servers that read one
/// Cookie header would lose the others.
#[test]
fn http2_cookie_crumbs_reach_an_http1_backend_as_one_header() {
    let b = Backend::start("shop", "127.0.0.1");
    let mut objects = service("web", "shop", &[b.addr], None);
    objects.extend(load(&ingress("shop", "", &simple_rule("shop.com", "shop"))));
    let p = proxy(objects, false);
    let body = h2c_get(p.local_addrs()[0], &[("cookie", "a=1"), ("cookie", "b=2")]);
    let cookies: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("h:cookie="))
        .collect();
    assert_eq!(cookies, ["h:cookie=a=1; b=2"], "{body}");
    assert!(body.contains("version=HTTP/1.1"), "{body}");
}

/// `TE: trailers` is hop-by-hop; an HTTP/1.1 backend would need it named
/// in Connection too (RFC 9110 §10.1.4), and nginx sends HTTP/1.1
/// upstreams no TE: only HTTP/2 backends (gRPC) get it.
#[test]
fn te_trailers_goes_to_http2_backends_only() {
    let h1 = Backend::start("h1", "127.0.0.1");
    let h2 = Backend::start("h2", "127.0.0.1");
    let mut objects = service("web", "h1", &[h1.addr], None);
    objects.extend(service("web", "h2", &[h2.addr], Some("kubernetes.io/h2c")));
    objects.extend(load(&format!(
        "{}{}",
        ingress("one", "", &simple_rule("shop.com", "h1")),
        ingress("two", "", &simple_rule("grpc.com", "h2")),
    )));
    let p = proxy(objects, false);
    let body = h2c_get(p.local_addrs()[0], &[("te", "trailers")]);
    assert!(body.contains("backend=h1"), "{body}");
    assert!(!body.contains("h:te="), "{body}");
    // The same request to the HTTP/2 backend keeps it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = p.local_addrs()[0];
    let body = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get("http://grpc.com/c")
            .header("te", "trailers")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        let b = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    });
    assert!(
        body.contains("backend=h2") && body.contains("version=HTTP/2.0"),
        "{body}"
    );
    assert!(body.contains("h:te=trailers"), "{body}");
}
