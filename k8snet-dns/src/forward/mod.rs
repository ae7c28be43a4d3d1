//! Forwarding names outside the cluster zone, with CoreDNS `forward` +
//! `cache` semantics, split so that the logic runs without sockets:
//!
//! - [`Cache`]: positive and negative answers keyed by (name, type, class,
//!   DO, CD), case-insensitive; TTLs clamped (success 5 s..=3600 s, denial
//!   5 s..=1800 s, as CoreDNS's defaults), counted down on every hit; the
//!   negative TTL is min(SOA TTL, SOA minimum) (RFC 2308). Truncated
//!   replies, errors other than NXDOMAIN and malformed replies (an OPT
//!   outside the additional section among them) are not cached. A reply
//!   replayed to a query that set neither AD nor DO has AD clear (RFC
//!   6840 §5.8), whatever query stored it.
//! - **EDNS** is per hop (RFC 6891 §7): an upstream's OPT record is never
//!   passed on. Cached and relayed replies, SERVFAIL and TC replies carry
//!   our OPT record (our payload size, the query's DO bit) exactly when
//!   the client's query had one, and it counts in the size limit.
//! - [`Upstreams`]: which server to ask first: healthy ones in turn, a
//!   server that failed `max_fails` times in a row is skipped until its
//!   back-off ends (all down: all are tried).
//! - [`alias_query`] and [`merge_alias`]: an ExternalName's CNAME
//!   followed to its target's records, as CoreDNS answers A/AAAA; a
//!   target without records leaves the CNAME with the target's SOA and
//!   rcode (RFC 2308, RFC 6604).
//! - `Forwarder` (feature `linux`): the exchange itself, UDP first and
//!   TCP when the reply is truncated.

mod alias;
mod cache;
mod message;
mod upstreams;

#[cfg(all(feature = "linux", target_os = "linux"))]
mod client;

#[cfg_attr(
    not(all(feature = "linux", target_os = "linux")),
    allow(unused_imports)
)]
pub(crate) use alias::follow;
pub use alias::{alias_query, merge_alias};
pub use cache::{Cache, CacheConfig};
pub use message::{servfail, truncated_reply};
pub use upstreams::Upstreams;

#[cfg(all(feature = "linux", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(feature = "linux")))]
pub use client::{ForwardConfig, Forwarder};
