//! Ring hash (Karger et al.; Ketama), as Envoy builds it.

use super::{Backend, ConsistentHash, sorted_backends, xxhash64};
use crate::error::{Error, Result};

/// A hash ring: each backend owns `vnodes × weight` points at
/// `xxHash64("{key}_{i}")`; a key hash goes to the first point at or after
/// it (wrapping). Minimal disruption; balance depends on the point count.
#[derive(Debug, Clone)]
pub struct Ring {
    backends: Vec<Backend>,
    /// (point, backend index), sorted by point.
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// Builds a ring with `vnodes` points per unit of weight.
    ///
    /// # Errors
    /// [`Error::Table`] for bad backends (see [`super::Maglev::new`]) or
    /// `vnodes == 0`, or more than 2^24 points in all.
    pub fn new(vnodes: u32, backends: impl IntoIterator<Item = Backend>) -> Result<Self> {
        let what = format!("ring hash with {vnodes} points per backend");
        let backends = sorted_backends(&what, backends)?;
        if vnodes == 0 {
            return Err(Error::table(&what, "needs at least one point per backend"));
        }
        let total: u64 = backends
            .iter()
            .map(|b| u64::from(b.weight) * u64::from(vnodes))
            .sum();
        if total > 1 << 24 {
            return Err(Error::table(&what, format!("{total} points is too many")));
        }
        let mut points = Vec::with_capacity(total as usize);
        for (i, b) in backends.iter().enumerate() {
            for v in 0..u64::from(b.weight) * u64::from(vnodes) {
                let h = xxhash64(format!("{}_{v}", b.key).as_bytes(), 0);
                points.push((h, i as u32));
            }
        }
        points.sort_unstable();
        Ok(Self { backends, points })
    }
}

impl ConsistentHash for Ring {
    fn name(&self) -> &'static str {
        "ring"
    }
    fn backends(&self) -> &[Backend] {
        &self.backends
    }
    fn pick(&self, key_hash: u64) -> usize {
        let i = self.points.partition_point(|(p, _)| *p < key_hash);
        let (_, b) = self.points[if i == self.points.len() { 0 } else { i }];
        b as usize
    }
}
