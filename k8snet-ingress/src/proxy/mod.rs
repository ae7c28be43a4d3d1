//! The proxy (feature `linux`): HTTP/1.1 and HTTP/2 (h2c by prior
//! knowledge, h2 by ALPN on TLS), TLS by SNI, WebSocket and gRPC, to the
//! ready endpoints of Services.
//!
//! - **Routing** by the current [`Router`]; [`Proxy::update`] swaps in a
//!   new router and its [`Upstreams`] atomically. Requests in flight
//!   finish on the tables they started with; open connections, including
//!   WebSocket tunnels, are not touched; certificates change at the next
//!   handshake.
//! - **Backends**: endpoints picked by a [`Balancer`] ([`RoundRobin`] by
//!   default, the seam for k8snet-lb's consistent hashing) or pinned by
//!   the affinity cookie; up to three endpoints tried when connecting
//!   fails; HTTP/1.1 connections kept alive and reused, one shared HTTP/2
//!   connection per endpoint (`backend-protocol: GRPC/GRPCS`, or a port
//!   with `appProtocol: kubernetes.io/h2c`); TLS to HTTPS/GRPCS backends
//!   without certificate verification, as ingress-nginx by default.
//! - **Answers that say why**: 404 (no rule), 403 (source range), 308
//!   (ssl-redirect), 413 (proxy-body-size), 502 (no endpoint could be
//!   reached, the exchange failed, or the response has a transfer coding
//!   besides chunked, which an HTTP/1.0 or HTTP/2 client cannot be sent),
//!   503 (no ready endpoints, unknown
//!   Service or port, resource backend), 504 (proxy-read-timeout): a
//!   plain-text body names the rule, Service or endpoint concerned.
//! - **Headers**: hop-by-hop headers dropped both ways (`TE: trailers`
//!   goes to HTTP/2 backends only); `X-Forwarded-For`, `X-Real-IP`,
//!   `X-Forwarded-Proto`, `-Host` and `-Port` set from what the proxy saw,
//!   the client's values replaced and its `X-Forwarded-For` passed on as
//!   `X-Original-Forwarded-For` (ingress-nginx's default,
//!   `use-forwarded-headers: false`); an HTTP/2 client's cookie crumbs
//!   joined into one `Cookie` for HTTP/1.1 backends (RFC 9113 §8.2.3).
//! - **Host**: a request with two Host header lines, or an HTTP/1.1
//!   request without one — even when its target is in absolute form
//!   (`GET http://shop.com/x HTTP/1.1`), as nginx refuses it too — gets
//!   400 (RFC 9112 §3.2); otherwise the authority of an absolute-form
//!   target (or HTTP/2's `:authority`) names the host, else the Host
//!   header. An HTTP/1.0 request without Host or authority is routed with
//!   an empty host (host-less rules, then the catch-all defaultBackend,
//!   as nginx's default server answers it) and forwarded with an empty
//!   Host.
//! - **Paths** are matched normalized ([`normalize_path`](crate::normalize_path)):
//!   `%2F`, `%5C` and a raw `\` separate elements as `/` does, so none
//!   of them can step out of a Prefix rule with `..`; a request spelling
//!   a backslash (`%5C` or raw) is also matched against the rules spelled
//!   the same way (see the crate docs, "Matching rules").
//! - **Limits**: request head size ([`ProxyConfig::max_header_size`], 431
//!   beyond), the time to send a request head and to start the next one on
//!   a kept-alive connection ([`ProxyConfig::header_read_timeout`]), the
//!   pause allowed inside a request body (the smaller of
//!   [`ProxyConfig::client_body_timeout`] and `proxy-send-timeout`), the
//!   body size; requests whose framing is ambiguous (both
//!   `Content-Length` and `Transfer-Encoding`, two different
//!   `Content-Length`s, a `Transfer-Encoding` that does not end in
//!   `chunked`, `Transfer-Encoding` on HTTP/1.0) are refused with 400 and
//!   their connection closed, as nginx does: the first two by a guard
//!   that follows the HTTP/1 framing before hyper reads it (hyper would
//!   silently read such a request as chunked), the others by hyper itself.
//! - **Access log**: one `tracing` event per request, target
//!   `k8snet_ingress::access`, level INFO, with the fields `client`,
//!   `method`, `host` (as sent, port included), `path` (as sent, without
//!   the query), `status`, `upstream` (the endpoint, or `-` when none was
//!   reached), `ingress` (`namespace/name` of the rule, empty when none
//!   matched) and `duration_us` (microseconds until the response head,
//!   not until its last byte). A request refused for ambiguous framing is
//!   logged too, with `refused` saying why. Requests hyper answers itself
//!   (a malformed or oversized head) are not logged.
//! - **Connections**: at most [`ProxyConfig::max_connections`] open at
//!   once; the next ones wait in the kernel's accept queue. A connection
//!   closed while its client is still sending a request body (an error
//!   answered before the body was read: 413, 502, 400 …) is closed
//!   lingering, as nginx does: the sending side is shut down, and what the
//!   client still sends is read and discarded for up to 30 s in all and
//!   5 s between reads, so that the client reads the answer instead of
//!   meeting a reset.
//! - **Threads**: one per worker, each with a single-threaded runtime, its
//!   own `SO_REUSEPORT` sockets and its own backend pool (nginx's model).
//! - **Fast path** ([`ProxyConfig::fast_path`], on by default): on the
//!   plaintext listeners, plain keep-alive HTTP/1.1 requests whose rule
//!   needs nothing but forwarding are relayed as bytes, without hyper: the
//!   request head is parsed once and rewritten on the way (hop-by-hop
//!   headers dropped, the forwarding headers appended), the response head
//!   likewise, bodies streamed (chunked ones re-chunked), backend
//!   connections kept alive as plain TCP streams per endpoint. Endpoint
//!   choice, retries, timeouts, limits, the error answers and the access
//!   log are the hyper path's. The first request it does not take
//!   (HTTP/1.0, upgrades, `Expect`, `TE`, ambiguous framing, source
//!   ranges, redirects, affinity, rewrites, other backend protocols,
//!   unrouted requests, …) hands the connection, with the bytes read so
//!   far, to the framing guard and hyper, which answer as they would have.
//!
//! - **Per-client connections** (optional,
//!   [`ProxyConfig::max_connections_per_client`], as nginx's `limit_conn`
//!   keyed by the client address): a connection beyond a client's limit
//!   gets 503 on every request it sends (HTTP/1 connections are closed
//!   after it), each logged with `refused` saying why, and is closed at
//!   the latest after [`ProxyConfig::header_read_timeout`].
//! - **Default certificate**: a TLS client whose SNI name matches no
//!   Ingress TLS Secret (or that sends no SNI) gets
//!   [`ProxyConfig::default_certificate`], by default a self-signed one
//!   made at start (ingress-nginx's "Fake Certificate"); the Host header
//!   still picks the route.
//! - **WebSocket over HTTP/2** (RFC 8441): the server announces extended
//!   CONNECT; a `CONNECT` with `:protocol websocket` goes to the backend as
//!   an HTTP/1.1 `Upgrade: websocket` request (with a fresh
//!   `Sec-WebSocket-Key`), and its `101` becomes the client's `200`; then
//!   the HTTP/2 stream and the backend connection are joined, like an
//!   HTTP/1.1 WebSocket (route reloads leave the tunnel alone).
//!
//! Not done: a limit on slow readers of responses.

/// `AsyncWrite` for a read-side wrapper `$ty<S>` whose writes go straight
/// to its field `$inner` (the guard and the fast path's hand-over stream
/// only look at what the client sends).
macro_rules! write_through {
    ($ty:ident, $inner:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $ty<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.$inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.$inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$inner.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.$inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.$inner).poll_shutdown(cx)
            }
        }
    };
}

mod affinity;
mod body;
mod deadline;
mod fast;
mod forward;
mod guard;
mod handler;
mod limit;
mod linger;
mod pool;
mod server;
mod tls;
mod upstreams;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

pub use self::upstreams::{APP_PROTOCOL_H2C, Balancer, PickKey, RoundRobin, Upstream, Upstreams};
use crate::error::Error;
use crate::router::Router;
use crate::tls::Certificate;

/// What the proxy serves: a router and the endpoints of its backends.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) router: Router,
    pub(crate) upstreams: Upstreams,
}

/// Shared by every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: ArcSwap<State>,
    pub(crate) certs: tls::CertCache,
    pub(crate) balancer: Arc<dyn Balancer>,
    /// The HTTPS port redirects point to (0 until bound; none without TLS).
    pub(crate) https_port: std::sync::atomic::AtomicU16,
    pub(crate) client_body_timeout: Duration,
    /// Connection slots ([`ProxyConfig::max_connections`]), shared by the
    /// workers.
    pub(crate) connections: Option<Arc<tokio::sync::Semaphore>>,
    /// Open connections per client address
    /// ([`ProxyConfig::max_connections_per_client`]).
    pub(crate) per_client: Option<Arc<limit::PerClient>>,
    /// The certificate served when no Secret matches (parsed).
    pub(crate) default_cert: Option<Arc<rustls::sign::CertifiedKey>>,
}

/// The certificate the TLS listeners serve when no Ingress TLS Secret
/// matches the client's SNI name, or the client sends none (and when the
/// matching Secret has never held a usable certificate: one that had keeps
/// its last good certificate).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum DefaultCertificate {
    /// A self-signed certificate generated at start (ECDSA P-256, common
    /// name "Kubernetes Ingress Controller Fake Certificate", name
    /// `ingress.local`, as ingress-nginx's), so that clients that do not
    /// verify, or that send no SNI, still reach the routes by Host.
    #[default]
    Generated,
    /// This certificate (for example the `--default-ssl-certificate`
    /// Secret of ingress-nginx).
    Given(Certificate),
    /// None: a handshake that matches no Secret fails.
    Disabled,
}

/// How to run the proxy.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Plain-HTTP addresses (HTTP/1.1, and HTTP/2 with prior knowledge).
    pub listen: Vec<SocketAddr>,
    /// HTTPS addresses (ALPN h2 or http/1.1); certificates come from the router.
    pub tls_listen: Vec<SocketAddr>,
    /// Worker threads (default: one per CPU). Each keeps its own backend
    /// connections.
    pub workers: usize,
    /// The longest a client may take to send a whole request head, and to
    /// start the next request on a kept-alive connection (default 60 s, as
    /// nginx's `client_header_timeout`). It bounds the whole head, not the
    /// pauses inside it: a client that sends one byte at a time is cut
    /// when the time is up. The connection is closed without an answer
    /// (nginx logs a 408 there but sends nothing either).
    pub header_read_timeout: Duration,
    /// The longest pause allowed inside a request body (default 60 s, as
    /// nginx's `client_body_timeout`).
    pub client_body_timeout: Duration,
    /// The largest request head, start line included (default 32 KiB, as
    /// nginx's `large_client_header_buffers 4 8k`); 431 beyond.
    pub max_header_size: usize,
    /// The most client connections open at once, over all workers and
    /// listeners (default 16,384, ingress-nginx's `max-worker-connections`;
    /// `None`: no limit but the file descriptors).
    ///
    /// Connections beyond it **wait**: a listener that got one more
    /// connection than the limit allows holds it unserved and stops
    /// accepting until a connection ends, so the next ones queue in the
    /// kernel's accept queue (backlog 1024 per listener and worker; beyond
    /// that the kernel drops SYNs and clients retransmit). This is
    /// HAProxy's `maxconn` behaviour. It was chosen over refusing
    /// because a burst is then served late rather than failed, nothing is
    /// spent on connections that would be turned away (no TLS handshake to
    /// send an error through), and plain and TLS listeners behave alike.
    /// The cost: a client beyond the limit sees a slow answer, not an
    /// error, and long-lived connections (WebSockets, gRPC streams) hold
    /// slots for as long as they live — size the limit for them; idle
    /// kept-alive connections give their slot back after
    /// [`header_read_timeout`](Self::header_read_timeout).
    pub max_connections: Option<NonZeroUsize>,
    /// The most connections open at once from one client IP address, over
    /// all workers and listeners (default `None`: no such limit), as
    /// nginx's `limit_conn` on `$binary_remote_addr` (ingress-nginx's
    /// `limit-connections`). A connection beyond it is not closed at once:
    /// each request on it is answered 503 and logged with `refused`, an
    /// HTTP/1 connection is closed after that answer, and any of them
    /// after [`header_read_timeout`](Self::header_read_timeout). It still
    /// holds one of [`max_connections`](Self::max_connections) meanwhile.
    /// A connection upgraded to a WebSocket counts until the tunnel closes.
    pub max_connections_per_client: Option<NonZeroUsize>,
    /// The certificate for TLS clients whose SNI name matches no Secret
    /// (default: [`DefaultCertificate::Generated`]).
    pub default_certificate: DefaultCertificate,
    /// How endpoints are picked.
    pub balancer: Arc<dyn Balancer>,
    /// Whether plain HTTP/1.1 requests on the plaintext listeners take the
    /// raw fast path (default on): parsed once, forwarded on pooled TCP
    /// connections without hyper. Requests it does not take (HTTP/1.0,
    /// HTTP/2, upgrades, `Expect`, rules needing more than forwarding, …)
    /// and TLS listeners go through hyper either way; answers are the same.
    pub fast_path: bool,
}

impl ProxyConfig {
    /// A configuration with the defaults, serving plain HTTP on `listen`.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        Self {
            listen,
            tls_listen: Vec::new(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            header_read_timeout: Duration::from_secs(60),
            client_body_timeout: Duration::from_secs(60),
            max_header_size: 32 * 1024,
            max_connections: NonZeroUsize::new(16_384),
            max_connections_per_client: None,
            default_certificate: DefaultCertificate::Generated,
            balancer: Arc::new(RoundRobin),
            fast_path: true,
        }
    }

    /// Turns the raw HTTP/1.1 fast path on or off
    /// ([`ProxyConfig::fast_path`]).
    pub fn fast_path(mut self, on: bool) -> Self {
        self.fast_path = on;
        self
    }

    /// Limits the connections open at once per client address
    /// ([`ProxyConfig::max_connections_per_client`]).
    pub fn max_connections_per_client(mut self, max: Option<NonZeroUsize>) -> Self {
        self.max_connections_per_client = max;
        self
    }

    /// Sets the certificate served when no Secret matches
    /// ([`ProxyConfig::default_certificate`]).
    pub fn default_certificate(mut self, cert: DefaultCertificate) -> Self {
        self.default_certificate = cert;
        self
    }

    /// Also serves HTTPS on these addresses.
    pub fn tls_listen(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.tls_listen = addrs;
        self
    }
}

/// A running proxy. Dropping it without [`Proxy::shutdown`] also stops it.
///
/// It runs like nginx: one thread per worker, each with its own
/// single-threaded runtime, its own `SO_REUSEPORT` listening sockets (the
/// kernel spreads connections over them) and its own backend connection
/// pool, so a request never crosses threads.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    workers: Vec<std::thread::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    local: Vec<SocketAddr>,
    tls_local: Vec<SocketAddr>,
    default_cert: Option<Certificate>,
}

impl Proxy {
    /// Binds the listeners and starts the worker threads.
    ///
    /// # Errors
    /// [`Error::Io`] when a listener cannot be bound or a worker cannot
    /// start; [`Error::Tls`] when the TLS configuration cannot be built or
    /// the given default certificate is unusable.
    pub fn start(config: ProxyConfig, router: Router, upstreams: Upstreams) -> Result<Self, Error> {
        // The default certificate matters only with TLS listeners.
        let default_cert = match (&config.default_certificate, config.tls_listen.is_empty()) {
            (_, true) | (DefaultCertificate::Disabled, _) => None,
            (DefaultCertificate::Generated, false) => Some(tls::generate_default()?),
            (DefaultCertificate::Given(c), false) => Some(c.clone()),
        };
        let default_key = match &default_cert {
            None => None,
            Some(c) => Some(Arc::new(tls::parse(c).map_err(|e| {
                Error::Tls(format!(
                    "the default certificate (from {}): {e}",
                    c.secret()
                ))
            })?)),
        };
        let shared = Arc::new(Shared {
            state: ArcSwap::from_pointee(State { router, upstreams }),
            certs: tls::CertCache::default(),
            balancer: config.balancer.clone(),
            https_port: std::sync::atomic::AtomicU16::new(0),
            client_body_timeout: config.client_body_timeout,
            connections: config
                .max_connections
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.get()))),
            per_client: config
                .max_connections_per_client
                .map(|n| Arc::new(limit::PerClient::new(n))),
            default_cert: default_key,
        });
        let tls_config = if config.tls_listen.is_empty() {
            None
        } else {
            Some(tls::server_config(shared.clone())?)
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut proxy = Self {
            shared: shared.clone(),
            workers: Vec::new(),
            stop,
            local: config.listen.clone(),
            tls_local: config.tls_listen.clone(),
            default_cert,
        };
        // The first worker binds what was asked (port 0 included); the
        // others bind the ports it got, sharing them through SO_REUSEPORT.
        for i in 0..config.workers.max(1) {
            let (ready, bound) = std::sync::mpsc::channel();
            let spec = server::WorkerSpec {
                shared: shared.clone(),
                config: config.clone(),
                tls: tls_config.clone(),
                listen: proxy.local.clone(),
                tls_listen: proxy.tls_local.clone(),
                stopped: stopped.clone(),
                ready,
            };
            let handle = std::thread::Builder::new()
                .name(format!("k8snet-ingress-{i}"))
                .spawn(move || server::run_worker(spec))
                .map_err(|e| Error::io("start a worker thread", e))?;
            proxy.workers.push(handle);
            let (local, tls_local) = bound.recv().map_err(|_| {
                Error::io("start a worker", std::io::Error::other("the worker died"))
            })??;
            proxy.local = local;
            proxy.tls_local = tls_local;
        }
        if let Some(a) = proxy.tls_local.first() {
            shared
                .https_port
                .store(a.port(), std::sync::atomic::Ordering::Relaxed);
        }
        Ok(proxy)
    }

    /// Serves a new router and its upstreams from the next request on.
    /// Open connections and tunnels stay up; requests in flight finish on
    /// the old tables.
    ///
    /// A Secret whose new certificate cannot be used keeps serving its
    /// last good one (the error is logged here), as ingress-nginx does.
    pub fn update(&self, router: Router, upstreams: Upstreams) {
        self.shared
            .certs
            .prepare(&self.shared.state.load().router, &router);
        let next = Arc::new(State { router, upstreams });
        self.shared.state.store(next.clone());
        self.shared.certs.retain(&next.router);
    }

    /// The plain-HTTP addresses (with the ports the OS chose for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// The HTTPS addresses.
    pub fn tls_local_addrs(&self) -> &[SocketAddr] {
        &self.tls_local
    }

    /// The certificate served when no Secret matches (the generated or
    /// given one; `None` without TLS listeners or when disabled).
    pub fn default_certificate(&self) -> Option<&Certificate> {
        self.default_cert.as_ref()
    }

    /// Stops accepting, gives requests in flight up to five seconds, then
    /// closes every connection and stops the workers.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop_now();
    }
}
