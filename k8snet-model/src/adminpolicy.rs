//! Cluster-wide policy tiers of policy.networking.k8s.io:
//! AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1) and
//! ClusterNetworkPolicy (v1alpha2, `tier: Admin | Baseline`).

use serde::{Deserialize, Serialize};

use crate::core::Protocol;
use crate::meta::{ObjectMeta, resource};
use crate::selector::LabelSelector;

/// Pods selected by a namespace selector AND a pod selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedPod {
    /// Namespaces.
    #[serde(default)]
    pub namespace_selector: LabelSelector,
    /// Pods in them.
    #[serde(default)]
    pub pod_selector: LabelSelector,
}

/// The pods a cluster-wide policy applies to: exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminPolicySubject {
    /// All pods of the selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// Selected pods of selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
}

// ---------------------------------------------------------------- v1alpha1

/// The action of an AdminNetworkPolicy (v1alpha1) or Baseline rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminPolicyAction {
    /// Allow, even if NetworkPolicy would deny.
    Allow,
    /// Deny, even if NetworkPolicy would allow.
    Deny,
    /// Skip the remaining admin rules; NetworkPolicy (then Baseline) decides.
    /// Not allowed in a BaselineAdminNetworkPolicy.
    Pass,
}

/// A v1alpha1 port: exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminPolicyPort {
    /// One port of one protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<AdminPortNumber>,
    /// A named container port of the destination pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_port: Option<String>,
    /// An inclusive range of one protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<AdminPortRange>,
}

/// A port number with protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminPortNumber {
    /// Protocol (defaults to TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Port.
    pub port: i32,
}

/// A port range with protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminPortRange {
    /// Protocol (defaults to TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// First port.
    pub start: i32,
    /// Last port (inclusive).
    pub end: i32,
}

/// An ingress peer (exactly one field set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminIngressPeer {
    /// All pods of selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// Selected pods of selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
}

/// An egress peer (exactly one field set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminEgressPeer {
    /// All pods of selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// Selected pods of selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<NamespacedPod>,
    /// Selected nodes (experimental).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<LabelSelector>,
    /// CIDRs (at most 25); they match pod IPs too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Domain names (experimental; Allow/Accept only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain_names: Vec<String>,
}

/// A v1alpha1 ingress rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminIngressRule {
    /// Rule name (≤ 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What matching traffic gets.
    pub action: AdminPolicyAction,
    /// Sources (1 to 100).
    #[serde(default)]
    pub from: Vec<AdminIngressPeer>,
    /// Ports; absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<AdminPolicyPort>>,
}

/// A v1alpha1 egress rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminEgressRule {
    /// Rule name (≤ 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What matching traffic gets.
    pub action: AdminPolicyAction,
    /// Destinations (1 to 100).
    #[serde(default)]
    pub to: Vec<AdminEgressPeer>,
    /// Ports; absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<AdminPolicyPort>>,
}

/// An AdminNetworkPolicy (cluster-scoped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminNetworkPolicy {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The policy.
    #[serde(default)]
    pub spec: AdminNetworkPolicySpec,
}
resource!(
    AdminNetworkPolicy,
    "AdminNetworkPolicy",
    "policy.networking.k8s.io/v1alpha1",
    false
);

/// `AdminNetworkPolicy.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminNetworkPolicySpec {
    /// 0..=1000; lower is evaluated first.
    #[serde(default)]
    pub priority: i32,
    /// The pods it applies to.
    #[serde(default)]
    pub subject: AdminPolicySubject,
    /// Ingress rules in precedence order (≤ 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<AdminIngressRule>,
    /// Egress rules in precedence order (≤ 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<AdminEgressRule>,
}

/// The BaselineAdminNetworkPolicy (a singleton named `default`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineAdminNetworkPolicy {
    /// Metadata; the name must be `default`.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The policy.
    #[serde(default)]
    pub spec: BaselineAdminNetworkPolicySpec,
}
resource!(
    BaselineAdminNetworkPolicy,
    "BaselineAdminNetworkPolicy",
    "policy.networking.k8s.io/v1alpha1",
    false
);

/// `BaselineAdminNetworkPolicy.spec` (actions Allow or Deny only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineAdminNetworkPolicySpec {
    /// The pods it applies to.
    #[serde(default)]
    pub subject: AdminPolicySubject,
    /// Ingress rules (≤ 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<AdminIngressRule>,
    /// Egress rules (≤ 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<AdminEgressRule>,
}

// ---------------------------------------------------------------- v1alpha2

/// The tier of a ClusterNetworkPolicy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PolicyTier {
    /// Before NetworkPolicy.
    Admin,
    /// After NetworkPolicy.
    Baseline,
}

/// The action of a ClusterNetworkPolicy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClusterPolicyAction {
    /// Accept the traffic.
    Accept,
    /// Deny it.
    Deny,
    /// Skip to the next tier.
    Pass,
}

/// A ClusterNetworkPolicy (v1alpha2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicy {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The policy.
    #[serde(default)]
    pub spec: ClusterNetworkPolicySpec,
}
resource!(
    ClusterNetworkPolicy,
    "ClusterNetworkPolicy",
    "policy.networking.k8s.io/v1alpha2",
    false
);

/// `ClusterNetworkPolicy.spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicySpec {
    /// Admin or Baseline.
    pub tier: PolicyTier,
    /// 0..=1000 within the tier; lower first.
    #[serde(default)]
    pub priority: i32,
    /// The pods it applies to.
    #[serde(default)]
    pub subject: AdminPolicySubject,
    /// Ingress rules (≤ 25).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<ClusterPolicyIngressRule>,
    /// Egress rules (≤ 25).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<ClusterPolicyEgressRule>,
}

impl Default for ClusterNetworkPolicySpec {
    fn default() -> Self {
        Self {
            tier: PolicyTier::Admin,
            priority: 0,
            subject: AdminPolicySubject::default(),
            ingress: Vec::new(),
            egress: Vec::new(),
        }
    }
}

/// A v1alpha2 ingress rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPolicyIngressRule {
    /// Rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Action.
    pub action: ClusterPolicyAction,
    /// Sources.
    #[serde(default)]
    pub from: Vec<AdminIngressPeer>,
    /// Protocols/ports; absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<ClusterPolicyProtocol>>,
}

/// A v1alpha2 egress rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPolicyEgressRule {
    /// Rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Action.
    pub action: ClusterPolicyAction,
    /// Destinations.
    #[serde(default)]
    pub to: Vec<AdminEgressPeer>,
    /// Protocols/ports; absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<ClusterPolicyProtocol>>,
}

/// One protocol entry: exactly one field set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPolicyProtocol {
    /// TCP, optionally restricted to a port or range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<ProtocolPorts>,
    /// UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<ProtocolPorts>,
    /// SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sctp: Option<ProtocolPorts>,
    /// A named container port of the destination pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_named_port: Option<String>,
}

/// The ports of one protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolPorts {
    /// A port or a range; absent = all ports of the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<ClusterPolicyPort>,
}

/// A port number or range: exactly one field set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPolicyPort {
    /// One port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i32>,
    /// A range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PortRange>,
}

/// An inclusive port range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortRange {
    /// First port.
    pub start: i32,
    /// Last port.
    pub end: i32,
}
