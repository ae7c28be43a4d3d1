//! Balance and disruption statistics for any [`ConsistentHash`].

use super::{ConsistentHash, xxhash64};

/// The seed of the sample keys (`xxHash64(i, SAMPLE_SEED)` for `i` in
/// `0..samples`), fixed so statistics are reproducible.
const SAMPLE_SEED: u64 = 0x6b38_736e_6574; // "k8snet"

fn sample(i: u64) -> u64 {
    xxhash64(&i.to_le_bytes(), SAMPLE_SEED)
}

/// How evenly sample keys spread over the backends.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Balance {
    /// Keys per backend (in the hash's backend order).
    pub counts: Vec<u64>,
    /// The largest count over the mean (1.0 is perfect), weighted: each
    /// count is first divided by its backend's share of the total weight.
    pub max_over_mean: f64,
}

/// Spreads `samples` keys over `h` and reports the load per backend.
pub fn balance(h: &dyn ConsistentHash, samples: u64) -> Balance {
    let mut counts = vec![0u64; h.backends().len()];
    for i in 0..samples {
        counts[h.pick(sample(i))] += 1;
    }
    Balance {
        max_over_mean: max_over_mean(h, &counts),
        counts,
    }
}

/// `max(count_i / expected_i)` where `expected_i` is the total spread by
/// weight; 0 when there is nothing to count.
pub(crate) fn max_over_mean(h: &dyn ConsistentHash, counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let weights: u64 = h.backends().iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 || weights == 0 {
        return 0.0;
    }
    counts
        .iter()
        .zip(h.backends())
        .map(|(c, b)| *c as f64 / (total as f64 * f64::from(b.weight) / weights as f64))
        .fold(0.0, f64::max)
}

/// How many keys change backend between two versions of a hash.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Disruption {
    /// The share of sample keys whose backend (by key) changed.
    pub moved: f64,
    /// The share of sample keys that moved although their old backend is
    /// still in the new version (the avoidable part).
    pub moved_from_survivors: f64,
}

/// Compares where `samples` keys go in `old` and in `new`, by backend key.
pub fn disruption(old: &dyn ConsistentHash, new: &dyn ConsistentHash, samples: u64) -> Disruption {
    let survivors: std::collections::HashSet<&str> =
        new.backends().iter().map(|b| b.key.as_str()).collect();
    let (mut moved, mut avoidable) = (0u64, 0u64);
    for i in 0..samples {
        let k = sample(i);
        let a = &old.backends()[old.pick(k)].key;
        let b = &new.backends()[new.pick(k)].key;
        if a != b {
            moved += 1;
            if survivors.contains(a.as_str()) {
                avoidable += 1;
            }
        }
    }
    let n = samples.max(1) as f64;
    Disruption {
        moved: moved as f64 / n,
        moved_from_survivors: avoidable as f64 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn keys(n: usize, skip: usize) -> Vec<Backend> {
        (0..n)
            .filter(|i| *i != skip)
            .map(|i| Backend::new(format!("198.18.0.{i}:80")))
            .collect()
    }

    /// Every hash behind the same trait; the research's figures for N = 100
    /// (1M keys there, 200k here, so bounds are a little looser).
    #[test]
    fn all_hashes_balance_and_disrupt_as_measured() {
        let n = 100;
        let samples = 200_000;
        let build = |skip| -> Vec<Box<dyn ConsistentHash>> {
            vec![
                Box::new(Maglev::new(65_537, keys(n, skip)).unwrap()),
                Box::new(Ring::new(1000, keys(n, skip)).unwrap()),
                Box::new(Jump::new(keys(n, skip)).unwrap()),
                Box::new(Rendezvous::new(keys(n, skip)).unwrap()),
            ]
        };
        let before = build(usize::MAX);
        let after = build(37);
        for (a, b) in before.iter().zip(&after) {
            let bal = balance(a.as_ref(), samples);
            let d = disruption(a.as_ref(), b.as_ref(), samples);
            let (max_bal, max_survivors) = match a.name() {
                "maglev" => (1.1, 0.01),
                "ring" => (1.25, 0.002),
                "jump" => (1.1, 0.7), // positions shift: most keys move
                _ => (1.1, 0.002),
            };
            assert!(bal.max_over_mean < max_bal, "{}: {bal:?}", a.name());
            assert!(d.moved >= 0.008, "{}: {d:?}", a.name());
            assert!(
                d.moved_from_survivors <= max_survivors,
                "{}: {d:?}",
                a.name()
            );
            assert_eq!(bal.counts.iter().sum::<u64>(), samples);
        }
    }

    #[test]
    fn weighted_hashes_follow_their_weights() {
        let ws = [Backend::weighted("a:1", 1), Backend::weighted("b:1", 3)];
        let hs: Vec<Box<dyn ConsistentHash>> = vec![
            Box::new(Maglev::new(65_537, ws.clone()).unwrap()),
            Box::new(Ring::new(500, ws.clone()).unwrap()),
            Box::new(Rendezvous::new(ws.clone()).unwrap()),
        ];
        for h in hs {
            let b = balance(h.as_ref(), 100_000);
            let share = b.counts[1] as f64 / 100_000.0;
            assert!((share - 0.75).abs() < 0.03, "{}: {share}", h.name());
            assert!(b.max_over_mean < 1.1, "{}: {b:?}", h.name());
        }
    }
}
