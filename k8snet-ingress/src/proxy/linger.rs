//! Lingering close, as nginx's `lingering_close`: after an answer is sent
//! while the client may still be sending (an error before its body was
//! read), the proxy closes its sending side and reads and discards what
//! the client still sends, for a bounded time, before closing. Closing at
//! once with unread bytes makes the kernel send a reset, on which the
//! client's sends fail and many clients (curl among them) give up without
//! reading the answer; a reset can also drop an answer not yet sent.
//!
//! Bounds (nginx's defaults): [`LINGER_TIME`] in all, and
//! [`LINGER_TIMEOUT`] without a byte from the client; the end of the
//! client's stream or an error ends it at once.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The longest a lingering close lasts (nginx's `lingering_time`).
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(30);

/// The longest a lingering close waits for the client's next bytes
/// (nginx's `lingering_timeout`).
pub(crate) const LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// The discard buffer, on the stack: most closes read nothing, and
/// those that linger read little, so nothing is allocated for it.
const DRAIN_BUFFER: usize = 4 * 1024;

/// A lingering close in progress: `poll` drives it on the stream it was
/// started for.
pub(crate) struct Linger {
    shut: bool,
    /// Whether to wait for the client's bytes (asked for, or some came).
    waiting: bool,
    until: Instant,
    /// The wait for the client's next bytes, made once there is one.
    idle: Option<Pin<Box<Sleep>>>,
}

impl Linger {
    /// `always`: linger in any case (the request body was left unread);
    /// otherwise only if the client's bytes are already waiting when the
    /// sending side has been shut down.
    pub(crate) fn new(always: bool) -> Self {
        Self {
            shut: false,
            waiting: always,
            until: Instant::now() + LINGER_TIME,
            idle: None,
        }
    }

    /// Shuts down `io`'s sending side, then reads and discards until the
    /// client's end, an error, or the bounds. Errors end it: the
    /// connection is closed either way.
    pub(crate) fn poll<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if !self.shut {
            // The answer is out: say so (FIN) before discarding.
            if ready!(Pin::new(&mut *io).poll_shutdown(cx)).is_err() {
                return Poll::Ready(());
            }
            self.shut = true;
        }
        let mut buf = [0u8; DRAIN_BUFFER];
        loop {
            let mut rb = ReadBuf::new(&mut buf);
            match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if !rb.filled().is_empty() => {
                    // Checked here too: a client that keeps the socket
                    // readable would otherwise never let the timer run.
                    if Instant::now() >= self.until {
                        return Poll::Ready(());
                    }
                    self.waiting = true;
                    let next = (Instant::now() + LINGER_TIMEOUT).min(self.until);
                    match &mut self.idle {
                        Some(idle) => idle.as_mut().reset(next),
                        None => self.idle = Some(Box::pin(tokio::time::sleep_until(next))),
                    }
                }
                // The client's end, or an error: nothing more to wait for.
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending if !self.waiting => return Poll::Ready(()),
                Poll::Pending => {
                    let until = self.until.min(Instant::now() + LINGER_TIMEOUT);
                    let idle = self
                        .idle
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                    return idle.as_mut().poll(cx);
                }
            }
        }
    }
}

/// A lingering close of `io` (see [`Linger`], `always` set).
pub(crate) async fn linger<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
    let mut l = Linger::new(true);
    std::future::poll_fn(|cx| l.poll(io, cx)).await;
}
