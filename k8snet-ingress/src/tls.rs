//! TLS certificates from `kubernetes.io/tls` Secrets, chosen by SNI.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8snet_model::{NsName, SECRET_TYPE_TLS, Secret};

use rustc_hash::FxHasher;

/// A certificate chain and key from a `kubernetes.io/tls` Secret, as PEM.
///
/// The router only selects certificates; parsing them is the TLS layer's
/// business (the proxy parses each one once, on first use, keyed by
/// [`Certificate::fingerprint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    secret: NsName,
    chain_pem: Arc<[u8]>,
    key_pem: Arc<[u8]>,
    fingerprint: u64,
}

impl Certificate {
    /// The certificate of a Secret.
    ///
    /// # Errors
    /// A message when the Secret is not of type `kubernetes.io/tls` or lacks
    /// a decodable `tls.crt` or `tls.key`.
    pub fn from_secret(secret: &Secret) -> Result<Self, String> {
        let key = NsName::new(
            secret.metadata.namespace_or_default(),
            secret.metadata.name.clone(),
        );
        if secret.secret_type.as_deref() != Some(SECRET_TYPE_TLS) {
            return Err(format!(
                "Secret {key} has type {:?}, not {SECRET_TYPE_TLS}",
                secret.secret_type.as_deref().unwrap_or("Opaque")
            ));
        }
        let field = |name: &str| -> Result<Vec<u8>, String> {
            // stringData wins, as the apiserver merges it over data.
            if let Some(s) = secret.string_data.get(name) {
                return Ok(s.as_bytes().to_vec());
            }
            let b64 = secret
                .data
                .get(name)
                .ok_or_else(|| format!("Secret {key} has no {name:?}"))?;
            decode_base64(b64).ok_or_else(|| format!("Secret {key}: {name:?} is not base64"))
        };
        let (chain, private) = (field("tls.crt")?, field("tls.key")?);
        Ok(Self::from_pem(key, chain, private))
    }

    /// A certificate from PEM text (for tests and embedders without Secrets).
    pub fn from_pem(
        secret: NsName,
        chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        let (chain_pem, key_pem): (Vec<u8>, Vec<u8>) = (chain_pem.into(), key_pem.into());
        let mut h = FxHasher::default();
        chain_pem.hash(&mut h);
        key_pem.hash(&mut h);
        Self {
            secret,
            fingerprint: h.finish(),
            chain_pem: chain_pem.into(),
            key_pem: key_pem.into(),
        }
    }

    /// The Secret it came from.
    pub fn secret(&self) -> &NsName {
        &self.secret
    }

    /// The PEM certificate chain (`tls.crt`).
    pub fn chain_pem(&self) -> &[u8] {
        &self.chain_pem
    }

    /// The PEM private key (`tls.key`).
    pub fn key_pem(&self) -> &[u8] {
        &self.key_pem
    }

    /// A hash of the chain and key: equal for equal content, so a parsed
    /// form can be cached across router rebuilds.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// Standard base64 with padding; line breaks and spaces are skipped (as
/// Go's decoder skips newlines). `None` when it is not base64.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b'\r' | b'\n' | b' ' | b'\t' => continue,
            _ => return None,
        };
        if pad > 0 {
            return None; // data after padding
        }
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be padding zeros, and the padding must fit.
    (pad <= 2 && acc == 0 && bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8snet_model::ObjectMeta;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(decode_base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64("aGVs\nbG8h").as_deref(), Some(&b"hello!"[..]));
        assert_eq!(decode_base64("").as_deref(), Some(&b""[..]));
        assert_eq!(decode_base64("aGVsbG8=x"), None);
        assert_eq!(decode_base64("a*=="), None);
    }

    #[test]
    fn only_tls_secrets_with_both_keys_are_certificates() {
        let mut s = Secret {
            metadata: ObjectMeta::namespaced("shop", "cert"),
            secret_type: Some(SECRET_TYPE_TLS.into()),
            ..Secret::default()
        };
        s.data.insert("tls.crt".into(), "Y2VydA==".into());
        assert!(
            Certificate::from_secret(&s)
                .unwrap_err()
                .contains("tls.key")
        );
        s.string_data.insert("tls.key".into(), "key".into());
        let c = Certificate::from_secret(&s).unwrap();
        assert_eq!((c.chain_pem(), c.key_pem()), (&b"cert"[..], &b"key"[..]));
        assert_eq!(c.secret(), &NsName::new("shop", "cert"));
        s.secret_type = None;
        assert!(Certificate::from_secret(&s).unwrap_err().contains("Opaque"));
    }
}
