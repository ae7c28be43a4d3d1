//! # k8snet-ingress
//!
//! Kubernetes Ingress routing, compiled from a [`Cluster`](k8snet_model::Cluster)
//! into a [`Router`] whose lookups cost O(host + path segments) whatever
//! the number of rules, with the ingress-nginx annotations migrating users
//! depend on. The `linux` feature adds the proxy: HTTP/1.1 and HTTP/2,
//! TLS by SNI, WebSocket and gRPC, to Service endpoints.
//!
//! ```
//! use k8snet_ingress::{Backend, ClassSelector, PortRef, Router};
//! use k8snet_model::{Cluster, Manifests};
//!
//! let mut m = Manifests::new();
//! m.load_str("shop.yaml", r#"
//! apiVersion: networking.k8s.io/v1
//! kind: Ingress
//! metadata:
//!   name: shop
//!   namespace: shop
//!   annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 8m}
//! spec:
//!   rules:
//!   - host: shop.example.com
//!     http:
//!       paths:
//!       - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
//!       - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
//!       - {path: /api/health, pathType: Exact, backend: {service: {name: health, port: {number: 8080}}}}
//! "#);
//! assert!(m.errors().is_empty(), "{:?}", m.errors());
//! let router = Router::compile(&Cluster::from_manifests(&m), &ClassSelector::default_class());
//!
//! let route = router.route("Shop.Example.com:443", "/api/v1/orders").unwrap();
//! let Backend::Service(svc) = route.backend() else { unreachable!() };
//! assert_eq!((svc.name.as_str(), &svc.port), ("api", &PortRef::Name("http".into())));
//! assert_eq!(route.settings().max_body_size, Some(8 << 20));
//!
//! // Element-wise prefixes: /apix is not under /api.
//! let web = router.route("shop.example.com", "/apix").unwrap();
//! assert_eq!(web.backend().as_service().unwrap().name, "web");
//! // Exact beats the shorter Prefix; other hosts get nothing (404).
//! assert_eq!(router.route("shop.example.com", "/api/health").unwrap().path(), Some("/api/health"));
//! assert!(router.route("other.example.com", "/").is_none());
//! ```
//!
//! ## Matching rules
//!
//! - **Hosts**: the request's `Host` (or `:authority`) without its port, a
//!   trailing dot or case. An exact rule host is tried first, then a
//!   wildcard `*.foo.com` (exactly one, non-empty label: it matches
//!   `bar.foo.com`, not `foo.com`, `.foo.com` nor `baz.bar.foo.com`), then
//!   host-less rules. When the
//!   host's rules match no path, its `defaultBackend` (below) answers,
//!   else the less specific hosts are tried — the order Gateway API gives
//!   hostnames. (ingress-nginx would answer 404 there instead.)
//! - **Paths**: `Exact` compares the whole path, case-sensitively. `Prefix`
//!   compares `/`-separated elements (`/aaa/bbb` matches `/aaa/bbb/ccc`
//!   but not `/aaa/bbbxyz`; a trailing slash is ignored on either side).
//!   The longest rule wins; an Exact match always covers the whole
//!   request path, so it wins over any Prefix, and of `/foo` and `/foo/`
//!   the longer, `/foo/`, wins. **ImplementationSpecific** is matched as
//!   Prefix — what most controllers do for paths that are not regexes —
//!   except under `use-regex` or `rewrite-target`, where it is a regex as
//!   in ingress-nginx (see below).
//! - **Request paths are normalized first** ([`normalize_path`]):
//!   percent-encoded unreserved characters decoded, `%2F` (and a
//!   backslash, `%5C` or raw) taken as separators, `.`/`..` resolved,
//!   slashes merged — as nginx decodes escapes before it resolves dot
//!   segments — so neither `/%61dmin` nor `/public/..%2Fadmin` slips
//!   past a rule for `/admin`, and `/public/..\admin` is not under
//!   `/public`. Other escapes are compared as written (nginx would decode
//!   them). The proxy forwards the path with the same dot segments
//!   resolved, each remaining separator kept as the client wrote it
//!   (`%2F` stays `%2F`; a path with a raw `\` and no dot segment is
//!   forwarded as written): these are only the bytes the backend gets,
//!   not what rules are matched by.
//! - **Rule paths** other than regexes are matched by their spelling
//!   with the unreserved escapes decoded, hex in upper case and repeated
//!   slashes merged. **`%2F` is a separator for matching**, as in nginx
//!   (which decodes it before it matches locations): an
//!   ImplementationSpecific `/api/group%2Fname` (the apiserver allows
//!   `%2F` there) is the rule `/api/group/name`, reached by
//!   `/api/group/name` and `/api/group%2fname` alike, and two rules that
//!   differ only by it are one rule (the older keeps it; the newer is
//!   reported, [`ReportKind::ShadowedRule`], or outranked as a Prefix
//!   outranks an ImplementationSpecific path). **`%5C` and `\` are
//!   separators only for dot-segment resolution** (nginx on Linux takes
//!   `\` as an ordinary character): a rule spelled with them (`/a%5Cb`,
//!   `/x/a\b`) is a rule of its own, not `/a/b`, reached by the requests
//!   spelled the same way modulo unreserved escapes, hex case, repeated
//!   slashes and the spelling of the backslash (`/a%5cb`, `/%61%5Cb` and
//!   `/a\b` reach `/a%5Cb`; `/%78//a%5C%62` reaches `/x/a\b`), not by
//!   `/a/b`. `%5C` and `\` are **one character** for matching, as nginx
//!   decodes `%5C` before it matches locations: `/a\b` and `/a%5Cb` are
//!   one rule (written twice, the older keeps it and the newer is
//!   reported, [`ReportKind::ShadowedRule`]). Requests are
//!   matched normalized first (every separator a `/`), then — only when
//!   the client spelled a backslash, `%5C` or raw — by that spelling too
//!   ([`Router::route_request`]); the more specific match wins (Exact,
//!   else more elements, the spelled one on a tie). In the spelled
//!   match a Prefix ends at every separator (`/`, `\`, `%5C`), so a
//!   Prefix `/p/a%5Cb` covers `/p/a%5Cb/c`, `/p/a%5Cb%5Cc` and
//!   `/p/a\b\c` alike (not `/p/a%5Cbc`), and one ending with the
//!   separator covers what follows it (`/p/a%5C` covers `/p/a%5Cb`). A
//!   leading `%5C` or `\` is kept too: a rule `/%5Cadmin` is not the rule
//!   `/admin` (nor does the proxy forward a leading `%5C` or `%2F` as a
//!   plain slash). A rule path with a `.`
//!   or `..` segment (`/static/..`, `/static/%2e%2e`) matches nothing,
//!   as in nginx, and is reported ([`ReportKind::UnreachablePath`]).
//!   [`Route::path`], reports and the length a regex competes with use
//!   the path as written.
//! - **Several Ingresses for one host** are merged. When two define the
//!   same host, path and path type, the older one (`creationTimestamp`,
//!   then namespace/name; objects without a timestamp count as newest)
//!   keeps the rule and the other is reported ([`ReportKind::ShadowedRule`]).
//! - **`defaultBackend`**: an Ingress's default backend catches the
//!   requests to *its own hosts* that match none of their paths; the
//!   default backend of an Ingress without host rules (the oldest such)
//!   catches every other request. Otherwise an unmatched request gets 404.
//! - **Backends**: a Service port by number or by name ([`PortRef`], as
//!   written; the proxy resolves it against the Service and its
//!   EndpointSlices), or a resource ([`Backend::Resource`]), which the
//!   proxy cannot forward to and answers with 503.
//! - **TLS**: the SNI name picks the certificate ([`Router::certificate`]:
//!   exact host, then wildcard, then a TLS block without `hosts` as the
//!   default); the Host header picks the route. Secrets must be of type
//!   `kubernetes.io/tls`.
//! - **Classes**: see [`ClassSelector`].
//!
//! ## ingress-nginx annotations
//!
//! Parsed into [`Settings`]: `rewrite-target` (with `$1`…`$9` from the
//! capture groups of a `use-regex` path), `use-regex`, `ssl-redirect`,
//! `force-ssl-redirect`, `backend-protocol` (HTTP, HTTPS, GRPC, GRPCS),
//! `affinity: cookie` with `affinity-mode` and the `session-cookie-*`
//! settings, `proxy-body-size`, `proxy-connect-timeout`,
//! `proxy-read-timeout`, `proxy-send-timeout`, and `whitelist-source-range`
//! (or its newer name `allowlist-source-range`). Differences from
//! ingress-nginx, on purpose:
//! - a regex path (ImplementationSpecific under `use-regex` or
//!   `rewrite-target`) is `(?i)^path`, as ingress-nginx's `~*` location.
//!   After exact paths, regexes and prefixes compete by the length of
//!   their written path, as ingress-nginx orders a host's locations by
//!   descending path length: a regex match is taken only when its written
//!   path is longer than the longest matching Prefix path (the prefix wins
//!   a tie), regexes tried longest first, the first match winning. But a
//!   regex changes only that Ingress's ImplementationSpecific paths, where
//!   ingress-nginx turns *every* path of the host into a case-insensitive
//!   string-prefix regex;
//! - `affinity-mode: balanced` behaves as `persistent`: a client stays on
//!   its endpoint while that endpoint is ready.
//!
//! Every other `nginx.ingress.kubernetes.io/` annotation is reported once
//! per Ingress ([`ReportKind::UnsupportedAnnotations`]); invalid values are
//! reported and replaced by the default, except an invalid source-range
//! list, which allows no one.
//!
//! ## Crate features
//! - `linux`: the proxy ([`proxy`]).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod age;
mod annotations;
mod backend;
mod class;
mod compile;
mod error;
mod host;
mod path;
mod report;
mod route;
mod router;
mod served;
mod sharded;
mod table;
mod tls;

#[cfg(feature = "linux")]
#[cfg_attr(docsrs, doc(cfg(feature = "linux")))]
pub mod proxy;

pub use crate::annotations::{
    BackendProtocol, CookieAffinity, DEFAULT_BODY_SIZE, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_COOKIE_NAME, DEFAULT_IO_TIMEOUT, NGINX_PREFIX, Settings,
};
pub use crate::backend::{Backend, PortRef, ResourceBackend, ServiceBackend};
pub use crate::class::ClassSelector;
pub use crate::error::Error;
pub use crate::path::{MatchKind, normalize_path};
pub use crate::report::{Report, ReportKind};
pub use crate::route::Route;
pub use crate::router::{Router, RouterStats};
pub use crate::served::{ReloadError, Served};
pub use crate::tls::Certificate;
