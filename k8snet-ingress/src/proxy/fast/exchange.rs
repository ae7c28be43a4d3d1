//! One request's exchange with a backend: endpoints picked and retried as
//! the hyper path does, the response relayed, failures answered.
//!
//! **Kept-alive connections the backend closed.** A request is sent again,
//! on another connection, only while everything sent so far is still in
//! hand, that is, before any body byte beyond those read with the head
//! has been read from the client (a body is never replayed from memory it
//! no longer has):
//!
//! - a pooled connection is checked before use; for a request whose body
//!   is still to come, the kernel itself is asked (a peek), since the
//!   reactor may not have seen the backend's close yet;
//! - writing the head (and the buffered body) to a pooled connection
//!   fails: sent again, on the next pooled or a new connection;
//! - while the rest of the body is awaited, the backend closes or resets
//!   the pooled connection without a byte of answer: sent again once, on
//!   a new connection to the same endpoint, if the method is idempotent
//!   (PUT, DELETE and the safe ones; a POST or PATCH gets 502, as from
//!   nginx: a streaming backend may have acted on its head);
//! - the backend closes a pooled connection without answering after the
//!   whole request was sent: sent again once, on a new connection, if the
//!   body was all buffered and the method is idempotent (GET, HEAD,
//!   OPTIONS); otherwise 502.
//!
//! Failures after that (the body partly streamed, or a response begun)
//! end in 502 or a closed client connection, as on the hyper path.

use super::*;

/// `fut`'s output, or `None` once the timer's deadline has passed.
pub(super) async fn within<F: Future>(timer: &mut LazyDeadline, fut: F) -> Option<F::Output> {
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
pub(super) enum Failure {
    /// Before the response head: answer with this status and reason.
    Answer(u16, String),
    /// The client went away or broke its body: close.
    Close,
}

/// What becomes of the client connection after a request.
pub(super) enum Next {
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
pub(super) async fn exchange(
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
    // The endpoint to try once more on a fresh connection: a kept-alive
    // one closed before the request's body was streamed (see below).
    let mut fresh: Option<usize> = None;
    let mut stale_retried = false;
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
        let forced = fresh.take();
        let idx = forced.unwrap_or_else(|| pick(ctx, upstream, &s.path, attempt, &tried));
        let addr = endpoints[idx];
        let pooled = if forced.is_some() {
            None
        } else {
            idle(ctx, addr, resend)
        };
        let (mut conn, reused) = match pooled {
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
            if reused {
                // A kept-alive connection the backend had closed. Nothing
                // beyond the buffered bytes (all still in `s.out`) has
                // been read from the client: send them again.
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
                reused,
            )
            .await
            {
                Ok(()) => body_done = true,
                Err(BodyError::Stale) if !stale_retried && plan.resend_unfinished => {
                    // The backend closed the kept-alive connection before
                    // answering and before more of the body was read from
                    // the client: `s.out` still holds everything sent, so
                    // it goes again, once, on a fresh connection.
                    stale_retried = true;
                    fresh = Some(idx);
                    continue;
                }
                Err(BodyError::Stale) => {
                    break Err(failed(
                        upstream,
                        addr,
                        &"connection closed before message completed",
                    ));
                }
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

/// A kept-alive connection to `addr` from the pool, or `None`. When the
/// request's body is not all buffered (`resend` false), a connection the
/// backend already closed could not be replaced once the body streams,
/// so each candidate is asked of the kernel (a non-blocking peek), not
/// only of the reactor, which may not have seen the close yet.
pub(super) fn idle(ctx: &ConnCtx, addr: SocketAddr, resend: bool) -> Option<TcpStream> {
    loop {
        let c = ctx.pool.raw_idle(addr)?;
        if resend || !peer_closed(&c) {
            return Some(c);
        }
    }
}

/// Whether the kernel has anything to read on an idle connection (the
/// end of the stream, a reset or stray bytes): then it is not reused.
/// The socket is asked directly (a non-blocking `MSG_PEEK`; tokio's
/// sockets are non-blocking), as tokio's own reads consult the reactor's
/// readiness first.
pub(super) fn peer_closed(c: &TcpStream) -> bool {
    let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    !matches!(socket2::SockRef::from(c).peek(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

pub(super) async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
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

pub(super) fn timed_out(upstream: &Upstream, addr: SocketAddr, limit: Duration) -> Failure {
    Failure::Answer(
        504,
        format!(
            "{} endpoint {addr} sent no response within {limit:?} (proxy-read-timeout)",
            upstream.name()
        ),
    )
}

pub(super) fn failed(upstream: &Upstream, addr: SocketAddr, e: &dyn std::fmt::Display) -> Failure {
    Failure::Answer(
        502,
        format!("{} endpoint {addr} failed: {e}", upstream.name()),
    )
}
