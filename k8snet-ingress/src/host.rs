//! Host names: what a request's `Host` (or `:authority`, or SNI) is
//! compared as, and the keys rule hosts are stored under.

/// The longest host a rule can name (a DNS subdomain) plus room for a
/// trailing dot; anything longer can only match host-less rules.
pub(crate) const MAX_HOST: usize = 254;

/// Where a rule's host puts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum HostKey {
    /// `foo.example.com`.
    Exact(Box<str>),
    /// `*.example.com`, stored as `example.com`: a request host matches
    /// when it equals this after removing its first label.
    Wildcard(Box<str>),
    /// No host: every request.
    Any,
}

impl HostKey {
    /// The key of a rule host (validated: a DNS subdomain, optionally with
    /// one leading `*.`; lowercased because DNS names compare so).
    pub(crate) fn of_rule(host: Option<&str>) -> Self {
        match host.filter(|h| !h.is_empty()) {
            None => Self::Any,
            Some(h) => {
                let h = h.to_ascii_lowercase();
                match h.strip_prefix("*.") {
                    Some(rest) => Self::Wildcard(rest.into()),
                    None => Self::Exact(h.into()),
                }
            }
        }
    }
}

impl std::fmt::Display for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(h) => f.write_str(h),
            Self::Wildcard(h) => write!(f, "*.{h}"),
            Self::Any => f.write_str("*"),
        }
    }
}

/// Normalizes a request host into `buf`: the port and one trailing dot
/// removed, ASCII lowercased. `None` when it cannot equal any rule host
/// (empty, too long or not ASCII); such requests match host-less rules only.
///
/// Borrows `raw` when it is already in that form (the usual case), else
/// writes into a stack buffer, so the per-request path does not allocate.
pub(crate) fn normalize<'b>(raw: &'b str, buf: &'b mut [u8; MAX_HOST]) -> Option<&'b str> {
    let host = strip_port(raw);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST {
        return None;
    }
    if !host
        .bytes()
        .any(|b| !b.is_ascii() || b.is_ascii_uppercase())
    {
        return Some(host);
    }
    if !host.is_ascii() {
        return None;
    }
    let out = &mut buf[..host.len()];
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    // ASCII in, ASCII out.
    std::str::from_utf8(out).ok()
}

/// A request host as rule hosts are compared with it, but in its own case:
/// the port and one trailing dot removed; `None` when it is empty or too
/// long to equal a rule host. (Case is folded where it is hashed and
/// compared, so the request path copies nothing.)
#[inline]
pub(crate) fn request_host(raw: &str) -> Option<&str> {
    let host = strip_port(raw);
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty() && host.len() <= MAX_HOST).then_some(host)
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`; anything else unchanged.
pub(crate) fn strip_port(raw: &str) -> &str {
    if raw.starts_with('[') {
        return match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        };
    }
    // A last `:` followed by digits only (or nothing) ends the host.
    let b = raw.as_bytes();
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    match b.len().checked_sub(digits + 1) {
        Some(colon) if b[colon] == b':' => raw.get(..colon).unwrap_or(raw),
        _ => raw,
    }
}

/// The parent of a host (its first label removed), the key its wildcard
/// rules are stored under; `None` for a single label, or an empty first
/// label (`.foo.com` is no name `*.foo.com` covers).
#[inline]
pub(crate) fn parent(host: &str) -> Option<&str> {
    // A byte scan: host names are short, and `split_once` costs a
    // searcher set-up and a `memchr` call on the request path.
    let dot = host.bytes().position(|c| c == b'.').filter(|&d| d > 0)?;
    host.get(dot + 1..).filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Option<String> {
        let mut buf = [0u8; MAX_HOST];
        normalize(s, &mut buf).map(String::from)
    }

    #[test]
    fn strips_port_and_trailing_dot_and_lowercases() {
        assert_eq!(
            norm("Foo.Example.COM:8443").as_deref(),
            Some("foo.example.com")
        );
        assert_eq!(norm("foo.example.com.").as_deref(), Some("foo.example.com"));
        assert_eq!(norm("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(norm("").as_deref(), None);
        assert_eq!(norm("bücher.de").as_deref(), None);
        assert_eq!(norm(&"a".repeat(300)).as_deref(), None);
        assert_eq!(norm("foo.com:").as_deref(), Some("foo.com"));
        assert_eq!(norm("foo.com:8x").as_deref(), Some("foo.com:8x"));
        assert_eq!(norm("FOO.com:80:80").as_deref(), Some("foo.com:80"));
    }

    #[test]
    fn wildcard_keys_cover_one_label() {
        assert_eq!(
            HostKey::of_rule(Some("*.Foo.com")),
            HostKey::Wildcard("foo.com".into())
        );
        assert_eq!(HostKey::of_rule(Some("")), HostKey::Any);
        assert_eq!(parent("bar.foo.com"), Some("foo.com"));
        assert_eq!(parent("baz.bar.foo.com"), Some("bar.foo.com"));
        assert_eq!(parent("localhost"), None);
        assert_eq!(parent(".foo.com"), None, "an empty first label");
    }
}
