//! # k8snet-policy
//!
//! NetworkPolicy (and AdminNetworkPolicy tiers) compiled into a fast evaluator with explanations; the `linux` feature enforces it in nftables.
//!
//! **Status:** this crate is a placeholder in the k8snet workspace; its API lands
//! with the issue that builds it. It exports nothing yet.
//!
//! ```
//! // Nothing to call yet: the crate only reserves its place in the workspace.
//! assert!(!k8snet_policy::CRATE_NAME.is_empty());
//! ```

/// The crate's name, so that the placeholder has one documented item.
pub const CRATE_NAME: &str = "k8snet-policy";
