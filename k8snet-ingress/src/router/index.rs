//! The router's host index: every exact and wildcard host table in one
//! open-addressing array of one-cache-line slots holding the host's hash
//! and (up to 46 bytes) its name, so finding a request's host reads one
//! line of one contiguous array, whatever the number of hosts.

use std::sync::Arc;

use crate::host::HostKey;
use crate::table::HostTable;

use super::hash;

/// Whether a probe is for the request's host or for the wildcard of its
/// parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Exact,
    Wildcard,
}

impl Side {
    fn seed(self) -> u64 {
        match self {
            Self::Exact => hash::SEED_EXACT_HOST,
            Self::Wildcard => hash::SEED_WILDCARD_HOST,
        }
    }

    /// The hash of a request host (or parent) on this side, folding case;
    /// `None` when it is not ASCII (so it cannot equal a rule host).
    #[inline]
    pub(super) fn hash(self, host: &str) -> Option<u64> {
        hash::folded(self.seed(), host)
    }
}

/// Host names up to this long sit in their slot, so that finding a host
/// reads one cache line of the index, not also the table's key.
const INLINE: usize = 46;

/// One slot, one cache line: the full hash of its host key, the table,
/// and the name itself when it is short enough.
#[derive(Debug, Clone)]
#[repr(align(64))]
struct Slot {
    hash: u64,
    table: Option<Arc<HostTable>>,
    wildcard: bool,
    /// The name's length when it is inline, else `u8::MAX`.
    len: u8,
    name: [u8; INLINE],
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            hash: 0,
            table: None,
            wildcard: false,
            len: u8::MAX,
            name: [0; INLINE],
        }
    }
}

/// Exact and wildcard host tables by name.
#[derive(Debug, Default)]
pub(super) struct HostIndex {
    /// A power of two long (or empty), at most two thirds full.
    slots: Box<[Slot]>,
}

impl HostIndex {
    /// The index of these tables (each key once, as the router's maps
    /// hold them).
    pub(super) fn build<'a>(tables: impl Iterator<Item = &'a Arc<HostTable>>) -> Self {
        let tables: Vec<(u64, bool, &str, &Arc<HostTable>)> = tables
            .filter_map(|t| {
                let (side, name) = match &t.key {
                    HostKey::Exact(n) => (Side::Exact, n),
                    HostKey::Wildcard(n) => (Side::Wildcard, n),
                    HostKey::Any => return None,
                };
                let h = side.hash(name)?;
                Some((h, side == Side::Wildcard, &**name, t))
            })
            .collect();
        if tables.is_empty() {
            return Self::default();
        }
        // At most two thirds full, and never full: a probe for a missing
        // name stops at an empty slot.
        let len = (tables.len() + tables.len() / 2 + 1).next_power_of_two();
        let mut slots = vec![Slot::default(); len].into_boxed_slice();
        let mask = len - 1;
        for (h, wildcard, name, t) in tables {
            let mut i = h as usize & mask;
            while slots[i].table.is_some() {
                i = (i + 1) & mask;
            }
            let mut slot = Slot {
                hash: h,
                table: Some(t.clone()),
                wildcard,
                ..Slot::default()
            };
            if let Some(inline) = slot.name.get_mut(..name.len()) {
                inline.copy_from_slice(name.as_bytes());
                slot.len = name.len() as u8;
            }
            slots[i] = slot;
        }
        Self { slots }
    }

    /// The table of a request host (any case, no port or trailing dot),
    /// or of its parent's wildcard, given its [`Side::hash`].
    #[inline]
    pub(super) fn get(&self, side: Side, hash: u64, name: &str) -> Option<&HostTable> {
        let mask = self.slots.len().wrapping_sub(1);
        let wildcard = side == Side::Wildcard;
        let mut i = hash as usize & mask;
        loop {
            let s = self.slots.get(i)?;
            let t = s.table.as_deref()?;
            if s.hash == hash && s.wildcard == wildcard {
                let stored = match s.name.get(..usize::from(s.len)) {
                    Some(inline) => inline,
                    None => match &t.key {
                        HostKey::Exact(n) | HostKey::Wildcard(n) => n.as_bytes(),
                        HostKey::Any => &[],
                    },
                };
                if hash::eq_folded(stored, name.as_bytes()) {
                    return Some(t);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Whether no host has a table.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
