//! Syntax of Kubernetes names: DNS labels and subdomains, label keys and
//! values, IANA service (port) names — with validated newtypes for each.
//!
//! The check functions return the message the apiserver would give, so the
//! validator can attach it to a field path. The newtypes validate on
//! construction (`FromStr`/`TryFrom`) and are what callers should hold once a
//! value is known to be good.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest DNS-1123 label (and DNS-1035 label, label name, label value).
pub const DNS1123_LABEL_MAX_LEN: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;
/// Longest IANA service name (a port name).
pub const IANA_SVC_NAME_MAX_LEN: usize = 15;

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Checks a DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes.
pub fn check_dns1123_label(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if b.len() > DNS1123_LABEL_MAX_LEN {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX_LEN} characters"
        ));
    }
    let ok = !b.is_empty()
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-');
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character".into())
    }
}

/// Checks a DNS-1035 label: `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes.
pub fn check_dns1035_label(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if b.len() > DNS1123_LABEL_MAX_LEN {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX_LEN} characters"
        ));
    }
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && is_lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-');
    if ok {
        Ok(())
    } else {
        Err("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character".into())
    }
}

/// Checks a DNS-1123 subdomain: labels joined by `.`, at most 253 bytes.
pub fn check_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        return Err(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX_LEN} characters"
        ));
    }
    // Each part follows the label grammar; the length of a part is bounded by
    // the whole (the apiserver's regex does not cap single labels here).
    let ok = !s.is_empty()
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && is_lower_alnum(b[0])
                && is_lower_alnum(b[b.len() - 1])
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into())
    }
}

/// Checks a wildcard DNS-1123 subdomain: `*.` followed by a subdomain.
pub fn check_wildcard_dns1123_subdomain(s: &str) -> Result<(), String> {
    match s.strip_prefix("*.") {
        Some(rest) if check_dns1123_subdomain(rest).is_ok() && s.len() <= DNS1123_SUBDOMAIN_MAX_LEN => Ok(()),
        _ => Err("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character".into()),
    }
}

/// The name part of a qualified name (label key): `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn check_qualified_name_part(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if b.len() > DNS1123_LABEL_MAX_LEN {
        return Err(format!(
            "name part must be no more than {DNS1123_LABEL_MAX_LEN} characters"
        ));
    }
    let ok = b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into())
    }
}

/// Checks a label key (a qualified name): optional DNS-subdomain prefix and `/`,
/// then a name of at most 63 characters.
pub fn check_label_key(s: &str) -> Result<(), String> {
    let mut parts = s.splitn(3, '/');
    let first = parts.next().unwrap_or_default();
    match (parts.next(), parts.next()) {
        (None, _) => check_qualified_name_part(first),
        (Some(name), None) => {
            if first.is_empty() {
                return Err("prefix part must be non-empty".into());
            }
            check_dns1123_subdomain(first).map_err(|e| format!("prefix part {e}"))?;
            check_qualified_name_part(name)
        }
        (Some(_), Some(_)) => Err("a qualified name must consist of alphanumeric characters, '-', '_' or '.', with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into()),
    }
}

/// Checks a label value: empty, or at most 63 characters of the qualified-name grammar.
pub fn check_label_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    if s.len() > DNS1123_LABEL_MAX_LEN {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX_LEN} characters"
        ));
    }
    check_qualified_name_part(s).map_err(|_| "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into())
}

/// Checks an IANA service name (a named port): at most 15 characters of
/// `[-a-z0-9]`, at least one letter, no leading/trailing `-`, no `--`.
pub fn check_port_name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err("must contain at least one letter".into());
    }
    if b.len() > IANA_SVC_NAME_MAX_LEN {
        return Err(format!(
            "must be no more than {IANA_SVC_NAME_MAX_LEN} characters"
        ));
    }
    if !b.iter().all(|&c| is_lower_alnum(c) || c == b'-') {
        return Err(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
        );
    }
    if s.contains("--") {
        return Err("must not contain consecutive hyphens".into());
    }
    if !b.iter().any(u8::is_ascii_lowercase) {
        return Err("must contain at least one letter (a-z)".into());
    }
    if b[0] == b'-' || b[b.len() - 1] == b'-' {
        return Err("must not begin or end with a hyphen".into());
    }
    Ok(())
}

/// A string that failed one of the syntax checks of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {message}")]
pub struct NameError {
    /// Which syntax was expected (`DNS label`, `label key`, …).
    pub what: &'static str,
    /// The rejected input.
    pub value: String,
    /// Why it was rejected.
    pub message: String,
}

macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` and wraps it.
            ///
            /// # Errors
            /// A [`NameError`] when `s` does not follow the syntax.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                match $check(&s) {
                    Ok(()) => Ok(Self(s)),
                    Err(message) => Err(NameError { what: $what, value: s, message }),
                }
            }
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_name!(
    /// A DNS-1123 label (a Namespace name, an endpoint hostname, a Service port name).
    DnsLabel, "DNS label", check_dns1123_label
);
checked_name!(
    /// A DNS-1123 subdomain (the name of most objects).
    DnsSubdomain, "DNS subdomain", check_dns1123_subdomain
);
checked_name!(
    /// A label key: optional `prefix/` and a name.
    LabelKey, "label key", check_label_key
);
checked_name!(
    /// A label value (may be empty).
    LabelValue, "label value", check_label_value
);
checked_name!(
    /// An IANA service name: the name of a container port, the target of a named port.
    PortName, "port name", check_port_name
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(check_dns1123_label("a-b-1").is_ok());
        assert!(check_dns1123_label("1abc").is_ok());
        assert!(check_dns1123_label("-a").is_err());
        assert!(check_dns1123_label("a-").is_err());
        assert!(check_dns1123_label("A").is_err());
        assert!(check_dns1123_label("").is_err());
        assert!(check_dns1123_label(&"a".repeat(63)).is_ok());
        assert!(check_dns1123_label(&"a".repeat(64)).is_err());
        assert!(check_dns1035_label("1abc").is_err());
        assert!(check_dns1035_label("abc1").is_ok());
    }

    #[test]
    fn subdomains() {
        assert!(check_dns1123_subdomain("a.b.c").is_ok());
        assert!(check_dns1123_subdomain("a..b").is_err());
        assert!(check_dns1123_subdomain(".a").is_err());
        assert!(check_dns1123_subdomain("a.".repeat(126).trim_end_matches('.')).is_ok());
        assert!(check_dns1123_subdomain(&"a".repeat(254)).is_err());
        assert!(check_wildcard_dns1123_subdomain("*.foo.com").is_ok());
        assert!(check_wildcard_dns1123_subdomain("*.*.foo").is_err());
        assert!(check_wildcard_dns1123_subdomain("f*.foo").is_err());
        assert!(check_wildcard_dns1123_subdomain("*").is_err());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(check_label_key("app").is_ok());
        assert!(check_label_key("kubernetes.io/metadata.name").is_ok());
        assert!(check_label_key("Example.com/x").is_err());
        assert!(check_label_key("/x").is_err());
        assert!(check_label_key("a/b/c").is_err());
        assert!(check_label_key("a_B.c-D").is_ok());
        assert!(check_label_key("_a").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("v1.2_x").is_ok());
        assert!(check_label_value("-v").is_err());
        assert!(check_label_value(&"v".repeat(64)).is_err());
    }

    #[test]
    fn port_names() {
        for ok in ["http", "h2c", "dns-tcp", "a1"] {
            assert!(check_port_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "123",
            "-http",
            "http-",
            "a--b",
            "HTTP",
            "abcdefghijklmnop",
        ] {
            assert!(check_port_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn newtypes_validate() {
        assert!("web".parse::<DnsLabel>().is_ok());
        let e = "Web".parse::<DnsLabel>().unwrap_err();
        assert!(e.to_string().contains("invalid DNS label \"Web\""));
        let k: LabelKey = serde_json::from_str("\"app.kubernetes.io/name\"").unwrap();
        assert_eq!(k.as_str(), "app.kubernetes.io/name");
        assert!(serde_json::from_str::<PortName>("\"--\"").is_err());
    }
}
