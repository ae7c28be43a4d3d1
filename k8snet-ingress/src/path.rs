//! Path matching for one host: an exact-path map, regexes (only when an
//! Ingress asks for them) and a segment trie for Prefix paths, so a
//! lookup costs one hash probe per path segment whatever the rule count.

use std::borrow::Cow;

use regex::Regex;

use rustc_hash::FxHashMap;

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

/// A prefix rule's standing among the rules of the same trie node (which
/// match exactly the same requests): `/foo/` outranks `/foo` (the longer
/// written path, as the API docs say), and an explicit `Prefix` outranks
/// an ImplementationSpecific path treated as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    trailing_slash: bool,
    explicit: bool,
}

#[derive(Debug, Default, Clone)]
struct Node {
    children: Children,
    entry: Option<(Rank, u32)>,
}

/// A node's children: a short list while there are few, a hash map
/// beyond. The list keeps a hash tag of each segment apart from the keys,
/// so a lookup scans a few contiguous words and dereferences only the key
/// whose tag matches (the cache misses, not the comparisons, are what cost
/// at 10,000 rules).
#[derive(Debug, Clone)]
enum Children {
    Few {
        tags: Vec<u64>,
        keys: Vec<Box<str>>,
        nodes: Vec<Node>,
    },
    Many(FxHashMap<Box<str>, Node>),
}

const FEW: usize = 8;

impl Default for Children {
    fn default() -> Self {
        Self::Few {
            tags: Vec::new(),
            keys: Vec::new(),
            nodes: Vec::new(),
        }
    }
}

#[inline]
fn tag(seg: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(seg.as_bytes());
    h.finish()
}

impl Children {
    #[inline]
    fn get(&self, seg: &str) -> Option<&Node> {
        match self {
            Self::Few { tags, keys, nodes } => {
                let t = tag(seg);
                let i = tags
                    .iter()
                    .enumerate()
                    .position(|(i, &x)| x == t && keys.get(i).is_some_and(|k| **k == *seg))?;
                nodes.get(i)
            }
            Self::Many(m) => m.get(seg),
        }
    }

    fn get_or_insert(&mut self, seg: &str) -> &mut Node {
        if let Self::Few { keys, nodes, .. } = self
            && keys.len() >= FEW
            && !keys.iter().any(|k| **k == *seg)
        {
            let map = std::mem::take(keys)
                .into_iter()
                .zip(std::mem::take(nodes))
                .collect();
            *self = Self::Many(map);
        }
        match self {
            Self::Few { tags, keys, nodes } => {
                let i = match keys.iter().position(|k| **k == *seg) {
                    Some(i) => i,
                    None => {
                        tags.push(tag(seg));
                        keys.push(seg.into());
                        nodes.push(Node::default());
                        nodes.len() - 1
                    }
                };
                &mut nodes[i]
            }
            Self::Many(m) => m.entry(seg.into()).or_default(),
        }
    }
}

/// The paths of one host, each pointing at a rule index of that host.
#[derive(Debug, Default, Clone)]
pub(crate) struct PathTable {
    exact: FxHashMap<Box<str>, u32>,
    /// Longest pattern first; first match wins (ingress-nginx sorts its
    /// regex locations by length, and nginx takes the first that matches).
    regex: Vec<(Regex, u32)>,
    root: Node,
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
            MatchKind::Exact => match self.exact.get(path) {
                Some(&older) => Err(Rejected::Duplicate(older)),
                None => {
                    self.exact.insert(path.into(), rule);
                    Ok(())
                }
            },
            MatchKind::Regex => {
                let re = Regex::new(&format!("(?i)^{path}"))
                    .map_err(|e| Rejected::BadRegex(e.to_string()))?;
                // Stable: among equal lengths the older rule stays first.
                let at = self
                    .regex
                    .partition_point(|(r, _)| r.as_str().len() >= re.as_str().len());
                self.regex.insert(at, (re, rule));
                Ok(())
            }
            MatchKind::Prefix | MatchKind::ImplementationSpecific => {
                let rank = Rank {
                    trailing_slash: path.len() > 1 && path.ends_with('/'),
                    explicit: kind == MatchKind::Prefix,
                };
                let mut node = &mut self.root;
                for seg in segments(path) {
                    node = node.children.get_or_insert(seg);
                }
                match node.entry {
                    Some((r, older)) if r == rank => Err(Rejected::Duplicate(older)),
                    Some((r, _)) if r > rank => Ok(()), // outranked, never reachable
                    _ => {
                        node.entry = Some((rank, rule));
                        Ok(())
                    }
                }
            }
        }
    }

    /// The rule matching a (normalized) path: an exact path, else the first
    /// regex, else the deepest prefix.
    ///
    /// An exact match always matches the whole request path, so no prefix
    /// rule can be longer; taking it first is "longest wins, Exact on ties".
    #[inline]
    pub(crate) fn lookup(&self, path: &str) -> Option<(u32, Option<&Regex>)> {
        if !self.exact.is_empty()
            && let Some(&r) = self.exact.get(path)
        {
            return Some((r, None));
        }
        for (re, r) in &self.regex {
            if re.is_match(path) {
                return Some((*r, Some(re)));
            }
        }
        let mut node = &self.root;
        let mut best = node.entry;
        for seg in segments(path) {
            match node.children.get(seg) {
                Some(next) => {
                    node = next;
                    if node.entry.is_some() {
                        best = node.entry;
                    }
                }
                None => break,
            }
        }
        best.map(|(_, r)| (r, None))
    }
}

/// The elements of a path: split on `/`, empty elements dropped, so a
/// trailing slash and doubled slashes do not count (`/aaa/bbb/` matches
/// the Prefix `/aaa/bbb`).
#[inline]
fn segments(path: &str) -> Segments<'_> {
    Segments { rest: path }
}

/// The iterator behind [`segments`]: a plain byte scan, which for the
/// short segments of URL paths beats `split` (a `memchr` call each).
struct Segments<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let b = self.rest.as_bytes();
        let start = b.iter().position(|&c| c != b'/')?;
        let end = b[start..]
            .iter()
            .position(|&c| c == b'/')
            .map_or(b.len(), |n| start + n);
        // Both ends are at a '/' or an end of the string: char boundaries.
        let seg = self.rest.get(start..end)?;
        self.rest = self.rest.get(end..).unwrap_or_default();
        Some(seg)
    }
}

/// Normalizes a request path the way nginx does before it matches
/// locations, so that a rule cannot be bypassed by spelling its path
/// differently: percent-encoded unreserved characters are decoded (`%61`
/// → `a`; other escapes keep their meaning, with upper-case hex), `.` and
/// `..` segments are resolved, and repeated slashes merged. The proxy
/// routes *and forwards* the normalized path, so the backend sees the path
/// that was matched.
///
/// Borrows when there is nothing to do, the common case.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let b = path.as_bytes();
    let suspicious = b.contains(&b'%') || b.windows(2).any(|w| w == b"//" || w == b"/.");
    if !suspicious || !path.starts_with('/') {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut out: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split('/').skip(1) {
        trailing = matches!(seg, "" | "." | "..");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(decoded.len());
    for seg in &out {
        s.push('/');
        s.push_str(seg);
    }
    if trailing || out.is_empty() {
        s.push('/');
    }
    Cow::Owned(s)
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
            ("/a%2fb", "/a%2Fb"),
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
        }
    }

    #[test]
    fn nodes_with_many_children_switch_to_a_map() {
        let mut t = PathTable::default();
        for i in 0..20u32 {
            assert_eq!(t.insert(&format!("/p{i}/x"), MatchKind::Prefix, i), Ok(()));
        }
        assert_eq!(t.insert("/p3/x/", MatchKind::Prefix, 99), Ok(()));
        for i in 0..20u32 {
            let want = if i == 3 { 99 } else { i };
            assert_eq!(t.lookup(&format!("/p{i}/x/y")).map(|r| r.0), Some(want));
            assert!(t.lookup(&format!("/p{i}/xy")).is_none());
        }
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
        assert_eq!(t.lookup("/foo").map(|r| r.0), Some(2));
        assert_eq!(t.insert("/foo", MatchKind::Exact, 4), Ok(()));
        assert_eq!(
            t.insert("/foo", MatchKind::Exact, 5),
            Err(Rejected::Duplicate(4))
        );
        assert_eq!(t.lookup("/foo").map(|r| r.0), Some(4));
        assert_eq!(t.lookup("/foo/x").map(|r| r.0), Some(2));
        assert!(matches!(
            t.insert("/(", MatchKind::Regex, 6),
            Err(Rejected::BadRegex(_))
        ));
    }
}
