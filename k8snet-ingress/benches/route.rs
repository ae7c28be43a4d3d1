//! Route lookup at 10, 100, 1,000 and 10,000 rules (10 rules per host, so
//! 10,000 rules span 1,000 hosts), and the router update after one Ingress
//! changes with 10,000 Ingresses present (on 1,000 hosts, and on 10,000).
//!
//! `cargo bench -p k8snet-ingress --bench route`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group};
use k8snet_ingress::{ClassSelector, Router};
use k8snet_model::{
    Cluster, HttpIngressPath, HttpIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, Object, ObjectMeta, PathType, ServiceBackendPort,
};

const RULES_PER_HOST: usize = 10;

fn host(h: usize) -> String {
    format!("app{h}.tenant{}.example.com", h % 97)
}

/// Path `i` of a host: a mix of Exact and element-wise Prefix paths
/// three segments deep, as real APIs look.
fn path(i: usize) -> (String, PathType) {
    let ty = if i.is_multiple_of(3) {
        PathType::Exact
    } else {
        PathType::Prefix
    };
    (format!("/api/v{}/resource{i}", i % 4), ty)
}

/// One Ingress per (host, path): `rules` Ingresses with one path each.
fn cluster(rules: usize) -> Cluster {
    cluster_over(rules, rules.div_ceil(RULES_PER_HOST))
}

/// `rules` Ingresses spread over `hosts` hosts.
fn cluster_over(rules: usize, hosts: usize) -> Cluster {
    let mut objects = Vec::with_capacity(rules);
    for n in 0..rules {
        let (h, i) = (n % hosts, n / hosts);
        objects.push(ingress(n, &host(h), i, 0));
    }
    Cluster::from_objects(objects)
}

fn ingress(n: usize, host: &str, i: usize, version: u32) -> Object {
    let (p, ty) = path(i);
    let mut meta = ObjectMeta::namespaced(format!("ns{}", n % 50), format!("ing{n}"));
    meta.creation_timestamp = Some(format!("2024-01-01T00:{:02}:{:02}Z", (n / 60) % 60, n % 60));
    Object::Ingress(Ingress {
        metadata: meta,
        spec: IngressSpec {
            rules: vec![IngressRule {
                host: Some(host.to_string()),
                http: Some(HttpIngressRuleValue {
                    paths: vec![HttpIngressPath {
                        path: Some(p),
                        path_type: ty,
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: format!("svc{n}-v{version}"),
                                port: ServiceBackendPort {
                                    number: Some(8080),
                                    name: None,
                                },
                            }),
                            resource: None,
                        },
                    }],
                }),
            }],
            ..IngressSpec::default()
        },
    })
}

/// Requests spread over hosts and paths, each one deeper than its rule (a
/// Prefix match walks all segments), one in ten a miss.
fn requests(rules: usize) -> Vec<(String, String)> {
    let hosts = rules.div_ceil(RULES_PER_HOST);
    (0..1024)
        .map(|k| {
            let (p, _) = path(k % RULES_PER_HOST);
            let p = if k % 10 == 9 {
                "/nothing/here".to_string()
            } else {
                format!("{p}/items")
            };
            (format!("{}:443", host(k * 7 % hosts).to_uppercase()), p)
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    for rules in [10, 100, 1_000, 10_000] {
        let router = Router::compile(&cluster(rules), &ClassSelector::default_class());
        assert_eq!(router.stats().rules, rules);
        let requests = requests(rules);
        let mut k = 0;
        g.bench_with_input(BenchmarkId::new("lookup", rules), &router, |b, r| {
            b.iter(|| {
                k = (k + 1) & 1023;
                let (h, p) = &requests[k];
                black_box(r.route(black_box(h), black_box(p)).map(|r| r.backend()))
            })
        });
    }
    g.finish();
}

fn update(c: &mut Criterion) {
    let mut g = c.benchmark_group("update");
    g.sample_size(20);
    let mut cluster = cluster(10_000);
    let router = Router::compile(&cluster, &ClassSelector::default_class());
    // Change one Ingress (its backend), then time the router update.
    let changed = ingress(4242, &host(4242 % 1000), 4, 1);
    let reference = changed.reference();
    cluster.upsert(changed).unwrap();
    g.bench_function("one_ingress_of_10000", |b| {
        b.iter(|| black_box(router.update(&cluster, &reference)))
    });
    g.bench_function("full_compile_10000", |b| {
        b.iter(|| black_box(Router::compile(&cluster, &ClassSelector::default_class())))
    });
    // The worst case for the host index, rebuilt whole on an update: every
    // Ingress on a host of its own.
    let mut cluster = cluster_over(10_000, 10_000);
    let router = Router::compile(&cluster, &ClassSelector::default_class());
    let changed = ingress(4242, &host(4242), 0, 1);
    let reference = changed.reference();
    cluster.upsert(changed).unwrap();
    g.bench_function("one_ingress_of_10000_hosts", |b| {
        b.iter(|| black_box(router.update(&cluster, &reference)))
    });
    g.finish();
}

/// `rounds` passes over the requests (the function callgrind counts in).
#[inline(never)]
fn count_lookups(router: &Router, requests: &[(String, String)], rounds: usize) -> usize {
    let mut found = 0;
    for _ in 0..rounds {
        for (h, p) in requests {
            found += usize::from(black_box(router.route(black_box(h), black_box(p))).is_some());
        }
    }
    found
}

criterion_group!(benches, lookup, update);

/// With `K8SNET_ROUTE_COUNT=ROUNDS` set, no criterion run: for each rule
/// count (or only `K8SNET_ROUTE_RULES`), ROUNDS passes of the 1,024
/// lookups in `count_lookups`, for instruction and cache-miss counts that
/// do not depend on the machine's load:
///
/// ```text
/// K8SNET_ROUTE_COUNT=100 K8SNET_ROUTE_RULES=10000 valgrind --tool=callgrind \
///   --cache-sim=yes --D1=32768,8,64 --LL=1048576,8,64 \
///   --toggle-collect='*count_lookups*' target/release/deps/route-…
/// ```
fn main() {
    if let Some(rounds) = std::env::var("K8SNET_ROUTE_COUNT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let only = std::env::var("K8SNET_ROUTE_RULES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok());
        for rules in [10, 100, 1_000, 10_000] {
            if only.is_some_and(|o| o != rules) {
                continue;
            }
            let router = Router::compile(&cluster(rules), &ClassSelector::default_class());
            let requests = requests(rules);
            let found = count_lookups(&router, &requests, rounds);
            println!(
                "{rules} rules: {} lookups, {found} found",
                rounds * requests.len()
            );
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
