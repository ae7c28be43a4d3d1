//! One request: route it, apply the Ingress's settings, forward it.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;

use super::body::{IdleTimeout, ProxyBody, empty, is_length_limit, text};
use super::pool::{Key, Proto};
use super::upstreams::{PickKey, Upstream};
use super::{Shared, State, affinity, forward};
use crate::annotations::BackendProtocol;
use crate::backend::Backend;
use crate::path::{forward_path, normalize_path, request_spelling};
use crate::route::Route;

/// The connection a request came on.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    /// The client's address as a header value (X-Real-IP, X-Forwarded-For),
    /// made once per connection.
    pub(crate) client_value: HeaderValue,
    /// The port the client connected to (X-Forwarded-Port).
    pub(crate) local_port: HeaderValue,
    pub(crate) shared: Arc<Shared>,
    /// The worker's backend connections.
    pub(crate) pool: Arc<super::pool::Pool>,
    pub(crate) client: SocketAddr,
    pub(crate) tls: bool,
    /// The timer for `proxy-read-timeout`, reused by the connection's
    /// requests.
    pub(crate) read_timer: super::deadline::TimerSlot,
    /// `Some(limit)` when the connection is beyond its client's
    /// connection limit: every request on it is refused with 503.
    pub(crate) over_limit: Option<usize>,
    /// The connection's slots (the global one and its client's), given
    /// back when the last holder of this context goes: the connection, or
    /// a WebSocket tunnel that outlives it.
    pub(crate) _slots: Slots,
}

/// What a connection holds while it lives (see [`ConnCtx::_slots`]).
#[derive(Debug, Default)]
pub(crate) struct Slots {
    pub(crate) _global: Option<tokio::sync::OwnedSemaphorePermit>,
    pub(crate) _client: Option<super::limit::ClientSlot>,
}

/// Endpoints tried per request before answering 502.
pub(crate) const MAX_TRIES: usize = 3;

/// The target of access-log events.
pub(crate) const ACCESS: &str = "k8snet_ingress::access";

pub(crate) async fn handle(
    req: Request<Incoming>,
    ctx: Arc<ConnCtx>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    if let Some(max) = ctx.over_limit {
        return Ok(refuse_over_limit(&req, &ctx, max, start));
    }
    let state = ctx.shared.state.load_full();
    let logging = tracing::enabled!(target: ACCESS, tracing::Level::INFO);
    let mut log = Log {
        on: logging,
        ..Log::default()
    };
    if logging {
        log.method = req.method().to_string();
        log.path = req.uri().path().to_string();
    }
    let resp = proxy(req, &ctx, &state, &mut log).await;
    if logging {
        tracing::info!(
            target: ACCESS,
            client = %ctx.client.ip(),
            method = %log.method,
            host = %log.host,
            path = %log.path,
            status = resp.status().as_u16(),
            upstream = %log.upstream.map_or_else(|| "-".to_string(), |a| a.to_string()),
            ingress = %log.ingress,
            duration_us = start.elapsed().as_micros() as u64,
        );
    }
    Ok(resp)
}

/// The answer to a request on a connection beyond its client's limit:
/// 503, the connection closed after it (HTTP/1), an access-log event.
fn refuse_over_limit(
    req: &Request<Incoming>,
    ctx: &ConnCtx,
    max: usize,
    start: Instant,
) -> Response<ProxyBody> {
    const WHY: &str = "per-client connection limit";
    let mut resp = error(
        StatusCode::SERVICE_UNAVAILABLE,
        format_args!(
            "client {} has {max} connections open already ({WHY})",
            ctx.client.ip()
        ),
    );
    if req.version() != Version::HTTP_2 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if tracing::enabled!(target: ACCESS, tracing::Level::INFO) {
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
            .unwrap_or_default();
        tracing::info!(
            target: ACCESS,
            client = %ctx.client.ip(),
            method = %req.method(),
            host = %host,
            path = %req.uri().path(),
            status = StatusCode::SERVICE_UNAVAILABLE.as_u16(),
            upstream = "-",
            ingress = "",
            duration_us = start.elapsed().as_micros() as u64,
            refused = WHY,
        );
    }
    resp
}

#[derive(Default)]
struct Log {
    on: bool,
    method: String,
    /// The path as the client sent it (no query, not normalized).
    path: String,
    host: String,
    ingress: String,
    upstream: Option<SocketAddr>,
}

async fn proxy(
    req: Request<Incoming>,
    ctx: &Arc<ConnCtx>,
    state: &State,
    log: &mut Log,
) -> Response<ProxyBody> {
    // Work on the parts: the host and path borrow from them while the
    // request is rebuilt for the backend, without copying either.
    let (mut parts, body) = req.into_parts();
    let host = match HostValue::of(&parts) {
        Ok(h) => h,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let host = host.as_str();
    // The client's version: `parts.version` becomes the backend's below.
    let client_version = parts.version;
    let head = parts.method == Method::HEAD;
    if !parts.uri.path().starts_with('/') {
        return error(StatusCode::BAD_REQUEST, "the request target is not a path");
    }
    let path = normalize_path(parts.uri.path());
    if log.on {
        log.host = host.to_string();
    }
    // The path forwarded, with each separator spelled as the client
    // spelled it (`%2F` kept; see `normalize_path`), and the key rules
    // spelling a backslash (`%5C` or raw) are matched by, which decodes
    // `%2F` as nginx does (see `Router::route_request`). Only a path that
    // normalizing changes (rare) is spelled differently.
    let (forwarded, spelled) = match path {
        Cow::Owned(_) => (
            forward_path(parts.uri.path()),
            request_spelling(parts.uri.path()),
        ),
        Cow::Borrowed(p) => (Cow::Borrowed(p), None),
    };
    let spelled = spelled.as_deref().filter(|s| **s != *path);
    let Some(route) = state.router.route_spelled(host, &path, spelled) else {
        return error(
            StatusCode::NOT_FOUND,
            format_args!("no Ingress rule for host {host:?} and path {path:?}"),
        );
    };
    if log.on {
        log.ingress = route.ingress().to_string();
    }
    let settings = route.settings();
    if !settings.allows(ctx.client.ip()) {
        return error(
            StatusCode::FORBIDDEN,
            format_args!(
                "client {} is not in the source ranges of Ingress {}",
                ctx.client.ip(),
                route.ingress()
            ),
        );
    }
    if !ctx.tls
        && (settings.force_ssl_redirect || (settings.ssl_redirect && state.router.has_tls(host)))
    {
        if host.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                "a request without a Host cannot be redirected to HTTPS (force-ssl-redirect)",
            );
        }
        let port = ctx
            .shared
            .https_port
            .load(std::sync::atomic::Ordering::Relaxed);
        return redirect(host, &parts.uri, (port != 0).then_some(port));
    }
    let backend = match route.backend() {
        Backend::Service(s) => s,
        other => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format_args!("{other} is a resource backend, which this proxy cannot forward to"),
            );
        }
    };
    let upstream = match state.upstreams.get(backend) {
        Ok(u) => u.clone(),
        Err(why) => return error(StatusCode::SERVICE_UNAVAILABLE, why),
    };
    if let Some(max) = settings.max_body_size
        && content_length(&parts.headers).is_some_and(|n| n > max)
    {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format_args!("the body is larger than {max} bytes (proxy-body-size)"),
        );
    }

    // WebSocket over HTTP/2 (RFC 8441): becomes an HTTP/1.1 upgrade.
    let ws_h2 = parts.version == Version::HTTP_2
        && parts.method == Method::CONNECT
        && parts
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"));
    if ws_h2 {
        websocket_h2_to_h1(&mut parts.method, &mut parts.headers, &mut parts.extensions);
    }
    let upgrade =
        ws_h2 || (parts.version == Version::HTTP_11 && parts.headers.contains_key(header::UPGRADE));
    let proto = match settings.backend_protocol {
        BackendProtocol::Grpc => Proto::H2c,
        BackendProtocol::Grpcs => Proto::H2Tls,
        BackendProtocol::Https => Proto::H1Tls,
        _ if upstream.h2c() && !upgrade => Proto::H2c,
        _ => Proto::H1,
    };
    if host.is_empty() && proto.is_h2() {
        return error(
            StatusCode::BAD_REQUEST,
            "a request without a Host cannot go to an HTTP/2 backend (no :authority to send)",
        );
    }
    if upgrade && proto.is_h2() {
        return error(
            StatusCode::BAD_GATEWAY,
            "cannot upgrade a connection to an HTTP/2 backend",
        );
    }
    let client_upgrade = if upgrade {
        parts.extensions.remove::<OnUpgrade>()
    } else {
        None
    };
    let pinned = settings
        .affinity
        .as_ref()
        .and_then(|c| affinity::pinned(&parts.headers, &c.name, upstream.endpoints()));

    // The common case keeps the client's URI as it is: an HTTP/1.1
    // backend, an origin-form target, nothing normalized or rewritten.
    let keep_uri = matches!(path, Cow::Borrowed(_))
        && settings.rewrite_target.is_none()
        && parts.uri.scheme().is_none()
        && !proto.is_h2();
    let target = if keep_uri {
        None
    } else {
        match target_uri(&route, &path, &forwarded, &parts.uri, host, proto) {
            Ok(u) => Some(u),
            Err(why) => return error(StatusCode::BAD_REQUEST, why),
        }
    };
    drop(path);
    drop(forwarded);
    if let Some(t) = target {
        parts.uri = t;
    }
    // RFC 9113 §8.2.3: an HTTP/2 client's cookie crumbs are one header
    // for an HTTP/1.1 backend.
    if parts.version == Version::HTTP_2 && !proto.is_h2() {
        forward::join_cookies(&mut parts.headers);
    }
    forward::request_headers(&mut parts.headers, ctx, host, upgrade, proto.is_h2());
    parts.version = if proto.is_h2() {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    // A request without a body (most GETs) needs no limit and no timer.
    let body: ProxyBody = if body.is_end_stream() {
        empty()
    } else {
        let body_timeout = ctx.shared.client_body_timeout.min(settings.send_timeout);
        match settings.max_body_size {
            Some(max) => IdleTimeout::new(
                Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)),
                body_timeout,
                "the client",
            )
            .boxed(),
            None => IdleTimeout::new(body, body_timeout, "the client").boxed(),
        }
    };
    let out = Request::from_parts(parts, body);

    let (resp, addr, fresh_pin) =
        match send(ctx, &upstream, proto, out, pinned, &route, upgrade).await {
            Ok(x) => x,
            Err(resp) => return resp,
        };
    log.upstream = Some(addr);
    let mut resp = resp;
    if ws_h2 {
        return websocket_h2_response(resp, client_upgrade, addr, upstream.name(), ctx);
    }
    if let Some(client_upgrade) = client_upgrade
        && resp.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(forward::tunnel(
            client_upgrade,
            backend_upgrade,
            addr,
            ctx.clone(),
        ));
    } else {
        if let Some(codings) = forward::undeliverable_codings(resp.headers(), client_version) {
            if !(head || bodiless(resp.status())) {
                return undeliverable(&codings, client_version, addr, upstream.name());
            }
            // No body to misread; the codings cannot be told of.
            resp.headers_mut().remove(header::TRANSFER_ENCODING);
        }
        forward::response_headers(resp.headers_mut());
    }
    // Scoped to a path every request reaching the rule sends it back on.
    if fresh_pin
        && let Some(c) = &settings.affinity
        && let Ok(v) = HeaderValue::from_str(&affinity::set_cookie(c, &addr, route.cookie_path()))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    let read_timeout = settings.read_timeout;
    resp.map(|b| IdleTimeout::new(b, read_timeout, "the backend").boxed())
}

/// Turns an HTTP/2 `CONNECT` with `:protocol websocket` into the HTTP/1.1
/// opening handshake (RFC 8441 §5): `GET`, `Upgrade: websocket` (the
/// Connection header is set with the other forwarding headers), a fresh
/// `Sec-WebSocket-Key`, the client's `Sec-WebSocket-Version` (13 if it sent
/// none), `-Protocol` and `-Extensions` kept.
fn websocket_h2_to_h1(method: &mut Method, h: &mut HeaderMap, extensions: &mut http::Extensions) {
    *method = Method::GET;
    extensions.remove::<hyper::ext::Protocol>();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_KEY, websocket_key());
    if !h.contains_key(header::SEC_WEBSOCKET_VERSION) {
        h.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
}

/// The HTTP/2 client's answer to its WebSocket `CONNECT`: `200` and a
/// tunnel when the backend switched protocols (its `Sec-WebSocket-Protocol`
/// and `-Extensions` passed on, `Upgrade`, `Connection` and
/// `Sec-WebSocket-Accept` dropped); 502 when it answered with another
/// success (which HTTP/2 would take as an open tunnel); else its answer.
fn websocket_h2_response(
    mut resp: Response<Incoming>,
    client_upgrade: Option<OnUpgrade>,
    addr: SocketAddr,
    upstream: &str,
    ctx: &Arc<ConnCtx>,
) -> Response<ProxyBody> {
    let status = resp.status();
    if status == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let backend_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(forward::tunnel(
            client_upgrade,
            backend_upgrade,
            addr,
            ctx.clone(),
        ));
        let mut out = Response::new(empty());
        for name in [
            header::SEC_WEBSOCKET_PROTOCOL,
            header::SEC_WEBSOCKET_EXTENSIONS,
        ] {
            for v in resp.headers().get_all(&name) {
                out.headers_mut().append(name.clone(), v.clone());
            }
        }
        return out;
    }
    if status.is_success() || status.is_informational() {
        return error(
            StatusCode::BAD_GATEWAY,
            format_args!(
                "{upstream} endpoint {addr} answered a WebSocket upgrade with {status}, not 101"
            ),
        );
    }
    if let Some(codings) = forward::undeliverable_codings(resp.headers(), Version::HTTP_2) {
        if !bodiless(status) {
            return undeliverable(&codings, Version::HTTP_2, addr, upstream);
        }
        resp.headers_mut().remove(header::TRANSFER_ENCODING);
    }
    forward::response_headers(resp.headers_mut());
    resp.map(|b| b.map_err(Into::into).boxed())
}

/// Whether a response status never has a body (RFC 9110 §6.4.1), so that
/// transfer codings named in its head describe nothing the client reads.
fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// 502 for a response whose transfer codings the client cannot receive
/// (see [`forward::undeliverable_codings`]); nginx answers 502 to a
/// coding it does not know, for any client. The backend's body is dropped
/// unread, so its connection is not reused.
fn undeliverable(
    codings: &HeaderValue,
    client: Version,
    addr: SocketAddr,
    upstream: &str,
) -> Response<ProxyBody> {
    error(
        StatusCode::BAD_GATEWAY,
        format_args!(
            "{upstream} endpoint {addr} answered with Transfer-Encoding {:?}, which an {client:?} client cannot receive",
            codings.to_str().unwrap_or_default()
        ),
    )
}

/// A `Sec-WebSocket-Key`: 16 bytes, base64. RFC 6455 asks for a nonce
/// (it guards against caches replaying handshakes, not against the
/// backend); std's randomly keyed SipHash over a counter and the clock
/// gives one without another dependency.
fn websocket_key() -> HeaderValue {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    // Base64 only yields visible ASCII, always a valid header value.
    HeaderValue::from_str(&base64(&bytes))
        .unwrap_or(HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA=="))
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The request's host, held without copying: the authority of an
/// absolute or HTTP/2 target, else the Host header; empty for an HTTP/1.0
/// request without one.
enum HostValue {
    Authority(http::uri::Authority),
    Header(HeaderValue),
    None,
}

impl HostValue {
    /// The host, or why the request is refused (400).
    ///
    /// RFC 9112 §3.2: more than one Host header line, or an HTTP/1.1
    /// request without Host, is a 400 (nginx: "client sent duplicate host
    /// header"); the latter even when the target is in absolute form and
    /// names an authority (nginx's `ngx_http_process_request_header`
    /// refuses an HTTP/1.1 request without Host whatever its target). An
    /// HTTP/1.0 request may lack one (health checkers send such requests):
    /// it is routed with an empty host, so host-less rules and the
    /// catch-all defaultBackend answer it, as nginx's default server does.
    /// An empty Host value is refused, as nginx does. HTTP/2 names the
    /// host by `:authority` (hyper puts it in the URI).
    fn of(parts: &http::request::Parts) -> Result<Self, &'static str> {
        let mut lines = parts.headers.get_all(header::HOST).iter();
        let header = lines.next();
        if lines.next().is_some() {
            return Err("the request has more than one Host header");
        }
        if header.is_none() && parts.version == Version::HTTP_11 {
            return Err("an HTTP/1.1 request must have a Host header");
        }
        let h = match (parts.uri.authority(), header) {
            (Some(a), _) => Self::Authority(a.clone()),
            (None, Some(h)) => Self::Header(h.clone()),
            (None, None) if parts.version < Version::HTTP_11 => return Ok(Self::None),
            (None, None) => return Err("the request names no host (Host header or :authority)"),
        };
        if h.as_str().is_empty() {
            return Err("the request's Host is empty or not visible ASCII");
        }
        Ok(h)
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Authority(a) => a.as_str(),
            // A Host that is not visible ASCII cannot name a rule host.
            Self::Header(h) => h.to_str().unwrap_or_default(),
            Self::None => "",
        }
    }
}

/// Picks endpoints and sends, retrying other endpoints when connecting
/// fails. Returns the response, the endpoint, and whether the affinity
/// cookie must be (re)set.
#[allow(clippy::too_many_arguments)]
async fn send(
    ctx: &ConnCtx,
    upstream: &Arc<Upstream>,
    proto: Proto,
    req: Request<ProxyBody>,
    mut pinned: Option<usize>,
    route: &Route<'_>,
    upgrade: bool,
) -> Result<(Response<Incoming>, SocketAddr, bool), Response<ProxyBody>> {
    let settings = route.settings();
    let endpoints = upstream.endpoints();
    let had_pin = pinned.is_some();
    let change_on_failure = settings
        .affinity
        .as_ref()
        .is_none_or(|c| c.change_on_failure);
    let tries = endpoints.len().min(MAX_TRIES);
    let mut tried: Vec<usize> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut req = Some(req);
    let mut attempt = 0;
    while attempt < tries {
        let idx = match pinned {
            Some(i) => i,
            None => {
                let path = req.as_ref().map_or("/", |r| r.uri().path());
                pick(ctx, upstream, path, attempt, &tried)
            }
        };
        let addr = endpoints[idx];
        let key = Key { addr, proto };
        let pooled = if upgrade { None } else { ctx.pool.idle(key) };
        let reused = pooled.is_some();
        let conn = match pooled {
            Some(c) => c,
            None => match ctx
                .pool
                .connect(key, settings.connect_timeout, upgrade)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("connect to {addr}: {e}"));
                    tried.push(idx);
                    attempt += 1;
                    if pinned.is_some() && !change_on_failure {
                        break;
                    }
                    pinned = None;
                    continue;
                }
            },
        };
        let Some(r) = req.take() else { break };
        match forward::send(ctx, key, conn, r, settings.read_timeout, upgrade).await {
            Ok(resp) => {
                let fresh_pin = settings.affinity.is_some() && (!had_pin || pinned.is_none());
                return Ok((resp, addr, fresh_pin));
            }
            // A kept-alive connection that the backend had closed: nothing
            // was sent, so try again on a new connection (not a new try).
            Err(forward::SendError::NotSent(r)) if reused => req = Some(r),
            Err(forward::SendError::NotSent(r)) => {
                req = Some(r);
                failures.push(format!(
                    "{addr}: the connection closed before the request was sent"
                ));
                tried.push(idx);
                attempt += 1;
            }
            Err(forward::SendError::TimedOut) => {
                return Err(error(
                    StatusCode::GATEWAY_TIMEOUT,
                    format_args!(
                        "{} endpoint {addr} sent no response within {:?} (proxy-read-timeout)",
                        upstream.name(),
                        settings.read_timeout
                    ),
                ));
            }
            Err(forward::SendError::Failed(e)) => {
                if is_length_limit(&*e) {
                    return Err(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the body is larger than proxy-body-size allows",
                    ));
                }
                return Err(error(
                    StatusCode::BAD_GATEWAY,
                    format_args!("{} endpoint {addr} failed: {}", upstream.name(), chain(&*e)),
                ));
            }
        }
    }
    Err(error(
        StatusCode::BAD_GATEWAY,
        format_args!(
            "no endpoint of {} could be reached: {}",
            upstream.name(),
            failures.join("; ")
        ),
    ))
}

pub(crate) fn pick(
    ctx: &ConnCtx,
    upstream: &Upstream,
    path: &str,
    attempt: usize,
    tried: &[usize],
) -> usize {
    let key = PickKey {
        client: ctx.client.ip(),
        path,
        attempt,
    };
    let n = upstream.endpoints().len();
    let first = ctx.shared.balancer.pick(upstream, &key) % n;
    // Skip endpoints that already failed this request.
    (0..n)
        .map(|k| (first + k) % n)
        .find(|i| !tried.contains(i))
        .unwrap_or(first)
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The URI sent to the backend: the (rewritten) path and the query;
/// absolute for HTTP/2, where it carries `:scheme` and `:authority`.
/// The rewrite (if any) works on the matched path `path`, as its regex
/// captures do; otherwise `forwarded` is sent.
fn target_uri(
    route: &Route<'_>,
    path: &str,
    forwarded: &str,
    orig: &Uri,
    host: &str,
    proto: Proto,
) -> Result<Uri, String> {
    let path = route.rewrite(path).unwrap_or_else(|| forwarded.to_string());
    let pq = match orig.query() {
        Some(q) if path.contains('?') => format!("{path}&{q}"),
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let uri = match proto {
        Proto::H2c => format!("http://{host}{pq}"),
        Proto::H2Tls => format!("https://{host}{pq}"),
        Proto::H1 | Proto::H1Tls => pq,
    };
    uri.parse()
        .map_err(|e| format!("cannot forward {uri:?}: {e}"))
}

fn redirect(host: &str, uri: &Uri, https_port: Option<u16>) -> Response<ProxyBody> {
    let name = crate::host::strip_port(host);
    let port = match https_port {
        Some(443) | None => String::new(),
        Some(p) => format!(":{p}"),
    };
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{name}{port}{pq}");
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// A plain-text answer that says why.
pub(crate) fn error(status: StatusCode, why: impl Display) -> Response<ProxyBody> {
    let body = format!(
        "{} {}: {why}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(text(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        HeaderName::from_static("x-k8snet-ingress"),
        HeaderValue::from_static("error"),
    );
    resp
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc, "{raw:?}");
        }
    }

    #[test]
    fn websocket_keys_are_16_bytes_and_differ() {
        let (a, b) = (websocket_key(), websocket_key());
        assert_eq!(a.len(), 24, "16 bytes in base64");
        assert!(a.as_bytes().ends_with(b"=="));
        assert_ne!(a, b);
        assert_eq!(
            crate::tls::decode_base64(a.to_str().unwrap()).map(|v| v.len()),
            Some(16)
        );
    }

    #[test]
    fn an_h2_websocket_connect_becomes_an_http1_upgrade_request() {
        let mut req = Request::builder()
            .method(Method::CONNECT)
            .version(Version::HTTP_2)
            .uri("https://ws.com/chat?room=1")
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let (mut parts, ()) = req.into_parts();
        websocket_h2_to_h1(&mut parts.method, &mut parts.headers, &mut parts.extensions);
        assert_eq!(parts.method, Method::GET);
        assert!(parts.extensions.get::<hyper::ext::Protocol>().is_none());
        assert_eq!(parts.headers[header::UPGRADE], "websocket");
        assert_eq!(parts.headers[header::SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(parts.headers[header::SEC_WEBSOCKET_PROTOCOL], "chat");
        assert_eq!(parts.headers[header::SEC_WEBSOCKET_KEY].len(), 24);
    }
}
