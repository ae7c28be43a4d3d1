//! Reloading manifest files ([`Served::reload`], what `k8snet ingress
//! serve` does on SIGHUP): an edit the apiserver would refuse keeps the
//! previous version of the object serving.

mod common;

use common::{dest, ingress, path};
use k8snet_ingress::{ClassSelector, Router, Served};
use k8snet_model::Manifests;

fn spec(host: &str, rules: &[(&str, &str, &str)]) -> String {
    let mut s = format!("  rules:\n  - host: \"{host}\"\n    http:\n      paths:\n");
    for (p, t, svc) in rules {
        s.push_str(&path(p, t, svc));
    }
    s
}

/// Reloads `served` from one file holding `yaml`, as the serve loop does,
/// and compiles the router it would serve; returns it with the error
/// lines the serve loop prints.
fn reload(served: &mut Served, yaml: &str) -> (Router, Vec<String>) {
    let mut m = Manifests::new();
    m.load_str("shop.yaml", yaml);
    let errors = served.reload(&m).iter().map(ToString::to_string).collect();
    let router = Router::compile(&served.cluster(), &ClassSelector::default_class());
    (router, errors)
}

#[test]
fn an_invalid_edit_at_a_reload_keeps_the_previous_routes() {
    let good = ingress(
        "default",
        "shop",
        None,
        &spec("shop.com", &[("/", "Prefix", "web")]),
    );
    let other = ingress(
        "default",
        "other",
        None,
        &spec("other.com", &[("/", "Prefix", "other")]),
    );
    let mut served = Served::new();
    let (before, errors) = reload(&mut served, &(good.clone() + &other));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(dest(&before, "shop.com", "/"), "default/web:80");
    // The same Ingress edited: a new root backend, and a second path
    // without its leading '/', which the apiserver refuses.
    let bad = ingress(
        "default",
        "shop",
        None,
        &spec(
            "shop.com",
            &[("/", "Prefix", "new"), ("api", "Prefix", "api")],
        ),
    );
    let (after, errors) = reload(&mut served, &(bad + &other));
    assert_eq!(errors.len(), 1, "the edit is invalid: {errors:?}");
    assert!(
        errors[0].contains("the previous version of Ingress default/shop is kept"),
        "{errors:?}"
    );
    assert_eq!(
        dest(&after, "shop.com", "/"),
        "default/web:80",
        "the reload kept the previous version, not the refused edit"
    );
    assert_eq!(dest(&after, "shop.com", "/api"), "default/web:80");
    // A valid edit is taken; an Ingress removed from the file is gone.
    let fixed = ingress(
        "default",
        "shop",
        None,
        &spec("shop.com", &[("/", "Prefix", "new")]),
    );
    let (last, errors) = reload(&mut served, &fixed);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(dest(&last, "shop.com", "/"), "default/new:80");
    assert_eq!(dest(&last, "other.com", "/"), "404");
}
