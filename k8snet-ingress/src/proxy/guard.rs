//! A framing guard between a client connection and hyper's HTTP/1 parser.
//!
//! hyper reads a request that carries both `Content-Length` and
//! `Transfer-Encoding` as chunked, drops the `Content-Length` before the
//! service sees the request, and closes the connection after answering
//! (RFC 9112 §6.1 allows that). nginx (since 1.21.1), and so
//! ingress-nginx, refuses such a request with `400 Bad Request` instead —
//! the other choice RFC 9112 leaves, and the one that tells a client (or
//! a scanner) that the attempt was seen. The service cannot do that: the
//! evidence is gone by the time it runs. So this guard reads the bytes
//! before hyper does:
//!
//! - it follows the framing of every request on the connection, with the
//!   parser hyper uses (`httparse`) for heads and hyper's rules for bodies
//!   (`Content-Length`, or chunked when `Transfer-Encoding` is present);
//! - it holds back a request head until the head is complete, checks it,
//!   and hands it on unchanged — a complete head that arrives in one read
//!   (nearly all of them) is checked in place, without a copy, and bodies
//!   are only counted;
//! - a head with both `Content-Length` and `Transfer-Encoding`, or with
//!   `Content-Length` values that disagree, is replaced by a request line
//!   hyper cannot parse, so hyper itself answers `400 Bad Request` and
//!   closes the connection — after the responses to the requests before
//!   it, in order — and nothing after it is read.
//!
//! Since it holds heads back, the guard also times them: a connection
//! whose first head is not complete within the header timeout of its
//! start, or a later head within the timeout of its first byte, fails
//! with `TimedOut` and hyper closes it. (hyper's own header timer starts
//! only once hyper-util has seen enough bytes to pick HTTP/1, which a
//! client sending nothing, or a held head, never gives it; it still times
//! the wait for the next request on a kept-alive connection.)
//!
//! Whatever the guard cannot follow (an HTTP/2 preface, a head hyper will
//! refuse anyway, a chunk line hyper rejects, a head larger than hyper's
//! limit) makes it step aside for the rest of the connection: hyper sees
//! those bytes unchanged and gives its own answer. After a request that
//! asks for an upgrade (or `CONNECT`) it steps aside too, since the bytes
//! that follow may belong to a tunnel.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::linger::Linger;

/// What hyper is given in place of a refused head: a method with a control
/// character in it, which hyper's parser refuses with 400.
const REFUSED: &[u8] = b"REFUSED\x01AMBIGUOUS-FRAMING\r\n\r\n";

/// Header lines parsed per head; more is hyper's 431 (its default limit is
/// 100), so the guard steps aside.
pub(super) const MAX_HEADERS: usize = 128;

/// Why a head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ambiguity {
    /// Both `Content-Length` and `Transfer-Encoding`.
    LengthAndEncoding,
    /// `Content-Length` values that disagree.
    ConflictingLengths,
}

impl Ambiguity {
    fn reason(self) -> &'static str {
        match self {
            Self::LengthAndEncoding => "both Content-Length and Transfer-Encoding",
            Self::ConflictingLengths => "Content-Length values that disagree",
        }
    }
}

/// Where the guard is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a request head.
    Head,
    /// Inside a body of known length: this many bytes left.
    Length(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Not following any more: every byte goes to hyper as it is.
    Aside,
    /// A head was refused: nothing more is read.
    Refused,
}

/// Chunked-body states, as hyper's decoder has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    Start,
    Size(u64),
    Lws(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    EndCr,
    EndLf,
    Trailer,
    TrailerLf,
}

/// How far a scan got through new bytes.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// All of them can go to hyper.
    All,
    /// The first n can; a head starts at n and is not complete yet.
    Partial(usize),
    /// The first n can; the head at n is refused.
    Refuse(usize, Ambiguity),
}

/// The byte-stream follower, apart from any I/O (unit-testable).
#[derive(Debug)]
struct Scanner {
    state: State,
}

impl Scanner {
    fn new() -> Self {
        Self { state: State::Head }
    }

    /// Follows `data`, the bytes that come next on the connection.
    fn scan(&mut self, data: &[u8]) -> Scan {
        let mut p = 0;
        while p < data.len() {
            match self.state {
                State::Aside => return Scan::All,
                State::Refused => return Scan::Refuse(p, Ambiguity::LengthAndEncoding),
                State::Head => match check_head(&data[p..]) {
                    HeadCheck::Partial => return Scan::Partial(p),
                    HeadCheck::Aside => {
                        self.state = State::Aside;
                        return Scan::All;
                    }
                    HeadCheck::Refuse(why) => {
                        self.state = State::Refused;
                        return Scan::Refuse(p, why);
                    }
                    HeadCheck::Next(len, next) => {
                        p += len;
                        self.state = next;
                    }
                },
                State::Length(rem) => {
                    let avail = (data.len() - p) as u64;
                    if avail < rem {
                        self.state = State::Length(rem - avail);
                        return Scan::All;
                    }
                    // rem <= avail, which is a usize.
                    p += rem as usize;
                    self.state = State::Head;
                }
                State::Chunked(Chunk::Data(rem)) => {
                    let avail = (data.len() - p) as u64;
                    if avail < rem {
                        self.state = State::Chunked(Chunk::Data(rem - avail));
                        return Scan::All;
                    }
                    p += rem as usize;
                    self.state = State::Chunked(Chunk::DataCr);
                }
                State::Chunked(c) => {
                    self.state = match chunk_step(c, data[p]) {
                        Some(Some(next)) => State::Chunked(next),
                        Some(None) => State::Head,
                        None => State::Aside,
                    };
                    p += 1;
                }
            }
        }
        Scan::All
    }
}

/// One byte of chunk framing: `Some(Some(state))` to go on, `Some(None)`
/// at the end of the body, `None` where hyper's decoder fails.
pub(super) fn chunk_step(c: Chunk, b: u8) -> Option<Option<Chunk>> {
    let hex = |size: u64| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        size.checked_mul(16)?.checked_add(u64::from(d))
    };
    let next = match (c, b) {
        (Chunk::Start, _) => Chunk::Size(hex(0)?),
        (Chunk::Size(s), b'\t' | b' ') | (Chunk::Lws(s), b'\t' | b' ') => Chunk::Lws(s),
        (Chunk::Size(s) | Chunk::Lws(s), b';') => Chunk::Extension(s),
        (Chunk::Size(s) | Chunk::Lws(s) | Chunk::Extension(s), b'\r') => Chunk::SizeLf(s),
        (Chunk::Size(s), _) => Chunk::Size(hex(s)?),
        (Chunk::Lws(_), _) => return None,
        (Chunk::Extension(_), b'\n') => return None,
        (Chunk::Extension(s), _) => Chunk::Extension(s),
        (Chunk::SizeLf(0), b'\n') => Chunk::EndCr,
        (Chunk::SizeLf(s), b'\n') => Chunk::Data(s),
        (Chunk::DataCr, b'\r') => Chunk::DataLf,
        (Chunk::DataLf, b'\n') => Chunk::Start,
        (Chunk::EndCr, b'\r') => Chunk::EndLf,
        (Chunk::EndCr, _) | (Chunk::Trailer, _) if b != b'\r' => Chunk::Trailer,
        (Chunk::Trailer, _) => Chunk::TrailerLf,
        (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
        (Chunk::EndLf, b'\n') => return Some(None),
        _ => return None,
    };
    Some(Some(next))
}

enum HeadCheck {
    Partial,
    Aside,
    Refuse(Ambiguity),
    /// The head is this long, and the body after it is framed so.
    Next(usize, State),
}

fn check_head(data: &[u8]) -> HeadCheck {
    // Left uninitialized (httparse fills what it parses): zeroing 128
    // header slots per request cost more than the parse of a short head.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(data, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return HeadCheck::Partial,
        // hyper refuses it too (400, 431 or 505), with its own answer.
        Err(_) => return HeadCheck::Aside,
    };
    match framing(&req) {
        Framing::Refuse(why) => HeadCheck::Refuse(why),
        Framing::Aside => HeadCheck::Aside,
        Framing::Length(0) => HeadCheck::Next(len, State::Head),
        Framing::Length(n) => HeadCheck::Next(len, State::Length(n)),
        Framing::Chunked => HeadCheck::Next(len, State::Chunked(Chunk::Start)),
    }
}

pub(super) enum Framing {
    Refuse(Ambiguity),
    Aside,
    Length(u64),
    Chunked,
}

/// The body framing of a parsed head, by hyper's rules (RFC 9112 §6.3).
pub(super) fn framing(req: &httparse::Request<'_, '_>) -> Framing {
    let mut length: Option<u64> = None;
    let mut lengths_conflict = false;
    let mut length_invalid = false;
    let mut te_chunked: Option<bool> = None;
    let mut upgrade = req.method == Some("CONNECT");
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match digits(h.value) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                Some(_) => lengths_conflict = true,
                None => length_invalid = true,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te_chunked = Some(is_chunked(h.value));
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    let has_length = length.is_some() || lengths_conflict || length_invalid;
    if te_chunked.is_some() && has_length {
        return Framing::Refuse(Ambiguity::LengthAndEncoding);
    }
    if lengths_conflict {
        return Framing::Refuse(Ambiguity::ConflictingLengths);
    }
    // hyper refuses these itself; an upgrade may be followed by a tunnel.
    if length_invalid || upgrade || (req.version != Some(1) && te_chunked.is_some()) {
        return Framing::Aside;
    }
    match te_chunked {
        Some(true) => Framing::Chunked,
        Some(false) => Framing::Aside,
        None => Framing::Length(length.unwrap_or(0)),
    }
}

/// A `Content-Length` value as hyper reads it: ASCII digits only.
pub(super) fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Whether `chunked` is the last coding, as hyper decides.
pub(super) fn is_chunked(v: &[u8]) -> bool {
    v.rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// A client connection seen through the guard.
pub(crate) struct Guarded<S> {
    inner: S,
    scanner: Scanner,
    /// An incomplete head, held back from hyper.
    hold: Vec<u8>,
    /// Bytes ready for hyper, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    /// The largest head held back before stepping aside (hyper's limit).
    limit: usize,
    peer: SocketAddr,
    start: Instant,
    header_timeout: std::time::Duration,
    /// When the head being waited for must be complete: armed from the
    /// start for the first head, and from its first byte for a later one.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The lingering close under way, once hyper shuts the connection.
    linger: Option<Linger>,
}

impl<S> Guarded<S> {
    pub(crate) fn new(
        inner: S,
        limit: usize,
        header_timeout: std::time::Duration,
        peer: SocketAddr,
    ) -> Self {
        Self {
            inner,
            scanner: Scanner::new(),
            hold: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            limit,
            peer,
            start: Instant::now(),
            header_timeout,
            deadline: Some(Box::pin(tokio::time::sleep(header_timeout))),
            linger: None,
        }
    }

    /// Arms the head timer while a head is held, disarms it otherwise.
    fn time_heads(&mut self) {
        if self.hold.is_empty() {
            self.deadline = None;
        } else if self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.header_timeout)));
        }
    }

    /// Reads from the client; fails once the head timer has run out.
    fn poll_inner(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>
    where
        S: AsyncRead + Unpin,
    {
        let ready = Pin::new(&mut self.inner).poll_read(cx, buf);
        if ready.is_pending()
            && let Some(d) = &mut self.deadline
            && d.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no complete request head within {:?} (header_read_timeout)",
                    self.header_timeout
                ),
            )));
        }
        ready
    }

    /// Copies what is ready into `buf`; whether anything was.
    fn deliver(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.out_pos >= self.out.len() {
            return false;
        }
        let n = buf.remaining().min(self.out.len() - self.out_pos);
        buf.put_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        n > 0
    }

    /// Replaces a refused head by what makes hyper answer 400, and logs it.
    fn refuse(&mut self, head: &[u8], why: Ambiguity) {
        log_refusal(head, why, self.peer, self.start);
        self.hold.clear();
        self.out.extend_from_slice(REFUSED);
    }

    /// Steps aside when the held head grows past hyper's limit, so hyper
    /// sees it and answers 431.
    fn check_limit(&mut self) {
        if self.hold.len() > self.limit {
            self.scanner.state = State::Aside;
            self.out.append(&mut self.hold);
        }
    }
}

/// The access-log event for a refused head: hyper answers it, so the
/// handler never logs it.
fn log_refusal(head: &[u8], why: Ambiguity, peer: SocketAddr, start: Instant) {
    if !tracing::enabled!(target: super::handler::ACCESS, tracing::Level::INFO) {
        return;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let _ = req.parse(head);
    let host = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map_or(String::new(), |h| {
            String::from_utf8_lossy(h.value).into_owned()
        });
    let path = req.path.unwrap_or_default();
    tracing::info!(
        target: super::handler::ACCESS,
        client = %peer.ip(),
        method = req.method.unwrap_or_default(),
        host = %host,
        path = path.split('?').next().unwrap_or_default(),
        status = 400u16,
        upstream = "-",
        ingress = "",
        duration_us = start.elapsed().as_micros() as u64,
        refused = why.reason(),
    );
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.deliver(buf) {
                return Poll::Ready(Ok(()));
            }
            match this.scanner.state {
                // Nothing more after a refused head: end of stream.
                State::Refused => return Poll::Ready(Ok(())),
                State::Aside if this.hold.is_empty() => {
                    this.deadline = None;
                    return Pin::new(&mut this.inner).poll_read(cx, buf);
                }
                _ => {}
            }
            if this.hold.is_empty() {
                // The usual case: read straight into hyper's buffer and
                // follow the new bytes there.
                let f0 = buf.filled().len();
                ready!(this.poll_inner(cx, buf))?;
                let new = &buf.filled()[f0..];
                if new.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                match this.scanner.scan(new) {
                    Scan::All => {
                        this.deadline = None;
                        return Poll::Ready(Ok(()));
                    }
                    Scan::Partial(p) => {
                        this.hold.extend_from_slice(&new[p..]);
                        buf.set_filled(f0 + p);
                        this.check_limit();
                        this.time_heads();
                        if p > 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                    Scan::Refuse(p, why) => {
                        let head = new[p..].to_vec();
                        buf.set_filled(f0 + p);
                        this.refuse(&head, why);
                        if p > 0 {
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
            } else {
                // The rest of a head that came in pieces.
                let mut tmp = [0u8; 4096];
                let mut rb = ReadBuf::new(&mut tmp);
                ready!(this.poll_inner(cx, &mut rb))?;
                if rb.filled().is_empty() {
                    // The client stopped mid-head: let hyper see that.
                    this.scanner.state = State::Aside;
                    this.out.append(&mut this.hold);
                    this.deliver(buf);
                    return Poll::Ready(Ok(()));
                }
                this.hold.extend_from_slice(rb.filled());
                let held = std::mem::take(&mut this.hold);
                match this.scanner.scan(&held) {
                    Scan::All => this.out.extend_from_slice(&held),
                    Scan::Partial(p) => {
                        this.out.extend_from_slice(&held[..p]);
                        this.hold.extend_from_slice(&held[p..]);
                        this.check_limit();
                    }
                    Scan::Refuse(p, why) => {
                        this.out.extend_from_slice(&held[..p]);
                        this.refuse(&held[p..], why);
                    }
                }
                this.time_heads();
            }
        }
    }
}

/// Writes go straight to the client stream. Shutting down is a lingering
/// close (see [`Linger`]) when the client is still sending: always in the
/// middle of a request body (hyper answered without reading it all) or
/// after a refused head; otherwise only if its bytes are already waiting.
/// Never once the guard has stepped aside (an upgraded connection's
/// tunnel half-closes through here and keeps reading).
impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
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
        let this = &mut *self;
        if this.scanner.state == State::Aside && this.linger.is_none() {
            // Not following the bytes (an upgraded tunnel, or a head hyper
            // refuses itself): a shutdown here is a tunnel's half-close,
            // and the client's bytes must keep flowing to the backend.
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        }
        let mid_body = matches!(
            this.scanner.state,
            State::Length(_) | State::Chunked(_) | State::Refused
        );
        let l = this.linger.get_or_insert_with(|| Linger::new(mid_body));
        ready!(l.poll(&mut this.inner, cx));
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::{Ambiguity, Scan, Scanner, State};

    fn scan_all(parts: &[&[u8]]) -> (Vec<Scan>, State) {
        let mut s = Scanner::new();
        let mut held = Vec::new();
        let mut out = Vec::new();
        for p in parts {
            held.extend_from_slice(p);
            let r = s.scan(&held);
            match r {
                Scan::Partial(n) => {
                    held.drain(..n);
                }
                _ => held.clear(),
            }
            out.push(r);
        }
        (out, s.state)
    }

    #[test]
    fn pipelined_requests_with_bodies_are_followed_to_the_refused_one() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
            POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nT: 1\r\n\r\n\
            GET /c HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n";
        let at = stream.windows(7).position(|w| w == b"POST /d").unwrap();
        let mut s = Scanner::new();
        assert_eq!(
            s.scan(stream),
            Scan::Refuse(at, Ambiguity::LengthAndEncoding)
        );
        // The same stream one byte at a time: the same place.
        let mut s = Scanner::new();
        let mut held: Vec<u8> = Vec::new();
        let mut released = 0;
        for b in stream {
            held.push(*b);
            match s.scan(&held) {
                Scan::All => {
                    released += held.len();
                    held.clear();
                }
                Scan::Partial(n) => {
                    released += n;
                    held.drain(..n);
                }
                Scan::Refuse(n, why) => {
                    assert_eq!((released + n, why), (at, Ambiguity::LengthAndEncoding));
                    return;
                }
            }
        }
        panic!("the last request was not refused");
    }

    #[test]
    fn body_bytes_that_look_like_a_bad_head_are_not_read_as_one() {
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream = format!(
            "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut s = Scanner::new();
        assert_eq!(s.scan(&stream), Scan::All);
        assert_eq!(s.state, State::Head);
    }

    #[test]
    fn conflicting_lengths_are_refused_and_equal_ones_are_not() {
        let (r, _) =
            scan_all(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n"]);
        assert_eq!(r, [Scan::Refuse(0, Ambiguity::ConflictingLengths)]);
        let (r, st) =
            scan_all(&[b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"]);
        assert_eq!((r, st), (vec![Scan::All], State::Head));
    }

    #[test]
    fn split_heads_are_held_until_complete() {
        let (r, st) = scan_all(&[b"GET / HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"]);
        assert_eq!(r, [Scan::Partial(0), Scan::Partial(0), Scan::All]);
        assert_eq!(st, State::Head);
    }

    #[test]
    fn what_hyper_refuses_or_tunnels_is_left_to_hyper() {
        for head in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        ] {
            let (r, st) = scan_all(&[head]);
            assert_eq!(
                (r, st),
                (vec![Scan::All], State::Aside),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        // A chunk line hyper's decoder rejects.
        let (_, st) = scan_all(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]);
        assert_eq!(st, State::Aside);
    }
}
