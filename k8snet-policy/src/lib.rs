//! # k8snet-policy
//!
//! Kubernetes network policy — networking.k8s.io/v1 NetworkPolicy and the
//! cluster-wide tiers of policy.networking.k8s.io (AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy v1alpha1, ClusterNetworkPolicy v1alpha2) —
//! compiled from a [`Cluster`](k8snet_model::Cluster) into a [`PolicySet`]
//! that decides flows in tens of nanoseconds, explains every decision, and
//! renders all-pairs connectivity.
//!
//! ```
//! use k8snet_model::{Cluster, Manifests, Protocol};
//! use k8snet_policy::{Flow, Options, PolicySet, Verdict};
//!
//! let mut m = Manifests::new();
//! m.load_str("shop.yaml", "
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: web, namespace: shop, labels: {app: web}}
//! spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
//! status: {podIP: 198.18.0.2}
//! ---
//! apiVersion: v1
//! kind: Pod
//! metadata: {name: api, namespace: shop, labels: {app: api}}
//! status: {podIP: 198.18.0.3}
//! ---
//! apiVersion: networking.k8s.io/v1
//! kind: NetworkPolicy
//! metadata: {name: web-ingress, namespace: shop}
//! spec:
//!   podSelector: {matchLabels: {app: web}}
//!   ingress: [{from: [{podSelector: {matchLabels: {app: api}}}], ports: [{port: http}]}]
//! ---
//! apiVersion: policy.networking.k8s.io/v1alpha1
//! kind: AdminNetworkPolicy
//! metadata: {name: no-egress-to-metadata}
//! spec:
//!   priority: 10
//!   subject: {namespaces: {}}
//!   egress: [{name: imds, action: Deny, to: [{networks: [169.254.169.254/32]}]}]
//! ");
//! assert!(m.errors().is_empty(), "{:?}", m.errors());
//! let set = PolicySet::compile(&Cluster::from_manifests(&m), &Options::default());
//!
//! let api = "198.18.0.3".parse::<std::net::IpAddr>()?;
//! let web = "198.18.0.2".parse::<std::net::IpAddr>()?;
//! // The named port `http` resolves on the destination pod.
//! assert_eq!(set.verdict(&Flow::new(api, web, Protocol::Tcp, 8080)), Verdict::Allow);
//! assert_eq!(set.verdict(&Flow::new(api, web, Protocol::Tcp, 80)), Verdict::Deny);
//!
//! let imds = "169.254.169.254".parse::<std::net::IpAddr>()?;
//! let why = set.explain(&Flow::new(api, imds, Protocol::Tcp, 80));
//! assert_eq!(
//!     why.to_string(),
//!     "deny: egress from shop/api (198.18.0.3): AdminNetworkPolicy no-egress-to-metadata rule 0 \"imds\" (Deny)"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Semantics
//!
//! - **Directions.** A connection needs the source's egress AND the
//!   destination's ingress. Replies to an allowed connection pass
//!   (connection tracking), so a verdict is about the connection's first
//!   packet. Ingress from the pod's own node (its `hostIPs`/`hostIP` or
//!   its Node's addresses) is always allowed, as the API reference says.
//! - **Address families.** A connection uses one family end to end: a flow
//!   naming a pod only sees the pod's addresses of a family the other side
//!   has too, and a flow between two dual-stack pods named by name is
//!   allowed when both directions allow it over the same family (the
//!   explanation names the family when the two differ).
//! - **`ipBlock` CIDRs** are read as a default apiserver reads them
//!   (`ParseCIDRSloppy`, see
//!   [`parse_cidr_legacy`](k8snet_model::validate::parse_cidr_legacy)):
//!   bits set beyond the prefix are dropped (`10.0.0.1/24` is
//!   `10.0.0.0/24`), IPv4 parts and prefix lengths may have leading zeros
//!   (`010.0.0.0/08` is `10.0.0.0/8`), and `::ffff:10.0.0.0/104` is IPv4
//!   `10.0.0.0/8`; the loader warns about them. A CIDR that cannot be read
//!   (only in an object that skipped validation) fails closed and is
//!   listed by [`PolicySet::errors`].
//! - **Tiers.** Admin (AdminNetworkPolicy, ClusterNetworkPolicy
//!   `tier: Admin`, by priority, first matching rule decides; `Pass` skips
//!   to the next tier) → NetworkPolicy (a pod selected by a policy of that
//!   direction is isolated; the union of the rules admits) → Baseline
//!   (ClusterNetworkPolicy `tier: Baseline` by priority, then the
//!   BaselineAdminNetworkPolicy; only for pods no NetworkPolicy isolates in
//!   that direction) → default allow. Equal priorities are undefined
//!   upstream; the name breaks the tie here, so results are stable.
//! - **NetworkPolicy details** as the API defines them: `policyTypes` (from
//!   the loader's defaulting), empty vs absent `ingress`/`from`/`ports`,
//!   peers with both selectors AND-ed and list items OR-ed, namespace
//!   selectors alone, `ipBlock` with `except`, ports by number, by name
//!   (resolved on the destination pod with a matching protocol) and
//!   `endPort` ranges, TCP/UDP/SCTP (a rule never admits another protocol).
//! - **Admin details.** `namedPort`/`destinationNamedPort` resolve on the
//!   destination pod with the flow's protocol; `networks` match pod
//!   addresses too; `nodes` match the selected nodes' addresses;
//!   `domainNames` match nothing (there is no resolver here); host-network
//!   pods are never subjects or pod peers.
//! - **Open corners** are [`Options`]: whether `ipBlock` matches pod
//!   addresses (default yes, as upstream e2e asserts), how host-network
//!   pods count (default: as node traffic) and whether a pod's traffic to
//!   itself is evaluated (default: always allowed).
//!
//! ## How it is fast
//!
//! Pods are grouped into identities (namespace + pod labels; pods whose
//! named container ports differ are kept apart, so a named port resolves
//! once per identity); peer lists compile to bit sets over identities plus
//! CIDR blocks; each identity gets one flat program per direction holding
//! only the rules of the policies that select it. A verdict is two address
//! lookups and a walk over those few entries, independent of the number
//! of policies in the cluster (about 60 ns at 10,000 pods and 1,000
//! policies; see BENCHMARKS.md).
//! [`PolicySet::apply`] recompiles only the identities a change touches.
//!
//! ## Enforcement (nftables)
//!
//! [`ruleset`] lowers a set to the desired state of table
//! `inet k8snet-policy` for the node namespace (always compiled; no root
//! needed to build or render it); with the `linux` feature, [`enforce`]
//! applies it through k8snet-nft in one transaction. Pods are **routed**
//! by the node (a veth and a /32 route each), so same-node pod-to-pod
//! traffic crosses the `forward` hook; bridged pods are not covered. The
//! two directions are separate base chains on that hook (egress, then
//! ingress; a packet must pass both), each accepting established/related
//! traffic first and then dispatching a pod's address through a verdict
//! map to the chain of its identity's direction: the Admin tier's rules in
//! order, then the NetworkPolicy tier (a jump to each isolating policy's
//! chain, then a counted, optionally logged drop) or the Baseline tier.
//! Peers are named address sets shared by equal peer lists (pods, and
//! `ipBlock` ranges minus their `except`s), named ports a per-pod
//! `address . protocol . port` set; the size is linear in pods, identities
//! and policy rules. Pod → node traffic (input hook) is filtered only with
//! [`RulesetOptions::with_node_input`]. See the [`ruleset`] docs for the
//! layout and its limits.
//!
//! ## Output
//!
//! [`PolicySet::explain`] names the deciding tier, policy and rule of each
//! direction (or isolation, default, an exemption); [`Matrix`] computes the
//! exact allowed protocol/port set of every pair of pods and external
//! address groups, rendered as a table, JSON, CSV or Graphviz dot.

// Without the `linux` feature, the docs' links to `enforce` point nowhere.
#![cfg_attr(
    not(all(feature = "linux", target_os = "linux")),
    allow(rustdoc::broken_intra_doc_links)
)]

mod bitset;
mod compile;
mod connset;
mod error;
mod eval;
mod explain;
mod flow;
mod matrix;
mod nft;
mod options;
mod probe;
mod update;

pub use crate::compile::{PolicySet, Stats};
pub use crate::connset::ConnSet;
pub use crate::error::Error;
pub use crate::explain::{Action, Decision, Explanation, Reason, RuleRef, Tier};
pub use crate::flow::{Endpoint, Flow, Verdict};
pub use crate::matrix::{Cell, Format, IpRange, Matrix, MatrixEndpoint, MatrixOptions, Segment};
#[cfg(all(feature = "linux", target_os = "linux"))]
pub use crate::nft::{Enforcer, enforce};
pub use crate::nft::{RulesetOptions, RulesetStats, TABLE, ruleset};
pub use crate::options::{HostNetwork, Options, SelfTraffic};
pub use crate::probe::{Probe, ProbeResult, parse_probes};
pub use crate::update::Update;

#[cfg(test)]
mod send_sync {
    fn assert<T: Send + Sync>() {}
    #[test]
    fn main_types_are_send_and_sync() {
        assert::<super::PolicySet>();
        assert::<super::Explanation>();
        assert::<super::Matrix>();
        assert::<super::Error>();
    }
}
