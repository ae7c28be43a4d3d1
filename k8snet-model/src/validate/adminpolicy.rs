//! policy.networking.k8s.io: AdminNetworkPolicy and BaselineAdminNetworkPolicy
//! (v1alpha1) and ClusterNetworkPolicy (v1alpha2). These are CRDs, so the
//! rules are the kubebuilder markers and CEL rules of
//! kubernetes-sigs/network-policy-api `apis/v1alpha1` and `apis/v1alpha2`.

use std::collections::BTreeMap;

use crate::adminpolicy::{
    AdminEgressPeer, AdminIngressPeer, AdminNetworkPolicy, AdminPolicyAction, AdminPolicyPort,
    AdminPolicySubject, BaselineAdminNetworkPolicy, ClusterNetworkPolicy, ClusterPolicyAction,
    ClusterPolicyPort, ClusterPolicyProtocol,
};
use crate::names::check_port_name;

use super::{Errors, meta, net};

const PRIORITY: std::ops::RangeInclusive<i32> = 0..=1000;
const MAX_RULE_NAME_LEN: usize = 100;
/// v1alpha1: rules per direction, peers per rule, ports per rule.
const V1A1_MAX: usize = 100;
/// v1alpha2: rules per direction, peers per rule, protocols per rule.
const V1A2_MAX: usize = 25;
const MAX_NETWORKS: usize = 25;
/// The CIDR type's `MaxLength`.
const MAX_CIDR_LEN: usize = 43;

/// Which API a rule belongs to; decides limits and what egress peers may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Admin,
    Baseline,
    Cluster,
}

impl Api {
    fn max(self) -> usize {
        if self == Self::Cluster {
            V1A2_MAX
        } else {
            V1A1_MAX
        }
    }
}

pub(super) fn admin_network_policy(anp: &AdminNetworkPolicy, errs: &mut Errors) {
    let spec = &anp.spec;
    errs.in_range("spec.priority", spec.priority, PRIORITY);
    subject(&spec.subject, errs);
    rule_count(spec.ingress.len(), "spec.ingress", V1A1_MAX, errs);
    for (i, r) in spec.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        rule_head(r.name.as_deref(), &path, errs);
        ingress_peers(&r.from, &path, Api::Admin, errs);
        v1a1_ports(r.ports.as_deref(), &path, false, errs);
    }
    rule_count(spec.egress.len(), "spec.egress", V1A1_MAX, errs);
    for (i, r) in spec.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        rule_head(r.name.as_deref(), &path, errs);
        let allow = r.action == AdminPolicyAction::Allow;
        let no_named = egress_peers(&r.to, &path, Api::Admin, allow, errs);
        v1a1_ports(r.ports.as_deref(), &path, no_named, errs);
    }
}

pub(super) fn baseline_admin_network_policy(banp: &BaselineAdminNetworkPolicy, errs: &mut Errors) {
    let spec = &banp.spec;
    subject(&spec.subject, errs);
    rule_count(spec.ingress.len(), "spec.ingress", V1A1_MAX, errs);
    for (i, r) in spec.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        rule_head(r.name.as_deref(), &path, errs);
        baseline_action(r.action, &path, errs);
        ingress_peers(&r.from, &path, Api::Baseline, errs);
        v1a1_ports(r.ports.as_deref(), &path, false, errs);
    }
    rule_count(spec.egress.len(), "spec.egress", V1A1_MAX, errs);
    for (i, r) in spec.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        rule_head(r.name.as_deref(), &path, errs);
        baseline_action(r.action, &path, errs);
        let no_named = egress_peers(&r.to, &path, Api::Baseline, false, errs);
        v1a1_ports(r.ports.as_deref(), &path, no_named, errs);
    }
}

pub(super) fn cluster_network_policy(cnp: &ClusterNetworkPolicy, errs: &mut Errors) {
    let spec = &cnp.spec;
    errs.in_range("spec.priority", spec.priority, PRIORITY);
    subject(&spec.subject, errs);
    rule_count(spec.ingress.len(), "spec.ingress", V1A2_MAX, errs);
    for (i, r) in spec.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        rule_head(r.name.as_deref(), &path, errs);
        ingress_peers(&r.from, &path, Api::Cluster, errs);
        protocols(r.protocols.as_deref(), &path, false, errs);
    }
    rule_count(spec.egress.len(), "spec.egress", V1A2_MAX, errs);
    for (i, r) in spec.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        rule_head(r.name.as_deref(), &path, errs);
        let accept = r.action == ClusterPolicyAction::Accept;
        let no_named = egress_peers(&r.to, &path, Api::Cluster, accept, errs);
        protocols(r.protocols.as_deref(), &path, no_named, errs);
    }
}

fn rule_count(n: usize, path: &str, max: usize, errs: &mut Errors) {
    if n > max {
        errs.too_many(path, n, max);
    }
}

fn rule_head(name: Option<&str>, path: &str, errs: &mut Errors) {
    if let Some(name) = name
        && name.len() > MAX_RULE_NAME_LEN
    {
        errs.too_long(format!("{path}.name"), name.len(), MAX_RULE_NAME_LEN);
    }
}

/// The Baseline API has no Pass (there is no lower tier to pass to).
fn baseline_action(action: AdminPolicyAction, path: &str, errs: &mut Errors) {
    if action == AdminPolicyAction::Pass {
        errs.not_supported(format!("{path}.action"), "Pass", &["Allow", "Deny"]);
    }
}

/// Reports how many of a one-of's fields are set: none is Required, more
/// than one Invalid (the CRDs' `MinProperties=1`/`MaxProperties=1`).
fn exactly_one(set: &[&str], path: &str, choices: &str, errs: &mut Errors) -> bool {
    match set.len() {
        1 => true,
        0 => {
            errs.required(path, format!("exactly one of {choices} must be set"));
            false
        }
        _ => {
            errs.invalid(
                path,
                format!("{set:?} are set: exactly one of {choices} must be set"),
            );
            false
        }
    }
}

fn subject(s: &AdminPolicySubject, errs: &mut Errors) {
    let mut set = Vec::new();
    if let Some(sel) = &s.namespaces {
        set.push("namespaces");
        meta::selector(sel, "spec.subject.namespaces", errs);
    }
    if let Some(p) = &s.pods {
        set.push("pods");
        meta::selector(
            &p.namespace_selector,
            "spec.subject.pods.namespaceSelector",
            errs,
        );
        meta::selector(&p.pod_selector, "spec.subject.pods.podSelector", errs);
    }
    exactly_one(&set, "spec.subject", "namespaces or pods", errs);
}

fn peer_count(n: usize, path: &str, api: Api, errs: &mut Errors) {
    if n == 0 {
        errs.required(path, "must contain at least one peer");
    } else if n > api.max() {
        errs.too_many(path, n, api.max());
    }
}

fn ingress_peers(peers: &[AdminIngressPeer], rule: &str, api: Api, errs: &mut Errors) {
    let path = format!("{rule}.from");
    peer_count(peers.len(), &path, api, errs);
    for (k, p) in peers.iter().enumerate() {
        let pp = format!("{path}[{k}]");
        let mut set = Vec::new();
        if let Some(sel) = &p.namespaces {
            set.push("namespaces");
            meta::selector(sel, &format!("{pp}.namespaces"), errs);
        }
        if let Some(pods) = &p.pods {
            set.push("pods");
            meta::selector(
                &pods.namespace_selector,
                &format!("{pp}.pods.namespaceSelector"),
                errs,
            );
            meta::selector(&pods.pod_selector, &format!("{pp}.pods.podSelector"), errs);
        }
        exactly_one(&set, &pp, "namespaces or pods", errs);
    }
}

/// Validates egress peers; returns true when a peer has no named ports
/// (networks, nodes, domainNames), so the rule may not use named ports.
/// `domains_ok`: the action allows `domainNames` (Allow in v1alpha1, Accept
/// in v1alpha2; Baseline v1alpha1 has no such field).
fn egress_peers(
    peers: &[AdminEgressPeer],
    rule: &str,
    api: Api,
    domains_ok: bool,
    errs: &mut Errors,
) -> bool {
    let path = format!("{rule}.to");
    peer_count(peers.len(), &path, api, errs);
    let mut portless = false;
    for (k, p) in peers.iter().enumerate() {
        let pp = format!("{path}[{k}]");
        let mut set = Vec::new();
        if let Some(sel) = &p.namespaces {
            set.push("namespaces");
            meta::selector(sel, &format!("{pp}.namespaces"), errs);
        }
        if let Some(pods) = &p.pods {
            set.push("pods");
            meta::selector(
                &pods.namespace_selector,
                &format!("{pp}.pods.namespaceSelector"),
                errs,
            );
            meta::selector(&pods.pod_selector, &format!("{pp}.pods.podSelector"), errs);
        }
        if let Some(sel) = &p.nodes {
            set.push("nodes");
            meta::selector(sel, &format!("{pp}.nodes"), errs);
        }
        if !p.networks.is_empty() {
            set.push("networks");
            networks(&p.networks, &format!("{pp}.networks"), errs);
        }
        if !p.domain_names.is_empty() {
            set.push("domainNames");
            domain_names(
                &p.domain_names,
                &format!("{pp}.domainNames"),
                api,
                domains_ok,
                errs,
            );
        }
        portless |= p.nodes.is_some() || !p.networks.is_empty() || !p.domain_names.is_empty();
        let choices = if api == Api::Baseline {
            "namespaces, pods, nodes or networks"
        } else {
            "namespaces, pods, nodes, networks or domainNames"
        };
        exactly_one(&set, &pp, choices, errs);
    }
    portless
}

/// At most 25 distinct CIDRs, each strict (no host bits) and not an
/// IPv4-embedded IPv6 form (the CIDR type's CEL rule).
fn networks(nets: &[String], path: &str, errs: &mut Errors) {
    if nets.len() > MAX_NETWORKS {
        errs.too_many(path, nets.len(), MAX_NETWORKS);
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in nets.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if n.len() > MAX_CIDR_LEN {
            errs.too_long(&p, n.len(), MAX_CIDR_LEN);
        } else if n.contains(':') && n.contains('.') {
            errs.invalid(
                &p,
                format!("{n:?}: IPv4 addresses embedded in IPv6 addresses are not supported"),
            );
        } else {
            net::cidr_strict(errs, &p, n);
        }
        match seen.get(n.as_str()) {
            Some(first) => errs.duplicate(p, &format!("{n:?}"), &format!("{path}[{first}]")),
            None => {
                seen.insert(n, i);
            }
        }
    }
}

fn domain_names(names: &[String], path: &str, api: Api, ok: bool, errs: &mut Errors) {
    if api == Api::Baseline {
        errs.forbidden(
            path,
            format!("{names:?}: BaselineAdminNetworkPolicy egress peers have no domainNames"),
        );
        return;
    }
    if !ok {
        let action = if api == Api::Cluster {
            "Accept"
        } else {
            "Allow"
        };
        errs.forbidden(
            path,
            format!("{names:?}: domainNames may only be used in rules whose action is {action}"),
        );
    }
    for (i, n) in names.iter().enumerate() {
        errs.check(format!("{path}[{i}]"), n, check_domain_name);
    }
}

/// The `DomainName` pattern: an optional leading `*.`, two or more labels
/// of `[A-Za-z0-9]([-A-Za-z0-9_]*[A-Za-z0-9])?`, an optional trailing dot.
fn check_domain_name(s: &str) -> Result<(), String> {
    let err = || {
        Err("must be a domain name such as \"example.com\" or \"*.example.com\" (at most one leading '*.')".to_string())
    };
    let rest = s.strip_prefix("*.").unwrap_or(s);
    let rest = rest.strip_suffix('.').unwrap_or(rest);
    if s.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    let labels: Vec<&str> = rest.split('.').collect();
    let label_ok = |l: &&str| {
        let b = l.as_bytes();
        match (b.first(), b.last()) {
            (Some(f), Some(e)) => {
                f.is_ascii_alphanumeric()
                    && e.is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
            }
            _ => false,
        }
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return err();
    }
    Ok(())
}

/// v1alpha1 ports: when set, 1 to 100 entries, each exactly one of
/// `portNumber`, `namedPort`, `portRange`.
fn v1a1_ports(ports: Option<&[AdminPolicyPort]>, rule: &str, no_named: bool, errs: &mut Errors) {
    let Some(ports) = ports else { return };
    let path = format!("{rule}.ports");
    if ports.is_empty() {
        errs.required(
            &path,
            "must contain at least one port when set (omit it to match all ports)",
        );
    } else if ports.len() > V1A1_MAX {
        errs.too_many(&path, ports.len(), V1A1_MAX);
    }
    for (j, p) in ports.iter().enumerate() {
        let pp = format!("{path}[{j}]");
        let mut set = Vec::new();
        if let Some(n) = &p.port_number {
            set.push("portNumber");
            errs.port(format!("{pp}.portNumber.port"), n.port);
        }
        if let Some(name) = &p.named_port {
            set.push("namedPort");
            named_port(name, &format!("{pp}.namedPort"), no_named, errs);
        }
        if let Some(r) = &p.port_range {
            set.push("portRange");
            port_range(r.start, r.end, &format!("{pp}.portRange"), errs);
        }
        exactly_one(&set, &pp, "portNumber, namedPort or portRange", errs);
    }
}

fn named_port(name: &str, path: &str, no_named: bool, errs: &mut Errors) {
    errs.check(path, name, check_port_name);
    if no_named {
        errs.forbidden(
            path,
            format!("{name:?}: named ports cannot be used with networks, nodes or domainNames peers, which have no named ports"),
        );
    }
}

/// Both ends are ports and `start < end` (the API says "less than").
fn port_range(start: i32, end: i32, path: &str, errs: &mut Errors) {
    errs.port(format!("{path}.start"), start);
    errs.port(format!("{path}.end"), end);
    if start >= end {
        errs.invalid(path, format!("start {start} must be less than end {end}"));
    }
}

/// v1alpha2 protocols: when set, 1 to 25 entries, each exactly one of
/// `tcp`, `udp`, `sctp`, `destinationNamedPort`.
fn protocols(
    protos: Option<&[ClusterPolicyProtocol]>,
    rule: &str,
    no_named: bool,
    errs: &mut Errors,
) {
    let Some(protos) = protos else { return };
    let path = format!("{rule}.protocols");
    if protos.is_empty() {
        errs.required(
            &path,
            "must contain at least one protocol when set (omit it to match all traffic)",
        );
    } else if protos.len() > V1A2_MAX {
        errs.too_many(&path, protos.len(), V1A2_MAX);
    }
    for (j, p) in protos.iter().enumerate() {
        let pp = format!("{path}[{j}]");
        let mut set = Vec::new();
        for (field, ports) in [("tcp", &p.tcp), ("udp", &p.udp), ("sctp", &p.sctp)] {
            let Some(ports) = ports else { continue };
            set.push(field);
            if let Some(dp) = &ports.destination_port {
                destination_port(dp, &format!("{pp}.{field}.destinationPort"), errs);
            }
        }
        if let Some(name) = &p.destination_named_port {
            set.push("destinationNamedPort");
            named_port(name, &format!("{pp}.destinationNamedPort"), no_named, errs);
        }
        exactly_one(&set, &pp, "tcp, udp, sctp or destinationNamedPort", errs);
    }
}

fn destination_port(dp: &ClusterPolicyPort, path: &str, errs: &mut Errors) {
    let mut set = Vec::new();
    if let Some(n) = dp.number {
        set.push("number");
        errs.port(format!("{path}.number"), n);
    }
    if let Some(r) = &dp.range {
        set.push("range");
        port_range(r.start, r.end, &format!("{path}.range"), errs);
    }
    exactly_one(&set, path, "number or range", errs);
}
