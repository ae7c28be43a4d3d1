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

use super::Errors;

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
        backend(b, "spec.defaultBackend", errs);
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        if let Some(h) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            host(h, &format!("{path}.host"), errs);
        }
        let Some(http) = &rule.http else { continue };
        if http.paths.is_empty() {
            errs.required(
                format!("{path}.http.paths"),
                "at least one path is required when `http` is set",
            );
        }
        for (j, p) in http.paths.iter().enumerate() {
            http_path(p, &format!("{path}.http.paths[{j}]"), errs);
        }
    }
    for (i, tls) in spec.tls.iter().enumerate() {
        for (j, h) in tls.hosts.iter().enumerate() {
            tls_host(h, &format!("spec.tls[{i}].hosts[{j}]"), errs);
        }
        if let Some(s) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) {
            errs.check(
                format!("spec.tls[{i}].secretName"),
                s,
                check_dns1123_subdomain,
            );
        }
    }
    if let Some(class) = &spec.ingress_class_name {
        errs.check("spec.ingressClassName", class, check_dns1123_subdomain);
        if let Some(legacy) = ing.metadata.annotations.get(INGRESS_CLASS_ANNOTATION)
            && legacy != class
        {
            errs.invalid(
                "metadata.annotations",
                format!(
                    "{INGRESS_CLASS_ANNOTATION} {legacy:?}: must match `ingressClassName` ({class:?}) when both are specified"
                ),
            );
        }
    }
}

/// A rule host is a DNS name (not an IP), optionally with one leading `*.`.
fn host(h: &str, path: &str, errs: &mut Errors) {
    if h.parse::<std::net::IpAddr>().is_ok() {
        errs.invalid(
            path,
            format!("{h:?}: must be a DNS name, not an IP address"),
        );
    }
    tls_host(h, path, errs);
}

fn tls_host(h: &str, path: &str, errs: &mut Errors) {
    if h.contains('*') {
        errs.check(path, h, check_wildcard_dns1123_subdomain);
    } else {
        errs.check(path, h, check_dns1123_subdomain);
    }
}

fn http_path(p: &HttpIngressPath, path: &str, errs: &mut Errors) {
    let value = p.path.as_deref().unwrap_or_default();
    let pp = format!("{path}.path");
    match p.path_type {
        PathType::Exact | PathType::Prefix => {
            if !value.starts_with('/') {
                errs.invalid(
                    &pp,
                    format!(
                        "{value:?}: must be an absolute path (start with '/') for pathType {:?}",
                        p.path_type
                    ),
                );
            }
            for seq in INVALID_PATH_SEQUENCES {
                if value.contains(seq) {
                    errs.invalid(&pp, format!("{value:?}: must not contain '{seq}'"));
                }
            }
            for suffix in INVALID_PATH_SUFFIXES {
                if value.ends_with(suffix) {
                    errs.invalid(&pp, format!("{value:?}: cannot end with '{suffix}'"));
                }
            }
        }
        PathType::ImplementationSpecific => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.invalid(
                    &pp,
                    format!("{value:?}: must be an absolute path (start with '/')"),
                );
            }
        }
    }
    backend(&p.backend, &format!("{path}.backend"), errs);
}

/// Exactly one of `service` and `resource`; a service port is a name or a
/// number, not both.
fn backend(b: &IngressBackend, path: &str, errs: &mut Errors) {
    match (&b.service, &b.resource) {
        (Some(_), Some(_)) => {
            errs.invalid(path, "cannot set both resource and service backends");
        }
        (None, None) => errs.invalid(path, "resource or service backend is required"),
        (None, Some(r)) => resource(r, &format!("{path}.resource"), errs),
        (Some(svc), None) => {
            let sp = format!("{path}.service");
            if svc.name.is_empty() {
                errs.required(format!("{sp}.name"), "service name is required");
            } else {
                // A Service name; see the metadata module for why DNS-1035.
                errs.check(format!("{sp}.name"), &svc.name, check_dns1035_label);
            }
            let name = svc.port.name.as_deref().filter(|n| !n.is_empty());
            let number = svc.port.number.filter(|&n| n != 0);
            match (name, number) {
                (Some(name), Some(number)) => errs.invalid(
                    format!("{sp}.port"),
                    format!(
                        "name {name:?} and number {number}: cannot set both port name & port number"
                    ),
                ),
                (Some(name), None) => errs.check(format!("{sp}.port.name"), name, check_port_name),
                (None, Some(number)) => errs.port(format!("{sp}.port.number"), number),
                (None, None) => errs.required(
                    format!("{sp}.port"),
                    format!("port name or number is required (service {:?})", svc.name),
                ),
            }
        }
    }
}

fn resource(r: &TypedLocalObjectReference, path: &str, errs: &mut Errors) {
    if let Some(g) = &r.api_group {
        errs.check(format!("{path}.apiGroup"), g, check_dns1123_subdomain);
    }
    segment(&r.kind, &format!("{path}.kind"), errs);
    segment(&r.name, &format!("{path}.name"), errs);
}

/// A required name that ends up in a URL path segment (`IsPathSegmentName`).
fn segment(value: &str, path: &str, errs: &mut Errors) {
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
    let path = "spec.parameters";
    if let Some(g) = &p.api_group {
        errs.check(format!("{path}.apiGroup"), g, check_dns1123_subdomain);
    }
    segment(&p.kind, &format!("{path}.kind"), errs);
    segment(&p.name, &format!("{path}.name"), errs);
    let namespace = p.namespace.as_deref();
    match p.scope.as_deref() {
        None => errs.required(format!("{path}.scope"), "scope is required"),
        Some("Namespace") => match namespace {
            None => errs.required(
                format!("{path}.namespace"),
                "namespace is required when `parameters.scope` is Namespace",
            ),
            Some(ns) => errs.check(format!("{path}.namespace"), ns, check_dns1123_label),
        },
        Some("Cluster") => {
            if let Some(ns) = namespace {
                errs.forbidden(
                    format!("{path}.namespace"),
                    format!("{ns:?}: may not be set when `parameters.scope` is Cluster"),
                );
            }
        }
        Some(other) => errs.not_supported(format!("{path}.scope"), other, PARAMETER_SCOPES),
    }
}
