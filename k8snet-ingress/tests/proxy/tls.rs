//! TLS: SNI picks the certificate, Host picks the route; redirects;
//! certificates swapped in place.

use crate::support::{
    AcceptAnyCert, Backend, TestCa, curl, get, ingress, load, proxy, service, tables,
};
use k8snet_ingress::proxy::DefaultCertificate;
use k8snet_model::Object;

fn secret(name: &str, (crt, key): &(String, String)) -> String {
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: web}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(crt),
        indent(key)
    )
}

fn objects(ca: &TestCa, a: &Backend, b: &Backend) -> Vec<Object> {
    let mut objects = service("web", "a", &[a.addr], None);
    objects.extend(service("web", "b", &[b.addr], None));
    objects.extend(load(&format!(
        "{}{}{}",
        secret("a-cert", &ca.leaf("a.com")),
        secret("b-cert", &ca.leaf("b.com")),
        ingress(
            "tls",
            "nginx.ingress.kubernetes.io/force-ssl-redirect: \"false\"",
            "  tls:
  - {hosts: [a.com], secretName: a-cert}
  - {hosts: [b.com], secretName: b-cert}
  rules:
  - host: a.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}]}
  - host: b.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: b, port: {number: 80}}}}]}
  - host: plain.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}]}"
        ),
    )));
    objects
}

fn https(p: &k8snet_ingress::proxy::Proxy, host: &str, path: &str) -> (String, String) {
    let port = p.tls_local_addrs()[0].port();
    (
        format!("{host}:{port}:127.0.0.1"),
        format!("https://{host}:{port}{path}"),
    )
}

#[test]
fn sni_picks_the_certificate_and_the_host_header_picks_the_route() {
    let dir = std::env::temp_dir();
    let ca = TestCa::new();
    let ca_file = ca.write(&dir);
    let ca_file = ca_file.to_str().unwrap();
    let (a, b) = (
        Backend::start("a", "127.0.0.1"),
        Backend::start("b", "127.0.0.1"),
    );
    let p = proxy(objects(&ca, &a, &b), true);

    // curl checks the certificate against the URL's name: success means
    // the proxy picked the certificate of the SNI name.
    for (host, want) in [("a.com", "a"), ("b.com", "b")] {
        let (resolve, u) = https(&p, host, "/x");
        let got = curl(&["--cacert", ca_file, "--resolve", &resolve, &u]);
        assert_eq!(
            (got.status, got.backend(), got.version.as_str()),
            (200, want, "2"),
            "{got:?}"
        );
        let got = curl(&["--http1.1", "--cacert", ca_file, "--resolve", &resolve, &u]);
        assert_eq!((got.status, got.version.as_str()), (200, "1.1"));
        assert_eq!(got.field("h:x-forwarded-proto"), Some("https"));
    }
    // SNI a.com (certificate a.com) but Host b.com: routed to b.
    let (resolve, u) = https(&p, "a.com", "/");
    let got = curl(&[
        "--cacert",
        ca_file,
        "--resolve",
        &resolve,
        "-H",
        "Host: b.com",
        &u,
    ]);
    assert_eq!((got.status, got.backend()), (200, "b"), "{got:?}");
    // No certificate for this name and no default one: the handshake fails.
    let (resolve, u) = https(&p, "plain.com", "/");
    assert_eq!(
        curl(&["--cacert", ca_file, "--resolve", &resolve, &u]).status,
        0
    );

    // ssl-redirect (default on) sends plain HTTP to hosts with TLS to HTTPS.
    let got = get(&p, "a.com", "/x?y=1");
    assert_eq!(got.status, 308);
    let tls_port = p.tls_local_addrs()[0].port();
    assert_eq!(
        got.header("location"),
        Some(&*format!("https://a.com:{tls_port}/x?y=1"))
    );
    assert_eq!(
        get(&p, "plain.com", "/").status,
        200,
        "no certificate, no redirect"
    );
    std::fs::remove_file(ca_file).ok();
}

#[test]
fn force_ssl_redirect_applies_without_a_certificate() {
    let a = Backend::start("a", "127.0.0.1");
    let mut objects = service("web", "a", &[a.addr], None);
    objects.extend(load(&ingress(
        "forced",
        "nginx.ingress.kubernetes.io/force-ssl-redirect: \"true\"",
        &crate::support::simple_rule("plain.com", "a"),
    )));
    let p = proxy(objects, true);
    let got = get(&p, "plain.com", "/p");
    assert_eq!(got.status, 308);
    assert!(
        got.header("location")
            .unwrap()
            .starts_with("https://plain.com:")
    );
}

#[test]
fn a_changed_certificate_is_served_at_the_next_handshake() {
    let dir = std::env::temp_dir();
    let (ca1, ca2) = (TestCa::new(), TestCa::new());
    let (f1, f2) = (ca1.write(&dir), ca2.write(&dir));
    let (a, b) = (
        Backend::start("a", "127.0.0.1"),
        Backend::start("b", "127.0.0.1"),
    );
    let p = proxy(objects(&ca1, &a, &b), true);
    let (resolve, u) = https(&p, "a.com", "/");
    let with = |f: &std::path::Path| {
        curl(&["--cacert", f.to_str().unwrap(), "--resolve", &resolve, &u]).status
    };
    assert_eq!((with(&f1), with(&f2)), (200, 0));
    let (router, upstreams) = tables(objects(&ca2, &a, &b));
    p.update(router, upstreams);
    assert_eq!((with(&f1), with(&f2)), (0, 200));
    std::fs::remove_file(f1).ok();
    std::fs::remove_file(f2).ok();
}

/// What a TLS client saw: the server's leaf certificate (DER) and the
/// HTTP/1.1 response to one request with this Host.
struct Seen {
    leaf: Vec<u8>,
    response: String,
}

/// A TLS handshake with `sni` (none when `None`: rustls sends no SNI for
/// an IP address), then `GET /` with `Host: host` over HTTP/1.1.
fn tls_get(p: &k8snet_ingress::proxy::Proxy, sni: Option<&str>, host: &str) -> Seen {
    use std::io::{Read, Write};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = AcceptAnyCert::new(provider.clone());
    let leaf = verifier.seen.clone();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = match sni {
        Some(s) => rustls::pki_types::ServerName::try_from(s.to_string()).unwrap(),
        None => {
            rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into())
        }
    };
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let tcp = std::net::TcpStream::connect(p.tls_local_addrs()[0]).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut out = Vec::new();
    // A failed handshake fails the write: nothing seen.
    if tls
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .is_err()
    {
        return Seen {
            leaf: Vec::new(),
            response: String::new(),
        };
    }
    // The end of the stream may come without close_notify: keep what came.
    let _ = tls.read_to_end(&mut out);
    let leaf = leaf.lock().unwrap().clone();
    Seen {
        leaf,
        response: String::from_utf8_lossy(&out).into_owned(),
    }
}

fn der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[test]
fn unknown_or_missing_sni_gets_the_generated_default_certificate_and_host_routes() {
    let ca = TestCa::new();
    let (a, b) = (
        Backend::start("a", "127.0.0.1"),
        Backend::start("b", "127.0.0.1"),
    );
    let p = proxy(objects(&ca, &a, &b), true);
    let default = p.default_certificate().expect("generated at start");
    let default_der = der(default.chain_pem());
    let a_cert = tls_get(&p, Some("a.com"), "a.com");
    assert_ne!(a_cert.leaf, default_der, "a.com has a Secret of its own");
    assert!(a_cert.response.contains("backend=a"), "{}", a_cert.response);
    for (sni, host, want) in [
        (Some("unknown.example"), "plain.com", "backend=a"),
        (Some("plain.com"), "b.com", "backend=b"),
        (None, "b.com", "backend=b"),
        (None, "plain.com", "backend=a"),
    ] {
        let seen = tls_get(&p, sni, host);
        assert_eq!(
            seen.leaf, default_der,
            "SNI {sni:?}: not the default certificate"
        );
        assert!(
            seen.response.starts_with("HTTP/1.1 200") && seen.response.contains(want),
            "SNI {sni:?}, Host {host}: {}",
            seen.response
        );
    }
    // It is ingress-nginx's fake certificate, self-signed.
    let text = String::from_utf8_lossy(&default_der).into_owned();
    assert!(text.contains("Kubernetes Ingress Controller Fake Certificate"));
    assert!(text.contains("ingress.local"));
}

#[test]
fn a_given_default_certificate_is_served_and_verifies() {
    let dir = std::env::temp_dir();
    let ca = TestCa::new();
    let ca_file = ca.write(&dir);
    let (a, b) = (
        Backend::start("a", "127.0.0.1"),
        Backend::start("b", "127.0.0.1"),
    );
    let (crt, key) = ca.leaf("fallback.example");
    let given = k8snet_ingress::Certificate::from_pem(
        k8snet_model::NsName::new("ingress", "default-tls"),
        crt.clone(),
        key,
    );
    let p = crate::support::proxy_with(objects(&ca, &a, &b), true, |c| {
        c.default_certificate = DefaultCertificate::Given(given.clone());
    });
    assert_eq!(p.default_certificate(), Some(&given));
    // curl verifies the chain and the name: fallback.example has no Secret,
    // so only the default certificate can satisfy it; Host picks the route.
    let (resolve, u) = https(&p, "fallback.example", "/");
    let got = curl(&[
        "--cacert",
        ca_file.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-H",
        "Host: b.com",
        &u,
    ]);
    assert_eq!((got.status, got.backend()), (200, "b"), "{got:?}");
    assert_eq!(tls_get(&p, None, "a.com").leaf, der(crt.as_bytes()));
    std::fs::remove_file(ca_file).ok();
}

#[test]
fn without_a_default_certificate_unknown_names_fail_the_handshake() {
    let ca = TestCa::new();
    let (a, b) = (
        Backend::start("a", "127.0.0.1"),
        Backend::start("b", "127.0.0.1"),
    );
    let p = crate::support::proxy_with(objects(&ca, &a, &b), true, |c| {
        c.default_certificate = DefaultCertificate::Disabled;
    });
    assert!(p.default_certificate().is_none());
    let seen = tls_get(&p, Some("unknown.example"), "a.com");
    assert!(
        seen.leaf.is_empty() && seen.response.is_empty(),
        "{}",
        seen.response
    );
    assert!(
        tls_get(&p, Some("a.com"), "a.com")
            .response
            .contains("backend=a")
    );
}

#[test]
fn an_unusable_given_default_certificate_stops_the_start() {
    let given = k8snet_ingress::Certificate::from_pem(
        k8snet_model::NsName::new("ingress", "broken"),
        "not a certificate",
        "not a key",
    );
    let (router, upstreams) = tables(Vec::new());
    let cfg = k8snet_ingress::proxy::ProxyConfig::new(vec!["127.0.0.1:0".parse().unwrap()])
        .tls_listen(vec!["127.0.0.1:0".parse().unwrap()])
        .default_certificate(DefaultCertificate::Given(given));
    let err = k8snet_ingress::proxy::Proxy::start(cfg, router, upstreams).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("default certificate") && msg.contains("ingress/broken"),
        "{msg}"
    );
}

#[test]
fn a_secret_whose_certificate_is_unusable_falls_back_to_the_default() {
    let a = Backend::start("a", "127.0.0.1");
    let mut objects = service("web", "a", &[a.addr], None);
    objects.extend(load(&format!(
        "{}{}",
        secret(
            "broken",
            &("not a certificate".to_string(), "not a key".to_string())
        ),
        ingress(
            "tls",
            "nginx.ingress.kubernetes.io/force-ssl-redirect: \"false\"",
            "  tls:
  - {hosts: [a.com], secretName: broken}
  rules:
  - host: a.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}]}"
        ),
    )));
    let p = proxy(objects, true);
    let default_der = der(p.default_certificate().unwrap().chain_pem());
    let seen = tls_get(&p, Some("a.com"), "a.com");
    assert_eq!(seen.leaf, default_der);
    assert!(seen.response.contains("backend=a"), "{}", seen.response);
}

/// ingress-nginx (`internal/ingress/controller/store/backend_ssl.go`,
/// `syncSecret`) keeps the last good certificate of a Secret when an
/// update cannot be used ("Error obtaining X.509 certificate", then
/// `return` before `sslStore.Update`). A botched rotation (a key that does
/// not match the certificate: the apiserver accepts it) must not switch a
/// working host to the fake certificate.
#[test]
fn a_broken_secret_update_keeps_the_last_good_certificate() {
    let ca = TestCa::new();
    let (a, b) = (
        Backend::start("a", "127.0.0.1"),
        Backend::start("b", "127.0.0.1"),
    );
    let good = ca.leaf("a.com");
    let p = proxy(objects(&ca, &a, &b), true);
    let before = tls_get(&p, Some("a.com"), "a.com");
    assert!(before.response.contains("backend=a"), "{}", before.response);
    // The same objects, but a-cert now pairs a new certificate with the
    // key of another one.
    let mismatched = (ca.leaf("a.com").0, good.1.clone());
    let mut all = objects(&ca, &a, &b);
    all.retain(|o| !matches!(o, Object::Secret(s) if s.metadata.name == "a-cert"));
    all.extend(load(&secret("a-cert", &mismatched)));
    let (router, upstreams) = tables(all);
    p.update(router, upstreams);
    let after = tls_get(&p, Some("a.com"), "a.com");
    let fake = der(p.default_certificate().unwrap().chain_pem());
    assert!(
        after.leaf != fake,
        "a.com fell back to the fake certificate"
    );
    assert!(
        after.leaf == before.leaf,
        "the last good certificate is kept"
    );
}

/// The same when the Secret breaks before any client asked for its
/// certificate: the update itself parses the one it replaces, so that one
/// is kept; a later good update is taken.
#[test]
fn a_secret_broken_before_its_first_handshake_keeps_its_previous_certificate() {
    let ca = TestCa::new();
    let (a, b) = (
        Backend::start("a", "127.0.0.1"),
        Backend::start("b", "127.0.0.1"),
    );
    let first = objects(&ca, &a, &b);
    let a_cert = |objects: &[Object]| {
        objects
            .iter()
            .find_map(|o| match o {
                Object::Secret(s) if s.metadata.name == "a-cert" => {
                    Some(der(k8snet_ingress::Certificate::from_secret(s)
                        .unwrap()
                        .chain_pem()))
                }
                _ => None,
            })
            .unwrap()
    };
    let good = a_cert(&first);
    let p = proxy(first, true);
    let with_a_cert = |pair: &(String, String)| {
        let mut all = objects(&ca, &a, &b);
        all.retain(|o| !matches!(o, Object::Secret(s) if s.metadata.name == "a-cert"));
        all.extend(load(&secret("a-cert", pair)));
        all
    };
    // A certificate with another certificate's key, before any handshake.
    let broken = (ca.leaf("a.com").0, ca.leaf("other.com").1);
    let (router, upstreams) = tables(with_a_cert(&broken));
    p.update(router, upstreams);
    assert_eq!(tls_get(&p, Some("a.com"), "a.com").leaf, good);
    // A good rotation is served from the next handshake.
    let next = with_a_cert(&ca.leaf("a.com"));
    let rotated = a_cert(&next);
    assert_ne!(rotated, good);
    let (router, upstreams) = tables(next);
    p.update(router, upstreams);
    assert_eq!(tls_get(&p, Some("a.com"), "a.com").leaf, rotated);
}
