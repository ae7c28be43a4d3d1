//! Forwarding: the headers a proxy must drop and add, sending on a
//! backend connection, and WebSocket tunnels.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::body::{BoxError, ProxyBody};
use super::handler::ConnCtx;
use super::pool::{Conn, Key, Pool};

/// Hop-by-hop headers (RFC 9110 §7.6.1), which describe one connection
/// and must not be forwarded (HTTP/2 forbids them outright).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names present (a handful) instead of a removal
    // per hop-by-hop name: most messages carry none or one of them.
    let mut found: Vec<HeaderName> = Vec::new();
    let mut connection = false;
    let mut te = false;
    for name in h.keys() {
        if HOP_BY_HOP.iter().any(|x| x == name) {
            connection |= *name == header::CONNECTION;
            te |= *name == header::TE;
            found.push(name.clone());
        }
    }
    if connection {
        // Headers the Connection header names are hop-by-hop too.
        found.extend(
            h.get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
        );
    }
    let trailers = te
        && h.get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
    for n in &found {
        if keep_upgrade && (*n == header::UPGRADE || *n == header::CONNECTION) {
            continue;
        }
        h.remove(n);
    }
    if trailers {
        // gRPC needs `te: trailers` end to end; it is the one TE allowed in HTTP/2.
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Prepares the client's headers for the backend: hop-by-hop headers
/// dropped, `X-Forwarded-For` extended with the client, `X-Forwarded-Proto`,
/// `-Host`, `-Port` and `X-Real-IP` set (a client cannot forge them), and
/// the Host kept as the client sent it (HTTP/2 backends get it as
/// `:authority` instead).
pub(crate) fn request_headers(
    h: &mut HeaderMap,
    ctx: &ConnCtx,
    host: &str,
    upgrade: bool,
    h2: bool,
) {
    strip_hop_by_hop(h, upgrade);
    let client_value = ctx.client_value.clone();
    let xff = if h.contains_key(X_FORWARDED_FOR) {
        let all: Vec<&str> = h
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if all.is_empty() {
            client_value.clone()
        } else {
            HeaderValue::from_str(&format!("{}, {}", all.join(", "), ctx.client.ip()))
                .unwrap_or_else(|_| client_value.clone())
        }
    } else {
        client_value.clone()
    };
    h.insert(X_FORWARDED_FOR, xff);
    h.insert(X_REAL_IP, client_value);
    h.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if ctx.tls { "https" } else { "http" }),
    );
    // The Host header, when the client sent one, is the host: share it.
    let host_value = match h.get(header::HOST) {
        Some(v) if v.as_bytes() == host.as_bytes() => Some(v.clone()),
        _ => HeaderValue::from_str(host).ok(),
    };
    // The port the client connected to, as ingress-nginx sends it.
    h.insert(X_FORWARDED_PORT, ctx.local_port.clone());
    match host_value {
        Some(v) if !h2 => {
            h.insert(X_FORWARDED_HOST, v.clone());
            h.insert(header::HOST, v);
        }
        Some(v) => {
            h.insert(X_FORWARDED_HOST, v);
            h.remove(header::HOST);
        }
        None => {
            h.remove(X_FORWARDED_HOST);
        }
    }
}

/// Prepares a backend's response for the client.
pub(crate) fn response_headers(h: &mut HeaderMap) {
    strip_hop_by_hop(h, false);
    h.remove(header::TE);
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Why sending failed.
#[allow(clippy::large_enum_variant)] // returned once per exchange, never stored
pub(crate) enum SendError {
    /// The connection was gone before the request was written; here it is back.
    NotSent(Request<ProxyBody>),
    /// No response head within the read timeout.
    TimedOut,
    /// The exchange failed after the request was (partly) sent.
    Failed(BoxError),
}

/// Sends on a connection and waits for the response head; an HTTP/1.1
/// connection goes back to the pool (unless it is being upgraded).
pub(crate) async fn send(
    pool: &Pool,
    key: Key,
    conn: Conn,
    req: Request<ProxyBody>,
    read_timeout: Duration,
    upgrade: bool,
) -> Result<Response<Incoming>, SendError> {
    match conn {
        Conn::H1(mut tx) => {
            if tx.ready().await.is_err() {
                return Err(SendError::NotSent(req));
            }
            let fut = tx.try_send_request(req);
            let result = tokio::time::timeout(read_timeout, fut).await;
            match result {
                Err(_) => Err(SendError::TimedOut),
                Ok(Ok(resp)) => {
                    if !upgrade {
                        pool.put(key, tx);
                    }
                    Ok(resp)
                }
                Ok(Err(mut e)) => match e.take_message() {
                    Some(r) => Err(SendError::NotSent(r)),
                    None => Err(SendError::Failed(Box::new(e.into_error()))),
                },
            }
        }
        Conn::H2(mut tx) => {
            if tx.ready().await.is_err() {
                return Err(SendError::NotSent(req));
            }
            let fut = tx.try_send_request(req);
            match tokio::time::timeout(read_timeout, fut).await {
                Err(_) => Err(SendError::TimedOut),
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(r) => Err(SendError::NotSent(r)),
                    None => Err(SendError::Failed(Box::new(e.into_error()))),
                },
            }
        }
    }
}

/// Copies bytes both ways between an upgraded client connection and an
/// upgraded backend connection (a WebSocket) until either side closes.
/// The tunnel owns both connections and nothing of the router, so route
/// reloads do not touch it.
pub(crate) async fn tunnel(client: OnUpgrade, backend: OnUpgrade, addr: SocketAddr) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(%addr, "upgrade failed: {e}");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    match tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        Ok((up, down)) => tracing::debug!(%addr, up, down, "tunnel closed"),
        Err(e) => tracing::debug!(%addr, "tunnel: {e}"),
    }
}
