//! The indexed snapshot: indexes, incremental updates, refusal of bad
//! input, and EndpointSlice derivation.

use k8snet_model::{
    Change, Cluster, Error, Event, Kind, Manifests, NsName, Object, ObjectRef, Pod,
};

fn cluster(text: &str) -> Cluster {
    let mut m = Manifests::new();
    m.load_str("t.yaml", text);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    Cluster::from_manifests(&m)
}

fn pod_json(ns: &str, name: &str, ip: &str, labels: serde_json::Value) -> Object {
    let v = serde_json::json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip}
    });
    Object::Pod(serde_json::from_value::<Pod>(v).unwrap())
}

const SHOP: &str = "
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {topology.kubernetes.io/zone: z1}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}}
spec:
  nodeName: node-1
  hostname: web-0
  subdomain: web
  containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]
status: {phase: Running, podIP: 198.18.0.2, podIPs: [{ip: 198.18.0.2}, {ip: 'fd00:18::2'}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  containers: [{name: c, ports: [{name: http, containerPort: 9090}]}]
status:
  phase: Running
  podIP: 198.18.0.3
  conditions: [{type: Ready, status: 'False'}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web}, deletionTimestamp: '2026-01-01T00:00:00Z'}
spec:
  containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]
status: {phase: Running, podIP: 198.18.0.4}
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: shop, labels: {app: web}}
status: {phase: Succeeded, podIP: 198.18.0.9}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.19.0.20
  clusterIPs: [198.19.0.20, 'fd00:19::20']
  ipFamilyPolicy: PreferDualStack
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
";

#[test]
fn indexes_answer_lookups() {
    let c = cluster(SHOP);
    assert_eq!(
        c.pod_by_ip("198.18.0.2".parse().unwrap())
            .unwrap()
            .metadata
            .name,
        "web-0"
    );
    assert_eq!(
        c.pod_by_ip("fd00:18::2".parse().unwrap())
            .unwrap()
            .metadata
            .name,
        "web-0"
    );
    // Finished pods do not own their IP any more.
    assert!(c.pod_by_ip("198.18.0.9".parse().unwrap()).is_none());
    assert_eq!(c.pods_in("shop").count(), 4);
    assert_eq!(
        c.service_by_ip("fd00:19::20".parse().unwrap())
            .unwrap()
            .metadata
            .name,
        "web"
    );
    // The namespace is implied by its objects, with its name label.
    assert!(c.is_implicit_namespace("shop"));
    assert_eq!(
        c.namespace_labels("shop").unwrap()["kubernetes.io/metadata.name"],
        "shop"
    );
}

#[test]
fn incremental_upsert_and_delete_keep_indexes_current() {
    let mut c = cluster(SHOP);
    let rev = c.revision();
    // Move web-0 to another IP: the old IP is freed, the new one indexed.
    let moved = pod_json(
        "shop",
        "web-0",
        "198.18.0.50",
        serde_json::json!({"app": "web"}),
    );
    assert_eq!(c.upsert(moved.clone()).unwrap(), Change::Modified);
    assert!(c.pod_by_ip("198.18.0.2".parse().unwrap()).is_none());
    assert!(c.pod_by_ip("198.18.0.50".parse().unwrap()).is_some());
    assert_eq!(c.upsert(moved).unwrap(), Change::Unchanged);
    assert_eq!(c.revision(), rev + 1);

    let r = ObjectRef {
        kind: Kind::Pod,
        namespace: Some("shop".into()),
        name: "web-0".into(),
    };
    assert!(c.apply(Event::Delete(r.clone())).is_ok());
    assert!(c.pod_by_ip("198.18.0.50".parse().unwrap()).is_none());
    assert_eq!(c.pods_in("shop").count(), 3);
    assert!(c.delete(&r).is_none(), "deleting twice is a no-op");
}

#[test]
fn invalid_objects_are_refused_and_change_nothing() {
    let mut c = cluster(SHOP);
    let before = c.objects();
    let bad = pod_json("shop", "Bad_Name", "198.18.0.77", serde_json::json!({}));
    let err = c.upsert(bad).unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }));
    assert!(err.to_string().contains("metadata.name"), "{err}");
    assert_eq!(c.objects(), before);
    assert!(c.pod_by_ip("198.18.0.77".parse().unwrap()).is_none());
}

#[test]
fn derived_slices_follow_the_endpointslice_controller() {
    let mut c = cluster(SHOP);
    assert_eq!(
        c.derive_missing_endpoint_slices(),
        3,
        "two v4 port groups + one v6"
    );
    let key = NsName::new("shop", "web");
    let slices: Vec<_> = c.slices_for_service(&key).collect();
    let v4: Vec<_> = slices
        .iter()
        .filter(|s| s.address_type == k8snet_model::AddressType::IPv4)
        .collect();
    // web-1 resolves `http` to 9090, the others to 8080: two port groups.
    let mut ports: Vec<i32> = v4.iter().map(|s| s.ports[0].port.unwrap()).collect();
    ports.sort();
    assert_eq!(ports, vec![8080, 9090]);
    let all: Vec<_> = v4.iter().flat_map(|s| &s.endpoints).collect();
    let by_ip = |ip: &str| all.iter().find(|e| e.addresses[0] == ip).unwrap();
    let web0 = by_ip("198.18.0.2");
    assert_eq!(web0.conditions.ready, Some(true));
    assert_eq!(web0.hostname.as_deref(), Some("web-0"));
    assert_eq!(web0.zone.as_deref(), Some("z1"));
    let web1 = by_ip("198.18.0.3");
    assert_eq!(
        (web1.conditions.ready, web1.conditions.serving),
        (Some(false), Some(false))
    );
    let web2 = by_ip("198.18.0.4");
    assert_eq!(
        (
            web2.conditions.ready,
            web2.conditions.serving,
            web2.conditions.terminating
        ),
        (Some(false), Some(true), Some(true))
    );
    assert!(
        all.iter().all(|e| e.addresses[0] != "198.18.0.9"),
        "finished pods are not endpoints"
    );
    let v6: Vec<_> = slices
        .iter()
        .filter(|s| s.address_type == k8snet_model::AddressType::IPv6)
        .collect();
    assert_eq!(v6.len(), 1);
    assert_eq!(v6[0].endpoints[0].addresses[0], "fd00:18::2");
}

#[test]
fn publish_not_ready_addresses_marks_every_endpoint_ready() {
    let text = SHOP.replace(
        "selector: {app: web}",
        "selector: {app: web}\n  publishNotReadyAddresses: true",
    );
    let mut c = cluster(&text);
    c.derive_missing_endpoint_slices();
    let key = NsName::new("shop", "web");
    assert!(
        c.slices_for_service(&key)
            .flat_map(|s| &s.endpoints)
            .all(|e| e.conditions.ready == Some(true))
    );
}

#[test]
fn rederive_after_a_pod_change() {
    let mut c = cluster(SHOP);
    c.derive_missing_endpoint_slices();
    let key = NsName::new("shop", "web");
    c.upsert(pod_json(
        "shop",
        "web-3",
        "198.18.0.5",
        serde_json::json!({"app": "web"}),
    ))
    .unwrap();
    c.rederive_endpoint_slices(&key);
    let ips: Vec<String> = c
        .slices_for_service(&key)
        .flat_map(|s| &s.endpoints)
        .map(|e| e.addresses[0].clone())
        .collect();
    assert!(ips.contains(&"198.18.0.5".to_string()), "{ips:?}");
    assert_eq!(ips.len(), 5, "4 v4 + 1 v6: {ips:?}");
}

#[test]
fn hand_written_slices_are_not_replaced() {
    let text = format!(
        "{SHOP}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-manual, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
endpoints: [{{addresses: [198.18.0.100]}}]
ports: [{{name: http, port: 8080}}]
"
    );
    let mut c = cluster(&text);
    assert_eq!(c.derive_missing_endpoint_slices(), 0);
    c.rederive_endpoint_slices(&NsName::new("shop", "web"));
    let names: Vec<_> = c
        .slices_for_service(&NsName::new("shop", "web"))
        .map(|s| s.metadata.name.clone())
        .collect();
    assert!(names.contains(&"web-manual".to_string()));
}

#[test]
fn single_object_getters_find_by_key_and_follow_deletes() {
    let mut c = cluster(
        "
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: k8snet}
spec: {controller: k8snet.io/ingress}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: shop}
spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: cluster-control}
spec:
  priority: 10
  subject: {namespaces: {}}
  ingress: [{name: deny, action: Deny, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: tenant-isolation}
spec:
  tier: Admin
  priority: 50
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [198.18.0.2]}]
",
    );
    let shop = |name: &str| NsName::new("shop", name);
    assert_eq!(c.ingress(&shop("shop")).unwrap().metadata.name, "shop");
    assert!(c.ingress(&NsName::new("default", "shop")).is_none());
    assert_eq!(
        c.ingress_class("k8snet").unwrap().spec.controller,
        "k8snet.io/ingress"
    );
    assert!(c.ingress_class("nginx").is_none());
    assert_eq!(
        c.network_policy(&shop("deny-all")).unwrap().metadata.name,
        "deny-all"
    );
    assert!(c.network_policy(&shop("allow-all")).is_none());
    assert_eq!(
        c.admin_network_policy("cluster-control")
            .unwrap()
            .spec
            .priority,
        10
    );
    assert!(c.admin_network_policy("tenant-isolation").is_none());
    assert_eq!(
        c.cluster_network_policy("tenant-isolation")
            .unwrap()
            .spec
            .priority,
        50
    );
    assert!(c.cluster_network_policy("cluster-control").is_none());
    assert_eq!(
        c.endpoint_slice(&shop("web-1")).unwrap().endpoints[0].addresses,
        ["198.18.0.2"]
    );
    assert!(c.endpoint_slice(&shop("web-2")).is_none());

    // Deleting an object makes its getter miss.
    for r in [
        ObjectRef {
            kind: Kind::Ingress,
            namespace: Some("shop".into()),
            name: "shop".into(),
        },
        ObjectRef {
            kind: Kind::IngressClass,
            namespace: None,
            name: "k8snet".into(),
        },
        ObjectRef {
            kind: Kind::NetworkPolicy,
            namespace: Some("shop".into()),
            name: "deny-all".into(),
        },
        ObjectRef {
            kind: Kind::AdminNetworkPolicy,
            namespace: None,
            name: "cluster-control".into(),
        },
        ObjectRef {
            kind: Kind::ClusterNetworkPolicy,
            namespace: None,
            name: "tenant-isolation".into(),
        },
        ObjectRef {
            kind: Kind::EndpointSlice,
            namespace: Some("shop".into()),
            name: "web-1".into(),
        },
    ] {
        assert!(c.delete(&r).is_some(), "{r}");
    }
    assert!(c.ingress(&shop("shop")).is_none());
    assert!(c.ingress_class("k8snet").is_none());
    assert!(c.network_policy(&shop("deny-all")).is_none());
    assert!(c.admin_network_policy("cluster-control").is_none());
    assert!(c.cluster_network_policy("tenant-isolation").is_none());
    assert!(c.endpoint_slice(&shop("web-1")).is_none());
}

/// A pod in namespace `a` with one IP, in `phase`, terminating or not.
fn pod_at(name: &str, ip: &str, phase: &str, terminating: bool) -> Object {
    let mut v = serde_json::json!({
        "metadata": {"name": name, "namespace": "a"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}
    });
    if terminating {
        v["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
    }
    Object::Pod(serde_json::from_value::<Pod>(v).unwrap())
}

fn pod_ref(name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::Pod,
        namespace: Some("a".into()),
        name: name.into(),
    }
}

fn owner_of(c: &Cluster, ip: &str) -> Option<String> {
    c.pod_by_ip(ip.parse().unwrap())
        .map(|p| p.metadata.name.clone())
}

#[test]
fn pod_by_ip_keeps_every_claimant_whatever_the_event_order() {
    const IP: &str = "198.18.0.5";
    // Both orders of upsert, then each deletion: the survivor stays found.
    for (first, second) in [("a", "b"), ("b", "a")] {
        for gone in ["a", "b"] {
            let mut c = Cluster::new();
            c.upsert(pod_at(first, IP, "Running", false)).unwrap();
            c.upsert(pod_at(second, IP, "Running", false)).unwrap();
            // Equal standing: the first by name, whoever came last.
            assert_eq!(owner_of(&c, IP).as_deref(), Some("a"), "{first},{second}");
            c.delete(&pod_ref(gone)).unwrap();
            let survivor = if gone == "a" { "b" } else { "a" };
            assert_eq!(
                owner_of(&c, IP).as_deref(),
                Some(survivor),
                "{first},{second} minus {gone}"
            );
            c.delete(&pod_ref(survivor)).unwrap();
            assert_eq!(owner_of(&c, IP), None);
        }
    }
}

#[test]
fn pod_by_ip_prefers_a_live_running_pod() {
    const IP: &str = "198.18.0.6";
    for reversed in [false, true] {
        let mut events = vec![
            pod_at("a", IP, "Running", true),
            pod_at("b", IP, "Pending", false),
            pod_at("c", IP, "Running", false),
        ];
        if reversed {
            events.reverse();
        }
        let mut c = Cluster::new();
        for e in events {
            c.upsert(e).unwrap();
        }
        // Not terminating and Running beats the others.
        assert_eq!(owner_of(&c, IP).as_deref(), Some("c"));
        // Then not terminating beats Running.
        c.delete(&pod_ref("c")).unwrap();
        assert_eq!(owner_of(&c, IP).as_deref(), Some("b"));
        c.delete(&pod_ref("b")).unwrap();
        assert_eq!(owner_of(&c, IP).as_deref(), Some("a"));
    }
    // A pod that finishes gives the IP up to the other claimant; one that
    // moves to another IP is found there only.
    let mut c = Cluster::new();
    c.upsert(pod_at("a", IP, "Running", false)).unwrap();
    c.upsert(pod_at("b", IP, "Running", false)).unwrap();
    c.upsert(pod_at("a", IP, "Succeeded", false)).unwrap();
    assert_eq!(owner_of(&c, IP).as_deref(), Some("b"));
    c.upsert(pod_at("b", "198.18.0.7", "Running", false))
        .unwrap();
    assert_eq!(owner_of(&c, IP), None);
    assert_eq!(owner_of(&c, "198.18.0.7").as_deref(), Some("b"));
}

#[test]
fn service_by_ip_keeps_every_claimant_whatever_the_event_order() {
    let svc = |name: &str| {
        let v = serde_json::json!({
            "metadata": {"name": name, "namespace": "a"},
            "spec": {"clusterIP": "198.19.0.9", "ports": [{"port": 80}]}
        });
        Object::Service(serde_json::from_value(v).unwrap())
    };
    let svc_ref = |name: &str| ObjectRef {
        kind: Kind::Service,
        namespace: Some("a".into()),
        name: name.into(),
    };
    let owner = |c: &Cluster| {
        c.service_by_ip("198.19.0.9".parse().unwrap())
            .map(|s| s.metadata.name.clone())
    };
    for (first, second) in [("x", "y"), ("y", "x")] {
        for gone in ["x", "y"] {
            let mut c = Cluster::new();
            c.upsert(svc(first)).unwrap();
            c.upsert(svc(second)).unwrap();
            assert_eq!(owner(&c).as_deref(), Some("x"), "{first},{second}");
            c.delete(&svc_ref(gone)).unwrap();
            let survivor = if gone == "x" { "y" } else { "x" };
            assert_eq!(owner(&c).as_deref(), Some(survivor));
        }
    }
}

#[test]
fn deleting_a_namespace_leaves_no_stale_implicit_entry() {
    let ns_ref = ObjectRef {
        kind: Kind::Namespace,
        namespace: None,
        name: "a".into(),
    };
    // A namespace implied by a pod, then unused: deleting it forgets it
    // (it was never stored as an object, so nothing is returned).
    let mut c = Cluster::new();
    c.upsert(pod_at("p", "198.18.0.8", "Running", false))
        .unwrap();
    assert!(c.is_implicit_namespace("a"));
    c.delete(&pod_ref("p")).unwrap();
    let rev = c.revision();
    assert!(c.delete(&ns_ref).is_none());
    assert!(c.namespace("a").is_none());
    assert!(!c.is_implicit_namespace("a"));
    assert!(c.revision() > rev);
    // Implied and in use: it stays, implicitly.
    c.upsert(pod_at("p", "198.18.0.8", "Running", false))
        .unwrap();
    assert!(c.delete(&ns_ref).is_none());
    assert!(c.namespace("a").is_some() && c.is_implicit_namespace("a"));
    // Explicit and in use: deleted, then known implicitly.
    let explicit = Object::Namespace(
        serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}})).unwrap(),
    );
    c.upsert(explicit.clone()).unwrap();
    assert!(!c.is_implicit_namespace("a"));
    assert!(c.delete(&ns_ref).is_some());
    assert!(c.namespace("a").is_some() && c.is_implicit_namespace("a"));
    // Explicit and unused: gone entirely.
    c.delete(&pod_ref("p")).unwrap();
    c.upsert(explicit).unwrap();
    assert!(c.delete(&ns_ref).is_some());
    assert!(c.namespace("a").is_none());
    assert!(!c.is_implicit_namespace("a"));
}

fn namespace_ref(name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::Namespace,
        namespace: None,
        name: name.into(),
    }
}

/// Forgetting an unused implicit namespace changes the snapshot (the
/// namespace is gone, the revision moves), so `apply` reports a change.
#[test]
fn apply_reports_forgetting_an_implicit_namespace() {
    let mut c = Cluster::new();
    c.upsert(pod_at("p", "198.18.0.8", "Running", false))
        .unwrap();
    c.delete(&pod_ref("p")).unwrap();
    assert!(c.namespace("a").is_some());
    let rev = c.revision();
    let change = c.apply(Event::Delete(namespace_ref("a"))).unwrap();
    assert!(c.namespace("a").is_none());
    assert_ne!(c.revision(), rev);
    assert_eq!(change, Change::Modified);
    // Nothing left to forget: no change, and the revision stays.
    let rev = c.revision();
    let change = c.apply(Event::Delete(namespace_ref("a"))).unwrap();
    assert_eq!((change, c.revision()), (Change::Unchanged, rev));
    // An implicit namespace still in use stays: no change either.
    c.upsert(pod_at("p", "198.18.0.8", "Running", false))
        .unwrap();
    let rev = c.revision();
    let change = c.apply(Event::Delete(namespace_ref("a"))).unwrap();
    assert_eq!((change, c.revision()), (Change::Unchanged, rev));
    assert!(c.is_implicit_namespace("a"));
}

/// Upserting a Namespace known so far only implicitly makes it an object
/// (it now appears in `objects()`): a change, with the revision moved,
/// even when its content equals the implied one.
#[test]
fn upserting_an_implicitly_known_namespace_is_a_change() {
    let explicit = Object::Namespace(
        serde_json::from_value(serde_json::json!({"metadata": {"name": "a"}})).unwrap(),
    );
    let mut c = Cluster::new();
    c.upsert(pod_at("p", "198.18.0.8", "Running", false))
        .unwrap();
    assert!(c.is_implicit_namespace("a"));
    let before = c.objects().len();
    let rev = c.revision();
    let change = c.apply(Event::Upsert(explicit.clone())).unwrap();
    assert!(!c.is_implicit_namespace("a"));
    assert_eq!(c.objects().len(), before + 1);
    assert_eq!(change, Change::Added);
    assert_eq!(c.revision(), rev + 1);
    // Upserting it again changes nothing.
    assert_eq!(c.upsert(explicit).unwrap(), Change::Unchanged);
    assert_eq!(c.revision(), rev + 1);
}
