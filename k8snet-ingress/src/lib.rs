//! # k8snet-ingress
//!
//! Ingress route matching; the `linux` feature adds a real HTTP(S) proxy to Service endpoints.
//!
//! **Status:** this crate is a placeholder in the k8snet workspace; its API lands
//! with the issue that builds it. It exports nothing yet.
//!
//! ```
//! // Nothing to call yet: the crate only reserves its place in the workspace.
//! assert!(!k8snet_ingress::CRATE_NAME.is_empty());
//! ```

/// The crate's name, so that the placeholder has one documented item.
pub const CRATE_NAME: &str = "k8snet-ingress";
