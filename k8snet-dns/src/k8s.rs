//! The records of one Service, per the Kubernetes DNS specification 1.1.0
//! and CoreDNS's `kubernetes` plugin where the specification is silent.
//!
//! Choices where the specification leaves room (each pinned by a test):
//! - **Readiness**: an endpoint is published when `conditions.ready` is
//!   unset or true, or the Service sets `publishNotReadyAddresses` (the
//!   EndpointSlice controller folds that flag into `ready`; honouring it
//!   here also covers hand-written slices). Only the first address of an
//!   endpoint is used, as for every EndpointSlice consumer.
//! - **Endpoint names**: `hostname`, else the dashed IP (`198-18-0-2`,
//!   `fd00-18--2`, a trailing `-` gets `0`), as CoreDNS. Endpoints sharing a
//!   hostname share the name, with one address record each.
//! - **Headless SRV port**: the EndpointSlice's port (the target port), as
//!   CoreDNS, not the Service port of §2.4.2; ClusterIP SRV uses the
//!   Service port.
//! - **SRV priority and weight**: priority 0, weight ⌊100/N⌋ (at least 1)
//!   where N counts the records before duplicates (same port and target)
//!   are merged, so a dual-stack ClusterIP gets one SRV of weight 50. The
//!   targets' A/AAAA records go in the additional section.
//! - **Bare SRV**: `<svc>.<ns>.svc.<zone> SRV` answers every port (named
//!   or not), as CoreDNS.
//! - **SRV names** (`_port._proto.<svc>…`) hold only SRV records: other
//!   types get NODATA (CoreDNS would answer the service's addresses).
//! - **Endpoint names under a ClusterIP Service** are not served (CoreDNS
//!   does, beyond the specification).
//! - **PTR**: one per (Service, IP): ClusterIPs point to the Service name,
//!   ready headless endpoints to their endpoint name.
//! - **ExternalName**: a CNAME for every query type; a target the zone
//!   cannot encode is skipped with a warning, and so is an IP address
//!   (the API lets IPv4 through as a name of digits; CoreDNS gives it no
//!   record and the Kubernetes docs say DNS does not resolve it), so the
//!   name is NXDOMAIN. A recursive server follows the CNAME (see
//!   `server`): to a name of the zone, with or without an upstream.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8snet_model::{AddressType, Cluster, NsName, Protocol, Service, ServiceType};

use crate::encode::{NodeSpec, RData, Rr, RrsetSpec, rtype};
use crate::name::{WireName, dashed_ip};

/// The records of one Service: the nodes of its names (all under
/// `<svc>.<ns>.svc.<zone>`) and its PTR contributions.
#[derive(Debug, Default)]
pub(crate) struct ServiceRecords {
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) ptrs: Vec<(IpAddr, WireName)>,
}

/// `<name>.<ns>.svc.<zone>`.
pub(crate) fn service_name(key: &NsName, zone: &WireName) -> Option<WireName> {
    zone.prepend("svc")?
        .prepend(&key.namespace)?
        .prepend(&key.name)
}

/// The key of a Service.
pub(crate) fn key_of(svc: &Service) -> NsName {
    NsName::new(
        svc.metadata.namespace_or_default(),
        svc.metadata.name.clone(),
    )
}

fn proto_label(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "_tcp",
        Protocol::Udp => "_udp",
        Protocol::Sctp => "_sctp",
        _ => "_unknown",
    }
}

fn addr_rr(owner: &WireName, ttl: u32, ip: IpAddr) -> Rr {
    Rr {
        owner: owner.clone(),
        ttl,
        data: match ip {
            IpAddr::V4(v4) => RData::A(v4),
            IpAddr::V6(v6) => RData::Aaaa(v6),
        },
    }
}

fn weight(n: usize) -> u16 {
    (100 / n.max(1)).max(1) as u16
}

/// One SRV target: a name and its addresses.
struct Target<'a> {
    name: &'a WireName,
    ips: &'a [IpAddr],
}

/// An SRV rrset at `owner`: one record per (port, target) in order,
/// duplicates merged, weight from the count before merging; the targets'
/// addresses as additionals.
fn srv_rrset(owner: &WireName, ttl: u32, pairs: &[(u16, Target<'_>)]) -> RrsetSpec {
    let w = weight(pairs.len());
    let mut set = RrsetSpec {
        qtype: rtype::SRV,
        ..RrsetSpec::default()
    };
    let mut seen_targets: Vec<&WireName> = Vec::new();
    for (port, t) in pairs {
        let rr = Rr {
            owner: owner.clone(),
            ttl,
            data: RData::Srv {
                priority: 0,
                weight: w,
                port: *port,
                target: t.name.clone(),
            },
        };
        if !set.answers.contains(&rr) {
            set.answers.push(rr);
        }
        if !seen_targets.contains(&t.name) {
            seen_targets.push(t.name);
            set.additionals
                .extend(t.ips.iter().map(|&ip| addr_rr(t.name, ttl, ip)));
        }
    }
    set
}

/// The records of `svc`.
pub(crate) fn service_records(
    cluster: &Cluster,
    svc: &Service,
    zone: &WireName,
    ttl: u32,
) -> ServiceRecords {
    let key = key_of(svc);
    let Some(name) = service_name(&key, zone) else {
        tracing::warn!(service = %key, "service name too long for DNS; skipped");
        return ServiceRecords::default();
    };
    if svc.service_type() == ServiceType::ExternalName {
        return external_name(svc, name, zone, ttl);
    }
    if svc.is_headless() {
        return headless(cluster, svc, &key, name, ttl);
    }
    cluster_ip(svc, name, ttl)
}

fn external_name(svc: &Service, name: WireName, zone: &WireName, ttl: u32) -> ServiceRecords {
    let target = svc.spec.external_name.as_deref().unwrap_or_default();
    // The API accepts an IPv4 address as a name made of digits; CoreDNS
    // gives such a Service no record (its `HostType` is not CNAME), and
    // the Kubernetes docs say DNS does not resolve it. As in Go's
    // `net.ParseIP`, a trailing dot makes it a name again.
    if target.parse::<std::net::IpAddr>().is_ok() {
        tracing::warn!(name = %crate::name::to_text(name.as_bytes()), target,
            "ExternalName is an IP address, which DNS does not resolve (no record)");
        return ServiceRecords::default();
    }
    let Some(target) = WireName::from_text(target).filter(|t| t.label_count() > 0) else {
        tracing::warn!(name = %crate::name::to_text(name.as_bytes()), target,
            "ExternalName target is not a domain name; skipped");
        return ServiceRecords::default();
    };
    let mut node = NodeSpec::empty(name.clone());
    node.flags = crate::encode::FLAG_CNAME;
    // A target in the zone is followed even by a server without upstream;
    // the flag spares the others (most targets) any work.
    if crate::name::is_subdomain(target.as_bytes(), zone.as_bytes()) {
        node.flags |= crate::encode::FLAG_CNAME_IN_ZONE;
    }
    node.push_answer(Rr {
        owner: name,
        ttl,
        data: RData::Cname(target),
    });
    ServiceRecords {
        nodes: vec![node],
        ptrs: Vec::new(),
    }
}

fn cluster_ip(svc: &Service, name: WireName, ttl: u32) -> ServiceRecords {
    let ips = svc.cluster_ips();
    let mut out = ServiceRecords::default();
    let mut node = NodeSpec::empty(name.clone());
    for &ip in &ips {
        node.push_answer(addr_rr(&name, ttl, ip));
        out.ptrs.push((ip, name.clone()));
    }
    let target = Target {
        name: &name,
        ips: &ips,
    };
    let copies = ips.len().max(1);
    // Bare SRV: every port, each once per IP before merging.
    let mut bare = Vec::new();
    for p in &svc.spec.ports {
        let Ok(port) = u16::try_from(p.port) else {
            continue;
        };
        for _ in 0..copies {
            bare.push((
                port,
                Target {
                    name: &name,
                    ips: &ips,
                },
            ));
        }
    }
    if !bare.is_empty() {
        node.rrsets.push(srv_rrset(&name, ttl, &bare));
    }
    for p in &svc.spec.ports {
        let (Some(pname), Ok(port)) = (p.name.as_deref(), u16::try_from(p.port)) else {
            continue;
        };
        let Some(owner) = name
            .prepend(proto_label(p.protocol.unwrap_or_default()))
            .and_then(|n| n.prepend(&format!("_{pname}")))
        else {
            continue;
        };
        let pairs: Vec<_> = (0..copies)
            .map(|_| {
                (
                    port,
                    Target {
                        name: target.name,
                        ips: target.ips,
                    },
                )
            })
            .collect();
        let mut srv = NodeSpec::empty(owner.clone());
        srv.rrsets.push(srv_rrset(&owner, ttl, &pairs));
        out.nodes.push(srv);
    }
    out.nodes.insert(0, node);
    out
}

/// A ready endpoint of a headless Service.
struct Ready {
    ip: IpAddr,
    name: WireName,
    /// (port name, protocol, port) of its slice.
    ports: Vec<(Option<String>, Protocol, u16)>,
}

fn ready_endpoints(cluster: &Cluster, svc: &Service, key: &NsName, name: &WireName) -> Vec<Ready> {
    let mut out: Vec<Ready> = Vec::new();
    for slice in cluster.slices_for_service(key) {
        if !matches!(slice.address_type, AddressType::IPv4 | AddressType::IPv6) {
            continue;
        }
        let ports: Vec<_> = slice
            .ports
            .iter()
            .filter_map(|p| {
                let port = u16::try_from(p.port?).ok().filter(|&n| n > 0)?;
                Some((p.name.clone(), p.protocol.unwrap_or_default(), port))
            })
            .collect();
        for ep in &slice.endpoints {
            if !(ep.conditions.is_ready() || svc.spec.publish_not_ready_addresses) {
                continue;
            }
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            if out.iter().any(|r| r.ip == ip) {
                continue;
            }
            let label = ep.hostname.clone().unwrap_or_else(|| dashed_ip(ip));
            let Some(ep_name) = name.prepend(&label) else {
                continue;
            };
            out.push(Ready {
                ip,
                name: ep_name,
                ports: ports.clone(),
            });
        }
    }
    out
}

fn headless(
    cluster: &Cluster,
    svc: &Service,
    key: &NsName,
    name: WireName,
    ttl: u32,
) -> ServiceRecords {
    let ready = ready_endpoints(cluster, svc, key, &name);
    let mut out = ServiceRecords::default();
    if ready.is_empty() {
        return out; // §2.4.1: no ready endpoints, NXDOMAIN
    }
    // Endpoint names, with every address that shares the name.
    let mut by_name: BTreeMap<&WireName, Vec<IpAddr>> = BTreeMap::new();
    for r in &ready {
        by_name.entry(&r.name).or_default().push(r.ip);
        out.ptrs.push((r.ip, r.name.clone()));
    }
    let mut node = NodeSpec::empty(name.clone());
    for r in &ready {
        node.push_answer(addr_rr(&name, ttl, r.ip));
    }
    let target = |r: &'_ Ready| -> Option<(WireName, Vec<IpAddr>)> {
        Some((r.name.clone(), by_name.get(&r.name)?.clone()))
    };
    let targets: Vec<(WireName, Vec<IpAddr>)> = ready.iter().filter_map(target).collect();
    // Bare SRV: every endpoint × every port of its slice.
    let mut bare = Vec::new();
    for (r, (tname, ips)) in ready.iter().zip(&targets) {
        for &(_, _, port) in &r.ports {
            bare.push((port, Target { name: tname, ips }));
        }
    }
    if !bare.is_empty() {
        node.rrsets.push(srv_rrset(&name, ttl, &bare));
    }
    out.nodes.push(node);
    // Named ports: `_port._proto.<svc>`.
    let mut named: Vec<(&str, Protocol)> = Vec::new();
    for r in &ready {
        for (pname, proto, _) in &r.ports {
            if let Some(p) = pname.as_deref()
                && !named.contains(&(p, *proto))
            {
                named.push((p, *proto));
            }
        }
    }
    for (pname, proto) in named {
        let Some(owner) = name
            .prepend(proto_label(proto))
            .and_then(|n| n.prepend(&format!("_{pname}")))
        else {
            continue;
        };
        let mut pairs = Vec::new();
        for (r, (tname, ips)) in ready.iter().zip(&targets) {
            for (n, p, port) in &r.ports {
                if n.as_deref() == Some(pname) && *p == proto {
                    pairs.push((*port, Target { name: tname, ips }));
                }
            }
        }
        let mut srv = NodeSpec::empty(owner.clone());
        srv.rrsets.push(srv_rrset(&owner, ttl, &pairs));
        out.nodes.push(srv);
    }
    for (ep_name, ips) in by_name {
        let mut n = NodeSpec::empty(ep_name.clone());
        for ip in ips {
            n.push_answer(addr_rr(ep_name, ttl, ip));
        }
        out.nodes.push(n);
    }
    out
}
