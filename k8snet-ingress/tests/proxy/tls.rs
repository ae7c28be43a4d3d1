//! TLS: SNI picks the certificate, Host picks the route; redirects;
//! certificates swapped in place.

use crate::support::{Backend, TestCa, curl, get, ingress, load, proxy, service, tables};
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
