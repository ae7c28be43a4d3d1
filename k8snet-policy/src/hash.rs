//! A small multiplicative hasher (the rustc "Fx" scheme) for the per-flow
//! lookups. IP addresses and small integers hash in a few cycles with it,
//! where SipHash costs tens of nanoseconds — a large share of a verdict.
//! Keys come from the cluster snapshot, never from traffic, so flooding
//! attacks on the hash do not apply: lookups of unknown keys insert nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The hasher state.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    /// The multiply only moves entropy upwards: addresses that differ in
    /// their last octets (198.18.x.y) would share their low hash bits,
    /// which hashbrown uses to pick buckets. A final fold (murmur3's
    /// fmix64 step) spreads them back down.
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

/// A `HashMap` with the Fx hasher.
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, BuildHasherDefault};
    use std::net::{IpAddr, Ipv4Addr};

    use super::FxHasher;

    #[test]
    fn addresses_of_one_subnet_spread_over_buckets() {
        let build = BuildHasherDefault::<FxHasher>::default();
        let low_bits: HashSet<u64> = (0..1024u32)
            .map(|i| {
                let ip = IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i));
                build.hash_one(ip) & 0x3ff
            })
            .collect();
        // 1024 addresses over 1024 buckets: a good hash fills most of them.
        assert!(low_bits.len() > 550, "{} distinct buckets", low_bits.len());
    }
}
