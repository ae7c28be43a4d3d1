//! apiserver defaulting, applied on load so every consumer sees the values
//! the apiserver would have stored.

use crate::adminpolicy::{AdminEgressRule, AdminIngressRule, AdminPolicyPort};
use crate::core::{
    ClientIpConfig, DEFAULT_AFFINITY_TIMEOUT_SECONDS, IntOrString, IpFamily, IpFamilyPolicy,
    Protocol, ServiceType, SessionAffinity, SessionAffinityConfig, TrafficPolicy,
};
use crate::meta::{DEFAULT_NAMESPACE, NAMESPACE_NAME_LABEL};
use crate::networking::{NetworkPolicyPort, PolicyType};
use crate::object::{Kind, Object};

/// Applies apiserver defaults in place.
///
/// - namespaced objects without a namespace land in `default`;
/// - Namespaces get the `kubernetes.io/metadata.name` label;
/// - protocols default to TCP (container, Service, slice and policy ports);
/// - Services: type ClusterIP, `targetPort` = `port`, sessionAffinity None
///   for every type, ExternalName included (ClientIP timeout 10800 s),
///   traffic policies Cluster (external only for NodePort/LoadBalancer),
///   `allocateLoadBalancerNodePorts` true for LoadBalancer;
/// - Service IP fields as the apiserver's strategy and allocator fill them
///   on create: a lone `clusterIP` is copied into `clusterIPs` (never the
///   reverse); `ipFamilyPolicy` defaults to SingleStack, or RequireDualStack
///   for a headless (`clusterIP: None`) Service without a selector, so two
///   families or cluster IPs without an explicit dual-stack policy are
///   refused, as by apiserver 1.23 and later; missing `ipFamilies` entries
///   are inferred from `clusterIPs`; a headless selectorless Service that
///   is not SingleStack and names one family gets the other one too.
///   What depends on the cluster's configuration (the default family, the
///   second family of a dual-stack Service with no IPs given) is left
///   unset;
/// - Pods: dnsPolicy ClusterFirst; on the host network, `hostPort` =
///   `containerPort`;
/// - Services also: `targetPort` 0 or `""` means `port`; the affinity config
///   of `sessionAffinity: None` is dropped; ClusterIP Services with
///   `externalIPs` get an external policy too; load balancer ingress IPs
///   get `ipMode: VIP`;
/// - NetworkPolicy `policyTypes`: `[Ingress]`, plus `Egress` iff `egress`
///   is non-empty (`pkg/apis/networking/v1/defaults.go`);
/// - IngressClass parameters scope Cluster.
pub fn apply_defaults(object: &mut Object) {
    if object.kind().is_namespaced() && object.meta().namespace.is_none() {
        object.meta_mut().namespace = Some(DEFAULT_NAMESPACE.to_string());
    }
    match object {
        Object::Namespace(ns) => {
            let name = ns.metadata.name.clone();
            ns.metadata
                .labels
                .insert(NAMESPACE_NAME_LABEL.to_string(), name);
        }
        Object::Pod(pod) => {
            if pod.spec.dns_policy.is_none() {
                pod.spec.dns_policy = Some("ClusterFirst".to_string());
            }
            let host_network = pod.spec.host_network;
            for c in pod
                .spec
                .containers
                .iter_mut()
                .chain(pod.spec.init_containers.iter_mut())
            {
                for p in &mut c.ports {
                    p.protocol.get_or_insert(Protocol::Tcp);
                    // On the host network a container port is a host port.
                    if host_network && p.host_port.is_none_or(|h| h == 0) {
                        p.host_port = Some(p.container_port);
                    }
                }
            }
        }
        Object::Service(svc) => default_service(svc),
        Object::EndpointSlice(slice) => {
            for p in &mut slice.ports {
                p.protocol.get_or_insert(Protocol::Tcp);
            }
        }
        Object::NetworkPolicy(np) => {
            let spec = &mut np.spec;
            for rule in spec.ingress.iter_mut().flatten() {
                default_np_ports(rule.ports.as_mut());
            }
            for rule in spec.egress.iter_mut().flatten() {
                default_np_ports(rule.ports.as_mut());
            }
            if spec.policy_types.is_empty() {
                spec.policy_types.push(PolicyType::Ingress);
                if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                    spec.policy_types.push(PolicyType::Egress);
                }
            }
        }
        Object::AdminNetworkPolicy(anp) => {
            default_admin_rules(&mut anp.spec.ingress, &mut anp.spec.egress)
        }
        Object::BaselineAdminNetworkPolicy(banp) => {
            default_admin_rules(&mut banp.spec.ingress, &mut banp.spec.egress)
        }
        Object::IngressClass(class) => {
            if let Some(p) = &mut class.spec.parameters {
                p.scope.get_or_insert_with(|| "Cluster".to_string());
            }
        }
        _ => {}
    }
    debug_assert!(Kind::ALL.contains(&object.kind()));
}

fn default_np_ports(ports: Option<&mut Vec<NetworkPolicyPort>>) {
    for p in ports.into_iter().flatten() {
        p.protocol.get_or_insert(Protocol::Tcp);
    }
}

fn default_admin_ports(ports: Option<&mut Vec<AdminPolicyPort>>) {
    for p in ports.into_iter().flatten() {
        if let Some(n) = &mut p.port_number {
            n.protocol.get_or_insert(Protocol::Tcp);
        }
        if let Some(r) = &mut p.port_range {
            r.protocol.get_or_insert(Protocol::Tcp);
        }
    }
}

fn default_admin_rules(ingress: &mut [AdminIngressRule], egress: &mut [AdminEgressRule]) {
    for r in ingress {
        default_admin_ports(r.ports.as_mut());
    }
    for r in egress {
        default_admin_ports(r.ports.as_mut());
    }
}

fn default_service(svc: &mut crate::core::Service) {
    let spec = &mut svc.spec;
    let ty = *spec.service_type.get_or_insert(ServiceType::ClusterIP);
    for p in &mut spec.ports {
        p.protocol.get_or_insert(Protocol::Tcp);
        // Absent, 0 and "" all mean "the same as port" (SetDefaults_Service).
        let unset = match &p.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
    // SetDefaults_Service sets the affinity of every type, ExternalName
    // included.
    let affinity = *spec.session_affinity.get_or_insert(SessionAffinity::None);
    if affinity == SessionAffinity::None {
        // The apiserver drops the config of an affinity that is off.
        spec.session_affinity_config = None;
    } else if affinity == SessionAffinity::ClientIP {
        let cfg = spec
            .session_affinity_config
            .get_or_insert_with(SessionAffinityConfig::default);
        cfg.client_ip
            .get_or_insert_with(ClientIpConfig::default)
            .timeout_seconds
            .get_or_insert(DEFAULT_AFFINITY_TIMEOUT_SECONDS);
    }
    if ty == ServiceType::ExternalName {
        return;
    }
    spec.internal_traffic_policy
        .get_or_insert(TrafficPolicy::Cluster);
    // Externally reachable Services (including ClusterIP ones with
    // externalIPs) get an external policy.
    if matches!(ty, ServiceType::NodePort | ServiceType::LoadBalancer)
        || !spec.external_ips.is_empty()
    {
        spec.external_traffic_policy
            .get_or_insert(TrafficPolicy::Cluster);
    }
    if ty == ServiceType::LoadBalancer {
        spec.allocate_load_balancer_node_ports.get_or_insert(true);
        // Load balancer IPs are VIPs unless the controller says Proxy.
        for ing in svc
            .status
            .load_balancer
            .iter_mut()
            .flat_map(|lb| lb.ingress.iter_mut())
        {
            if ing.ip.is_some() {
                ing.ip_mode.get_or_insert_with(|| "VIP".to_string());
            }
        }
    }
    default_ip_families(&mut svc.spec);
}

/// `clusterIPs`, `ipFamilyPolicy` and `ipFamilies` as the apiserver's
/// strategy (`NormalizeClusterIPs`) and allocator (`initIPFamilyFields`)
/// fill them on create, as far as they do not depend on the cluster's
/// configuration.
fn default_ip_families(spec: &mut crate::core::ServiceSpec) {
    // A lone `clusterIP` is copied into `clusterIPs`; never the other way:
    // `clusterIPs` without `clusterIP` is refused by validation.
    if let Some(ip) = spec.cluster_ip.as_deref().filter(|s| !s.is_empty())
        && spec.cluster_ips.is_empty()
    {
        spec.cluster_ips = vec![ip.to_string()];
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let selectorless = spec.selector.as_ref().is_none_or(|s| s.is_empty());
    // No policy means SingleStack, except for headless selectorless
    // Services, which default to RequireDualStack. Two families or IPs
    // under SingleStack are then refused by validation (since 1.23 a
    // dual-stack Service must say so).
    let policy = *spec
        .ip_family_policy
        .get_or_insert(if headless && selectorless {
            IpFamilyPolicy::RequireDualStack
        } else {
            IpFamilyPolicy::SingleStack
        });
    // Families not given are inferred from the cluster IPs, position by
    // position, as the allocator reads them (`ParseIPSloppy`: legacy
    // spellings, an IPv4-mapped address is IPv4); an address that does
    // not parse, or a third one, is left to validation.
    for (i, ip) in spec.cluster_ips.iter().enumerate().take(2) {
        if ip == "None" {
            break;
        }
        if i < spec.ip_families.len() {
            continue;
        }
        match crate::validate::parse_ip_legacy(ip) {
            Ok(addr) => spec.ip_families.push(IpFamily::of(addr)),
            Err(_) => break,
        }
    }
    // Headless selectorless Services that are not SingleStack get the
    // other family too. (With no family at all, the first is the
    // cluster's default, which a manifest does not tell; so is the second
    // family of a dual-stack Service with a cluster IP.)
    if headless
        && selectorless
        && policy != IpFamilyPolicy::SingleStack
        && let [only] = spec.ip_families.as_slice()
    {
        let other = match only {
            IpFamily::IPv4 => IpFamily::IPv6,
            IpFamily::IPv6 => IpFamily::IPv4,
        };
        spec.ip_families.push(other);
    }
}
