//! Criterion benches of k8snet-policy (see BENCHMARKS.md for the figures):
//!
//! - `verdict/*`: one flow's verdict at 10,000 pods / 1,000 policies, the
//!   compiled evaluator and the reference evaluator (`tests/reference`) in
//!   the same run, over the same pre-generated random flows;
//! - `compile/*`: `PolicySet::compile` at 10,000 pods with 1,000 and
//!   10,000 policies;
//! - `update/*`: one incremental update at 10,000 pods / 10,000 policies.
//!
//! Run: `cargo bench -p k8snet-policy --bench policy`.
//!
//! The machine these run on is shared: other builds keep more threads
//! runnable than there are cores, and a measurement that spans a
//! scheduler time slice also counts the time other processes ran. So
//! verdicts are sampled flat in many short samples (about 2 ms each: most
//! run within one slice, and the median reflects those), and compile is
//! also reported as on-CPU time from the scheduler's own accounting
//! (`/proc/thread-self/schedstat`), next to wall time.

#![allow(missing_docs)]

#[path = "../tests/reference/mod.rs"]
mod reference;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use k8snet_model::{Manifests, Object, Protocol};
use k8snet_policy::{Endpoint, Flow, Options, PolicySet};

mod support;

use support::{PODS, Rng, cluster, pod_ip};

/// Random flows between pod addresses (9 in 10) and outside addresses,
/// on the ports the policies mention and a few others.
fn flows(n: usize) -> Vec<Flow> {
    let mut rng = Rng(42);
    let ports = [80, 53, 8080, 8081, 9050, 8042, 443, 9090];
    (0..n)
        .map(|_| {
            let src = IpAddr::V4(pod_ip(rng.below(PODS)));
            let dst = if rng.below(10) == 0 {
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, rng.below(250) as u8))
            } else {
                IpAddr::V4(pod_ip(rng.below(PODS)))
            };
            let protocol = if rng.below(8) == 0 {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            Flow::new(
                Endpoint::Ip(src),
                Endpoint::Ip(dst),
                protocol,
                ports[rng.below(ports.len())],
            )
        })
        .collect()
}

fn verdict(c: &mut Criterion) {
    let cluster = cluster(1_000);
    let options = Options::default();
    let set = PolicySet::compile(&cluster, &options);
    eprintln!("10k pods / 1k policies: {:?}", set.stats());
    let flows = flows(1 << 12);
    let allowed = flows.iter().filter(|f| set.verdict(f).is_allow()).count();
    eprintln!("{allowed} of {} flows allowed", flows.len());
    // The two evaluators agree on every bench flow.
    for f in &flows[..2_000] {
        assert_eq!(
            set.verdict(f),
            reference::verdict(&cluster, &options, f),
            "{f}"
        );
    }
    let mut g = c.benchmark_group("verdict");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(2_000);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    let mut i = 0usize;
    g.bench_function("compiled_10k_pods_1k_policies", |b| {
        b.iter(|| {
            i = (i + 1) & (flows.len() - 1);
            black_box(set.verdict(black_box(&flows[i])))
        })
    });
    let mut i = 0usize;
    g.bench_function("reference_10k_pods_1k_policies", |b| {
        b.iter(|| {
            i = (i + 1) & (flows.len() - 1);
            black_box(reference::verdict(&cluster, &options, black_box(&flows[i])))
        })
    });
    let mut i = 0usize;
    g.bench_function("explain_10k_pods_1k_policies", |b| {
        b.iter(|| {
            i = (i + 1) & (flows.len() - 1);
            black_box(set.explain(black_box(&flows[i])))
        })
    });
    g.finish();
}

/// Nanoseconds the calling thread has spent on a CPU (Linux).
fn on_cpu() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

fn compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for (name, policies) in [
        ("10k_pods_1k_policies", 1_000),
        ("10k_pods_10k_policies", 10_000),
    ] {
        let cluster = cluster(policies);
        let options = Options::default();
        eprintln!(
            "{name}: {:?}",
            PolicySet::compile(&cluster, &options).stats()
        );
        // Dropping the previous set is not part of compiling the next.
        g.bench_function(name, |b| {
            b.iter_with_large_drop(|| PolicySet::compile(&cluster, &options))
        });
        if on_cpu().is_some() {
            g.bench_function(format!("{name}_on_cpu"), |b| {
                b.iter_custom(|iters| {
                    let mut total = 0u64;
                    for _ in 0..iters {
                        let start = on_cpu().unwrap_or(0);
                        let set = PolicySet::compile(&cluster, &options);
                        total += on_cpu().unwrap_or(0).saturating_sub(start);
                        drop(black_box(set));
                    }
                    Duration::from_nanos(total)
                })
            });
        }
    }
    g.finish();
}

fn one(yaml: &str) -> Object {
    let mut m = Manifests::new();
    m.load_str("update.yaml", yaml);
    m.into_objects().remove(0)
}

fn update(c: &mut Criterion) {
    let mut cluster = cluster(10_000);
    let options = Options::default();
    let mut set = PolicySet::compile(&cluster, &options);
    let mut g = c.benchmark_group("update");
    // A policy edit: np-7 alternates between two pod selectors.
    let versions = [0, 1].map(|v| {
        one(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np-7, namespace: ns-7}}\n\
             spec: {{podSelector: {{matchLabels: {{app: app-{v}}}}}, ingress: [{{from: [{{podSelector: {{}}}}], ports: [{{port: 80}}]}}]}}\n"
        ))
    });
    g.bench_function("policy_10k_pods_10k_policies", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for n in 0..iters {
                let o = versions[(n % 2) as usize].clone();
                let r = o.reference();
                cluster.upsert(o).expect("valid");
                let t = Instant::now();
                black_box(set.apply(&cluster, &r));
                total += t.elapsed();
            }
            total
        })
    });
    // A new pod with labels no pod had: one new identity.
    let pods = [0, 1].map(|v| {
        one(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: extra, namespace: ns-3, labels: {{app: new-{v}}}}}\nstatus: {{podIP: 198.18.200.1}}\n"
        ))
    });
    g.bench_function("pod_new_identity_10k_pods_10k_policies", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for n in 0..iters {
                let o = pods[(n % 2) as usize].clone();
                let r = o.reference();
                cluster.upsert(o).expect("valid");
                let t = Instant::now();
                black_box(set.apply(&cluster, &r));
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, verdict, compile, update);
criterion_main!(benches);
