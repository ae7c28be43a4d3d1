//! Which upstream server to ask first.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
struct Health {
    fails: u32,
    down_until: Option<Instant>,
}

/// The upstream servers and their health, as CoreDNS `forward` keeps it:
/// queries go to healthy servers in turn (spreading load); a server that
/// failed `max_fails` times in a row is down for a back-off that doubles
/// with each further failure (from 1 s, at most 30 s), and comes back at
/// its first success. When every server is down, all are tried anyway.
///
/// ```
/// use std::time::{Duration, Instant};
/// use k8snet_dns::forward::Upstreams;
/// let a = "127.0.0.1:5301".parse().unwrap();
/// let b = "127.0.0.1:5302".parse().unwrap();
/// let ups = Upstreams::new(vec![a, b], 2);
/// let now = Instant::now();
/// ups.report(a, false, now);
/// ups.report(a, false, now);
/// assert_eq!(ups.order(now), vec![b, a]); // a is down: tried last
/// ups.report(a, true, now);
/// assert_eq!(ups.order(now).len(), 2);
/// ```
#[derive(Debug)]
pub struct Upstreams {
    servers: Vec<SocketAddr>,
    health: Mutex<Vec<Health>>,
    next: AtomicUsize,
    max_fails: u32,
}

impl Upstreams {
    /// Servers in preference order; `max_fails` consecutive failures mark
    /// one down (CoreDNS's default is 2; 0 never marks down).
    pub fn new(servers: Vec<SocketAddr>, max_fails: u32) -> Self {
        let n = servers.len();
        Self {
            servers,
            health: Mutex::new(vec![Health::default(); n]),
            next: AtomicUsize::new(0),
            max_fails,
        }
    }

    /// The servers.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// The order to try the servers in for one query: healthy servers
    /// first, starting from the next in turn, then the servers that are
    /// down.
    pub fn order(&self, now: Instant) -> Vec<SocketAddr> {
        let n = self.servers.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut up, mut down) = (Vec::with_capacity(n), Vec::new());
        for i in 0..n {
            let j = (start + i) % n;
            match health[j].down_until {
                Some(t) if t > now => down.push(self.servers[j]),
                _ => up.push(self.servers[j]),
            }
        }
        up.extend(down);
        up
    }

    /// Records the outcome of an exchange with `server`.
    pub fn report(&self, server: SocketAddr, ok: bool, now: Instant) {
        let Some(i) = self.servers.iter().position(|s| *s == server) else {
            return;
        };
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let h = &mut health[i];
        if ok {
            *h = Health::default();
            return;
        }
        h.fails = h.fails.saturating_add(1);
        if self.max_fails > 0 && h.fails >= self.max_fails {
            let extra = (h.fails - self.max_fails).min(5);
            let backoff = Duration::from_secs(1 << extra).min(Duration::from_secs(30));
            h.down_until = Some(now + backoff);
        }
    }

    /// Whether `server` is currently marked down.
    pub fn is_down(&self, server: SocketAddr, now: Instant) -> bool {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        self.servers
            .iter()
            .position(|s| *s == server)
            .is_some_and(|i| health[i].down_until.is_some_and(|t| t > now))
    }
}
