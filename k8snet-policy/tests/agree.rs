//! The compiled evaluator agrees with the reference evaluator
//! (`tests/reference`) on random clusters: verdict, deciding tier, policy
//! and rule of both directions, for every option combination — after a
//! full compile and after incremental updates.

mod random;
mod reference;

use std::sync::atomic::{AtomicUsize, Ordering};

use k8snet_model::{Cluster, Kind, Object, ObjectRef};
use k8snet_policy::{
    Decision, Flow, HostNetwork, Options, PolicySet, Reason, SelfTraffic, Verdict,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use random::{Flows, Gen};
use reference::{By, Dir};

const CASES: u32 = 96;
const FLOWS_PER_CASE: usize = 128;

fn options(bits: u8) -> Options {
    let mut o = Options::default();
    o.ipblock_matches_pods = bits & 1 == 0;
    o.host_network = if bits & 2 == 0 {
        HostNetwork::AsNode
    } else {
        HostNetwork::AsPod
    };
    o.self_traffic = if bits & 4 == 0 {
        SelfTraffic::Allow
    } else {
        SelfTraffic::Evaluate
    };
    o
}

/// The compiled decision in the reference's terms.
fn project(d: &Decision) -> Dir {
    let by = match &d.reason {
        Reason::Rule(r) => By::Rule(r.tier, r.policy.to_string(), r.index),
        Reason::Isolated { .. } => By::Isolated,
        Reason::Default => By::Default,
        _ => By::Exempt,
    };
    Dir {
        verdict: d.verdict,
        by,
    }
}

fn dump(cluster: &Cluster) -> String {
    cluster
        .objects()
        .iter()
        .map(|o| serde_json::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(
    set: &PolicySet,
    cluster: &Cluster,
    opts: &Options,
    flows: &mut Flows,
    n: usize,
) -> Result<(), TestCaseError> {
    for _ in 0..n {
        let flow: Flow = flows.next_flow();
        let e = set.explain(&flow);
        prop_assert_eq!(
            set.verdict(&flow),
            e.verdict(),
            "verdict vs explain: {}",
            flow
        );
        let want = reference::evaluate(cluster, opts, &flow);
        let got = [project(&e.egress), project(&e.ingress)];
        prop_assert_eq!(
            &got,
            &want,
            "flow {}\nexplained: {}\noptions: {:?}\ncluster:\n{}",
            flow,
            e,
            opts,
            dump(cluster)
        );
        let reference_verdict = reference::verdict(cluster, opts, &flow);
        prop_assert_eq!(e.verdict(), reference_verdict);
    }
    Ok(())
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn compiled_agrees_with_reference_on_random_clusters() {
    let flows_run = AtomicUsize::new(0);
    let allowed = AtomicUsize::new(0);
    let strategy = (vec(any::<u8>(), 0..700), 0u8..8, any::<u64>());
    runner()
        .run(&strategy, |(bytes, bits, seed)| {
            let cluster = random::cluster(&mut Gen::new(&bytes));
            let opts = options(bits);
            let set = PolicySet::compile(&cluster, &opts);
            let mut flows = Flows::new(&cluster, seed);
            check(&set, &cluster, &opts, &mut flows, FLOWS_PER_CASE)?;
            let mut again = Flows::new(&cluster, seed);
            let n = (0..FLOWS_PER_CASE)
                .filter(|_| set.verdict(&again.next_flow()) == Verdict::Allow)
                .count();
            allowed.fetch_add(n, Ordering::Relaxed);
            flows_run.fetch_add(FLOWS_PER_CASE, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let total = flows_run.load(Ordering::Relaxed);
    let allowed = allowed.load(Ordering::Relaxed);
    assert!(total >= 10_000, "only {total} flows");
    // Both verdicts occur often enough for the comparison to mean something.
    assert!(
        allowed > total / 10 && allowed < total * 9 / 10,
        "{allowed} of {total} allowed"
    );
}

/// Applies one random change to the cluster; returns what changed.
fn mutate(g: &mut Gen<'_>, c: &mut Cluster, step: usize) -> Option<ObjectRef> {
    let pods: Vec<_> = c.pods().cloned().collect();
    let object: Object = match g.pick(10) {
        0 if !pods.is_empty() => {
            let mut p = g.choose(&pods);
            p.metadata.labels = random::pod(g, 0).metadata.labels;
            p.into()
        }
        1 if !pods.is_empty() => {
            let mut p = g.choose(&pods);
            p.spec.containers = random::pod(g, 0).spec.containers;
            p.into()
        }
        2 if !pods.is_empty() => {
            let r = Object::from(g.choose(&pods)).reference();
            c.delete(&r);
            return Some(r);
        }
        3 => random::pod(g, 20 + step).into(),
        4 if g.chance(25) => {
            // A Namespace object goes (the namespace stays, implicitly,
            // while objects are in it).
            let r = ObjectRef {
                kind: Kind::Namespace,
                namespace: None,
                name: g.choose(&random::NAMESPACES).into(),
            };
            c.delete(&r);
            return Some(r);
        }
        4 => {
            let ns = g.choose(&random::NAMESPACES);
            random::namespace(g, ns).into()
        }
        5 => {
            let name = format!("np{}", g.pick(6));
            random::network_policy(g, &name).into()
        }
        6 => {
            let name = format!("a{}", g.pick(3));
            random::admin_network_policy(g, &name).into()
        }
        7 => {
            let name = format!("c{}", g.pick(3));
            random::cluster_network_policy(g, &name).into()
        }
        8 => random::baseline(g).into(),
        _ => {
            // Delete a policy of some kind (or a node).
            let kinds = [
                Kind::NetworkPolicy,
                Kind::AdminNetworkPolicy,
                Kind::ClusterNetworkPolicy,
                Kind::BaselineAdminNetworkPolicy,
                Kind::Node,
            ];
            let refs: Vec<ObjectRef> = c
                .objects()
                .iter()
                .map(Object::reference)
                .filter(|r| kinds.contains(&r.kind))
                .collect();
            if refs.is_empty() {
                return None;
            }
            let r = g.choose(&refs);
            c.delete(&r);
            return Some(r);
        }
    };
    let r = object.reference();
    c.upsert(object).ok().map(|_| r)
}

#[test]
fn incremental_updates_agree_with_reference() {
    let strategy = (
        vec(any::<u8>(), 0..500),
        vec(any::<u8>(), 0..300),
        0u8..8,
        any::<u64>(),
    );
    runner()
        .run(&strategy, |(bytes, changes, bits, seed)| {
            let mut cluster = random::cluster(&mut Gen::new(&bytes));
            let opts = options(bits);
            let mut set = PolicySet::compile(&cluster, &opts);
            let mut g = Gen::new(&changes);
            for step in 0..8 {
                if let Some(r) = mutate(&mut g, &mut cluster, step) {
                    set.apply(&cluster, &r);
                }
                let mut flows = Flows::new(&cluster, seed ^ step as u64);
                check(&set, &cluster, &opts, &mut flows, 24)?;
            }
            // And the updated set describes the same cluster as a fresh
            // one: sizes, and every decision with its reasons.
            let fresh = PolicySet::compile(&cluster, &opts);
            prop_assert_eq!(set.stats().pods, fresh.stats().pods);
            prop_assert_eq!(set.stats().identities, fresh.stats().identities);
            prop_assert_eq!(set.stats().entries, fresh.stats().entries);
            let mut flows = Flows::new(&cluster, seed);
            for _ in 0..FLOWS_PER_CASE {
                let flow = flows.next_flow();
                prop_assert_eq!(
                    set.explain(&flow),
                    fresh.explain(&flow),
                    "flow {}\noptions: {:?}\ncluster:\n{}",
                    &flow,
                    &opts,
                    dump(&cluster)
                );
            }
            Ok(())
        })
        .unwrap();
}
