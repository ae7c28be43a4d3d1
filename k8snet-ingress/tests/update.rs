//! `Router::update` must give the same answers as a full recompile, after
//! every kind of change, in any order.

mod common;

use k8snet_ingress::{ClassSelector, Router};
use k8snet_model::{Cluster, Kind, Manifests, Object, ObjectRef};

/// A small deterministic generator (no dependency needed for this).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const HOSTS: &[&str] = &["a.com", "b.com", "*.b.com", "x.b.com", ""];
const PATHS: &[(&str, &str)] = &[
    ("/", "Prefix"),
    ("/api", "Prefix"),
    ("/api", "Exact"),
    ("/api/v1", "Prefix"),
    ("/static/", "Prefix"),
    ("/img", "ImplementationSpecific"),
];

fn object(yaml: &str) -> Object {
    let mut m = Manifests::new();
    m.load_str("gen.yaml", yaml);
    assert!(m.errors().is_empty(), "{:#?}\n{yaml}", m.errors());
    m.into_objects().remove(0)
}

/// A random Ingress named `name` (several Ingresses share hosts and paths).
fn random_ingress(rng: &mut Lcg, name: &str) -> Object {
    let class = match rng.next(6) {
        0 => ", annotations: {kubernetes.io/ingress.class: other}".to_string(),
        1 => ", annotations: {nginx.ingress.kubernetes.io/canary: \"true\"}".to_string(),
        _ => String::new(),
    };
    let ts = format!("2024-01-{:02}T00:00:00Z", 1 + rng.next(3));
    let mut spec = String::new();
    if rng.next(3) == 0 {
        spec.push_str(&format!(
            "  defaultBackend: {{service: {{name: def-{name}, port: {{number: 80}}}}}}\n"
        ));
    }
    if rng.next(2) == 0 {
        spec.push_str(&format!(
            "  tls:\n  - {{hosts: [{}], secretName: cert{}}}\n",
            ["a.com", "b.com", "\"*.b.com\""][rng.next(3) as usize],
            rng.next(2)
        ));
    }
    spec.push_str("  rules:\n");
    for _ in 0..1 + rng.next(3) {
        let host = HOSTS[rng.next(HOSTS.len() as u64) as usize];
        if host.is_empty() {
            spec.push_str("  - http:\n      paths:\n");
        } else {
            spec.push_str(&format!("  - host: \"{host}\"\n    http:\n      paths:\n"));
        }
        for _ in 0..1 + rng.next(3) {
            let (p, ty) = PATHS[rng.next(PATHS.len() as u64) as usize];
            spec.push_str(&common::path(p, ty, &format!("{name}-{}", rng.next(100))));
        }
    }
    if spec.ends_with("  rules:\n") && !spec.contains("defaultBackend") {
        spec.push_str("  - http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}\n");
    }
    object(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: default, creationTimestamp: \"{ts}\"{class}}}\nspec:\n{spec}"
    ))
}

fn secret(n: u64, content: u64) -> Object {
    object(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: cert{n}, namespace: default}}\ntype: kubernetes.io/tls\nstringData: {{tls.crt: \"crt{content}\", tls.key: k}}\n"
    ))
}

fn class(default: bool) -> Object {
    object(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: other, annotations: {{ingressclass.kubernetes.io/is-default-class: \"{default}\"}}}}\nspec: {{controller: x.io/y}}\n"
    ))
}

/// Everything observable about a router.
fn observe(r: &Router) -> Vec<String> {
    let mut out = Vec::new();
    for host in ["a.com", "b.com", "x.b.com", "y.b.com", "z.org", ""] {
        for path in [
            "/",
            "/api",
            "/api/",
            "/api/v1/x",
            "/static",
            "/img/a",
            "/zzz",
        ] {
            let route = r.route(host, path);
            out.push(format!(
                "{host}{path} -> {} {:?} {:?} {:?}",
                common::dest(r, host, path),
                route.map(|x| x.ingress().clone()),
                route.and_then(|x| x.path()),
                route.map(|x| x.settings().clone()),
            ));
        }
        out.push(format!(
            "cert {host}: {:?}",
            r.certificate(host)
                .map(|c| (c.secret().clone(), c.fingerprint()))
        ));
    }
    let mut reports: Vec<String> = r.reports().iter().map(ToString::to_string).collect();
    reports.sort();
    out.extend(reports);
    out.push(format!("{:?}", r.stats()));
    out
}

#[test]
fn incremental_updates_equal_full_recompiles() {
    let mut rng = Lcg(7);
    let mut cluster = Cluster::new();
    for n in 0..2 {
        cluster.upsert(secret(n, 0)).unwrap();
    }
    for i in 0..8 {
        cluster
            .upsert(random_ingress(&mut rng, &format!("ing{i}")))
            .unwrap();
    }
    let selector = ClassSelector::default_class();
    let mut router = Router::compile(&cluster, &selector);
    let mut checked = 0;
    for step in 0..300 {
        let changed: ObjectRef = match rng.next(10) {
            0 => {
                let r = ObjectRef {
                    kind: Kind::Ingress,
                    namespace: Some("default".into()),
                    name: format!("ing{}", rng.next(10)),
                };
                cluster.delete(&r);
                r
            }
            1 => {
                let s = secret(rng.next(2), rng.next(3));
                let r = s.reference();
                cluster.upsert(s).unwrap();
                r
            }
            2 => {
                let c = class(rng.next(2) == 0);
                let r = c.reference();
                cluster.upsert(c).unwrap();
                r
            }
            _ => {
                let name = format!("ing{}", rng.next(10));
                let ing = random_ingress(&mut rng, &name);
                let r = ing.reference();
                cluster.upsert(ing).unwrap();
                r
            }
        };
        if let Some(next) = router.update(&cluster, &changed) {
            router = next;
        }
        let full = Router::compile(&cluster, &selector);
        assert_eq!(
            observe(&router),
            observe(&full),
            "step {step} after {changed:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 300);
}
