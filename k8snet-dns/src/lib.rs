//! # k8snet-dns
//!
//! The cluster DNS zone of the [Kubernetes DNS specification] (schema
//! 1.1.0), built from a [`k8snet_model::Cluster`] and answered at wire
//! speed; forwarding of other names with a cache; with the `linux`
//! feature, a UDP/TCP server on real sockets.
//!
//! - **[`Zone`]**: every record of the specification — `dns-version` TXT,
//!   ClusterIP A/AAAA, SRV for named ports, PTR (IPv4 and full-nibble
//!   IPv6), headless A/AAAA per ready endpoint, endpoint hostnames,
//!   headless SRV, ExternalName CNAME — plus pod records (`pods
//!   disabled|insecure|verified`), the apex SOA and NS. NXDOMAIN versus
//!   NODATA follows CoreDNS's `kubernetes` plugin, every negative answer
//!   carries the SOA, and answers echo the query's case. The choices where
//!   the specification is silent are listed in the `k8s` module's docs
//!   (headless SRV port, SRV weights, …).
//! - **[`Zone::answer`]**: answers are encoded once, when the zone is
//!   built; a query is parsed by hand and answered by copying the stored
//!   bytes behind a patched header and the echoed question, with EDNS,
//!   truncation (TC), FORMERR, NOTIMP, REFUSED and BADVERS. It never
//!   allocates and never panics.
//! - **Updates**: [`Zone::update_service`] rebuilds only one Service's
//!   names, [`Zone::update_namespace`] only one namespace's (its creation
//!   or deletion), [`Zone::update_pods_in`] one namespace's pod records;
//!   each gives the answers a full [`Zone::build`] would. [`LiveZone`]
//!   publishes snapshots to serving threads without pausing them.
//! - **Forwarding** ([`forward`]): the cache and the choice of upstream,
//!   with CoreDNS `forward` + `cache` semantics, as plain logic.
//! - **[`resolv_conf`]**: the pod `resolv.conf` kubelet writes.
//! - **`linux`**: the `server` module (SO_REUSEPORT UDP workers with batched I/O,
//!   TCP with limits and idle timeouts, hot zone swap, SIGTERM) and the
//!   upstream client.
//!
//! ```
//! use k8snet_dns::{AnswerOutcome, Rcode, Zone, ZoneConfig};
//! use k8snet_model::{Cluster, Manifests};
//!
//! let mut m = Manifests::new();
//! m.load_str("shop.yaml", "
//! apiVersion: v1
//! kind: Service
//! metadata: {name: web, namespace: shop}
//! spec: {clusterIP: 198.19.0.20, ports: [{name: http, port: 80}]}
//! ");
//! let zone = Zone::build(&Cluster::from_manifests(&m), &ZoneConfig::default())?;
//!
//! // A query for web.shop.svc.cluster.local A, as a client sends it.
//! let mut query = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
//! for label in ["Web", "shop", "svc", "cluster", "local"] {
//!     query.push(label.len() as u8);
//!     query.extend_from_slice(label.as_bytes());
//! }
//! query.extend_from_slice(&[0, 0, 1, 0, 1]);
//!
//! let mut out = [0u8; 512];
//! let AnswerOutcome::Answered(reply) = zone.answer(&query, &mut out) else { panic!() };
//! assert_eq!((reply.rcode, reply.answers), (Rcode::NoError, 1));
//! assert_eq!(&out[..2], &[0x12, 0x34]);                  // the query's ID
//! assert_eq!(&out[reply.len - 4..reply.len], &[198, 19, 0, 20]);
//!
//! // The same, as text.
//! assert!(zone.dig("web.shop.svc.cluster.local", "A")?.contains("198.19.0.20"));
//! assert!(zone.to_string().contains("_http._tcp.web.shop.svc.cluster.local."));
//! # Ok::<(), k8snet_dns::Error>(())
//! ```
//!
//! ## Crate features
//! - `linux`: the `server` module and the upstream client
//!   (`forward::Forwarder`).
//!
//! [Kubernetes DNS specification]: https://github.com/kubernetes/dns/blob/master/docs/specification.md
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod answer;
mod config;
mod encode;
mod error;
pub mod forward;
mod index;
mod k8s;
mod live;
mod name;
mod node;
mod resolv;
mod text;
mod zone;

#[cfg(all(feature = "linux", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(feature = "linux")))]
pub mod server;

pub use crate::answer::{AnswerOutcome, Rcode, Reply, Transport};
pub use crate::config::{DEFAULT_TTL, DEFAULT_UDP_PAYLOAD, DNS_VERSION_TTL, PodMode, ZoneConfig};
pub use crate::error::Error;
pub use crate::live::{LiveZone, ZoneReader};
pub use crate::resolv::{
    MAX_NAMESERVERS, MAX_SEARCH_CHARS, MAX_SEARCH_DOMAINS, ResolvConf, resolv_conf,
};
pub use crate::zone::{Zone, ZoneStats};

#[cfg(test)]
mod incremental_tests;
#[cfg(test)]
mod tests;

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Zone>();
    send_sync::<LiveZone>();
};
