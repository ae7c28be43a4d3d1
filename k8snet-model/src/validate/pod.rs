//! core/v1 Pod: the networking fields of `ValidatePodSpec` and
//! `ValidatePodStatusUpdate`.

use crate::core::{Container, Pod};
use crate::names::{check_dns1123_label, check_dns1123_subdomain, check_port_name};

use super::seen::FirstSeen;
use super::{Errors, FieldPath, net};

const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

/// A host port: (protocol, hostIP, port).
type HostPort<'a> = (&'a str, &'a str, i32);

/// Where a host port was first bound: a container's path and the index
/// of the port in it.
type PortAt<'p> = (FieldPath<'p>, usize);

pub(super) fn pod(pod: &Pod, errs: &mut Errors) {
    let spec = &pod.spec;
    let (regular, init) = (
        FieldPath::new("spec.containers"),
        FieldPath::new("spec.initContainers"),
    );
    let containers = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (regular.index(i), false, c))
        .chain(
            spec.init_containers
                .iter()
                .enumerate()
                .map(|(i, c)| (init.index(i), true, c)),
        );
    // Container name → the first container with it.
    let mut names = FirstSeen::new();
    // Host ports of the regular containers, which run together: each binds
    // once per node. Init containers run one at a time, so each is checked
    // on its own (`checkHostPortConflicts` per init container).
    let mut host_ports = FirstSeen::new();
    for (path, is_init, c) in containers {
        let name = path.field("name");
        if c.name.is_empty() {
            errs.required(name, "container name is required");
        } else {
            errs.check(name, &c.name, check_dns1123_label);
            if let Some(first) = names.repeat_of(c.name.as_str(), path) {
                errs.duplicate(name, &format!("{:?}", c.name), first.field("name"));
            }
        }
        if is_init {
            container_ports(c, path, spec.host_network, &mut FirstSeen::new(), errs);
        } else {
            container_ports(c, path, spec.host_network, &mut host_ports, errs);
        }
    }
    if let Some(h) = &spec.hostname {
        errs.check("spec.hostname", h, check_dns1123_label);
    }
    if let Some(s) = &spec.subdomain {
        errs.check("spec.subdomain", s, check_dns1123_label);
    }
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        errs.check("spec.nodeName", n, check_dns1123_subdomain);
    }
    if let Some(p) = &spec.dns_policy
        && !DNS_POLICIES.contains(&p.as_str())
    {
        errs.not_supported("spec.dnsPolicy", p, DNS_POLICIES);
    }
    status(pod, errs);
}

/// Port names are unique within a container (as the apiserver checks them;
/// two containers may reuse a name, the first match wins on resolution).
fn container_ports<'a, 'p>(
    c: &'a Container,
    path: FieldPath<'p>,
    host_network: bool,
    host_ports: &mut FirstSeen<HostPort<'a>, PortAt<'p>>,
    errs: &mut Errors,
) {
    let ports = path.field("ports");
    let mut names = FirstSeen::new();
    for (j, p) in c.ports.iter().enumerate() {
        let pp = ports.index(j);
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let name_path = pp.field("name");
            if let Err(msg) = check_port_name(name) {
                errs.invalid(name_path, format!("{name:?}: {msg}"));
            } else if let Some(first) = names.repeat_of(name, j) {
                let first = ports.index(first);
                errs.duplicate(name_path, &format!("{name:?}"), first.field("name"));
            }
        }
        let container_port = pp.field("containerPort");
        if p.container_port == 0 {
            errs.required(container_port, "containerPort is required");
        } else {
            errs.port(container_port, p.container_port);
        }
        let host_ip = p.host_ip.as_deref().unwrap_or_default();
        if !host_ip.is_empty() {
            net::ip(errs, pp.field("hostIP"), host_ip);
        }
        let Some(hp) = p.host_port.filter(|&hp| hp != 0) else {
            continue;
        };
        let host_port = pp.field("hostPort");
        errs.port(host_port, hp);
        if host_network && hp != p.container_port {
            errs.invalid(
                host_port,
                format!(
                    "{hp}: must match `containerPort` ({}) when `hostNetwork` is true",
                    p.container_port
                ),
            );
        }
        let proto = p.protocol.unwrap_or_default().as_str();
        if let Some((container, port)) = host_ports.repeat_of((proto, host_ip, hp), (path, j)) {
            let ports = container.field("ports");
            let first = ports.index(port);
            errs.duplicate(host_port, &format!("{hp}/{proto}"), first.field("hostPort"));
        }
    }
}

fn status(pod: &Pod, errs: &mut Errors) {
    let st = &pod.status;
    let pod_ips = FieldPath::new("status.podIPs");
    let mut families = net::Families::default();
    let mut seen = FirstSeen::new();
    // Entries are reported at `status.podIPs[i]`, as `validatePodIPs` does.
    for (i, ip) in st.pod_ips.iter().map(|p| p.ip.as_str()).enumerate() {
        let path = pod_ips.index(i);
        if let Some(addr) = net::ip(errs, path, ip) {
            families.add(addr);
        }
        if let Some(first) = seen.repeat_of(ip, i) {
            errs.duplicate(path, &format!("{ip:?}"), pod_ips.index(first));
        }
    }
    // A repeated IP is also a repeated family: report it once.
    if seen.len() == st.pod_ips.len() {
        let values = st.pod_ips.iter().map(|p| p.ip.as_str());
        net::dual_stack(errs, pod_ips, values, &families);
    }
    if let Some(ip) = st.pod_ip.as_deref().filter(|ip| !ip.is_empty()) {
        match st.pod_ips.first().map(|p| &p.ip) {
            Some(first) if first != ip => errs.invalid(
                "status.podIP",
                format!("{ip:?}: must equal status.podIPs[0] ({first:?})"),
            ),
            Some(_) => {}
            None => {
                net::ip(errs, "status.podIP", ip);
            }
        }
    }
    if let Some(ip) = st.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
        net::ip(errs, "status.hostIP", ip);
    }
    host_ips(pod, errs);
}

/// `status.hostIPs` as `validateHostIPs` checks it: when set, the first
/// entry equals `hostIP`; every entry is an IP; no repeats; at most one per
/// family.
fn host_ips(pod: &Pod, errs: &mut Errors) {
    let st = &pod.status;
    let Some(first) = st.host_ips.first() else {
        return;
    };
    let host_ips = FieldPath::new("status.hostIPs");
    // The apiserver compares the two strings, so an unset `hostIP` next
    // to a set `hostIPs` is refused too.
    match st.host_ip.as_deref().unwrap_or_default() {
        ip if ip == first.ip => {}
        "" => errs.invalid(
            host_ips.index(0).field("ip"),
            format!(
                "{:?}: must be equal to `hostIP` (which is not set)",
                first.ip
            ),
        ),
        ip => errs.invalid(
            host_ips.index(0).field("ip"),
            format!("{:?}: must be equal to `hostIP` ({ip:?})", first.ip),
        ),
    }
    let mut families = net::Families::default();
    let mut seen = FirstSeen::new();
    for (i, ip) in st.host_ips.iter().map(|h| h.ip.as_str()).enumerate() {
        let path = host_ips.index(i);
        if let Some(addr) = net::ip(errs, path, ip) {
            families.add(addr);
        }
        if let Some(first) = seen.repeat_of(ip, i) {
            errs.duplicate(path, &format!("{ip:?}"), host_ips.index(first));
        }
    }
    if seen.len() == st.host_ips.len() {
        let values = st.host_ips.iter().map(|h| h.ip.as_str());
        net::dual_stack(errs, host_ips, values, &families);
    }
}
