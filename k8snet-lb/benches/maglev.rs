//! Maglev build (division-free) beside the textbook `% M` fill, and lookup.
//!
//! `cargo bench -p k8snet-lb --bench maglev`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use k8snet_lb::hash::{Backend, Maglev, Permutation, naive_maglev_fill};

fn backends(n: u32) -> Vec<Backend> {
    (0..n)
        .map(|i| Backend::new(format!("198.18.{}.{}:8080", i / 250, i % 250)))
        .collect()
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    for (n, m) in [(1000u32, 65_537u32), (100, 65_537), (1000, 655_373)] {
        let b = backends(n);
        g.bench_with_input(
            BenchmarkId::new("division_free", format!("{n}x{m}")),
            &b,
            |bch, b| bch.iter(|| Maglev::new(m, b.iter().cloned()).map(|t| t.size())),
        );
        let perms: Vec<Permutation> = {
            let mut keys: Vec<&str> = b.iter().map(|x| x.key.as_str()).collect();
            keys.sort_unstable();
            keys.iter().map(|k| Permutation::of_key(k, m)).collect()
        };
        g.bench_with_input(
            BenchmarkId::new("naive_mod", format!("{n}x{m}")),
            &perms,
            |bch, p| bch.iter(|| naive_maglev_fill(m, black_box(p)).len()),
        );
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let t = Maglev::new(65_537, backends(1000)).expect("a valid table");
    // A fixed pseudo-random sequence of key hashes (xorshift).
    let hashes: Vec<u64> = std::iter::successors(Some(0x9e37_79b9_7f4a_7c15u64), |x| {
        let mut x = *x;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Some(x)
    })
    .take(4096)
    .collect();
    let mut g = c.benchmark_group("maglev_lookup");
    g.throughput(criterion::Throughput::Elements(hashes.len() as u64));
    g.bench_function("hash_mod_m_4096", |b| {
        b.iter(|| hashes.iter().map(|h| t.lookup(*h)).sum::<usize>())
    });
    g.bench_function("reciprocal_scale_4096", |b| {
        b.iter(|| {
            hashes
                .iter()
                .map(|h| t.lookup_scaled(*h as u32))
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, build, lookup);
criterion_main!(benches);
