//! HTTP/2 both ways, gRPC with trailers, TLS backends, WebSocket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::support::{Backend, curl, get, ingress, load, proxy, service, simple_rule, tables, url};

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
