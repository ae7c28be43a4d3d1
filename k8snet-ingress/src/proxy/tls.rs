//! TLS: the server side picks certificates through the live router; the
//! client side (to HTTPS and GRPCS backends) does not verify them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use k8snet_model::NsName;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

use super::Shared;
use crate::error::Error;
use crate::router::Router;
use crate::tls::Certificate;
use rustc_hash::FxHashMap;

/// ring, named explicitly: relying on a process-wide default provider
/// would panic when another crate of the build enables a second one.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration: certificates by SNI from whatever router is
/// current, so a certificate change takes effect on the next handshake
/// without touching open connections; ALPN h2 and http/1.1.
pub(crate) fn server_config(shared: Arc<Shared>) -> Result<Arc<ServerConfig>, Error> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { shared }));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct Resolver {
    shared: Arc<Shared>,
}

impl ResolvesServerCert for Resolver {
    /// The Secret for the SNI name (or the router's default, a TLS block
    /// without hosts), else the proxy's default certificate.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let state = self.shared.state.load();
        let cert = match hello.server_name() {
            Some(sni) => state.router.certificate(sni),
            None => state.router.default_certificate(),
        };
        cert.and_then(|c| self.shared.certs.get(c))
            .or_else(|| self.shared.default_cert.clone())
    }
}

/// Parsed certificates by [`Certificate::fingerprint`], each parsed once
/// (on its first handshake, or when a Secret's content changes), and the
/// last certificate of each Secret that parsed.
///
/// A Secret whose new content cannot be used (a key that does not match
/// its certificate, a broken PEM: the apiserver accepts both) keeps being
/// served with its last good certificate, as ingress-nginx keeps the last
/// good one (`store/backend_ssl.go`, `syncSecret`); the error is logged
/// once, when the change arrives. Only a Secret that never had a usable
/// certificate falls back to the default certificate.
#[derive(Debug, Default)]
pub(crate) struct CertCache {
    inner: Mutex<CertCacheInner>,
}

#[derive(Debug, Default)]
struct CertCacheInner {
    parsed: FxHashMap<u64, Option<Arc<CertifiedKey>>>,
    /// Per Secret: the fingerprint and parsed form of the latest of its
    /// certificates that parsed.
    last_good: FxHashMap<NsName, (u64, Arc<CertifiedKey>)>,
}

impl CertCache {
    fn get(&self, cert: &Certificate) -> Option<Arc<CertifiedKey>> {
        self.lock().resolve(cert)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CertCacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before `next` is served in place of `current`: parses the
    /// certificates of the Secrets whose content changed (the old one
    /// first, if it never served a handshake), so that a broken update is
    /// reported now and its Secret's last good certificate is known.
    pub(crate) fn prepare(&self, current: &Router, next: &Router) {
        let before: FxHashMap<&NsName, &Certificate> =
            current.certificates().map(|c| (c.secret(), &**c)).collect();
        let mut inner = self.lock();
        for cert in next.certificates() {
            let Some(old) = before.get(cert.secret()) else {
                continue; // a new Secret: parsed on its first handshake
            };
            if old.fingerprint() == cert.fingerprint()
                || inner.parsed.contains_key(&cert.fingerprint())
            {
                continue;
            }
            if !inner.last_good.contains_key(cert.secret()) {
                inner.resolve(old);
            }
            inner.resolve(cert);
        }
    }

    /// Forgets certificates no longer in use, and the last good
    /// certificates of Secrets no longer in use.
    pub(crate) fn retain(&self, router: &Router) {
        let fingerprints: HashSet<u64> = router.certificates().map(|c| c.fingerprint()).collect();
        let secrets: HashSet<&NsName> = router.certificates().map(|c| c.secret()).collect();
        let mut inner = self.lock();
        inner.parsed.retain(|k, _| fingerprints.contains(k));
        inner.last_good.retain(|k, _| secrets.contains(k));
    }
}

impl CertCacheInner {
    /// The certificate to serve for `cert`: its parsed form, else the last
    /// good certificate of its Secret.
    fn resolve(&mut self, cert: &Certificate) -> Option<Arc<CertifiedKey>> {
        let fp = cert.fingerprint();
        let parsed = match self.parsed.get(&fp) {
            Some(p) => p.clone(),
            None => {
                let p = match parse(cert) {
                    Ok(k) => Some(Arc::new(k)),
                    Err(e) => {
                        let fallback = if self.last_good.contains_key(cert.secret()) {
                            "its last good certificate is served instead"
                        } else {
                            "the proxy's default certificate (if any) is served instead"
                        };
                        tracing::warn!(secret = %cert.secret(), "unusable certificate: {e}; {fallback}");
                        None
                    }
                };
                self.parsed.insert(fp, p.clone());
                p
            }
        };
        match parsed {
            Some(k) => {
                if self
                    .last_good
                    .get(cert.secret())
                    .is_none_or(|(f, _)| *f != fp)
                {
                    self.last_good
                        .insert(cert.secret().clone(), (fp, k.clone()));
                }
                Some(k)
            }
            None => self.last_good.get(cert.secret()).map(|(_, k)| k.clone()),
        }
    }
}

/// A certificate and key parsed for rustls.
pub(crate) fn parse(cert: &Certificate) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert.chain_pem())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem()).map_err(|e| format!("tls.key: {e}"))?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| e.to_string())
}

/// The name on the generated default certificate (ingress-nginx's).
pub(crate) const DEFAULT_CERT_NAME: &str = "ingress.local";

/// A self-signed certificate for the TLS listeners' default, made at
/// start: ECDSA P-256, ingress-nginx's common name and DNS name.
pub(crate) fn generate_default() -> Result<Certificate, Error> {
    let fail = |e: rcgen::Error| Error::Tls(format!("generate the default certificate: {e}"));
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params =
        rcgen::CertificateParams::new(vec![DEFAULT_CERT_NAME.to_string()]).map_err(fail)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Kubernetes Ingress Controller Fake Certificate",
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Acme Co");
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok(Certificate::from_pem(
        k8snet_model::NsName::new("k8snet-ingress", "generated-default-certificate"),
        cert.pem(),
        key.serialize_pem(),
    ))
}

/// The client configuration for TLS backends, offering `alpn`.
///
/// Backend certificates are not verified, as ingress-nginx does by
/// default (`proxy-ssl-verify: off`): they are usually self-signed pod
/// certificates, and the name to check against is unknown. No SNI is sent
/// (the server name is the endpoint IP).
pub(crate) fn client_config(alpn: &[u8]) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts any certificate, but still checks the handshake signatures
/// (so the session is at least bound to the key that was presented).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
