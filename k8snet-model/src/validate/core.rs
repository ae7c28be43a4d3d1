//! core/v1 Node and Secret (`ValidateNode`, `ValidateSecret`).

use crate::core::{Node, SECRET_TYPE_TLS, Secret};
use crate::meta::StringMap;

use super::seen::FirstSeen;
use super::{Errors, FieldPath, net};

/// Node address types the API defines.
const NODE_ADDRESS_TYPES: &[&str] = &[
    "Hostname",
    "InternalIP",
    "ExternalIP",
    "InternalDNS",
    "ExternalDNS",
];

/// The apiserver's cap on a Secret's data, 1 MiB.
const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// The two keys a `kubernetes.io/tls` Secret must carry.
const TLS_KEYS: [&str; 2] = ["tls.crt", "tls.key"];

pub(super) fn node(node: &Node, errs: &mut Errors) {
    let spec = &node.spec;
    // podCIDRs are legacy fields (IsValidCIDRForLegacyField): host bits,
    // leading zeros and IPv4-mapped spellings are stored with a warning,
    // and families are counted as ParseCIDRSloppy reads them.
    let pod_cidrs = FieldPath::new("spec.podCIDRs");
    let mut families = net::Families::default();
    let mut seen = FirstSeen::new();
    for (i, c) in spec.pod_cidrs.iter().enumerate() {
        let path = pod_cidrs.index(i);
        if let Some(read) = net::legacy_cidr(errs, path, c) {
            families.add(read.net.addr());
        }
        if let Some(first) = seen.repeat_of(c.as_str(), i) {
            errs.duplicate(path, &format!("{c:?}"), pod_cidrs.index(first));
        }
    }
    // A repeated CIDR is also a repeated family: report it once.
    if seen.len() == spec.pod_cidrs.len() {
        let values = spec.pod_cidrs.iter().map(String::as_str);
        net::dual_stack(errs, pod_cidrs, values, &families);
    }
    if let Some(c) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
        match spec.pod_cidrs.first() {
            Some(first) if first != c => errs.invalid(
                "spec.podCIDR",
                format!("{c:?}: must equal spec.podCIDRs[0] ({first:?})"),
            ),
            Some(_) => {}
            None => {
                net::legacy_cidr(errs, "spec.podCIDR", c);
            }
        }
    }
    let addresses = FieldPath::new("status.addresses");
    let mut seen = FirstSeen::new();
    for (i, a) in node.status.addresses.iter().enumerate() {
        let path = addresses.index(i);
        if !NODE_ADDRESS_TYPES.contains(&a.address_type.as_str()) {
            errs.not_supported(path.field("type"), &a.address_type, NODE_ADDRESS_TYPES);
        }
        if a.address.is_empty() {
            errs.required(path.field("address"), "address is required");
        } else if matches!(a.address_type.as_str(), "InternalIP" | "ExternalIP") {
            // Stricter than the apiserver, which takes any string: kube-proxy
            // (`GetNodeHostIPs`) and our consumers read these as IPs, with
            // `ParseIPSloppy` ([`Node::addresses_of`](crate::Node::addresses_of)),
            // so what that parser reads is accepted, a legacy spelling
            // with a warning naming the address read.
            net::legacy_ip(errs, path.field("address"), &a.address);
        }
        let key = (a.address_type.as_str(), a.address.as_str());
        if let Some(first) = seen.repeat_of(key, i) {
            errs.duplicate(
                path,
                &format!("{} {:?}", a.address_type, a.address),
                addresses.index(first),
            );
        }
    }
}

pub(super) fn secret(secret: &Secret, errs: &mut Errors) {
    let mut total = 0usize;
    let data = FieldPath::new("data");
    for (k, v) in &secret.data {
        let path = data.key(k);
        errs.check(path, k, check_secret_key);
        match base64_decoded_len(v) {
            Some(n) => total = total.saturating_add(n),
            None => errs.invalid(
                path,
                format!("value of {k:?} must be base64-encoded (use stringData for plain text)"),
            ),
        }
    }
    let string_data = FieldPath::new("stringData");
    for (k, v) in &secret.string_data {
        errs.check(string_data.key(k), k, check_secret_key);
        total = total.saturating_add(v.len());
    }
    if total > MAX_SECRET_SIZE {
        errs.too_long("data", total, MAX_SECRET_SIZE);
    }
    // stringData is merged into data by the apiserver, so either carries the keys.
    if secret.secret_type.as_deref() == Some(SECRET_TYPE_TLS) {
        for key in TLS_KEYS {
            if !has_key(&secret.data, &secret.string_data, key) {
                errs.required(
                    data.key(key),
                    format!("a {SECRET_TYPE_TLS} Secret must have {key:?} in data or stringData"),
                );
            }
        }
    }
}

fn has_key(data: &StringMap, string_data: &StringMap, key: &str) -> bool {
    data.contains_key(key) || string_data.contains_key(key)
}

/// A ConfigMap/Secret key: `[-._a-zA-Z0-9]+`, at most 253 bytes, not `.`,
/// `..` nor starting with `..` (`IsConfigMapKey`).
fn check_secret_key(k: &str) -> Result<(), String> {
    if k.is_empty() || k.len() > 253 {
        return Err("must be 1 to 253 characters long".into());
    }
    if !k
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'".into(),
        );
    }
    if k == "." || k == ".." || k.starts_with("..") {
        return Err("must not be '.' or '..', nor start with '..'".into());
    }
    Ok(())
}

/// The decoded length of standard, padded base64 (line breaks ignored, as
/// Go's decoder does), or `None` when it is not valid base64.
///
/// Walks the bytes in place rather than collecting the significant ones:
/// Secret values can be large, and this runs for every valid Secret.
fn base64_decoded_len(s: &str) -> Option<usize> {
    let significant = || s.bytes().filter(|&c| c != b'\r' && c != b'\n');
    let len = significant().count();
    if !len.is_multiple_of(4) {
        return None;
    }
    let pad = significant().rev().take_while(|&c| c == b'=').count();
    if pad > 2 {
        return None;
    }
    let ok = significant()
        .take(len - pad)
        .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/');
    ok.then(|| len / 4 * 3 - pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decoded_len(""), Some(0));
        assert_eq!(base64_decoded_len("aGk="), Some(2));
        assert_eq!(base64_decoded_len("aGVsbG8h"), Some(6));
        assert_eq!(base64_decoded_len("aGVs\nbG8h"), Some(6));
        assert_eq!(base64_decoded_len("aGk"), None);
        assert_eq!(base64_decoded_len("a==="), None);
        assert_eq!(base64_decoded_len("a=b="), None);
        assert_eq!(base64_decoded_len("not base64!"), None);
    }

    #[test]
    fn secret_keys() {
        assert!(check_secret_key("tls.crt").is_ok());
        assert!(check_secret_key("..data").is_err());
        assert!(check_secret_key("a/b").is_err());
        assert!(check_secret_key("").is_err());
    }
}
