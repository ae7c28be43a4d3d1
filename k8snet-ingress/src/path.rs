//! Path matching for one host: Exact paths and Prefix paths (by their
//! elements) in one flat open-addressing table, and regexes (only when an
//! Ingress asks for them), so a lookup costs a few probes into two
//! contiguous arrays whatever the rule count.

use std::borrow::Cow;

use regex::Regex;

use crate::router::hash;

/// How a rule's path is matched, after the choices documented in the crate
/// docs (ImplementationSpecific is Prefix, or a regex under `use-regex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MatchKind {
    /// `Exact`: the whole path, case-sensitively.
    Exact,
    /// `Prefix`: element-wise on `/`.
    Prefix,
    /// `ImplementationSpecific` without regex: element-wise, as Prefix.
    ImplementationSpecific,
    /// `ImplementationSpecific` under `use-regex`/`rewrite-target`: a
    /// case-insensitive regex anchored at the start (ingress-nginx's `~*`).
    Regex,
}

/// A prefix rule's standing among the rules with the same elements (which
/// match exactly the same requests): `/foo/` outranks `/foo` (the longer
/// written path, as the API docs say), and an explicit `Prefix` outranks
/// an ImplementationSpecific path treated as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    trailing_slash: bool,
    explicit: bool,
}

impl Rank {
    /// Two bits that order as the ranks do.
    fn bits(self) -> u32 {
        u32::from(self.trailing_slash) << 1 | u32::from(self.explicit)
    }
}

/// One key of a host's path table, 16 bytes (four to a cache line).
///
/// `tag` holds 28 bits of the key's hash (the bits the slot index does not
/// use) and the flags below, so a probe rejects other keys without reading
/// their bytes; `off`/`len` locate the key in the table's byte arena.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    tag: u32,
    rule: u32,
    off: u32,
    len: u32,
}

/// The slot holds a key (an all-zero slot is empty).
const USED: u32 = 1;
/// A Prefix key (its elements joined by `/`), else an Exact path.
const PREFIX: u32 = 2;
/// Where a Prefix key's [`Rank`] bits sit.
const RANK_SHIFT: u32 = 2;
const RANK_MASK: u32 = 0b11 << RANK_SHIFT;
const HASH_MASK: u32 = !0xf;

/// The tag a key with this hash and kind (`0` or [`PREFIX`]) carries.
#[inline]
fn tag_of(hash: u64, kind: u32) -> u32 {
    ((hash >> 32) as u32 & HASH_MASK) | USED | kind
}

/// How deep a lookup remembers the request's prefixes, so that it can
/// probe them longest first; hosts with deeper Prefix rules are probed
/// shortest first instead (same answer, a few more probes).
const DEPTHS: usize = 16;

/// The paths of one host, each pointing at a rule index of that host: one
/// open-addressing table holding the Exact paths and the Prefix paths
/// (keyed by their elements), with every key's bytes in one arena.
///
/// A lookup hashes the request path once for the exact probe, then hashes
/// its leading elements and probes them longest first, starting no deeper
/// than the deepest Prefix rule: a handful of probes into two contiguous
/// arrays, the same whatever the number of rules or hosts.
#[derive(Debug, Default, Clone)]
pub(crate) struct PathTable {
    /// A power of two long (or empty), at most half full.
    slots: Vec<Slot>,
    bytes: Vec<u8>,
    /// Keys in `slots`, and how many of them are Exact paths.
    keys: u32,
    exact: u32,
    /// Elements of the deepest Prefix key.
    max_depth: u32,
    /// Bytes of the longest Prefix key (bounds the spelled lookup's
    /// probes inside elements).
    max_key: u32,
    /// Prefix key depths present: bit `d - 1` for depth `d` (deeper than
    /// 32 are always probed).
    depths: u32,
    /// One bit per key, chosen by its hash ([`filter_bit`]): a probe
    /// whose bit is clear cannot find a key, and is skipped.
    filter: u64,
    /// The Prefix rule without elements (`/`).
    root: Option<(Rank, u32)>,
    /// Longest written path first, with that length; first match wins
    /// (ingress-nginx sorts its regex locations by length, and nginx takes
    /// the first that matches).
    regex: Vec<(Regex, u32, usize)>,
}

/// Why a rule was not added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// An older rule has the same path and kind; it keeps it.
    Duplicate(u32),
    /// The regex does not compile.
    BadRegex(String),
}

impl PathTable {
    /// Adds a rule; rules must come oldest first, so that an equal rule
    /// already present is the older one and keeps its place.
    pub(crate) fn insert(
        &mut self,
        path: &str,
        kind: MatchKind,
        rule: u32,
    ) -> Result<(), Rejected> {
        match kind {
            MatchKind::Exact => {
                let h = hash::bytes(hash::SEED_EXACT_PATH, path.as_bytes());
                if let Some(i) = self.find(h, 0, |k| k == path.as_bytes()) {
                    return Err(Rejected::Duplicate(self.slots[i].rule));
                }
                self.put(h, 0, path.as_bytes(), rule);
                self.exact += 1;
                Ok(())
            }
            MatchKind::Regex => {
                let re = Regex::new(&format!("(?i)^{path}"))
                    .map_err(|e| Rejected::BadRegex(e.to_string()))?;
                // Stable: among equal lengths the older rule stays first.
                let at = self.regex.partition_point(|(_, _, n)| *n >= path.len());
                self.regex.insert(at, (re, rule, path.len()));
                Ok(())
            }
            MatchKind::Prefix | MatchKind::ImplementationSpecific => {
                let rank = Rank {
                    trailing_slash: path.len() > 1 && path.ends_with('/'),
                    explicit: kind == MatchKind::Prefix,
                };
                let elements: Vec<&str> = segments(path).collect();
                if elements.is_empty() {
                    return settle(&mut self.root, rank, rule);
                }
                let key = elements.join("/");
                let h = prefix_hash(&key);
                let Some(i) = self.find(h, PREFIX, |k| k == key.as_bytes()) else {
                    self.put(h, PREFIX | rank.bits() << RANK_SHIFT, key.as_bytes(), rule);
                    let depth = u32::try_from(elements.len()).unwrap_or(u32::MAX);
                    self.max_depth = self.max_depth.max(depth);
                    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
                    self.max_key = self.max_key.max(len);
                    self.depths |= depth_bit(elements.len());
                    return Ok(());
                };
                let slot = &mut self.slots[i];
                let mut entry = Some((rank_of(slot.tag), slot.rule));
                let result = settle(&mut entry, rank, rule);
                if let Some((r, winner)) = entry {
                    slot.tag = slot.tag & !RANK_MASK | r.bits() << RANK_SHIFT;
                    slot.rule = winner;
                }
                result
            }
        }
    }

    /// The rule matching a (normalized) path: an exact path, else the
    /// longest of the matching prefix and regex rules by written length
    /// (`written` gives a rule's written path length), the prefix on a tie.
    ///
    /// An exact match always matches the whole request path, so no prefix
    /// rule can be longer; taking it first is "longest wins, Exact on ties".
    /// Regexes are tried longest pattern first and only while longer than
    /// the prefix found, as ingress-nginx orders a host's locations by
    /// descending path length and nginx takes the first regex that matches.
    #[inline]
    pub(crate) fn lookup(
        &self,
        path: &str,
        written: impl Fn(u32) -> usize,
    ) -> Option<(u32, Option<&Regex>)> {
        if self.exact != 0 {
            let h = hash::bytes(hash::SEED_EXACT_PATH, path.as_bytes());
            if self.filter & filter_bit(h) != 0
                && let Some(i) = self.find(h, 0, |k| k == path.as_bytes())
            {
                return Some((self.slots[i].rule, None));
            }
        }
        let prefix = self.longest_prefix(path);
        if !self.regex.is_empty() {
            let floor = prefix.map_or(0, &written);
            for (re, r, len) in &self.regex {
                if *len <= floor {
                    break;
                }
                if re.is_match(path) {
                    return Some((*r, Some(re)));
                }
            }
        }
        prefix.map(|r| (r, None))
    }

    /// The rule a request's spelling ([`forward_path`]) matches among the
    /// Exact and Prefix keys (regexes see the normalized path only).
    pub(crate) fn lookup_spelled(&self, forward: &str) -> Option<u32> {
        if self.exact != 0 {
            let h = hash::bytes(hash::SEED_EXACT_PATH, forward.as_bytes());
            if self.filter & filter_bit(h) != 0
                && let Some(i) = self.find(h, 0, |k| k == forward.as_bytes())
            {
                return Some(self.slots[i].rule);
            }
        }
        // Prefix keys end at every separator of the spelling: a key ending
        // inside an element (before or after a `\`) wins over a shallower
        // one.
        let found = self.longest_prefix_end(forward);
        let reached = found.map_or(0, |(_, end)| end);
        let max = self.max_key as usize;
        inner_boundaries(forward)
            .filter(|&p| p > reached && p <= max + 1)
            .find_map(|p| self.prefix_key(forward.get(..p)?))
            .or(found.map(|(r, _)| r))
    }

    /// The rule of the Prefix key made of all the elements of `stretch`.
    fn prefix_key(&self, stretch: &str) -> Option<u32> {
        let depth = segments(stretch).count();
        if depth == 0 || depth > self.max_depth as usize || self.depths & depth_bit(depth) == 0 {
            return None;
        }
        let key = segments(stretch).collect::<Vec<_>>().join("/");
        let h = prefix_hash(&key);
        if self.filter & filter_bit(h) == 0 {
            return None;
        }
        self.find(h, PREFIX, |k| k == key.as_bytes())
            .map(|i| self.slots[i].rule)
    }

    /// The rule of the deepest Prefix key the path's elements start with.
    #[inline]
    fn longest_prefix(&self, path: &str) -> Option<u32> {
        self.longest_prefix_end(path).map(|(r, _)| r)
    }

    /// [`Self::longest_prefix`], with where in `path` the key ends (0 for
    /// the `/` rule).
    #[inline]
    fn longest_prefix_end(&self, path: &str) -> Option<(u32, usize)> {
        let root = self.root.map(|(_, r)| (r, 0));
        let max = self.max_depth as usize;
        if max == 0 {
            return root;
        }
        let mut bounds = segment_bounds(path);
        let Some((first, end)) = bounds.next() else {
            return root;
        };
        let mut h = hash::bytes(hash::SEED_PREFIX_PATH, &path.as_bytes()[first..end]);
        // The key of the first `depth` elements, ending at `end`.
        let probe = |h: u64, depth: usize, end: usize| {
            if self.depths & depth_bit(depth) == 0 || self.filter & filter_bit(h) == 0 {
                return None;
            }
            let region = path.get(first..end).unwrap_or_default();
            self.find(h, PREFIX, |k| same_elements(k, region))
                .map(|i| (self.slots[i].rule, end))
        };
        if max > DEPTHS {
            // Shortest first, keeping the deepest match.
            let mut best = probe(h, 1, end).or(root);
            for (d, (s, e)) in bounds.take(max - 1).enumerate() {
                h = hash::bytes(h, &path.as_bytes()[s..e]);
                best = probe(h, d + 2, e).or(best);
            }
            return best;
        }
        let mut seen = [(0u64, 0usize); DEPTHS];
        seen[0] = (h, end);
        let mut n = 1;
        for (s, e) in bounds.take(max - 1) {
            h = hash::bytes(h, &path.as_bytes()[s..e]);
            seen[n] = (h, e);
            n += 1;
        }
        (1..=n)
            .rev()
            .find_map(|d| probe(seen[d - 1].0, d, seen[d - 1].1))
            .or(root)
    }

    /// The slot of the key with this hash and kind that `same` accepts.
    #[inline]
    fn find(&self, h: u64, kind: u32, same: impl Fn(&[u8]) -> bool) -> Option<usize> {
        let mask = self.slots.len().wrapping_sub(1);
        let want = tag_of(h, kind);
        let mut i = h as usize & mask;
        loop {
            let s = self.slots.get(i)?;
            if s.tag & USED == 0 {
                return None;
            }
            if s.tag & !RANK_MASK == want && same(self.key(s)) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn key(&self, s: &Slot) -> &[u8] {
        let start = s.off as usize;
        self.bytes
            .get(start..start.saturating_add(s.len as usize))
            .unwrap_or_default()
    }

    /// Stores a new key (the caller checked it is absent). Keys past 4 GiB
    /// of arena cannot be stored faithfully and then match nothing.
    fn put(&mut self, h: u64, flags: u32, key: &[u8], rule: u32) {
        if (self.keys as usize + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let slot = Slot {
            tag: tag_of(h, flags & PREFIX) | flags,
            rule,
            off: u32::try_from(self.bytes.len()).unwrap_or(u32::MAX),
            len: u32::try_from(key.len()).unwrap_or(0),
        };
        self.bytes.extend_from_slice(key);
        self.filter |= filter_bit(h);
        self.place(h, slot);
        self.keys += 1;
    }

    fn place(&mut self, h: u64, slot: Slot) {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        while self.slots[i].tag & USED != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
    }

    /// Doubles the slots, re-placing every key (its hash recomputed from
    /// its bytes).
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); len]);
        for s in old.into_iter().filter(|s| s.tag & USED != 0) {
            let key = self.key(&s);
            let h = if s.tag & PREFIX != 0 {
                std::str::from_utf8(key).map_or(0, prefix_hash)
            } else {
                hash::bytes(hash::SEED_EXACT_PATH, key)
            };
            self.place(h, s);
        }
    }
}

/// The older of two rules at the same place keeps it unless the newer
/// one outranks it; an equal rank is a duplicate.
fn settle(at: &mut Option<(Rank, u32)>, rank: Rank, rule: u32) -> Result<(), Rejected> {
    match *at {
        Some((r, older)) if r == rank => Err(Rejected::Duplicate(older)),
        Some((r, _)) if r > rank => Ok(()), // outranked, never reachable
        _ => {
            *at = Some((rank, rule));
            Ok(())
        }
    }
}

/// A key's bit in [`PathTable::filter`] (from hash bits that neither the
/// slot index nor, mostly, the tag use).
#[inline]
fn filter_bit(h: u64) -> u64 {
    1 << ((h >> 26) & 63)
}

/// A Prefix depth's bit in [`PathTable::depths`]; depths beyond 32 share
/// every bit, so they are always probed.
#[inline]
fn depth_bit(depth: usize) -> u32 {
    match depth {
        1..=32 => 1 << (depth - 1),
        _ => u32::MAX,
    }
}

fn rank_of(tag: u32) -> Rank {
    let bits = (tag & RANK_MASK) >> RANK_SHIFT;
    Rank {
        trailing_slash: bits & 2 != 0,
        explicit: bits & 1 != 0,
    }
}

/// The hash of a Prefix key (elements joined by `/`), the same a lookup
/// computes element by element from the request path.
fn prefix_hash(key: &str) -> u64 {
    key.split('/').fold(hash::SEED_PREFIX_PATH, |h, seg| {
        hash::bytes(h, seg.as_bytes())
    })
}

/// Whether a stored Prefix key (elements joined by `/`) has the elements
/// of a stretch of the request path (which may repeat slashes).
#[inline]
fn same_elements(key: &[u8], region: &str) -> bool {
    key == region.as_bytes()
        || segments(region)
            .map(str::as_bytes)
            .eq(key.split(|&c| c == b'/'))
}

/// The elements of a path: split on `/`, empty elements dropped, so a
/// trailing slash and doubled slashes do not count (`/aaa/bbb/` matches
/// the Prefix `/aaa/bbb`).
#[inline]
fn segments(path: &str) -> impl Iterator<Item = &str> {
    segment_bounds(path).filter_map(|(s, e)| path.get(s..e))
}

/// Where the elements of a path start and end (byte offsets).
#[inline]
fn segment_bounds(path: &str) -> Bounds<'_> {
    Bounds {
        bytes: path.as_bytes(),
        at: 0,
    }
}

/// The iterator behind [`segment_bounds`]: a plain byte scan, which for
/// the short elements of URL paths beats `split` (a `memchr` call each).
/// Both ends of an element are at a `/` or an end of the string, so they
/// are character boundaries.
struct Bounds<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Iterator for Bounds<'_> {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        let rest = self.bytes.get(self.at..)?;
        let start = self.at + rest.iter().position(|&c| c != b'/')?;
        let end = self.bytes[start..]
            .iter()
            .position(|&c| c == b'/')
            .map_or(self.bytes.len(), |n| start + n);
        self.at = end;
        Some((start, end))
    }
}

/// The path a request is matched by, normalized as nginx normalizes a
/// request path before it matches locations, so that a rule cannot be
/// bypassed by spelling its path differently:
///
/// - percent-encoded unreserved characters are decoded (`%61` → `a`,
///   `%2e` → `.`);
/// - an encoded slash `%2F` — and a backslash, raw `\` or encoded `%5C`
///   — separates elements, as `/` does: nginx decodes every escape
///   *before* it resolves dot segments, so `/public/..%2Fadmin` is
///   `/admin`, not an element of `/public`. A backslash is a separator for
///   nginx on Windows and for many backends (nginx on Linux takes it as
///   an ordinary character, so `/public/..\admin` stays under `/public`
///   there while a backend may read `/admin`); counting it as one here is
///   the stricter choice, and a raw one — not a valid path character (RFC
///   3986 §3.3), but accepted by nginx — is still served;
/// - `.` and `..` segments are resolved, and repeated slashes merged.
///
/// Other escapes (non-ASCII bytes, reserved characters) stay encoded, with
/// upper-case hex, and are compared as written: this is where matching
/// differs from nginx, which would decode them too (a rule path such as
/// `/caf%C3%A9` matches the request `/caf%c3%a9`).
///
/// Rule paths (all but regexes) are not normalized but keyed by their
/// spelling (unreserved escapes decoded, repeated slashes merged, `%2F`
/// a slash as for nginx, a backslash kept — `%5C` and `\` alike, one
/// character as for nginx, which decodes `%5C` before it matches — dot
/// segments never resolved), so that a rule spelling a backslash
/// (`/a%5Cb`, `/a\b`) is not the plain path's rule; the requests that
/// spell it reach it through their own spelled key
/// ([`Router::route_request`](crate::Router::route_request)).
///
/// The proxy forwards the request path with the same dot segments resolved
/// but each remaining separator spelled as the client spelled it, so that
/// a backend that decodes `%2F` before it resolves dots sees the path that
/// was matched, and one that keeps `%2F` inside an element
/// (`/api/projects/group%2Fname`) still gets it.
///
/// Borrows when there is nothing to do, the common case.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if !needs_normalizing(path) {
        return Cow::Borrowed(path);
    }
    Cow::Owned(resolve(path, Spelling::Normalized))
}

/// The path the proxy forwards for a request path that
/// [`normalize_path`] changes: the same elements, dot segments resolved
/// across `/`, `%2F`, `%5C` and `\` alike, unreserved escapes decoded,
/// repeated separators merged, but each remaining separator spelled as the
/// client wrote it (`%2F` stays `%2F`, `\` stays `\`, a trailing one
/// too).
///
/// A path with a raw backslash and no dot segment is forwarded as written
/// (as nginx forwards it): only a dot segment, which a backend reading
/// `\` as a separator would resolve differently, makes it rewritten.
/// These are only the bytes sent to the backend: rules are matched by
/// [`spelled_key`].
pub(crate) fn forward_path(path: &str) -> Cow<'_, str> {
    if !needs_normalizing(path) || (path.contains('\\') && !has_dot_segment(path)) {
        return Cow::Borrowed(path);
    }
    Cow::Owned(resolve(path, Spelling::Forwarded))
}

/// The key a path is matched by when its spelling matters: as
/// [`normalize_path`] (unreserved escapes decoded, dot segments resolved,
/// repeated slashes merged, `%2F` a slash, as nginx decodes it before it
/// matches locations), except that a backslash stays, `%5C` (any case)
/// and `\` both written `\` (nginx decodes `%5C` before it matches, and
/// `\` is an ordinary character on Linux, so they are one path), so that
/// a rule spelled with one is reached by the requests spelling its path
/// the same way, modulo unreserved escapes, hex case, repeated slashes
/// and the spelling of the backslash (`/%78//a%5C%62` is `/x/a\b`).
///
/// Borrows when there is nothing to do.
pub(crate) fn spelled_key(path: &str) -> Cow<'_, str> {
    if !needs_normalizing(path) {
        return Cow::Borrowed(path);
    }
    Cow::Owned(resolve(path, Spelling::Matched))
}

/// The spelled key ([`spelled_key`]) of a request path that
/// [`normalize_path`] changes, when it can differ from the normalized
/// path: only a `\` or `%5C` (any case) can make it differ, so other
/// paths cost no second pass (and no second lookup).
pub(crate) fn request_spelling(path: &str) -> Option<String> {
    let b = path.as_bytes();
    let spells = b.contains(&b'\\')
        || b.windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'5' && matches!(w[2], b'c' | b'C'));
    spells.then(|| resolve(path, Spelling::Matched))
}

/// The key a rule path (Exact, Prefix or ImplementationSpecific) is
/// matched by: its [`spelled_key`], never with a dot segment resolved:
/// `None` when it has one (`/static/..`, `/static/%2e%2e`), as such a
/// rule matches nothing (request paths are matched with their dot
/// segments resolved, and nginx does the same).
///
/// So `/a%2Fb` is the rule `/a/b` (nginx decodes `%2F` before matching),
/// while `/a%5Cb` and `/a\b` (one rule, keyed `/a\b`) are distinct from
/// it (as for nginx on Linux, where `\` is an ordinary character): they
/// are reached by the requests that spell a backslash (`/a%5cb`, `/%61\b`, see
/// [`Router::route_request`](crate::Router::route_request)), `/a/b` is not.
pub(crate) fn rule_key(path: &str) -> Option<Cow<'_, str>> {
    if has_dot_segment(path) {
        return None;
    }
    Some(spelled_key(path))
}

/// The Prefix boundaries of a spelled key ([`spelled_key`], where every
/// backslash is a `\`) inside its elements (split on `/`), deepest
/// first: the offset after each `\`, and the offset of each one that
/// does not follow a `/`. A spelled Prefix key ending there (`/a\b`, or
/// `/a\b\` written with the separator itself) covers the key, as one
/// ending at a `/` does.
pub(crate) fn inner_boundaries(key: &str) -> impl Iterator<Item = usize> + '_ {
    let b = key.as_bytes();
    (1..b.len())
        .rev()
        .filter(move |&i| b[i] == b'\\')
        .flat_map(move |i| [Some(i + 1), (b[i - 1] != b'/').then_some(i)])
        .flatten()
}

/// The elements of a rule key (or of a normalized or forwarded path)
/// counted across every separator (`/`, `\`, `%2F`, `%5C`): how deep a
/// match on the client's spelling goes, in the elements of the
/// normalized path.
pub(crate) fn depth(key: &str) -> usize {
    split_parts(key)
        .iter()
        .filter(|(sep, s, e)| !sep.is_empty() && e > s)
        .count()
}

/// The longest leading part of a rule key made of plain elements (no
/// escape, no backslash, none the rule's `written` path spells with a
/// `%2F`, which its key writes as `/`), without a trailing slash; `/`
/// when there is none. Every request a rule with that key matches by its
/// usual spelling has it as a path prefix (RFC 6265 §5.1.4), so a cookie
/// scoped to it comes back with them.
pub(crate) fn plain_prefix<'k>(key: &'k str, written: &str) -> &'k str {
    // The key's elements before the first written `%2F` are the written
    // ones before it (split on `/` alike), less the one it is in.
    let limit = written
        .as_bytes()
        .windows(3)
        .position(|w| w[0] == b'%' && w[1] == b'2' && matches!(w[2], b'f' | b'F'))
        .map_or(usize::MAX, |at| {
            let before = &written[..at];
            let n = segment_bounds(before).count();
            if before.ends_with('/') {
                n
            } else {
                n.saturating_sub(1)
            }
        });
    let mut end = 0;
    for (s, e) in segment_bounds(key).take(limit) {
        let element = &key.as_bytes()[s..e];
        if element.iter().any(|&c| c == b'%' || c == b'\\') {
            break;
        }
        end = e;
    }
    match key.get(..end) {
        Some(p) if end > 0 => p,
        _ => "/",
    }
}

/// Whether [`normalize_path`] may change a path: it holds an escape, a
/// backslash, a doubled slash or a segment starting with a dot.
#[inline]
fn needs_normalizing(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with('/')
        && (b.contains(&b'%')
            || b.contains(&b'\\')
            || b.windows(2).any(|w| w == b"//" || w == b"/."))
}

/// Whether an element (split on any separator) of a path is `.` or `..`,
/// spelled plainly or with `%2E`.
fn has_dot_segment(path: &str) -> bool {
    split_parts(path)
        .iter()
        .any(|&(sep, s, e)| !sep.is_empty() && is_dot(&path.as_bytes()[s..e]))
}

/// `.` or `..`, each dot plain or `%2E` (any case).
fn is_dot(element: &[u8]) -> bool {
    let mut dots = 0;
    let mut i = 0;
    while i < element.len() {
        match element.get(i..i + 3) {
            Some([b'%', b'2', b'e' | b'E']) => i += 3,
            _ if element[i] == b'.' => i += 1,
            _ => return false,
        }
        dots += 1;
    }
    matches!(dots, 1 | 2)
}

/// Splits a path into (separator as written, element start, element end)
/// on `/`, `\`, `%2F` and `%5C` (any case); the first part, before the
/// leading separator, has an empty separator.
fn split_parts(path: &str) -> Vec<(&str, usize, usize)> {
    let b = path.as_bytes();
    let mut parts: Vec<(&str, usize, usize)> = Vec::new();
    let mut i = 0;
    let mut sep: &str = "";
    let mut start = 0;
    while i <= b.len() {
        let sep_len = match b.get(i) {
            None => 0,
            Some(b'/' | b'\\') => 1,
            Some(b'%')
                if matches!(
                    (b.get(i + 1), b.get(i + 2)),
                    (Some(b'2'), Some(b'f' | b'F')) | (Some(b'5'), Some(b'c' | b'C'))
                ) =>
            {
                3
            }
            Some(_) => {
                i += 1;
                continue;
            }
        };
        if i > 0 || sep_len == 0 {
            parts.push((sep, start, i));
        }
        if sep_len == 0 {
            break;
        }
        sep = &path[i..i + sep_len];
        i += sep_len;
        start = i;
    }
    parts
}

/// Which separators [`resolve`] writes as the client wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spelling {
    /// None: every separator is a `/` ([`normalize_path`]).
    Normalized,
    /// A backslash, `%5C` and `\` both written `\`; `%2F` is a `/`
    /// ([`spelled_key`]).
    Matched,
    /// `%2F`, `%5C` and `\` ([`forward_path`]).
    Forwarded,
}

/// Splits a path into (separator, element) pairs on `/`, `\`, `%2F` and
/// `%5C` (any case), decodes the unreserved escapes of each element,
/// resolves `.` and `..`, drops empty elements, and joins the rest with
/// `/`; or, unless `spelling` is [`Spelling::Normalized`], with the
/// separators written between them that `spelling` keeps (a run of plain
/// slashes merged into one, a run holding another separator kept, so
/// that `/a%5C/b` stays two elements with `%5C` after the first), a
/// trailing run too.
fn resolve(path: &str, spelling: Spelling) -> String {
    let keep_separators = spelling != Spelling::Normalized;
    let mut out: Vec<(String, String)> = Vec::new();
    // The separators written since the last element (or dot segment).
    let mut run = String::new();
    // The path ends with a dot segment: it names a directory.
    let mut dir = false;
    // A dot segment came before: a separator after it is not written
    // before the first element (`/public/..%5Cadmin` is `/admin`).
    let mut dotted = false;
    for (sep, s, e) in split_parts(path)
        .into_iter()
        .filter(|(sep, _, _)| !sep.is_empty())
    {
        let element = decode_unreserved(&path[s..e]);
        match element.as_str() {
            "" => push_separator(&mut run, sep, spelling),
            "." | ".." => {
                if element == ".." {
                    out.pop();
                }
                run.clear();
                dir = true;
                dotted = true;
            }
            _ => {
                push_separator(&mut run, sep, spelling);
                if dotted && out.is_empty() {
                    run.clear();
                }
                out.push((std::mem::take(&mut run), element));
                dir = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    for (k, (sep, element)) in out.iter().enumerate() {
        // The first separator is a plain slash (a path starts with one),
        // unless the kept run before the first element holds another
        // separator: then it is written after that slash (`/%5Cadmin` is
        // not the rule `/admin`).
        if keep_separators && k > 0 {
            s.push_str(sep);
        } else {
            s.push('/');
            if keep_separators && sep.bytes().any(|c| c != b'/') {
                s.push_str(sep.strip_prefix('/').unwrap_or(sep));
            }
        }
        s.push_str(element);
    }
    if out.is_empty() {
        s.push('/');
        if keep_separators && !dotted && run.bytes().any(|c| c != b'/') {
            s.push_str(run.strip_prefix('/').unwrap_or(&run));
        }
    } else if !run.is_empty() {
        if keep_separators {
            s.push_str(&run);
        } else {
            s.push('/');
        }
    } else if dir {
        s.push('/');
    }
    s
}

/// Appends a separator as the client wrote it, escapes in upper case
/// (`%2F` as a plain slash unless `spelling` forwards it); a plain slash
/// after a plain slash is dropped (repeated slashes merge).
fn push_separator(s: &mut String, sep: &str, spelling: Spelling) {
    match sep.as_bytes() {
        [b'%', b'2', _] if spelling == Spelling::Forwarded => s.push_str("%2F"),
        // For matching, `%5C` is a `\` (nginx decodes it before matching,
        // and `\` is an ordinary character on Linux): one form for both.
        [b'%', b'5', _] if spelling == Spelling::Matched => s.push('\\'),
        [b'%', b'5', _] => s.push_str("%5C"),
        [b'\\'] => s.push('\\'),
        _ if s.ends_with('/') => {}
        _ => s.push('/'),
    }
}

fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex))
        {
            let c = h << 4 | l;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(c));
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
            }
            i += 3;
            continue;
        }
        // Copy the run up to the next '%' (keeps multi-byte characters whole).
        let next = b[i + 1..]
            .iter()
            .position(|&c| c == b'%')
            .map_or(b.len(), |p| i + 1 + p);
        out.push_str(&path[i..next]);
        i = next;
    }
    out
}

fn hex(c: &u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl PathTable {
        /// A lookup where a rule's written length is its index (for
        /// tables whose tests do not depend on it).
        fn get(&self, path: &str) -> Option<(u32, Option<&Regex>)> {
            self.lookup(path, |r| r as usize)
        }
    }

    #[test]
    fn normalization_resolves_dots_slashes_and_unreserved_escapes() {
        for (input, want) in [
            ("/foo/bar", "/foo/bar"),
            ("/foo//bar", "/foo/bar"),
            ("/foo/./bar/", "/foo/bar/"),
            ("/foo/../admin", "/admin"),
            ("/../../etc", "/etc"),
            ("/%61dmin", "/admin"),
            ("/a/%2e%2E/b", "/b"),
            ("/a%2fb", "/a/b"),
            ("/a%5cb", "/a/b"),
            ("/public/..%2Fadmin", "/admin"),
            ("/public/%2e%2e%2fadmin", "/admin"),
            ("/public%2F..%2F..%2Fadmin", "/admin"),
            ("/public/..%5Cadmin", "/admin"),
            ("/public/..\\admin", "/admin"),
            ("/a\\b\\", "/a/b/"),
            ("/a/%252F/b", "/a/%252F/b"),
            ("/a%20b", "/a%20b"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/foo/..", "/"),
            ("/foo/bar/.", "/foo/bar/"),
            ("/ü/x//", "/ü/x/"),
            ("/%zz", "/%zz"),
        ] {
            assert_eq!(normalize_path(input), want, "{input}");
        }
        assert!(matches!(normalize_path("/plain/path"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_forwarded_path_resolves_the_same_dots_but_keeps_encoded_separators() {
        for (input, want) in [
            ("/plain", "/plain"),
            // Dot segments go across any separator, as in the matched path.
            ("/public/..%2Fadmin", "/admin"),
            ("/public%2F..%2F..%2Fadmin", "/admin"),
            ("/admin/..%5cpublic", "/public"),
            ("/a/%2e%2e/b", "/b"),
            // Without dots, an encoded slash stays inside its element.
            ("/api/projects/group%2fname", "/api/projects/group%2Fname"),
            ("/api/x%5Cy/./z", "/api/x%5Cy/z"),
            ("/public/..\\admin", "/admin"),
            ("/api/x\\y/./z", "/api/x\\y/z"),
            ("/%61dmin//x", "/admin/x"),
            // A leading separator run as written too, unless a dot
            // segment came before it.
            ("/%2Fa", "/%2Fa"),
            ("/%5cadmin/x", "/%5Cadmin/x"),
            ("/x/../%5Cadmin", "/admin"),
            // A trailing separator as written.
            ("/a%5c", "/a%5C"),
            ("/x/..\\a\\", "/a\\"),
        ] {
            assert_eq!(forward_path(input), want, "{input}");
            // The matched path is the forwarded one with every separator a
            // slash (and repeated slashes merged).
            let mut all = forward_path(input)
                .replace("%2F", "/")
                .replace("%5C", "/")
                .replace('\\', "/");
            while all.contains("//") {
                all = all.replace("//", "/");
            }
            assert_eq!(normalize_path(input), all, "{input}");
        }
        assert!(matches!(forward_path("/plain/path"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_spelled_key_keeps_backslashes_only() {
        for (input, want) in [
            ("/plain", "/plain"),
            ("/x/a\\b", "/x/a\\b"),
            ("/%78/a\\b", "/x/a\\b"),
            ("/x/a\\%62", "/x/a\\b"),
            ("/x//a\\b", "/x/a\\b"),
            // `%5C` is written `\` (nginx decodes it before matching).
            ("/a%5cb", "/a\\b"),
            ("/a%2fb%5c", "/a/b\\"),
            ("/a%2F/b", "/a/b"),
            ("/public/..\\admin", "/admin"),
            ("/x/./a\\b/../c", "/x/a/c"),
            // A leading backslash is kept after the first slash; `%2F` is
            // a slash.
            ("/%5cadmin", "/\\admin"),
            ("//\\admin/", "/\\admin/"),
            ("/%2F%5Cadmin", "/\\admin"),
            ("/%2Fadmin", "/admin"),
            ("/%5C", "/\\"),
        ] {
            assert_eq!(spelled_key(input), want, "{input}");
            // The matched path is the spelled key with every separator a
            // slash (and repeated slashes merged).
            let mut all = spelled_key(input).replace('\\', "/");
            while all.contains("//") {
                all = all.replace("//", "/");
            }
            assert_eq!(normalize_path(input), all, "{input}");
        }
        // Only a backslash, raw or encoded, asks for a spelled lookup.
        assert_eq!(request_spelling("/%78/a\\b").as_deref(), Some("/x/a\\b"));
        assert_eq!(request_spelling("/a%5Cb/").as_deref(), Some("/a\\b/"));
        assert_eq!(request_spelling("/a%2Fb//c"), None);
        assert_eq!(request_spelling("/%61/../b"), None);
        // The forwarded bytes still keep `%2F` and a dot-free backslash path.
        assert_eq!(forward_path("/a%2fb"), "/a%2Fb");
        assert_eq!(forward_path("/%78/a\\b"), "/%78/a\\b");
    }

    #[test]
    fn a_backslash_path_without_dots_is_forwarded_as_written() {
        for input in ["/a\\", "/a/\\b", "/a\\\\b", "/a%61\\b"] {
            assert!(matches!(forward_path(input), Cow::Borrowed(_)), "{input}");
        }
        // Another separator next to a slash is not merged away.
        assert_eq!(forward_path("/a%5c/b"), "/a%5C/b");
        assert_eq!(forward_path("/a/%5Cb"), "/a/%5Cb");
        assert_eq!(normalize_path("/a%5c/b"), "/a/b");
    }

    #[test]
    fn rule_keys_keep_the_spelling_and_refuse_dot_segments() {
        for (path, want) in [
            ("/a/b", Some("/a/b")),
            ("/a%5cb", Some("/a\\b")),
            ("/%61%62/c/", Some("/ab/c/")),
            ("/a\\b", Some("/a\\b")),
            // A backslash does not stop escapes decoding or slashes merging.
            ("/%78/a\\%62", Some("/x/a\\b")),
            ("/x//a\\b/", Some("/x/a\\b/")),
            // `%2F` is a slash, as nginx decodes it before matching.
            ("/api/group%2Fname", Some("/api/group/name")),
            ("/a%2f%2Fb%2F", Some("/a/b/")),
            ("/a%5C/", Some("/a\\/")),
            ("/%5Cadmin", Some("/\\admin")),
            ("/\\admin", Some("/\\admin")),
            ("/%2Fadmin", Some("/admin")),
            ("/.hidden", Some("/.hidden")),
            ("/static/..", None),
            ("/static/%2e%2e", None),
            ("/static/.%2E/x", None),
            ("/./x", None),
            ("/a%5C..%5Cb", None),
            ("/a\\..", None),
        ] {
            assert_eq!(rule_key(path).as_deref(), want, "{path}");
        }
        assert_eq!(depth("/a%5Cb/c"), 3);
        assert_eq!(depth("/"), 0);
        for (key, want) in [
            ("/api/", "/api"),
            ("/", "/"),
            ("/a%5Cb", "/"),
            ("/x/a%5Cb/c", "/x"),
            ("/x/caf%C3%A9", "/x"),
            ("/x/a\\b", "/x"),
            ("/api/v1", "/api/v1"),
        ] {
            assert_eq!(plain_prefix(key, key), want, "{key}");
        }
        // Elements from the one written with `%2F` on are not plain: the
        // requests spelling it so do not start with the key's `/`.
        for (written, want) in [
            ("/git/group%2Fname", "/git"),
            ("/git/%2fname/x", "/git"),
            ("/git%2F", "/"),
            ("/%67it/group/a%2Fb", "/git/group"),
        ] {
            let key = rule_key(written).unwrap_or_default();
            assert_eq!(plain_prefix(&key, written), want, "{written}");
        }
    }

    #[test]
    fn a_regex_wins_only_when_its_written_path_is_longer_than_the_prefix() {
        // Rule index = written length, as `get` assumes: "/api" is 4 long,
        // "/api/v1" 7, "/api/v1/x.+" 11, "/" 1.
        let mut t = PathTable::default();
        assert_eq!(t.insert("/api", MatchKind::Regex, 4), Ok(()));
        assert_eq!(t.insert("/api/v1", MatchKind::Prefix, 7), Ok(()));
        assert_eq!(t.insert("/", MatchKind::Prefix, 1), Ok(()));
        assert_eq!(t.insert("/api/v1/x.+", MatchKind::Regex, 11), Ok(()));
        assert_eq!(t.get("/api/other").map(|r| r.0), Some(4));
        assert_eq!(t.get("/API/other").map(|r| r.0), Some(4));
        assert_eq!(t.get("/api/v1/users").map(|r| r.0), Some(7));
        assert_eq!(t.get("/api/v1/xyz").map(|r| r.0), Some(11));
        assert_eq!(t.get("/other").map(|r| r.0), Some(1));
        // A tie goes to the prefix.
        let mut t = PathTable::default();
        assert_eq!(t.insert("/abc", MatchKind::Regex, 4), Ok(()));
        assert_eq!(t.insert("/abc", MatchKind::Prefix, 4 + 100), Ok(()));
        assert_eq!(t.lookup("/abc/d", |_| 4).map(|r| r.0), Some(104));
        assert!(t.lookup("/abc/d", |_| 4).unwrap().1.is_none());
    }

    #[test]
    fn a_spelled_prefix_ends_at_every_separator() {
        // Spelled keys write every backslash as `\` (`/a%5Cb` is `/a\b`).
        let mut t = PathTable::default();
        assert_eq!(t.insert("/a\\b", MatchKind::Prefix, 1), Ok(()));
        assert_eq!(t.insert("/a", MatchKind::Prefix, 2), Ok(()));
        assert_eq!(t.insert("/p/q\\r", MatchKind::Prefix, 3), Ok(()));
        assert_eq!(t.insert("/e\\f\\", MatchKind::Prefix, 4), Ok(()));
        assert_eq!(t.insert("/\\", MatchKind::Prefix, 5), Ok(()));
        for (spelled, want) in [
            ("/a\\b", Some(1)),
            ("/a\\b\\", Some(1)),
            ("/a\\b\\c/d", Some(1)),
            ("/a\\b/c", Some(1)),
            ("/a\\bc", Some(2)),
            ("/p/q\\r\\s", Some(3)),
            ("/p/q\\rs", None),
            ("/ab\\", None),
            ("/e\\f\\g", Some(4)),
            ("/e\\f\\\\g", Some(4)),
            ("/e\\f\\", Some(4)),
            ("/e\\fg", None),
            ("/\\a", Some(5)),
            ("/\\", Some(5)),
        ] {
            assert_eq!(t.lookup_spelled(spelled), want, "{spelled}");
        }
        assert_eq!(
            inner_boundaries("/a\\b/\\c\\").collect::<Vec<_>>(),
            [8, 7, 6, 3, 2]
        );
    }

    #[test]
    fn segments_drop_empty_elements() {
        for (path, want) in [
            ("/", &[][..]),
            ("", &[]),
            ("/aaa/bbb/", &["aaa", "bbb"]),
            ("//aaa//bbb", &["aaa", "bbb"]),
            ("/ü/x", &["ü", "x"]),
            ("aaa", &["aaa"]),
        ] {
            assert_eq!(segments(path).collect::<Vec<_>>(), want, "{path:?}");
            let key = want.join("/");
            assert!(want.is_empty() || same_elements(key.as_bytes(), path.trim_start_matches('/')));
        }
    }

    #[test]
    fn the_table_grows_and_keeps_every_key() {
        let mut t = PathTable::default();
        for i in 0..200u32 {
            assert_eq!(t.insert(&format!("/p{i}/x"), MatchKind::Prefix, i), Ok(()));
            assert_eq!(
                t.insert(&format!("/p{i}"), MatchKind::Exact, 1000 + i),
                Ok(())
            );
        }
        assert_eq!(t.insert("/p3/x/", MatchKind::Prefix, 99), Ok(()));
        assert!(t.slots.len() >= 2 * t.keys as usize);
        for i in 0..200u32 {
            let want = if i == 3 { 99 } else { i };
            assert_eq!(t.get(&format!("/p{i}/x/y")).map(|r| r.0), Some(want));
            assert_eq!(t.get(&format!("/p{i}//x")).map(|r| r.0), Some(want));
            assert_eq!(t.get(&format!("/p{i}")).map(|r| r.0), Some(1000 + i));
            assert!(t.get(&format!("/p{i}/xy")).is_none());
            assert!(t.get(&format!("/p{i}/")).is_none());
        }
    }

    #[test]
    fn deep_prefixes_match_beyond_the_remembered_depths() {
        let deep = |n: usize| (0..n).map(|i| format!("/s{i}")).collect::<String>();
        let mut t = PathTable::default();
        assert_eq!(t.insert("/s0", MatchKind::Prefix, 1), Ok(()));
        assert_eq!(t.insert(&deep(DEPTHS), MatchKind::Prefix, 2), Ok(()));
        // Within the remembered depths: probed longest first.
        assert_eq!(t.get(&deep(DEPTHS + 3)).map(|r| r.0), Some(2));
        assert_eq!(t.get(&deep(DEPTHS - 1)).map(|r| r.0), Some(1));
        // Deeper than that (and than the 32 depth bits): shortest first.
        assert_eq!(t.insert(&deep(40), MatchKind::Prefix, 3), Ok(()));
        assert_eq!(t.get(&deep(45)).map(|r| r.0), Some(3));
        assert_eq!(t.get(&deep(39)).map(|r| r.0), Some(2));
        assert_eq!(t.get(&deep(DEPTHS - 1)).map(|r| r.0), Some(1));
        assert!(t.get("/x").is_none());
        assert_eq!(t.insert("/", MatchKind::Prefix, 4), Ok(()));
        assert_eq!(t.get("/x").map(|r| r.0), Some(4));
    }

    #[test]
    fn duplicates_keep_the_first_rule_and_ranks_order_one_node() {
        let mut t = PathTable::default();
        assert_eq!(t.insert("/foo", MatchKind::Prefix, 0), Ok(()));
        assert_eq!(
            t.insert("/foo", MatchKind::Prefix, 1),
            Err(Rejected::Duplicate(0))
        );
        assert_eq!(t.insert("/foo/", MatchKind::Prefix, 2), Ok(()));
        assert_eq!(
            t.insert("/foo", MatchKind::ImplementationSpecific, 3),
            Ok(())
        );
        assert_eq!(t.get("/foo").map(|r| r.0), Some(2));
        assert_eq!(t.insert("/foo", MatchKind::Exact, 4), Ok(()));
        assert_eq!(
            t.insert("/foo", MatchKind::Exact, 5),
            Err(Rejected::Duplicate(4))
        );
        assert_eq!(t.get("/foo").map(|r| r.0), Some(4));
        assert_eq!(t.get("/foo/x").map(|r| r.0), Some(2));
        assert!(matches!(
            t.insert("/(", MatchKind::Regex, 6),
            Err(Rejected::BadRegex(_))
        ));
    }
}
