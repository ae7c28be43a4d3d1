//! The router's lookup structure for exact and wildcard hosts, laid out so
//! that a lookup reads as few cache lines as possible whatever the number
//! of rules:
//!
//! - **Host slots**: one open-addressing array of one-line slots, with a
//!   dense array of one tag byte per slot that probing reads first. A
//!   slot holds the host's hash and name (inline up to 36 bytes) and what
//!   a lookup needs of the host's path table: where it sits, its size,
//!   the depths of its Prefix keys, and 64 bits that are either a 4-bit
//!   fingerprint per path slot (tables of up to 16 slots) or a filter of
//!   the keys (larger tables).
//! - **Path slots**: every host's path table (a power of two of
//!   half-line slots) packed into one array. A slot holds the key's hash
//!   bits and kind, the key itself (inline up to 18 bytes, else in one
//!   shared arena) and the route it leads to.
//!
//! A hit on a short key thus reads one host line and one path line; a
//! miss usually reads no path line, the fingerprints ruling every slot
//! out. The per-host parts ([`HostPaths`]) are built when a host's table
//! changes; [`HostIndex::build`] only packs them, in time proportional to
//! the hosts and keys.

use std::collections::hash_map::Entry as MapEntry;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::host::HostKey;
use crate::path::MatchKind;
use crate::route::Route;
use crate::table::{Entry, HostTable, spelled_wins};

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

/// Host names up to this long sit in their slot.
const NAME_INLINE: usize = 36;

/// Path keys up to this long sit in their slot.
const KEY_INLINE: usize = 18;

/// A path slot's `len` when its key is in the arena (offset and length in
/// the first eight bytes of `key`).
const LONG: u16 = u16::MAX;

// Host slot flags.
/// The slot holds a host.
const USED: u8 = 1;
/// The host is a wildcard's parent.
const WILDCARD: u8 = 1 << 1;
/// The host has Exact paths.
const HAS_EXACT: u8 = 1 << 2;
/// The host has a Prefix rule for `/` (a key without elements).
const HAS_ROOT: u8 = 1 << 3;
/// The host has a `defaultBackend`.
const HAS_DEFAULT: u8 = 1 << 4;
/// The host has regex paths or a Prefix rule of 255 elements or more:
/// its lookups go to its [`HostTable`].
const FALLBACK: u8 = 1 << 5;
/// The host's name is longer than [`NAME_INLINE`]: compared with its
/// table's key.
const LONG_NAME: u8 = 1 << 6;

// Path key kinds, in the low two bits of a path slot's tag.
const EXACT: u32 = 1;
const PREFIX: u32 = 2;
const DEFAULT: u32 = 3;

/// The hashes of the two keys without bytes: the Prefix rule `/` and the
/// host's `defaultBackend`.
const ROOT_HASH: u64 = 0x3c6e_f372_fe94_f82b;
const DEFAULT_HASH: u64 = 0xa54f_f53a_5f1d_36f1;

/// How many leading elements of a request a lookup remembers, so that it
/// can probe them longest first; hosts with deeper Prefix rules are probed
/// shortest first instead, up to their deepest rule (same answer, a few
/// more probes).
const DEPTHS: usize = 16;

/// What a path slot leads to: a copy of the host table's entry with the
/// host key, so that a hit yields the route without reading the table.
#[derive(Debug)]
struct Hit {
    entry: Entry,
    host: HostKey,
}

/// Path tables up to this many slots (`1 << SMALL_LOG2`) are found
/// through four-bit fingerprints in the host slot.
const SMALL_LOG2: u8 = 4;

/// One host, one cache line.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct HostSlot {
    hash: u64,
    /// For a path table of at most 16 slots, a four-bit fingerprint of
    /// each slot's key ([`fingerprint`]; 0 for an empty slot), so that a
    /// probe reads only the path slot it will most likely accept.
    /// Otherwise one bit per Exact and Prefix key ([`filter_bit`]): a
    /// probe whose bit is clear cannot find a key.
    filter: u64,
    /// Prefix key depths present ([`depth_bit`]).
    depths: u32,
    /// Where the host's path table starts in [`HostIndex::paths`].
    base: u32,
    /// The path table holds `1 << log2` slots.
    log2: u8,
    /// Elements of the deepest Prefix key (at most 254; a host with a
    /// deeper one uses its own table, [`FALLBACK`]).
    max_depth: u8,
    flags: u8,
    /// The name's length when it is inline.
    len: u8,
    name: [u8; NAME_INLINE],
}

const EMPTY_HOST: HostSlot = HostSlot {
    hash: 0,
    filter: 0,
    depths: 0,
    base: 0,
    log2: 0,
    max_depth: 0,
    flags: 0,
    len: 0,
    name: [0; NAME_INLINE],
};

/// One path key, half a cache line.
#[derive(Debug, Clone, Default)]
#[repr(C, align(32))]
struct PathSlot {
    /// `None`: an empty slot.
    hit: Option<Arc<Hit>>,
    /// The hash's high bits and the kind in the low two.
    tag: u32,
    /// The key's length when it is inline, else [`LONG`].
    len: u16,
    key: [u8; KEY_INLINE],
}

/// The tag of a key with this hash and kind.
#[inline]
fn tag_of(h: u64, kind: u32) -> u32 {
    ((h >> 32) as u32 & !3) | kind
}

/// A host's byte in [`HostIndex::tags`] (never 0), from hash bits the
/// slot index does not use.
#[inline]
fn host_tag(h: u64) -> u8 {
    (h >> 57) as u8 | 0x80
}

/// A key's bit in a host's filter (hash bits that neither the slot index
/// nor, mostly, the tag use).
#[inline]
fn filter_bit(h: u64) -> u64 {
    1 << ((h >> 26) & 63)
}

/// A key's four-bit fingerprint in a small path table (never 0, which
/// marks an empty slot), from hash bits that the slot index and the tag do
/// not use.
#[inline]
fn fingerprint(h: u64) -> u64 {
    match (h >> 28) & 0xf {
        0 => 1,
        f => f,
    }
}

/// One in every nibble.
const NIBBLES: u64 = 0x1111_1111_1111_1111;

/// The top bit of every nibble of `v` that is zero, and no other bit
/// (adding 7 to a nibble's low three bits carries into its top bit
/// unless they are all zero, and never into the next nibble).
#[inline]
fn zero_nibbles(v: u64) -> u64 {
    const LOW: u64 = 0x7777_7777_7777_7777;
    !(((v & LOW) + LOW) | v) & !LOW
}

/// A Prefix depth's bit; depths beyond 32 share every bit, so they are
/// always probed.
#[inline]
fn depth_bit(depth: usize) -> u32 {
    match depth {
        1..=32 => 1 << (depth - 1),
        _ => u32::MAX,
    }
}

/// The path table of one host, built when the host's table changes and
/// packed into a [`HostIndex`] on every rebuild.
#[derive(Debug)]
pub(super) struct HostPaths {
    table: Arc<HostTable>,
    /// `None` for a name that is not ASCII (no request can reach it).
    hash: Option<u64>,
    flags: u8,
    filter: u64,
    depths: u32,
    max_depth: u8,
    /// Bytes of the longest Prefix key.
    max_key: usize,
    log2: u8,
    /// Long keys' offsets point into `long`.
    slots: Vec<PathSlot>,
    long: Vec<u8>,
}

/// A key's kind and bytes.
type KindKey = (u32, Box<[u8]>);

/// A key while a host's paths are gathered.
struct Key {
    hash: u64,
    kind: u32,
    bytes: Box<[u8]>,
    /// The entry (of the host table) it leads to.
    entry: usize,
}

impl HostPaths {
    /// The paths of an exact or wildcard host's table, replaying its rules
    /// in their order with the choices its own path table made: the first
    /// of equal Exact paths, the highest-ranked of equal Prefix keys (the
    /// older on a tie), the first `defaultBackend`. A host with regex
    /// paths keeps using its table.
    pub(super) fn build(table: &Arc<HostTable>) -> Self {
        let (flags, side, name) = match &table.key {
            HostKey::Wildcard(n) => (USED | WILDCARD, Side::Wildcard, &**n),
            HostKey::Exact(n) => (USED, Side::Exact, &**n),
            HostKey::Any => (USED, Side::Exact, ""),
        };
        let mut p = Self {
            table: table.clone(),
            hash: side.hash(name),
            flags: if name.len() > NAME_INLINE {
                flags | LONG_NAME
            } else {
                flags
            },
            filter: 0,
            depths: 0,
            max_depth: 0,
            max_key: 0,
            log2: 0,
            slots: vec![PathSlot::default()],
            long: Vec::new(),
        };
        let mut keys: Vec<Key> = Vec::new();
        // (kind, bytes) → (index in `keys`, rank of a Prefix key).
        let mut seen: FxHashMap<KindKey, (usize, u32)> = FxHashMap::default();
        for (i, e) in table.entries.iter().enumerate() {
            let Some((_, kind)) = &e.path else {
                if p.flags & HAS_DEFAULT == 0 {
                    p.flags |= HAS_DEFAULT;
                    keys.push(Key {
                        hash: DEFAULT_HASH,
                        kind: DEFAULT,
                        bytes: Box::default(),
                        entry: i,
                    });
                }
                continue;
            };
            // Matched by its key, as the host table does.
            let path = &*e.key;
            let (kind, bytes, rank, h) = match kind {
                MatchKind::Regex => {
                    p.flags |= FALLBACK;
                    continue;
                }
                MatchKind::Exact => (
                    EXACT,
                    Box::<[u8]>::from(path.as_bytes()),
                    0,
                    hash::bytes(hash::SEED_EXACT_PATH, path.as_bytes()),
                ),
                MatchKind::Prefix | MatchKind::ImplementationSpecific => {
                    let trailing = path.len() > 1 && path.ends_with('/');
                    let rank = u32::from(trailing) << 1 | u32::from(*kind == MatchKind::Prefix);
                    let elements: Vec<&[u8]> = elements(path.as_bytes())
                        .filter_map(|(s, e)| path.as_bytes().get(s..e))
                        .collect();
                    if elements.is_empty() {
                        (PREFIX, Box::default(), rank, ROOT_HASH)
                    } else {
                        let h = elements
                            .iter()
                            .fold(hash::SEED_PREFIX_PATH, |h, e| hash::bytes(h, e));
                        (PREFIX, elements.join(&b'/').into(), rank, h)
                    }
                }
            };
            match seen.entry((kind, bytes.clone())) {
                MapEntry::Occupied(mut o) => {
                    // Exact: the first stays. Prefix: as the host table
                    // settles it, a strictly higher rank takes the key.
                    let (at, r) = *o.get();
                    if kind == PREFIX
                        && rank > r
                        && let Some(k) = keys.get_mut(at)
                    {
                        k.entry = i;
                        o.insert((at, rank));
                    }
                }
                MapEntry::Vacant(v) => {
                    v.insert((keys.len(), rank));
                    if kind == EXACT {
                        p.flags |= HAS_EXACT;
                    }
                    if h == ROOT_HASH && bytes.is_empty() {
                        p.flags |= HAS_ROOT;
                    } else {
                        p.filter |= filter_bit(h);
                    }
                    if kind == PREFIX && !bytes.is_empty() {
                        let depth = elements(path.as_bytes()).count();
                        // The deepest Prefix rule bounds how many of a
                        // request's elements a lookup hashes; one deeper
                        // than a byte can count sends the host to its own
                        // table, which keeps the exact depth (a saturated
                        // bound would hash every element of a long path).
                        let Some(depth8) = u8::try_from(depth).ok().filter(|&d| d < u8::MAX) else {
                            p.flags |= FALLBACK;
                            continue;
                        };
                        p.depths |= depth_bit(depth);
                        p.max_depth = p.max_depth.max(depth8);
                        p.max_key = p.max_key.max(bytes.len());
                    }
                    keys.push(Key {
                        hash: h,
                        kind,
                        bytes,
                        entry: i,
                    });
                }
            }
        }
        if p.flags & FALLBACK != 0 {
            return p;
        }
        // Never full: a probe for a missing key stops at an empty slot.
        // Up to 16 slots, fingerprints in the host slot let a probe skip
        // the slots it will not accept, so the table may be nearly full;
        // a larger one is at most two thirds full.
        let n = keys.len();
        let len = if n < 1 << SMALL_LOG2 {
            (n + 1).next_power_of_two()
        } else {
            (n + n / 2 + 1).next_power_of_two()
        };
        p.log2 = len.trailing_zeros() as u8;
        let small = p.log2 <= SMALL_LOG2;
        if small {
            p.filter = 0;
        }
        p.slots = vec![PathSlot::default(); len];
        let mask = len - 1;
        for k in keys {
            let Some(e) = table.entries.get(k.entry) else {
                continue;
            };
            let mut slot = PathSlot {
                hit: Some(Arc::new(Hit {
                    entry: Entry {
                        ingress: e.ingress.clone(),
                        path: e.path.clone(),
                        key: e.key.clone(),
                        backend: e.backend.clone(),
                    },
                    host: table.key.clone(),
                })),
                tag: tag_of(k.hash, k.kind),
                len: 0,
                key: [0; KEY_INLINE],
            };
            match slot.key.get_mut(..k.bytes.len()) {
                Some(inline) => {
                    inline.copy_from_slice(&k.bytes);
                    slot.len = k.bytes.len() as u16;
                }
                None => {
                    // Past 4 GiB of keys, a key cannot be located and
                    // matches nothing.
                    let off = u32::try_from(p.long.len()).unwrap_or(u32::MAX);
                    let n = u32::try_from(k.bytes.len()).unwrap_or(0);
                    slot.key[..4].copy_from_slice(&off.to_le_bytes());
                    slot.key[4..8].copy_from_slice(&n.to_le_bytes());
                    slot.len = LONG;
                    p.long.extend_from_slice(&k.bytes);
                }
            }
            let mut i = k.hash as usize & mask;
            while p.slots[i].hit.is_some() {
                i = (i + 1) & mask;
            }
            p.slots[i] = slot;
            if small {
                p.filter |= fingerprint(k.hash) << (4 * i);
            }
        }
        if small {
            // Repeat a table shorter than 16 slots across the 16 nibbles,
            // so that nibble `j` is slot `j & mask` (as probing wraps).
            for j in len..16 {
                p.filter |= ((p.filter >> (4 * (j & mask))) & 0xf) << (4 * j);
            }
        }
        p
    }
}

/// Exact and wildcard hosts by name, and their paths.
#[derive(Debug, Default)]
pub(super) struct HostIndex {
    /// A power of two long (or empty), at most two thirds full.
    slots: Box<[HostSlot]>,
    /// One byte per slot, 0 when it is empty, else from its hash
    /// ([`host_tag`]): probing reads this dense array (64 slots a line)
    /// and only the slot it will most likely accept.
    tags: Box<[u8]>,
    /// Whether any slot is a wildcard's parent.
    wildcards: bool,
    /// The table of each used slot (for hosts with regex paths, and for
    /// names too long to sit in their slot).
    tables: Box<[Option<Arc<HostTable>>]>,
    /// Every host's path table, one after the other.
    paths: Box<[PathSlot]>,
    /// The keys longer than [`KEY_INLINE`].
    long: Box<[u8]>,
    /// Bytes of the longest Prefix key of any host (bounds the spelled
    /// lookup's probes inside elements).
    max_key: usize,
}

impl HostIndex {
    /// The index of these hosts (each key once, as the router's maps hold
    /// them).
    pub(super) fn build<'a>(hosts: impl Iterator<Item = &'a Arc<HostPaths>>) -> Self {
        let hosts: Vec<(u64, &HostPaths)> = hosts
            .filter(|h| h.table.key != HostKey::Any)
            .filter_map(|h| Some((h.hash?, &**h)))
            .collect();
        if hosts.is_empty() {
            return Self::default();
        }
        let len = (hosts.len() + hosts.len() / 2 + 1).next_power_of_two();
        let mut slots = vec![EMPTY_HOST; len].into_boxed_slice();
        let mut tags = vec![0u8; len].into_boxed_slice();
        let mut wildcards = false;
        let mut tables = vec![None; len].into_boxed_slice();
        let mut paths = Vec::with_capacity(hosts.iter().map(|(_, h)| h.slots.len()).sum());
        let mut long = Vec::new();
        let mut max_key = 0;
        let mask = len - 1;
        for (h, hp) in hosts {
            let mut i = h as usize & mask;
            while tags[i] != 0 {
                i = (i + 1) & mask;
            }
            let mut slot = HostSlot {
                hash: h,
                filter: hp.filter,
                depths: hp.depths,
                base: u32::try_from(paths.len()).unwrap_or(u32::MAX),
                log2: hp.log2,
                max_depth: hp.max_depth,
                flags: hp.flags,
                len: 0,
                name: [0; NAME_INLINE],
            };
            if let HostKey::Exact(n) | HostKey::Wildcard(n) = &hp.table.key
                && let Some(inline) = slot.name.get_mut(..n.len())
            {
                inline.copy_from_slice(n.as_bytes());
                slot.len = n.len() as u8;
            }
            if slot.base == u32::MAX {
                // More than 4 billion path slots: not reachable in
                // practice; the host is still served, by its table.
                slot.flags |= FALLBACK;
            }
            let shift = u32::try_from(long.len()).unwrap_or(u32::MAX);
            paths.extend(hp.slots.iter().cloned().map(|mut s| {
                if s.len == LONG {
                    let off = u32::from_le_bytes([s.key[0], s.key[1], s.key[2], s.key[3]]);
                    s.key[..4].copy_from_slice(&off.saturating_add(shift).to_le_bytes());
                }
                s
            }));
            long.extend_from_slice(&hp.long);
            wildcards |= slot.flags & WILDCARD != 0;
            max_key = max_key.max(hp.max_key);
            slots[i] = slot;
            tags[i] = host_tag(h);
            tables[i] = Some(hp.table.clone());
        }
        Self {
            slots,
            tags,
            wildcards,
            tables,
            paths: paths.into_boxed_slice(),
            long: long.into_boxed_slice(),
            max_key,
        }
    }

    /// The slot of a request host (any case, no port or trailing dot), or
    /// of its parent's wildcard, given its [`Side::hash`].
    #[inline]
    pub(super) fn get(&self, side: Side, hash: u64, name: &str) -> Option<usize> {
        let mask = self.tags.len().wrapping_sub(1);
        let wildcard = if side == Side::Wildcard { WILDCARD } else { 0 };
        let want = host_tag(hash);
        let mut i = hash as usize & mask;
        loop {
            let tag = *self.tags.get(i)?;
            if tag == 0 {
                return None;
            }
            if tag == want
                && let Some(s) = self.slots.get(i)
                && s.hash == hash
                && s.flags & WILDCARD == wildcard
            {
                let stored = if s.flags & LONG_NAME == 0 {
                    s.name.get(..usize::from(s.len)).unwrap_or_default()
                } else {
                    match self
                        .tables
                        .get(i)
                        .and_then(Option::as_deref)
                        .map(|t| &t.key)
                    {
                        Some(HostKey::Exact(n) | HostKey::Wildcard(n)) => n.as_bytes(),
                        _ => &[],
                    }
                };
                if hash::eq_folded(stored, name.as_bytes()) {
                    return Some(i);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The route for a path on the host in slot `i` (from [`Self::get`]):
    /// an Exact path, else the deepest Prefix key, else the host's
    /// `defaultBackend`, as [`HostTable::lookup`] decides it (with the
    /// request's spelling `forward` when it differs from `path`).
    #[inline]
    pub(super) fn route(&self, i: usize, path: &str, forward: Option<&str>) -> Option<Route<'_>> {
        let s = self.slots.get(i)?;
        if s.flags & FALLBACK != 0 {
            let t = self.tables.get(i)?.as_deref()?;
            return t.lookup(path, forward).map(|(entry, regex)| Route {
                entry,
                host: &t.key,
                regex,
            });
        }
        let base = s.base as usize;
        let region = self
            .paths
            .get(base..base.saturating_add(1usize.checked_shl(u32::from(s.log2))?))?;
        let mut hit = self
            .exact(s, region, path)
            .or_else(|| self.longest_prefix(s, region, path));
        if let Some(f) = forward
            && let Some(spelled) = self
                .exact(s, region, f)
                .or_else(|| self.spelled_prefix(s, region, f))
            && hit.is_none_or(|n| spelled_wins(&n.entry, &spelled.entry))
        {
            hit = Some(spelled);
        }
        let hit = hit.or_else(|| {
            if s.flags & HAS_DEFAULT != 0 {
                self.find(s, region, DEFAULT_HASH, DEFAULT, |_| true)
            } else {
                None
            }
        })?;
        Some(Route {
            entry: &hit.entry,
            host: &hit.host,
            regex: None,
        })
    }

    #[inline]
    fn exact<'a>(&'a self, s: &HostSlot, region: &'a [PathSlot], path: &str) -> Option<&'a Hit> {
        if s.flags & HAS_EXACT == 0 {
            return None;
        }
        let h = hash::bytes(hash::SEED_EXACT_PATH, path.as_bytes());
        if s.log2 > SMALL_LOG2 && s.filter & filter_bit(h) == 0 {
            return None;
        }
        self.find(s, region, h, EXACT, |k| hash::eq(k, path.as_bytes()))
    }

    /// The deepest Prefix key a request's spelling starts with, a key
    /// ending at any separator (`/`, `\`, `%5C`), before or after it (a
    /// spelled key writes a backslash `\`): as
    /// [`Self::longest_prefix`], then the keys ending inside an element
    /// beyond its match, deepest first ([`inner_boundaries`]).
    ///
    /// [`inner_boundaries`]: crate::path::inner_boundaries
    fn spelled_prefix<'a>(
        &'a self,
        s: &HostSlot,
        region: &'a [PathSlot],
        path: &str,
    ) -> Option<&'a Hit> {
        let found = self.longest_prefix_end(s, region, path);
        let reached = found.map_or(0, |(_, end)| end);
        crate::path::inner_boundaries(path)
            .filter(|&p| p > reached && p <= self.max_key + 1)
            .find_map(|p| {
                let stretch = path.as_bytes().get(..p)?;
                let depth = elements(stretch).count();
                if depth == 0
                    || depth > usize::from(s.max_depth)
                    || s.depths & depth_bit(depth) == 0
                {
                    return None;
                }
                let h = elements(stretch)
                    .filter_map(|(a, e)| stretch.get(a..e))
                    .fold(hash::SEED_PREFIX_PATH, hash::bytes);
                self.prefix(s, region, h, stretch)
            })
            .or(found.map(|(hit, _)| hit))
    }

    /// The deepest Prefix key the path's elements start with, else the
    /// host's `/` rule.
    #[inline]
    fn longest_prefix<'a>(
        &'a self,
        s: &HostSlot,
        region: &'a [PathSlot],
        path: &str,
    ) -> Option<&'a Hit> {
        self.longest_prefix_end(s, region, path).map(|(hit, _)| hit)
    }

    /// [`Self::longest_prefix`], with where in `path` the key ends (0 for
    /// the `/` rule).
    #[inline]
    fn longest_prefix_end<'a>(
        &'a self,
        s: &HostSlot,
        region: &'a [PathSlot],
        path: &str,
    ) -> Option<(&'a Hit, usize)> {
        let root = || {
            if s.flags & HAS_ROOT != 0 {
                self.find(s, region, ROOT_HASH, PREFIX, <[u8]>::is_empty)
                    .map(|hit| (hit, 0))
            } else {
                None
            }
        };
        let max = match s.max_depth {
            0 => return root(),
            d => usize::from(d),
        };
        let bytes = path.as_bytes();
        let mut bounds = elements(bytes);
        let Some((first, end)) = bounds.next() else {
            return root();
        };
        let mut h = hash::bytes(
            hash::SEED_PREFIX_PATH,
            bytes.get(first..end).unwrap_or_default(),
        );
        // The key of the first `depth` elements (hash `h`), ending at `end`.
        let stretch = |end: usize| bytes.get(first..end).unwrap_or_default();
        if max > DEPTHS {
            // Shortest first, keeping the deepest match.
            let mut best = None;
            if s.depths & depth_bit(1) != 0 {
                best = self
                    .prefix(s, region, h, stretch(end))
                    .map(|hit| (hit, end));
            }
            for (d, (at, e)) in bounds.take(max - 1).enumerate() {
                h = hash::bytes(h, bytes.get(at..e).unwrap_or_default());
                if s.depths & depth_bit(d + 2) != 0 {
                    best = self
                        .prefix(s, region, h, stretch(e))
                        .map(|hit| (hit, e))
                        .or(best);
                }
            }
            return best.or_else(root);
        }
        let mut seen = [(0u64, 0usize); DEPTHS];
        seen[0] = (h, end);
        let mut n = 1;
        for (at, e) in bounds.take(max - 1) {
            h = hash::bytes(h, bytes.get(at..e).unwrap_or_default());
            seen[n] = (h, e);
            n += 1;
        }
        // The depths present, up to the request's, deepest first (`n` is
        // at most 16 here).
        let mut present = s.depths & (u32::MAX >> (32 - n));
        while present != 0 {
            let d = (31 - present.leading_zeros()) as usize;
            present &= !(1 << d);
            if let Some(&(h, e)) = seen.get(d)
                && let Some(hit) = self.prefix(s, region, h, stretch(e))
            {
                return Some((hit, e));
            }
        }
        root()
    }

    /// The Prefix key with this hash and the elements of `stretch`.
    #[inline(always)]
    fn prefix<'a>(
        &'a self,
        s: &HostSlot,
        region: &'a [PathSlot],
        h: u64,
        stretch: &[u8],
    ) -> Option<&'a Hit> {
        if s.log2 > SMALL_LOG2 && s.filter & filter_bit(h) == 0 {
            return None;
        }
        self.find(s, region, h, PREFIX, |k| same_elements(k, stretch))
    }

    /// The hit of the key with this hash and kind that `same` accepts.
    #[inline]
    fn find<'a>(
        &'a self,
        host: &HostSlot,
        region: &'a [PathSlot],
        h: u64,
        kind: u32,
        same: impl Fn(&[u8]) -> bool,
    ) -> Option<&'a Hit> {
        let mask = region.len().wrapping_sub(1);
        let want = tag_of(h, kind);
        let mut i = h as usize & mask;
        if host.log2 <= SMALL_LOG2 {
            // Only the slots whose fingerprint matches are read: the
            // nibbles from slot `i` on, up to the first empty one, are
            // compared all at once.
            let run = host.filter.rotate_right(4 * (i as u32 & 15));
            let empty = zero_nibbles(run);
            let stop = empty & empty.wrapping_neg();
            let mut candidates =
                zero_nibbles(run ^ (fingerprint(h) * NIBBLES)) & stop.wrapping_sub(1);
            while candidates != 0 {
                let at = (i + (candidates.trailing_zeros() / 4) as usize) & mask;
                if let Some(s) = region.get(at)
                    && let Some(hit) = s.hit.as_deref()
                    && s.tag == want
                    && same(self.key(s))
                {
                    return Some(hit);
                }
                candidates &= candidates - 1;
            }
            return None;
        }
        loop {
            let s = region.get(i)?;
            let hit = s.hit.as_deref()?;
            if s.tag == want && same(self.key(s)) {
                return Some(hit);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn key<'a>(&'a self, s: &'a PathSlot) -> &'a [u8] {
        if s.len != LONG {
            return s.key.get(..usize::from(s.len)).unwrap_or_default();
        }
        let word = |at: usize| {
            s.key
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, |b| u32::from_le_bytes(b) as usize)
        };
        let (off, len) = (word(0), word(4));
        self.long
            .get(off..off.saturating_add(len))
            .unwrap_or_default()
    }

    /// Whether some host is a wildcard's parent (else a request's parent
    /// need not be looked up).
    #[inline]
    pub(super) fn has_wildcards(&self) -> bool {
        self.wildcards
    }

    /// Whether no host has a table.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Whether a stored Prefix key (elements joined by `/`) has the elements
/// of a stretch of the request path (which may repeat slashes).
#[inline]
fn same_elements(key: &[u8], stretch: &[u8]) -> bool {
    hash::eq(key, stretch)
        || elements(stretch)
            .map(|(s, e)| stretch.get(s..e).unwrap_or_default())
            .eq(key.split(|&c| c == b'/'))
}

/// Where the elements of a path start and end: split on `/`, empty
/// elements dropped (a trailing slash and doubled slashes do not count).
#[inline]
fn elements(path: &[u8]) -> Elements<'_> {
    Elements { bytes: path, at: 0 }
}

/// The iterator behind [`elements`]: a plain byte scan.
struct Elements<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Iterator for Elements<'_> {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        let rest = self.bytes.get(self.at..)?;
        let start = self.at + rest.iter().position(|&c| c != b'/')?;
        let end = self
            .bytes
            .get(start..)?
            .iter()
            .position(|&c| c == b'/')
            .map_or(self.bytes.len(), |n| start + n);
        self.at = end;
        Some((start, end))
    }
}

#[cfg(test)]
mod tests;
