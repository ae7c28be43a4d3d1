//! k8snet-dns: `Zone::answer` (hit and NXDOMAIN) at 10,000 services,
//! building the zone of 10,000 services / 100,000 endpoints, one-service
//! update, and the zone's memory per 1,000 objects (measured with a
//! counting allocator, printed before the timings).
//!
//! Run: `cargo bench -p k8snet-dns --bench zone`. Figures are recorded in
//! BENCHMARKS.md.
#![allow(unsafe_code)] // the counting allocator below, and nothing else

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use k8snet_dns::{AnswerOutcome, Zone, ZoneConfig};
use k8snet_model::{Cluster, NsName, Object};

mod common;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    // OPT, payload 1232, as dig and resolvers send it.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    q
}

/// This thread's CPU time: unlike wall time, it does not count the time
/// other processes on a busy machine take from us.
#[cfg(target_os = "linux")]
fn cpu_now() -> std::time::Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(std::time::Duration::ZERO, |t| {
        std::time::Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
    })
}

#[cfg(not(target_os = "linux"))]
fn cpu_now() -> std::time::Duration {
    std::time::Duration::ZERO
}

/// The median CPU time of one call of `f`, over `rounds` rounds of `iters`.
fn cpu_median(rounds: usize, iters: u32, mut f: impl FnMut()) -> std::time::Duration {
    let mut per: Vec<std::time::Duration> = (0..rounds)
        .map(|_| {
            let t = cpu_now();
            for _ in 0..iters {
                f();
            }
            (cpu_now() - t) / iters
        })
        .collect();
    per.sort();
    per[per.len() / 2]
}

fn bench(c: &mut Criterion) {
    // `cargo bench` passes --bench; `cargo test --benches` (CI) runs each
    // benchmark once, where a smaller cluster keeps the debug build quick.
    let full = std::env::args().any(|a| a == "--bench");
    let services = if full { 10_000 } else { 500 };
    let f = common::fixture(services, 10);
    let objects: Vec<Object> = f.objects.clone();
    let cluster = Cluster::from_objects(objects);
    let cfg = ZoneConfig::default();

    let before = LIVE.load(Ordering::Relaxed);
    let zone = Zone::build(&cluster, &cfg).unwrap();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let objects = services * 11;
    let stats = zone.stats();
    eprintln!(
        "zone: {} names in {} shards, {:.1} MB live ({:.3} MB per 1,000 objects; {} objects = services + endpoints)",
        stats.names,
        stats.shards,
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / (objects as f64 / 1000.0),
        objects
    );

    // A headless service (index ≡ 4 mod 5) and its ClusterIP neighbour.
    let headless = services / 8 / 5 * 5 + 4;
    let mut out = vec![0u8; 1232];
    let hit = query(&f.a[headless - 1], 1);
    let nx = query(&f.nx[headless], 1);
    let srv = query(&f.srv[headless - 1], 33);
    for q in [&hit, &nx, &srv] {
        assert!(matches!(
            zone.answer(q, &mut out),
            AnswerOutcome::Answered(_)
        ));
    }
    if full {
        let hit_cpu = cpu_median(51, 200_000, || {
            black_box(zone.answer(black_box(&hit), &mut out));
        });
        let nx_cpu = cpu_median(51, 200_000, || {
            black_box(zone.answer(black_box(&nx), &mut out));
        });
        let build_cpu = cpu_median(5, 1, || {
            black_box(Zone::build(&cluster, &cfg).unwrap());
        });
        eprintln!(
            "cpu time (median): answer hit {hit_cpu:?}, answer NXDOMAIN {nx_cpu:?}, build {build_cpu:?}"
        );
    }
    c.bench_function("answer_hit_A_10k_services", |b| {
        b.iter(|| black_box(zone.answer(black_box(&hit), &mut out)))
    });
    c.bench_function("answer_nxdomain_10k_services", |b| {
        b.iter(|| black_box(zone.answer(black_box(&nx), &mut out)))
    });
    c.bench_function("answer_hit_SRV_10k_services", |b| {
        b.iter(|| black_box(zone.answer(black_box(&srv), &mut out)))
    });

    let mut g = c.benchmark_group("zone");
    g.sample_size(10);
    g.bench_function("build_10k_services_100k_endpoints", |b| {
        b.iter(|| black_box(Zone::build(&cluster, &cfg).unwrap()))
    });
    g.finish();

    // One headless service's endpoints change (10 endpoints, hostnames,
    // SRV, PTRs), and one ClusterIP service's.
    for (label, idx) in [("headless", headless), ("clusterip", headless - 1)] {
        let key = NsName::new(format!("ns-{}", idx % 100), format!("svc-{idx}"));
        let mut changed = cluster.clone();
        let slice_key = NsName::new(key.namespace.clone(), format!("svc-{idx}-abcde"));
        let mut slice = changed.slices_for_service(&key).next().unwrap().clone();
        slice.endpoints.pop();
        assert_eq!(slice.metadata.name, slice_key.name);
        changed.upsert(Object::EndpointSlice(slice)).unwrap();
        if full {
            let cpu = cpu_median(101, 20, || {
                black_box(zone.update_service(&changed, &key));
            });
            eprintln!("cpu time (median): update one {label} service {cpu:?}");
        }
        c.bench_function(&format!("update_one_{label}_service_10k"), |b| {
            b.iter_batched(
                || (),
                |()| black_box(zone.update_service(&changed, &key)),
                BatchSize::SmallInput,
            )
        });
    }
    // A namespace deleted with everything in it (100 Services and their
    // slices at 10k services), applied as one update.
    let ns = "ns-7";
    let mut gone = cluster.clone();
    let refs: Vec<_> = gone
        .objects()
        .iter()
        .filter(|o| o.kind().is_namespaced() && o.meta().namespace_or_default() == ns)
        .map(Object::reference)
        .collect();
    let deleted = refs.len();
    for r in &refs {
        gone.delete(r);
    }
    gone.delete(&k8snet_model::ObjectRef {
        kind: k8snet_model::Kind::Namespace,
        namespace: None,
        name: ns.to_string(),
    });
    if full {
        let cpu = cpu_median(21, 2, || {
            black_box(zone.update_namespace(&gone, ns));
        });
        eprintln!("cpu time (median): update_namespace, {ns} deleted ({deleted} objects) {cpu:?}");
    }
    c.bench_function("update_namespace_deleted_10k", |b| {
        b.iter_batched(
            || (),
            |()| black_box(zone.update_namespace(&gone, ns)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
