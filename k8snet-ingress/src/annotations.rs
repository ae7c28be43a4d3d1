//! ingress-nginx annotations parsed into typed [`Settings`].
//!
//! Only the annotations under [`NGINX_PREFIX`] are read: they are the
//! ones migrating users carry. Every other `nginx.ingress.kubernetes.io/`
//! key is reported as unsupported, once per Ingress, instead of being
//! silently ignored. Annotations outside that prefix belong to other
//! tools (kubectl, cert-manager, …) and are not ours to judge.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use k8snet_model::StringMap;

/// The prefix of ingress-nginx annotations.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// ingress-nginx's default `proxy-body-size` (nginx's `client_max_body_size`).
pub const DEFAULT_BODY_SIZE: u64 = 1024 * 1024;
/// ingress-nginx's default `proxy-connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// ingress-nginx's default `proxy-read-timeout` and `proxy-send-timeout`.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(60);
/// ingress-nginx's default affinity cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";

/// The settings an Ingress's annotations give its routes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// `rewrite-target`: the path the backend sees, with `$1`…`$9`
    /// replaced by the capture groups of a regex path.
    pub rewrite_target: Option<String>,
    /// `use-regex` (or implied by `rewrite-target`): ImplementationSpecific
    /// paths are regular expressions.
    pub use_regex: bool,
    /// `ssl-redirect` (default true): plain-HTTP requests to a host that
    /// has a certificate are redirected to HTTPS with 308.
    pub ssl_redirect: bool,
    /// `force-ssl-redirect`: redirect even when the host has no certificate.
    pub force_ssl_redirect: bool,
    /// `backend-protocol`.
    pub backend_protocol: BackendProtocol,
    /// `affinity: cookie` and its `session-cookie-*` settings.
    pub affinity: Option<CookieAffinity>,
    /// `proxy-body-size`: the largest request body; `None` = unlimited
    /// (`"0"`). Default 1 MiB.
    pub max_body_size: Option<u64>,
    /// `proxy-connect-timeout` (default 5 s).
    pub connect_timeout: Duration,
    /// `proxy-read-timeout`: the longest wait for the backend between two
    /// reads (default 60 s).
    pub read_timeout: Duration,
    /// `proxy-send-timeout`: the longest wait to send to the backend
    /// between two writes (default 60 s).
    pub send_timeout: Duration,
    /// `whitelist-source-range` / `allowlist-source-range`: the client
    /// networks allowed; `None` = everyone. An unparseable list allows no
    /// one (fail closed, as ingress-nginx denies the location).
    pub source_ranges: Option<Vec<IpNet>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            rewrite_target: None,
            use_regex: false,
            ssl_redirect: true,
            force_ssl_redirect: false,
            backend_protocol: BackendProtocol::Http,
            affinity: None,
            max_body_size: Some(DEFAULT_BODY_SIZE),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_IO_TIMEOUT,
            send_timeout: DEFAULT_IO_TIMEOUT,
            source_ranges: None,
        }
    }
}

impl Settings {
    /// Whether a client address passes the source-range allowlist.
    pub fn allows(&self, client: IpAddr) -> bool {
        let client = match client {
            // A v4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        self.source_ranges
            .as_ref()
            .is_none_or(|r| r.iter().any(|n| n.contains(&client)))
    }

    /// Whether paths of kind ImplementationSpecific are regexes.
    pub fn regex_paths(&self) -> bool {
        self.use_regex || self.rewrite_target.is_some()
    }
}

/// How the proxy talks to the backend (`backend-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BackendProtocol {
    /// HTTP/1.1, or h2c when the Service port's `appProtocol` asks for it.
    #[default]
    Http,
    /// HTTP/1.1 over TLS.
    Https,
    /// gRPC: HTTP/2 without TLS (h2c).
    Grpc,
    /// gRPC over TLS (h2 by ALPN).
    Grpcs,
}

/// Cookie-based session affinity (`affinity: cookie`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CookieAffinity {
    /// `session-cookie-name` (default `INGRESSCOOKIE`).
    pub name: String,
    /// `session-cookie-path`; `None`: the matched rule's path (`/` for
    /// regex paths), as ingress-nginx does.
    pub path: Option<String>,
    /// `session-cookie-max-age`, seconds.
    pub max_age: Option<u64>,
    /// `session-cookie-expires`, seconds from now.
    pub expires: Option<u64>,
    /// `session-cookie-secure`.
    pub secure: bool,
    /// `session-cookie-samesite`: `None`, `Lax` or `Strict`.
    pub same_site: Option<String>,
    /// `session-cookie-domain`.
    pub domain: Option<String>,
    /// `session-cookie-change-on-failure`: pick a new endpoint (and
    /// cookie) when the pinned one fails, instead of answering 502.
    pub change_on_failure: bool,
}

impl Default for CookieAffinity {
    fn default() -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.to_string(),
            path: None,
            max_age: None,
            expires: None,
            secure: false,
            same_site: None,
            domain: None,
            change_on_failure: false,
        }
    }
}

/// A problem with one Ingress's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Keys under the prefix that k8snet does not implement.
    Unsupported(Vec<String>),
    /// A supported key with a value that does not parse; the default was
    /// used instead (or, for source ranges, no one is allowed).
    Invalid {
        key: String,
        value: String,
        why: String,
    },
}

/// Parses the ingress-nginx annotations of one Ingress.
pub(crate) fn parse(annotations: &StringMap) -> (Settings, Vec<Problem>) {
    let mut s = Settings::default();
    let mut problems = Vec::new();
    let mut unsupported = Vec::new();
    let mut cookie = CookieAffinity::default();
    let mut affinity = false;
    let mut saw_cookie_setting = false;
    let mut ranges_invalid = false;
    for (key, value) in annotations {
        let Some(name) = key.strip_prefix(NGINX_PREFIX) else {
            continue;
        };
        let v = value.trim();
        let mut bad = |why: &str| {
            problems.push(Problem::Invalid {
                key: key.clone(),
                value: value.clone(),
                why: why.to_string(),
            });
        };
        match name {
            "rewrite-target" => s.rewrite_target = Some(v.to_string()),
            "use-regex" => parse_bool(v).map_or_else(|| bad(BOOL), |b| s.use_regex = b),
            "ssl-redirect" => parse_bool(v).map_or_else(|| bad(BOOL), |b| s.ssl_redirect = b),
            "force-ssl-redirect" => {
                parse_bool(v).map_or_else(|| bad(BOOL), |b| s.force_ssl_redirect = b)
            }
            "backend-protocol" => match v.to_ascii_uppercase().as_str() {
                "HTTP" => s.backend_protocol = BackendProtocol::Http,
                "HTTPS" => s.backend_protocol = BackendProtocol::Https,
                "GRPC" => s.backend_protocol = BackendProtocol::Grpc,
                "GRPCS" => s.backend_protocol = BackendProtocol::Grpcs,
                _ => bad(
                    "supported values are HTTP, HTTPS, GRPC and GRPCS (AUTO_HTTP and FCGI are not); using HTTP",
                ),
            },
            "affinity" => {
                if v == "cookie" {
                    affinity = true;
                } else {
                    bad("the only affinity type is \"cookie\"");
                }
            }
            // Both modes pin a client to an endpoint for as long as that
            // endpoint stays ready; "balanced" rebalancing on scale-up is
            // not done (documented in the crate docs).
            "affinity-mode" => {
                if !matches!(v, "balanced" | "persistent") {
                    bad("expected \"balanced\" or \"persistent\"");
                }
            }
            "session-cookie-name" => {
                saw_cookie_setting = true;
                if is_cookie_token(v) {
                    cookie.name = v.to_string();
                } else {
                    bad("not a valid cookie name");
                }
            }
            "session-cookie-path" => {
                saw_cookie_setting = true;
                if v.starts_with('/') && is_attr_value(v) {
                    cookie.path = Some(v.to_string());
                } else {
                    bad("expected a path starting with '/'");
                }
            }
            "session-cookie-domain" => {
                saw_cookie_setting = true;
                if !v.is_empty() && is_attr_value(v) {
                    cookie.domain = Some(v.to_string());
                } else {
                    bad("not a valid cookie domain");
                }
            }
            "session-cookie-max-age" => {
                saw_cookie_setting = true;
                v.parse()
                    .map_or_else(|_| bad(SECONDS), |n| cookie.max_age = Some(n));
            }
            "session-cookie-expires" => {
                saw_cookie_setting = true;
                v.parse()
                    .map_or_else(|_| bad(SECONDS), |n| cookie.expires = Some(n));
            }
            "session-cookie-secure" => {
                saw_cookie_setting = true;
                parse_bool(v).map_or_else(|| bad(BOOL), |b| cookie.secure = b);
            }
            "session-cookie-samesite" => {
                saw_cookie_setting = true;
                match v {
                    "None" | "Lax" | "Strict" => cookie.same_site = Some(v.to_string()),
                    _ => bad("expected None, Lax or Strict"),
                }
            }
            "session-cookie-change-on-failure" => {
                saw_cookie_setting = true;
                parse_bool(v).map_or_else(|| bad(BOOL), |b| cookie.change_on_failure = b);
            }
            "proxy-body-size" => match parse_size(v) {
                Some(0) => s.max_body_size = None,
                Some(n) => s.max_body_size = Some(n),
                None => bad("expected a size such as 8m, 512k or 0 (unlimited)"),
            },
            "proxy-connect-timeout" => {
                parse_seconds(v).map_or_else(|| bad(SECONDS), |d| s.connect_timeout = d)
            }
            "proxy-read-timeout" => {
                parse_seconds(v).map_or_else(|| bad(SECONDS), |d| s.read_timeout = d)
            }
            "proxy-send-timeout" => {
                parse_seconds(v).map_or_else(|| bad(SECONDS), |d| s.send_timeout = d)
            }
            "whitelist-source-range" | "allowlist-source-range" => match parse_ranges(v) {
                Ok(ranges) => s.source_ranges.get_or_insert_with(Vec::new).extend(ranges),
                Err(why) => {
                    bad(&format!("{why}; allowing no client"));
                    ranges_invalid = true;
                }
            },
            _ => unsupported.push(key.clone()),
        }
    }
    if ranges_invalid {
        // Whatever the other key allowed, a list that failed closes it all.
        s.source_ranges = Some(Vec::new());
    }
    if affinity {
        s.affinity = Some(cookie);
    } else if saw_cookie_setting {
        problems.push(Problem::Invalid {
            key: format!("{NGINX_PREFIX}session-cookie-*"),
            value: String::new(),
            why: format!("ignored without `{NGINX_PREFIX}affinity: cookie`"),
        });
    }
    if !unsupported.is_empty() {
        problems.push(Problem::Unsupported(unsupported));
    }
    (s, problems)
}

const BOOL: &str = "expected \"true\" or \"false\"";
const SECONDS: &str = "expected a whole number of seconds";

/// Go's `strconv.ParseBool`, which ingress-nginx uses.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// nginx sizes: a number with an optional k, m or g suffix.
fn parse_size(v: &str) -> Option<u64> {
    let (digits, mult) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&v[..v.len() - 1], 1 << 20),
        b'g' | b'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Whole seconds, optionally with an `s` suffix.
fn parse_seconds(v: &str) -> Option<Duration> {
    let n = v.strip_suffix('s').unwrap_or(v);
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().map(Duration::from_secs)
}

/// A comma-separated list of CIDRs or single addresses.
fn parse_ranges(v: &str) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let net = part
            .parse::<IpNet>()
            .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("{part:?} is not a CIDR or an IP address"))?;
        out.push(net.trunc());
    }
    if out.is_empty() {
        return Err("the list is empty".into());
    }
    Ok(out)
}

/// An RFC 6265 cookie-name token.
fn is_cookie_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// A cookie attribute value: no control characters and no `;`.
fn is_attr_value(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> StringMap {
        pairs
            .iter()
            .map(|(k, v)| (format!("{NGINX_PREFIX}{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_ingress_nginx() {
        let (s, p) = parse(&StringMap::new());
        assert!(p.is_empty());
        assert_eq!(s, Settings::default());
        assert!(s.ssl_redirect && !s.force_ssl_redirect);
        assert_eq!(s.max_body_size, Some(1 << 20));
        assert_eq!(s.read_timeout, Duration::from_secs(60));
    }

    #[test]
    fn parses_every_supported_annotation() {
        let (s, p) = parse(&annotations(&[
            ("rewrite-target", "/$2"),
            ("use-regex", "true"),
            ("ssl-redirect", "false"),
            ("force-ssl-redirect", "true"),
            ("backend-protocol", "grpcs"),
            ("affinity", "cookie"),
            ("affinity-mode", "persistent"),
            ("session-cookie-name", "route"),
            ("session-cookie-path", "/app"),
            ("session-cookie-max-age", "172800"),
            ("session-cookie-expires", "3600"),
            ("session-cookie-secure", "true"),
            ("session-cookie-samesite", "Strict"),
            ("session-cookie-change-on-failure", "true"),
            ("proxy-body-size", "8m"),
            ("proxy-connect-timeout", "2"),
            ("proxy-read-timeout", "120"),
            ("proxy-send-timeout", "30s"),
            ("whitelist-source-range", "10.0.0.0/8, 192.168.1.7,fd00::/8"),
        ]));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s.rewrite_target.as_deref(), Some("/$2"));
        assert!(s.use_regex && !s.ssl_redirect && s.force_ssl_redirect);
        assert_eq!(s.backend_protocol, BackendProtocol::Grpcs);
        let c = s.affinity.as_ref().unwrap();
        assert_eq!(
            (c.name.as_str(), c.path.as_deref(), c.max_age, c.expires),
            ("route", Some("/app"), Some(172_800), Some(3600))
        );
        assert!(c.secure && c.change_on_failure);
        assert_eq!(c.same_site.as_deref(), Some("Strict"));
        assert_eq!(s.max_body_size, Some(8 << 20));
        assert_eq!(s.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.read_timeout, Duration::from_secs(120));
        assert_eq!(s.send_timeout, Duration::from_secs(30));
        assert!(s.allows("10.1.2.3".parse().unwrap()));
        assert!(s.allows("::ffff:192.168.1.7".parse().unwrap()));
        assert!(s.allows("fd00::1".parse().unwrap()));
        assert!(!s.allows("192.168.1.8".parse().unwrap()));
    }

    #[test]
    fn unsupported_keys_are_reported_together_and_others_ignored() {
        let mut a = annotations(&[("configuration-snippet", "x"), ("canary", "true")]);
        a.insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            "{}".into(),
        );
        let (_, p) = parse(&a);
        assert_eq!(
            p,
            vec![Problem::Unsupported(vec![
                format!("{NGINX_PREFIX}canary"),
                format!("{NGINX_PREFIX}configuration-snippet"),
            ])]
        );
    }

    #[test]
    fn invalid_values_fall_back_and_bad_allowlists_fail_closed() {
        let (s, p) = parse(&annotations(&[
            ("proxy-body-size", "lots"),
            ("backend-protocol", "FCGI"),
            ("allowlist-source-range", "10.0.0.0/8,not-a-net"),
            ("whitelist-source-range", "10.0.0.0/8"),
        ]));
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(s.max_body_size, Some(DEFAULT_BODY_SIZE));
        assert_eq!(s.backend_protocol, BackendProtocol::Http);
        assert_eq!(s.source_ranges, Some(vec![]));
        assert!(!s.allows("10.0.0.1".parse().unwrap()));
        let (s, _) = parse(&annotations(&[("proxy-body-size", "0")]));
        assert_eq!(s.max_body_size, None);
    }

    #[test]
    fn cookie_settings_without_affinity_are_reported() {
        let (s, p) = parse(&annotations(&[("session-cookie-name", "x")]));
        assert!(s.affinity.is_none());
        assert_eq!(p.len(), 1);
    }
}
