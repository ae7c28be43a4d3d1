//! # k8snet-model
//!
//! Typed Kubernetes networking resources, label selectors, apiserver-grade
//! defaulting and validation, manifest loading and an indexed [`Cluster`]
//! snapshot: the foundation every other k8snet crate builds on.
//!
//! - **Resources** ([`Namespace`], [`Node`], [`Pod`], [`Service`],
//!   [`EndpointSlice`], [`Ingress`], [`IngressClass`], TLS [`Secret`],
//!   [`NetworkPolicy`], [`AdminNetworkPolicy`],
//!   [`BaselineAdminNetworkPolicy`], [`ClusterNetworkPolicy`]) with every
//!   field a networking component reads; closed sets are enums.
//! - **Loading** ([`Manifests`]): files, directories, stdin; YAML streams and
//!   JSON; `kind: List`. Each object is decoded, [defaulted](apply_defaults)
//!   and [validated](validate()); every problem is an [`Error`] that names the
//!   file, line, object and field path. Unknown kinds are skipped with a
//!   [`Warning`]. Validation is the apiserver's, with IP addresses and CIDRs
//!   parsed as under its `StrictIPCIDRValidation` feature (no IPv4 leading
//!   zeros, no IPv4-mapped IPv6, no CIDR bits beyond the prefix where the
//!   apiserver checks that); [`LoadOptions`] can accept
//!   loopback and link-local endpoint addresses with a warning instead
//!   ([`LocalEndpoints::Warn`]), for serving on a developer's machine.
//! - **Selectors**: [`LabelSelector`] compiles to a [`Selector`] that matches
//!   without allocating.
//! - **The snapshot** ([`Cluster`]): objects indexed for the data planes,
//!   updated incrementally from watch events ([`Event`]); invalid updates
//!   are refused and change nothing. [`Cluster::derive_missing_endpoint_slices`]
//!   writes the EndpointSlices the controller would for manifests that
//!   carry none.
//!
//! ```
//! use k8snet_model::{Cluster, Manifests, NsName};
//!
//! let mut manifests = Manifests::new();
//! manifests.load_str("shop.yaml", r#"
//! apiVersion: v1
//! kind: Service
//! metadata: {name: web, namespace: shop}
//! spec:
//!   clusterIP: 198.19.0.20
//!   selector: {app: web}
//!   ports: [{name: http, port: 80, targetPort: 8080}]
//! ---
//! apiVersion: v1
//! kind: Service
//! metadata: {name: bad, namespace: shop}
//! spec:
//!   ports: [{name: a, port: 80}, {name: a, port: 0}]
//! "#);
//! // The bad Service is reported with every error, and left out.
//! let errors: Vec<String> = manifests.errors().iter().map(|e| e.to_string()).collect();
//! assert_eq!(errors.len(), 2, "{errors:#?}");
//! assert!(errors[0].starts_with("shop.yaml:10: Service shop/bad: spec.ports[1]"), "{errors:#?}");
//!
//! let cluster = Cluster::from_manifests(&manifests);
//! let web = cluster.service(&NsName::new("shop", "web")).unwrap();
//! assert_eq!(web.spec.ports[0].protocol, Some(k8snet_model::Protocol::Tcp)); // defaulted
//! assert!(cluster.service_by_ip("198.19.0.20".parse()?).is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Crate features
//! - `k8s-openapi`: `TryFrom`/`From` conversions with the `k8s-openapi`
//!   types (the [`openapi`] module). Enable a `k8s-openapi` version feature
//!   in your own crate.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Errors carry the file, the object and the field path so a user can act on
// them; they are rare and never on a per-packet path, so their size is fine.
#![allow(clippy::result_large_err)]

pub mod adminpolicy;
mod cluster;
pub mod core;
pub mod defaults;
pub mod discovery;
pub mod endpoints;
mod error;
mod json;
mod load;
pub mod meta;
pub mod names;
pub mod networking;
mod object;
#[cfg(feature = "k8s-openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "k8s-openapi")))]
pub mod openapi;
pub mod selector;
pub mod validate;
mod yaml;

pub use crate::adminpolicy::*;
pub use crate::cluster::{Change, Cluster, Event, IpClaim, NsName};
pub use crate::core::*;
pub use crate::defaults::apply_defaults;
pub use crate::discovery::*;
pub use crate::error::{Error, FieldError, FieldErrorKind, Location};
pub use crate::load::{
    LoadOptions, Loaded, LocalEndpoints, MANIFEST_EXTENSIONS, Manifests, Skipped, Warning,
};
pub use crate::meta::{ObjectMeta, Resource, StringMap};
pub use crate::networking::*;
pub use crate::object::{Kind, Object, ObjectRef};
pub use crate::selector::{LabelSelector, LabelSelectorRequirement, Selector, SelectorOperator};
pub use crate::validate::validate;
