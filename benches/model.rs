//! k8snet-model: loading, validating and indexing 10,000 mixed objects, and
//! one incremental upsert into a cluster of that size.
//!
//! Run: `cargo bench --bench model`. Figures are recorded in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use k8snet::model::{Cluster, Manifests, Object, Pod};

/// The input (10,000 objects: 100 namespaces, 6,000 pods, 1,500 services,
/// 1,500 endpoint slices, 900 network policies), shared with the
/// `load_10k` example that times and profiles the same load.
#[path = "../k8snet-model/examples/support/mixed.rs"]
mod mixed;

fn load_text(file: &str, text: &str) -> Cluster {
    let mut m = Manifests::new();
    m.load_str(file, text);
    assert!(m.errors().is_empty(), "{:?}", &m.errors()[..1]);
    Cluster::from_objects(m.into_objects())
}

fn bench_load(c: &mut Criterion) {
    let json = mixed::mixed_json();
    let yaml = {
        let mut m = Manifests::new();
        m.load_str("gen.json", &json);
        m.to_yaml().unwrap()
    };
    let mut g = c.benchmark_group("model/load_validate_index_10k");
    g.sample_size(10);
    g.bench_function("json", |b| {
        b.iter(|| black_box(load_text("gen.json", &json)))
    });
    g.bench_function("yaml", |b| {
        b.iter(|| black_box(load_text("gen.yaml", &yaml)))
    });
    g.finish();

    let cluster = load_text("gen.json", &json);
    let pod = |ip: &str| -> Object {
        let v = serde_json::json!({"metadata":{"name":"pod-17","namespace":"ns-17","labels":{"app":"app-2","tier":"backend"}},
            "spec":{"nodeName":"node-17","containers":[{"name":"c","ports":[{"name":"http","containerPort":8080}]}]},
            "status":{"phase":"Running","podIP":ip,"conditions":[{"type":"Ready","status":"True"}]}});
        Object::Pod(serde_json::from_value::<Pod>(v).unwrap())
    };
    let (a, b2) = (pod("198.18.30.1"), pod("198.18.30.2"));
    c.bench_function("model/upsert_one_pod_into_10k", |b| {
        let mut cl = cluster.clone();
        let mut flip = false;
        b.iter_batched(
            || {
                flip = !flip;
                if flip { a.clone() } else { b2.clone() }
            },
            |o| black_box(cl.upsert(o).unwrap()),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench_load);
criterion_main!(benches);
