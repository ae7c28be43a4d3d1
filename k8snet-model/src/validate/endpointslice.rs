//! discovery.k8s.io/v1 EndpointSlice (`ValidateEndpointSlice`).

use crate::discovery::{AddressType, Endpoint, EndpointHints, EndpointSlice};
use crate::names::{
    check_dns1123_label, check_dns1123_subdomain, check_label_key, check_label_value,
};

use super::seen::FirstSeen;
use super::{Errors, FieldPath, net};

const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 100;
const MAX_ZONE_HINTS: usize = 8;
const MAX_NODE_HINTS: usize = 8;

pub(super) fn endpoint_slice(slice: &EndpointSlice, errs: &mut Errors) {
    if slice.endpoints.len() > MAX_ENDPOINTS {
        // As the apiserver: one error, not a million per-endpoint ones.
        errs.too_many("endpoints", slice.endpoints.len(), MAX_ENDPOINTS);
    } else {
        let endpoints = FieldPath::new("endpoints");
        for (i, ep) in slice.endpoints.iter().enumerate() {
            endpoint(ep, slice.address_type, endpoints.index(i), errs);
        }
    }
    ports(slice, errs);
}

fn endpoint(ep: &Endpoint, ty: AddressType, path: FieldPath<'_>, errs: &mut Errors) {
    let ap = path.field("addresses");
    if ep.addresses.is_empty() {
        errs.required(ap, "must contain at least 1 address");
    } else if ep.addresses.len() > MAX_ADDRESSES {
        errs.too_many(ap, ep.addresses.len(), MAX_ADDRESSES);
    }
    for (j, a) in ep.addresses.iter().take(MAX_ADDRESSES).enumerate() {
        address(a, ty, ap.index(j), errs);
    }
    if let Some(n) = &ep.node_name {
        errs.check(path.field("nodeName"), n, check_dns1123_subdomain);
    }
    if let Some(h) = &ep.hostname {
        errs.check(path.field("hostname"), h, check_dns1123_label);
    }
    // Zones come from the node's topology label, so they are label values
    // (the apiserver does not check this field; hints use the same rule).
    if let Some(z) = &ep.zone {
        errs.check(path.field("zone"), z, check_label_value);
    }
    if let Some(h) = &ep.hints {
        hints(h, path.field("hints"), errs);
    }
}

/// Each address matches the slice's type; IPs may not be loopback,
/// link-local or unspecified (`ValidateEndpointIP`), except that loopback
/// and link-local ones are accepted with a warning when the collector
/// allows local endpoints.
fn address(a: &str, ty: AddressType, path: FieldPath<'_>, errs: &mut Errors) {
    match ty {
        AddressType::IPv4 | AddressType::IPv6 => {
            let Some(ip) = net::endpoint_ip(errs, path, a) else {
                return;
            };
            if ip.is_ipv4() != (ty == AddressType::IPv4) {
                errs.invalid(
                    path,
                    format!("{a:?}: must be a valid {ty:?} address (the slice's addressType)"),
                );
            }
        }
        AddressType::Fqdn => errs.check(path, a, check_fqdn),
    }
}

/// `IsFullyQualifiedDomainName`: a DNS subdomain (trailing dot allowed)
/// with at least two labels.
fn check_fqdn(s: &str) -> Result<(), String> {
    let name = s.strip_suffix('.').unwrap_or(s);
    check_dns1123_subdomain(name)?;
    if !name.contains('.') {
        return Err("should be a domain with at least two segments separated by dots".into());
    }
    Ok(())
}

fn hints(h: &EndpointHints, path: FieldPath<'_>, errs: &mut Errors) {
    let zp = path.field("forZones");
    if h.for_zones.len() > MAX_ZONE_HINTS {
        errs.too_many(zp, h.for_zones.len(), MAX_ZONE_HINTS);
    } else {
        let names = h.for_zones.iter().map(|z| z.name.as_str());
        hint_names(names, zp, check_label_value, errs);
    }
    let np = path.field("forNodes");
    if h.for_nodes.len() > MAX_NODE_HINTS {
        errs.too_many(np, h.for_nodes.len(), MAX_NODE_HINTS);
    } else {
        let names = h.for_nodes.iter().map(|n| n.name.as_str());
        hint_names(names, np, check_dns1123_subdomain, errs);
    }
}

fn hint_names<'a>(
    names: impl Iterator<Item = &'a str>,
    path: FieldPath<'_>,
    check: fn(&str) -> Result<(), String>,
    errs: &mut Errors,
) {
    let mut seen = FirstSeen::new();
    for (i, name) in names.enumerate() {
        let item = path.index(i);
        let p = item.field("name");
        if let Some(first) = seen.repeat_of(name, i) {
            let first = path.index(first);
            errs.duplicate(p, &format!("{name:?}"), first.field("name"));
        }
        errs.check(p, name, check);
    }
}

fn ports(slice: &EndpointSlice, errs: &mut Errors) {
    if slice.ports.len() > MAX_PORTS {
        errs.too_many("ports", slice.ports.len(), MAX_PORTS);
        return;
    }
    // An absent name is the empty name, so two unnamed ports collide too.
    let list = FieldPath::new("ports");
    let mut names = FirstSeen::new();
    for (i, p) in slice.ports.iter().enumerate() {
        let path = list.index(i);
        let name_path = path.field("name");
        let name = p.name.as_deref().unwrap_or_default();
        if !name.is_empty() {
            errs.check(name_path, name, check_dns1123_label);
        }
        if let Some(first) = names.repeat_of(name, i) {
            let first = list.index(first);
            errs.duplicate(name_path, &format!("{name:?}"), first.field("name"));
        }
        if let Some(n) = p.port {
            errs.port(path.field("port"), n);
        }
        if let Some(ap) = &p.app_protocol {
            errs.check(path.field("appProtocol"), ap, check_label_key);
        }
    }
}
