//! discovery.k8s.io/v1: EndpointSlice.

use k8s_openapi::api::core::v1 as kcore;
use k8s_openapi::api::discovery::v1 as k8s;

use super::{
    ApiEnum, ConversionError, Path, Result, non_default, non_empty_map, opt_enum_str, parse_enum,
    parse_opt_enum, try_opt_vec,
};
use crate::discovery::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForNode, ForZone,
    ObjectReference,
};

/// `EndpointSlice.endpoints` is a `Vec` up to Kubernetes 1.35 and an
/// `Option<Vec>` from 1.36. Implemented for both shapes, so the conversion
/// compiles whichever `v1_*` feature the final binary selects.
trait EndpointList: Sized {
    fn into_vec(self) -> Vec<k8s::Endpoint>;
    fn from_vec(v: Vec<k8s::Endpoint>) -> Self;
}

impl EndpointList for Vec<k8s::Endpoint> {
    fn into_vec(self) -> Vec<k8s::Endpoint> {
        self
    }
    fn from_vec(v: Vec<k8s::Endpoint>) -> Self {
        v
    }
}

/// Always `Some`: our `endpoints` is not optional, and before 1.36 the
/// field was always written.
impl EndpointList for Option<Vec<k8s::Endpoint>> {
    fn into_vec(self) -> Vec<k8s::Endpoint> {
        self.unwrap_or_default()
    }
    fn from_vec(v: Vec<k8s::Endpoint>) -> Self {
        Some(v)
    }
}

/// Keeps every modeled field; `deprecatedTopology` and the `apiVersion`,
/// `resourceVersion` and `fieldPath` of a `targetRef` are dropped. Fails on
/// an unknown `addressType` or port protocol.
impl TryFrom<k8s::EndpointSlice> for EndpointSlice {
    type Error = ConversionError;

    fn try_from(slice: k8s::EndpointSlice) -> Result<Self> {
        let root = Path::ROOT;
        Ok(Self {
            metadata: slice.metadata.into(),
            address_type: parse_enum(&slice.address_type, &root.field("addressType"))?,
            endpoints: slice
                .endpoints
                .into_vec()
                .into_iter()
                .map(endpoint_from)
                .collect(),
            ports: try_opt_vec(slice.ports, &root.field("ports"), |p, path| {
                Ok(EndpointPort {
                    name: p.name,
                    protocol: parse_opt_enum(p.protocol, &path.field("protocol"))?,
                    port: p.port,
                    app_protocol: p.app_protocol,
                })
            })?,
        })
    }
}

fn endpoint_from(e: k8s::Endpoint) -> Endpoint {
    let conditions = e.conditions.unwrap_or_default();
    Endpoint {
        addresses: e.addresses,
        conditions: EndpointConditions {
            ready: conditions.ready,
            serving: conditions.serving,
            terminating: conditions.terminating,
        },
        hostname: e.hostname,
        node_name: e.node_name,
        zone: e.zone,
        hints: e.hints.map(|h| EndpointHints {
            for_zones: h
                .for_zones
                .unwrap_or_default()
                .into_iter()
                .map(|z| ForZone { name: z.name })
                .collect(),
            for_nodes: h
                .for_nodes
                .unwrap_or_default()
                .into_iter()
                .map(|n| ForNode { name: n.name })
                .collect(),
        }),
        target_ref: e.target_ref.map(|r| ObjectReference {
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
            uid: r.uid,
        }),
    }
}

fn endpoint_into(e: Endpoint) -> k8s::Endpoint {
    k8s::Endpoint {
        addresses: e.addresses,
        conditions: non_default(k8s::EndpointConditions {
            ready: e.conditions.ready,
            serving: e.conditions.serving,
            terminating: e.conditions.terminating,
        }),
        hostname: e.hostname,
        node_name: e.node_name,
        zone: e.zone,
        hints: e.hints.map(|h| k8s::EndpointHints {
            for_zones: non_empty_map(h.for_zones, |z| k8s::ForZone { name: z.name }),
            for_nodes: non_empty_map(h.for_nodes, |n| k8s::ForNode { name: n.name }),
        }),
        target_ref: e.target_ref.map(|r| kcore::ObjectReference {
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
            uid: r.uid,
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl From<EndpointSlice> for k8s::EndpointSlice {
    fn from(slice: EndpointSlice) -> Self {
        Self {
            metadata: slice.metadata.into(),
            address_type: slice.address_type.api_str().to_owned(),
            endpoints: EndpointList::from_vec(
                slice.endpoints.into_iter().map(endpoint_into).collect(),
            ),
            ports: non_empty_map(slice.ports, |p| k8s::EndpointPort {
                name: p.name,
                protocol: opt_enum_str(p.protocol),
                port: p.port,
                app_protocol: p.app_protocol,
            }),
        }
    }
}
