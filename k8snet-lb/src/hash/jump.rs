//! Jump consistent hash (Lamping & Veach, arXiv 1406.2294).

use super::{Backend, ConsistentHash, sorted_backends};
use crate::error::Result;

/// Jump hash over the backends in key order. No memory and O(ln n) time,
/// but buckets are positions: removing any backend but the last renumbers
/// the ones after it, so it suits only sequentially numbered shards (shown
/// by [`super::disruption`]). Weights are ignored.
#[derive(Debug, Clone)]
pub struct Jump {
    backends: Vec<Backend>,
}

impl Jump {
    /// A jump hash over `backends`.
    ///
    /// # Errors
    /// [`crate::Error::Table`] for bad backends.
    pub fn new(backends: impl IntoIterator<Item = Backend>) -> Result<Self> {
        Ok(Self {
            backends: sorted_backends("jump hash", backends)?,
        })
    }
}

/// The paper's `JumpConsistentHash(key, num_buckets)`.
pub(crate) fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as u32
}

impl ConsistentHash for Jump {
    fn name(&self) -> &'static str {
        "jump"
    }
    fn backends(&self) -> &[Backend] {
        &self.backends
    }
    fn pick(&self, key_hash: u64) -> usize {
        jump(key_hash, self.backends.len() as u32) as usize
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paper_property_keys_only_move_to_the_new_bucket() {
        for k in 0..2000u64 {
            let h = k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let a = super::jump(h, 10);
            let b = super::jump(h, 11);
            assert!(a == b || b == 10, "key {k}: {a} -> {b}");
            assert!(a < 10);
        }
    }
}
