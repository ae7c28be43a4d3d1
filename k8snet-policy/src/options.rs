//! The corners the Kubernetes API leaves open, as explicit options.
//!
//! Each default is what the upstream conformance tests assert (or, where
//! they assert nothing, what the API documentation and most plugins do);
//! each alternative is what some widely deployed plugin does instead.

/// Evaluation options. `Options::default()` is the upstream-e2e behaviour.
///
/// ```
/// use k8snet_policy::{HostNetwork, Options, SelfTraffic};
/// let mut strict = Options::default();
/// strict.ipblock_matches_pods = false; // Cilium, np-guard
/// strict.self_traffic = SelfTraffic::Evaluate;
/// assert_eq!(Options::default().host_network, HostNetwork::AsNode);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Whether a NetworkPolicy `ipBlock` also matches pod IPs.
    ///
    /// Default `true`: the upstream e2e tests "should allow egress access to
    /// server in CIDR block" (a pod's /32) and "should enforce except clause
    /// while egress access to server in CIDR block" (a /4 around a pod IP,
    /// with the pod excepted) assert it, and Cyclonus and
    /// kube-network-policies agree. `false` is Cilium's behaviour
    /// (cilium/cilium#9209) and np-guard's assumption, and the original intent
    /// (kubernetes/kubernetes#49978): the API reference says ipBlocks "should
    /// be cluster-external IPs".
    ///
    /// ClusterNetworkPolicy/AdminNetworkPolicy `networks` always match pod
    /// IPs: their API says so explicitly.
    pub ipblock_matches_pods: bool,
    /// How pods with `hostNetwork: true` take part.
    pub host_network: HostNetwork,
    /// Whether a pod's traffic to itself is subject to policy.
    pub self_traffic: SelfTraffic,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ipblock_matches_pods: true,
            host_network: HostNetwork::AsNode,
            self_traffic: SelfTraffic::Allow,
        }
    }
}

/// How host-network pods take part in policy. The API leaves this undefined
/// (the concept page, "NetworkPolicy and hostNetwork pods").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HostNetwork {
    /// Host-network pods are not pods for policy: no selector selects them
    /// and their traffic is node traffic, matched only by `ipBlock`s (and
    /// `nodes`/`networks` peers) and allowed into pods on their own node.
    /// The common case, and what OpenShift documents.
    #[default]
    AsNode,
    /// Host-network pods are selected by NetworkPolicy selectors like other
    /// pods (and are subjects of NetworkPolicies) when a flow names them.
    /// AdminNetworkPolicy and ClusterNetworkPolicy still exclude them from
    /// subjects and pod peers, as their API requires. An IP address is never
    /// attributed to a host-network pod (several share the node's address).
    AsPod,
}

/// Whether a pod's connections to itself are subject to policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SelfTraffic {
    /// Always allowed: the concept page says "a pod cannot block access to
    /// itself", the e2e suite ignores loopback, and for ClusterNetworkPolicy
    /// a pod's own IP is exempt (network-policy-api#343, PR #390).
    #[default]
    Allow,
    /// Evaluated like any other flow, as Calico and Antrea did for a pod
    /// reaching itself through its Service (kubernetes/kubernetes#95879).
    Evaluate,
}
