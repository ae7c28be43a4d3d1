//! A hash map split into shards behind `Arc`s: cloning it costs one
//! pointer per shard, and changing one key copies only that key's shard.
//! This is what makes a router update after one Ingress change cost
//! O(that Ingress), not O(all Ingresses).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::FxHashMap;

const SHARDS: usize = 64;

#[derive(Debug)]
pub(crate) struct Sharded<K, V> {
    shards: Vec<Arc<FxHashMap<K, V>>>,
}

impl<K, V> Clone for Sharded<K, V> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
        }
    }
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Arc::new(FxHashMap::default()))
                .collect(),
        }
    }
}

/// The shard of a key, from a cheap sample of its bytes (the first and
/// last eight of each field, and the lengths) rather than a full hash: the
/// inner table hashes the key anyway, and host lookups are on the request
/// path. Mixed so that the index does not reuse the bits the inner table
/// takes for buckets and tags.
#[inline]
fn shard_of<Q: Hash + ?Sized>(key: &Q) -> usize {
    let mut h = Sample::default();
    key.hash(&mut h);
    (h.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize % SHARDS
}

#[derive(Default)]
struct Sample(u64);

impl Hasher for Sample {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(w)
        };
        let n = bytes.len();
        let head = word(&bytes[..n.min(8)]);
        let tail = word(&bytes[n.saturating_sub(8)..]);
        self.0 = (self.0.rotate_left(23) ^ head ^ tail.rotate_left(32) ^ n as u64)
            .wrapping_mul(0xff51_afd7_ed55_8ccd);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Sharded<K, V> {
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[shard_of(key)].get(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        let s = shard_of(&key);
        Arc::make_mut(&mut self.shards[s]).insert(key, value);
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let s = shard_of(key);
        // Only copy the shard when the key is there.
        if !self.shards[s].contains_key(key) {
            return None;
        }
        Arc::make_mut(&mut self.shards[s]).remove(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }

    /// The value of a key, inserted with `default` when absent; copies the
    /// key's shard if it is shared.
    pub(crate) fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let s = shard_of(&key);
        Arc::make_mut(&mut self.shards[s]).entry(key).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_untouched_shards() {
        let mut a: Sharded<String, u32> = Sharded::default();
        for i in 0..1000 {
            a.insert(format!("k{i}"), i);
        }
        let mut b = a.clone();
        b.insert("k7".into(), 70);
        assert_eq!(a.get("k7"), Some(&7));
        assert_eq!(b.get("k7"), Some(&70));
        let shared = a
            .shards
            .iter()
            .zip(&b.shards)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert_eq!(shared, SHARDS - 1);
        assert_eq!(b.remove("k7"), Some(70));
        assert_eq!(b.remove("nope"), None);
        assert_eq!((a.len(), b.len()), (1000, 999));
    }
}
