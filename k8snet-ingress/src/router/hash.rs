//! The hash behind the router's flat tables: eight bytes per
//! multiplication, and a variant that folds ASCII case as it reads, so a
//! request's `Host` is hashed (and then compared) without being copied
//! into lower case first.
//!
//! Keys are the cluster's own hosts and paths; a request can only probe,
//! never insert, so a weak spot in the hash cannot be used to degrade the
//! tables.

/// An odd constant with well-spread bits (the golden ratio).
const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// Seeds that keep the key spaces apart in shared tables.
pub(crate) const SEED_EXACT_HOST: u64 = 0x243f_6a88_85a3_08d3;
pub(crate) const SEED_WILDCARD_HOST: u64 = 0x1319_8a2e_0370_7344;
pub(crate) const SEED_EXACT_PATH: u64 = 0xa409_3822_299f_31d0;
pub(crate) const SEED_PREFIX_PATH: u64 = 0x082e_fa98_ec4e_6c89;

/// The 128-bit product folded to 64 bits: every input bit reaches every
/// output bit, the low ones included (the tables index by low bits).
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The last 1 to 7 bytes as a word, without a `memcpy` call: two
/// overlapping 4-byte reads from 4 bytes on, else the first, middle and
/// last byte (which for up to 3 bytes are all of them). With the length
/// hashed first, different tails give different words.
#[inline]
fn tail_word(tail: &[u8]) -> u64 {
    let n = tail.len();
    if let (Some(head), Some(last)) = (tail.first_chunk::<4>(), tail.last_chunk::<4>()) {
        return u64::from(u32::from_le_bytes(*head)) | u64::from(u32::from_le_bytes(*last)) << 32;
    }
    match (tail.first(), tail.get(n / 2), tail.last()) {
        (Some(&a), Some(&b), Some(&c)) => u64::from(a) | u64::from(b) << 8 | u64::from(c) << 16,
        _ => 0,
    }
}

/// Whether `stored` (lower case) equals `req` with ASCII case folded;
/// `req` must be ASCII (its [`folded`] hash exists), as a rule host is.
#[inline]
pub(crate) fn eq_folded(stored: &[u8], req: &[u8]) -> bool {
    if stored.len() != req.len() {
        return false;
    }
    let (a, at) = stored.as_chunks::<8>();
    let (b, bt) = req.as_chunks::<8>();
    a.iter()
        .zip(b)
        .all(|(x, y)| u64::from_le_bytes(*x) == lower(u64::from_le_bytes(*y)))
        && (at.is_empty() || tail_word(at) == lower(tail_word(bt)))
}

/// Whether two byte strings are equal, compared eight bytes at a time
/// (for the short keys of the router's tables, cheaper than a `memcmp`
/// call).
#[inline]
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (x, xt) = a.as_chunks::<8>();
    let (y, yt) = b.as_chunks::<8>();
    x.iter()
        .zip(y)
        .all(|(p, q)| u64::from_le_bytes(*p) == u64::from_le_bytes(*q))
        && (xt.is_empty() || tail_word(xt) == tail_word(yt))
}

/// The hash of `bytes`, continuing from `seed` (a previous hash, for a
/// sequence of path segments). The length goes in first, so a sequence of
/// pieces hashes differently from the same bytes cut elsewhere.
#[inline]
pub(crate) fn bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = fold_mul(seed ^ bytes.len() as u64, K);
    let (words, tail) = bytes.as_chunks::<8>();
    for w in words {
        h = fold_mul(h ^ u64::from_le_bytes(*w), K);
    }
    if !tail.is_empty() {
        h = fold_mul(h ^ tail_word(tail), K);
    }
    h
}

/// ASCII upper-case letters of a word made lower case (eight at once);
/// the result is meaningful only when every byte is ASCII.
#[inline]
fn lower(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // For a byte below 0x80, adding 0x80 - b'A' sets its top bit when it
    // is at least 'A', adding 0x80 - (b'Z' + 1) when it is above 'Z';
    // neither carries into the next byte.
    let ge_a = w.wrapping_add(ONES * (0x80 - u64::from(b'A')));
    let gt_z = w.wrapping_add(ONES * (0x80 - u64::from(b'Z') - 1));
    let upper = (ge_a ^ gt_z) & (ONES * 0x80);
    w | (upper >> 2)
}

/// [`bytes`] of the ASCII-lower-cased `s`, without copying it; `None` when
/// `s` is not ASCII (such a host can only match host-less rules).
#[inline]
pub(crate) fn folded(seed: u64, s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let mut seen = 0u64;
    let mut h = fold_mul(seed ^ b.len() as u64, K);
    let (words, tail) = b.as_chunks::<8>();
    for w in words {
        let w = u64::from_le_bytes(*w);
        seen |= w;
        h = fold_mul(h ^ lower(w), K);
    }
    if !tail.is_empty() {
        let w = tail_word(tail);
        seen |= w;
        h = fold_mul(h ^ lower(w), K);
    }
    (seen & 0x8080_8080_8080_8080 == 0).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_equals_hashing_the_lower_case_copy() {
        for s in [
            "",
            "a",
            "Foo.Example.COM",
            "APP1.TENANT1.EXAMPLE.COM",
            "@[`{az-AZ_09.]",
            "0123456789abcdefXYZ",
        ] {
            let lower = s.to_ascii_lowercase();
            assert_eq!(folded(7, s), Some(bytes(7, lower.as_bytes())), "{s:?}");
        }
        // Characters next to the letter ranges are left alone.
        assert_ne!(folded(7, "@"), folded(7, "`"));
        assert_ne!(folded(7, "["), folded(7, "{"));
        assert_eq!(folded(7, "bücher.de"), None);
    }

    #[test]
    fn folded_comparison_ignores_only_ascii_case() {
        for (stored, req, want) in [
            ("foo.example.com", "FOO.Example.COM", true),
            ("foo.example.com", "foo.example.co", false),
            ("foo.example.com", "foo.example.con", false),
            ("a", "A", true),
            ("ab", "aB", true),
            ("abc", "abd", false),
            ("abcdefgh", "ABCDEFGH", true),
            ("abcdefghi", "ABCDEFGHJ", false),
            ("a@", "a`", false),
            ("", "", true),
        ] {
            assert_eq!(eq_folded(stored.as_bytes(), req.as_bytes()), want, "{req}");
        }
    }

    #[test]
    fn equality_checks_every_byte() {
        let base = b"abcdefghijklmnopqrstu";
        for n in 0..=base.len() {
            let a = &base[..n];
            assert!(eq(a, a), "{n}");
            assert!(!eq(a, &base[..n.saturating_sub(1)]) || n == 0, "{n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!eq(a, &b), "{n} {at}");
            }
        }
    }

    #[test]
    fn length_and_seed_and_cut_points_count() {
        assert_ne!(bytes(1, b"a"), bytes(1, b"a\0"));
        assert_ne!(bytes(1, b"ab"), bytes(2, b"ab"));
        // Segment sequences: "ab" + "c" differs from "a" + "bc".
        assert_ne!(bytes(bytes(1, b"ab"), b"c"), bytes(bytes(1, b"a"), b"bc"));
        assert_ne!(bytes(1, b"12345678"), bytes(1, b"12345679"));
    }
}
