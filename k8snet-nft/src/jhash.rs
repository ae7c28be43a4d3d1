//! Linux's `jhash` (Bob Jenkins' lookup3, `include/linux/jhash.h`) and the
//! slot the kernel's `jhash ... mod M seed S` expression picks, so that user
//! space can predict where a flow goes (k8snet-lb's Maglev tables).

use crate::types::{DataType, Key};

#[inline]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

#[inline]
fn finish(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// Linux `jhash(key, len, initval)`: lookup3 with the start value
/// `0xdeadbeef + len + initval`. Whole 12-byte blocks are read in the CPU's
/// byte order, as the kernel does.
pub fn jhash(key: &[u8], initval: u32) -> u32 {
    // The kernel takes the length as u32; keys here are register contents
    // (at most 64 bytes), so truncation never happens in practice.
    let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    let init = 0xdead_beef_u32.wrapping_add(len).wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut k = key;
    let word = |s: &[u8]| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]);
    while k.len() > 12 {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    // The tail is added byte by byte, little-endian style, on every CPU.
    let mut tail = [0u32; 3];
    for (i, byte) in k.iter().enumerate() {
        tail[i / 4] = tail[i / 4].wrapping_add(u32::from(*byte) << (8 * (i % 4)));
    }
    a = a.wrapping_add(tail[0]);
    b = b.wrapping_add(tail[1]);
    c = c.wrapping_add(tail[2]);
    finish(&mut a, &mut b, &mut c);
    c
}

/// The slot `jhash <key> mod <modulus> seed <seed>` gives in the kernel:
/// `reciprocal_scale(jhash(key, seed), modulus)`, i.e.
/// `(jhash as u64 * modulus) >> 32` (not `jhash % modulus`). `key` is the
/// register contents (see [`key_bytes`]). Add the expression's `offset` yourself.
pub fn predict_jhash_slot(key: &[u8], seed: u32, modulus: u32) -> u32 {
    let h = u64::from(jhash(key, seed));
    // (h * modulus) >> 32 < modulus <= u32::MAX, so it always fits.
    u32::try_from((h * u64::from(modulus)) >> 32).unwrap_or(u32::MAX)
}

/// The register bytes of `key` (one field as it is; the fields of a
/// concatenation each padded with zeros to 4 bytes), which is what `jhash`
/// hashes. `None` if the key is not of those types.
pub fn key_bytes(key: &Key, types: &[DataType]) -> Option<Vec<u8>> {
    key.fits(types).then(|| key.encode(types))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Value;

    /// Test vectors from lookup3.c's driver (`hashlittle`, which the kernel's
    /// jhash equals on little-endian machines).
    #[test]
    fn lookup3_vectors() {
        assert_eq!(jhash(b"", 0), 0xdead_beef);
        assert_eq!(jhash(b"", 0xdead_beef), 0xbd5b_7dde);
        if cfg!(target_endian = "little") {
            let s = b"Four score and seven years ago";
            assert_eq!(jhash(s, 0), 0x1777_0551);
            assert_eq!(jhash(s, 1), 0xcd62_8161);
        }
    }

    #[test]
    fn slots_scale_rather_than_take_a_remainder() {
        let key = key_bytes(
            &Key(vec![
                Value::Ipv4("198.18.0.2".parse().unwrap()),
                Value::Port(40000),
            ]),
            &[DataType::Ipv4Addr, DataType::InetService],
        )
        .unwrap();
        assert_eq!(key, [198, 18, 0, 2, 0x9c, 0x40, 0, 0]);
        let h = u64::from(jhash(&key, 0x1234));
        assert_eq!(
            u64::from(predict_jhash_slot(&key, 0x1234, 7)),
            (h * 7) >> 32
        );
        assert!(predict_jhash_slot(&key, 0x1234, 65537) < 65537);
        assert_eq!(predict_jhash_slot(&key, 9, 1), 0);
    }
}
