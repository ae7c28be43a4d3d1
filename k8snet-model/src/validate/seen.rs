//! Duplicate detection that allocates nothing for short lists.

use std::collections::BTreeMap;

/// How many distinct keys are kept inline. Lists checked for duplicates
/// (ports, containers, pod IPs, hint names) are almost always this short.
const INLINE: usize = 8;

/// Remembers where each key was first seen, so a repeat can name it.
///
/// The first [`INLINE`] distinct keys live in an array (a linear scan over a
/// few entries beats a map, and needs no allocation); later ones spill into
/// a map, so a long list stays `O(n log n)`.
pub(crate) struct FirstSeen<K, V> {
    inline: [Option<(K, V)>; INLINE],
    inline_len: usize,
    spilled: BTreeMap<K, V>,
}

impl<K: Ord + Copy, V: Copy> FirstSeen<K, V> {
    /// An empty record.
    pub(crate) fn new() -> Self {
        Self {
            inline: [None; INLINE],
            inline_len: 0,
            spilled: BTreeMap::new(),
        }
    }

    /// Where `key` was first seen when it is a repeat; otherwise records
    /// `here` as its first place and returns `None`.
    pub(crate) fn repeat_of(&mut self, key: K, here: V) -> Option<V> {
        if let Some(&(_, first)) = self.inline.iter().flatten().find(|(k, _)| *k == key) {
            return Some(first);
        }
        if let Some(&first) = self.spilled.get(&key) {
            return Some(first);
        }
        match self.inline.get_mut(self.inline_len) {
            Some(slot) => {
                *slot = Some((key, here));
                self.inline_len += 1;
            }
            None => {
                self.spilled.insert(key, here);
            }
        }
        None
    }

    /// How many distinct keys were seen.
    pub(crate) fn len(&self) -> usize {
        self.inline_len + self.spilled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_place_of_a_repeat() {
        let mut seen = FirstSeen::new();
        let keys: Vec<String> = (0..20).map(|i| format!("k{}", i % 12)).collect();
        let firsts: Vec<Option<usize>> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| seen.repeat_of(k.as_str(), i))
            .collect();
        for (i, first) in firsts.iter().enumerate() {
            assert_eq!(*first, i.checked_sub(12), "key {i}");
        }
        assert_eq!(seen.len(), 12);
    }
}
