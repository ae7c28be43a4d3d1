//! Domain names in wire format: lowercase keys built from text, the
//! dashed-IP labels of endpoints and pods, reverse (arpa) names, and the
//! hash that places a name in the zone's table.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest name in wire format (RFC 1035 §2.3.4).
pub(crate) const MAX_NAME: usize = 255;
/// Longest label.
pub(crate) const MAX_LABEL: usize = 63;

/// A lowercase name in wire format (`3www7example3com0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct WireName(Vec<u8>);

impl WireName {
    /// The root name.
    pub(crate) fn root() -> Self {
        Self(vec![0])
    }

    /// Parses dotted text (a trailing dot is optional), lowercasing ASCII.
    /// `None` for an empty label, a label over 63 bytes, a name over 255
    /// bytes, or bytes outside printable ASCII.
    pub(crate) fn from_text(text: &str) -> Option<Self> {
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Some(Self::root());
        }
        let mut out = Vec::with_capacity(text.len() + 2);
        for label in text.split('.') {
            let b = label.as_bytes();
            if b.is_empty() || b.len() > MAX_LABEL || !b.iter().all(|c| c.is_ascii_graphic()) {
                return None;
            }
            out.push(b.len() as u8);
            out.extend(b.iter().map(u8::to_ascii_lowercase));
        }
        out.push(0);
        (out.len() <= MAX_NAME).then_some(Self(out))
    }

    /// A name from wire bytes as stored in the zone (uncompressed,
    /// lowercase); `None` unless well-formed.
    pub(crate) fn from_wire(bytes: &[u8]) -> Option<Self> {
        let mut pos = 0;
        loop {
            let len = usize::from(*bytes.get(pos)?);
            if len == 0 {
                break;
            }
            if len > MAX_LABEL {
                return None;
            }
            pos += len + 1;
        }
        (pos + 1 == bytes.len() && bytes.len() <= MAX_NAME).then(|| Self(bytes.to_vec()))
    }

    /// `label.` + `self`, if the result is a valid name.
    pub(crate) fn prepend(&self, label: &str) -> Option<Self> {
        let b = label.as_bytes();
        if b.is_empty() || b.len() > MAX_LABEL || self.0.len() + b.len() + 1 > MAX_NAME {
            return None;
        }
        let mut out = Vec::with_capacity(self.0.len() + b.len() + 1);
        out.push(b.len() as u8);
        out.extend(b.iter().map(u8::to_ascii_lowercase));
        out.extend_from_slice(&self.0);
        Some(Self(out))
    }

    /// The wire bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The number of labels (the root has none).
    pub(crate) fn label_count(&self) -> usize {
        label_starts(&self.0).count()
    }
}

/// The offsets at which each label of a well-formed wire name starts.
pub(crate) fn label_starts(name: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*name.get(pos)?);
        if len == 0 {
            return None;
        }
        let start = pos;
        pos += len + 1;
        Some(start)
    })
}

/// Whether `name` is `suffix` or ends with it at a label boundary.
pub(crate) fn is_subdomain(name: &[u8], suffix: &[u8]) -> bool {
    if name.len() < suffix.len() {
        return false;
    }
    let cut = name.len() - suffix.len();
    name[cut..] == *suffix && (cut == 0 || label_starts(name).any(|s| s == cut))
}

/// Dotted text of a wire name, with a trailing dot.
pub(crate) fn to_text(name: &[u8]) -> String {
    let mut s = String::new();
    for start in label_starts(name) {
        let len = usize::from(name[start]);
        for &c in &name[start + 1..start + 1 + len] {
            if c == b'.' || c == b'\\' {
                s.push('\\');
            }
            s.push(char::from(c));
        }
        s.push('.');
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// The hash that places a name in the zone's shards and orders a shard.
/// FxHash-style over 8-byte words with a murmur3 finaliser: cheap for the
/// short names of a cluster zone, and unseeded because only the zone's own
/// names (from the cluster, not from queries) are ever stored.
///
/// ASCII letters are lowercased on the fly (eight bytes at a time), so a
/// query name hashes like its lowercase key without being copied; label
/// length bytes (at most 63) are below `A` and unaffected.
pub(crate) fn hash(name: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = name.len() as u64;
    let mut chunks = name.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ lower8(u64::from_le_bytes(w))).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ lower8(u64::from_le_bytes(w))).wrapping_mul(K);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Whether two byte strings are equal ignoring ASCII case, eight bytes at
/// a time (the standard library's byte-wise loop costs several times more
/// on the short names of a zone, and this runs for every query).
pub(crate) fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a == b {
        return true; // the usual case: a lowercase query
    }
    let mut x = a.chunks_exact(8);
    let mut y = b.chunks_exact(8);
    for (p, q) in (&mut x).zip(&mut y) {
        if lower8(word(p)) != lower8(word(q)) {
            return false;
        }
    }
    lower8(word(x.remainder())) == lower8(word(y.remainder()))
}

/// Up to eight bytes as a little-endian word, zero-padded.
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = b.len().min(8);
    w[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(w)
}

/// Lowercases the ASCII letters of eight bytes at once.
fn lower8(w: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = w & !HIGH;
    // High bit set where the 7-bit value is >= b'A', and where it is > b'Z'.
    let ge_a = low7 + 0x3f3f_3f3f_3f3f_3f3f;
    let gt_z = low7 + 0x2525_2525_2525_2525;
    let upper = ge_a & !gt_z & !w & HIGH;
    w | (upper >> 2)
}

/// The label CoreDNS gives an endpoint without a hostname: the IP with
/// `.`/`:` replaced by `-` (`198-18-0-2`, `fd00-18--2`); an IPv6 label
/// ending in `-` gets a `0` appended.
pub(crate) fn dashed_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let mut s = v6.to_string().replace(':', "-");
            if s.ends_with('-') {
                s.push('0');
            }
            s
        }
    }
}

/// Parses a dashed-IP label (`a-b-c-d`, or IPv6 with `-` for `:`), the
/// way CoreDNS reads pod names: exactly three dashes and no `--` is IPv4,
/// anything else is tried as IPv6. Never allocates.
pub(crate) fn parse_dashed_ip(label: &[u8]) -> Option<IpAddr> {
    if label.is_empty() || label.len() > 45 {
        return None;
    }
    let dashes = label.iter().filter(|&&c| c == b'-').count();
    let double = label.windows(2).any(|w| w == b"--");
    let mut buf = [0u8; 45];
    let v4 = dashes == 3 && !double;
    for (dst, &c) in buf.iter_mut().zip(label) {
        *dst = match c {
            b'-' if v4 => b'.',
            b'-' => b':',
            c => c,
        };
    }
    let text = std::str::from_utf8(&buf[..label.len()]).ok()?;
    if v4 {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
}

/// The reverse name of an IP: `d.c.b.a.in-addr.arpa` or the 32-nibble
/// `ip6.arpa` name.
pub(crate) fn reverse_name(ip: IpAddr) -> WireName {
    let mut out = Vec::with_capacity(74);
    match ip {
        IpAddr::V4(v4) => {
            for o in v4.octets().iter().rev() {
                let s = o.to_string();
                out.push(s.len() as u8);
                out.extend_from_slice(s.as_bytes());
            }
            out.extend_from_slice(IN_ADDR_ARPA);
        }
        IpAddr::V6(v6) => {
            for o in v6.octets().iter().rev() {
                for nibble in [o & 0xf, o >> 4] {
                    out.push(1);
                    out.push(b"0123456789abcdef"[usize::from(nibble)]);
                }
            }
            out.extend_from_slice(IP6_ARPA);
        }
    }
    WireName(out)
}

/// `in-addr.arpa.` in wire format.
pub(crate) const IN_ADDR_ARPA: &[u8] = b"\x07in-addr\x04arpa\x00";
/// `ip6.arpa.` in wire format.
pub(crate) const IP6_ARPA: &[u8] = b"\x03ip6\x04arpa\x00";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_lowercases() {
        let n = WireName::from_text("Web.Shop.svc.cluster.local.").unwrap();
        assert_eq!(
            n.as_bytes(),
            b"\x03web\x04shop\x03svc\x07cluster\x05local\x00"
        );
        assert_eq!(to_text(n.as_bytes()), "web.shop.svc.cluster.local.");
        assert_eq!(n.label_count(), 5);
        assert!(WireName::from_text("a..b").is_none());
        assert!(WireName::from_text(&"a".repeat(64)).is_none());
        assert!(WireName::from_text(&["abcdefghi"; 26].join(".")).is_none());
    }

    #[test]
    fn subdomain_checks_label_boundaries() {
        let zone = WireName::from_text("cluster.local").unwrap();
        let a = WireName::from_text("x.cluster.local").unwrap();
        let b = WireName::from_text("xcluster.local").unwrap();
        assert!(is_subdomain(a.as_bytes(), zone.as_bytes()));
        assert!(is_subdomain(zone.as_bytes(), zone.as_bytes()));
        assert!(!is_subdomain(b.as_bytes(), zone.as_bytes()));
    }

    #[test]
    fn dashed_ips_round_trip() {
        for ip in ["198.18.0.2", "fd00:18::2", "5678:abcd::1", "fd00::", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let label = dashed_ip(ip);
            assert_eq!(parse_dashed_ip(label.as_bytes()), Some(ip), "{label}");
        }
        assert_eq!(dashed_ip("fd00::".parse().unwrap()), "fd00--0");
        assert_eq!(parse_dashed_ip(b"1-2-3"), None);
        assert_eq!(parse_dashed_ip(b"1-2-3-256"), None);
    }

    #[test]
    fn reverse_names() {
        let v4 = reverse_name("198.19.0.20".parse().unwrap());
        assert_eq!(to_text(v4.as_bytes()), "20.0.19.198.in-addr.arpa.");
        let v6 = reverse_name("fd00:19::a".parse().unwrap());
        let text = to_text(v6.as_bytes());
        assert!(text.starts_with("a.0.0.0.0.0.0.0."), "{text}");
        assert!(text.ends_with(".9.1.0.0.0.0.d.f.ip6.arpa."), "{text}");
        assert_eq!(v6.label_count(), 34);
    }

    #[test]
    fn hash_ignores_ascii_case_only() {
        let all: Vec<u8> = (0u8..=255).collect();
        let lower: Vec<u8> = all.iter().map(u8::to_ascii_lowercase).collect();
        assert_eq!(hash(&all), hash(&lower));
        for b in 0u8..=255 {
            assert_eq!(
                lower8(u64::from(b)),
                u64::from(b.to_ascii_lowercase()),
                "{b}"
            );
        }
        assert_ne!(hash(b"\x01a\x00"), hash(b"\x01b\x00"));
    }

    #[test]
    fn eq_ignore_case_matches_the_standard_library() {
        let words: [&[u8]; 9] = [
            b"",
            b"a",
            b"A",
            b"\x03web\x04shop\x00",
            b"\x03WeB\x04sHoP\x00",
            b"\x03wec\x04shop\x00",
            b"abcdefghijklmnopq",
            b"ABCDEFGHIJKLMNOPQ",
            b"@[`{\xc1\xe1",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    eq_ignore_case(a, b),
                    a.eq_ignore_ascii_case(b),
                    "{a:?} {b:?}"
                );
            }
        }
        for x in 0u8..=255 {
            for y in 0u8..=255 {
                let (a, b) = ([b'x', x, b'y'], [b'x', y, b'y']);
                assert_eq!(
                    eq_ignore_case(&a, &b),
                    a.eq_ignore_ascii_case(&b),
                    "{x} {y}"
                );
            }
        }
    }

    #[test]
    fn hash_differs_for_close_names() {
        let a = hash(b"\x03web\x04shop\x00");
        let b = hash(b"\x03wec\x04shop\x00");
        assert_ne!(a, b);
        assert_ne!(a >> 54, b >> 54);
    }
}
