//! Maglev hashing (Eisenbud et al., NSDI 2016, §3.4), Envoy-compatible.

use super::{Backend, ConsistentHash, is_prime, sorted_backends, xxhash64};
use crate::error::{Error, Result};

/// One backend's permutation: it visits slots `offset, offset + skip,
/// offset + 2·skip, …` modulo the table size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permutation {
    /// The first slot, `< size`.
    pub offset: u32,
    /// The stride, `1..size`.
    pub skip: u32,
}

impl Permutation {
    /// Envoy's permutation of a key: `offset = xxHash64(key, 0) mod M`,
    /// `skip = xxHash64(key, 1) mod (M − 1) + 1`.
    pub fn of_key(key: &str, size: u32) -> Self {
        let m = u64::from(size);
        // Both results are < size, so they fit in u32.
        let offset = (xxhash64(key.as_bytes(), 0) % m) as u32;
        let skip = (xxhash64(key.as_bytes(), 1) % (m - 1) + 1) as u32;
        Self { offset, skip }
    }
}

/// A Maglev lookup table: `size` (prime) slots, each naming a backend.
///
/// Built with the paper's Pseudocode 1: in rounds, each backend in key
/// order claims the next free slot along its permutation, until the table
/// is full. Weights follow Envoy: a backend of weight `w` takes a turn in
/// round `r` only while `r·w ≥ turns·w_max`, so its share of the slots
/// follows its weight (1:2 at 65,537 slots gives 21,846 : 43,691). The fill
/// steps through permutations by addition (no division per probe).
///
/// ```
/// use k8snet_lb::hash::{Backend, ConsistentHash, Maglev};
/// let keys = ["198.18.0.2:8080", "198.18.0.3:8080", "198.18.0.4:8080"];
/// let t = Maglev::new(65_537, keys.map(Backend::new))?;
/// let counts = t.counts();
/// assert!(counts.iter().all(|&c| c == 21_845 || c == 21_846));
/// let b = &t.backends()[t.pick(0xdead_beef)];
/// assert!(keys.contains(&b.key.as_str()));
/// # Ok::<(), k8snet_lb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maglev {
    backends: Vec<Backend>,
    /// Slot → index into `backends`.
    table: Vec<u32>,
    /// `⌈2^128 / M⌉`, for `hash mod M` without a division (Lemire, Kaser
    /// and Kurz, "Faster remainder by direct computation", 2019).
    inverse: u128,
}

impl Maglev {
    /// The paper's and Envoy's default table size.
    pub const DEFAULT_SIZE: u32 = 65_537;
    /// The largest size accepted (Envoy's limit).
    pub const MAX_SIZE: u32 = 5_000_011;

    /// Builds the table for `backends` (any order; sorted by key here).
    ///
    /// # Errors
    /// [`Error::Table`] if `size` is not prime, is larger than
    /// [`Maglev::MAX_SIZE`], or is smaller than the number of backends; if
    /// there are no backends, a key is empty or repeated, or a weight is 0.
    pub fn new(size: u32, backends: impl IntoIterator<Item = Backend>) -> Result<Self> {
        let what = format!("Maglev table of size {size}");
        check_size(&what, size)?;
        let backends = sorted_backends(&what, backends)?;
        let perms: Vec<Permutation> = backends
            .iter()
            .map(|b| Permutation::of_key(&b.key, size))
            .collect();
        Self::fill(&what, size, backends, &perms)
    }

    /// Builds a table from given permutations (the paper's worked example
    /// gives them directly): backend `i` is named `B{i+1}` and keeps the
    /// order given.
    ///
    /// # Errors
    /// As [`Maglev::new`]; also if an offset is `>= size` or a skip is not
    /// in `1..size`.
    pub fn with_permutations(size: u32, perms: &[(Permutation, u32)]) -> Result<Self> {
        let what = format!("Maglev table of size {size}");
        check_size(&what, size)?;
        if perms.is_empty() {
            return Err(Error::table(&what, "needs at least one backend"));
        }
        for (i, (p, w)) in perms.iter().enumerate() {
            if p.offset >= size || p.skip == 0 || p.skip >= size || *w == 0 {
                return Err(Error::table(
                    &what,
                    format!(
                        "backend B{}: offset must be < size, skip in 1..size, weight >= 1",
                        i + 1
                    ),
                ));
            }
        }
        let backends = (1..=perms.len())
            .zip(perms)
            .map(|(i, (_, w))| Backend::weighted(format!("B{i}"), *w))
            .collect();
        let p: Vec<Permutation> = perms.iter().map(|(p, _)| *p).collect();
        Self::fill(&what, size, backends, &p)
    }

    fn fill(what: &str, size: u32, backends: Vec<Backend>, perms: &[Permutation]) -> Result<Self> {
        if backends.len() > size as usize {
            return Err(Error::table(
                what,
                format!("{} backends do not fit in {size} slots", backends.len()),
            ));
        }
        let mut table = vec![0u32; size as usize];
        let mut taken = vec![0u64; (size as usize).div_ceil(64)];
        // Per backend: the slot its permutation points at now (the paper's
        // permutation[i][next[i]]) and its stride, side by side for the
        // probe loop.
        let mut walk: Vec<(u32, u32)> = perms.iter().map(|p| (p.offset, p.skip)).collect();
        let weights: Vec<u64> = backends.iter().map(|b| u64::from(b.weight)).collect();
        let max_w = weights.iter().copied().max().unwrap_or(1);
        let weighted = weights.iter().any(|w| *w != max_w);
        let mut turns = vec![0u64; backends.len()];
        let mut filled = 0u32;
        let mut round = 1u64;
        'fill: loop {
            for (i, (pos, skip)) in walk.iter_mut().enumerate() {
                // Integer form of Envoy's `round·w/Σw < target/Σw`: exact,
                // so weights hold without floating-point drift. Equal
                // weights take every turn: no check.
                if weighted {
                    if u128::from(round) * u128::from(weights[i]) < u128::from(turns[i] * max_w) {
                        continue;
                    }
                    turns[i] += 1;
                }
                // Probe a bitmap of taken slots (8 KiB at 65,537 slots: it
                // stays in L1, while the table itself would not).
                let mut c = *pos;
                while taken[(c >> 6) as usize] & (1 << (c & 63)) != 0 {
                    c = step(c, *skip, size);
                }
                taken[(c >> 6) as usize] |= 1 << (c & 63);
                table[c as usize] = i as u32;
                *pos = step(c, *skip, size);
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
            round += 1;
        }
        let inverse = (u128::MAX / u128::from(size)).wrapping_add(1);
        Ok(Self {
            backends,
            table,
            inverse,
        })
    }

    /// The number of slots (`M`).
    pub fn size(&self) -> u32 {
        self.table.len() as u32
    }

    /// Slot → backend index, the whole table.
    pub fn slots(&self) -> &[u32] {
        &self.table
    }

    /// The backend (index into [`ConsistentHash::backends`]) of slot `s`
    /// (taken modulo the size).
    pub fn slot(&self, s: u64) -> usize {
        self.table[(s % self.table.len() as u64) as usize] as usize
    }

    /// Envoy's lookup: `table[hash mod M]`, one array read. The remainder
    /// is computed by multiplication (exact for every 64-bit hash, as the
    /// divisor has at most 23 bits): a 64-bit division costs about 5 ns
    /// here, twice the whole lookup.
    #[inline]
    pub fn lookup(&self, hash: u64) -> usize {
        self.table[fastmod(hash, self.inverse, self.table.len() as u64)] as usize
    }

    /// The kernel's lookup for `jhash … mod M`: slot `(h·M) >> 32`
    /// (`reciprocal_scale`), one multiply and one array read.
    #[inline]
    pub fn lookup_scaled(&self, h: u32) -> usize {
        let s = (u64::from(h) * self.table.len() as u64) >> 32;
        self.table[s as usize] as usize
    }

    /// Slots per backend, in backend order.
    pub fn counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.backends.len()];
        for &b in &self.table {
            c[b as usize] += 1;
        }
        c
    }

    /// The share of slots whose backend (by key) differs in `other`; both
    /// tables must have the same size (else 1.0: everything may move).
    pub fn slots_moved(&self, other: &Self) -> f64 {
        if self.table.len() != other.table.len() {
            return 1.0;
        }
        let moved = self
            .table
            .iter()
            .zip(&other.table)
            .filter(|(a, b)| self.backends[**a as usize].key != other.backends[**b as usize].key)
            .count();
        moved as f64 / self.table.len() as f64
    }
}

/// `a mod d` from `inverse = ⌈2^128 / d⌉`: the high 128 bits of
/// `(inverse·a mod 2^128)·d`.
#[inline]
fn fastmod(a: u64, inverse: u128, d: u64) -> usize {
    let low = inverse.wrapping_mul(u128::from(a));
    let (hi, lo) = (low >> 64, low & u128::from(u64::MAX));
    let r = (hi * u128::from(d) + ((lo * u128::from(d)) >> 64)) >> 64;
    r as usize
}

/// `(c + skip) mod size` for `c < size`, `skip < size`, without dividing.
#[inline]
fn step(c: u32, skip: u32, size: u32) -> u32 {
    // Sizes are at most MAX_SIZE (5,000,011), so the sum cannot overflow.
    let n = c + skip;
    if n >= size { n - size } else { n }
}

fn check_size(what: &str, size: u32) -> Result<()> {
    if !is_prime(u64::from(size)) {
        return Err(Error::table(what, format!("size {size} is not prime")));
    }
    if size > Maglev::MAX_SIZE {
        return Err(Error::table(
            what,
            format!("size {size} is larger than {}", Maglev::MAX_SIZE),
        ));
    }
    Ok(())
}

impl ConsistentHash for Maglev {
    fn name(&self) -> &'static str {
        "maglev"
    }
    fn backends(&self) -> &[Backend] {
        &self.backends
    }
    fn pick(&self, key_hash: u64) -> usize {
        self.lookup(key_hash)
    }
}

/// The textbook fill with `%` per probe, kept for the benchmark's ratio.
#[doc(hidden)]
pub fn naive_fill(size: u32, perms: &[Permutation]) -> Vec<u32> {
    let m = u64::from(size);
    let mut table = vec![u32::MAX; size as usize];
    let mut next = vec![0u64; perms.len()];
    let mut filled = 0;
    loop {
        for (i, p) in perms.iter().enumerate() {
            let mut c = (u64::from(p.offset) + next[i] * u64::from(p.skip)) % m;
            while table[c as usize] != u32::MAX {
                next[i] += 1;
                c = (u64::from(p.offset) + next[i] * u64::from(p.skip)) % m;
            }
            table[c as usize] = i as u32;
            next[i] += 1;
            filled += 1;
            if filled == size {
                return table;
            }
        }
    }
}

#[cfg(test)]
#[path = "maglev_tests.rs"]
mod tests;
