//! networking.k8s.io/v1: NetworkPolicy, Ingress, IngressClass.

use k8s_openapi::api::core::v1 as kcore;
use k8s_openapi::api::networking::v1 as k8s;

use super::{
    ApiEnum, ConversionError, Path, Result, non_default, non_empty, non_empty_map,
    non_empty_string, opt_enum_str, opt_selector_from, parse_enum, parse_opt_enum, selector_from,
    try_opt_vec, try_vec,
};
use crate::networking::{
    HttpIngressPath, HttpIngressRuleValue, Ingress, IngressBackend, IngressClass,
    IngressClassParametersReference, IngressClassSpec, IngressRule, IngressServiceBackend,
    IngressSpec, IngressTls, IpBlock, NetworkPolicy, NetworkPolicyEgressRule,
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
    ServiceBackendPort, TypedLocalObjectReference,
};

// ---------------------------------------------------------------- NetworkPolicy

/// Keeps every field. Fails on an unknown policy type, port protocol or
/// selector operator.
impl TryFrom<k8s::NetworkPolicy> for NetworkPolicy {
    type Error = ConversionError;

    fn try_from(np: k8s::NetworkPolicy) -> Result<Self> {
        let root = Path::ROOT;
        let path = root.field("spec");
        let spec = np.spec.unwrap_or_default();
        Ok(Self {
            metadata: np.metadata.into(),
            spec: NetworkPolicySpec {
                pod_selector: selector_from(
                    spec.pod_selector.unwrap_or_default(),
                    &path.field("podSelector"),
                )?,
                ingress: spec
                    .ingress
                    .map(|rules| {
                        try_vec(rules, &path.field("ingress"), |r, path| {
                            Ok(NetworkPolicyIngressRule {
                                ports: opt_ports_from(r.ports, &path.field("ports"))?,
                                from: opt_peers_from(r.from, &path.field("from"))?,
                            })
                        })
                    })
                    .transpose()?,
                egress: spec
                    .egress
                    .map(|rules| {
                        try_vec(rules, &path.field("egress"), |r, path| {
                            Ok(NetworkPolicyEgressRule {
                                ports: opt_ports_from(r.ports, &path.field("ports"))?,
                                to: opt_peers_from(r.to, &path.field("to"))?,
                            })
                        })
                    })
                    .transpose()?,
                policy_types: try_opt_vec(
                    spec.policy_types,
                    &path.field("policyTypes"),
                    |t, p| parse_enum(&t, p),
                )?,
            },
        })
    }
}

fn opt_ports_from(
    ports: Option<Vec<k8s::NetworkPolicyPort>>,
    path: &Path<'_>,
) -> Result<Option<Vec<NetworkPolicyPort>>> {
    ports
        .map(|ports| {
            try_vec(ports, path, |p, path| {
                Ok(NetworkPolicyPort {
                    protocol: parse_opt_enum(p.protocol, &path.field("protocol"))?,
                    port: p.port.map(Into::into),
                    end_port: p.end_port,
                })
            })
        })
        .transpose()
}

fn opt_peers_from(
    peers: Option<Vec<k8s::NetworkPolicyPeer>>,
    path: &Path<'_>,
) -> Result<Option<Vec<NetworkPolicyPeer>>> {
    peers
        .map(|peers| {
            try_vec(peers, path, |p, path| {
                Ok(NetworkPolicyPeer {
                    pod_selector: opt_selector_from(p.pod_selector, &path.field("podSelector"))?,
                    namespace_selector: opt_selector_from(
                        p.namespace_selector,
                        &path.field("namespaceSelector"),
                    )?,
                    ip_block: p.ip_block.map(|b| IpBlock {
                        cidr: b.cidr,
                        except: b.except.unwrap_or_default(),
                    }),
                })
            })
        })
        .transpose()
}

fn ports_into(ports: Option<Vec<NetworkPolicyPort>>) -> Option<Vec<k8s::NetworkPolicyPort>> {
    ports.map(|ports| {
        ports
            .into_iter()
            .map(|p| k8s::NetworkPolicyPort {
                protocol: opt_enum_str(p.protocol),
                port: p.port.map(Into::into),
                end_port: p.end_port,
            })
            .collect()
    })
}

fn peers_into(peers: Option<Vec<NetworkPolicyPeer>>) -> Option<Vec<k8s::NetworkPolicyPeer>> {
    peers.map(|peers| {
        peers
            .into_iter()
            .map(|p| k8s::NetworkPolicyPeer {
                pod_selector: p.pod_selector.map(Into::into),
                namespace_selector: p.namespace_selector.map(Into::into),
                ip_block: p.ip_block.map(|b| k8s::IPBlock {
                    cidr: b.cidr,
                    except: non_empty(b.except),
                }),
            })
            .collect()
    })
}

/// `ingress`, `egress` and the `ports`, `from` and `to` of rules keep the
/// difference between absent and empty.
impl From<NetworkPolicy> for k8s::NetworkPolicy {
    fn from(np: NetworkPolicy) -> Self {
        let spec = np.spec;
        Self {
            metadata: np.metadata.into(),
            spec: Some(k8s::NetworkPolicySpec {
                pod_selector: Some(spec.pod_selector.into()),
                ingress: spec.ingress.map(|rules| {
                    rules
                        .into_iter()
                        .map(|r| k8s::NetworkPolicyIngressRule {
                            ports: ports_into(r.ports),
                            from: peers_into(r.from),
                        })
                        .collect()
                }),
                egress: spec.egress.map(|rules| {
                    rules
                        .into_iter()
                        .map(|r| k8s::NetworkPolicyEgressRule {
                            ports: ports_into(r.ports),
                            to: peers_into(r.to),
                        })
                        .collect()
                }),
                policy_types: non_empty_map(spec.policy_types, |t| t.api_str().to_owned()),
            }),
        }
    }
}

// ---------------------------------------------------------------- Ingress

/// Keeps the spec; `status` is dropped. Fails on an unknown `pathType`.
impl TryFrom<k8s::Ingress> for Ingress {
    type Error = ConversionError;

    fn try_from(ing: k8s::Ingress) -> Result<Self> {
        let root = Path::ROOT;
        let path = root.field("spec");
        let spec = ing.spec.unwrap_or_default();
        Ok(Self {
            metadata: ing.metadata.into(),
            spec: IngressSpec {
                ingress_class_name: spec.ingress_class_name,
                default_backend: spec.default_backend.map(backend_from),
                tls: spec
                    .tls
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| IngressTls {
                        hosts: t.hosts.unwrap_or_default(),
                        secret_name: t.secret_name,
                    })
                    .collect(),
                rules: try_opt_vec(spec.rules, &path.field("rules"), |r, path| {
                    Ok(IngressRule {
                        host: r.host,
                        http: r
                            .http
                            .map(|http| {
                                let path = path.field("http");
                                Ok::<_, ConversionError>(HttpIngressRuleValue {
                                    paths: try_vec(http.paths, &path.field("paths"), |p, path| {
                                        Ok(HttpIngressPath {
                                            path: p.path,
                                            path_type: parse_enum(
                                                &p.path_type,
                                                &path.field("pathType"),
                                            )?,
                                            backend: backend_from(p.backend),
                                        })
                                    })?,
                                })
                            })
                            .transpose()?,
                    })
                })?,
            },
        })
    }
}

fn backend_from(b: k8s::IngressBackend) -> IngressBackend {
    IngressBackend {
        service: b.service.map(|s| {
            let port = s.port.unwrap_or_default();
            IngressServiceBackend {
                name: s.name,
                port: ServiceBackendPort {
                    name: port.name,
                    number: port.number,
                },
            }
        }),
        resource: b.resource.map(|r| TypedLocalObjectReference {
            api_group: r.api_group,
            kind: r.kind,
            name: r.name,
        }),
    }
}

fn backend_into(b: IngressBackend) -> k8s::IngressBackend {
    k8s::IngressBackend {
        service: b.service.map(|s| k8s::IngressServiceBackend {
            name: s.name,
            port: non_default(k8s::ServiceBackendPort {
                name: s.port.name,
                number: s.port.number,
            }),
        }),
        resource: b.resource.map(|r| kcore::TypedLocalObjectReference {
            api_group: r.api_group,
            kind: r.kind,
            name: r.name,
        }),
    }
}

impl From<Ingress> for k8s::Ingress {
    fn from(ing: Ingress) -> Self {
        let spec = ing.spec;
        Self {
            metadata: ing.metadata.into(),
            spec: Some(k8s::IngressSpec {
                ingress_class_name: spec.ingress_class_name,
                default_backend: spec.default_backend.map(backend_into),
                tls: non_empty_map(spec.tls, |t| k8s::IngressTLS {
                    hosts: non_empty(t.hosts),
                    secret_name: t.secret_name,
                }),
                rules: non_empty_map(spec.rules, |r| k8s::IngressRule {
                    host: r.host,
                    http: r.http.map(|http| k8s::HTTPIngressRuleValue {
                        paths: http
                            .paths
                            .into_iter()
                            .map(|p| k8s::HTTPIngressPath {
                                path: p.path,
                                path_type: p.path_type.api_str().to_owned(),
                                backend: backend_into(p.backend),
                            })
                            .collect(),
                    }),
                }),
            }),
            status: None,
        }
    }
}

// ---------------------------------------------------------------- IngressClass

/// Keeps the controller and parameters. Never fails today.
impl TryFrom<k8s::IngressClass> for IngressClass {
    type Error = ConversionError;

    fn try_from(class: k8s::IngressClass) -> Result<Self> {
        let spec = class.spec.unwrap_or_default();
        Ok(Self {
            metadata: class.metadata.into(),
            spec: IngressClassSpec {
                controller: spec.controller.unwrap_or_default(),
                parameters: spec.parameters.map(|p| IngressClassParametersReference {
                    api_group: p.api_group,
                    kind: p.kind,
                    name: p.name,
                    scope: p.scope,
                    namespace: p.namespace,
                }),
            },
        })
    }
}

/// An empty `controller` becomes `None`.
impl From<IngressClass> for k8s::IngressClass {
    fn from(class: IngressClass) -> Self {
        Self {
            metadata: class.metadata.into(),
            spec: Some(k8s::IngressClassSpec {
                controller: non_empty_string(class.spec.controller),
                parameters: class
                    .spec
                    .parameters
                    .map(|p| k8s::IngressClassParametersReference {
                        api_group: p.api_group,
                        kind: p.kind,
                        name: p.name,
                        scope: p.scope,
                        namespace: p.namespace,
                    }),
            }),
        }
    }
}
