//! Helpers of the router tests: clusters from YAML, routes as text.
#![allow(dead_code, unreachable_pub)] // each test file uses a subset

use k8snet_ingress::{Backend, ClassSelector, Router};
use k8snet_model::{Cluster, Manifests};

/// A cluster from YAML that must load without errors.
pub fn cluster(yaml: &str) -> Cluster {
    let mut m = Manifests::new();
    m.load_str("test.yaml", yaml);
    assert!(m.errors().is_empty(), "{:#?}", m.errors());
    Cluster::from_manifests(&m)
}

/// A router for the default class.
pub fn router(yaml: &str) -> Router {
    Router::compile(&cluster(yaml), &ClassSelector::default_class())
}

/// `ns/service:port`, `resource Kind/name` or `404`.
pub fn dest(router: &Router, host: &str, path: &str) -> String {
    match router.route(host, path).map(|r| r.backend()) {
        Some(Backend::Service(s)) => format!("{}/{}:{}", s.namespace, s.name, s.port),
        Some(Backend::Resource(r)) => format!("resource {}/{}", r.kind, r.name),
        Some(other) => format!("{other}"),
        None => "404".into(),
    }
}

/// An Ingress document.
pub fn ingress(ns: &str, name: &str, created: Option<&str>, spec: &str) -> String {
    let ts = created.map_or(String::new(), |t| format!(", creationTimestamp: \"{t}\""));
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {ns}{ts}}}\nspec:\n{spec}\n"
    )
}

/// One path rule line (inside `paths:`), to Service `svc` port 80.
pub fn path(p: &str, ty: &str, svc: &str) -> String {
    format!(
        "      - {{path: \"{p}\", pathType: {ty}, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}\n"
    )
}
