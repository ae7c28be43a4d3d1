//! Incremental updates against full builds: after each change, the
//! updated snapshot must give byte-identical answers to `Zone::build` of
//! the same cluster, for every name either zone holds and for pod names
//! of every IP and namespace the test used, in every pod mode.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8snet_model::{Cluster, Kind, Manifests, NsName, Object, ObjectRef};

use crate::name::{self, WireName, dashed_ip};
use crate::{AnswerOutcome, PodMode, Transport, Zone, ZoneConfig};

/// The query types every name is asked for (MX stands for "a type the
/// zone never stores").
const QTYPES: [u16; 10] = [1, 28, 33, 12, 16, 2, 6, 5, 15, 255];

fn config(mode: PodMode) -> ZoneConfig {
    ZoneConfig::default().pods(mode).serial(7)
}

fn apply_yaml(c: &mut Cluster, yaml: &str) {
    let mut m = Manifests::new();
    m.load_str("change.yaml", yaml);
    assert!(m.errors().is_empty(), "{:#?}", m.errors());
    for o in m.into_objects() {
        c.upsert(o).unwrap();
    }
}

fn delete(c: &mut Cluster, kind: Kind, ns: Option<&str>, name: &str) {
    c.delete(&ObjectRef {
        kind,
        namespace: ns.map(str::to_string),
        name: name.to_string(),
    });
}

/// Deletes a namespace the way the namespace controller does: every
/// object in it, then the Namespace.
fn delete_namespace_and_objects(c: &mut Cluster, ns: &str) {
    let refs: Vec<ObjectRef> = c
        .objects()
        .iter()
        .filter(|o| o.kind().is_namespaced() && o.meta().namespace_or_default() == ns)
        .map(Object::reference)
        .collect();
    for r in refs {
        c.delete(&r);
    }
    delete(c, Kind::Namespace, None, ns);
}

fn query(name: &[u8], qtype: u16) -> Vec<u8> {
    let mut q = vec![0xAB, 0xCD, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn answer(z: &Zone, name: &[u8], qtype: u16) -> Vec<u8> {
    let q = query(name, qtype);
    let mut out = vec![0u8; 65_535];
    match z.answer_with(&q, Transport::Tcp, &mut out) {
        AnswerOutcome::Answered(r) | AnswerOutcome::NotAuthoritative(r) => out[..r.len].to_vec(),
        AnswerOutcome::Dropped => Vec::new(),
    }
}

/// [`answer`], and after it what the server reads beside the bytes: the
/// alias flags of the reply.
fn answer_and_flags(z: &Zone, name: &[u8], qtype: u16) -> Vec<u8> {
    let q = query(name, qtype);
    let mut out = vec![0u8; 65_535];
    match z.answer_with(&q, Transport::Tcp, &mut out) {
        AnswerOutcome::Answered(r) | AnswerOutcome::NotAuthoritative(r) => {
            let mut a = out[..r.len].to_vec();
            a.extend([u8::from(r.alias), u8::from(r.alias_in_zone)]);
            a
        }
        AnswerOutcome::Dropped => Vec::new(),
    }
}

/// Every name stored in the zone.
fn stored_names(z: &Zone) -> BTreeSet<Vec<u8>> {
    z.shards
        .iter()
        .flat_map(|s| s.nodes().map(|n| n.key().to_vec()))
        .collect()
}

/// Names the tests ask about besides the stored ones: pod names for each
/// IP × namespace, and a few that exist in neither zone.
fn probes(ips: &[&str], namespaces: &[&str]) -> BTreeSet<Vec<u8>> {
    let mut out = BTreeSet::new();
    let mut add = |text: String| {
        if let Some(n) = WireName::from_text(&text) {
            out.insert(n.as_bytes().to_vec());
        }
    };
    for ns in namespaces.iter().chain(&["nosuch"]) {
        for ip in ips {
            let label = dashed_ip(ip.parse().unwrap());
            add(format!("{label}.{ns}.pod.cluster.local"));
        }
        add(format!("{ns}.svc.cluster.local"));
        add(format!("{ns}.pod.cluster.local"));
        add(format!("nosuch.{ns}.svc.cluster.local"));
    }
    for ip in ips {
        add(name::to_text(
            name::reverse_name(ip.parse().unwrap()).as_bytes(),
        ));
    }
    out
}

/// The first name and type at which the two zones answer differently.
fn first_difference(a: &Zone, b: &Zone, extra: &BTreeSet<Vec<u8>>) -> Option<String> {
    let mut names = stored_names(a);
    names.extend(stored_names(b));
    names.extend(extra.iter().cloned());
    for n in &names {
        for t in QTYPES {
            let (x, y) = (answer_and_flags(a, n, t), answer_and_flags(b, n, t));
            if x != y {
                let text = name::to_text(n);
                return Some(format!(
                    "{text} type {t}:\n incremental {x:?}\n full        {y:?}"
                ));
            }
        }
    }
    None
}

/// `inc` answers exactly as a full build of `c` does.
fn assert_matches_full_build(inc: &Zone, c: &Cluster, cfg: &ZoneConfig, extra: &BTreeSet<Vec<u8>>) {
    let full = Zone::build(c, cfg).unwrap();
    if let Some(d) = first_difference(inc, &full, extra) {
        panic!("incremental update differs from a full build at {d}");
    }
    assert_eq!(inc.stats().names, full.stats().names);
    inc.verify().unwrap();
}

/// Indexes of the shards that differ (by allocation) between two zones.
fn changed_shards(a: &Zone, b: &Zone) -> BTreeSet<usize> {
    a.shards
        .iter()
        .zip(b.shards.iter())
        .enumerate()
        .filter(|(_, (x, y))| !Arc::ptr_eq(x, y))
        .map(|(i, _)| i)
        .collect()
}

/// The shard a name with shard hash of `key` lives in.
fn shard_of(z: &Zone, key: &WireName) -> usize {
    (name::hash(key.as_bytes()) >> z.shift) as usize
}

const BASE: &str = r"
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec: {clusterIP: 198.19.0.10, ports: [{name: dns, port: 53, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: other}
spec: {clusterIP: 198.19.0.40, ports: [{name: https, port: 443}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: other}
spec: {clusterIP: None, ports: [{name: pg, port: 5432}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: other, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- {addresses: [198.18.0.2], hostname: db-0}
- {addresses: [198.18.0.30]}
---
apiVersion: v1
kind: Pod
metadata: {name: q, namespace: other}
spec: {containers: [{name: c}]}
status: {phase: Running, podIP: 198.18.0.30}
";

/// The CoreDNS fixture (namespace `testns`) plus a namespace `other`
/// whose headless endpoint 198.18.0.2 is also one of `testns`'s (so its
/// PTR names both), and `kube-system/kube-dns` (the NS glue).
fn base_cluster() -> Cluster {
    let mut c = crate::tests::cluster();
    apply_yaml(&mut c, BASE);
    c
}

const IPS: [&str; 10] = [
    "198.18.0.2",
    "198.18.0.3",
    "198.18.0.9",
    "fd00:18::9",
    "198.18.0.30",
    "198.18.0.31",
    "198.19.0.1",
    "198.19.0.40",
    "198.19.0.50",
    "fd00:19::3",
];
const NAMESPACES: [&str; 4] = ["testns", "other", "kube-system", "fresh"];

#[test]
fn namespace_deletion_with_its_objects_matches_a_full_build() {
    let extra = probes(&IPS, &NAMESPACES);
    for mode in [PodMode::Disabled, PodMode::Insecure, PodMode::Verified] {
        let cfg = config(mode);
        let mut c = base_cluster();
        let old = Zone::build(&c, &cfg).unwrap();
        // The names the deletion may touch: testns's Services (one shard
        // each), its two empty non-terminals, the PTRs of its addresses.
        let zone = WireName::from_text("cluster.local").unwrap();
        let mut expected: BTreeSet<usize> = BTreeSet::new();
        for svc in c.services_in("testns") {
            let key = NsName::new("testns", svc.metadata.name.clone());
            expected.insert(shard_of(
                &old,
                &crate::k8s::service_name(&key, &zone).unwrap(),
            ));
        }
        for s in ["testns.svc.cluster.local", "testns.pod.cluster.local"] {
            expected.insert(shard_of(&old, &WireName::from_text(s).unwrap()));
        }
        for ip in [
            "198.18.0.2",
            "198.18.0.3",
            "198.18.0.4",
            "198.18.0.5",
            "fd00:18::1",
            "fd00:18::2",
            "198.19.0.1",
            "fd00:19::1",
            "198.19.0.3",
            "fd00:19::3",
            "198.19.0.4",
        ] {
            expected.insert(shard_of(&old, &name::reverse_name(ip.parse().unwrap())));
        }

        delete_namespace_and_objects(&mut c, "testns");
        // The comparison sees the change: the old zone is not the new one.
        let full = Zone::build(&c, &cfg).unwrap();
        assert!(first_difference(&old, &full, &extra).is_some());

        let new = old.update_namespace(&c, "testns");
        assert_matches_full_build(&new, &c, &cfg, &extra);
        let changed = changed_shards(&old, &new);
        assert!(
            changed.is_subset(&expected),
            "{mode:?}: shards {changed:?} changed, only {expected:?} hold testns's names"
        );
        assert!(changed.len() < old.shards.len() / 4, "{changed:?}");
        // The shared PTR keeps `other`'s target only.
        let ptr = answer(
            &new,
            name::reverse_name("198.18.0.2".parse().unwrap()).as_bytes(),
            12,
        );
        assert_eq!(u16::from_be_bytes([ptr[6], ptr[7]]), 1, "one PTR left");
    }
}

#[test]
fn deleting_a_namespace_object_keeps_names_while_objects_remain() {
    let extra = probes(&IPS, &NAMESPACES);
    let cfg = config(PodMode::Insecure);
    let mut c = base_cluster();
    apply_yaml(
        &mut c,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: fresh}\n",
    );
    let old = Zone::build(&c, &cfg).unwrap();
    let ent = WireName::from_text("fresh.pod.cluster.local").unwrap();
    let pod_name = WireName::from_text("198-18-0-31.fresh.pod.cluster.local").unwrap();
    let rcode = |z: &Zone, n: &WireName, t: u16| answer(z, n.as_bytes(), t)[3] & 0x0F;
    assert_eq!(rcode(&old, &ent, 1), 0, "NODATA while the namespace exists");
    assert_eq!(rcode(&old, &pod_name, 1), 0, "pods insecure: answered");

    // `other` still holds objects: deleting its Namespace changes nothing.
    delete(&mut c, Kind::Namespace, None, "other");
    assert!(c.is_implicit_namespace("other"));
    let z1 = old.update_namespace(&c, "other");
    assert_matches_full_build(&z1, &c, &cfg, &extra);
    assert!(first_difference(&old, &z1, &extra).is_none());

    // `fresh` is empty: its names go.
    delete(&mut c, Kind::Namespace, None, "fresh");
    let z2 = z1.update_namespace(&c, "fresh");
    assert_matches_full_build(&z2, &c, &cfg, &extra);
    assert_eq!(rcode(&z2, &ent, 1), 3, "NXDOMAIN once it is gone");
    assert_eq!(rcode(&z2, &pod_name, 1), 3);
}

const FRESH: &str = r"
apiVersion: v1
kind: Namespace
metadata: {name: fresh}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: fresh}
spec: {clusterIP: 198.19.0.50, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: sts, namespace: fresh}
spec: {clusterIP: None, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: sts-1, namespace: fresh, labels: {kubernetes.io/service-name: sts}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [198.18.0.31], hostname: sts-0}
- {addresses: [198.18.0.2], hostname: sts-1}
---
apiVersion: v1
kind: Pod
metadata: {name: sts-0, namespace: fresh}
spec: {containers: [{name: c}]}
status: {phase: Running, podIP: 198.18.0.31}
";

#[test]
fn namespace_creation_matches_a_full_build() {
    let extra = probes(&IPS, &NAMESPACES);
    for mode in [PodMode::Disabled, PodMode::Insecure, PodMode::Verified] {
        let cfg = config(mode);
        let mut c = base_cluster();
        let old = Zone::build(&c, &cfg).unwrap();
        apply_yaml(&mut c, FRESH);
        let new = old.update_namespace(&c, "fresh");
        assert_matches_full_build(&new, &c, &cfg, &extra);
        let web = WireName::from_text("web.fresh.svc.cluster.local").unwrap();
        assert_eq!(answer(&new, web.as_bytes(), 1)[7], 1, "one A record");
        assert_eq!(answer(&old, web.as_bytes(), 1)[3] & 0x0F, 3);
        // `fresh.pod` exists (NODATA) only with pod records (NXDOMAIN
        // with pods disabled, as CoreDNS).
        let ent = WireName::from_text("fresh.pod.cluster.local").unwrap();
        let want = if mode == PodMode::Disabled { 3 } else { 0 };
        assert_eq!(answer(&new, ent.as_bytes(), 1)[3] & 0x0F, want, "{mode:?}");
        // The PTR of 198.18.0.2 now names three endpoints.
        let ptr = answer(
            &new,
            name::reverse_name("198.18.0.2".parse().unwrap()).as_bytes(),
            12,
        );
        assert_eq!(u16::from_be_bytes([ptr[6], ptr[7]]), 3);
        // And deleting it again gives back the zone we started from.
        delete_namespace_and_objects(&mut c, "fresh");
        let back = new.update_namespace(&c, "fresh");
        assert_matches_full_build(&back, &c, &cfg, &extra);
        assert!(first_difference(&old, &back, &extra).is_none());
    }
}

#[test]
fn pod_changes_in_one_namespace_match_a_full_build() {
    let extra = probes(&IPS, &NAMESPACES);
    let cfg = config(PodMode::Verified);
    let mut c = base_cluster();
    let z0 = Zone::build(&c, &cfg).unwrap();
    let p31 = WireName::from_text("198-18-0-31.other.pod.cluster.local").unwrap();
    let p9 = WireName::from_text("198-18-0-9.testns.pod.cluster.local").unwrap();
    let rcode = |z: &Zone, n: &WireName| answer(z, n.as_bytes(), 1)[3] & 0x0F;
    assert_eq!(rcode(&z0, &p31), 3);
    assert_eq!(rcode(&z0, &p9), 0);

    apply_yaml(
        &mut c,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: r, namespace: other}\n\
         spec: {containers: [{name: c}]}\nstatus: {phase: Running, podIP: 198.18.0.31}\n",
    );
    let z1 = z0.update_pods_in(&c, "other");
    assert_matches_full_build(&z1, &c, &cfg, &extra);
    assert_eq!(rcode(&z1, &p31), 0);
    assert!(changed_shards(&z0, &z1).is_empty(), "no shard rebuilt");

    // A finished pod no longer owns its IP; a deleted one neither.
    apply_yaml(
        &mut c,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: testns}\n\
         spec: {containers: [{name: c}]}\nstatus: {phase: Succeeded, podIP: 198.18.0.9}\n",
    );
    delete(&mut c, Kind::Pod, Some("other"), "r");
    let z2 = z1.update_pods_in(&c, "testns").update_pods_in(&c, "other");
    assert_matches_full_build(&z2, &c, &cfg, &extra);
    assert_eq!(rcode(&z2, &p9), 3);
    assert_eq!(rcode(&z2, &p31), 3);
    // The full re-index agrees.
    assert!(first_difference(&z2, &z1.update_pods(&c), &extra).is_none());
}

#[test]
fn kube_dns_changes_rewrite_the_ns_glue() {
    let extra = probes(&IPS, &NAMESPACES);
    let cfg = config(PodMode::Disabled);
    let mut c = base_cluster();
    let key = NsName::new("kube-system", "kube-dns");
    delete(&mut c, Kind::Service, Some("kube-system"), "kube-dns");
    let z0 = Zone::build(&c, &cfg).unwrap();
    apply_yaml(
        &mut c,
        "apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns, namespace: kube-system}\n\
         spec: {clusterIP: 198.19.0.10, ports: [{name: dns, port: 53, protocol: UDP}]}\n",
    );
    let z1 = z0.update_service(&c, &key);
    assert_matches_full_build(&z1, &c, &cfg, &extra);
    let apex = WireName::from_text("cluster.local").unwrap();
    let additionals = |z: &Zone| {
        let a = answer(z, apex.as_bytes(), 2);
        u16::from_be_bytes([a[10], a[11]])
    };
    assert_eq!((additionals(&z0), additionals(&z1)), (0, 1));
    delete(&mut c, Kind::Service, Some("kube-system"), "kube-dns");
    let z2 = z1.update_service(&c, &key);
    assert_matches_full_build(&z2, &c, &cfg, &extra);
    assert_eq!(additionals(&z2), 0);
    // A configured nameserver is not overridden by the Service.
    let fixed = cfg.clone().nameservers(["198.19.0.99".parse().unwrap()]);
    apply_yaml(
        &mut c,
        "apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns, namespace: kube-system}\n\
         spec: {clusterIP: 198.19.0.11, ports: [{name: dns, port: 53, protocol: UDP}]}\n",
    );
    let z3 = Zone::build(&Cluster::new(), &fixed)
        .unwrap()
        .update_namespace(&c, "kube-system")
        .update_service(&c, &key);
    let a = answer(&z3, apex.as_bytes(), 2);
    assert_eq!(&a[a.len() - 4..], &[198, 19, 0, 99]);
}

/// A small deterministic generator (xorshift), so that a failure
/// reproduces.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn random_event_sequences_match_full_builds() {
    let namespaces = ["a", "b", "c"];
    let pod_ips: Vec<String> = (2..8).map(|i| format!("198.18.0.{i}")).collect();
    let svc_ips: Vec<String> = (1..6).map(|i| format!("198.19.0.{i}")).collect();
    let mut all_ips: Vec<&str> = pod_ips.iter().map(String::as_str).collect();
    all_ips.extend(svc_ips.iter().map(String::as_str));
    let extra = probes(&all_ips, &namespaces);
    for (seed, mode) in [
        (0x9E37_79B9_7F4A_7C15_u64, PodMode::Verified),
        (0xD1B5_4A32_D192_ED03, PodMode::Insecure),
        // Pod records off: `<ns>.pod.<zone>` must not exist after any
        // namespace or pod event either.
        (0x94D0_49BB_1331_11EB, PodMode::Disabled),
        (0xBF58_476D_1CE4_E5B9, PodMode::Disabled),
    ] {
        let cfg = config(mode);
        let mut rng = Rng(seed);
        let mut c = Cluster::new();
        let mut z = Zone::build(&c, &cfg).unwrap();
        let mut most_names = 0;
        for step in 0..120 {
            let ns = namespaces[rng.below(3) as usize];
            let svc = format!("s{}", rng.below(3));
            let what = rng.below(11);
            z = match what {
                // A ClusterIP Service (IPs from a small pool: shared PTRs).
                0 | 1 => {
                    let ip = &svc_ips[rng.below(5) as usize];
                    apply_yaml(
                        &mut c,
                        &format!(
                            "apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}, namespace: {ns}}}\n\
                             spec: {{clusterIP: {ip}, ports: [{{name: http, port: 80}}]}}\n"
                        ),
                    );
                    z.update_service(&c, &NsName::new(ns, &svc))
                }
                // A headless Service and its slice.
                2 | 3 => {
                    let mut eps = String::new();
                    for i in 0..rng.below(4) {
                        let ip = &pod_ips[rng.below(6) as usize];
                        let host = if rng.below(2) == 0 {
                            format!(", hostname: h{i}")
                        } else {
                            String::new()
                        };
                        eps.push_str(&format!("- {{addresses: [{ip}]{host}}}\n"));
                    }
                    let eps = if eps.is_empty() {
                        "endpoints: []\n".to_string()
                    } else {
                        format!("endpoints:\n{eps}")
                    };
                    apply_yaml(
                        &mut c,
                        &format!(
                            "apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}, namespace: {ns}}}\n\
                             spec: {{clusterIP: None, ports: [{{name: http, port: 80}}]}}\n---\n\
                             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
                             metadata: {{name: {svc}-1, namespace: {ns}, labels: {{kubernetes.io/service-name: {svc}}}}}\n\
                             addressType: IPv4\nports: [{{name: http, port: 8080, protocol: TCP}}]\n{eps}"
                        ),
                    );
                    z.update_service(&c, &NsName::new(ns, &svc))
                }
                4 => {
                    delete(&mut c, Kind::Service, Some(ns), &svc);
                    z.update_service(&c, &NsName::new(ns, &svc))
                }
                5 | 6 => {
                    let ip = &pod_ips[rng.below(6) as usize];
                    let phase = if rng.below(4) == 0 {
                        "Failed"
                    } else {
                        "Running"
                    };
                    apply_yaml(
                        &mut c,
                        &format!(
                            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{}, namespace: {ns}}}\n\
                             spec: {{containers: [{{name: c}}]}}\nstatus: {{phase: {phase}, podIP: {ip}}}\n",
                            rng.below(3)
                        ),
                    );
                    z.update_pods_in(&c, ns)
                }
                7 => {
                    apply_yaml(
                        &mut c,
                        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
                    );
                    z.update_namespace(&c, ns)
                }
                8 => {
                    delete(&mut c, Kind::Namespace, None, ns);
                    z.update_namespace(&c, ns)
                }
                // An ExternalName Service: to a name of the zone or not.
                10 => {
                    let target = match rng.below(3) {
                        0 => format!("s{}.{ns}.svc.cluster.local", rng.below(3)),
                        1 => "cluster.local".to_string(),
                        _ => format!("s{}.example.test", rng.below(3)),
                    };
                    apply_yaml(
                        &mut c,
                        &format!(
                            "apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}, namespace: {ns}}}\n\
                             spec: {{type: ExternalName, externalName: {target}}}\n"
                        ),
                    );
                    z.update_service(&c, &NsName::new(ns, &svc))
                }
                _ => {
                    delete_namespace_and_objects(&mut c, ns);
                    z.update_namespace(&c, ns)
                }
            };
            let full = Zone::build(&c, &cfg).unwrap();
            if let Some(d) = first_difference(&z, &full, &extra) {
                panic!("{mode:?} step {step} (event {what} in {ns}): {d}");
            }
            most_names = most_names.max(stored_names(&z).len());
        }
        // The sequence did build something.
        assert!(most_names > 10, "{mode:?}: at most {most_names} names");
    }
}

#[test]
fn several_services_updated_at_once_match_a_full_build() {
    // testns/hdls1 and other/db share 198.18.0.2; both move it at once.
    let extra = probes(&IPS, &NAMESPACES);
    let cfg = config(PodMode::Disabled);
    let mut c = base_cluster();
    let old = Zone::build(&c, &cfg).unwrap();
    apply_yaml(
        &mut c,
        r"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hdls1-v4, namespace: testns, labels: {kubernetes.io/service-name: hdls1}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [198.18.0.31], hostname: moved}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: other, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints: [{addresses: [198.18.0.31], hostname: db-0}, {addresses: [198.18.0.3]}]
",
    );
    let keys = [NsName::new("testns", "hdls1"), NsName::new("other", "db")];
    let new = old.update_services(&c, &keys);
    assert_matches_full_build(&new, &c, &cfg, &extra);
    // 198.18.0.2 lost both of its PTRs; 198.18.0.31 has both new ones.
    let ptrs = |ip: &str| {
        let a = answer(&new, name::reverse_name(ip.parse().unwrap()).as_bytes(), 12);
        (a[3] & 0x0F, u16::from_be_bytes([a[6], a[7]]))
    };
    assert_eq!(ptrs("198.18.0.2"), (5, 0), "REFUSED: no longer in the zone");
    assert_eq!(ptrs("198.18.0.31"), (0, 2));
    // One at a time gives the same.
    let stepwise = old
        .update_service(&c, &keys[0])
        .update_service(&c, &keys[1]);
    assert!(first_difference(&new, &stepwise, &extra).is_none());
}
