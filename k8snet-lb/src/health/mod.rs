//! kube-proxy's two health endpoints (pkg/proxy/healthcheck).
//!
//! - **Service health** (`healthCheckNodePort`): for every LoadBalancer
//!   Service with `externalTrafficPolicy: Local`, an HTTP server on its
//!   health check node port telling the load balancer whether this node has
//!   a local ready endpoint: `200` if it has and the proxy is healthy, else
//!   `503`; headers `Content-Type: application/json`,
//!   `X-Content-Type-Options: nosniff` and
//!   `X-Load-Balancing-Endpoint-Weight: <local endpoints>`; the body
//!   `{"service": {"namespace", "name"}, "localEndpoints", "serviceProxyHealthy"}`
//!   laid out byte for byte as kube-proxy writes it. Any method and path.
//!   The answer's data is [`HealthCheck`](crate::plan::HealthCheck) from
//!   the plan; the server (feature `health`) is [`ServiceHealthServer`].
//! - **Proxy health** (`/healthz` and `/livez`, port [`HEALTHZ_PORT`]):
//!   [`ProxyHealth`] records when updates were queued and applied; the
//!   proxy is unhealthy once an update has waited longer than the timeout
//!   (kube-proxy: twice the sync period, [`DEFAULT_HEALTH_TIMEOUT`]).
//!   `/healthz` also fails while the node is being deleted. The server is
//!   [`ProxyHealthServer`].
//!
//! Times are injectable (`…_at` methods), so the health rules are tested
//! without waiting.

#[cfg(feature = "health")]
mod server;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "health")]
#[cfg_attr(docsrs, doc(cfg(feature = "health")))]
pub use server::{ProxyHealthServer, ServiceHealthServer};

/// kube-proxy's `--healthz-bind-address` port.
pub const HEALTHZ_PORT: u16 = 10256;

/// How long a queued update may wait before the proxy counts as unhealthy:
/// kube-proxy uses twice its sync period (30 s by default).
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP answer: status, headers, body.
pub type Answer = (u16, Vec<(String, String)>, String);

/// The proxy's own health: whether queued updates reach the data plane in
/// time, and whether the node is eligible for traffic. Shared (in an
/// `Arc`) by the proxy that reports updates and the servers that answer.
#[derive(Debug)]
pub struct ProxyHealth {
    timeout: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    last_updated: Option<SystemTime>,
    oldest_pending: Option<SystemTime>,
    node_eligible: bool,
}

/// A snapshot of [`ProxyHealth`] at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyStatus {
    /// No queued update has waited longer than the timeout.
    pub healthy: bool,
    /// The node is not being deleted.
    pub node_eligible: bool,
    /// When the data plane was last updated (`None`: never).
    pub last_updated: Option<SystemTime>,
    /// The time of the snapshot.
    pub current_time: SystemTime,
}

impl Default for ProxyHealth {
    fn default() -> Self {
        Self::new(DEFAULT_HEALTH_TIMEOUT)
    }
}

impl ProxyHealth {
    /// Healthy, eligible, never updated. Once something was applied, it is
    /// unhealthy whenever a queued update has waited `timeout` or longer
    /// (before the first update it is healthy: starting up, as kube-proxy).
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            state: Mutex::new(State {
                last_updated: None,
                oldest_pending: None,
                node_eligible: true,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data, valid whatever a panicking holder did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A change arrived that the data plane does not hold yet.
    pub fn queued_update(&self) {
        self.queued_update_at(SystemTime::now());
    }

    /// [`ProxyHealth::queued_update`] at time `now` (the oldest pending
    /// update counts).
    pub fn queued_update_at(&self, now: SystemTime) {
        let mut s = self.state();
        s.oldest_pending.get_or_insert(now);
    }

    /// The data plane holds every change queued so far.
    pub fn updated(&self) {
        self.updated_at(SystemTime::now());
    }

    /// [`ProxyHealth::updated`] at time `now`.
    pub fn updated_at(&self, now: SystemTime) {
        let mut s = self.state();
        s.oldest_pending = None;
        s.last_updated = Some(now);
    }

    /// Marks the node eligible for traffic or not (kube-proxy: not while
    /// the Node is being deleted or tainted `ToBeDeletedByClusterAutoscaler`).
    pub fn set_node_eligible(&self, eligible: bool) {
        self.state().node_eligible = eligible;
    }

    /// Eligibility from the Node object: not eligible once it has a
    /// deletion timestamp. (The model carries no taints, so the cluster
    /// autoscaler's taint is left to [`ProxyHealth::set_node_eligible`].)
    pub fn sync_node(&self, node: &k8snet_model::Node) {
        self.set_node_eligible(node.metadata.deletion_timestamp.is_none());
    }

    /// Whether the proxy is healthy now (what the Service health checks
    /// report as `serviceProxyHealthy`; the node's eligibility is not part
    /// of it).
    pub fn is_healthy(&self) -> bool {
        self.status_at(SystemTime::now()).healthy
    }

    /// The state at time `now`.
    pub fn status_at(&self, now: SystemTime) -> ProxyStatus {
        let s = *self.state();
        // As kube-proxy: healthy while starting up (nothing applied yet),
        // and late only once an update has waited the whole timeout.
        let late = s.last_updated.is_some()
            && s.oldest_pending
                .is_some_and(|t| now.duration_since(t).unwrap_or_default() >= self.timeout);
        ProxyStatus {
            healthy: !late,
            node_eligible: s.node_eligible,
            last_updated: s.last_updated,
            current_time: now,
        }
    }

    /// The `/healthz` answer at time `now`: 200 when healthy and the node
    /// is eligible, else 503; `lastUpdated` is the current time when
    /// healthy (kube-proxy keeps that for compatibility).
    pub fn healthz_at(&self, now: SystemTime) -> Answer {
        let st = self.status_at(now);
        let ok = st.healthy && st.node_eligible;
        let last = if ok { Some(now) } else { st.last_updated };
        let body = format!(
            "{{\"lastUpdated\": \"{}\",\"currentTime\": \"{}\", \"nodeEligible\": {}}}",
            go_time(last),
            go_time(Some(now)),
            st.node_eligible
        );
        (if ok { 200 } else { 503 }, json_headers(), body)
    }

    /// The `/livez` answer at time `now`: as `/healthz` without the node's
    /// eligibility.
    pub fn livez_at(&self, now: SystemTime) -> Answer {
        let st = self.status_at(now);
        let last = if st.healthy {
            Some(now)
        } else {
            st.last_updated
        };
        let body = format!(
            "{{\"lastUpdated\": \"{}\",\"currentTime\": \"{}\"}}",
            go_time(last),
            go_time(Some(now))
        );
        (if st.healthy { 200 } else { 503 }, json_headers(), body)
    }
}

/// The headers every kube-proxy health answer has.
pub(crate) fn json_headers() -> Vec<(String, String)> {
    vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-Content-Type-Options".to_string(), "nosniff".to_string()),
    ]
}

/// The Service health body exactly as kube-proxy writes it: tab-indented,
/// no final newline.
pub(crate) fn service_body(namespace: &str, name: &str, endpoints: usize, healthy: bool) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\"localEndpoints\": {endpoints},\n\t\"serviceProxyHealthy\": {healthy}\n}}",
        q(namespace),
        q(name)
    )
}

/// A time as Go prints a UTC `time.Time`: `2006-01-02 15:04:05.5 +0000
/// UTC` (fraction without trailing zeros, none when whole); `None` is Go's
/// zero time, `0001-01-01 00:00:00 +0000 UTC`.
pub(crate) fn go_time(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "0001-01-01 00:00:00 +0000 UTC".to_string();
    };
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let nanos = d.subsec_nanos();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Year, month, day of the `days`-th day after 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
