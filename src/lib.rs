//! # k8snet
//!
//! The data plane of Kubernetes node networking as embeddable Rust crates.
//! This facade re-exports each of them under a short name:
//!
//! | module | crate | what it is |
//! |---|---|---|
//! | [`model`] | `k8snet-model` | typed resources, selectors, validation, manifest loading, the indexed [`model::Cluster`] |
//! | [`policy`] | `k8snet-policy` | NetworkPolicy compiled into a fast evaluator; nftables enforcement |
//! | [`lb`] | `k8snet-lb` | Maglev and the Service proxy semantics; nftables dataplane |
//! | [`dns`] | `k8snet-dns` | the cluster DNS zone and its answers; a UDP/TCP server |
//! | [`cni`] | `k8snet-cni` | the CNI spec, IPAM and plugins; netlink |
//! | [`ingress`] | `k8snet-ingress` | Ingress routing; an HTTP(S) proxy |
//!
//! ```
//! use k8snet::model::Manifests;
//! let mut m = Manifests::new();
//! m.load_str("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n");
//! assert!(m.errors().is_empty());
//! let cluster = k8snet::model::Cluster::from_manifests(&m);
//! let labels = cluster.namespace_labels("shop").unwrap();
//! assert_eq!(labels["kubernetes.io/metadata.name"], "shop");
//! ```

pub use k8snet_cni as cni;
pub use k8snet_dns as dns;
pub use k8snet_ingress as ingress;
pub use k8snet_lb as lb;
pub use k8snet_model as model;
pub use k8snet_policy as policy;
