//! networking.k8s.io/v1 Ingress and IngressClass (`ValidateIngressSpec`,
//! `validateIngressClassSpec`).

use crate::names::{
    check_dns1035_label, check_dns1123_label, check_dns1123_subdomain, check_port_name,
    check_wildcard_dns1123_subdomain,
};
use crate::networking::{
    HttpIngressPath, INGRESS_CLASS_ANNOTATION, Ingress, IngressBackend, IngressClass,
    IngressClassParametersReference, PathType, TypedLocalObjectReference,
};

use super::{Errors, FieldPath, net};

/// Sequences an Exact or Prefix path may not contain, and endings it may not
/// have: they would be normalised differently by different proxies.
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

const MAX_CONTROLLER_LEN: usize = 250;
const PARAMETER_SCOPES: &[&str] = &["Cluster", "Namespace"];

pub(super) fn ingress(ing: &Ingress, errs: &mut Errors) {
    let spec = &ing.spec;
    if spec.rules.is_empty() && spec.default_backend.is_none() {
        errs.invalid(
            "spec",
            "either `defaultBackend` or `rules` must be specified",
        );
    }
    if let Some(b) = &spec.default_backend {
        backend(b, "spec.defaultBackend".into(), errs);
    }
    let rules = FieldPath::new("spec.rules");
    for (i, rule) in spec.rules.iter().enumerate() {
        let path = rules.index(i);
        if let Some(h) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            host(h, path.field("host"), errs);
        }
        let Some(http) = &rule.http else { continue };
        let paths = path.field("http.paths");
        if http.paths.is_empty() {
            errs.required(paths, "at least one path is required when `http` is set");
        }
        for (j, p) in http.paths.iter().enumerate() {
            http_path(p, paths.index(j), errs);
        }
    }
    let tls_list = FieldPath::new("spec.tls");
    for (i, tls) in spec.tls.iter().enumerate() {
        let path = tls_list.index(i);
        let hosts = path.field("hosts");
        for (j, h) in tls.hosts.iter().enumerate() {
            tls_host(h, hosts.index(j), errs);
        }
        if let Some(s) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
            errs.check(path.field("secretName"), s, check_dns1123_subdomain);
        }
    }
    // Set means checked, even when empty: `""` is not a class name.
    if let Some(class) = &spec.ingress_class_name {
        errs.check("spec.ingressClassName", class, check_dns1123_subdomain);
        // The apiserver prints this path as
        // `annotations.kubernetes.io/ingress.class`; it is written here as
        // every other annotation path is.
        if let Some(legacy) = ing.metadata.annotations.get(INGRESS_CLASS_ANNOTATION)
            && legacy != class
        {
            let annotations = FieldPath::new("metadata.annotations");
            errs.invalid(
                annotations.key(INGRESS_CLASS_ANNOTATION),
                format!(
                    "{legacy:?}: must match `ingressClassName` ({class:?}) when both are specified"
                ),
            );
        }
    }
}

/// A rule host is a DNS name (not an IP, as the apiserver's lenient parser
/// reads IPs: `010.1.1.1` is one), optionally with one leading `*.`.
fn host(h: &str, path: FieldPath<'_>, errs: &mut Errors) {
    if net::is_ip_sloppy(h) {
        errs.invalid(
            path,
            format!("{h:?}: must be a DNS name, not an IP address"),
        );
    }
    tls_host(h, path, errs);
}

fn tls_host(h: &str, path: FieldPath<'_>, errs: &mut Errors) {
    if h.contains('*') {
        errs.check(path, h, check_wildcard_dns1123_subdomain);
    } else {
        errs.check(path, h, check_dns1123_subdomain);
    }
}

fn http_path(p: &HttpIngressPath, path: FieldPath<'_>, errs: &mut Errors) {
    let value = p.path.as_deref().unwrap_or_default();
    let pp = path.field("path");
    match p.path_type {
        PathType::Exact | PathType::Prefix => {
            if !value.starts_with('/') {
                errs.invalid(
                    pp,
                    format!(
                        "{value:?}: must be an absolute path (start with '/') for pathType {:?}",
                        p.path_type
                    ),
                );
            }
            for seq in INVALID_PATH_SEQUENCES {
                if value.contains(seq) {
                    errs.invalid(pp, format!("{value:?}: must not contain '{seq}'"));
                }
            }
            for suffix in INVALID_PATH_SUFFIXES {
                if value.ends_with(suffix) {
                    errs.invalid(pp, format!("{value:?}: cannot end with '{suffix}'"));
                }
            }
        }
        PathType::ImplementationSpecific => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.invalid(
                    pp,
                    format!("{value:?}: must be an absolute path (start with '/')"),
                );
            }
        }
    }
    backend(&p.backend, path.field("backend"), errs);
}

/// Exactly one of `service` and `resource`; a service port is a name or a
/// number, not both (reported at the backend, as the apiserver does).
fn backend(b: &IngressBackend, path: FieldPath<'_>, errs: &mut Errors) {
    match (&b.service, &b.resource) {
        (Some(_), Some(_)) => {
            errs.invalid(path, "cannot set both resource and service backends");
        }
        (None, None) => errs.invalid(path, "resource or service backend is required"),
        (None, Some(r)) => resource(r, path.field("resource"), errs),
        (Some(svc), None) => {
            let sp = path.field("service");
            if svc.name.is_empty() {
                errs.required(sp.field("name"), "service name is required");
            } else {
                // A Service name; see the metadata module for why DNS-1035.
                errs.check(sp.field("name"), &svc.name, check_dns1035_label);
            }
            let name = svc.port.name.as_deref().filter(|n| !n.is_empty());
            let number = svc.port.number.filter(|&n| n != 0);
            match (name, number) {
                (Some(name), Some(number)) => errs.invalid(
                    path,
                    format!(
                        "name {name:?} and number {number}: cannot set both port name & port number"
                    ),
                ),
                (Some(name), None) => errs.check(sp.field("port.name"), name, check_port_name),
                (None, Some(number)) => errs.port(sp.field("port.number"), number),
                (None, None) => errs.required(
                    path,
                    format!("port name or number is required (service {:?})", svc.name),
                ),
            }
        }
    }
}

fn resource(r: &TypedLocalObjectReference, path: FieldPath<'_>, errs: &mut Errors) {
    if let Some(g) = &r.api_group {
        errs.check(path.field("apiGroup"), g, check_dns1123_subdomain);
    }
    segment(&r.kind, path.field("kind"), errs);
    segment(&r.name, path.field("name"), errs);
}

/// A required name that ends up in a URL path segment (`IsPathSegmentName`).
fn segment(value: &str, path: FieldPath<'_>, errs: &mut Errors) {
    if value.is_empty() {
        errs.required(path, "is required");
    } else {
        errs.check(path, value, check_path_segment);
    }
}

fn check_path_segment(s: &str) -> Result<(), String> {
    if s == "." || s == ".." {
        return Err("may not be '.' or '..'".into());
    }
    if s.contains('/') || s.contains('%') {
        return Err("may not contain '/' or '%'".into());
    }
    Ok(())
}

pub(super) fn ingress_class(class: &IngressClass, errs: &mut Errors) {
    let c = &class.spec.controller;
    if c.is_empty() {
        errs.required(
            "spec.controller",
            "controller is required (a domain-prefixed path such as \"k8snet.io/ingress\")",
        );
    } else {
        if c.len() > MAX_CONTROLLER_LEN {
            errs.too_long("spec.controller", c.len(), MAX_CONTROLLER_LEN);
        }
        errs.check("spec.controller", c, check_domain_prefixed_path);
    }
    if let Some(p) = &class.spec.parameters {
        parameters(p, errs);
    }
}

/// `IsDomainPrefixedPath`: a DNS subdomain, `/`, then a non-empty path of
/// URL path characters.
fn check_domain_prefixed_path(s: &str) -> Result<(), String> {
    let Some((host, path)) = s
        .split_once('/')
        .filter(|(h, p)| !h.is_empty() && !p.is_empty())
    else {
        return Err("must be a domain-prefixed path (such as \"acme.io/foo\")".into());
    };
    check_dns1123_subdomain(host).map_err(|e| format!("domain {host:?}: {e}"))?;
    let ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "path {path:?} may only contain alphanumerics and /-._~%!$&'()*+,;=:"
        ))
    }
}

fn parameters(p: &IngressClassParametersReference, errs: &mut Errors) {
    let path = FieldPath::new("spec.parameters");
    if let Some(g) = &p.api_group {
        errs.check(path.field("apiGroup"), g, check_dns1123_subdomain);
    }
    segment(&p.kind, path.field("kind"), errs);
    segment(&p.name, path.field("name"), errs);
    let namespace = p.namespace.as_deref();
    let namespace_path = path.field("namespace");
    match p.scope.as_deref() {
        None => errs.required(path.field("scope"), "scope is required"),
        Some("Namespace") => match namespace {
            None => errs.required(
                namespace_path,
                "namespace is required when `parameters.scope` is Namespace",
            ),
            Some(ns) => errs.check(namespace_path, ns, check_dns1123_label),
        },
        Some("Cluster") => {
            if let Some(ns) = namespace {
                errs.forbidden(
                    namespace_path,
                    format!("{ns:?}: may not be set when `parameters.scope` is Cluster"),
                );
            }
        }
        Some(other) => errs.not_supported(path.field("scope"), other, PARAMETER_SCOPES),
    }
}
