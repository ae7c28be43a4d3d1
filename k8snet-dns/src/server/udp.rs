//! UDP workers (batched receive and send) and the forwarding pool.

use std::io::{IoSlice, IoSliceMut};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, sendto,
};

use super::{Handled, TICK, handle};
use crate::forward::Forwarder;
use crate::{LiveZone, Transport, ZoneReader};

/// Largest query we accept over UDP.
const MAX_QUERY: usize = 4096;

/// One UDP socket and the thread that serves it.
pub(crate) struct Worker {
    pub(crate) sock: Arc<UdpSocket>,
    pub(crate) reader: ZoneReader,
    pub(crate) forwarder: Option<Arc<Forwarder>>,
    pub(crate) pool: Option<ForwardPool>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) batch: usize,
    pub(crate) max_payload: usize,
}

/// The most datagrams one system call handles (`ServerConfig::batch` is
/// capped to it): the I/O vectors of a batch live on the stack.
pub(crate) const MAX_BATCH: usize = 64;

/// The fewest receive slots offered to `recvmmsg`.
const MIN_WINDOW: usize = 4;

impl Worker {
    pub(crate) fn run(mut self) {
        if let Err(e) = self.sock.set_read_timeout(Some(TICK)) {
            tracing::error!("UDP worker: {e}");
            return;
        }
        let fd = self.sock.as_raw_fd();
        let n = self.batch.clamp(1, MAX_BATCH);
        let mut rx = vec![vec![0u8; MAX_QUERY]; n];
        let mut tx = vec![vec![0u8; self.max_payload.max(512)]; n];
        let mut rx_headers = MultiHeaders::<SockaddrStorage>::preallocate(n, None);
        let mut tx_headers = MultiHeaders::<SockaddrStorage>::preallocate(n, None);
        let mut received: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(n);
        let mut lens: Vec<usize> = Vec::with_capacity(n);
        let mut addrs: Vec<Option<SockaddrStorage>> = Vec::with_capacity(n);
        // How many slots the next receive offers: the kernel and nix
        // prepare every offered slot, so under light load (one datagram
        // per call) a full batch would cost more than the datagram. It
        // doubles while calls come back full and falls back with the load.
        let mut window = MIN_WINDOW.min(n);
        while !self.stop.load(Ordering::Relaxed) {
            received.clear();
            let outcome = {
                // The I/O vectors borrow the buffers for one call, so they
                // are rebuilt per call, on the stack (no allocation).
                let mut slots: [Option<[IoSliceMut<'_>; 1]>; MAX_BATCH] =
                    [const { None }; MAX_BATCH];
                for (slot, buf) in slots.iter_mut().zip(rx.iter_mut()).take(window) {
                    *slot = Some([IoSliceMut::new(buf)]);
                }
                match recvmmsg(
                    fd,
                    &mut rx_headers,
                    slots.iter_mut().take(window).flatten(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) {
                    Ok(msgs) => {
                        received.extend(msgs.map(|m| (m.bytes, m.address)));
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            };
            match outcome {
                Ok(()) => {}
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("recvmmsg: {e}");
                    std::thread::sleep(TICK / 10);
                    continue;
                }
            }
            window = if received.len() >= window {
                (window * 2).min(n)
            } else {
                (received.len() * 2).clamp(MIN_WINDOW.min(n), n)
            };
            lens.clear();
            addrs.clear();
            let zone = self.reader.current();
            for (i, &(len, addr)) in received.iter().enumerate() {
                let Some(addr) = addr else { continue };
                let query = &rx[i][..len.min(MAX_QUERY)];
                let slot = lens.len();
                match handle(
                    zone,
                    self.forwarder.as_deref(),
                    query,
                    Transport::Udp,
                    &mut tx[slot],
                ) {
                    Handled::Reply(l) => {
                        lens.push(l);
                        addrs.push(Some(addr));
                    }
                    Handled::Forward => {
                        if let Some(pool) = &self.pool {
                            pool.submit(query, None, self.sock.clone(), addr);
                        }
                    }
                    Handled::Chase(l) => {
                        if let Some(pool) = &self.pool {
                            let reply = &tx[slot][..l];
                            pool.submit(query, Some(reply), self.sock.clone(), addr);
                        }
                    }
                    Handled::Drop => {}
                }
            }
            if lens.is_empty() {
                continue;
            }
            let mut slots: [Option<[IoSlice<'_>; 1]>; MAX_BATCH] = [const { None }; MAX_BATCH];
            for (slot, (b, &l)) in slots.iter_mut().zip(tx.iter().zip(&lens)) {
                *slot = Some([IoSlice::new(b.get(..l).unwrap_or_default())]);
            }
            let none: [ControlMessage<'_>; 0] = [];
            let sent = match sendmmsg(
                fd,
                &mut tx_headers,
                slots.iter().take(lens.len()).flatten(),
                &addrs,
                none,
                MsgFlags::empty(),
            ) {
                Ok(results) => results.count(),
                Err(e) => {
                    tracing::debug!("sendmmsg: {e}");
                    0
                }
            };
            // Whatever the batch call did not send goes one by one.
            for (iov, addr) in slots
                .iter()
                .take(lens.len())
                .flatten()
                .zip(&addrs)
                .skip(sent)
            {
                if let Some(a) = addr {
                    let _ = sendto(fd, &iov[0], a, MsgFlags::empty());
                }
            }
        }
    }
}

/// A query waiting for an upstream.
struct Job {
    query: Vec<u8>,
    /// The zone's CNAME to follow, or `None` to forward the query.
    alias: Option<Vec<u8>>,
    sock: Arc<UdpSocket>,
    addr: SockaddrStorage,
}

/// Threads that forward queries the UDP workers could not answer.
#[derive(Clone)]
pub(crate) struct ForwardPool {
    tx: SyncSender<Job>,
}

impl ForwardPool {
    pub(crate) fn start(
        forwarder: Arc<Forwarder>,
        zone: &LiveZone,
        threads: usize,
        stop: &Arc<AtomicBool>,
        handles: &mut Vec<JoinHandle<()>>,
    ) -> Self {
        let (tx, rx) = sync_channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let (f, rx, stop) = (forwarder.clone(), rx.clone(), stop.clone());
            let zone = zone.reader();
            match super::spawn(format!("dns-forward-{i}"), move || {
                forward_loop(&f, zone, &rx, &stop)
            }) {
                Ok(h) => handles.push(h),
                Err(e) => tracing::error!("{e}"),
            }
        }
        Self { tx }
    }

    fn submit(
        &self,
        query: &[u8],
        alias: Option<&[u8]>,
        sock: Arc<UdpSocket>,
        addr: SockaddrStorage,
    ) {
        let job = Job {
            query: query.to_vec(),
            alias: alias.map(<[u8]>::to_vec),
            sock,
            addr,
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(job) {
            tracing::debug!("forwarding queue full; query dropped");
        }
    }
}

fn forward_loop(f: &Forwarder, mut zone: ZoneReader, rx: &Mutex<Receiver<Job>>, stop: &AtomicBool) {
    let mut out = vec![0u8; 65_535];
    while !stop.load(Ordering::Relaxed) {
        let job = rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(TICK);
        let job = match job {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let len = match &job.alias {
            Some(reply) => {
                let z = zone.current();
                super::chase(z, Some(f), &job.query, reply, Transport::Udp, &mut out)
            }
            None => f.resolve(&job.query, Transport::Udp, &mut out),
        };
        if len > 0 {
            let _ = sendto(
                job.sock.as_raw_fd(),
                &out[..len],
                &job.addr,
                MsgFlags::empty(),
            );
        }
    }
}
