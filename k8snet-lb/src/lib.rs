//! # k8snet-lb
//!
//! Kubernetes Service load balancing for one node: Maglev and other
//! consistent hashes, kube-proxy's Service semantics as a plan of plain
//! data, and (feature `linux`) that plan in nftables, updated one Service
//! at a time.
//!
//! - [`hash`]: [`Maglev`](hash::Maglev) exactly as the paper and Envoy build
//!   it (xxHash64 seeds 0/1 of sorted keys, prime size, division-free fill,
//!   weights that hold), plus [`Ring`](hash::Ring), [`Jump`](hash::Jump)
//!   and [`Rendezvous`](hash::Rendezvous) behind
//!   [`ConsistentHash`](hash::ConsistentHash), with
//!   [`balance`](hash::balance) and [`disruption`](hash::disruption).
//! - [`plan`](mod@plan): `(Cluster, NodeContext) → ServiceTable`: per Service port and
//!   IP family, its frontends (ClusterIP, NodePort, externalIPs, load
//!   balancer IPs and source ranges), where each kind of traffic goes
//!   (a pool, reject or drop), masquerading, ClientIP affinity, the cluster
//!   and local endpoint pools (ready, else serving-terminating; topology
//!   hints and `trafficDistribution`), each with a Maglev table; and the
//!   `healthCheckNodePort` answers. Text and JSON.
//! - [`nftables`]: the plan as the table `inet k8snet-lb` (kube-proxy's
//!   layout; endpoint choice by `jhash … mod M seed S` into slot maps
//!   filled from the Maglev tables), and the smallest batch per change.
//! - [`predict`]: where the kernel sends a flow, computed in user space.
//! - [`health`]: kube-proxy's health answers: per `healthCheckNodePort`
//!   (200/503, the local endpoint count as `X-Load-Balancing-Endpoint-Weight`)
//!   and the proxy's `/healthz`/`/livez` ([`health::ProxyHealth`]); with
//!   feature `health`, the HTTP servers that answer them, updated in place
//!   as the plan changes.
//! - `linux` (feature): [`linux::Proxier`] applies it in one transaction per
//!   change in the caller's network namespace and deletes stale UDP
//!   conntrack entries (those not answered by a serving endpoint, as
//!   kube-proxy does). A one-Service update that would take a
//!   frontend (cluster IP and port, external or load balancer IP and port,
//!   node port) another Service owns is refused before anything is sent.
//!
//! ```
//! use k8snet_lb::predict::{Flow, Prediction, predict};
//! use k8snet_lb::{NodeContext, plan};
//! use k8snet_model::{Cluster, Manifests, Protocol};
//!
//! let mut m = Manifests::new();
//! m.load_str("web.yaml", "
//! apiVersion: v1
//! kind: Service
//! metadata: {name: web, namespace: shop}
//! spec: {clusterIP: 198.19.0.20, ports: [{name: http, port: 80, targetPort: 8080}]}
//! ---
//! apiVersion: discovery.k8s.io/v1
//! kind: EndpointSlice
//! metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
//! addressType: IPv4
//! endpoints: [{addresses: [198.18.0.2]}, {addresses: [198.18.0.3]}]
//! ports: [{name: http, port: 8080}]
//! ");
//! assert!(m.errors().is_empty());
//! let table = plan(&Cluster::from_manifests(&m), &NodeContext::new("node-a"));
//! let pool = table.ports[0].cluster_pool.as_ref().unwrap();
//! assert_eq!(pool.slots.len(), 31); // prime, 6+ slots per endpoint
//!
//! // Every node sends this flow to the same endpoint, and we know which.
//! let flow = Flow {
//!     saddr: "198.18.1.7".parse()?, sport: 40_001,
//!     daddr: "198.19.0.20".parse()?, dport: 80,
//!     protocol: Protocol::Tcp,
//! };
//! let Prediction::Endpoint { ip, port: 8080, .. } = predict(&table, &flow) else { panic!() };
//! assert!(ip.to_string().starts_with("198.18.0."));
//!
//! // The nftables table that does it (applied by `linux::Proxier`).
//! let mut layout = k8snet_lb::nftables::Layout::new();
//! let batch = layout.sync(&table)?;
//! assert!(batch.to_string().contains("198.19.0.20 . tcp . 80 : goto svc4-"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Choices
//!
//! - **xxHash64 from `xxhash-rust`** (feature `xxh64` only): no
//!   dependencies, `no_std`, a single function with Envoy's seed argument;
//!   `twox-hash` 2 works too but brings a hasher framework we do not need.
//! - **Kernel slot tables are small primes** ([`plan::SLOT_SIZES`], 6 slots
//!   per endpoint by default): each slot is a map element, and 10,000
//!   Services must load in seconds. A pool's table size changes only when
//!   its endpoint count crosses a step of the ladder.
//! - **Slot maps are shared** by many pools (16-bit windows of 1,024 maps
//!   per family): the kernel looks named sets up by walking a list, so a
//!   map per Service costs seconds at 10,000 Services (see [`nftables`]).
//!
//! ## Crate features
//!
//! - `linux`: [`linux::Proxier`] and [`linux::Conntrack`] (CAP_NET_ADMIN to
//!   run; no C library needed); includes `health`.
//! - `health`: `health::ServiceHealthServer` and `health::ProxyHealthServer`
//!   (hyper on a one-thread tokio runtime; plain sockets, any OS).
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without the backend, docs that name `linux::…` have nothing to point at.
#![cfg_attr(
    not(all(feature = "linux", target_os = "linux")),
    allow(rustdoc::broken_intra_doc_links)
)]

mod error;
mod frontend;
pub mod hash;
pub mod health;
#[cfg(all(feature = "linux", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(feature = "linux")))]
pub mod linux;
pub mod nftables;
pub mod plan;
pub mod predict;

pub use error::{Error, Result};
pub use plan::{NodeContext, ServiceTable, plan, plan_health_check, plan_service};
