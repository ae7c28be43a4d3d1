//! networking.k8s.io/v1 NetworkPolicy (`ValidateNetworkPolicySpec`).

use crate::core::IntOrString;
use crate::error::FieldErrorKind;
use crate::names::check_port_name;
use crate::networking::{IpBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};

use super::{Errors, FieldPath, meta, net};

pub(super) fn network_policy(np: &NetworkPolicy, errs: &mut Errors) {
    let spec = &np.spec;
    meta::selector(&spec.pod_selector, "spec.podSelector", errs);
    let ingress = FieldPath::new("spec.ingress");
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let path = ingress.index(i);
        rule_parts(
            rule.ports.as_deref(),
            rule.from.as_deref(),
            path,
            "from",
            errs,
        );
    }
    let egress = FieldPath::new("spec.egress");
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let path = egress.index(i);
        rule_parts(rule.ports.as_deref(), rule.to.as_deref(), path, "to", errs);
    }
    let types = &spec.policy_types;
    if types.len() > 2 {
        errs.invalid(
            "spec.policyTypes",
            format!("{types:?}: may not specify more than two policyTypes"),
        );
        return;
    }
    // The apiserver only caps the count and stores a repeated type, so the
    // policy is kept (refusing it would drop a deny-all policy, failing
    // open) and the repeat is only a warning.
    if let [a, b] = types.as_slice()
        && a == b
    {
        errs.warn(
            FieldErrorKind::Duplicate,
            "spec.policyTypes[1]",
            format!("{b:?} duplicates spec.policyTypes[0] (accepted, as the apiserver does)"),
        );
    }
}

fn rule_parts(
    ports: Option<&[NetworkPolicyPort]>,
    peers: Option<&[NetworkPolicyPeer]>,
    path: FieldPath<'_>,
    peer_field: &str,
    errs: &mut Errors,
) {
    let port_list = path.field("ports");
    for (j, p) in ports.unwrap_or_default().iter().enumerate() {
        port(p, port_list.index(j), errs);
    }
    let peer_list = path.field(peer_field);
    for (k, p) in peers.unwrap_or_default().iter().enumerate() {
        peer(p, peer_list.index(k), errs);
    }
}

/// `port` is a number or a named port; `endPort` needs a numeric `port`
/// and may not be below it.
fn port(p: &NetworkPolicyPort, path: FieldPath<'_>, errs: &mut Errors) {
    let end_path = path.field("endPort");
    match (&p.port, p.end_port) {
        (Some(IntOrString::Int(n)), end) => {
            errs.port(path.field("port"), *n);
            if let Some(end) = end {
                if end < *n {
                    errs.invalid(
                        end_path,
                        format!("{end}: must be greater than or equal to `port` ({n})"),
                    );
                }
                errs.port(end_path, end);
            }
        }
        (Some(IntOrString::String(name)), end) => {
            errs.check(path.field("port"), name, check_port_name);
            if let Some(end) = end {
                errs.invalid(
                    end_path,
                    format!("{end}: may not be specified when `port` is a named port ({name:?})"),
                );
            }
        }
        (None, Some(end)) => errs.invalid(
            end_path,
            format!("{end}: may not be specified when `port` is not specified"),
        ),
        (None, None) => {}
    }
}

/// A peer sets at least one field, and `ipBlock` stands alone.
fn peer(p: &NetworkPolicyPeer, path: FieldPath<'_>, errs: &mut Errors) {
    let mut set = 0;
    if let Some(sel) = &p.pod_selector {
        set += 1;
        meta::selector(sel, path.field("podSelector"), errs);
    }
    if let Some(sel) = &p.namespace_selector {
        set += 1;
        meta::selector(sel, path.field("namespaceSelector"), errs);
    }
    if let Some(b) = &p.ip_block {
        set += 1;
        ip_block(b, path.field("ipBlock"), errs);
    }
    if set == 0 {
        errs.required(
            path,
            "must specify a peer: podSelector, namespaceSelector or ipBlock",
        );
    } else if set > 1 && p.ip_block.is_some() {
        errs.forbidden(
            path,
            "may not specify both ipBlock and another peer (podSelector or namespaceSelector)",
        );
    }
}

/// `cidr` is a CIDR and every `except` a strict subset of it, checked as
/// `ValidateIPBlock` does: `cidr`'s network contains the network address
/// of `except`, and `cidr`'s prefix as written is shorter than the one of
/// `except` as written (an IPv4-mapped prefix counts out of 128).
fn ip_block(b: &IpBlock, path: FieldPath<'_>, errs: &mut Errors) {
    if b.cidr.is_empty() {
        errs.required(path.field("cidr"), "cidr is required");
        return;
    }
    let cidr = net::legacy_cidr(errs, path.field("cidr"), &b.cidr);
    let excepts = path.field("except");
    for (i, e) in b.except.iter().enumerate() {
        let ep = excepts.index(i);
        let (Some(except), Some(cidr)) = (net::legacy_cidr(errs, ep, e), cidr) else {
            continue;
        };
        if !cidr.has_strict_subset(&except) {
            errs.invalid(
                ep,
                format!("{e:?}: must be a strict subset of `cidr` ({:?})", b.cidr),
            );
        }
    }
}
