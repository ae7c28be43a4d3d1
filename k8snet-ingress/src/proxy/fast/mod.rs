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
//! protocols, a declared `Content-Length` over the body size limit (a
//! chunked body over it gets 413 here), resource backends,
//! unavailable Services), and connections beyond their client's limit.
//! Since nothing has been written to the client or to a backend by then,
//! the hyper path answers those requests exactly as it would have.
//!
//! When a pooled backend connection turns out closed, the request is sent
//! again only while nothing of it is lost (see `exchange` for the rule).
//! An error answer sent before the request body was all read ends in a
//! lingering close (see `super::linger`), so that the client reads it.

use std::fmt::Write as _;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::deadline::LazyDeadline;
use super::guard::{self, Chunk, Framing, MAX_HEADERS};
use super::handler::{ACCESS, ConnCtx, MAX_TRIES, pick};
use super::linger::linger;
use super::upstreams::Upstream;
use crate::annotations::BackendProtocol;
use crate::backend::Backend;

mod body;
mod date;
mod exchange;
mod prefixed;
mod request;
mod response;

use self::body::*;
use self::date::*;
use self::exchange::*;
pub(crate) use self::prefixed::Prefixed;
use self::request::*;
use self::response::*;

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
    /// Whether the method is idempotent (RFC 9110 §9.2.2), so that a head
    /// a backend closed on before the body was complete may go again: a
    /// POST or PATCH never does (nginx does not resend those once sent
    /// either; a streaming backend may have acted on the head).
    resend_unfinished: bool,
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
    let sent = client.write_all(d).await.is_ok();
    if sent && !body_done {
        // The client may still be sending its body: a lingering close
        // (see `linger`), so that it reads this answer.
        linger(client).await;
    }
    sent && keep
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
        // Both framings: chunked wins, and the connection is not reused.
        assert_eq!((h.body, h.keep_alive), (RespBody::Chunked, false));
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
