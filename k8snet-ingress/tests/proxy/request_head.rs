//! What the proxy makes of a request head before routing: Host header
//! lines (RFC 9112 §3.2) and encoded path separators. Both the fast path
//! and the hyper path are checked.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{Backend, ingress, load, proxy_with, service, simple_rule};

fn raw(p: &k8snet_ingress::proxy::Proxy, bytes: &str) -> String {
    let mut s = TcpStream::connect(p.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(bytes.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `shop.com` → Service shop; a host-less rule → Service any.
fn setup(fast: bool) -> (Backend, Backend, k8snet_ingress::proxy::Proxy) {
    let any = Backend::start("any", "127.0.0.1");
    let shop = Backend::start("shop", "127.0.0.1");
    let mut objects = service("web", "any", &[any.addr], None);
    objects.extend(service("web", "shop", &[shop.addr], None));
    objects.extend(load(&format!(
        "{}{}",
        ingress("shop", "", &simple_rule("shop.com", "shop")),
        ingress(
            "catchall",
            "",
            "  rules:\n  - http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: any, port: {number: 80}}}}]}"
        ),
    )));
    let p = proxy_with(objects, false, |c| c.fast_path = fast);
    (any, shop, p)
}

/// For the fast path on and off: a proxy for `shop.com` with these rules
/// (path, pathType, backend), each to a backend of its own; each request
/// target must reach its backend, which gets the forwarded path `uri`.
fn check_routes(rules: &[(&str, &str, &str)], cases: &[(&str, &str, &str)]) {
    for fast in [true, false] {
        let mut backends = Vec::new();
        let mut objects = Vec::new();
        let mut spec = "  rules:\n  - host: shop.com\n    http:\n      paths:\n".to_string();
        for (path, kind, name) in rules {
            let b = Backend::start(name, "127.0.0.1");
            objects.extend(service("web", name, &[b.addr], None));
            backends.push(b);
            spec.push_str(&format!(
                "      - {{path: {path:?}, pathType: {kind}, backend: {{service: {{name: {name}, port: {{number: 80}}}}}}}}\n"
            ));
        }
        objects.extend(load(&ingress("shop", "", &spec)));
        let p = proxy_with(objects, false, |c| c.fast_path = fast);
        for (target, backend, uri) in cases {
            let got = raw(
                &p,
                &format!("GET {target} HTTP/1.1\r\nHost: shop.com\r\nConnection: close\r\n\r\n"),
            );
            assert!(
                got.contains(&format!("backend={backend}\n"))
                    && got.contains(&format!("\nuri={uri}\n")),
                "fast={fast}: {target} → {got}"
            );
        }
    }
}

/// RFC 9112 §3.2 requires Host of HTTP/1.1 requests only. nginx routes a
/// request without Host to the default server ("If its value does not
/// match any server name, or the request does not contain this header
/// field at all, then nginx will route the request to the default server",
/// nginx.org/en/docs/http/request_processing.html), which in ingress-nginx
/// holds the host-less rules and the catch-all defaultBackend. Health
/// checkers such as HAProxy's `option httpchk` send HTTP/1.0 without Host.
/// The backend gets an empty Host (RFC 9112 §3.2's value for a request
/// without authority; ingress-nginx would send its default server's name,
/// `_`) and no X-Forwarded-Host.
#[test]
fn an_http10_request_without_host_reaches_the_host_less_rules() {
    for fast in [true, false] {
        let (_any, _shop, p) = setup(fast);
        let got = raw(&p, "GET /x HTTP/1.0\r\n\r\n");
        assert!(
            got.contains(" 200 ") && got.contains("backend=any"),
            "fast={fast}: {got}"
        );
        assert!(got.contains("\nh:host=\n"), "fast={fast}: {got}");
        assert!(!got.contains("h:x-forwarded-host"), "fast={fast}: {got}");
        // HTTP/1.1 without Host stays a 400 (RFC 9112 §3.2: MUST).
        let got = raw(&p, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(got.starts_with("HTTP/1.1 400"), "fast={fast}: {got}");
        // So does an empty Host (nginx: "client sent invalid host header").
        let got = raw(&p, "GET /x HTTP/1.0\r\nHost:\r\n\r\n");
        assert!(got.starts_with("HTTP/1.0 400"), "fast={fast}: {got}");
    }
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
/// code to any HTTP/1.1 request message that lacks a Host header field and
/// to any request message that contains more than one Host header field
/// line". nginx: 400, "client sent duplicate host header".
#[test]
fn a_request_with_two_host_headers_is_refused() {
    for fast in [true, false] {
        let (_any, _shop, p) = setup(fast);
        for req in [
            "GET /x HTTP/1.1\r\nHost: other.org\r\nHost: shop.com\r\nConnection: close\r\n\r\n",
            "GET /x HTTP/1.1\r\nHost: shop.com\r\nHost: shop.com\r\nConnection: close\r\n\r\n",
            "GET /x HTTP/1.0\r\nHost: shop.com\r\nHost: other.org\r\n\r\n",
        ] {
            let got = raw(&p, req);
            assert!(got.contains(" 400 "), "fast={fast}: {req:?} → {got}");
            assert!(got.contains("more than one Host"), "fast={fast}: {got}");
        }
    }
}

/// `/public/..%2Fadmin` is `/admin` for nginx and for backends that decode
/// `%2F` first: it is routed by that path and forwarded as `/admin`; an
/// encoded slash that steps nowhere stays encoded in what is forwarded
/// (`/public/group%2Fname`, the way GitLab's API names projects).
#[test]
fn encoded_slashes_are_matched_as_separators_and_kept_when_forwarded() {
    check_routes(
        &[("/", "Prefix", "root"), ("/public", "Prefix", "public")],
        &[
            ("/public/..%2Fadmin", "root", "/admin"),
            ("/public%2F..%2Fadmin?q=1", "root", "/admin?q=1"),
            ("/public/%2e%2e%2fadmin", "root", "/admin"),
            ("/public/group%2fname", "public", "/public/group%2Fname"),
            ("/public/x", "public", "/public/x"),
        ],
    );
}

/// Through the proxy, a rule written with a raw `\` is matched by every
/// spelling of its path (escapes decoded, slashes merged), while the
/// backend still gets the path as the client wrote it; a `%2F` rule is
/// the plain path's rule, and the `%2F` is still forwarded.
#[test]
fn spelled_rules_are_matched_by_their_key_and_forwarded_as_written() {
    check_routes(
        &[
            ("/", "Prefix", "root"),
            ("/x/a\\b", "Prefix", "bs"),
            ("/git/group%2Fname", "ImplementationSpecific", "git"),
        ],
        &[
            ("/x/a\\b", "bs", "/x/a\\b"),
            ("/%78/a\\b/c", "bs", "/%78/a\\b/c"),
            ("/x//a\\%62", "bs", "/x//a\\%62"),
            ("/x/a/b", "root", "/x/a/b"),
            ("/git/group%2fname/x", "git", "/git/group%2Fname/x"),
            ("/git/group/name", "git", "/git/group/name"),
        ],
    );
}

#[test]
fn an_absolute_form_http11_request_without_host_is_refused() {
    for fast in [true, false] {
        let (_any, _shop, p) = setup(fast);
        let got = raw(
            &p,
            "GET http://shop.com/x HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(got.starts_with("HTTP/1.1 400"), "fast={fast}: {got}");
    }
}

#[test]
fn a_raw_backslash_cannot_step_out_of_a_prefix() {
    check_routes(
        &[("/", "Prefix", "root"), ("/public", "Prefix", "public")],
        &[("/public/..\\admin", "root", "/admin")],
    );
}

/// What the proxy does with a raw backslash: a separator, as `%5C` (nginx
/// on Linux takes it as an ordinary character, and answers such requests;
/// a backend may read it as a separator): `/public/..\admin` is routed and
/// forwarded as `/admin`; one that steps nowhere is forwarded as written.
/// An absolute-form target with a Host line is still routed by its
/// authority, and an HTTP/1.0 one without Host too.
#[test]
fn a_raw_backslash_is_a_separator_and_absolute_targets_keep_working() {
    for fast in [true, false] {
        let (_any, _shop, p) = setup(fast);
        for (req, want) in [
            (
                "GET /x/..\\y HTTP/1.1\r\nHost: shop.com\r\nConnection: close\r\n\r\n",
                "backend=shop\n",
            ),
            (
                "GET /x/..\\y HTTP/1.1\r\nHost: shop.com\r\nConnection: close\r\n\r\n",
                "\nuri=/y\n",
            ),
            (
                "GET /a\\b HTTP/1.1\r\nHost: shop.com\r\nConnection: close\r\n\r\n",
                "\nuri=/a\\b\n",
            ),
            (
                "GET http://shop.com/x HTTP/1.1\r\nHost: other.org\r\nConnection: close\r\n\r\n",
                "backend=shop\n",
            ),
            ("GET http://shop.com/x HTTP/1.0\r\n\r\n", "backend=shop\n"),
        ] {
            let got = raw(&p, req);
            assert!(
                got.contains(" 200 ") && got.contains(want),
                "fast={fast}: {req:?} → {got}"
            );
        }
    }
}

/// A raw backslash in a path without dot segments is forwarded as the
/// client wrote it (as nginx does), on both paths.
#[test]
fn a_backslash_without_dots_is_forwarded_as_written() {
    let mut bad = Vec::new();
    for fast in [true, false] {
        let (_any, _shop, p) = setup(fast);
        for (target, want) in [
            ("/a\\", "\nuri=/a\\\n"),
            ("/a/\\b", "\nuri=/a/\\b\n"),
            ("/a\\\\b", "\nuri=/a\\\\b\n"),
        ] {
            let got = raw(
                &p,
                &format!("GET {target} HTTP/1.1\r\nHost: shop.com\r\nConnection: close\r\n\r\n"),
            );
            if !(got.contains(" 200 ") && got.contains(want)) {
                let uri = got
                    .lines()
                    .find(|l| l.starts_with("uri="))
                    .unwrap_or("?")
                    .to_string();
                bad.push(format!("fast={fast}: {target:?} → {uri}"));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
