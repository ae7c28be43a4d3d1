//! Deriving EndpointSlices from Services and Pods, the way the
//! EndpointSlice controller does, for manifests that carry none.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::cluster::{Cluster, NsName};
use crate::core::{IntOrString, IpFamily, Pod, Protocol, Service, ServiceType};
use crate::discovery::{
    AddressType, Endpoint, EndpointConditions, EndpointPort, EndpointSlice, MANAGED_BY_LABEL,
    ObjectReference, SERVICE_NAME_LABEL,
};
use crate::meta::ObjectMeta;
use crate::object::Object;

/// The `managed-by` label value of slices this crate derives.
pub const DERIVED_MANAGED_BY: &str = "endpointslice.k8snet.io";
/// Endpoints per derived slice (the controller's default `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The EndpointSlices the controller would write for one Service.
///
/// - only Services with a selector, and not ExternalName, get slices;
/// - pods in the Service's namespace matching the selector, except
///   finished pods and pods without an IP;
/// - one set of slices per IP family of the Service (`ipFamilies`; for a
///   Service without any, the families its pods have);
/// - conditions: `serving` = pod Ready; `terminating` = pod has a deletion
///   timestamp; `ready` = serving and not terminating — or always true
///   with `publishNotReadyAddresses`;
/// - `hostname` when the pod's `subdomain` names this Service and it has a
///   `hostname`; `nodeName`, `zone` (from the node's label) and `targetRef`;
/// - ports resolved per pod (a named `targetPort` looks up the pod's
///   container port of that name and protocol; a pod lacking it gets no
///   entry for that port), and pods grouped by their resolved ports,
///   since one slice has one port list;
/// - at most 100 endpoints per slice; slices are named
///   `<service>-<ipv4|ipv6>-<n>` so output is deterministic.
pub fn endpoint_slices_for(cluster: &Cluster, service: &Service) -> Vec<EndpointSlice> {
    let Some(selector) = &service.spec.selector else {
        return Vec::new();
    };
    if service.service_type() == ServiceType::ExternalName {
        return Vec::new();
    }
    let ns = service.metadata.namespace_or_default();
    let selector = crate::selector::LabelSelector::from_labels(selector.clone()).compile();
    let pods: Vec<&Pod> = cluster
        .pods_in(ns)
        .filter(|p| !p.is_finished() && selector.matches(&p.metadata.labels))
        .collect();

    let families: Vec<IpFamily> = if service.spec.ip_families.is_empty() {
        let mut f: Vec<IpFamily> = pods
            .iter()
            .flat_map(|p| p.ips())
            .map(IpFamily::of)
            .collect();
        f.sort();
        f.dedup();
        f
    } else {
        service.spec.ip_families.clone()
    };

    let mut out = Vec::new();
    for family in families {
        // Group endpoints by their resolved port list.
        let mut groups: BTreeMap<Vec<PortKey>, Vec<Endpoint>> = BTreeMap::new();
        for pod in &pods {
            let Some(ip) = pod.ips().into_iter().find(|ip| IpFamily::of(*ip) == family) else {
                continue;
            };
            let ports = resolve_ports(service, pod);
            groups
                .entry(ports)
                .or_default()
                .push(endpoint_for(cluster, service, pod, ip));
        }
        let suffix = match family {
            IpFamily::IPv4 => "ipv4",
            IpFamily::IPv6 => "ipv6",
        };
        let address_type = match family {
            IpFamily::IPv4 => AddressType::IPv4,
            IpFamily::IPv6 => AddressType::IPv6,
        };
        let mut index = 0;
        for (ports, endpoints) in groups {
            for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
                let mut metadata = ObjectMeta::namespaced(
                    ns,
                    format!("{}-{suffix}-{index}", service.metadata.name),
                );
                metadata.labels = service.metadata.labels.clone();
                metadata
                    .labels
                    .insert(SERVICE_NAME_LABEL.into(), service.metadata.name.clone());
                metadata
                    .labels
                    .insert(MANAGED_BY_LABEL.into(), DERIVED_MANAGED_BY.into());
                out.push(EndpointSlice {
                    metadata,
                    address_type,
                    endpoints: chunk.to_vec(),
                    ports: ports.iter().map(PortKey::to_port).collect(),
                });
                index += 1;
            }
        }
    }
    out
}

/// A resolved port, ordered so groups are deterministic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey {
    name: Option<String>,
    protocol: Protocol,
    port: i32,
    app_protocol: Option<String>,
}

impl PortKey {
    fn to_port(&self) -> EndpointPort {
        EndpointPort {
            name: self.name.clone(),
            protocol: Some(self.protocol),
            port: Some(self.port),
            app_protocol: self.app_protocol.clone(),
        }
    }
}

fn resolve_ports(service: &Service, pod: &Pod) -> Vec<PortKey> {
    let mut out = Vec::new();
    for sp in &service.spec.ports {
        let protocol = sp.protocol.unwrap_or_default();
        let port = match &sp.target_port {
            None => Some(sp.port),
            Some(IntOrString::Int(n)) => Some(*n),
            Some(IntOrString::String(name)) => pod.named_port(name, protocol).map(i32::from),
        };
        if let Some(port) = port {
            out.push(PortKey {
                name: sp.name.clone(),
                protocol,
                port,
                app_protocol: sp.app_protocol.clone(),
            });
        }
    }
    out
}

fn endpoint_for(cluster: &Cluster, service: &Service, pod: &Pod, ip: IpAddr) -> Endpoint {
    let serving = pod.is_ready();
    let terminating = pod.is_terminating();
    let ready = service.spec.publish_not_ready_addresses || (serving && !terminating);
    let hostname = match (&pod.spec.hostname, &pod.spec.subdomain) {
        (Some(h), Some(sub)) if *sub == service.metadata.name => Some(h.clone()),
        _ => None,
    };
    let node_name = pod.spec.node_name.clone();
    let zone = node_name
        .as_deref()
        .and_then(|n| cluster.node(n))
        .and_then(|n| n.zone())
        .map(str::to_string);
    Endpoint {
        addresses: vec![ip.to_string()],
        conditions: EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        },
        hostname,
        node_name,
        zone,
        hints: None,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(pod.metadata.namespace_or_default().to_string()),
            name: Some(pod.metadata.name.clone()),
            uid: pod.metadata.uid.clone(),
        }),
    }
}

impl Cluster {
    /// Adds derived EndpointSlices for every Service with a selector that
    /// has no slice of its own; returns how many slices were added.
    pub fn derive_missing_endpoint_slices(&mut self) -> usize {
        let missing: Vec<Service> = self
            .services()
            .filter(|s| {
                let key = NsName::new(s.metadata.namespace_or_default(), s.metadata.name.clone());
                self.slices_for_service(&key).next().is_none()
            })
            .cloned()
            .collect();
        let mut added = 0;
        for svc in missing {
            for slice in endpoint_slices_for(self, &svc) {
                // Derived slices are valid by construction; a failure here is
                // a bug in derivation, reported rather than hidden.
                match self.upsert(Object::EndpointSlice(slice)) {
                    Ok(_) => added += 1,
                    Err(e) => tracing::warn!("derived EndpointSlice refused: {e}"),
                }
            }
        }
        added
    }

    /// Recomputes the derived slices of one Service (after one of its pods
    /// or the Service changed): removes its old derived slices and adds the
    /// new ones. Slices not derived by this crate are left alone.
    pub fn rederive_endpoint_slices(&mut self, service: &NsName) {
        let old: Vec<String> = self
            .slices_for_service(service)
            .filter(|s| {
                s.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str)
                    == Some(DERIVED_MANAGED_BY)
            })
            .map(|s| s.metadata.name.clone())
            .collect();
        for name in old {
            self.delete(&crate::object::ObjectRef {
                kind: crate::object::Kind::EndpointSlice,
                namespace: Some(service.namespace.clone()),
                name,
            });
        }
        if let Some(svc) = self.service(service).cloned() {
            for slice in endpoint_slices_for(self, &svc) {
                if let Err(e) = self.upsert(Object::EndpointSlice(slice)) {
                    tracing::warn!("derived EndpointSlice refused: {e}");
                }
            }
        }
    }
}
