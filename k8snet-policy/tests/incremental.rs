//! `PolicySet::apply` recompiles only the identities a change touches, and
//! ends where a fresh compile would.

use k8snet_model::{Cluster, Kind, Manifests, Object, ObjectRef, Protocol};
use k8snet_policy::{Endpoint, Flow, Options, PolicySet, RulesetOptions, Verdict, ruleset};

fn objects(yaml: &str) -> Vec<Object> {
    let mut m = Manifests::new();
    m.load_str("t.yaml", yaml);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    m.into_objects()
}

/// Namespaces x and z; in x, pods a0, a1 (app: a) and b0 (app: b); in z, c0.
fn base() -> Cluster {
    let mut yaml = String::new();
    for (ns, name, app, ip) in [
        ("x", "a0", "a", "198.18.0.1"),
        ("x", "a1", "a", "198.18.0.2"),
        ("x", "b0", "b", "198.18.0.3"),
        ("z", "c0", "c", "198.18.0.4"),
    ] {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {app}}}}}\nstatus: {{podIP: {ip}}}\n"
        ));
    }
    Cluster::from_objects(objects(&yaml))
}

fn upsert(c: &mut Cluster, set: &mut PolicySet, yaml: &str) -> usize {
    let mut touched = 0;
    for o in objects(yaml) {
        let r = o.reference();
        c.upsert(o).unwrap();
        let u = set.apply(c, &r);
        assert!(!u.full);
        touched += u.identities;
    }
    touched
}

fn same_as_fresh(c: &Cluster, set: &PolicySet) {
    let fresh = PolicySet::compile(c, set.options());
    assert_eq!(set.stats(), fresh.stats());
    let eps = [
        "x/a0",
        "x/a1",
        "x/b0",
        "z/c0",
        "x/new",
        "198.18.0.9",
        "203.0.113.1",
    ];
    for a in eps {
        for b in eps {
            for port in [80, 443] {
                let f = Flow::new(
                    a.parse::<Endpoint>().unwrap(),
                    b.parse::<Endpoint>().unwrap(),
                    Protocol::Tcp,
                    port,
                );
                assert_eq!(set.explain(&f), fresh.explain(&f), "{f}");
            }
        }
    }
}

#[test]
fn pods_with_a_known_identity_compile_nothing() {
    let mut c = base();
    let mut set = PolicySet::compile(&c, &Options::default());
    assert_eq!(set.stats().identities, 3);
    let n = upsert(
        &mut c,
        &mut set,
        "
apiVersion: v1
kind: Pod
metadata: {name: new, namespace: x, labels: {app: a}}
status: {podIP: 198.18.0.9}
",
    );
    assert_eq!(n, 0);
    // A label change makes a new identity: one compiled.
    let n = upsert(
        &mut c,
        &mut set,
        "
apiVersion: v1
kind: Pod
metadata: {name: new, namespace: x, labels: {app: fresh}}
status: {podIP: 198.18.0.9}
",
    );
    assert_eq!(n, 1);
    assert_eq!(set.stats().identities, 4);
    // Changing only the address keeps the identity.
    let n = upsert(
        &mut c,
        &mut set,
        "
apiVersion: v1
kind: Pod
metadata: {name: new, namespace: x, labels: {app: fresh}}
status: {podIP: 198.18.0.10}
",
    );
    assert_eq!(n, 0);
    let new = Endpoint::Ip("198.18.0.10".parse().unwrap());
    let f = Flow::new(new, "x/a0".parse::<Endpoint>().unwrap(), Protocol::Tcp, 80);
    assert_eq!(set.verdict(&f), Verdict::Allow);
    same_as_fresh(&c, &set);
    // Deleting the last pod of an identity frees it.
    let r = ObjectRef {
        kind: Kind::Pod,
        namespace: Some("x".into()),
        name: "new".into(),
    };
    c.delete(&r);
    assert_eq!(set.apply(&c, &r).identities, 0);
    assert_eq!(set.stats().identities, 3);
    same_as_fresh(&c, &set);
}

#[test]
fn policies_recompile_only_the_identities_they_select() {
    let mut c = base();
    let mut set = PolicySet::compile(&c, &Options::default());
    // Selects app: a in x — one identity (a0 and a1 share it).
    let n = upsert(&mut c, &mut set, "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec: {podSelector: {matchLabels: {app: a}}, ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]}
");
    assert_eq!(n, 1);
    // Widening it to the namespace touches x's two identities, not z's.
    let n = upsert(
        &mut c,
        &mut set,
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec: {podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]}
",
    );
    assert_eq!(n, 2);
    same_as_fresh(&c, &set);
    // An admin policy on every namespace touches all three.
    let n = upsert(&mut c, &mut set, "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: all}
spec: {priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{networks: [203.0.113.0/24]}]}]}
");
    assert_eq!(n, 3);
    same_as_fresh(&c, &set);
    let r = ObjectRef {
        kind: Kind::NetworkPolicy,
        namespace: Some("x".into()),
        name: "p".into(),
    };
    c.delete(&r);
    assert_eq!(set.apply(&c, &r).identities, 2);
    same_as_fresh(&c, &set);
}

#[test]
fn namespace_changes_touch_that_namespace() {
    let mut c = base();
    let mut set = PolicySet::compile(&c, &Options::default());
    upsert(
        &mut c,
        &mut set,
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-prod, namespace: z}
spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {env: prod}}}]}]}
",
    );
    let f = Flow::new(
        "x/a0".parse::<Endpoint>().unwrap(),
        "z/c0".parse::<Endpoint>().unwrap(),
        Protocol::Tcp,
        80,
    );
    assert_eq!(set.verdict(&f), Verdict::Deny);
    let n = upsert(
        &mut c,
        &mut set,
        "
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {env: prod}}
",
    );
    assert_eq!(n, 2);
    assert_eq!(set.verdict(&f), Verdict::Allow);
    same_as_fresh(&c, &set);
}

#[test]
fn nodes_recompile_everything_and_other_kinds_nothing() {
    let mut c = base();
    let mut set = PolicySet::compile(&c, &Options::default());
    let node = objects(
        "
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {addresses: [{type: InternalIP, address: 198.19.128.1}]}
",
    )
    .remove(0);
    let r = node.reference();
    c.upsert(node).unwrap();
    let u = set.apply(&c, &r);
    assert!(u.full);
    assert_eq!(u.identities, 3);
    let svc = objects(
        "
apiVersion: v1
kind: Service
metadata: {name: s, namespace: x}
spec: {ports: [{port: 80}]}
",
    )
    .remove(0);
    let r = svc.reference();
    c.upsert(svc).unwrap();
    let u = set.apply(&c, &r);
    assert_eq!((u.identities, u.full), (0, false));
}

fn delete(c: &mut Cluster, set: &mut PolicySet, kind: Kind, namespace: Option<&str>, name: &str) {
    let r = ObjectRef {
        kind,
        namespace: namespace.map(str::to_string),
        name: name.into(),
    };
    c.delete(&r);
    set.apply(c, &r);
}

/// Every flow between the given endpoints, TCP 80, decided alike by the
/// set and by a fresh compile of the cluster (and the kernel rulesets
/// agree too).
fn flows_as_fresh(c: &Cluster, set: &PolicySet, eps: &[&str]) {
    let fresh = PolicySet::compile(c, set.options());
    assert_eq!(set.stats(), fresh.stats());
    for a in eps {
        for b in eps {
            let f = Flow::new(
                a.parse::<Endpoint>().unwrap(),
                b.parse::<Endpoint>().unwrap(),
                Protocol::Tcp,
                80,
            );
            assert_eq!(set.explain(&f), fresh.explain(&f), "{f}");
        }
    }
    let opts = RulesetOptions::default();
    assert_eq!(
        k8snet_nft::render(&ruleset(set, &opts)),
        k8snet_nft::render(&ruleset(&fresh, &opts))
    );
}

/// A pod upserted into a namespace the set has not seen yet, with no
/// Namespace object: the Cluster gives that namespace its
/// `kubernetes.io/metadata.name` label, so a namespace selector by name
/// selects the pod, incrementally as on a fresh compile. (Before the fix
/// the incremental set denied: "isolated by NetworkPolicy x/from-other".)
#[test]
fn pod_in_a_new_namespace_matches_namespace_selector_by_name() {
    let mut c = Cluster::from_objects(objects(
        "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
status: {podIP: 198.18.0.1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-other, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}}]}]
",
    ));
    let mut set = PolicySet::compile(&c, &Options::default());
    upsert(
        &mut c,
        &mut set,
        "
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: other}
status: {podIP: 198.18.0.2}
",
    );
    let f = Flow::new(
        Endpoint::pod("other", "client"),
        Endpoint::pod("x", "web"),
        Protocol::Tcp,
        80,
    );
    assert_eq!(set.verdict(&f), Verdict::Allow, "{}", set.explain(&f));
    let eps = ["x/web", "other/client", "198.18.0.2", "203.0.113.1"];
    flows_as_fresh(&c, &set, &eps);

    // The namespace gets an object with other labels: the name label stays
    // (the loader adds it), the rest follows.
    upsert(
        &mut c,
        &mut set,
        "
apiVersion: v1
kind: Namespace
metadata: {name: other, labels: {env: prod}}
",
    );
    assert_eq!(set.verdict(&f), Verdict::Allow);
    flows_as_fresh(&c, &set, &eps);
    // The object goes; the namespace stays implicitly (the pod is in it).
    delete(&mut c, &mut set, Kind::Namespace, None, "other");
    assert!(c.is_implicit_namespace("other"));
    assert_eq!(set.verdict(&f), Verdict::Allow);
    flows_as_fresh(&c, &set, &eps);
    // The last pod of the implicit namespace goes, then comes back.
    delete(&mut c, &mut set, Kind::Pod, Some("other"), "client");
    assert_eq!(set.verdict(&f), Verdict::Deny);
    flows_as_fresh(&c, &set, &eps);
    upsert(
        &mut c,
        &mut set,
        "
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: other}
status: {podIP: 198.18.0.2}
",
    );
    assert_eq!(set.verdict(&f), Verdict::Allow);
    flows_as_fresh(&c, &set, &eps);
}

/// The same root cause, with the most common selector: a policy added
/// after the pod, admitting every namespace (`namespaceSelector: {}`),
/// must not leave out the pod of a namespace the set never loaded.
#[test]
fn policy_allowing_all_namespaces_selects_a_pod_of_a_new_namespace() {
    let mut c = Cluster::from_objects(objects(
        "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
status: {podIP: 198.18.0.1}
",
    ));
    let mut set = PolicySet::compile(&c, &Options::default());
    upsert(
        &mut c,
        &mut set,
        "
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: other}
status: {podIP: 198.18.0.2}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-all-namespaces, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}]}]
",
    );
    let f = Flow::new(
        Endpoint::pod("other", "client"),
        Endpoint::pod("x", "web"),
        Protocol::Tcp,
        80,
    );
    assert_eq!(set.verdict(&f), Verdict::Allow, "{}", set.explain(&f));
    flows_as_fresh(&c, &set, &["x/web", "other/client", "203.0.113.1"]);
}
