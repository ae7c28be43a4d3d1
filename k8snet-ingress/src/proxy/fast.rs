//! The raw HTTP/1.1 fast path of the plaintext listener.
//!
//! Plain keep-alive HTTP/1.1 requests that need nothing but routing and
//! forwarding are served here, on the bytes, without hyper: the request
//! head is parsed once (with `httparse`, by the same framing rules as the
//! guard), the upstream head is written while parsing (hop-by-hop headers
//! dropped, `X-Forwarded-*` and `X-Real-IP` appended as the hyper path
//! sets them), the body is streamed (`Content-Length`, or chunked,
//! re-chunked), and the response head is parsed once and forwarded with
//! its hop-by-hop headers dropped, its body streamed as it is framed
//! (`Content-Length`; chunked or until close, re-chunked). Backend
//! connections are plain TCP streams kept alive per endpoint.
//!
//! Anything else goes to the hyper path for the rest of the connection,
//! with the bytes read so far handed over unchanged ([`Outcome::Fallback`]):
//! HTTP/1.0, `Expect`, `TE`, upgrades, `CONNECT`, ambiguous or invalid
//! framing (the guard refuses it there), absolute or unusual targets,
//! paths that normalize, `Connection` headers naming other headers,
//! requests that match no rule or whose rule needs more than forwarding
//! (source ranges, redirects, affinity, rewrites, other backend
//! protocols, body size limits on chunked bodies, resource backends,
//! unavailable Services), and connections beyond their client's limit.
//! Since nothing has been written to the client or to a backend by then,
//! the hyper path answers those requests exactly as it would have.

use std::fmt::Write as _;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::deadline::LazyDeadline;
use super::guard::{self, Chunk, Framing, MAX_HEADERS};
use super::handler::{ACCESS, ConnCtx, MAX_TRIES, pick};
use super::upstreams::Upstream;
use crate::annotations::BackendProtocol;
use crate::backend::Backend;

/// The most header lines hyper takes in a message (its default); the
/// fast path keeps to the same limit.
const HYPER_MAX_HEADERS: usize = 100;

/// The largest backend response head (hyper's client buffer limit).
const MAX_RESPONSE_HEAD: usize = 8192 + 4096 * 100;

/// The read buffer for response bodies that do not come with the head.
const BODY_BUFFER: usize = 64 * 1024;

/// The read buffer kept between requests.
const KEPT_BUFFER: usize = 16 * 1024;

/// How a client connection ended on the fast path.
pub(crate) enum Outcome {
    /// Closed (or to be closed): nothing more to do.
    Done,
    /// Hand the connection to the hyper path, these bytes first.
    Fallback(TcpStream, Vec<u8>),
}

/// A client stream with bytes already read in front of it.
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Length(u64),
    Chunked,
}

/// What a parsed request head is forwarded with (the upstream head
/// itself is in [`Scratch::out`]).
struct Plan {
    head_len: usize,
    body: BodyKind,
    head: bool,
    /// Whether the method may be sent again after a kept-alive connection
    /// closed without answering.
    idempotent: bool,
    client_close: bool,
    upstream: Arc<Upstream>,
    read_timeout: Duration,
    send_timeout: Duration,
    connect_timeout: Duration,
    /// `proxy-body-size`, for chunked bodies.
    max_body: Option<u64>,
}

/// Buffers a connection reuses from request to request.
#[derive(Default)]
struct Scratch {
    /// The upstream request head, then body bytes to send.
    out: Vec<u8>,
    /// The path, for the balancer.
    path: String,
    /// Earlier X-Forwarded-For values, joined.
    xff: String,
    /// Access-log fields (filled only when the log is on).
    method: String,
    host: String,
    log_path: String,
    ingress: String,
    /// The backend's bytes.
    resp: Vec<u8>,
    /// The client's response bytes.
    down: Vec<u8>,
}

enum Step {
    Partial,
    Fallback,
    Go(Plan),
}

/// Serves a plaintext connection on the fast path for as long as its
/// requests allow, then hands it over or ends it.
pub(crate) async fn serve(
    mut client: TcpStream,
    ctx: &Arc<ConnCtx>,
    max_head: usize,
    header_timeout: Duration,
) -> Outcome {
    let logging = tracing::enabled!(target: ACCESS, tracing::Level::INFO);
    let mut inb: Vec<u8> = Vec::with_capacity(4096);
    let mut s = Scratch::default();
    let mut head_timer = LazyDeadline::new(Instant::now() + header_timeout);
    let mut backend_timer: Option<LazyDeadline> = None;
    loop {
        let plan = loop {
            if !inb.is_empty() {
                match plan(&inb, ctx, &mut s, logging) {
                    // Near hyper's limit, hyper decides (431 beyond).
                    Step::Go(p) if p.head_len >= max_head => {
                        return Outcome::Fallback(client, inb);
                    }
                    Step::Go(p) => break p,
                    Step::Fallback => return Outcome::Fallback(client, inb),
                    Step::Partial if inb.len() >= max_head => {
                        return Outcome::Fallback(client, inb);
                    }
                    Step::Partial => {}
                }
            }
            if inb.capacity() - inb.len() < 1024 {
                inb.reserve(4096);
            }
            match within(&mut head_timer, client.read_buf(&mut inb)).await {
                Some(Ok(0)) if inb.is_empty() => return Outcome::Done,
                // The client stopped mid-head: hyper sees that as it would.
                Some(Ok(0)) => return Outcome::Fallback(client, inb),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(peer = %ctx.client, "connection: {e}");
                    return Outcome::Done;
                }
                None => {
                    tracing::debug!(peer = %ctx.client, "no complete request head within {header_timeout:?} (header_read_timeout)");
                    return Outcome::Done;
                }
            }
        };
        let start = std::time::Instant::now();
        let timer = backend_timer
            .get_or_insert_with(|| LazyDeadline::new(Instant::now() + plan.read_timeout));
        match exchange(
            &mut client,
            &mut inb,
            &plan,
            ctx,
            &mut s,
            timer,
            logging,
            start,
        )
        .await
        {
            Next::Keep => {}
            Next::Close => return Outcome::Done,
            Next::Fallback => return Outcome::Fallback(client, inb),
        }
        head_timer.set(Instant::now() + header_timeout);
    }
}

/// Whether `b` may appear in a target the fast path forwards as it is
/// (a conservative set; anything else is left to the hyper path).
fn target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%?".contains(&b)
}

/// Visible ASCII or tab: what `HeaderValue::to_str` accepts.
fn visible(v: &[u8]) -> bool {
    v.iter().all(|&b| (32..127).contains(&b) || b == b'\t')
}

/// Request headers the fast path treats specially.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Special {
    Host,
    Connection,
    /// Hop-by-hop, dropped.
    Hop,
    /// Refused on the fast path (`TE`, `Expect`).
    Slow,
    /// Set by the proxy; the client's are dropped.
    Forwarded,
    Xff,
    Other,
}

fn special(name: &str) -> Special {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    match name.len() {
        4 if is("host") => Special::Host,
        10 if is("connection") => Special::Connection,
        10 if is("keep-alive") => Special::Hop,
        16 if is("proxy-connection") => Special::Hop,
        18 if is("proxy-authenticate") => Special::Hop,
        19 if is("proxy-authorization") => Special::Hop,
        2 if is("te") => Special::Slow,
        6 if is("expect") => Special::Slow,
        7 if is("trailer") => Special::Hop,
        17 if is("transfer-encoding") => Special::Hop,
        7 if is("upgrade") => Special::Slow,
        15 if is("x-forwarded-for") => Special::Xff,
        9 if is("x-real-ip") => Special::Forwarded,
        17 if is("x-forwarded-proto") => Special::Forwarded,
        16 if is("x-forwarded-port") => Special::Forwarded,
        16 if is("x-forwarded-host") => Special::Forwarded,
        _ => Special::Other,
    }
}

/// Parses the head at the start of `inb` and decides whether the fast
/// path takes it; if so, writes the upstream head into `s.out`.
fn plan(inb: &[u8], ctx: &ConnCtx, s: &mut Scratch, logging: bool) -> Step {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(inb, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Step::Partial,
        Err(_) => return Step::Fallback,
    };
    // HTTP/1.1 only; more header lines than hyper takes is its 431.
    if req.version != Some(1) || req.headers.len() > HYPER_MAX_HEADERS {
        return Step::Fallback;
    }
    let body = match guard::framing(&req) {
        Framing::Length(n) => BodyKind::Length(n),
        Framing::Chunked => BodyKind::Chunked,
        Framing::Refuse(_) | Framing::Aside => return Step::Fallback,
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Step::Fallback;
    };
    if method == "CONNECT" || !target.starts_with('/') || !target.bytes().all(target_byte) {
        return Step::Fallback;
    }
    let path = target.split('?').next().unwrap_or(target);
    let out = &mut s.out;
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host: Option<&str> = None;
    let mut client_close = false;
    s.xff.clear();
    for h in req.headers.iter() {
        match special(h.name) {
            Special::Other => {}
            Special::Host => {
                if host.is_some() || h.value.is_empty() || !visible(h.value) {
                    return Step::Fallback;
                }
                // Visible ASCII is UTF-8.
                host = std::str::from_utf8(h.value).ok();
            }
            Special::Connection => {
                for t in h.value.split(|&b| b == b',') {
                    let t = t.trim_ascii();
                    if t.eq_ignore_ascii_case(b"close") {
                        client_close = true;
                    } else if !(t.is_empty()
                        || t.eq_ignore_ascii_case(b"keep-alive")
                        || t.eq_ignore_ascii_case(b"upgrade"))
                    {
                        // It names headers to drop: the hyper path does that.
                        return Step::Fallback;
                    }
                }
                continue;
            }
            Special::Hop | Special::Forwarded => continue,
            Special::Slow => return Step::Fallback,
            Special::Xff => {
                if visible(h.value)
                    && let Ok(v) = std::str::from_utf8(h.value)
                    && !v.trim().is_empty()
                {
                    if !s.xff.is_empty() {
                        s.xff.push_str(", ");
                    }
                    s.xff.push_str(v.trim());
                }
                continue;
            }
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let Some(host) = host else {
        return Step::Fallback;
    };
    if matches!(
        crate::path::normalize_path(path),
        std::borrow::Cow::Owned(_)
    ) {
        return Step::Fallback;
    }
    let state = ctx.shared.state.load();
    let Some(route) = state.router.route(host, path) else {
        return Step::Fallback;
    };
    let settings = route.settings();
    let Backend::Service(backend) = route.backend() else {
        return Step::Fallback;
    };
    if settings.affinity.is_some()
        || settings.rewrite_target.is_some()
        || settings.backend_protocol != BackendProtocol::Http
        || settings.force_ssl_redirect
        || (settings.ssl_redirect && state.router.has_tls(host))
        || !settings.allows(ctx.client.ip())
    {
        return Step::Fallback;
    }
    // A declared length over the limit is the hyper path's 413; a chunked
    // body is counted as it comes.
    if let (Some(max), BodyKind::Length(n)) = (settings.max_body_size, body)
        && n > max
    {
        return Step::Fallback;
    }
    let Ok(upstream) = state.upstreams.get(backend) else {
        return Step::Fallback;
    };
    if upstream.h2c() {
        return Step::Fallback;
    }
    // Taken: the headers the proxy sets.
    out.extend_from_slice(b"x-forwarded-for: ");
    if !s.xff.is_empty() {
        out.extend_from_slice(s.xff.as_bytes());
        out.extend_from_slice(b", ");
    }
    let client = ctx.client_value.as_bytes();
    out.extend_from_slice(client);
    out.extend_from_slice(b"\r\nx-real-ip: ");
    out.extend_from_slice(client);
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\nx-forwarded-port: ");
    out.extend_from_slice(ctx.local_port.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-host: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if body == BodyKind::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    s.path.clear();
    s.path.push_str(path);
    if logging {
        s.method.clear();
        s.method.push_str(method);
        s.host.clear();
        s.host.push_str(host);
        s.log_path.clear();
        s.log_path.push_str(path);
        s.ingress.clear();
        let _ = write!(s.ingress, "{}", route.ingress());
    }
    Step::Go(Plan {
        head_len,
        body,
        head: method == "HEAD",
        idempotent: matches!(method, "GET" | "HEAD" | "OPTIONS"),
        client_close,
        upstream: upstream.clone(),
        read_timeout: settings.read_timeout,
        send_timeout: settings.send_timeout,
        connect_timeout: settings.connect_timeout,
        max_body: settings.max_body_size,
    })
}

/// Re-chunks a chunked body as it is read, by the guard's (hyper's) rules.
/// Chunk extensions and trailers are dropped, as hyper drops them.
#[derive(Debug)]
struct Dechunker {
    state: Chunk,
    /// Data bytes so far.
    total: u64,
}

impl Dechunker {
    fn new() -> Self {
        Self {
            state: Chunk::Start,
            total: 0,
        }
    }

    /// Follows `data`, appending what it carries to `out` as chunks (and
    /// the last chunk at the end). Returns the bytes used and whether the
    /// body ended; `None` when the framing is invalid.
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Option<(usize, bool)> {
        let mut p = 0;
        while p < data.len() {
            if let Chunk::Data(rem) = self.state {
                let n = usize::try_from(rem)
                    .unwrap_or(usize::MAX)
                    .min(data.len() - p);
                let _ = write!(HexWriter(out), "{n:x}");
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&data[p..p + n]);
                out.extend_from_slice(b"\r\n");
                p += n;
                self.total += n as u64;
                let left = rem - n as u64;
                self.state = if left == 0 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            match guard::chunk_step(self.state, data[p])? {
                Some(next) => self.state = next,
                None => {
                    out.extend_from_slice(b"0\r\n\r\n");
                    return Some((p + 1, true));
                }
            }
            p += 1;
        }
        Some((p, false))
    }
}

/// `fmt::Write` into a byte buffer.
struct HexWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for HexWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// `fut`'s output, or `None` once the timer's deadline has passed.
async fn within<F: Future>(timer: &mut LazyDeadline, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        timer.poll_expired(cx).map(|()| None)
    })
    .await
}

/// Why an exchange with a backend failed.
enum Failure {
    /// Before the response head: answer with this status and reason.
    Answer(u16, String),
    /// The client went away or broke its body: close.
    Close,
}

/// What becomes of the client connection after a request.
enum Next {
    Keep,
    Close,
    /// Nothing was sent: the hyper path takes the request (still in the
    /// buffer) and the rest of the connection.
    Fallback,
}

impl From<bool> for Next {
    fn from(keep: bool) -> Self {
        if keep { Self::Keep } else { Self::Close }
    }
}

/// One request: send it (trying other endpoints as the hyper path does),
/// forward the response.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    client: &mut TcpStream,
    inb: &mut Vec<u8>,
    plan: &Plan,
    ctx: &ConnCtx,
    s: &mut Scratch,
    timer: &mut LazyDeadline,
    logging: bool,
    start: std::time::Instant,
) -> Next {
    // The body bytes already read go out with the head.
    let mut consumed = plan.head_len;
    let mut remaining = 0u64;
    let mut dechunk = Dechunker::new();
    let mut body_done = match plan.body {
        BodyKind::Length(n) => {
            let avail = (inb.len() - consumed).min(usize::try_from(n).unwrap_or(usize::MAX));
            s.out.extend_from_slice(&inb[consumed..consumed + avail]);
            consumed += avail;
            remaining = n - avail as u64;
            remaining == 0
        }
        BodyKind::Chunked => match dechunk.feed(&inb[consumed..], &mut s.out) {
            // Over the limit already: the hyper path's 413.
            Some(_) if plan.max_body.is_some_and(|m| dechunk.total > m) => return Next::Fallback,
            Some((used, done)) => {
                consumed += used;
                done
            }
            // Invalid framing: the guard steps aside and hyper answers.
            None => return Next::Fallback,
        },
    };
    inb.drain(..consumed);
    let upstream = &*plan.upstream;
    let endpoints = upstream.endpoints();
    let tries = endpoints.len().min(MAX_TRIES);
    let mut tried: Vec<usize> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut attempt = 0;
    let resend = body_done;
    let result: Result<(TcpStream, SocketAddr, bool), Failure> = loop {
        if attempt >= tries {
            break Err(Failure::Answer(
                502,
                format!(
                    "no endpoint of {} could be reached: {}",
                    upstream.name(),
                    failures.join("; ")
                ),
            ));
        }
        let idx = pick(ctx, upstream, &s.path, attempt, &tried);
        let addr = endpoints[idx];
        let (mut conn, reused) = match ctx.pool.raw_idle(addr) {
            Some(c) => (c, true),
            None => match connect(addr, plan.connect_timeout).await {
                Ok(c) => (c, false),
                Err(e) => {
                    failures.push(format!("connect to {addr}: {e}"));
                    tried.push(idx);
                    attempt += 1;
                    continue;
                }
            },
        };
        timer.set(Instant::now() + plan.read_timeout);
        let sent = within(timer, conn.write_all(&s.out)).await;
        let sent = match sent {
            None => break Err(timed_out(upstream, addr, plan.read_timeout)),
            Some(r) => r,
        };
        if let Err(e) = sent {
            if resend && reused {
                // A kept-alive connection the backend had closed.
                continue;
            }
            if resend {
                failures.push(format!(
                    "{addr}: the connection closed before the request was sent"
                ));
                tried.push(idx);
                attempt += 1;
                continue;
            }
            break Err(failed(upstream, addr, &e));
        }
        if !body_done {
            let body_timeout = ctx.shared.client_body_timeout.min(plan.send_timeout);
            match send_body(
                client,
                &mut conn,
                inb,
                &mut s.out,
                plan.body,
                &mut remaining,
                &mut dechunk,
                plan.max_body,
                body_timeout,
                timer,
            )
            .await
            {
                Ok(()) => body_done = true,
                Err(BodyError::Client(why)) => {
                    break Err(Failure::Answer(
                        502,
                        format!("{} endpoint {addr} failed: {why}", upstream.name()),
                    ));
                }
                Err(BodyError::ClientGone) => break Err(Failure::Close),
                Err(BodyError::TooLarge) => {
                    break Err(Failure::Answer(
                        413,
                        "the body is larger than proxy-body-size allows".to_string(),
                    ));
                }
                Err(BodyError::Backend(e)) => break Err(failed(upstream, addr, &e)),
                Err(BodyError::TimedOut) => {
                    break Err(timed_out(upstream, addr, plan.read_timeout));
                }
            }
        }
        break Ok((conn, addr, reused));
    };
    let (mut conn, addr, reused) = match result {
        Ok(x) => x,
        Err(Failure::Close) => return Next::Close,
        Err(Failure::Answer(status, why)) => {
            return answer_error(
                client, ctx, s, plan, status, &why, body_done, logging, start,
            )
            .await
            .into();
        }
    };
    let client_keep = !plan.client_close && body_done;
    // The response head (1xx skipped), with the same retry for a
    // kept-alive connection that closed without answering.
    let mut conn_reused_retry = false;
    let head = loop {
        s.resp.clear();
        match read_head(
            &mut conn,
            &mut s.resp,
            timer,
            plan.head,
            client_keep,
            &mut s.down,
        )
        .await
        {
            Ok(h) => break Ok(h),
            Err(HeadError::Closed) if reused && resend && plan.idempotent && !conn_reused_retry => {
                // Once, on a fresh connection.
                conn_reused_retry = true;
                match connect(addr, plan.connect_timeout).await {
                    Ok(c) => conn = c,
                    Err(e) => break Err(failed(upstream, addr, &e)),
                }
                timer.set(Instant::now() + plan.read_timeout);
                match within(timer, conn.write_all(&s.out)).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => break Err(failed(upstream, addr, &e)),
                    None => break Err(timed_out(upstream, addr, plan.read_timeout)),
                }
            }
            Err(HeadError::Closed) => {
                break Err(failed(
                    upstream,
                    addr,
                    &"connection closed before message completed",
                ));
            }
            Err(HeadError::TimedOut) => break Err(timed_out(upstream, addr, plan.read_timeout)),
            Err(HeadError::Invalid(why)) => break Err(failed(upstream, addr, &why)),
            Err(HeadError::Io(e)) => break Err(failed(upstream, addr, &e)),
        }
    };
    let head = match head {
        Ok(h) => h,
        Err(Failure::Answer(status, why)) => {
            return answer_error(
                client, ctx, s, plan, status, &why, body_done, logging, start,
            )
            .await
            .into();
        }
        Err(Failure::Close) => return Next::Close,
    };
    if logging {
        log(ctx, s, head.status, Some(addr), start);
    }
    s.resp.drain(..head.len);
    let backend_keep =
        match forward_body(client, &mut conn, s, &head, timer, plan.read_timeout).await {
            Ok(keep) => keep,
            Err(()) => return Next::Close,
        };
    if backend_keep && head.keep_alive && s.resp.is_empty() {
        ctx.pool.put_raw(addr, conn);
    }
    if s.resp.capacity() > KEPT_BUFFER {
        s.resp.shrink_to(KEPT_BUFFER);
    }
    client_keep.into()
}

async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )
        })??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

fn timed_out(upstream: &Upstream, addr: SocketAddr, limit: Duration) -> Failure {
    Failure::Answer(
        504,
        format!(
            "{} endpoint {addr} sent no response within {limit:?} (proxy-read-timeout)",
            upstream.name()
        ),
    )
}

fn failed(upstream: &Upstream, addr: SocketAddr, e: &dyn std::fmt::Display) -> Failure {
    Failure::Answer(
        502,
        format!("{} endpoint {addr} failed: {e}", upstream.name()),
    )
}

enum BodyError {
    /// The client's body broke (timeout, invalid framing): say why.
    Client(String),
    ClientGone,
    /// Past `proxy-body-size`.
    TooLarge,
    Backend(io::Error),
    TimedOut,
}

/// Streams the rest of a request body from the client to the backend.
#[allow(clippy::too_many_arguments)]
async fn send_body(
    client: &mut TcpStream,
    conn: &mut TcpStream,
    inb: &mut Vec<u8>,
    out: &mut Vec<u8>,
    kind: BodyKind,
    remaining: &mut u64,
    dechunk: &mut Dechunker,
    max_body: Option<u64>,
    idle: Duration,
    timer: &mut LazyDeadline,
) -> Result<(), BodyError> {
    loop {
        // What is buffered first (nothing on the first turn).
        out.clear();
        let done = match kind {
            BodyKind::Length(_) => {
                let n = inb
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                out.extend_from_slice(&inb[..n]);
                inb.drain(..n);
                *remaining -= n as u64;
                *remaining == 0
            }
            BodyKind::Chunked => match dechunk.feed(inb, out) {
                Some(_) if max_body.is_some_and(|m| dechunk.total > m) => {
                    return Err(BodyError::TooLarge);
                }
                Some((used, done)) => {
                    inb.drain(..used);
                    done
                }
                None => return Err(BodyError::Client("invalid chunked body".to_string())),
            },
        };
        if !out.is_empty() {
            match within(timer, conn.write_all(out)).await {
                None => return Err(BodyError::TimedOut),
                Some(Err(e)) => return Err(BodyError::Backend(e)),
                Some(Ok(())) => {}
            }
        }
        if done {
            return Ok(());
        }
        if inb.capacity() - inb.len() < 4096 {
            inb.reserve(16 * 1024);
        }
        let read = within(timer, tokio::time::timeout(idle, client.read_buf(inb))).await;
        match read {
            None => return Err(BodyError::TimedOut),
            Some(Err(_)) => {
                return Err(BodyError::Client(format!(
                    "the client sent nothing for {idle:?}"
                )));
            }
            Some(Ok(Ok(0) | Err(_))) => return Err(BodyError::ClientGone),
            Some(Ok(Ok(_))) => {}
        }
    }
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RespBody {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the response head says.
struct RespHead {
    len: usize,
    status: u16,
    body: RespBody,
    /// Whether the backend keeps the connection open after it.
    keep_alive: bool,
}

enum HeadError {
    /// Closed before any byte of a response.
    Closed,
    TimedOut,
    Invalid(String),
    Io(io::Error),
}

/// Reads a response head into `buf` (from its start), skipping 1xx.
async fn read_head(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    timer: &mut LazyDeadline,
    head_req: bool,
    client_keep: bool,
    down: &mut Vec<u8>,
) -> Result<RespHead, HeadError> {
    loop {
        if !buf.is_empty() {
            match parse_response(buf, head_req, client_keep, down) {
                Ok(Some(h)) if (100..200).contains(&h.status) => {
                    if h.status == 101 {
                        return Err(HeadError::Invalid(
                            "101 Switching Protocols without an upgrade".into(),
                        ));
                    }
                    buf.drain(..h.len);
                    continue;
                }
                Ok(Some(h)) => return Ok(h),
                Ok(None) if buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::Invalid("message head is too large".into()));
                }
                Ok(None) => {}
                Err(e) => return Err(HeadError::Invalid(e)),
            }
        }
        if buf.capacity() - buf.len() < 2048 {
            buf.reserve(8192);
        }
        let was_empty = buf.is_empty();
        match within(timer, conn.read_buf(buf)).await {
            None => return Err(HeadError::TimedOut),
            Some(Ok(0)) if was_empty => return Err(HeadError::Closed),
            Some(Ok(0)) => {
                return Err(HeadError::Invalid(
                    "connection closed before message completed".into(),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e))
                if was_empty
                    && matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    ) =>
            {
                return Err(HeadError::Closed);
            }
            Some(Err(e)) => return Err(HeadError::Io(e)),
        }
    }
}

/// A response head at the start of `buf`: `None` while incomplete. The
/// head of a final response is written for the client into `down` (see
/// [`client_head`]) in the same pass.
fn parse_response(
    buf: &[u8],
    head_req: bool,
    client_keep: bool,
    down: &mut Vec<u8>,
) -> Result<Option<RespHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid response head: {e}")),
    };
    if resp.headers.len() > HYPER_MAX_HEADERS {
        return Err("too many headers in the response".into());
    }
    let status = resp.code.unwrap_or(0);
    let mut length: Option<u64> = None;
    let mut te: Option<bool> = None;
    let mut close = resp.version != Some(1);
    let mut unusual = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match guard::digits(h.value) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return Err("invalid content-length in the response".into()),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = Some(guard::is_chunked(h.value));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    if resp.version == Some(0) {
                        close = false;
                    }
                } else if !(t.is_empty() || t.eq_ignore_ascii_case(b"upgrade")) {
                    unusual = true;
                }
            }
        }
    }
    let body = if head_req || (100..200).contains(&status) || status == 204 || status == 304 {
        RespBody::None
    } else {
        match (te, length) {
            (Some(true), _) => RespBody::Chunked,
            (Some(false), _) => RespBody::UntilClose,
            (None, Some(n)) => RespBody::Length(n),
            (None, None) => RespBody::UntilClose,
        }
    };
    let head = RespHead {
        len,
        status,
        body,
        keep_alive: !close && body != RespBody::UntilClose,
    };
    if !(100..200).contains(&status) {
        client_head(&resp, &head, unusual, client_keep, down);
    }
    Ok(Some(head))
}

/// Response headers dropped on the way to the client (hop-by-hop).
fn response_hop(name: &str) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    match name.len() {
        10 => is("connection") || is("keep-alive"),
        16 => is("proxy-connection"),
        18 => is("proxy-authenticate"),
        19 => is("proxy-authorization"),
        2 => is("te"),
        7 => is("trailer") || is("upgrade"),
        17 => is("transfer-encoding"),
        _ => false,
    }
}

/// Writes the client's response head: the backend's, hop-by-hop headers
/// (and those its `Connection` names, when `unusual`) dropped, framing
/// and `Date` as hyper's server sets them.
fn client_head(
    resp: &httparse::Response<'_, '_>,
    head: &RespHead,
    unusual: bool,
    client_keep: bool,
    down: &mut Vec<u8>,
) {
    down.clear();
    down.extend_from_slice(b"HTTP/1.1 ");
    let _ = write!(HexWriter(down), "{:03} ", head.status);
    down.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    down.extend_from_slice(b"\r\n");
    // Headers named by Connection (besides the usual tokens).
    let named = |name: &str| {
        resp.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection")
                && h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        })
    };
    let chunked_out = matches!(head.body, RespBody::Chunked | RespBody::UntilClose);
    let mut date = false;
    for h in resp.headers.iter() {
        if response_hop(h.name) || (unusual && named(h.name)) {
            continue;
        }
        if chunked_out && h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if h.name.eq_ignore_ascii_case("date") {
            date = true;
        }
        down.extend_from_slice(h.name.as_bytes());
        down.extend_from_slice(b": ");
        down.extend_from_slice(h.value);
        down.extend_from_slice(b"\r\n");
    }
    if chunked_out {
        down.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !date {
        down.extend_from_slice(b"date: ");
        down.extend_from_slice(&http_date());
        down.extend_from_slice(b"\r\n");
    }
    if !client_keep {
        down.extend_from_slice(b"connection: close\r\n");
    }
    down.extend_from_slice(b"\r\n");
}

/// Forwards the response body (what is in `s.resp` first, then reads),
/// writing `s.down` (the head) with its first bytes. `Ok(true)` when the
/// backend connection ended cleanly at the body's end; `Err` when the
/// client connection must be closed.
async fn forward_body(
    client: &mut TcpStream,
    conn: &mut TcpStream,
    s: &mut Scratch,
    head: &RespHead,
    timer: &mut LazyDeadline,
    idle: Duration,
) -> Result<bool, ()> {
    let mut remaining = match head.body {
        RespBody::Length(n) => n,
        _ => 0,
    };
    let mut dechunk = Dechunker::new();
    let mut done = head.body == RespBody::None || (head.body == RespBody::Length(0));
    let mut closed = false;
    loop {
        // What is buffered.
        match head.body {
            RespBody::None => {}
            RespBody::Length(_) => {
                // Written from where it was read, the head (if not sent
                // yet) in front: one system call, no copy.
                let n = s
                    .resp
                    .len()
                    .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                if write_two(client, &s.down, &s.resp[..n]).await.is_err() {
                    return Err(());
                }
                s.down.clear();
                s.resp.drain(..n);
                remaining -= n as u64;
                done = remaining == 0;
            }
            RespBody::Chunked => match dechunk.feed(&s.resp, &mut s.down) {
                Some((used, d)) => {
                    s.resp.drain(..used);
                    done = d;
                }
                None => {
                    tracing::debug!("backend: invalid chunked body");
                    return Err(());
                }
            },
            RespBody::UntilClose => {
                if !s.resp.is_empty() {
                    let n = s.resp.len();
                    let _ = write!(HexWriter(&mut s.down), "{n:x}");
                    s.down.extend_from_slice(b"\r\n");
                    s.down.extend_from_slice(&s.resp);
                    s.down.extend_from_slice(b"\r\n");
                    s.resp.clear();
                }
                if closed {
                    s.down.extend_from_slice(b"0\r\n\r\n");
                    done = true;
                }
            }
        }
        if !s.down.is_empty() {
            if client.write_all(&s.down).await.is_err() {
                return Err(());
            }
            s.down.clear();
        }
        if done {
            return Ok(!closed);
        }
        // Large bodies move in reads of up to 64 KiB (given back after).
        if s.resp.capacity() < BODY_BUFFER {
            s.resp.reserve(BODY_BUFFER);
        }
        timer.set(Instant::now() + idle);
        match within(timer, conn.read_buf(&mut s.resp)).await {
            Some(Ok(0)) if head.body == RespBody::UntilClose => closed = true,
            Some(Ok(0)) | Some(Err(_)) | None => {
                tracing::debug!("backend: the response body ended early or stalled");
                return Err(());
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Writes `a` then `b`, gathered (`writev`) while both have bytes left.
async fn write_two(w: &mut TcpStream, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = if a.is_empty() {
            w.write(b).await?
        } else if b.is_empty() {
            w.write(a).await?
        } else {
            w.write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let k = n.min(a.len());
        a = &a[k..];
        b = &b[n - k..];
    }
    Ok(())
}

/// Writes a plain-text error answer, as the hyper path's; whether the
/// client connection stays open.
#[allow(clippy::too_many_arguments)]
async fn answer_error(
    client: &mut TcpStream,
    ctx: &ConnCtx,
    s: &mut Scratch,
    plan: &Plan,
    status: u16,
    why: &str,
    body_done: bool,
    logging: bool,
    start: std::time::Instant,
) -> bool {
    if logging {
        log(ctx, s, status, None, start);
    }
    let code = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let reason = code.canonical_reason().unwrap_or("");
    let body = format!("{status} {reason}: {why}\n");
    let keep = !plan.client_close && body_done;
    let d = &mut s.down;
    d.clear();
    let _ = write!(
        HexWriter(d),
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\nx-k8snet-ingress: error\r\ncontent-length: {}\r\ndate: ",
        body.len()
    );
    d.extend_from_slice(&http_date());
    d.extend_from_slice(b"\r\n");
    if !keep {
        d.extend_from_slice(b"connection: close\r\n");
    }
    d.extend_from_slice(b"\r\n");
    if !plan.head {
        d.extend_from_slice(body.as_bytes());
    }
    client.write_all(d).await.is_ok() && keep
}

fn log(
    ctx: &ConnCtx,
    s: &Scratch,
    status: u16,
    upstream: Option<SocketAddr>,
    start: std::time::Instant,
) {
    tracing::info!(
        target: ACCESS,
        client = %ctx.client.ip(),
        method = %s.method,
        host = %s.host,
        path = %s.log_path,
        status = status,
        upstream = %upstream.map_or_else(|| "-".to_string(), |a| a.to_string()),
        ingress = %s.ingress,
        duration_us = start.elapsed().as_micros() as u64,
    );
}

/// The current time as an HTTP date (IMF-fixdate), made once a second
/// per thread.
fn http_date() -> [u8; 29] {
    use std::cell::Cell;
    thread_local! {
        static CACHE: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let (at, text) = c.get();
        if at == now {
            return text;
        }
        let text = format_date(now);
        c.set((now, text));
        text
    })
}

/// `secs` since the epoch as `Sun, 06 Nov 1994 08:49:37 GMT`.
fn format_date(secs: u64) -> [u8; 29] {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let text = format!(
        "{}, {d:02} {} {year:04} {h:02}:{m:02}:{s:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    );
    let mut out = [b' '; 29];
    let n = text.len().min(29);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(&format_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&format_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn chunked_bodies_are_rechunked_in_any_split() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\nNEXT";
        let mut whole = Vec::new();
        let mut d = Dechunker::new();
        let (used, done) = d.feed(body, &mut whole).unwrap();
        assert_eq!((used, done), (body.len() - 4, true));
        assert_eq!(whole, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        // Byte by byte: the same data, however chunked.
        let mut d = Dechunker::new();
        let mut out = Vec::new();
        let mut ended = None;
        for (i, b) in body.iter().enumerate() {
            let (u, done) = d.feed(std::slice::from_ref(b), &mut out).unwrap();
            assert_eq!(u, 1);
            if done {
                ended = Some(i + 1);
                break;
            }
        }
        assert_eq!(ended, Some(body.len() - 4));
        assert_eq!(data_of(&out), b"hello world");
        assert_eq!(data_of(&whole), b"hello world");
        assert!(Dechunker::new().feed(b"zz\r\n", &mut Vec::new()).is_none());
    }

    /// The data of a chunked body without extensions or trailers.
    fn data_of(mut chunked: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        loop {
            let line = chunked.iter().position(|&b| b == b'\r').unwrap();
            let n =
                usize::from_str_radix(std::str::from_utf8(&chunked[..line]).unwrap(), 16).unwrap();
            if n == 0 {
                assert_eq!(&chunked[line..], b"\r\n\r\n");
                return data;
            }
            data.extend_from_slice(&chunked[line + 2..line + 2 + n]);
            assert_eq!(&chunked[line + 2 + n..line + 4 + n], b"\r\n");
            chunked = &chunked[line + 4 + n..];
        }
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let p = |s: &str, head| {
            parse_response(s.as_bytes(), head, true, &mut Vec::new())
                .unwrap()
                .unwrap()
        };
        let h = p("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false);
        assert_eq!((h.body, h.keep_alive), (RespBody::Length(5), true));
        let h = p("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true);
        assert_eq!(h.body, RespBody::None);
        let h = p("HTTP/1.1 204 No Content\r\n\r\n", false);
        assert_eq!((h.body, h.keep_alive), (RespBody::None, true));
        let h = p(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(h.body, RespBody::Chunked);
        let h = p("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((h.body, h.keep_alive), (RespBody::UntilClose, false));
        let h = p(
            "HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 1\r\n\r\n",
            false,
        );
        assert!(!h.keep_alive);
        let h = p("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", false);
        assert!(!h.keep_alive);
        let mut down = Vec::new();
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
                false,
                true,
                &mut down
            )
            .is_err()
        );
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\n", false, true, &mut down)
                .unwrap()
                .is_none()
        );
        // The client's head: hop-by-hop and Connection-named headers
        // dropped, the framing re-stated, a Date added.
        parse_response(
            b"HTTP/1.1 200 Fine\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nX-End: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            false,
            &mut down,
        )
        .unwrap()
        .unwrap();
        let text = String::from_utf8(down).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 200 Fine\r\nX-End: 2\r\ntransfer-encoding: chunked\r\ndate: "
            ),
            "{text}"
        );
        assert!(
            text.ends_with(" GMT\r\nconnection: close\r\n\r\n"),
            "{text}"
        );
    }
}
