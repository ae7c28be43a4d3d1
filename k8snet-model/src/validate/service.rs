//! core/v1 Service (`ValidateService` and the checks it calls).

use crate::core::{
    IntOrString, IpFamily, IpFamilyPolicy, Service, ServicePort, ServiceType, SessionAffinity,
    TrafficPolicy,
};
use crate::core::{SOURCE_RANGES_ANNOTATION, source_range_values};
use crate::names::{
    check_dns1123_label, check_dns1123_subdomain, check_label_key, check_port_name,
};

use super::seen::FirstSeen;
use super::{Errors, FieldPath, meta, net};

/// The longest ClientIP affinity timeout, one day (`MaxClientIPServiceAffinitySeconds`).
const MAX_AFFINITY_TIMEOUT: i32 = 86_400;

/// Values of `trafficDistribution` (PreferSameZone/PreferSameNode since 1.33).
const TRAFFIC_DISTRIBUTIONS: &[&str] = &["PreferClose", "PreferSameZone", "PreferSameNode"];

const IP_MODES: &[&str] = &["VIP", "Proxy"];

pub(super) fn service(svc: &Service, errs: &mut Errors) {
    let spec = &svc.spec;
    let ty = svc.service_type();
    let headless = is_headless(svc);
    if spec.ports.is_empty() && !headless && ty != ServiceType::ExternalName {
        errs.required(
            "spec.ports",
            "at least one port is required (except for headless and ExternalName Services)",
        );
    }
    match ty {
        ServiceType::NodePort | ServiceType::LoadBalancer if headless => {
            errs.invalid(
                cluster_ip_path(svc),
                format!("\"None\": may not be set for {ty:?} Services"),
            );
        }
        ServiceType::ExternalName => external_name(svc, errs),
        _ => {}
    }
    ports(svc, ty, errs);
    if let Some(sel) = &spec.selector {
        meta::label_map(sel, "spec.selector", errs);
    }
    // With affinity None the apiserver's defaulting drops sessionAffinityConfig
    // before validation, so a leftover config is accepted, not Forbidden.
    if spec.session_affinity == Some(SessionAffinity::ClientIP)
        && let Some(t) = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
    {
        errs.in_range(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            t,
            1..=MAX_AFFINITY_TIMEOUT,
        );
    }
    if ty != ServiceType::ExternalName {
        cluster_ips(svc, headless, errs);
    }
    // A legacy field (IsValidIPForLegacyField): leading zeros and
    // IPv4-mapped spellings are stored with a warning.
    let external_ips = FieldPath::new("spec.externalIPs");
    for (i, ip) in spec.external_ips.iter().enumerate() {
        net::legacy_non_special_ip(errs, external_ips.index(i), ip);
    }
    load_balancer(svc, ty, errs);
    traffic_policy(svc, ty, errs);
    if let Some(d) = &spec.traffic_distribution
        && !TRAFFIC_DISTRIBUTIONS.contains(&d.as_str())
    {
        errs.not_supported("spec.trafficDistribution", d, TRAFFIC_DISTRIBUTIONS);
    }
    status(svc, errs);
}

/// Headless: `clusterIP: None` (the defaulted `clusterIPs` is then `[None]`).
fn is_headless(svc: &Service) -> bool {
    svc.is_headless() || svc.spec.cluster_ips.first().map(String::as_str) == Some("None")
}

/// Where to report a problem with the primary cluster IP: the field the
/// user wrote (`clusterIP`), falling back to `clusterIPs[0]`.
fn cluster_ip_path(svc: &Service) -> &'static str {
    if svc
        .spec
        .cluster_ip
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        "spec.clusterIP"
    } else {
        "spec.clusterIPs[0]"
    }
}

fn external_name(svc: &Service, errs: &mut Errors) {
    let spec = &svc.spec;
    if let Some(ip) = spec.cluster_ip.as_deref().filter(|s| !s.is_empty()) {
        errs.forbidden(
            "spec.clusterIP",
            format!("{ip:?}: may not be set for ExternalName Services"),
        );
    } else if !spec.cluster_ips.is_empty() {
        // Any list at all, even `[""]`: ValidateService refuses a
        // non-empty clusterIPs on ExternalName Services.
        errs.forbidden(
            "spec.clusterIPs",
            format!(
                "{:?}: may not be set for ExternalName Services",
                spec.cluster_ips
            ),
        );
    }
    if !spec.ip_families.is_empty() {
        errs.forbidden(
            "spec.ipFamilies",
            format!(
                "{:?}: may not be set for ExternalName Services",
                spec.ip_families
            ),
        );
    }
    if let Some(p) = spec.ip_family_policy {
        errs.forbidden(
            "spec.ipFamilyPolicy",
            format!("{p:?}: may not be set for ExternalName Services"),
        );
    }
    // A CNAME target may be written fully qualified, with a trailing dot.
    let name = spec.external_name.as_deref().unwrap_or_default();
    let cname = name.strip_suffix('.').unwrap_or(name);
    if cname.is_empty() {
        errs.required(
            "spec.externalName",
            "externalName is required for ExternalName Services",
        );
    } else if let Err(msg) = check_dns1123_subdomain(cname) {
        errs.invalid("spec.externalName", format!("{name:?}: {msg}"));
    }
}

fn ports(svc: &Service, ty: ServiceType, errs: &mut Errors) {
    let ports = &svc.spec.ports;
    // Only ClusterIP Services refuse a nodePort; an ExternalName Service
    // keeps one unallocated and unused (as the apiserver stores it).
    let node_ports_allowed = ty != ServiceType::ClusterIP;
    let list = FieldPath::new("spec.ports");
    let mut names = FirstSeen::new();
    // (port, protocol) → the first port with it.
    let mut pairs = FirstSeen::new();
    let mut node_ports = FirstSeen::new();
    for (i, p) in ports.iter().enumerate() {
        let path = list.index(i);
        port_name(p, list, i, ports.len() > 1, &mut names, errs);
        errs.port(path.field("port"), p.port);
        target_port(p, path, errs);
        if let Some(ap) = &p.app_protocol {
            errs.check(path.field("appProtocol"), ap, check_label_key);
        }
        let proto = p.protocol.unwrap_or_default().as_str();
        if let Some(first) = pairs.repeat_of((p.port, proto), i) {
            let value = format!("port {}/{proto}", p.port);
            errs.duplicate(path, &value, list.index(first));
        }
        let Some(np) = p.node_port.filter(|&n| n != 0) else {
            continue;
        };
        let node_port = path.field("nodePort");
        if !node_ports_allowed {
            errs.forbidden(
                node_port,
                format!("{np}: may not be used when `type` is ClusterIP"),
            );
        }
        // The allocation range (30000-32767 by default) is an apiserver flag,
        // so only the port range is checked here.
        errs.port(node_port, np);
        if let Some(first) = node_ports.repeat_of((np, proto), i) {
            let first = list.index(first);
            let value = format!("nodePort {np}/{proto}");
            errs.duplicate(node_port, &value, first.field("nodePort"));
        }
    }
}

/// `list` is the path of `spec.ports`, `i` the index of `p` in it.
fn port_name<'a>(
    p: &'a ServicePort,
    list: FieldPath<'_>,
    i: usize,
    required: bool,
    names: &mut FirstSeen<&'a str, usize>,
    errs: &mut Errors,
) {
    let item = list.index(i);
    let path = item.field("name");
    match p.name.as_deref().filter(|n| !n.is_empty()) {
        None if required => errs.required(
            path,
            format!(
                "port {} needs a name: names are required when a Service has more than one port",
                p.port
            ),
        ),
        None => {}
        Some(name) => {
            errs.check(path, name, check_dns1123_label);
            if let Some(first) = names.repeat_of(name, i) {
                let first = list.index(first);
                errs.duplicate(path, &format!("{name:?}"), first.field("name"));
            }
        }
    }
}

/// `targetPort` is a port number or an IANA port name; `0` and `""` mean
/// "same as port" (the apiserver defaults them), so they pass, and a
/// target equal to `port` (often defaulted from it) was checked as `port`.
fn target_port(p: &ServicePort, path: FieldPath<'_>, errs: &mut Errors) {
    let target = path.field("targetPort");
    match &p.target_port {
        Some(IntOrString::Int(n)) if *n != 0 && *n != p.port => errs.port(target, *n),
        Some(IntOrString::String(s)) if !s.is_empty() => errs.check(target, s, check_port_name),
        _ => {}
    }
}

/// `clusterIP`, `clusterIPs`, `ipFamilies` and `ipFamilyPolicy` agree
/// (`ValidateServiceClusterIPsRelatedFields`). The addresses are legacy
/// fields: without `StrictIPCIDRValidation` (alpha, off by default) the
/// apiserver checks them with `IsValidIPForLegacyField`, warns on each
/// `clusterIPs` entry that is not canonical (`GetWarningsForService`), and
/// checks families on the address as read (`ParseIPSloppy`: an
/// IPv4-mapped address is IPv4); kube-proxy reads them the same way
/// ([`Service::cluster_ips`]). `clusterIPs[0]` must equal `clusterIP` as
/// written (a string compare, as upstream).
fn cluster_ips(svc: &Service, headless: bool, errs: &mut Errors) {
    let spec = &svc.spec;
    let errors_before = errs.errors.len();
    let primary = spec.cluster_ip.as_deref().filter(|s| !s.is_empty());
    let ips = spec.cluster_ips.as_slice();
    // Errors on the field itself; the warning goes on `clusterIPs[0]`
    // (the same text, once defaulting copied it) as upstream's does.
    let mut primary_read = false;
    if let Some(ip) = primary
        && ip != "None"
    {
        primary_read = if ips.is_empty() {
            net::legacy_ip(errs, "spec.clusterIP", ip).is_some()
        } else {
            match net::parse_ip_legacy(ip) {
                Ok(_) => true,
                Err(msg) => {
                    errs.invalid("spec.clusterIP", msg);
                    false
                }
            }
        };
    }
    // Defaulting copies a lone `clusterIP` into `clusterIPs`, never the
    // reverse (`NormalizeClusterIPs`): a client that sets the list sets both.
    if primary.is_none() && !ips.is_empty() {
        errs.invalid(
            "spec.clusterIPs",
            format!("{ips:?}: must be empty when `clusterIP` is not specified"),
        );
    }
    // One entry per clusterIPs entry (None where it is "None" or invalid), so
    // indices line up with ipFamilies.
    let mut parsed: Vec<Option<std::net::IpAddr>> = Vec::with_capacity(ips.len());
    let cluster_ips = FieldPath::new("spec.clusterIPs");
    for (i, s) in ips.iter().enumerate() {
        let path = cluster_ips.index(i);
        if i == 0
            && let Some(p) = primary
            && p != s
        {
            errs.invalid(path, format!("{s:?}: must match `clusterIP` ({p:?})"));
            parsed.push(None);
            continue;
        }
        if s == "None" {
            if ips.len() > 1 {
                errs.invalid(
                    path,
                    format!("{ips:?}: \"None\" must be the first and only value"),
                );
            }
            parsed.push(None);
        } else if i == 0 && primary.is_some() && !primary_read {
            // Same value as spec.clusterIP, already refused there.
            parsed.push(None);
        } else {
            parsed.push(net::legacy_ip(errs, path, s));
        }
    }
    if ips.len() > 2 {
        errs.invalid(
            "spec.clusterIPs",
            format!("{ips:?}: may hold at most 2 values"),
        );
    }
    let mut same_family = false;
    if let [Some(a), Some(b)] = parsed.as_slice() {
        same_family = a.is_ipv4() == b.is_ipv4();
        let mut families = net::Families::default();
        families.add(*a);
        families.add(*b);
        let values = ips.iter().map(String::as_str);
        net::dual_stack(errs, cluster_ips, values, &families);
    }
    // Families derived (on load) from same-family clusterIPs repeat too;
    // that is one mistake, already reported on clusterIPs.
    ip_families(svc, headless, &parsed, !same_family, errs);
    // The allocator checks the policy only once the fields above are valid
    // (`initIPFamilyFields` returns their errors first).
    if errs.errors.len() == errors_before {
        single_stack(svc, errs);
    }
}

fn ip_families(
    svc: &Service,
    headless: bool,
    parsed: &[Option<std::net::IpAddr>],
    report_duplicates: bool,
    errs: &mut Errors,
) {
    let spec = &svc.spec;
    let fams = &spec.ip_families;
    let list = FieldPath::new("spec.ipFamilies");
    for (i, f) in fams.iter().enumerate().filter(|_| report_duplicates) {
        if let Some(first) = fams.iter().position(|g| g == f).filter(|&p| p < i) {
            errs.duplicate(list.index(i), &format!("{f:?}"), list.index(first));
        }
    }
    if !headless {
        let cluster_ips = FieldPath::new("spec.clusterIPs");
        for (i, (ip, fam)) in parsed.iter().zip(fams).enumerate() {
            if let Some(ip) = ip
                && IpFamily::of(*ip) != *fam
            {
                errs.invalid(
                    cluster_ips.index(i),
                    format!(
                        "\"{ip}\": expected an {fam:?} address as indicated by `ipFamilies[{i}]`"
                    ),
                );
            }
        }
    }
}

/// The allocator's check (`initIPFamilyFields`): without a policy the
/// Service was defaulted to SingleStack, so a dual-stack Service must name
/// PreferDualStack or RequireDualStack. Families inferred from the cluster
/// IPs repeat the same mistake, so it is reported once.
fn single_stack(svc: &Service, errs: &mut Errors) {
    let spec = &svc.spec;
    let fams = &spec.ip_families;
    if spec.ip_family_policy == Some(IpFamilyPolicy::SingleStack) {
        let what = if spec.cluster_ips.len() > 1 {
            Some(format!(
                "cluster IPs are specified ({:?})",
                spec.cluster_ips
            ))
        } else if fams.len() > 1 {
            Some(format!("IP families are specified ({fams:?})"))
        } else {
            None
        };
        if let Some(what) = what {
            errs.invalid(
                "spec.ipFamilyPolicy",
                format!(
                    "\"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple {what}"
                ),
            );
        }
    }
}

fn load_balancer(svc: &Service, ty: ServiceType, errs: &mut Errors) {
    let spec = &svc.spec;
    let lb = ty == ServiceType::LoadBalancer;
    if !spec.load_balancer_source_ranges.is_empty() && !lb {
        errs.forbidden(
            "spec.loadBalancerSourceRanges",
            format!(
                "{:?}: may only be used when `type` is LoadBalancer, not {ty:?}",
                spec.load_balancer_source_ranges
            ),
        );
    }
    // Legacy fields (IsValidCIDRForLegacyField), read as kube-proxy reads
    // them (ParseCIDRSloppy).
    let ranges = FieldPath::new("spec.loadBalancerSourceRanges");
    for (i, r) in spec.load_balancer_source_ranges.iter().enumerate() {
        // Values may be space-padded (a historical accident the apiserver keeps).
        net::legacy_cidr(errs, ranges.index(i), r.trim());
    }
    // The legacy annotation is checked only when the field is empty (the
    // field wins when both are set).
    if spec.load_balancer_source_ranges.is_empty()
        && let Some(value) = svc.metadata.annotations.get(SOURCE_RANGES_ANNOTATION)
    {
        let annotations = FieldPath::new("metadata.annotations");
        let path = annotations.key(SOURCE_RANGES_ANNOTATION);
        if !lb {
            errs.forbidden(
                path,
                format!("{value:?}: may only be used when `type` is LoadBalancer, not {ty:?}"),
            );
        }
        for r in source_range_values(value) {
            net::legacy_cidr(errs, path, r);
        }
    }
    if let Some(a) = spec.allocate_load_balancer_node_ports
        && !lb
    {
        errs.forbidden(
            "spec.allocateLoadBalancerNodePorts",
            format!("{a}: may only be used when `type` is LoadBalancer, not {ty:?}"),
        );
    }
    if let Some(class) = &spec.load_balancer_class {
        if lb {
            errs.check("spec.loadBalancerClass", class, check_label_key);
        } else {
            errs.forbidden(
                "spec.loadBalancerClass",
                format!("{class:?}: may only be used when `type` is LoadBalancer, not {ty:?}"),
            );
        }
    }
    // Deprecated and unchecked by the apiserver (GetWarningsForService only
    // warns, with GetWarningsForIP), but consumers parse it: what
    // ParseIPSloppy reads is accepted, with a warning when non-standard.
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        net::legacy_ip(errs, "spec.loadBalancerIP", ip);
    }
}

fn traffic_policy(svc: &Service, ty: ServiceType, errs: &mut Errors) {
    let spec = &svc.spec;
    let externally_accessible = matches!(ty, ServiceType::NodePort | ServiceType::LoadBalancer)
        || (ty == ServiceType::ClusterIP && !spec.external_ips.is_empty());
    if let Some(p) = spec.external_traffic_policy
        && !externally_accessible
    {
        errs.invalid(
            "spec.externalTrafficPolicy",
            format!(
                "{p:?}: may only be set for externally-accessible Services (NodePort, LoadBalancer, or with externalIPs)"
            ),
        );
    }
    let needs_health_check = ty == ServiceType::LoadBalancer
        && spec.external_traffic_policy == Some(TrafficPolicy::Local);
    match spec.health_check_node_port.filter(|&n| n != 0) {
        Some(n) if !needs_health_check => errs.invalid(
            "spec.healthCheckNodePort",
            format!("{n}: may only be set when `type` is LoadBalancer and `externalTrafficPolicy` is Local"),
        ),
        Some(n) => errs.port("spec.healthCheckNodePort", n),
        None => {}
    }
}

fn status(svc: &Service, errs: &mut Errors) {
    let Some(lb) = &svc.status.load_balancer else {
        return;
    };
    let ingresses = FieldPath::new("status.loadBalancer.ingress");
    for (i, ing) in lb.ingress.iter().enumerate() {
        let path = ingresses.index(i);
        let ip = ing.ip.as_deref().unwrap_or_default();
        // ValidateLoadBalancerStatus: IsValidIPForLegacyField.
        if !ip.is_empty() {
            net::legacy_ip(errs, path.field("ip"), ip);
        }
        if let Some(mode) = &ing.ip_mode {
            if ip.is_empty() {
                errs.forbidden(
                    path.field("ipMode"),
                    format!("{mode:?}: may not be specified when `ip` is not set"),
                );
            } else if !IP_MODES.contains(&mode.as_str()) {
                errs.not_supported(path.field("ipMode"), mode, IP_MODES);
            }
        }
        if let Some(h) = ing.hostname.as_deref().filter(|h| !h.is_empty()) {
            let hostname = path.field("hostname");
            if net::is_ip_sloppy(h) {
                errs.invalid(
                    hostname,
                    format!("{h:?}: must be a DNS name, not an IP address"),
                );
            } else {
                errs.check(hostname, h, check_dns1123_subdomain);
            }
        }
    }
}
