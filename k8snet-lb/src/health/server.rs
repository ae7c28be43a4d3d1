//! The health check servers on real sockets: hyper's HTTP/1.1 on a
//! one-thread tokio runtime each server owns.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use k8snet_model::NsName;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::{JoinHandle, JoinSet};

use super::{Answer, ProxyHealth};
use crate::error::{Error, Result};
use crate::plan::{HealthCheck, ServiceTable};

/// What answers every request of a listener.
type Handler = Arc<dyn Fn(&Request<Incoming>) -> Answer + Send + Sync>;

/// The longest a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest closing a listener may take (its task is dropped by the
/// runtime's thread; this only bounds a wedged runtime).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: valid whatever a panicking holder did.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn runtime(name: &str) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|source| Error::Io {
            what: format!("start the {name} runtime"),
            source,
        })
}

fn to_response((status, headers, body): Answer) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// Serves one connection with `answer` for every request.
async fn serve_connection(stream: TcpStream, answer: Handler) {
    let service = service_fn(move |req: Request<Incoming>| {
        let resp = to_response(answer(&req));
        async move { Ok::<_, Infallible>(resp) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // Header names as Go writes them (`X-Load-Balancing-Endpoint-Weight`).
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!("health check connection: {e}");
    }
}

/// A listening socket and the signal that it is closed: fields drop in
/// order, so the closer hears of it only once the port is free.
struct Serving {
    listener: TcpListener,
    _closed: mpsc::Sender<()>,
}

/// Accepts connections until dropped (aborting the task closes the
/// listener and every connection it accepted).
async fn accept_loop(serving: Serving, answer: Handler) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = serving.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(stream, answer.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: back off.
                    tracing::warn!("health check accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// One listening socket and the task serving it.
#[derive(Debug)]
struct Listener {
    addr: SocketAddr,
    task: JoinHandle<()>,
    closed: mpsc::Receiver<()>,
}

impl Listener {
    /// Starts serving `std` on `rt`.
    fn start(rt: &Runtime, std: StdListener, answer: Handler) -> std::io::Result<Self> {
        let addr = std.local_addr()?;
        std.set_nonblocking(true)?;
        let _in_runtime = rt.enter();
        let listener = TcpListener::from_std(std)?;
        let (tx, closed) = mpsc::channel();
        let serving = Serving {
            listener,
            _closed: tx,
        };
        let task = rt.spawn(accept_loop(serving, answer));
        Ok(Self { addr, task, closed })
    }

    /// Closes the socket and its connections; returns once the port is
    /// free.
    fn close(self) {
        self.task.abort();
        // The sender goes with the task: a disconnect means it is gone.
        let _ = self.closed.recv_timeout(CLOSE_WAIT);
    }
}

/// What a Service's health check port serves.
#[derive(Debug)]
struct Served {
    port: u16,
    listeners: Vec<Listener>,
}

/// The state handlers read: each Service's answer data.
#[derive(Debug)]
struct Shared {
    checks: Mutex<HashMap<NsName, HealthCheck>>,
    proxy: Arc<ProxyHealth>,
}

impl Shared {
    fn answer(&self, key: &NsName) -> Answer {
        let check = lock(&self.checks).get(key).cloned();
        let healthy = self.proxy.is_healthy();
        match check {
            Some(c) => c.response(healthy),
            // Closed while a request was in flight: tell the load balancer
            // not to use this node.
            None => HealthCheck {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                node_port: 0,
                local_endpoints: 0,
            }
            .response(healthy),
        }
    }
}

/// kube-proxy's Service health server: one HTTP listener per
/// `healthCheckNodePort` (on each of the given node addresses, or on all
/// addresses), answering as [`HealthCheck::response`] with the current
/// local endpoint count and the proxy's health.
///
/// [`ServiceHealthServer::sync`] takes the whole set of health checks (as
/// kube-proxy's `SyncServices` and `SyncEndpoints`):
/// ports of Services that went away close, new ones open, counts change in
/// place (open connections stay up). [`ServiceHealthServer::update_service`]
/// does the same for one Service. Sockets open in the network namespace of
/// the thread that calls these. Dropping the server closes every port.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::io::{Read, Write};
/// use std::sync::Arc;
/// use k8snet_lb::health::{ProxyHealth, ServiceHealthServer};
/// use k8snet_lb::plan::HealthCheck;
///
/// let server = ServiceHealthServer::new(vec!["127.0.0.1".parse()?], Arc::new(ProxyHealth::default()))?;
/// # let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
/// let check = HealthCheck {
///     namespace: "shop".into(), name: "web".into(), node_port: port, local_endpoints: 2,
/// };
/// assert!(server.sync(&[check]).is_empty());
/// let mut c = std::net::TcpStream::connect(("127.0.0.1", port))?;
/// c.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")?;
/// let mut answer = String::new();
/// c.read_to_string(&mut answer)?;
/// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(answer.contains("\r\nX-Load-Balancing-Endpoint-Weight: 2\r\n"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServiceHealthServer {
    shared: Arc<Shared>,
    /// Node addresses to listen on (empty: all).
    addrs: Vec<IpAddr>,
    served: Mutex<BTreeMap<NsName, Served>>,
    rt: Option<Runtime>,
}

impl ServiceHealthServer {
    /// A server listening on `addrs` (kube-proxy's node port addresses;
    /// empty: every address of the host, IPv4 and IPv6), reporting
    /// `proxy`'s health. No port is open until the first sync.
    ///
    /// # Errors
    /// [`Error::Io`] if the runtime thread cannot start.
    pub fn new(addrs: Vec<IpAddr>, proxy: Arc<ProxyHealth>) -> Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                checks: Mutex::new(HashMap::new()),
                proxy,
            }),
            addrs,
            served: Mutex::new(BTreeMap::new()),
            rt: Some(runtime("k8snet-lb-health")?),
        })
    }

    /// The proxy health the answers report.
    pub fn proxy_health(&self) -> &Arc<ProxyHealth> {
        &self.shared.proxy
    }

    /// Serves exactly the health checks of `table`.
    #[must_use = "ports that could not be opened are only reported here"]
    pub fn sync_table(&self, table: &ServiceTable) -> Vec<Error> {
        self.sync(&table.health_checks)
    }

    /// Serves exactly `checks`: closes the ports of Services not among
    /// them (or whose port changed), opens the new ones, and updates every
    /// count. Returns the checks that could not be served, tried again at
    /// the next sync: a port that another Service's health check holds
    /// (one already served keeps its port; among new ones the first in
    /// name order gets it), or one that cannot be bound.
    #[must_use = "ports that could not be opened are only reported here"]
    pub fn sync(&self, checks: &[HealthCheck]) -> Vec<Error> {
        let mut want: BTreeMap<NsName, &HealthCheck> = BTreeMap::new();
        for c in checks {
            want.insert(NsName::new(c.namespace.clone(), c.name.clone()), c);
        }
        let mut served = lock(&self.served);
        let mut closing = Vec::new();
        let gone: Vec<NsName> = served
            .iter()
            .filter(|(k, s)| want.get(*k).is_none_or(|c| c.node_port != s.port))
            .map(|(k, _)| k.clone())
            .collect();
        {
            let mut counts = lock(&self.shared.checks);
            for k in &gone {
                counts.remove(k);
                if let Some(s) = served.remove(k) {
                    closing.extend(s.listeners);
                }
            }
        }
        for l in closing {
            l.close();
        }
        let mut errors = Vec::new();
        let mut ports: BTreeMap<u16, NsName> =
            served.iter().map(|(k, s)| (s.port, k.clone())).collect();
        for (key, check) in want {
            if let Some(owner) = ports.get(&check.node_port)
                && *owner != key
            {
                errors.push(port_conflict(check, owner));
                continue;
            }
            lock(&self.shared.checks).insert(key.clone(), check.clone());
            if served.contains_key(&key) {
                continue;
            }
            match self.open(&key, check.node_port) {
                Ok(s) => {
                    ports.insert(check.node_port, key.clone());
                    served.insert(key, s);
                }
                Err(e) => {
                    lock(&self.shared.checks).remove(&key);
                    errors.push(e);
                }
            }
        }
        for e in &errors {
            tracing::warn!("health check: {e}");
        }
        errors
    }

    /// Serves one Service's health check (`None`: closes its port), from
    /// [`crate::plan_health_check`].
    ///
    /// # Errors
    /// [`Error::Invalid`] if another Service's health check has this port;
    /// [`Error::Listen`] if it cannot be bound. Either way the Service has
    /// no health check port afterwards.
    pub fn update_service(
        &self,
        namespace: &str,
        name: &str,
        check: Option<&HealthCheck>,
    ) -> Result<()> {
        let key = NsName::new(namespace, name);
        let mut served = lock(&self.served);
        let keep = check.is_some_and(|c| served.get(&key).is_some_and(|s| s.port == c.node_port));
        let Some(check) = check else {
            lock(&self.shared.checks).remove(&key);
            if let Some(s) = served.remove(&key) {
                s.listeners.into_iter().for_each(Listener::close);
            }
            return Ok(());
        };
        if keep {
            lock(&self.shared.checks).insert(key, check.clone());
            return Ok(());
        }
        if let Some((owner, _)) = served
            .iter()
            .find(|(k, s)| **k != key && s.port == check.node_port)
        {
            let e = port_conflict(check, owner);
            lock(&self.shared.checks).remove(&key);
            if let Some(s) = served.remove(&key) {
                s.listeners.into_iter().for_each(Listener::close);
            }
            return Err(e);
        }
        lock(&self.shared.checks).insert(key.clone(), check.clone());
        if let Some(s) = served.remove(&key) {
            s.listeners.into_iter().for_each(Listener::close);
        }
        match self.open(&key, check.node_port) {
            Ok(s) => {
                served.insert(key, s);
                Ok(())
            }
            Err(e) => {
                lock(&self.shared.checks).remove(&key);
                Err(e)
            }
        }
    }

    /// The addresses a Service's health check listens on (empty when it
    /// has none).
    pub fn local_addrs(&self, namespace: &str, name: &str) -> Vec<SocketAddr> {
        lock(&self.served)
            .get(&NsName::new(namespace, name))
            .map(|s| s.listeners.iter().map(|l| l.addr).collect())
            .unwrap_or_default()
    }

    /// The Services served, with their ports, in name order.
    pub fn ports(&self) -> Vec<(NsName, u16)> {
        lock(&self.served)
            .iter()
            .map(|(k, s)| (k.clone(), s.port))
            .collect()
    }

    /// Binds `port` on every address (all of them: `[::]`, dual-stack, and
    /// `0.0.0.0` where IPv6 sockets are IPv6-only or IPv6 is missing) and
    /// starts serving; nothing stays open on failure.
    fn open(&self, key: &NsName, port: u16) -> Result<Served> {
        let Some(rt) = &self.rt else {
            return Err(Error::Io {
                what: "the health check server".into(),
                source: std::io::Error::other("shut down"),
            });
        };
        let listen_error = |addr: SocketAddr, source| Error::Listen {
            object: format!("Service {key}"),
            field: "spec.healthCheckNodePort".into(),
            addr,
            source,
        };
        let mut sockets = Vec::new();
        if self.addrs.is_empty() {
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
            match StdListener::bind(v6) {
                Ok(l) => {
                    sockets.push(l);
                    // Fails with "in use" when the IPv6 socket already
                    // takes IPv4 (the Linux default).
                    if let Ok(l) = StdListener::bind(v4) {
                        sockets.push(l);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(listen_error(v6, e));
                }
                // No IPv6 on this host.
                Err(_) => sockets.push(StdListener::bind(v4).map_err(|e| listen_error(v4, e))?),
            }
        } else {
            for ip in &self.addrs {
                let a = SocketAddr::new(*ip, port);
                sockets.push(StdListener::bind(a).map_err(|e| listen_error(a, e))?);
            }
        }
        let shared = self.shared.clone();
        let k = key.clone();
        let answer: Handler = Arc::new(move |_req: &Request<Incoming>| shared.answer(&k));
        let mut listeners: Vec<Listener> = Vec::new();
        for s in sockets {
            let addr = s
                .local_addr()
                .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
            match Listener::start(rt, s, answer.clone()) {
                Ok(l) => listeners.push(l),
                Err(e) => {
                    listeners.into_iter().for_each(Listener::close);
                    return Err(listen_error(addr, e));
                }
            }
        }
        Ok(Served { port, listeners })
    }
}

fn port_conflict(check: &HealthCheck, owner: &NsName) -> Error {
    Error::invalid(
        format!("Service {}/{}", check.namespace, check.name),
        "spec.healthCheckNodePort",
        format!(
            "port {} is already the health check port of Service {owner}",
            check.node_port
        ),
    )
}

impl Drop for ServiceHealthServer {
    fn drop(&mut self) {
        let served = std::mem::take(&mut *lock(&self.served));
        for s in served.into_values() {
            s.listeners.into_iter().for_each(Listener::close);
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// kube-proxy's proxy health server: `/healthz` ([`ProxyHealth::healthz_at`])
/// and `/livez` ([`ProxyHealth::livez_at`]) on one address (kube-proxy:
/// `0.0.0.0:10256`); any other path is 404. Dropping it closes the port.
#[derive(Debug)]
pub struct ProxyHealthServer {
    listener: Option<Listener>,
    rt: Option<Runtime>,
}

impl ProxyHealthServer {
    /// Binds `addr` (in the calling thread's network namespace) and
    /// serves `health`.
    ///
    /// # Errors
    /// [`Error::Listen`] if `addr` cannot be bound; [`Error::Io`] if the
    /// runtime thread cannot start.
    pub fn start(addr: SocketAddr, health: Arc<ProxyHealth>) -> Result<Self> {
        let listen_error = |source| Error::Listen {
            object: "kube-proxy healthz".into(),
            field: "--healthz-bind-address".into(),
            addr,
            source,
        };
        let std = StdListener::bind(addr).map_err(listen_error)?;
        let rt = runtime("k8snet-lb-healthz")?;
        let answer: Handler = Arc::new(move |req: &Request<Incoming>| {
            let now = SystemTime::now();
            match req.uri().path() {
                "/healthz" => health.healthz_at(now),
                "/livez" => health.livez_at(now),
                // Go's http.NotFound.
                _ => (
                    404,
                    vec![
                        (
                            "Content-Type".to_string(),
                            "text/plain; charset=utf-8".to_string(),
                        ),
                        ("X-Content-Type-Options".to_string(), "nosniff".to_string()),
                    ],
                    "404 page not found\n".to_string(),
                ),
            }
        });
        let listener = Listener::start(&rt, std, answer).map_err(listen_error)?;
        Ok(Self {
            listener: Some(listener),
            rt: Some(rt),
        })
    }

    /// The address it listens on (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(|l| l.addr)
    }
}

impl Drop for ProxyHealthServer {
    fn drop(&mut self) {
        if let Some(l) = self.listener.take() {
            l.close();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
