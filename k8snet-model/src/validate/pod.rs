//! core/v1 Pod: the networking fields of `ValidatePodSpec` and
//! `ValidatePodStatusUpdate`.

use std::collections::BTreeMap;

use crate::core::{Container, Pod};
use crate::names::{check_dns1123_label, check_dns1123_subdomain, check_port_name};

use super::{Errors, net};

const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

pub(super) fn pod(pod: &Pod, errs: &mut Errors) {
    let spec = &pod.spec;
    let containers = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}]"), c))
        .chain(
            spec.init_containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("spec.initContainers[{i}]"), c)),
        );
    let mut names: BTreeMap<&str, String> = BTreeMap::new();
    // (protocol, hostIP, hostPort) → first path: a host port binds once per node.
    let mut host_ports: BTreeMap<(&str, &str, i32), String> = BTreeMap::new();
    for (path, c) in containers {
        if c.name.is_empty() {
            errs.required(format!("{path}.name"), "container name is required");
        } else {
            errs.check(format!("{path}.name"), &c.name, check_dns1123_label);
            match names.get(c.name.as_str()) {
                Some(first) => {
                    errs.duplicate(format!("{path}.name"), &format!("{:?}", c.name), first)
                }
                None => {
                    names.insert(&c.name, format!("{path}.name"));
                }
            }
        }
        container_ports(c, &path, spec.host_network, &mut host_ports, errs);
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
fn container_ports<'a>(
    c: &'a Container,
    path: &str,
    host_network: bool,
    host_ports: &mut BTreeMap<(&'a str, &'a str, i32), String>,
    errs: &mut Errors,
) {
    let mut names: BTreeMap<&str, String> = BTreeMap::new();
    for (j, p) in c.ports.iter().enumerate() {
        let pp = format!("{path}.ports[{j}]");
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            if let Err(msg) = check_port_name(name) {
                errs.invalid(format!("{pp}.name"), format!("{name:?}: {msg}"));
            } else if let Some(first) = names.get(name) {
                errs.duplicate(format!("{pp}.name"), &format!("{name:?}"), first);
            } else {
                names.insert(name, format!("{pp}.name"));
            }
        }
        if p.container_port == 0 {
            errs.required(format!("{pp}.containerPort"), "containerPort is required");
        } else {
            errs.port(format!("{pp}.containerPort"), p.container_port);
        }
        let host_ip = p.host_ip.as_deref().unwrap_or_default();
        if !host_ip.is_empty() {
            net::ip(errs, &format!("{pp}.hostIP"), host_ip);
        }
        let Some(hp) = p.host_port.filter(|&hp| hp != 0) else {
            continue;
        };
        errs.port(format!("{pp}.hostPort"), hp);
        if host_network && hp != p.container_port {
            errs.invalid(
                format!("{pp}.hostPort"),
                format!(
                    "{hp}: must match `containerPort` ({}) when `hostNetwork` is true",
                    p.container_port
                ),
            );
        }
        let proto = p.protocol.unwrap_or_default().as_str();
        match host_ports.get(&(proto, host_ip, hp)) {
            Some(first) => {
                errs.duplicate(format!("{pp}.hostPort"), &format!("{hp}/{proto}"), first)
            }
            None => {
                host_ports.insert((proto, host_ip, hp), format!("{pp}.hostPort"));
            }
        }
    }
}

fn status(pod: &Pod, errs: &mut Errors) {
    let st = &pod.status;
    let ips: Vec<String> = st.pod_ips.iter().map(|p| p.ip.clone()).collect();
    let mut v4 = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, ip) in ips.iter().enumerate() {
        let path = format!("status.podIPs[{i}].ip");
        if let Some(addr) = net::ip(errs, &path, ip) {
            v4.push(addr.is_ipv4());
        }
        match seen.get(ip.as_str()) {
            Some(first) => {
                errs.duplicate(path, &format!("{ip:?}"), &format!("status.podIPs[{first}]"))
            }
            None => {
                seen.insert(ip, i);
            }
        }
    }
    // A repeated IP is also a repeated family: report it once.
    if seen.len() == ips.len() {
        net::dual_stack(errs, "status.podIPs", &ips, &v4);
    }
    if let Some(ip) = st.pod_ip.as_deref().filter(|ip| !ip.is_empty()) {
        match ips.first() {
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
}
