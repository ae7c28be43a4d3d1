//! The endpoints behind each Service backend, and how one is picked.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8snet_model::{AddressType, Cluster, NsName, Protocol, ServicePort};

use crate::backend::{Backend, PortRef, ServiceBackend};
use crate::router::Router;
use rustc_hash::FxHashMap;

/// The `appProtocol` asking for HTTP/2 without TLS (KEP-3726).
pub const APP_PROTOCOL_H2C: &str = "kubernetes.io/h2c";

/// The ready endpoints of one Service port.
#[derive(Debug)]
pub struct Upstream {
    name: String,
    endpoints: Vec<SocketAddr>,
    h2c: bool,
    next: AtomicUsize,
}

impl Upstream {
    /// An upstream with these endpoints (`name` is shown in errors and
    /// logs); `h2c` speaks HTTP/2 without TLS to them.
    pub fn new(name: impl Into<String>, endpoints: Vec<SocketAddr>, h2c: bool) -> Self {
        Self {
            name: name.into(),
            endpoints,
            h2c,
            next: AtomicUsize::new(0),
        }
    }

    /// The ready endpoints.
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// `service ns/name:port`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the port's `appProtocol` is `kubernetes.io/h2c`.
    pub fn h2c(&self) -> bool {
        self.h2c
    }

    /// A counter shared by the requests to this upstream, for balancers
    /// that take turns.
    pub fn tick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// What a [`Balancer`] may use to pick an endpoint.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PickKey<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// The request's (normalized) path.
    pub path: &'a str,
    /// 0 for the first try, then 1, 2… for retries after a connect failure.
    pub attempt: usize,
}

/// Picks an endpoint of an upstream. The seam for k8snet-lb's consistent
/// hashing; [`RoundRobin`] is the default.
pub trait Balancer: fmt::Debug + Send + Sync + 'static {
    /// The index of the endpoint to try, in `0..upstream.endpoints().len()`
    /// (which is never empty here). Retries call again with a higher
    /// `attempt`; the proxy skips endpoints already tried.
    fn pick(&self, upstream: &Upstream, key: &PickKey<'_>) -> usize;
}

/// Takes turns.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobin;

impl Balancer for RoundRobin {
    fn pick(&self, upstream: &Upstream, _key: &PickKey<'_>) -> usize {
        upstream.tick() % upstream.endpoints.len().max(1)
    }
}

/// Why a Service backend has nowhere to go (the proxy answers 503 with it).
pub(crate) type Unavailable = Arc<str>;

/// Every Service backend of a router, resolved to its ready endpoints.
#[derive(Debug, Default)]
pub struct Upstreams {
    map: FxHashMap<ServiceBackend, Result<Arc<Upstream>, Unavailable>>,
    warnings: Vec<String>,
}

impl Upstreams {
    /// Resolves the Service backends `router` can reach against the
    /// Services and EndpointSlices of `cluster`: the port by number or
    /// name, the slices' port of the same name, the endpoints that are
    /// ready. Loopback addresses (accepted by k8snet-model's lenient
    /// `LocalEndpoints::Warn` load mode, for local runs) are kept, with a
    /// warning.
    pub fn build(cluster: &Cluster, router: &Router) -> Self {
        let mut out = Self::default();
        for b in router.backends() {
            let Backend::Service(s) = b else { continue };
            let resolved = resolve(cluster, s, &mut out.warnings);
            out.map.insert(s.clone(), resolved);
        }
        out
    }

    /// An empty table; add upstreams with [`Upstreams::insert`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the upstream of a Service backend (for embedders and tests that
    /// manage endpoints themselves).
    pub fn insert(&mut self, backend: ServiceBackend, upstream: Upstream) {
        self.map.insert(backend, Ok(Arc::new(upstream)));
    }

    /// The upstream of a backend, or why there is none.
    pub(crate) fn get(&self, backend: &ServiceBackend) -> Result<&Arc<Upstream>, Unavailable> {
        match self.map.get(backend) {
            Some(Ok(u)) if !u.endpoints.is_empty() => Ok(u),
            Some(Ok(u)) => Err(format!("{} has no ready endpoints", u.name).into()),
            Some(Err(why)) => Err(why.clone()),
            None => Err(format!("{backend} is not resolved").into()),
        }
    }

    /// Problems worth telling the operator (loopback endpoints accepted).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The number of backends resolved (with or without endpoints).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

fn resolve(
    cluster: &Cluster,
    b: &ServiceBackend,
    warnings: &mut Vec<String>,
) -> Result<Arc<Upstream>, Unavailable> {
    let key = NsName::new(b.namespace.clone(), b.name.clone());
    let svc = cluster
        .service(&key)
        .ok_or_else(|| Unavailable::from(format!("{b}: Service {key} not found")))?;
    let port: &ServicePort = svc
        .spec
        .ports
        .iter()
        .find(|p| match &b.port {
            PortRef::Number(n) => p.port == i32::from(*n),
            PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
        })
        .ok_or_else(|| Unavailable::from(format!("{b}: Service {key} has no port {}", b.port)))?;
    if port.protocol.is_some_and(|p| p != Protocol::Tcp) {
        return Err(format!("{b}: port is not TCP").into());
    }
    let name = port.name.as_deref().unwrap_or_default();
    let mut endpoints = Vec::new();
    let mut h2c = port.app_protocol.as_deref() == Some(APP_PROTOCOL_H2C);
    for slice in cluster.slices_for_service(&key) {
        if slice.address_type == AddressType::Fqdn {
            continue;
        }
        // The slice port of the same name; a slice without ports means
        // "all ports", usable only with a numeric target port.
        let target = match slice
            .ports
            .iter()
            .find(|p| p.name.as_deref().unwrap_or_default() == name)
        {
            Some(p) => {
                h2c |= p.app_protocol.as_deref() == Some(APP_PROTOCOL_H2C);
                p.port
            }
            None if slice.ports.is_empty() => match &port.target_port {
                Some(k8snet_model::IntOrString::Int(n)) => Some(*n),
                _ => None,
            },
            None => None,
        };
        let Some(target) = target.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for ep in slice.endpoints.iter().filter(|e| e.conditions.is_ready()) {
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            if ip.is_loopback() {
                warnings.push(format!(
                    "{b}: loopback endpoint {ip}:{target} accepted (local run)"
                ));
            }
            endpoints.push(SocketAddr::new(ip, target));
        }
    }
    endpoints.sort();
    endpoints.dedup();
    Ok(Arc::new(Upstream::new(b.to_string(), endpoints, h2c)))
}
