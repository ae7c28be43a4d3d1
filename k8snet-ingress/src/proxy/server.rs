//! Accepting connections and serving HTTP on them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::fast::{self, Prefixed};
use super::guard::Guarded;
use super::handler::{ConnCtx, Slots, handle};
use super::pool::Pool;
use super::{ProxyConfig, Shared};
use crate::error::Error;

/// The longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest the workers wait for requests in flight when stopping.
const DRAIN: Duration = Duration::from_secs(5);

/// The addresses a worker bound: plain, then TLS.
pub(crate) type Bound = (Vec<SocketAddr>, Vec<SocketAddr>);

/// What a worker thread needs.
pub(crate) struct WorkerSpec {
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: ProxyConfig,
    pub(crate) tls: Option<Arc<ServerConfig>>,
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) tls_listen: Vec<SocketAddr>,
    pub(crate) stopped: watch::Receiver<bool>,
    /// Where the worker reports the addresses it bound, or why it could not.
    pub(crate) ready: std::sync::mpsc::Sender<Result<Bound, Error>>,
}

/// One worker: a single-threaded runtime serving its own listening sockets
/// with its own backend pool, until told to stop.
pub(crate) fn run_worker(spec: WorkerSpec) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = spec.ready.send(Err(Error::io("start a worker runtime", e)));
            return;
        }
    };
    let WorkerSpec {
        shared,
        config,
        tls,
        listen,
        tls_listen,
        mut stopped,
        ready,
    } = spec;
    rt.block_on(async move {
        let pool = match Pool::new() {
            Ok(p) => Arc::new(p),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut bound: Bound = (Vec::new(), Vec::new());
        let mut listeners = Vec::new();
        for (addrs, is_tls) in [(&listen, false), (&tls_listen, true)] {
            for addr in addrs {
                match bind(*addr) {
                    Ok(l) => {
                        let local = l.local_addr().unwrap_or(*addr);
                        if is_tls {
                            bound.1.push(local);
                        } else {
                            bound.0.push(local);
                        }
                        listeners.push((l, is_tls));
                    }
                    Err(e) => {
                        let _ = ready.send(Err(Error::io(format!("listen on {addr}"), e)));
                        return;
                    }
                }
            }
        }
        let _ = ready.send(Ok(bound));
        let tracker = Arc::new(());
        for (l, is_tls) in listeners {
            let tls = if is_tls { tls.clone() } else { None };
            let s = Server::new(shared.clone(), pool.clone(), &config, tls);
            tokio::spawn(s.accept(l, stopped.clone(), tracker.clone()));
        }
        let _ = stopped.changed().await;
        // Let requests in flight finish, for a while: each connection
        // holds a clone of `tracker`.
        let deadline = tokio::time::Instant::now() + DRAIN;
        while Arc::strong_count(&tracker) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// A listening socket that the other workers can bind too.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

#[derive(Clone)]
pub(crate) struct Server {
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    http: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    /// The largest request head hyper reads (its read buffer limit).
    max_head: usize,
    header_timeout: Duration,
    /// Whether plain HTTP/1.1 requests take the raw fast path.
    fast: bool,
}

impl Server {
    pub(crate) fn new(
        shared: Arc<Shared>,
        pool: Arc<Pool>,
        cfg: &ProxyConfig,
        tls: Option<Arc<ServerConfig>>,
    ) -> Self {
        let max_head = cfg.max_header_size.max(8192);
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(cfg.header_read_timeout)
            // The auto builder has no max_header_size; the read buffer
            // limit bounds the head the same way (431 beyond).
            .max_buf_size(max_head);
        http.http2()
            .timer(TokioTimer::new())
            // WebSocket over HTTP/2 (RFC 8441 extended CONNECT).
            .enable_connect_protocol()
            .max_header_list_size(u32::try_from(cfg.max_header_size).unwrap_or(u32::MAX));
        Self {
            shared,
            pool,
            http,
            tls: tls.map(TlsAcceptor::from),
            max_head,
            header_timeout: cfg.header_read_timeout,
            fast: cfg.fast_path,
        }
    }

    pub(crate) async fn accept(
        self,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
        tracker: Arc<()>,
    ) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.changed() => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // At the connection limit, this listener takes no other
                    // connection until one ends: the next ones wait in the
                    // kernel's accept queue (see ProxyConfig::max_connections).
                    let permit = match &self.shared.connections {
                        None => None,
                        Some(slots) => tokio::select! {
                            permit = slots.clone().acquire_owned() => permit.ok(),
                            _ = stop.changed() => break,
                        },
                    };
                    let this = self.clone();
                    let t = tracker.clone();
                    tokio::spawn(async move {
                        // The permit goes with the connection's context,
                        // which a WebSocket tunnel keeps after the
                        // connection itself is done.
                        this.serve(stream, peer, permit).await;
                        drop(t);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, most likely: back off
                    // instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn serve(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let _ = stream.set_nodelay(true);
        // The client's slot, held for as long as the connection (or a
        // tunnel it became) lives; without one, every request on it is
        // refused (see ConnCtx).
        let (slot, over_limit) = match &self.shared.per_client {
            None => (None, None),
            Some(limit) => match limit.admit(peer.ip()) {
                Some(slot) => (Some(slot), None),
                None => {
                    tracing::debug!(%peer, "over the per-client connection limit");
                    (None, Some(limit.max()))
                }
            },
        };
        let local_port = stream.local_addr().map_or(0, |a| a.port());
        let ctx = Arc::new(ConnCtx {
            // An IP address always makes a valid header value.
            client_value: HeaderValue::from_str(&peer.ip().to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            local_port: HeaderValue::from(local_port),
            shared: self.shared.clone(),
            pool: self.pool.clone(),
            client: peer,
            tls: self.tls.is_some(),
            read_timer: Default::default(),
            over_limit,
            _slots: Slots {
                _global: permit,
                _client: slot,
            },
        });
        let fast_ctx = ctx.clone();
        let service = service_fn(move |req| handle(req, ctx.clone()));
        let serving = async {
            match &self.tls {
                None => {
                    // The fast path first; what it does not take (and the
                    // rest of that connection) goes to hyper, the bytes
                    // already read in front.
                    let (stream, read) = if self.fast && over_limit.is_none() {
                        match fast::serve(stream, &fast_ctx, self.max_head, self.header_timeout)
                            .await
                        {
                            fast::Outcome::Done => return Ok(()),
                            fast::Outcome::Fallback(stream, read) => (stream, read),
                        }
                    } else {
                        (stream, Vec::new())
                    };
                    let io = Guarded::new(
                        Prefixed::new(read, stream),
                        self.max_head,
                        self.header_timeout,
                        peer,
                    );
                    self.http
                        .serve_connection_with_upgrades(TokioIo::new(io), service)
                        .await
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake: {e}");
                            return Ok(());
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return Ok(());
                        }
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    if h2 {
                        self.http.serve_connection(TokioIo::new(tls), service).await
                    } else {
                        let io = TokioIo::new(Guarded::new(
                            tls,
                            self.max_head,
                            self.header_timeout,
                            peer,
                        ));
                        self.http.serve_connection_with_upgrades(io, service).await
                    }
                }
            }
        };
        let result = if over_limit.is_some() {
            // A refused connection gets its 503s for a while, no longer.
            match tokio::time::timeout(self.header_timeout, serving).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        } else {
            serving.await
        };
        if let Err(e) = result {
            tracing::debug!(%peer, "connection: {e}");
        }
    }
}
