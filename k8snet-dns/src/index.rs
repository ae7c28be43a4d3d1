//! Per-namespace side tables of a [`Zone`](crate::Zone): which Services
//! the zone holds names for, and (with `pods verified`) which pod IPs each
//! namespace has.
//!
//! A table is split into buckets by the namespace's hash, each bucket
//! behind its own `Arc`, so an update copies the bucket list (reference
//! counts) and the one bucket it changes; every other bucket stays shared
//! with the previous snapshot, as the zone's shards do.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::name;

type Bucket<T> = BTreeMap<Box<str>, T>;

/// A map from namespace name to `T`, shared copy-on-write between zone
/// snapshots.
#[derive(Debug, Clone)]
pub(crate) struct NsTable<T> {
    buckets: Arc<Vec<Arc<Bucket<T>>>>,
    shift: u32,
}

impl<T: Clone> NsTable<T> {
    /// An empty table of `1 << bits` buckets (`bits` in 1..=16).
    pub(crate) fn new(bits: u32) -> Self {
        let bits = bits.clamp(1, 16);
        let empty = Arc::new(Bucket::new());
        Self {
            buckets: Arc::new(vec![empty; 1 << bits]),
            shift: 64 - bits,
        }
    }

    fn bucket_of(&self, key: &[u8]) -> usize {
        (name::hash(key) >> self.shift) as usize
    }

    /// The entry of namespace `ns` (a lowercase name).
    pub(crate) fn get(&self, ns: &str) -> Option<&T> {
        self.buckets.get(self.bucket_of(ns.as_bytes()))?.get(ns)
    }

    /// The entry of a namespace spelled as a query label, in any case.
    /// Never allocates.
    pub(crate) fn get_label(&self, label: &[u8]) -> Option<&T> {
        let mut buf = [0u8; name::MAX_LABEL];
        let lower = buf.get_mut(..label.len())?;
        for (d, s) in lower.iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        self.get(std::str::from_utf8(lower).ok()?)
    }

    /// Replaces (`Some`) or removes (`None`) the entry of `ns`; only the
    /// bucket holding it is copied.
    pub(crate) fn set(&mut self, ns: &str, value: Option<T>) {
        let i = self.bucket_of(ns.as_bytes());
        let unchanged = match &value {
            None => self.buckets.get(i).is_some_and(|b| !b.contains_key(ns)),
            Some(_) => false,
        };
        if unchanged {
            return;
        }
        let buckets = Arc::make_mut(&mut self.buckets);
        let Some(bucket) = buckets.get_mut(i) else {
            return;
        };
        let bucket = Arc::make_mut(bucket);
        match value {
            Some(v) => {
                bucket.insert(ns.into(), v);
            }
            None => {
                bucket.remove(ns);
            }
        }
    }

    /// Applies `f` to the entry of `ns` (created from `T::default()` when
    /// missing); an entry `f` leaves empty (per `is_empty`) is removed.
    pub(crate) fn modify(&mut self, ns: &str, is_empty: impl Fn(&T) -> bool, f: impl FnOnce(&mut T))
    where
        T: Default,
    {
        let mut v = self.get(ns).cloned().unwrap_or_default();
        f(&mut v);
        self.set(ns, (!is_empty(&v)).then_some(v));
    }

    /// Every entry, bucket by bucket.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &T)> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.iter().map(|(k, v)| (&**k, v)))
    }

    /// Whether bucket `i` of both tables is the same allocation.
    #[cfg(test)]
    pub(crate) fn shares_bucket_with(&self, other: &Self, i: usize) -> bool {
        match (self.buckets.get(i), other.buckets.get(i)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The number of buckets.
    #[cfg(test)]
    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_copies_only_the_changed_bucket() {
        let mut a: NsTable<u32> = NsTable::new(4);
        for (i, ns) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            a.set(ns, Some(i as u32));
        }
        let mut b = a.clone();
        b.set("c", Some(30));
        assert_eq!(a.get("c"), Some(&2));
        assert_eq!(b.get("c"), Some(&30));
        let changed = (0..a.bucket_count())
            .filter(|&i| !a.shares_bucket_with(&b, i))
            .count();
        assert_eq!(changed, 1);
        b.set("c", None);
        assert_eq!(b.get("c"), None);
        assert_eq!(b.iter().count(), 4);
        // Removing what is absent copies nothing.
        let c = b.clone();
        b.set("zz", None);
        assert!((0..b.bucket_count()).all(|i| b.shares_bucket_with(&c, i)));
    }

    #[test]
    fn labels_match_in_any_case_without_allocating() {
        let mut t: NsTable<u32> = NsTable::new(3);
        t.set("kube-system", Some(1));
        assert_eq!(t.get_label(b"Kube-SYSTEM"), Some(&1));
        assert_eq!(t.get_label(b"kube-system2"), None);
        assert_eq!(t.get_label(&[0xff; 10]), None);
        assert_eq!(t.get_label(&[b'a'; 64]), None);
        t.modify("x", |v| *v == 0, |v| *v += 2);
        assert_eq!(t.get("x"), Some(&2));
        t.modify("x", |v| *v == 0, |v| *v = 0);
        assert_eq!(t.get("x"), None);
    }
}
