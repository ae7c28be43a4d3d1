//! Primality for table sizes (deterministic Miller–Rabin on `u64`).

/// Whether `n` is prime. Deterministic for every `u64` (the first twelve
/// prime bases suffice below 3.3·10^24).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    for p in BASES {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let (mut d, mut s) = (n - 1, 0u32);
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    let mul = |a: u64, b: u64| ((u128::from(a) * u128::from(b)) % u128::from(n)) as u64;
    let pow = |mut b: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mul(r, b);
            }
            b = mul(b, b);
            e >>= 1;
        }
        r
    };
    'bases: for a in BASES {
        let mut x = pow(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// The smallest prime `>= n` (saturating at the largest `u32` prime).
pub fn next_prime(n: u32) -> u32 {
    const LARGEST_U32_PRIME: u32 = 4_294_967_291;
    let mut c = n.max(2);
    while c < LARGEST_U32_PRIME {
        if is_prime(u64::from(c)) {
            return c;
        }
        c += 1;
    }
    LARGEST_U32_PRIME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers_and_table_sizes() {
        let primes: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        for p in [65_537u64, 655_373, 16_381, 5_000_011, 4_294_967_291] {
            assert!(is_prime(p), "{p}");
        }
        // Carmichael numbers and a strong pseudoprime to base 2.
        for c in [561u64, 1105, 2047, 3_215_031_751, 65_536, 65_535] {
            assert!(!is_prime(c), "{c}");
        }
        assert_eq!(next_prime(65_536), 65_537);
        assert_eq!(next_prime(0), 2);
    }
}
