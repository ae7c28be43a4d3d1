//! The IP indexes of `Cluster` against a brute-force scan of what it
//! holds, over random sequences of watch events; and every event's
//! reported `Change` agrees with the revision (a consumer that caches by
//! revision and one that reacts to `Change` see the same history).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8snet_model::{Change, Cluster, Event, Kind, NsName, Object, ObjectRef, Pod, Service};
use proptest::prelude::*;

const V4: [&str; 2] = ["198.18.0.1", "198.18.0.2"];
const V6: [&str; 2] = ["fd00:18::1", "fd00:18::2"];
const SV4: [&str; 2] = ["198.19.0.1", "198.19.0.2"];
const SV6: [&str; 2] = ["fd00:19::1", "fd00:19::2"];
const NSS: [&str; 2] = ["a", "b"];
const NAMES: [&str; 3] = ["p", "q", "r"];
const PHASES: [Option<&str>; 6] = [
    Some("Running"),
    Some("Pending"),
    Some("Succeeded"),
    Some("Failed"),
    Some("Unknown"),
    None,
];

#[derive(Debug, Clone)]
enum Op {
    UpsertPod {
        ns: usize,
        name: usize,
        v4: Option<usize>,
        v6: Option<usize>,
        v6_first: bool,
        legacy_only: bool,
        phase: usize,
        terminating: bool,
        host_network: bool,
    },
    DeletePod(usize, usize),
    UpsertSvc {
        ns: usize,
        name: usize,
        v4: Option<usize>,
        v6: Option<usize>,
        v6_first: bool,
        headless: bool,
    },
    DeleteSvc(usize, usize),
    UpsertNs(usize),
    DeleteNs(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..3usize, proptest::option::of(0..2usize), proptest::option::of(0..2usize),
              any::<bool>(), any::<bool>(), 0..6usize, any::<bool>(), proptest::bool::weighted(0.15))
            .prop_map(|(ns, name, v4, v6, v6_first, legacy_only, phase, terminating, host_network)| Op::UpsertPod {
                ns, name, v4, v6, v6_first, legacy_only, phase, terminating, host_network
            }),
        2 => (0..2usize, 0..3usize).prop_map(|(a, b)| Op::DeletePod(a, b)),
        2 => (0..2usize, 0..3usize, proptest::option::of(0..2usize), proptest::option::of(0..2usize),
              any::<bool>(), proptest::bool::weighted(0.1))
            .prop_map(|(ns, name, v4, v6, v6_first, headless)| Op::UpsertSvc { ns, name, v4, v6, v6_first, headless }),
        1 => (0..2usize, 0..3usize).prop_map(|(a, b)| Op::DeleteSvc(a, b)),
        1 => (0..2usize).prop_map(Op::UpsertNs),
        1 => (0..2usize).prop_map(Op::DeleteNs),
    ]
}

fn ordered(v4: Option<&str>, v6: Option<&str>, v6_first: bool) -> Vec<String> {
    let mut ips: Vec<String> = v4.into_iter().chain(v6).map(str::to_string).collect();
    if v6_first {
        ips.reverse();
    }
    ips
}

fn pod_obj(op: &Op) -> Pod {
    let Op::UpsertPod {
        ns,
        name,
        v4,
        v6,
        v6_first,
        legacy_only,
        phase,
        terminating,
        host_network,
    } = op.clone()
    else {
        unreachable!()
    };
    let ips = ordered(v4.map(|i| V4[i]), v6.map(|i| V6[i]), v6_first);
    let mut status = serde_json::json!({});
    if let Some(p) = PHASES[phase] {
        status["phase"] = p.into();
    }
    if let Some(first) = ips.first() {
        status["podIP"] = first.clone().into();
        if !legacy_only {
            status["podIPs"] = ips.iter().map(|ip| serde_json::json!({"ip": ip})).collect();
        }
    }
    let mut v = serde_json::json!({
        "metadata": {"name": NAMES[name], "namespace": NSS[ns]},
        "spec": {"containers": [{"name": "c"}], "hostNetwork": host_network},
        "status": status,
    });
    if terminating {
        v["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
    }
    serde_json::from_value(v).unwrap()
}

fn svc_obj(op: &Op) -> Service {
    let Op::UpsertSvc {
        ns,
        name,
        v4,
        v6,
        v6_first,
        headless,
    } = op.clone()
    else {
        unreachable!()
    };
    let ips = ordered(v4.map(|i| SV4[i]), v6.map(|i| SV6[i]), v6_first);
    let mut spec = serde_json::json!({"ports": [{"port": 80}], "selector": {"app": "x"}});
    if headless {
        spec["clusterIP"] = "None".into();
    } else if let Some(first) = ips.first() {
        spec["clusterIP"] = first.clone().into();
        spec["clusterIPs"] = ips.clone().into();
        if ips.len() == 2 {
            spec["ipFamilyPolicy"] = "RequireDualStack".into();
        }
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": NAMES[name], "namespace": NSS[ns]},
        "spec": spec,
    }))
    .unwrap()
}

fn key(ns: usize, name: usize) -> NsName {
    NsName::new(NSS[ns], NAMES[name])
}

/// What the documentation promises, by scanning every pod.
fn naive_pod_by_ip(pods: &BTreeMap<NsName, Pod>, ip: IpAddr) -> Option<NsName> {
    pods.iter()
        .filter(|(_, p)| !p.is_finished() && !p.spec.host_network && p.ips().contains(&ip))
        .min_by_key(|(k, p)| {
            (
                p.is_terminating(),
                p.status.phase != Some(k8snet_model::PodPhase::Running),
                (*k).clone(),
            )
        })
        .map(|(k, _)| k.clone())
}

fn naive_service_by_ip(svcs: &BTreeMap<NsName, Service>, ip: IpAddr) -> Option<NsName> {
    svcs.iter()
        .filter(|(_, s)| s.cluster_ips().contains(&ip))
        .map(|(k, _)| k.clone())
        .next()
}

/// Applies `ops` to an empty cluster and to a brute-force model, checking
/// after each one that the indexes, the namespaces and the reported change
/// agree with the model.
fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut c = Cluster::new();
    let mut pods: BTreeMap<NsName, Pod> = BTreeMap::new();
    let mut svcs: BTreeMap<NsName, Service> = BTreeMap::new();
    let mut explicit_ns: BTreeSet<String> = BTreeSet::new();
    let all_ips: Vec<IpAddr> = V4
        .iter()
        .chain(&V6)
        .chain(&SV4)
        .chain(&SV6)
        .map(|s| s.parse().unwrap())
        .collect();
    for op in ops {
        let rev_before = c.revision();
        let change: Option<Change> = match op {
            Op::UpsertPod { ns, name, .. } => {
                let p = pod_obj(op);
                let r = c.apply(Event::Upsert(Object::Pod(p.clone())));
                prop_assert!(r.is_ok(), "{op:?}: {r:?}");
                pods.insert(key(*ns, *name), c.pod(&key(*ns, *name)).unwrap().clone());
                r.ok()
            }
            Op::DeletePod(ns, name) => {
                let gone = c
                    .apply(Event::Delete(ObjectRef {
                        kind: Kind::Pod,
                        namespace: Some(NSS[*ns].into()),
                        name: NAMES[*name].into(),
                    }))
                    .unwrap();
                let was = pods.remove(&key(*ns, *name)).is_some();
                prop_assert_eq!(gone == Change::Modified, was);
                Some(gone)
            }
            Op::UpsertSvc { ns, name, .. } => {
                let s = svc_obj(op);
                let r = c.apply(Event::Upsert(Object::Service(s)));
                prop_assert!(r.is_ok(), "{op:?}: {r:?}");
                svcs.insert(
                    key(*ns, *name),
                    c.service(&key(*ns, *name)).unwrap().clone(),
                );
                r.ok()
            }
            Op::DeleteSvc(ns, name) => {
                svcs.remove(&key(*ns, *name));
                Some(
                    c.apply(Event::Delete(ObjectRef {
                        kind: Kind::Service,
                        namespace: Some(NSS[*ns].into()),
                        name: NAMES[*name].into(),
                    }))
                    .unwrap(),
                )
            }
            Op::UpsertNs(ns) => {
                let o: k8snet_model::Namespace =
                    serde_json::from_value(serde_json::json!({"metadata": {"name": NSS[*ns]}}))
                        .unwrap();
                explicit_ns.insert(NSS[*ns].to_string());
                Some(c.apply(Event::Upsert(Object::Namespace(o))).unwrap())
            }
            Op::DeleteNs(ns) => {
                explicit_ns.remove(NSS[*ns]);
                Some(
                    c.apply(Event::Delete(ObjectRef {
                        kind: Kind::Namespace,
                        namespace: None,
                        name: NSS[*ns].into(),
                    }))
                    .unwrap(),
                )
            }
        };
        prop_assert_eq!(
            c.revision() != rev_before,
            change != Some(Change::Unchanged),
            "revision moved {} -> {} but apply said {:?} for {:?}",
            rev_before,
            c.revision(),
            change,
            op
        );
        for &ip in &all_ips {
            let got = c.pod_by_ip(ip).map(|p| {
                NsName::new(
                    p.metadata.namespace.clone().unwrap(),
                    p.metadata.name.clone(),
                )
            });
            prop_assert_eq!(
                got,
                naive_pod_by_ip(&pods, ip),
                "pod_by_ip({}) after {:?}",
                ip,
                op
            );
            let got = c.service_by_ip(ip).map(|s| {
                NsName::new(
                    s.metadata.namespace.clone().unwrap(),
                    s.metadata.name.clone(),
                )
            });
            prop_assert_eq!(
                got,
                naive_service_by_ip(&svcs, ip),
                "service_by_ip({}) after {:?}",
                ip,
                op
            );
        }
        // Every namespace holding an object is known; explicit ones are exactly the upserted ones.
        for k in pods.keys().chain(svcs.keys()) {
            prop_assert!(
                c.namespace(&k.namespace).is_some(),
                "namespace {} of {} unknown after {:?}",
                k.namespace,
                k,
                op
            );
        }
        for n in NSS {
            let explicit = c.namespace(n).is_some() && !c.is_implicit_namespace(n);
            prop_assert_eq!(
                explicit,
                explicit_ns.contains(n),
                "namespace {} explicit after {:?}",
                n,
                op
            );
        }
    }
    Ok(())
}

/// Sequences that once failed.
#[test]
fn known_sequences() {
    let pod = |ns, name, v4, host_network| Op::UpsertPod {
        ns,
        name,
        v4,
        v6: None,
        v6_first: false,
        legacy_only: false,
        phase: 0,
        terminating: false,
        host_network,
    };
    // A host-network pod owns no IP.
    check(&[pod(0, 0, Some(0), true)]).unwrap();
    // Forgetting the unused implicit namespace of a deleted pod is a change.
    check(&[pod(1, 2, None, false), Op::DeletePod(1, 2), Op::DeleteNs(1)]).unwrap();
    // Making an implicit namespace explicit is a change.
    check(&[pod(0, 0, Some(0), false), Op::UpsertNs(0)]).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ip_indexes_match_a_brute_force_scan(ops in proptest::collection::vec(op(), 1..40)) {
        check(&ops)?;
    }
}
