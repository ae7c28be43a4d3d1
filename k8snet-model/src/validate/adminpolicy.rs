//! policy.networking.k8s.io: AdminNetworkPolicy and BaselineAdminNetworkPolicy
//! (v1alpha1) and ClusterNetworkPolicy (v1alpha2). These are CRDs, so the
//! rules are the kubebuilder markers and CEL rules of
//! kubernetes-sigs/network-policy-api `apis/v1alpha1` and `apis/v1alpha2`.

use crate::adminpolicy::{
    AdminEgressPeer, AdminIngressPeer, AdminNetworkPolicy, AdminPolicyAction, AdminPolicyPort,
    AdminPolicySubject, BaselineAdminNetworkPolicy, ClusterNetworkPolicy, ClusterPolicyAction,
    ClusterPolicyPort, ClusterPolicyProtocol,
};
use crate::names::check_port_name;

use super::seen::FirstSeen;
use super::{Errors, FieldPath, meta, net};

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
    let ingress = FieldPath::new("spec.ingress");
    rule_count(spec.ingress.len(), ingress, V1A1_MAX, errs);
    for (i, r) in spec.ingress.iter().enumerate() {
        let path = ingress.index(i);
        rule_head(r.name.as_deref(), path, errs);
        ingress_peers(&r.from, path, Api::Admin, errs);
        v1a1_ports(r.ports.as_deref(), path, false, errs);
    }
    let egress = FieldPath::new("spec.egress");
    rule_count(spec.egress.len(), egress, V1A1_MAX, errs);
    for (i, r) in spec.egress.iter().enumerate() {
        let path = egress.index(i);
        rule_head(r.name.as_deref(), path, errs);
        let allow = r.action == AdminPolicyAction::Allow;
        let no_named = egress_peers(&r.to, path, Api::Admin, allow, errs);
        v1a1_ports(r.ports.as_deref(), path, no_named, errs);
    }
}

pub(super) fn baseline_admin_network_policy(banp: &BaselineAdminNetworkPolicy, errs: &mut Errors) {
    let spec = &banp.spec;
    subject(&spec.subject, errs);
    let ingress = FieldPath::new("spec.ingress");
    rule_count(spec.ingress.len(), ingress, V1A1_MAX, errs);
    for (i, r) in spec.ingress.iter().enumerate() {
        let path = ingress.index(i);
        rule_head(r.name.as_deref(), path, errs);
        baseline_action(r.action, path, errs);
        ingress_peers(&r.from, path, Api::Baseline, errs);
        v1a1_ports(r.ports.as_deref(), path, false, errs);
    }
    let egress = FieldPath::new("spec.egress");
    rule_count(spec.egress.len(), egress, V1A1_MAX, errs);
    for (i, r) in spec.egress.iter().enumerate() {
        let path = egress.index(i);
        rule_head(r.name.as_deref(), path, errs);
        baseline_action(r.action, path, errs);
        let no_named = egress_peers(&r.to, path, Api::Baseline, false, errs);
        v1a1_ports(r.ports.as_deref(), path, no_named, errs);
    }
}

pub(super) fn cluster_network_policy(cnp: &ClusterNetworkPolicy, errs: &mut Errors) {
    let spec = &cnp.spec;
    errs.in_range("spec.priority", spec.priority, PRIORITY);
    subject(&spec.subject, errs);
    let ingress = FieldPath::new("spec.ingress");
    rule_count(spec.ingress.len(), ingress, V1A2_MAX, errs);
    for (i, r) in spec.ingress.iter().enumerate() {
        let path = ingress.index(i);
        rule_head(r.name.as_deref(), path, errs);
        ingress_peers(&r.from, path, Api::Cluster, errs);
        protocols(r.protocols.as_deref(), path, false, errs);
    }
    let egress = FieldPath::new("spec.egress");
    rule_count(spec.egress.len(), egress, V1A2_MAX, errs);
    for (i, r) in spec.egress.iter().enumerate() {
        let path = egress.index(i);
        rule_head(r.name.as_deref(), path, errs);
        let accept = r.action == ClusterPolicyAction::Accept;
        let no_named = egress_peers(&r.to, path, Api::Cluster, accept, errs);
        protocols(r.protocols.as_deref(), path, no_named, errs);
    }
}

fn rule_count(n: usize, path: FieldPath<'_>, max: usize, errs: &mut Errors) {
    if n > max {
        errs.too_many(path, n, max);
    }
}

fn rule_head(name: Option<&str>, path: FieldPath<'_>, errs: &mut Errors) {
    if let Some(name) = name
        && name.len() > MAX_RULE_NAME_LEN
    {
        errs.too_long(path.field("name"), name.len(), MAX_RULE_NAME_LEN);
    }
}

/// The Baseline API has no Pass (there is no lower tier to pass to).
fn baseline_action(action: AdminPolicyAction, path: FieldPath<'_>, errs: &mut Errors) {
    if action == AdminPolicyAction::Pass {
        errs.not_supported(path.field("action"), "Pass", &["Allow", "Deny"]);
    }
}

/// The fields of a one-of that are set, in order. A one-of here has at most
/// five fields, so they fit in an array and checking allocates nothing.
#[derive(Default)]
struct SetFields {
    names: [&'static str; 5],
    len: usize,
}

impl SetFields {
    fn push(&mut self, field: &'static str) {
        let slot = self.names.get_mut(self.len);
        *slot.expect("a one-of has at most five fields") = field;
        self.len += 1;
    }

    fn as_slice(&self) -> &[&'static str] {
        &self.names[..self.len]
    }
}

/// Reports how many of a one-of's fields are set: none is Required, more
/// than one Invalid (the CRDs' `MinProperties=1`/`MaxProperties=1`).
fn exactly_one<'p>(
    set: &SetFields,
    path: impl Into<FieldPath<'p>>,
    choices: &str,
    errs: &mut Errors,
) -> bool {
    let set = set.as_slice();
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
    let mut set = SetFields::default();
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

fn peer_count(n: usize, path: FieldPath<'_>, api: Api, errs: &mut Errors) {
    if n == 0 {
        errs.required(path, "must contain at least one peer");
    } else if n > api.max() {
        errs.too_many(path, n, api.max());
    }
}

fn ingress_peers(peers: &[AdminIngressPeer], rule: FieldPath<'_>, api: Api, errs: &mut Errors) {
    let path = rule.field("from");
    peer_count(peers.len(), path, api, errs);
    for (k, p) in peers.iter().enumerate() {
        let pp = path.index(k);
        let mut set = SetFields::default();
        if let Some(sel) = &p.namespaces {
            set.push("namespaces");
            meta::selector(sel, pp.field("namespaces"), errs);
        }
        if let Some(pods) = &p.pods {
            set.push("pods");
            let pods_path = pp.field("pods");
            meta::selector(
                &pods.namespace_selector,
                pods_path.field("namespaceSelector"),
                errs,
            );
            meta::selector(&pods.pod_selector, pods_path.field("podSelector"), errs);
        }
        exactly_one(&set, pp, "namespaces or pods", errs);
    }
}

/// Validates egress peers; returns true when a peer has no named ports
/// (networks, nodes, domainNames), so the rule may not use named ports.
/// `domains_ok`: the action allows `domainNames` (Allow in v1alpha1, Accept
/// in v1alpha2; Baseline v1alpha1 has no such field).
fn egress_peers(
    peers: &[AdminEgressPeer],
    rule: FieldPath<'_>,
    api: Api,
    domains_ok: bool,
    errs: &mut Errors,
) -> bool {
    let path = rule.field("to");
    peer_count(peers.len(), path, api, errs);
    let mut portless = false;
    for (k, p) in peers.iter().enumerate() {
        let pp = path.index(k);
        let mut set = SetFields::default();
        if let Some(sel) = &p.namespaces {
            set.push("namespaces");
            meta::selector(sel, pp.field("namespaces"), errs);
        }
        if let Some(pods) = &p.pods {
            set.push("pods");
            let pods_path = pp.field("pods");
            meta::selector(
                &pods.namespace_selector,
                pods_path.field("namespaceSelector"),
                errs,
            );
            meta::selector(&pods.pod_selector, pods_path.field("podSelector"), errs);
        }
        if let Some(sel) = &p.nodes {
            set.push("nodes");
            meta::selector(sel, pp.field("nodes"), errs);
        }
        if !p.networks.is_empty() {
            set.push("networks");
            networks(&p.networks, pp.field("networks"), errs);
        }
        if !p.domain_names.is_empty() {
            set.push("domainNames");
            let names_path = pp.field("domainNames");
            domain_names(&p.domain_names, names_path, api, domains_ok, errs);
        }
        portless |= p.nodes.is_some() || !p.networks.is_empty() || !p.domain_names.is_empty();
        let choices = if api == Api::Baseline {
            "namespaces, pods, nodes or networks"
        } else {
            "namespaces, pods, nodes, networks or domainNames"
        };
        exactly_one(&set, pp, choices, errs);
    }
    portless
}

/// At most 25 distinct CIDRs, each strict (no host bits) and not an
/// IPv4-embedded IPv6 form (the CIDR type's CEL rule).
fn networks(nets: &[String], path: FieldPath<'_>, errs: &mut Errors) {
    if nets.len() > MAX_NETWORKS {
        errs.too_many(path, nets.len(), MAX_NETWORKS);
    }
    let mut seen = FirstSeen::new();
    for (i, n) in nets.iter().enumerate() {
        let p = path.index(i);
        if n.len() > MAX_CIDR_LEN {
            errs.too_long(p, n.len(), MAX_CIDR_LEN);
        } else if n.contains(':') && n.contains('.') {
            errs.invalid(
                p,
                format!("{n:?}: IPv4 addresses embedded in IPv6 addresses are not supported"),
            );
        } else {
            net::cidr_strict(errs, p, n);
        }
        if let Some(first) = seen.repeat_of(n.as_str(), i) {
            errs.duplicate(p, &format!("{n:?}"), path.index(first));
        }
    }
}

fn domain_names(names: &[String], path: FieldPath<'_>, api: Api, ok: bool, errs: &mut Errors) {
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
        errs.check(path.index(i), n, check_domain_name);
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
fn v1a1_ports(
    ports: Option<&[AdminPolicyPort]>,
    rule: FieldPath<'_>,
    no_named: bool,
    errs: &mut Errors,
) {
    let Some(ports) = ports else { return };
    let path = rule.field("ports");
    if ports.is_empty() {
        errs.required(
            path,
            "must contain at least one port when set (omit it to match all ports)",
        );
    } else if ports.len() > V1A1_MAX {
        errs.too_many(path, ports.len(), V1A1_MAX);
    }
    for (j, p) in ports.iter().enumerate() {
        let pp = path.index(j);
        let mut set = SetFields::default();
        if let Some(n) = &p.port_number {
            set.push("portNumber");
            errs.port(pp.field("portNumber.port"), n.port);
        }
        if let Some(name) = &p.named_port {
            set.push("namedPort");
            named_port(name, pp.field("namedPort"), no_named, errs);
        }
        if let Some(r) = &p.port_range {
            set.push("portRange");
            port_range(r.start, r.end, pp.field("portRange"), errs);
        }
        exactly_one(&set, pp, "portNumber, namedPort or portRange", errs);
    }
}

fn named_port(name: &str, path: FieldPath<'_>, no_named: bool, errs: &mut Errors) {
    errs.check(path, name, check_port_name);
    if no_named {
        errs.forbidden(
            path,
            format!("{name:?}: named ports cannot be used with networks, nodes or domainNames peers, which have no named ports"),
        );
    }
}

/// Both ends are ports and `start < end` (the API says "less than").
fn port_range(start: i32, end: i32, path: FieldPath<'_>, errs: &mut Errors) {
    errs.port(path.field("start"), start);
    errs.port(path.field("end"), end);
    if start >= end {
        errs.invalid(path, format!("start {start} must be less than end {end}"));
    }
}

/// v1alpha2 protocols: when set, 1 to 25 entries, each exactly one of
/// `tcp`, `udp`, `sctp`, `destinationNamedPort`.
fn protocols(
    protos: Option<&[ClusterPolicyProtocol]>,
    rule: FieldPath<'_>,
    no_named: bool,
    errs: &mut Errors,
) {
    let Some(protos) = protos else { return };
    let path = rule.field("protocols");
    if protos.is_empty() {
        errs.required(
            path,
            "must contain at least one protocol when set (omit it to match all traffic)",
        );
    } else if protos.len() > V1A2_MAX {
        errs.too_many(path, protos.len(), V1A2_MAX);
    }
    for (j, p) in protos.iter().enumerate() {
        let pp = path.index(j);
        let mut set = SetFields::default();
        for (field, ports) in [("tcp", &p.tcp), ("udp", &p.udp), ("sctp", &p.sctp)] {
            let Some(ports) = ports else { continue };
            set.push(field);
            if let Some(dp) = &ports.destination_port {
                let proto = pp.field(field);
                destination_port(dp, proto.field("destinationPort"), errs);
            }
        }
        if let Some(name) = &p.destination_named_port {
            set.push("destinationNamedPort");
            named_port(name, pp.field("destinationNamedPort"), no_named, errs);
        }
        exactly_one(&set, pp, "tcp, udp, sctp or destinationNamedPort", errs);
    }
}

fn destination_port(dp: &ClusterPolicyPort, path: FieldPath<'_>, errs: &mut Errors) {
    let mut set = SetFields::default();
    if let Some(n) = dp.number {
        set.push("number");
        errs.port(path.field("number"), n);
    }
    if let Some(r) = &dp.range {
        set.push("range");
        port_range(r.start, r.end, path.field("range"), errs);
    }
    exactly_one(&set, path, "number or range", errs);
}
