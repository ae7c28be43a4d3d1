//! # k8snet-cni
//!
//! The CNI specification (configuration, commands, results, errors, versions), IPAM and the bridge/loopback plugins; the `linux` feature uses netlink.
//!
//! **Status:** this crate is a placeholder in the k8snet workspace; its API lands
//! with the issue that builds it. It exports nothing yet.
//!
//! ```
//! // Nothing to call yet: the crate only reserves its place in the workspace.
//! assert!(!k8snet_cni::CRATE_NAME.is_empty());
//! ```

/// The crate's name, so that the placeholder has one documented item.
pub const CRATE_NAME: &str = "k8snet-cni";
