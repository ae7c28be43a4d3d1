//! core/v1: Namespace, Node, Pod, Service, Secret.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1 as k8s;

use super::{
    ApiEnum, ConversionError, Path, Result, base64, non_default, non_empty, non_empty_map,
    non_empty_strings, opt_enum_str, parse_opt_enum, true_or_none, try_opt_vec, try_vec,
};
use crate::core::{
    ClientIpConfig, Container, ContainerPort, HostIp, LoadBalancerIngress, LoadBalancerStatus,
    Namespace, Node, NodeAddress, NodeSpec, NodeStatus, Pod, PodCondition, PodIp, PodSpec,
    PodStatus, Secret, Service, ServicePort, ServiceSpec, ServiceStatus, SessionAffinityConfig,
};

// ---------------------------------------------------------------- Namespace

/// Keeps the metadata; `spec.finalizers` and `status` are dropped. Never
/// fails today.
impl TryFrom<k8s::Namespace> for Namespace {
    type Error = ConversionError;

    fn try_from(ns: k8s::Namespace) -> Result<Self> {
        Ok(Self {
            metadata: ns.metadata.into(),
        })
    }
}

impl From<Namespace> for k8s::Namespace {
    fn from(ns: Namespace) -> Self {
        Self {
            metadata: ns.metadata.into(),
            spec: None,
            status: None,
        }
    }
}

// ---------------------------------------------------------------- Node

/// Keeps `spec.podCIDR`, `spec.podCIDRs`, `spec.unschedulable` and
/// `status.addresses`. Never fails today.
impl TryFrom<k8s::Node> for Node {
    type Error = ConversionError;

    fn try_from(node: k8s::Node) -> Result<Self> {
        let spec = node.spec.unwrap_or_default();
        let status = node.status.unwrap_or_default();
        Ok(Self {
            metadata: node.metadata.into(),
            spec: NodeSpec {
                pod_cidr: spec.pod_cidr,
                pod_cidrs: spec.pod_cidrs.unwrap_or_default(),
                unschedulable: spec.unschedulable.unwrap_or(false),
            },
            status: NodeStatus {
                addresses: status
                    .addresses
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| NodeAddress {
                        address_type: a.type_,
                        address: a.address,
                    })
                    .collect(),
            },
        })
    }
}

impl From<Node> for k8s::Node {
    fn from(node: Node) -> Self {
        let status = k8s::NodeStatus {
            addresses: non_empty_map(node.status.addresses, |a| k8s::NodeAddress {
                type_: a.address_type,
                address: a.address,
            }),
            ..Default::default()
        };
        Self {
            metadata: node.metadata.into(),
            spec: Some(k8s::NodeSpec {
                pod_cidr: node.spec.pod_cidr,
                pod_cidrs: non_empty(node.spec.pod_cidrs),
                unschedulable: true_or_none(node.spec.unschedulable),
                ..Default::default()
            }),
            status: non_default(status),
        }
    }
}

// ---------------------------------------------------------------- Pod

/// Keeps what networking reads: node, host network, hostname, subdomain,
/// DNS policy, container names, images and ports, and the phase, IPs and
/// conditions (type and status) of the status. Fails on an unknown port
/// protocol or phase.
impl TryFrom<k8s::Pod> for Pod {
    type Error = ConversionError;

    fn try_from(pod: k8s::Pod) -> Result<Self> {
        let root = Path::ROOT;
        let spec_path = root.field("spec");
        let status_path = root.field("status");
        let spec = pod.spec.unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        Ok(Self {
            metadata: pod.metadata.into(),
            spec: PodSpec {
                node_name: spec.node_name,
                host_network: spec.host_network.unwrap_or(false),
                hostname: spec.hostname,
                subdomain: spec.subdomain,
                dns_policy: spec.dns_policy,
                containers: try_vec(
                    spec.containers,
                    &spec_path.field("containers"),
                    container_from,
                )?,
                init_containers: try_opt_vec(
                    spec.init_containers,
                    &spec_path.field("initContainers"),
                    container_from,
                )?,
            },
            status: PodStatus {
                phase: parse_opt_enum(status.phase, &status_path.field("phase"))?,
                pod_ip: status.pod_ip,
                pod_ips: status
                    .pod_ips
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| PodIp { ip: p.ip })
                    .collect(),
                host_ip: status.host_ip,
                host_ips: status
                    .host_ips
                    .unwrap_or_default()
                    .into_iter()
                    .map(|h| HostIp { ip: h.ip })
                    .collect(),
                conditions: status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| PodCondition {
                        condition_type: c.type_,
                        status: c.status,
                    })
                    .collect(),
            },
        })
    }
}

fn container_from(c: k8s::Container, path: &Path<'_>) -> Result<Container> {
    Ok(Container {
        name: c.name,
        image: c.image,
        ports: try_opt_vec(c.ports, &path.field("ports"), |p, path| {
            Ok(ContainerPort {
                name: p.name,
                container_port: p.container_port,
                protocol: parse_opt_enum(p.protocol, &path.field("protocol"))?,
                host_port: p.host_port,
                host_ip: p.host_ip,
            })
        })?,
    })
}

fn container_into(c: Container) -> k8s::Container {
    k8s::Container {
        name: c.name,
        image: c.image,
        ports: non_empty_map(c.ports, |p| k8s::ContainerPort {
            name: p.name,
            container_port: p.container_port,
            protocol: opt_enum_str(p.protocol),
            host_port: p.host_port,
            host_ip: p.host_ip,
        }),
        ..Default::default()
    }
}

impl From<Pod> for k8s::Pod {
    fn from(pod: Pod) -> Self {
        let status = k8s::PodStatus {
            phase: opt_enum_str(pod.status.phase),
            pod_ip: pod.status.pod_ip,
            pod_ips: non_empty_map(pod.status.pod_ips, |p| k8s::PodIP { ip: p.ip }),
            host_ip: pod.status.host_ip,
            host_ips: non_empty_map(pod.status.host_ips, |h| k8s::HostIP { ip: h.ip }),
            conditions: non_empty_map(pod.status.conditions, |c| k8s::PodCondition {
                type_: c.condition_type,
                status: c.status,
                ..Default::default()
            }),
            ..Default::default()
        };
        Self {
            metadata: pod.metadata.into(),
            spec: Some(k8s::PodSpec {
                node_name: pod.spec.node_name,
                host_network: true_or_none(pod.spec.host_network),
                hostname: pod.spec.hostname,
                subdomain: pod.spec.subdomain,
                dns_policy: pod.spec.dns_policy,
                containers: pod
                    .spec
                    .containers
                    .into_iter()
                    .map(container_into)
                    .collect(),
                init_containers: non_empty_map(pod.spec.init_containers, container_into),
                ..Default::default()
            }),
            status: non_default(status),
        }
    }
}

// ---------------------------------------------------------------- Service

/// Keeps every field of [`ServiceSpec`] and the load balancer ingress points
/// of the status (without their `ports`); `status.conditions` is dropped.
/// Fails on an unknown `type`, port protocol, IP family, family policy,
/// traffic policy or session affinity.
impl TryFrom<k8s::Service> for Service {
    type Error = ConversionError;

    fn try_from(svc: k8s::Service) -> Result<Self> {
        let root = Path::ROOT;
        let path = root.field("spec");
        let spec = svc.spec.unwrap_or_default();
        Ok(Self {
            metadata: svc.metadata.into(),
            spec: ServiceSpec {
                service_type: parse_opt_enum(spec.type_, &path.field("type"))?,
                ports: try_opt_vec(spec.ports, &path.field("ports"), |p, path| {
                    Ok(ServicePort {
                        name: p.name,
                        protocol: parse_opt_enum(p.protocol, &path.field("protocol"))?,
                        app_protocol: p.app_protocol,
                        port: p.port,
                        target_port: p.target_port.map(Into::into),
                        node_port: p.node_port,
                    })
                })?,
                selector: spec.selector,
                cluster_ip: spec.cluster_ip,
                cluster_ips: spec.cluster_ips.unwrap_or_default(),
                ip_families: try_opt_vec(spec.ip_families, &path.field("ipFamilies"), |f, p| {
                    super::parse_enum(&f, p)
                })?,
                ip_family_policy: parse_opt_enum(
                    spec.ip_family_policy,
                    &path.field("ipFamilyPolicy"),
                )?,
                external_ips: spec.external_ips.unwrap_or_default(),
                load_balancer_source_ranges: spec.load_balancer_source_ranges.unwrap_or_default(),
                load_balancer_ip: spec.load_balancer_ip,
                external_name: spec.external_name,
                external_traffic_policy: parse_opt_enum(
                    spec.external_traffic_policy,
                    &path.field("externalTrafficPolicy"),
                )?,
                internal_traffic_policy: parse_opt_enum(
                    spec.internal_traffic_policy,
                    &path.field("internalTrafficPolicy"),
                )?,
                health_check_node_port: spec.health_check_node_port,
                session_affinity: parse_opt_enum(
                    spec.session_affinity,
                    &path.field("sessionAffinity"),
                )?,
                session_affinity_config: spec.session_affinity_config.map(|c| {
                    SessionAffinityConfig {
                        client_ip: c.client_ip.map(|c| ClientIpConfig {
                            timeout_seconds: c.timeout_seconds,
                        }),
                    }
                }),
                publish_not_ready_addresses: spec.publish_not_ready_addresses.unwrap_or(false),
                traffic_distribution: spec.traffic_distribution,
                allocate_load_balancer_node_ports: spec.allocate_load_balancer_node_ports,
                load_balancer_class: spec.load_balancer_class,
            },
            status: ServiceStatus {
                load_balancer: svc.status.and_then(|s| s.load_balancer).map(|lb| {
                    LoadBalancerStatus {
                        ingress: lb
                            .ingress
                            .unwrap_or_default()
                            .into_iter()
                            .map(|i| LoadBalancerIngress {
                                ip: i.ip,
                                hostname: i.hostname,
                                ip_mode: i.ip_mode,
                            })
                            .collect(),
                    }
                }),
            },
        })
    }
}

impl From<Service> for k8s::Service {
    fn from(svc: Service) -> Self {
        let spec = svc.spec;
        Self {
            metadata: svc.metadata.into(),
            spec: Some(k8s::ServiceSpec {
                type_: opt_enum_str(spec.service_type),
                ports: non_empty_map(spec.ports, |p| k8s::ServicePort {
                    name: p.name,
                    protocol: opt_enum_str(p.protocol),
                    app_protocol: p.app_protocol,
                    port: p.port,
                    target_port: p.target_port.map(Into::into),
                    node_port: p.node_port,
                }),
                selector: spec.selector,
                cluster_ip: spec.cluster_ip,
                cluster_ips: non_empty(spec.cluster_ips),
                ip_families: non_empty_map(spec.ip_families, |f| f.api_str().to_owned()),
                ip_family_policy: opt_enum_str(spec.ip_family_policy),
                external_ips: non_empty(spec.external_ips),
                load_balancer_source_ranges: non_empty(spec.load_balancer_source_ranges),
                load_balancer_ip: spec.load_balancer_ip,
                external_name: spec.external_name,
                external_traffic_policy: opt_enum_str(spec.external_traffic_policy),
                internal_traffic_policy: opt_enum_str(spec.internal_traffic_policy),
                health_check_node_port: spec.health_check_node_port,
                session_affinity: opt_enum_str(spec.session_affinity),
                session_affinity_config: spec.session_affinity_config.map(|c| {
                    k8s::SessionAffinityConfig {
                        client_ip: c.client_ip.map(|c| k8s::ClientIPConfig {
                            timeout_seconds: c.timeout_seconds,
                        }),
                    }
                }),
                publish_not_ready_addresses: true_or_none(spec.publish_not_ready_addresses),
                traffic_distribution: spec.traffic_distribution,
                allocate_load_balancer_node_ports: spec.allocate_load_balancer_node_ports,
                load_balancer_class: spec.load_balancer_class,
            }),
            status: svc.status.load_balancer.map(|lb| k8s::ServiceStatus {
                load_balancer: Some(k8s::LoadBalancerStatus {
                    ingress: non_empty_map(lb.ingress, |i| k8s::LoadBalancerIngress {
                        ip: i.ip,
                        hostname: i.hostname,
                        ip_mode: i.ip_mode,
                        ports: None,
                    }),
                }),
                conditions: None,
            }),
        }
    }
}

// ---------------------------------------------------------------- Secret

/// Keeps `type`, `data` (re-encoded as the base64 text of a manifest) and
/// `stringData`; `immutable` is dropped. Never fails today.
impl TryFrom<k8s::Secret> for Secret {
    type Error = ConversionError;

    fn try_from(secret: k8s::Secret) -> Result<Self> {
        Ok(Self {
            metadata: secret.metadata.into(),
            secret_type: secret.type_,
            data: secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, base64::encode(&v.0)))
                .collect(),
            string_data: secret.string_data.unwrap_or_default(),
        })
    }
}

/// A `data` value that is not padded standard base64 is dropped, with a
/// warning (the apiserver would not accept it either).
impl From<Secret> for k8s::Secret {
    fn from(secret: Secret) -> Self {
        let data: std::collections::BTreeMap<String, ByteString> = secret
            .data
            .into_iter()
            .filter_map(|(k, v)| match base64::decode(&v) {
                Some(bytes) => Some((k, ByteString(bytes))),
                None => {
                    tracing::warn!(
                        "data[{k:?}]: dropping a value that is not base64 converting to k8s-openapi"
                    );
                    None
                }
            })
            .collect();
        Self {
            metadata: secret.metadata.into(),
            type_: secret.secret_type,
            data: (!data.is_empty()).then_some(data),
            string_data: non_empty_strings(secret.string_data),
            immutable: None,
        }
    }
}
