//! `PolicySet::apply` recompiles only the identities a change touches, and
//! ends where a fresh compile would.

use k8snet_model::{Cluster, Kind, Manifests, Object, ObjectRef, Protocol};
use k8snet_policy::{Endpoint, Flow, Options, PolicySet, Verdict};

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
