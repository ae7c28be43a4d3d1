//! Rendezvous (highest random weight) hashing.

use super::{Backend, ConsistentHash, sorted_backends, xxhash64};
use crate::error::Result;

/// Rendezvous hashing: each key goes to the backend with the highest score
/// `−w / ln(u)`, `u` uniform from `hash(key, backend)` (the weighted form,
/// Schindelhauer & Schomaker). Minimal disruption, O(N) per lookup.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    backends: Vec<Backend>,
    seeds: Vec<u64>,
}

impl Rendezvous {
    /// A rendezvous hash over `backends`.
    ///
    /// # Errors
    /// [`crate::Error::Table`] for bad backends.
    pub fn new(backends: impl IntoIterator<Item = Backend>) -> Result<Self> {
        let backends = sorted_backends("rendezvous hash", backends)?;
        let seeds = backends
            .iter()
            .map(|b| xxhash64(b.key.as_bytes(), 0))
            .collect();
        Ok(Self { backends, seeds })
    }
}

impl ConsistentHash for Rendezvous {
    fn name(&self) -> &'static str {
        "rendezvous"
    }
    fn backends(&self) -> &[Backend] {
        &self.backends
    }
    fn pick(&self, key_hash: u64) -> usize {
        let mut best = (f64::NEG_INFINITY, 0);
        for (i, (b, seed)) in self.backends.iter().zip(&self.seeds).enumerate() {
            let h = xxhash64(&key_hash.to_le_bytes(), *seed);
            // u in (0, 1): the top 53 bits, shifted off zero.
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = -f64::from(b.weight) / u.ln();
            if score > best.0 {
                best = (score, i);
            }
        }
        best.1
    }
}
