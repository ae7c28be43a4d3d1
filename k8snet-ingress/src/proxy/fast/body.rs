//! Bodies: request bodies sent upstream, response bodies forwarded to the
//! client (`Content-Length` as read, chunked or until close re-chunked).

use super::*;

/// Re-chunks a chunked body as it is read, by the guard's (hyper's) rules.
/// Chunk extensions and trailers are dropped, as hyper drops them.
#[derive(Debug)]
pub(super) struct Dechunker {
    pub(super) state: Chunk,
    /// Data bytes so far.
    pub(super) total: u64,
}

impl Dechunker {
    pub(super) fn new() -> Self {
        Self {
            state: Chunk::Start,
            total: 0,
        }
    }

    /// Follows `data`, appending what it carries to `out` as chunks (and
    /// the last chunk at the end). Returns the bytes used and whether the
    /// body ended; `None` when the framing is invalid.
    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Option<(usize, bool)> {
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
pub(super) struct HexWriter<'a>(pub(super) &'a mut Vec<u8>);

impl std::fmt::Write for HexWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

pub(super) enum BodyError {
    /// The client's body broke (timeout, invalid framing): say why.
    Client(String),
    ClientGone,
    /// Past `proxy-body-size`.
    TooLarge,
    Backend(io::Error),
    TimedOut,
    /// The backend closed the connection (end of stream or reset, no
    /// response byte) before any body byte beyond those already sent was
    /// read from the client: the request can be sent again as it was.
    Stale,
}

/// Streams the rest of a request body from the client to the backend.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_body(
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
    reused: bool,
) -> Result<(), BodyError> {
    // The buffered body went out with the head: nothing is buffered now,
    // and `out` keeps what was sent until the client's next bytes are read.
    debug_assert!(inb.is_empty());
    // Until then, a kept-alive connection the backend closes is reported
    // (`Stale`), so that the caller can send `out` again elsewhere.
    let mut watch = reused;
    loop {
        if inb.capacity() - inb.len() < 4096 {
            inb.reserve(16 * 1024);
        }
        let read = within(
            timer,
            tokio::time::timeout(idle, async {
                loop {
                    // The backend's end first: when both are ready (this
                    // task ran late), the body can still go again on a
                    // fresh connection only if the client's next bytes
                    // were not read yet.
                    tokio::select! {
                        biased;
                        gone = backend_gone(conn), if watch => {
                            if gone {
                                return None;
                            }
                            // An early answer: read_head takes it.
                            watch = false;
                        }
                        r = client.read_buf(inb) => return Some(r),
                    }
                }
            }),
        )
        .await;
        match read {
            None => return Err(BodyError::TimedOut),
            Some(Err(_)) => {
                return Err(BodyError::Client(format!(
                    "the client sent nothing for {idle:?}"
                )));
            }
            Some(Ok(None)) => return Err(BodyError::Stale),
            Some(Ok(Some(Ok(0) | Err(_)))) => return Err(BodyError::ClientGone),
            Some(Ok(Some(Ok(_)))) => {}
        }
        watch = false;
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
    }
}

/// Waits for the backend's side of an exchange to become readable: true
/// when it ended or was reset with nothing to read, false when response
/// bytes came (left in place).
async fn backend_gone(conn: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    !matches!(conn.peek(&mut b).await, Ok(n) if n > 0)
}

/// Forwards the response body (what is in `s.resp` first, then reads),
/// writing `s.down` (the head) with its first bytes. `Ok(true)` when the
/// backend connection ended cleanly at the body's end; `Err` when the
/// client connection must be closed.
pub(super) async fn forward_body(
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
pub(super) async fn write_two(w: &mut TcpStream, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
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
