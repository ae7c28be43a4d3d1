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
use k8snet_model::{
    AdminNetworkPolicy, BaselineAdminNetworkPolicy, Cluster, Manifests, Namespace, NetworkPolicy,
    Object, Pod, Protocol,
};
use k8snet_policy::{Endpoint, Flow, Options, PolicySet};
use serde_json::{Value, json};

const NAMESPACES: usize = 100;
const PODS: usize = 10_000;
const APPS: usize = 20;

/// xorshift64*: a fixed, dependency-free random stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn pod_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, (k / 250) as u8, (k % 250 + 1) as u8)
}

/// One NetworkPolicy: selects one app of its namespace, admits a mix of
/// peers (same-namespace app, namespaces of a team, an address block) on
/// a mix of ports (number, range, named); every fourth also isolates
/// egress.
fn network_policy(rng: &mut Rng, i: usize) -> Value {
    let ns = i % NAMESPACES;
    let app = rng.below(APPS);
    let peer = match rng.below(4) {
        0 | 1 => {
            json!({"podSelector": {"matchLabels": {"app": format!("app-{}", rng.below(APPS))}}})
        }
        2 => json!({
            "namespaceSelector": {"matchLabels": {"team": format!("t{}", rng.below(10))}},
            "podSelector": {"matchLabels": {"tier": "fe"}},
        }),
        _ => json!({"ipBlock": {"cidr": "203.0.113.0/24"}}),
    };
    let port = match rng.below(4) {
        0 => json!({"port": 80}),
        1 => json!({"port": "http"}),
        2 => json!({"port": 9000, "endPort": 9100}),
        _ => json!({"port": 8000 + rng.below(100)}),
    };
    let mut spec = json!({
        "podSelector": {"matchLabels": {"app": format!("app-{app}")}},
        "ingress": [{"from": [peer], "ports": [port]}],
    });
    if i.is_multiple_of(4) {
        spec["policyTypes"] = json!(["Ingress", "Egress"]);
        spec["egress"] = json!([{
            "to": [{"namespaceSelector": {}}],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 8080}],
        }]);
    }
    json!({"metadata": {"name": format!("np-{i}"), "namespace": format!("ns-{ns}")}, "spec": spec})
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("well-formed")
}

fn put(c: &mut Cluster, o: impl Into<Object>) {
    c.upsert(o.into()).expect("valid");
}

/// 100 namespaces of 100 pods (20 apps × 2 tiers), `policies`
/// NetworkPolicies, three AdminNetworkPolicies and a baseline. Built as
/// typed objects (parsing 20,000 YAML documents would dominate the run).
fn cluster(policies: usize) -> Cluster {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut c = Cluster::new();
    for n in 0..NAMESPACES {
        let env = if n % 3 == 0 { "prod" } else { "dev" };
        let ns = json!({"metadata": {"name": format!("ns-{n}"), "labels": {"team": format!("t{}", n % 10), "env": env}}});
        put(&mut c, typed::<Namespace>(ns));
    }
    for k in 0..PODS {
        let tier = if rng.below(2) == 0 { "fe" } else { "be" };
        let pod = json!({
            "metadata": {
                "name": format!("p-{k}"),
                "namespace": format!("ns-{}", k % NAMESPACES),
                "labels": {"app": format!("app-{}", rng.below(APPS)), "tier": tier},
            },
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080 + rng.below(2)},
                {"name": "metrics", "containerPort": 9090},
            ]}]},
            "status": {"podIP": pod_ip(k).to_string()},
        });
        put(&mut c, typed::<Pod>(pod));
    }
    for i in 0..policies {
        put(&mut c, typed::<NetworkPolicy>(network_policy(&mut rng, i)));
    }
    let admin = [
        json!({"metadata": {"name": "imds"}, "spec": {"priority": 1, "subject": {"namespaces": {}},
            "egress": [{"action": "Deny", "to": [{"networks": ["169.254.0.0/16"]}]}]}}),
        json!({"metadata": {"name": "monitoring"}, "spec": {"priority": 2,
            "subject": {"namespaces": {"matchLabels": {"env": "prod"}}},
            "ingress": [{"action": "Allow", "from": [{"namespaces": {"matchLabels": {"team": "t0"}}}],
                         "ports": [{"namedPort": "metrics"}]}]}}),
        json!({"metadata": {"name": "pass-dev"}, "spec": {"priority": 3,
            "subject": {"namespaces": {"matchLabels": {"env": "dev"}}},
            "egress": [{"action": "Pass", "to": [{"namespaces": {"matchLabels": {"env": "dev"}}}]}]}}),
    ];
    for a in admin {
        put(&mut c, typed::<AdminNetworkPolicy>(a));
    }
    let baseline = json!({"metadata": {"name": "default"}, "spec": {"subject": {"namespaces": {}},
        "egress": [{"action": "Deny", "to": [{"networks": ["203.0.113.0/24"]}]}]}});
    put(&mut c, typed::<BaselineAdminNetworkPolicy>(baseline));
    c
}

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
