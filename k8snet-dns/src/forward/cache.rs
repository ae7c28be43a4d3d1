//! The answer cache of the forwarder.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::message::{ReplyOpt, patch_reply, query_key, strip_opt, summarize};

/// Cache limits (CoreDNS `cache` defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Entries kept, positive and negative together.
    pub capacity: usize,
    /// Longest a positive answer is kept.
    pub success_max_ttl: Duration,
    /// Longest a negative answer (NXDOMAIN, NODATA) is kept.
    pub denial_max_ttl: Duration,
    /// Shortest any answer is kept.
    pub min_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity: 9984 * 2,
            success_max_ttl: Duration::from_secs(3600),
            denial_max_ttl: Duration::from_secs(1800),
            min_ttl: Duration::from_secs(5),
        }
    }
}

#[derive(Debug)]
struct Entry {
    reply: Box<[u8]>,
    ttl_offsets: Box<[u16]>,
    stored: Instant,
    lifetime: Duration,
    negative: bool,
}

const SHARDS: usize = 16;

/// Cached replies of upstream servers.
///
/// ```
/// use std::time::{Duration, Instant};
/// use k8snet_dns::forward::{Cache, CacheConfig};
/// let cache = Cache::new(CacheConfig::default());
/// // example.test. A, ID 7
/// let query = [0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
///     7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1];
/// let mut reply = query.to_vec();
/// reply[2] = 0x81; reply[3] = 0x80; reply[7] = 1; // QR RD RA, one answer
/// reply.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
/// let t0 = Instant::now();
/// cache.insert(&query, &reply, t0);
/// let mut out = [0u8; 512];
/// let len = cache.lookup(&query, t0 + Duration::from_secs(10), &mut out).unwrap();
/// assert_eq!(&out[len - 10..len - 6], &50u32.to_be_bytes()); // TTL counted down
/// assert!(cache.lookup(&query, t0 + Duration::from_secs(61), &mut out).is_none());
/// ```
#[derive(Debug)]
pub struct Cache {
    config: CacheConfig,
    udp_payload: u16,
    shards: Vec<Mutex<HashMap<Box<[u8]>, Entry>>>,
}

fn shard_of(key: &[u8]) -> usize {
    (crate::name::hash(key) >> 60) as usize % SHARDS
}

impl Cache {
    /// An empty cache; its hits to queries with EDNS advertise the
    /// default payload size, [`DEFAULT_UDP_PAYLOAD`](crate::DEFAULT_UDP_PAYLOAD).
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            udp_payload: crate::DEFAULT_UDP_PAYLOAD,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// The same cache advertising `payload` (at least 512) in the OPT
    /// record of its hits to queries with EDNS.
    pub fn with_udp_payload(mut self, payload: u16) -> Self {
        self.udp_payload = payload.max(512);
        self
    }

    /// Entries held (expired ones included until they are looked up or
    /// evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the cached reply to `query` into `out`, with the query's ID
    /// and case and TTLs reduced by the entry's age, AD only if the query
    /// set AD or DO (RFC 6840 §5.8), and an OPT record (our payload size,
    /// the query's DO bit) exactly when the query had one (RFC 6891 §7);
    /// its length, or `None` on a miss (or an expired entry, which is
    /// dropped) or when it does not fit in `out`.
    pub fn lookup(&self, query: &[u8], now: Instant, out: &mut [u8]) -> Option<usize> {
        let k = query_key(query)?;
        let mut shard = self.shards[shard_of(k.bytes())]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let e = shard.get(k.bytes())?;
        let age = now.saturating_duration_since(e.stored);
        if age >= e.lifetime {
            shard.remove(k.bytes());
            return None;
        }
        let opt = ReplyOpt::for_query(k.edns, self.udp_payload, 0);
        let len = patch_reply(query, k.question_end, &e.reply, opt, out)?;
        let age = age.as_secs() as u32;
        for &off in e.ttl_offsets.iter() {
            let off = usize::from(off);
            if let Some(field) = out.get_mut(off..off + 4) {
                let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                field.copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
            }
        }
        Some(len)
    }

    /// Stores an upstream's `reply` to `query`, if it may be cached:
    /// NOERROR with answers (positive), NXDOMAIN or NODATA with an SOA
    /// (negative); never truncated replies or other errors (extended
    /// rcodes included). The upstream's OPT record is not kept: EDNS is
    /// per hop, and [`Cache::lookup`] adds ours.
    pub fn insert(&self, query: &[u8], reply: &[u8], now: Instant) {
        if let Some((reply, ext_rcode)) = strip_opt(reply) {
            self.insert_stripped(query, &reply, ext_rcode, now);
        }
    }

    /// [`Cache::insert`] of a reply whose OPT record was removed
    /// (`strip_opt`), which carried the extended rcode bits `ext_rcode`.
    pub(crate) fn insert_stripped(&self, query: &[u8], reply: &[u8], ext_rcode: u8, now: Instant) {
        let (Some(k), Some(s)) = (query_key(query), summarize(reply)) else {
            return;
        };
        if s.truncated || ext_rcode != 0 || reply.len() < k.question_end {
            return;
        }
        let c = &self.config;
        let (ttl, negative) = match s.rcode {
            0 if s.answers > 0 => (s.min_ttl.unwrap_or(0), false),
            0 | 3 => match s.negative_ttl {
                Some(t) => (t, true),
                None => return,
            },
            _ => return,
        };
        let max = if negative {
            c.denial_max_ttl
        } else {
            c.success_max_ttl
        };
        let lifetime = Duration::from_secs(u64::from(ttl)).clamp(c.min_ttl, max.max(c.min_ttl));
        let mut shard = self.shards[shard_of(k.bytes())]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let per_shard = (c.capacity / SHARDS).max(1);
        if shard.len() >= per_shard && !shard.contains_key(k.bytes()) {
            // Full: drop expired entries, else an arbitrary one (CoreDNS
            // evicts at random too).
            shard.retain(|_, e| now.saturating_duration_since(e.stored) < e.lifetime);
            if shard.len() >= per_shard
                && let Some(victim) = shard.keys().next().cloned()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(
            k.bytes().into(),
            Entry {
                reply: reply.into(),
                ttl_offsets: s.ttl_offsets.into(),
                stored: now,
                lifetime,
                negative,
            },
        );
    }

    /// How many cached entries are negative (for tests and metrics).
    pub fn negative_len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(PoisonError::into_inner);
                s.values().filter(|e| e.negative).count()
            })
            .sum()
    }
}
