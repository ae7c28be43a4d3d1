//! Forwarding: the headers a proxy must drop and add, sending on a
//! backend connection, and WebSocket tunnels.

use std::net::SocketAddr;
use std::task::Poll;
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
static HOP_BY_HOP: [HeaderName; 9] = [
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

/// Which of [`HOP_BY_HOP`] a message carries, as a bit set (bit i for
/// `HOP_BY_HOP[i]`): one pass over the names present, without allocating.
/// Names are matched as strings (a length switch, then one comparison),
/// which is cheaper than comparing each against the nine `HeaderName`s.
fn hop_by_hop_present(h: &HeaderMap) -> u16 {
    let mut found = 0u16;
    for name in h.keys() {
        let i = match name.as_str() {
            "connection" => 0,
            "keep-alive" => 1,
            "proxy-connection" => 2,
            "proxy-authenticate" => 3,
            "proxy-authorization" => 4,
            "te" => 5,
            "trailer" => 6,
            "transfer-encoding" => 7,
            "upgrade" => 8,
            _ => continue,
        };
        found |= 1 << i;
    }
    found
}

const CONNECTION_BIT: u16 = 1 << 0;
const TE_BIT: u16 = 1 << 5;
const UPGRADE_BIT: u16 = 1 << 8;

/// `te_trailers`: keep a `TE: trailers` (requests to HTTP/2 backends).
fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool, te_trailers: bool) {
    let found = hop_by_hop_present(h);
    if found == 0 {
        return;
    }
    // Headers the Connection header names are hop-by-hop too. The usual
    // tokens name no other header: `keep-alive` and `upgrade` are in
    // HOP_BY_HOP already, and `close` is the connection option (RFC 9110
    // §18.4 reserves it as a field name for that reason). A Connection
    // header that is just one of those (nearly all) is not parsed.
    let usual = |v: &HeaderValue| {
        let b = v.as_bytes();
        b.eq_ignore_ascii_case(b"keep-alive")
            || b.eq_ignore_ascii_case(b"close")
            || b.eq_ignore_ascii_case(b"upgrade")
    };
    if found & CONNECTION_BIT != 0 && !h.get_all(header::CONNECTION).iter().all(usual) {
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|n| {
                !n.is_empty()
                    && !n.eq_ignore_ascii_case("close")
                    && !HOP_BY_HOP
                        .iter()
                        .any(|x| n.eq_ignore_ascii_case(x.as_str()))
            })
            .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect();
        for n in &named {
            if keep_upgrade && (*n == header::UPGRADE || *n == header::CONNECTION) {
                continue;
            }
            h.remove(n);
        }
    }
    // gRPC needs `te: trailers` end to end; it is the one TE allowed in
    // HTTP/2, and only in requests. An HTTP/1.1 backend gets no TE, as
    // nginx sends none: there it would have to be named in Connection
    // too (RFC 9110 §10.1.4), and the proxy does not pass trailers on.
    let trailers = te_trailers
        && found & TE_BIT != 0
        && h.get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if found & (1 << i) == 0 || (keep_upgrade && (1 << i) & (CONNECTION_BIT | UPGRADE_BIT) != 0)
        {
            continue;
        }
        h.remove(name);
    }
    if trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Prepares the client's headers for the backend: hop-by-hop headers
/// dropped; `X-Forwarded-For` and `X-Real-IP` set to the client's address,
/// `X-Forwarded-Proto`, `-Host` and `-Port` to what the proxy saw, the
/// client's own values replaced (as ingress-nginx does by default,
/// `use-forwarded-headers: false`: a client cannot forge them); the
/// client's `X-Forwarded-For`, if any, passed on as
/// `X-Original-Forwarded-For`, as ingress-nginx does; the Host kept as the
/// client sent it (HTTP/2 backends get it as `:authority` instead). An
/// HTTP/1.0 request without Host (`host` empty) goes on with an empty
/// Host and no `X-Forwarded-Host` (RFC 9112 §3.2: the empty value is what
/// a request without an authority carries).
pub(crate) fn request_headers(
    h: &mut HeaderMap,
    ctx: &ConnCtx,
    host: &str,
    upgrade: bool,
    h2: bool,
) {
    strip_hop_by_hop(h, upgrade, h2);
    // Room for the (up to) six headers added below, in one growth.
    h.reserve(6);
    let client_value = ctx.client_value.clone();
    let original = if h.contains_key(X_FORWARDED_FOR) {
        let all: Vec<&str> = h
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        HeaderValue::from_str(&all.join(", ")).ok()
    } else {
        None
    };
    match original.filter(|v| !v.is_empty()) {
        Some(v) => h.insert(X_ORIGINAL_FORWARDED_FOR, v),
        None => h.remove(X_ORIGINAL_FORWARDED_FOR),
    };
    h.insert(X_FORWARDED_FOR, client_value.clone());
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
        Some(v) if v.is_empty() => {
            h.insert(header::HOST, v);
            h.remove(X_FORWARDED_HOST);
        }
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

/// Joins the `Cookie` header lines into one, separated by `"; "`: an
/// HTTP/2 client may split its cookies into crumbs, one line each, which
/// must be one header for an HTTP/1.1 backend (RFC 9113 §8.2.3, as nginx
/// does). One line or none is left alone.
pub(crate) fn join_cookies(h: &mut HeaderMap) {
    let mut crumbs = h.get_all(header::COOKIE).iter();
    if crumbs.next().is_none() || crumbs.next().is_none() {
        return;
    }
    let mut joined: Vec<u8> = Vec::new();
    for v in h.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    // The crumbs were valid values, and "; " is too.
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        h.insert(header::COOKIE, v);
    }
}

/// Prepares a backend's response for the client. Transfer codings besides
/// `chunked` (`Transfer-Encoding: gzip, chunked`) still apply to the body
/// hyper passes on: they are kept, and hyper's server adds `chunked` after
/// them (HTTP/1.0 and HTTP/2 clients cannot be told of them: the handler
/// answers them 502 first, see [`undeliverable_codings`]).
pub(crate) fn response_headers(h: &mut HeaderMap) {
    let codings = h
        .get(header::TRANSFER_ENCODING)
        .and_then(|_| other_codings(h));
    strip_hop_by_hop(h, false, false);
    if let Some(v) = codings {
        h.insert(header::TRANSFER_ENCODING, v);
    }
}

/// The transfer codings besides `chunked` of a backend's response that
/// `client` cannot be told of: an HTTP/1.0 client may not be sent
/// Transfer-Encoding (RFC 9112 §6.1) and HTTP/2 has no transfer codings,
/// so the coded body would pass for the content. `None` for an HTTP/1.1
/// client, or a response without such codings. (A response without a
/// body — to HEAD, a 204, a 304 — has nothing to misread: the handler
/// passes it on without the header.)
pub(crate) fn undeliverable_codings(h: &HeaderMap, client: http::Version) -> Option<HeaderValue> {
    if client == http::Version::HTTP_11 || !h.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    other_codings(h)
}

/// The transfer codings of a message other than `chunked`, joined; `None`
/// when there are none (the usual `Transfer-Encoding: chunked`).
fn other_codings(h: &HeaderMap) -> Option<HeaderValue> {
    let codings: Vec<&str> = h
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("chunked"))
        .collect();
    if codings.is_empty() {
        return None;
    }
    HeaderValue::from_str(&codings.join(", ")).ok()
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_ORIGINAL_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-original-forwarded-for");

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

/// Sends on a connection and waits for the response head, for at most
/// `read_timeout`; an HTTP/1.1 connection goes back to the pool (unless
/// it is being upgraded).
pub(crate) async fn send(
    ctx: &ConnCtx,
    key: Key,
    conn: Conn,
    req: Request<ProxyBody>,
    read_timeout: Duration,
    upgrade: bool,
) -> Result<Response<Incoming>, SendError> {
    let pool: &Pool = &ctx.pool;
    match conn {
        Conn::H1(mut tx) => {
            if tx.ready().await.is_err() {
                return Err(SendError::NotSent(req));
            }
            let result = within(ctx, read_timeout, tx.try_send_request(req)).await;
            match result {
                None => Err(SendError::TimedOut),
                Some(Ok(resp)) => {
                    if !upgrade {
                        pool.put(key, tx);
                    }
                    Ok(resp)
                }
                Some(Err(mut e)) => match e.take_message() {
                    Some(r) => Err(SendError::NotSent(r)),
                    None => Err(SendError::Failed(Box::new(e.into_error()))),
                },
            }
        }
        Conn::H2(mut tx) => {
            if tx.ready().await.is_err() {
                return Err(SendError::NotSent(req));
            }
            match within(ctx, read_timeout, tx.try_send_request(req)).await {
                None => Err(SendError::TimedOut),
                Some(Ok(resp)) => Ok(resp),
                Some(Err(mut e)) => match e.take_message() {
                    Some(r) => Err(SendError::NotSent(r)),
                    None => Err(SendError::Failed(Box::new(e.into_error()))),
                },
            }
        }
    }
}

/// `fut`'s output, or `None` once `limit` has passed, timed with the
/// connection's reusable timer.
async fn within<F: Future>(ctx: &ConnCtx, limit: Duration, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut timer = ctx.read_timer.take(tokio::time::Instant::now() + limit);
    let out = std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        timer.poll_expired(cx).map(|()| None)
    })
    .await;
    ctx.read_timer.put(timer);
    out
}

/// Copies bytes both ways between an upgraded client connection and an
/// upgraded backend connection (a WebSocket) until either side closes.
/// The tunnel owns both connections and nothing of the router, so route
/// reloads do not touch it. It holds the client connection's context, and
/// with it the connection's slots (connection limits), until it closes.
pub(crate) async fn tunnel(
    client: OnUpgrade,
    backend: OnUpgrade,
    addr: SocketAddr,
    _conn: std::sync::Arc<ConnCtx>,
) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_hop_by_hop_name_sets_its_own_bit() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("x"));
            h.insert(name.clone(), HeaderValue::from_static("v"));
            assert_eq!(hop_by_hop_present(&h), 1 << i, "{name}");
        }
        assert_eq!(CONNECTION_BIT, 1 << 0);
        assert_eq!(HOP_BY_HOP[5], header::TE);
        assert_eq!(HOP_BY_HOP[8], header::UPGRADE);
    }

    #[test]
    fn cookie_crumbs_become_one_header() {
        let mut h = HeaderMap::new();
        for c in ["a=1", "b=2", "c=3"] {
            h.append(header::COOKIE, HeaderValue::from_static(c));
        }
        join_cookies(&mut h);
        let all: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        let mut one = HeaderMap::new();
        one.insert(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        join_cookies(&mut one);
        assert_eq!(one[header::COOKIE], "a=1; b=2");
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Trace, close"),
            ("keep-alive", "timeout=5"),
            ("x-trace", "1"),
            (
                "close",
                "kept: a reserved name, not a header Connection removes",
            ),
            ("te", "trailers, gzip"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-other", "kept"),
        ] {
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut req = h.clone();
        strip_hop_by_hop(&mut req, false, true);
        let names = |h: &HeaderMap| {
            let mut n: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
            n.sort();
            n
        };
        assert_eq!(names(&req), ["close", "te", "x-other"]);
        assert_eq!(req[header::TE], "trailers");
        // To an HTTP/1.1 backend, no TE at all.
        let mut h1 = h.clone();
        strip_hop_by_hop(&mut h1, false, false);
        assert_eq!(names(&h1), ["close", "x-other"]);
        // A response keeps no TE; an upgrade keeps Upgrade and says so in
        // Connection.
        let mut resp = h.clone();
        strip_hop_by_hop(&mut resp, false, false);
        assert_eq!(names(&resp), ["close", "x-other"]);
        // The usual one-token Connection header takes the short way.
        let mut usual = HeaderMap::new();
        usual.insert(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        usual.insert(
            HeaderName::from_static("keep-alive"),
            HeaderValue::from_static("timeout=5"),
        );
        usual.insert(
            HeaderName::from_static("x-a"),
            HeaderValue::from_static("1"),
        );
        strip_hop_by_hop(&mut usual, false, false);
        assert_eq!(names(&usual), ["x-a"]);
        let mut up = h;
        strip_hop_by_hop(&mut up, true, true);
        assert_eq!(up[header::UPGRADE], "websocket");
        assert_eq!(up[header::CONNECTION], "upgrade");
        assert!(!up.contains_key("x-trace") && !up.contains_key("keep-alive"));
    }
}
