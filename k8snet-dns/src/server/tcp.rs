//! TCP: an acceptor per address and a thread per connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Handled, TICK, handle};
use crate::forward::Forwarder;
use crate::{LiveZone, Transport};

pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    pub(crate) zone: LiveZone,
    pub(crate) forwarder: Option<Arc<Forwarder>>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) max_connections: usize,
    pub(crate) idle: Duration,
    pub(crate) connections: Arc<AtomicUsize>,
}

/// Counts a connection while it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Acceptor {
    pub(crate) fn run(self) {
        let mut conns: Vec<JoinHandle<()>> = Vec::new();
        let tick = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::NONE);
        while !self.stop.load(Ordering::Relaxed) {
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, tick) {
                Ok(0) | Err(_) => continue,
                Ok(_) => {}
            }
            let Ok((stream, peer)) = self.listener.accept() else {
                continue;
            };
            conns.retain(|h| !h.is_finished());
            if self.connections.fetch_add(1, Ordering::Relaxed) >= self.max_connections {
                self.connections.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(%peer, "TCP connection limit reached; closed");
                continue;
            }
            let slot = Slot(self.connections.clone());
            let conn = Connection {
                stream,
                zone: self.zone.clone(),
                forwarder: self.forwarder.clone(),
                stop: self.stop.clone(),
                idle: self.idle,
            };
            match super::spawn("dns-tcp-conn".into(), move || {
                conn.serve();
                drop(slot);
            }) {
                Ok(h) => conns.push(h),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        for h in conns {
            let _ = h.join();
        }
    }
}

struct Connection {
    stream: TcpStream,
    zone: LiveZone,
    forwarder: Option<Arc<Forwarder>>,
    stop: Arc<AtomicBool>,
    idle: Duration,
}

impl Connection {
    fn serve(mut self) {
        if self.stream.set_read_timeout(Some(TICK)).is_err()
            || self.stream.set_write_timeout(Some(self.idle)).is_err()
        {
            return;
        }
        let _ = self.stream.set_nodelay(true);
        let mut reader = self.zone.reader();
        let mut query = vec![0u8; 65_535];
        let mut out = vec![0u8; 65_537];
        while let Some(len) = self.read_frame(&mut query) {
            let zone = reader.current();
            let q = &query[..len];
            let reply = match handle(
                zone,
                self.forwarder.as_deref(),
                q,
                Transport::Tcp,
                &mut out[2..],
            ) {
                Handled::Reply(l) => l,
                Handled::Chase(l) => {
                    let reply = out[2..2 + l].to_vec();
                    let f = self.forwarder.as_deref();
                    super::chase(zone, f, q, &reply, Transport::Tcp, &mut out[2..])
                }
                Handled::Forward => match &self.forwarder {
                    Some(f) => f.resolve(q, Transport::Tcp, &mut out[2..]),
                    None => 0,
                },
                Handled::Drop => 0,
            };
            if reply == 0 {
                return; // nothing sensible to say: close, as servers do
            }
            out[..2].copy_from_slice(&(reply as u16).to_be_bytes());
            if self.stream.write_all(&out[..2 + reply]).is_err() {
                return;
            }
        }
    }

    /// Reads one length-prefixed message; `None` at EOF, on error, when
    /// idle too long, or at shutdown between messages.
    fn read_frame(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut len = [0u8; 2];
        if !self.fill(&mut len, true) {
            return None;
        }
        let n = usize::from(u16::from_be_bytes(len));
        if n < 12 || !self.fill(&mut buf[..n], false) {
            return None;
        }
        Some(n)
    }

    /// Fills `buf`; between messages (`first`) it gives up at shutdown.
    fn fill(&mut self, buf: &mut [u8], first: bool) -> bool {
        let start = Instant::now();
        let mut got = 0;
        while got < buf.len() {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => return false,
                Ok(k) => got += k,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if start.elapsed() >= self.idle
                        || (first && got == 0 && self.stop.load(Ordering::Relaxed))
                    {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        true
    }
}
