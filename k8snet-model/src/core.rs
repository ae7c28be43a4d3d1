//! core/v1 resources: Namespace, Node, Pod, Service, Secret — and the small
//! shared types ([`Protocol`], [`IntOrString`], [`IpFamily`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectMeta, StringMap, resource};

/// An L4 protocol as the Kubernetes API spells it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[non_exhaustive]
pub enum Protocol {
    /// TCP (the default everywhere the API defaults a protocol).
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// The API spelling: `TCP`, `UDP`, `SCTP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }

    /// The IANA protocol number (6, 17, 132).
    pub fn ip_proto(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "TCP" => Ok(Self::Tcp),
            "UDP" => Ok(Self::Udp),
            "SCTP" => Ok(Self::Sctp),
            _ => Err(format!(
                "unsupported protocol {s:?}: supported values: \"TCP\", \"UDP\", \"SCTP\""
            )),
        }
    }
}

/// A number or a name: `targetPort`, a NetworkPolicy `port`, an Ingress port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number (its range is checked by validation, so it is kept wide).
    Int(i32),
    /// A name.
    String(String),
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(n) => write!(f, "{n}"),
            Self::String(s) => f.write_str(s),
        }
    }
}

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IpFamily {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: std::net::IpAddr) -> Self {
        if ip.is_ipv4() { Self::IPv4 } else { Self::IPv6 }
    }
}

// ---------------------------------------------------------------- Namespace

/// A Namespace. Its `kubernetes.io/metadata.name` label is set on load.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    /// Metadata; the name is a DNS label.
    #[serde(default)]
    pub metadata: ObjectMeta,
}
resource!(Namespace, "Namespace", "v1", false);

// ---------------------------------------------------------------- Node

/// A Node: its pod CIDRs, addresses and topology zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Metadata; the zone is the `topology.kubernetes.io/zone` label.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: NodeSpec,
    /// Observed state.
    #[serde(default)]
    pub status: NodeStatus,
}
resource!(Node, "Node", "v1", false);

/// The topology label that names a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

impl Node {
    /// The node's zone, from the `topology.kubernetes.io/zone` label.
    pub fn zone(&self) -> Option<&str> {
        self.metadata.labels.get(ZONE_LABEL).map(String::as_str)
    }

    /// The addresses of `status.addresses` of these types (e.g.
    /// `["InternalIP", "ExternalIP"]`), in list order and each once, read
    /// as kube-proxy reads them (`GetNodeHostIPs`: `ParseIPSloppy`, see
    /// [`parse_ip_legacy`](crate::validate::parse_ip_legacy)): IPv4 parts
    /// with leading zeros are decimal and an IPv4-mapped address is IPv4.
    /// A value that cannot be read (a name, or an object built without
    /// validation) is left out.
    ///
    /// ```
    /// use k8snet_model::Node;
    /// let node: Node = serde_json::from_value(serde_json::json!({
    ///     "metadata": {"name": "n"},
    ///     "status": {"addresses": [
    ///         {"type": "Hostname", "address": "n"},
    ///         {"type": "InternalIP", "address": "010.0.0.1"},
    ///         {"type": "ExternalIP", "address": "::ffff:203.0.113.7"}
    ///     ]}
    /// }))?;
    /// let ips: Vec<String> = node
    ///     .addresses_of(&["InternalIP", "ExternalIP"])
    ///     .iter()
    ///     .map(|ip| ip.to_string())
    ///     .collect();
    /// assert_eq!(ips, ["10.0.0.1", "203.0.113.7"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn addresses_of(&self, types: &[&str]) -> Vec<std::net::IpAddr> {
        let mut out: Vec<std::net::IpAddr> = Vec::new();
        let wanted = self
            .status
            .addresses
            .iter()
            .filter(|a| types.contains(&a.address_type.as_str()));
        for ip in wanted.filter_map(|a| crate::validate::parse_ip_legacy(&a.address).ok()) {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        out
    }

    /// The node's pod CIDRs as networks: `spec.podCIDRs`, or the legacy
    /// single-stack `spec.podCIDR` when the list is empty. Each is read as
    /// the apiserver validates it and consumers read it
    /// ([`parse_cidr_legacy`](crate::validate::parse_cidr_legacy): host
    /// bits dropped, leading zeros decimal, IPv4-mapped as IPv4); a value
    /// that cannot be read (in an object built without validation) is left
    /// out.
    ///
    /// ```
    /// use k8snet_model::Node;
    /// let node: Node = serde_json::from_value(serde_json::json!({
    ///     "metadata": {"name": "n"},
    ///     "spec": {"podCIDRs": ["010.244.0.1/24", "fd00::/064"]}
    /// }))?;
    /// let cidrs: Vec<String> = node.pod_cidrs().iter().map(|c| c.to_string()).collect();
    /// assert_eq!(cidrs, ["10.244.0.0/24", "fd00::/64"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn pod_cidrs(&self) -> Vec<ipnet::IpNet> {
        let spec = &self.spec;
        let single = spec.pod_cidr.as_ref().filter(|c| !c.is_empty());
        let all: Vec<&String> = if spec.pod_cidrs.is_empty() {
            single.into_iter().collect()
        } else {
            spec.pod_cidrs.iter().collect()
        };
        all.into_iter()
            .filter_map(|c| crate::validate::parse_cidr_legacy(c).ok())
            .map(|c| c.net)
            .collect()
    }
}

/// `Node.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    /// The first pod CIDR (legacy single-stack field).
    #[serde(default, rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    /// Pod CIDRs, at most one per family.
    #[serde(default, rename = "podCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
    /// Whether the node is cordoned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
}

/// `Node.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node's addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
}

/// One node address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, `Hostname`, `InternalDNS`, `ExternalDNS`.
    #[serde(rename = "type")]
    pub address_type: String,
    /// The address.
    pub address: String,
}

// ---------------------------------------------------------------- Pod

/// A Pod: what networking needs of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Metadata; the name is a DNS subdomain.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: PodSpec,
    /// Observed state (IPs, phase, readiness).
    #[serde(default)]
    pub status: PodStatus,
}
resource!(Pod, "Pod", "v1", true);

/// `Pod.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// The node the pod runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Whether the pod uses the node's network namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// The pod's hostname (DNS label); with `subdomain`, gives a DNS record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The headless Service that names the pod (`hostname.subdomain.ns.svc.zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// `ClusterFirst` (default), `ClusterFirstWithHostNet`, `Default` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    /// Containers; only their ports matter here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    /// Init containers (restartable sidecars can expose ports too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
}

/// A container: its name and ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// The container's name.
    #[serde(default)]
    pub name: String,
    /// The container image (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Declared ports: what named ports resolve to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
}

/// A declared container port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    /// IANA service name; the target of named ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port number (1..=65535).
    pub container_port: i32,
    /// Protocol (defaults to TCP on load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// A host port (portmap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    /// The host IP a host port binds to.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// `Pod.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PodPhase>,
    /// The primary pod IP.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// All pod IPs, one per family, the first equal to `podIP`.
    #[serde(default, rename = "podIPs", skip_serializing_if = "Vec::is_empty")]
    pub pod_ips: Vec<PodIp>,
    /// The node's IP (the first of `hostIPs`).
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// The node's IPs, one per family, the first equal to `hostIP`
    /// (`status.hostIPs`, GA in Kubernetes 1.30): a dual-stack node lists
    /// its address of each family here.
    #[serde(default, rename = "hostIPs", skip_serializing_if = "Vec::is_empty")]
    pub host_ips: Vec<HostIp>,
    /// Conditions; `Ready` decides endpoint readiness.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PodCondition>,
}

/// A pod's lifecycle phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PodPhase {
    /// Accepted, not all containers running.
    Pending,
    /// Bound to a node and running.
    Running,
    /// All containers terminated successfully.
    Succeeded,
    /// All containers terminated, at least one in failure.
    Failed,
    /// State could not be obtained.
    Unknown,
}

/// One entry of `status.podIPs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIp {
    /// The address.
    pub ip: String,
}

/// One entry of `status.hostIPs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIp {
    /// The address.
    pub ip: String,
}

/// A pod condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodCondition {
    /// `Ready`, `ContainersReady`, `PodScheduled`, …
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
}

impl Pod {
    /// The pod's IPs in order (`podIPs`, or `podIP` alone), parsed; invalid
    /// strings are skipped (validation reports them).
    pub fn ips(&self) -> Vec<std::net::IpAddr> {
        let mut out: Vec<std::net::IpAddr> = self
            .status
            .pod_ips
            .iter()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        if out.is_empty()
            && let Some(ip) = self.status.pod_ip.as_deref().and_then(|s| s.parse().ok())
        {
            out.push(ip);
        }
        out
    }

    /// The addresses of the pod's node as its status reports them
    /// (`hostIPs`, then `hostIP` when `hostIPs` does not list it), parsed,
    /// without repeats; invalid strings are skipped (validation reports
    /// them).
    ///
    /// ```
    /// use k8snet_model::{HostIp, Pod};
    /// let mut pod = Pod::default();
    /// pod.status.host_ip = Some("198.19.128.1".into());
    /// assert_eq!(pod.host_ips(), ["198.19.128.1".parse::<std::net::IpAddr>()?]);
    /// pod.status.host_ips = vec![
    ///     HostIp { ip: "198.19.128.1".into() },
    ///     HostIp { ip: "fd00:19:1::1".into() },
    /// ];
    /// assert_eq!(pod.host_ips().len(), 2);
    /// # Ok::<(), std::net::AddrParseError>(())
    /// ```
    pub fn host_ips(&self) -> Vec<std::net::IpAddr> {
        let listed = self.status.host_ips.iter().map(|h| h.ip.as_str());
        let mut out: Vec<std::net::IpAddr> = Vec::with_capacity(2);
        for ip in listed
            .chain(self.status.host_ip.as_deref())
            .filter_map(|s| s.parse().ok())
        {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        out
    }

    /// Whether the pod is Ready. A pod with no `Ready` condition counts as
    /// ready when it is Running, so hand-written manifests need not spell
    /// conditions out.
    pub fn is_ready(&self) -> bool {
        match self
            .status
            .conditions
            .iter()
            .find(|c| c.condition_type == "Ready")
        {
            Some(c) => c.status == "True",
            None => self.status.phase == Some(PodPhase::Running),
        }
    }

    /// Whether the pod is terminating (has a deletion timestamp).
    pub fn is_terminating(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// Whether the pod has finished (Succeeded or Failed): it owns no IP any more.
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.phase,
            Some(PodPhase::Succeeded | PodPhase::Failed)
        )
    }

    /// All container ports (init containers too), in declaration order.
    pub fn container_ports(&self) -> impl Iterator<Item = &ContainerPort> {
        self.spec
            .containers
            .iter()
            .chain(&self.spec.init_containers)
            .flat_map(|c| &c.ports)
    }

    /// Resolves a named port for a protocol, as the endpoints controller and
    /// NetworkPolicy do: the first container port with that name and protocol.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.container_ports()
            .find(|p| p.name.as_deref() == Some(name) && p.protocol.unwrap_or_default() == protocol)
            .and_then(|p| u16::try_from(p.container_port).ok())
    }
}

// ---------------------------------------------------------------- Service

/// A Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Metadata; the name is a DNS-1035 label.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: ServiceSpec,
    /// Observed state (load balancer ingress points).
    #[serde(default, skip_serializing_if = "ServiceStatus::is_empty")]
    pub status: ServiceStatus,
}
resource!(Service, "Service", "v1", true);

/// The kind of a Service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServiceType {
    /// A virtual IP inside the cluster (default).
    #[default]
    ClusterIP,
    /// ClusterIP plus a port on every node.
    NodePort,
    /// NodePort plus an external load balancer.
    LoadBalancer,
    /// A DNS alias (CNAME); no proxying.
    ExternalName,
}

/// `ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IpFamilyPolicy {
    /// One family.
    SingleStack,
    /// Both families when the cluster has them, else one.
    PreferDualStack,
    /// Both families, or fail.
    RequireDualStack,
}

/// `externalTrafficPolicy` / `internalTrafficPolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TrafficPolicy {
    /// Any endpoint in the cluster (default).
    #[default]
    Cluster,
    /// Only endpoints on the receiving node.
    Local,
}

/// `sessionAffinity`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SessionAffinity {
    /// No affinity (default).
    #[default]
    None,
    /// Pin each client IP to one endpoint for `timeoutSeconds`.
    ClientIP,
}

/// `Service.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The kind of Service (defaults to ClusterIP on load).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Pod selector; absent means endpoints are managed by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<StringMap>,
    /// The primary cluster IP, or `None` for a headless Service.
    #[serde(default, rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    /// All cluster IPs (one per family; the first equals `clusterIP`).
    #[serde(default, rename = "clusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    /// Families, in `clusterIPs` order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<IpFamily>,
    /// Family policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<IpFamilyPolicy>,
    /// Extra IPs this Service answers on.
    #[serde(default, rename = "externalIPs", skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<String>,
    /// Client CIDRs allowed to reach the load balancer (empty = all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
    /// Deprecated requested load balancer IP.
    #[serde(
        default,
        rename = "loadBalancerIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ip: Option<String>,
    /// The CNAME target of an ExternalName Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// Policy for external traffic (NodePort, LoadBalancer, externalIPs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<TrafficPolicy>,
    /// Policy for traffic to the cluster IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<TrafficPolicy>,
    /// The node port that answers health checks for `Local` external policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_node_port: Option<i32>,
    /// Session affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// Affinity settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// Publish endpoints even when not ready (headless StatefulSet peers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_not_ready_addresses: bool,
    /// `PreferClose` (or `PreferSameZone`/`PreferSameNode`): topology-aware routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
    /// Whether NodePorts are allocated for a LoadBalancer (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocate_load_balancer_node_ports: Option<bool>,
    /// The load balancer implementation class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
}

/// Affinity settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinityConfig {
    /// ClientIP settings.
    #[serde(default, rename = "clientIP", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

/// ClientIP affinity settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIpConfig {
    /// Affinity timeout in seconds, 1..=86400 (defaults to 10800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// Default ClientIP affinity timeout (3 hours), as the apiserver sets it.
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: i32 = 10_800;

/// One Service port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Name (DNS label); required when there is more than one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Protocol (defaults to TCP on load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Application protocol hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// The Service's port (1..=65535).
    pub port: i32,
    /// Port or named port on the pods (defaults to `port` on load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// The node port (30000..=32767 by default) for NodePort/LoadBalancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
}

/// `Service.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Load balancer state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
}

impl ServiceStatus {
    fn is_empty(&self) -> bool {
        self.load_balancer.is_none()
    }
}

/// Load balancer state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    /// Ingress points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngress>,
}

/// One load balancer ingress point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIngress {
    /// An IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `VIP` (traffic arrives with the LB IP as destination) or `Proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_mode: Option<String>,
}

impl Service {
    /// The Service type (ClusterIP when unset).
    pub fn service_type(&self) -> ServiceType {
        self.spec.service_type.unwrap_or_default()
    }

    /// True for a headless Service (`clusterIP: None`).
    pub fn is_headless(&self) -> bool {
        self.spec.cluster_ip.as_deref() == Some("None")
    }

    /// The cluster IPs (`clusterIPs`, else `clusterIP`), read as the
    /// apiserver validates them and kube-proxy reads them
    /// ([`parse_ip_legacy`](crate::validate::parse_ip_legacy)): IPv4 parts
    /// with leading zeros are decimal (`010.096.0.10` is 10.96.0.10) and an
    /// IPv4-mapped address is IPv4. Empty for headless and ExternalName
    /// Services; a value that cannot be read (validation refuses it) is
    /// skipped.
    pub fn cluster_ips(&self) -> Vec<std::net::IpAddr> {
        let read = |s: &str| crate::validate::parse_ip_legacy(s).ok();
        let mut out: Vec<std::net::IpAddr> = self
            .spec
            .cluster_ips
            .iter()
            .filter_map(|s| read(s))
            .collect();
        if out.is_empty()
            && let Some(ip) = self.spec.cluster_ip.as_deref().and_then(read)
        {
            out.push(ip);
        }
        out
    }

    /// The source ranges a cloud load balancer admits for a LoadBalancer
    /// Service, as cloud providers read them (cloud-provider's
    /// `GetLoadBalancerSourceRanges`): `spec.loadBalancerSourceRanges` when
    /// it is non-empty, otherwise the comma-separated CIDRs of the
    /// [`SOURCE_RANGES_ANNOTATION`] annotation. Values are trimmed and read
    /// as the apiserver validates them and consumers read them
    /// ([`parse_cidr_legacy`](crate::validate::parse_cidr_legacy)): as
    /// their network (`10.0.0.1/8` is `10.0.0.0/8`), leading zeros
    /// decimal (`010.0.0.0/8` is `10.0.0.0/8`), IPv4-mapped as IPv4. One
    /// that cannot be read is skipped (validation refuses it); a consumer
    /// that enforces ranges on objects built without validation must not
    /// let a skipped range widen access (k8snet-lb refuses the load
    /// balancer IPs of such a Service).
    ///
    /// Empty means no restriction (the providers' default admits every
    /// address), and is what any other Service type gets. kube-proxy, by
    /// contrast, reads only the field and ignores the annotation.
    ///
    /// ```
    /// use k8snet_model::Service;
    /// let svc: Service = serde_json::from_value(serde_json::json!({
    ///     "metadata": {"name": "web", "annotations": {
    ///         "service.beta.kubernetes.io/load-balancer-source-ranges": "010.0.0.0/8, 192.168.1.1/24"}},
    ///     "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    /// }))?;
    /// let ranges: Vec<String> = svc.load_balancer_source_ranges().iter().map(|n| n.to_string()).collect();
    /// assert_eq!(ranges, ["10.0.0.0/8", "192.168.1.0/24"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn load_balancer_source_ranges(&self) -> Vec<ipnet::IpNet> {
        if self.service_type() != ServiceType::LoadBalancer {
            return Vec::new();
        }
        let parse = |s: &str| {
            crate::validate::parse_cidr_legacy(s.trim())
                .ok()
                .map(|c| c.net)
        };
        if !self.spec.load_balancer_source_ranges.is_empty() {
            return self
                .spec
                .load_balancer_source_ranges
                .iter()
                .filter_map(|s| parse(s))
                .collect();
        }
        self.metadata
            .annotations
            .get(SOURCE_RANGES_ANNOTATION)
            .map(|v| source_range_values(v).filter_map(parse).collect())
            .unwrap_or_default()
    }

    /// `spec.externalIPs` as addresses, read as the apiserver validates
    /// them and kube-proxy reads them
    /// ([`parse_ip_legacy`](crate::validate::parse_ip_legacy): leading
    /// zeros decimal, IPv4-mapped as IPv4); a value that cannot be read
    /// (in an object built without validation) is left out.
    ///
    /// ```
    /// use k8snet_model::Service;
    /// let svc: Service = serde_json::from_value(serde_json::json!({
    ///     "metadata": {"name": "web"},
    ///     "spec": {"externalIPs": ["010.1.1.1", "::ffff:10.1.1.2", "fd00::1"]}
    /// }))?;
    /// let ips: Vec<String> = svc.external_ips().iter().map(|i| i.to_string()).collect();
    /// assert_eq!(ips, ["10.1.1.1", "10.1.1.2", "fd00::1"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn external_ips(&self) -> Vec<std::net::IpAddr> {
        self.spec
            .external_ips
            .iter()
            .filter_map(|s| crate::validate::parse_ip_legacy(s).ok())
            .collect()
    }

    /// The `ip` of every `status.loadBalancer.ingress` entry that has one
    /// (whatever its `ipMode`), read as [`Service::external_ips`] reads
    /// addresses.
    ///
    /// ```
    /// use k8snet_model::Service;
    /// let svc: Service = serde_json::from_value(serde_json::json!({
    ///     "metadata": {"name": "web"},
    ///     "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    ///     "status": {"loadBalancer": {"ingress": [
    ///         {"ip": "198.019.200.60"}, {"hostname": "lb.example.com"}]}}
    /// }))?;
    /// let ips: Vec<String> = svc.load_balancer_ingress_ips().iter().map(|i| i.to_string()).collect();
    /// assert_eq!(ips, ["198.19.200.60"]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn load_balancer_ingress_ips(&self) -> Vec<std::net::IpAddr> {
        self.status
            .load_balancer
            .iter()
            .flat_map(|l| &l.ingress)
            .filter_map(|i| i.ip.as_deref())
            .filter_map(|s| crate::validate::parse_ip_legacy(s).ok())
            .collect()
    }

    /// The ClientIP affinity timeout in seconds, when affinity is on.
    pub fn affinity_timeout(&self) -> Option<u32> {
        (self.spec.session_affinity == Some(SessionAffinity::ClientIP)).then(|| {
            self.spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS)
                .max(1) as u32
        })
    }
}

/// The legacy annotation with a LoadBalancer Service's source ranges, a
/// comma-separated list of CIDRs, read when `spec.loadBalancerSourceRanges`
/// is empty (see [`Service::load_balancer_source_ranges`]).
pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

/// The comma-separated values of the [`SOURCE_RANGES_ANNOTATION`]
/// annotation, trimmed; an empty (or blank) value has none.
pub(crate) fn source_range_values(value: &str) -> impl Iterator<Item = &str> {
    let value = value.trim();
    value
        .split(',')
        .map(str::trim)
        .filter(move |_| !value.is_empty())
}

// ---------------------------------------------------------------- Secret

/// A Secret; only `kubernetes.io/tls` Secrets are used (Ingress TLS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `kubernetes.io/tls` for certificates.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Base64 data: `tls.crt` and `tls.key` (PEM).
    #[serde(default, skip_serializing_if = "StringMap::is_empty")]
    pub data: StringMap,
    /// Plain-text data (merged into `data` by the apiserver).
    #[serde(default, skip_serializing_if = "StringMap::is_empty")]
    pub string_data: StringMap,
}
resource!(Secret, "Secret", "v1", true);

/// The Secret type of TLS certificates.
pub const SECRET_TYPE_TLS: &str = "kubernetes.io/tls";
