//! Consistent hashing: [`Maglev`] (the one the data plane uses) and, for
//! comparison, [`Ring`] (Ketama), [`Jump`] and [`Rendezvous`], all behind
//! [`ConsistentHash`], with [`balance`] and [`disruption`] statistics.
//!
//! Every hash here is a pure function of the backends' *keys* (sorted
//! first), so two nodes — or this crate and Envoy — that see the same
//! backends build the same table, whatever order they listed them in.

mod jump;
mod maglev;
mod primes;
mod rendezvous;
mod ring;
mod stats;

pub use jump::Jump;
#[doc(hidden)]
pub use maglev::naive_fill as naive_maglev_fill;
pub use maglev::{Maglev, Permutation};
pub use primes::{is_prime, next_prime};
pub use rendezvous::Rendezvous;
pub use ring::Ring;
pub use stats::{Balance, Disruption, balance, disruption};

use crate::error::{Error, Result};

/// One backend of a consistent hash: a stable key (Envoy hashes the
/// address string, `198.18.0.2:8080`, or `[fd00:18::2]:8080`) and a weight.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Backend {
    /// The stable key the permutation is derived from.
    pub key: String,
    /// The relative weight (at least 1).
    pub weight: u32,
}

impl Backend {
    /// A backend of weight 1.
    pub fn new(key: impl Into<String>) -> Self {
        Self::weighted(key, 1)
    }

    /// A backend with a weight.
    pub fn weighted(key: impl Into<String>, weight: u32) -> Self {
        Self {
            key: key.into(),
            weight,
        }
    }
}

/// A consistent hash: maps a key's 64-bit hash to one of its backends.
pub trait ConsistentHash {
    /// A short name (`maglev`, `ring`, `jump`, `rendezvous`).
    fn name(&self) -> &'static str;
    /// The backends, sorted by key; [`ConsistentHash::pick`] indexes this.
    fn backends(&self) -> &[Backend];
    /// The backend (index into [`ConsistentHash::backends`]) for a key hash.
    fn pick(&self, key_hash: u64) -> usize;
}

/// xxHash64, as Envoy's `HashUtil::xxHash64(key, seed)`.
pub fn xxhash64(data: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(data, seed)
}

/// Sorts backends by key and checks them: at least one, keys unique and
/// non-empty, weights at least 1. `what` names the table in errors.
pub(crate) fn sorted_backends(
    what: &str,
    backends: impl IntoIterator<Item = Backend>,
) -> Result<Vec<Backend>> {
    let mut v: Vec<Backend> = backends.into_iter().collect();
    if v.is_empty() {
        return Err(Error::table(what, "needs at least one backend"));
    }
    v.sort();
    for (i, b) in v.iter().enumerate() {
        if b.key.is_empty() {
            return Err(Error::table(what, "a backend key is empty"));
        }
        if b.weight == 0 {
            return Err(Error::table(
                what,
                format!("backend {:?} has weight 0 (weights start at 1)", b.key),
            ));
        }
        if i > 0 && v[i - 1].key == b.key {
            return Err(Error::table(
                what,
                format!("backend {:?} is listed twice", b.key),
            ));
        }
    }
    Ok(v)
}
