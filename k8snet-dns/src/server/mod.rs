//! The DNS server on real sockets (feature `linux`).
//!
//! - **UDP**: per listen address, one socket per worker thread bound with
//!   SO_REUSEPORT (the kernel spreads clients over them); each worker
//!   receives and sends in batches (`recvmmsg`/`sendmmsg`) and answers from
//!   its [`ZoneReader`](crate::ZoneReader), so a zone swap never stops it.
//! - **TCP**: one acceptor per address, a thread per connection, at most
//!   `tcp_max_connections` at once (more are closed at once), idle
//!   connections closed after `tcp_idle_timeout`; pipelined queries are
//!   answered in order.
//! - **Forwarding**: names outside the zone go to the
//!   [`Forwarder`]: cache hits are answered by the
//!   worker, misses by a small pool of forwarding threads (a full queue
//!   drops the query; the client retries).
//! - **ExternalName**: the CNAME answered for another type is followed
//!   (CoreDNS does): a target in the zone always, from the zone's own
//!   records, with or without forwarder; a target outside it only with a
//!   forwarder. Without one, such a CNAME (the usual ExternalName) is
//!   sent as the zone stored it, without allocating: the zone marks at
//!   build time which targets are its own
//!   ([`Reply::alias_in_zone`](crate::Reply::alias_in_zone)). RA is set
//!   only when there is a forwarder.
//! - **Shutdown**: [`Server::shutdown`] stops accepting and receiving,
//!   lets open TCP exchanges finish, and joins every thread. [`Signals`]
//!   waits for SIGTERM/SIGINT (and SIGHUP, for reloads).
//!
//! Everything here is safe Rust: the batched socket calls go through
//! `nix`'s safe wrappers.

mod signals;
mod sockets;
mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use signals::{SignalKind, Signals};

use crate::forward::Forwarder;
use crate::{AnswerOutcome, Error, LiveZone, Transport, Zone};

/// How the server listens and works.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Addresses to serve on, UDP and TCP (port 0: one ephemeral port,
    /// the same for both).
    pub listen: Vec<SocketAddr>,
    /// UDP worker threads (sockets) per address.
    pub udp_workers: usize,
    /// Datagrams received or sent per system call, at most 64.
    pub batch: usize,
    /// Open TCP connections at most; more are closed at once.
    pub tcp_max_connections: usize,
    /// A TCP connection with no query for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Threads that wait for upstream servers.
    pub forward_threads: usize,
}

impl ServerConfig {
    /// Defaults: one UDP worker per CPU, batches of 32, 256 TCP
    /// connections idle for at most 10 s, 4 forwarding threads.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        Self {
            listen,
            udp_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch: 32,
            tcp_max_connections: 256,
            tcp_idle_timeout: Duration::from_secs(10),
            forward_threads: 4,
        }
    }
}

/// How long blocking calls wait before checking for shutdown.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// What to do with one query.
pub(crate) enum Handled {
    /// `out` holds a reply of this length.
    Reply(usize),
    /// `out` holds an ExternalName's CNAME of this length: follow it
    /// ([`chase`]), which may ask upstream.
    Chase(usize),
    /// Send it upstream.
    Forward,
    /// No reply.
    Drop,
}

/// Answers from the zone, or from the forwarder's cache; says when the
/// query must go upstream. Without a forwarder, an ExternalName's CNAME
/// to a name of the zone is followed here (RA stays clear: we do not
/// recurse), and one to a name outside the zone is the reply as is
/// (nothing can be chased; no allocation); with a forwarder, the caller
/// follows it ([`Handled::Chase`]).
pub(crate) fn handle(
    zone: &Zone,
    forwarder: Option<&Forwarder>,
    query: &[u8],
    transport: Transport,
    out: &mut [u8],
) -> Handled {
    match zone.answer_with(query, transport, out) {
        AnswerOutcome::Answered(r) => {
            if forwarder.is_some() && r.len >= 4 {
                out[3] |= 0x80; // RA: we recurse for names outside the zone
            }
            match (r.alias, forwarder) {
                (false, _) => Handled::Reply(r.len),
                (true, Some(_)) => Handled::Chase(r.len),
                (true, None) if !r.alias_in_zone => Handled::Reply(r.len),
                (true, None) => {
                    // Rare: the CNAME is copied out of the buffer it is
                    // rewritten into.
                    let reply = out[..r.len].to_vec();
                    Handled::Reply(chase(zone, None, query, &reply, transport, out))
                }
            }
        }
        AnswerOutcome::NotAuthoritative(r) => match forwarder {
            None => Handled::Reply(r.len),
            Some(f) => match f.cached(query, transport, out) {
                Some(len) => Handled::Reply(len),
                None => Handled::Forward,
            },
        },
        _ => Handled::Drop,
    }
}

/// The size limit of a reply to `query` over `transport` from a server
/// without forwarder: as [`Zone::answer_with`] computes it.
fn zone_limit(zone: &Zone, query: &[u8], transport: Transport, out: usize) -> usize {
    let limit = match transport {
        Transport::Tcp => 65_535,
        _ => match crate::answer::parse(query).ok().and_then(|q| q.edns) {
            Some(e) => e.payload.clamp(512, zone.config().udp_payload()),
            None => 512,
        },
    };
    usize::from(limit).min(out)
}

/// Follows the CNAME chain in `zone_reply` (the zone's answer to `query`):
/// each target's records come from the zone when it is a cluster name,
/// else from upstream (with a forwarder; without one the chain ends
/// there); writes the merged reply into `out`. A target without records
/// leaves the CNAME and the target's SOA (NODATA or NXDOMAIN).
pub(crate) fn chase(
    zone: &Zone,
    forwarder: Option<&Forwarder>,
    query: &[u8],
    zone_reply: &[u8],
    transport: Transport,
    out: &mut [u8],
) -> usize {
    let limit = match forwarder {
        Some(f) => f.limit(query, transport, out.len()),
        None => zone_limit(zone, query, transport, out.len()),
    };
    TARGET_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => chase_with(&mut buf, zone, forwarder, zone_reply, limit, out),
        // Not reachable (nothing here calls `chase` again), but a fresh
        // buffer is a safe answer if it ever were.
        Err(_) => chase_with(&mut Vec::new(), zone, forwarder, zone_reply, limit, out),
    })
}

/// Largest message (TCP): what a target's answer may fill.
const MAX_MESSAGE: usize = 65_535;

thread_local! {
    /// The buffer [`chase`] writes each target's answer into: one per
    /// thread, made on its first chase and reused, rather than 64 KiB
    /// allocated per query.
    static TARGET_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn chase_with(
    buf: &mut Vec<u8>,
    zone: &Zone,
    forwarder: Option<&Forwarder>,
    zone_reply: &[u8],
    limit: usize,
    out: &mut [u8],
) -> usize {
    if buf.len() < MAX_MESSAGE {
        buf.resize(MAX_MESSAGE, 0);
    }
    let resolve = |target: &[u8]| {
        let len = match zone.answer_with(target, Transport::Tcp, buf) {
            AnswerOutcome::Answered(r) => r.len,
            AnswerOutcome::NotAuthoritative(_) => forwarder?.resolve(target, Transport::Tcp, buf),
            AnswerOutcome::Dropped => return None,
        };
        Some(buf[..len].to_vec())
    };
    crate::forward::follow(zone_reply, resolve, limit, out)
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    local: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    zone: LiveZone,
    connections: Arc<AtomicUsize>,
}

impl Server {
    /// Binds every address and starts the threads.
    ///
    /// # Errors
    /// [`Error::Io`] when a socket cannot be created or bound.
    pub fn start(
        config: &ServerConfig,
        zone: LiveZone,
        forwarder: Option<Forwarder>,
    ) -> Result<Self, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let forwarder = forwarder.map(Arc::new);
        let connections = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        let mut local = Vec::new();
        let pool = forwarder.as_ref().map(|f| {
            udp::ForwardPool::start(
                f.clone(),
                &zone,
                config.forward_threads.max(1),
                &stop,
                &mut threads,
            )
        });
        for &addr in &config.listen {
            // TCP first: with port 0 it picks the port UDP then shares.
            let listener = sockets::tcp(addr)?;
            let bound = listener
                .local_addr()
                .map_err(|e| Error::io(format!("local address of {addr}"), e))?;
            local.push(bound);
            for i in 0..config.udp_workers.max(1) {
                let sock = sockets::udp(bound)?;
                let w = udp::Worker {
                    sock: Arc::new(sock),
                    reader: zone.reader(),
                    forwarder: forwarder.clone(),
                    pool: pool.clone(),
                    stop: stop.clone(),
                    batch: config.batch.clamp(1, udp::MAX_BATCH),
                    max_payload: usize::from(zone.snapshot().config().udp_payload()),
                };
                threads.push(spawn(format!("dns-udp-{i}"), move || w.run())?);
            }
            let t = tcp::Acceptor {
                listener,
                zone: zone.clone(),
                forwarder: forwarder.clone(),
                stop: stop.clone(),
                max_connections: config.tcp_max_connections,
                idle: config.tcp_idle_timeout,
                connections: connections.clone(),
            };
            threads.push(spawn(format!("dns-tcp-{bound}"), move || t.run())?);
            tracing::info!(%bound, udp_workers = config.udp_workers, "serving DNS");
        }
        Ok(Self {
            local,
            stop,
            threads,
            zone,
            connections,
        })
    }

    /// The bound addresses (ephemeral ports resolved), in `listen` order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// The zone being served: store or update it to swap in a new one.
    pub fn zone(&self) -> &LiveZone {
        &self.zone
    }

    /// Open TCP connections.
    pub fn tcp_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Stops receiving and accepting, lets TCP exchanges in progress
    /// finish, and waits for every thread (each notices within 200 ms).
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        tracing::info!("DNS server stopped");
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(|e| Error::io("spawn a server thread", e))
}
