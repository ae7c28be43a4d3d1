//! Every routing rule, through curl.

use std::collections::BTreeSet;

use crate::support::{Backend, curl, get, ingress, load, proxy, service, simple_rule, tables, url};

#[test]
fn every_kind_of_rule_routes_through_curl() {
    let names = [
        "web",
        "api",
        "health",
        "wild",
        "public",
        "global",
        "img",
        "tenant-default",
        "v1",
    ];
    let backends: Vec<Backend> = names
        .iter()
        .map(|n| Backend::start(n, "127.0.0.1"))
        .collect();
    let mut objects = Vec::new();
    for b in &backends {
        objects.extend(service("web", &b.name, &[b.addr], None));
    }
    objects.extend(load(&format!(
        "{}{}{}",
        ingress(
            "shop",
            "",
            "  defaultBackend: {service: {name: tenant-default, port: {number: 80}}}
  rules:
  - host: shop.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
      - {path: /api/health, pathType: Exact, backend: {service: {name: health, port: {number: 80}}}}
      - {path: /img, pathType: ImplementationSpecific, backend: {service: {name: img, port: {number: 80}}}}
      - {path: /bucket, pathType: Prefix, backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: assets}}}
  - host: api.shop.com
    http: {paths: [{path: /v1, pathType: Prefix, backend: {service: {name: v1, port: {number: 80}}}}]}
  - host: \"*.apps.com\"
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: wild, port: {number: 80}}}}]}"
        ),
        ingress(
            "public",
            "",
            "  rules:\n  - http: {paths: [{path: /public, pathType: Prefix, backend: {service: {name: public, port: {number: 80}}}}]}"
        ),
        ingress("catch-all", "", "  defaultBackend: {service: {name: global, port: {number: 80}}}"),
    )));
    let p = proxy(objects, false);
    for (host, path, want) in [
        ("shop.com", "/", "web"),
        ("shop.com", "/api", "api"),
        ("shop.com", "/api/x?q=1", "api"),
        ("shop.com", "/apix", "web"),
        ("shop.com", "/api/health", "health"),
        ("shop.com", "/api/health/", "api"),
        ("shop.com", "/img/a.png", "img"),
        ("shop.com", "/api/../api/health", "health"), // normalized (curl --path-as-is)
        ("shop.com", "/%61pi/health", "health"),
        ("api.shop.com", "/v1/users", "v1"),
        ("api.shop.com", "/v2", "tenant-default"),
        ("x.apps.com", "/any", "wild"),
        ("y.x.apps.com", "/public/1", "public"),
        ("other.org", "/public", "public"),
        ("other.org", "/nothing", "global"),
    ] {
        let (resolve, u) = url(&p, host, path);
        let got = curl(&["--path-as-is", "--resolve", &resolve, &u]);
        assert_eq!(
            (got.status, got.backend()),
            (200, want),
            "{host}{path}: {got:?}"
        );
    }
    let api = &backends[1];
    assert!(
        api.seen().contains(&"/api/x?q=1".to_string()),
        "{:?}",
        api.seen()
    );
    assert!(
        backends[2].seen().contains(&"/api/health".to_string()),
        "the normalized path is forwarded"
    );
    // Host case and port do not matter.
    let (resolve, u) = url(&p, "shop.com", "/api/x");
    let got = curl(&["--resolve", &resolve, "-H", "Host: SHOP.Com:1234", &u]);
    assert_eq!(got.backend(), "api");
    // A resource backend cannot be proxied, and the answer says so.
    let got = get(&p, "shop.com", "/bucket/a");
    assert_eq!(got.status, 503);
    assert!(
        got.body
            .contains("StorageBucket.k8s.example.com web/assets is a resource backend"),
        "{}",
        got.body
    );
}

#[test]
fn forwarded_headers_are_set_and_hop_by_hop_headers_dropped() {
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&ingress("i", "", &simple_rule("shop.com", "web"))));
    let p = proxy(objects, false);
    let (resolve, u) = url(&p, "shop.com", "/");
    let got = curl(&[
        "--resolve",
        &resolve,
        "-H",
        "X-Forwarded-For: 203.0.113.9",
        "-H",
        "X-Forwarded-Proto: https",
        "-H",
        "X-Forwarded-Host: evil.com",
        "-H",
        "Connection: keep-alive, X-Secret",
        "-H",
        "X-Secret: do-not-forward",
        "-H",
        "Keep-Alive: timeout=5",
        &u,
    ]);
    let port = p.local_addrs()[0].port();
    // As ingress-nginx by default (use-forwarded-headers: false): the
    // client's X-Forwarded-For is not trusted, but passed on aside.
    assert_eq!(got.field("h:x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(got.field("h:x-original-forwarded-for"), Some("203.0.113.9"));
    assert_eq!(got.field("h:x-forwarded-proto"), Some("http"));
    assert_eq!(
        got.field("h:x-forwarded-host"),
        Some(&*format!("shop.com:{port}"))
    );
    assert_eq!(got.field("h:x-forwarded-port"), Some(&*port.to_string()));
    assert_eq!(got.field("h:x-real-ip"), Some("127.0.0.1"));
    assert_eq!(got.field("h:host"), Some(&*format!("shop.com:{port}")));
    assert_eq!(got.field("h:x-secret"), None);
    assert_eq!(got.field("h:keep-alive"), None);
    assert_eq!(got.field("version"), Some("HTTP/1.1"));
}

#[test]
fn rewrite_target_uses_the_regex_capture_groups() {
    let b = Backend::start("rw", "127.0.0.1");
    let mut objects = service("web", "rw", &[b.addr], None);
    objects.extend(load(&ingress(
        "rewrite",
        "nginx.ingress.kubernetes.io/use-regex: \"true\", nginx.ingress.kubernetes.io/rewrite-target: /$2",
        "  rules:\n  - host: rewrite.bar.com\n    http: {paths: [{path: \"/something(/|$)(.*)\", pathType: ImplementationSpecific, backend: {service: {name: rw, port: {number: 80}}}}]}",
    )));
    let p = proxy(objects, false);
    for (path, want) in [
        ("/something", "/"),
        ("/something/new?x=1", "/new?x=1"),
        ("/something/a/b", "/a/b"),
    ] {
        let got = get(&p, "rewrite.bar.com", path);
        assert_eq!(got.field("uri"), Some(want), "{path}: {got:?}");
    }
    assert_eq!(get(&p, "rewrite.bar.com", "/other").status, 404);
}

#[test]
fn a_reload_changes_routes_for_the_next_request() {
    let (one, two) = (
        Backend::start("one", "127.0.0.1"),
        Backend::start("two", "127.0.0.1"),
    );
    let mut base = service("web", "one", &[one.addr], None);
    base.extend(service("web", "two", &[two.addr], None));
    let mut first = base.clone();
    first.extend(load(&ingress("i", "", &simple_rule("shop.com", "one"))));
    let p = proxy(first, false);
    assert_eq!(get(&p, "shop.com", "/").backend(), "one");
    let mut second = base;
    second.extend(load(&ingress("i", "", &simple_rule("shop.com", "two"))));
    let (router, upstreams) = tables(second);
    p.update(router, upstreams);
    assert_eq!(get(&p, "shop.com", "/").backend(), "two");
}

#[test]
fn cookie_affinity_pins_a_client_to_one_endpoint() {
    let (a, b) = (
        Backend::start("a", "127.0.0.1"),
        Backend::start("b", "127.0.0.1"),
    );
    let mut objects = service("web", "pair", &[a.addr, b.addr], None);
    objects.extend(load(&ingress(
        "sticky",
        "nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/session-cookie-name: route, nginx.ingress.kubernetes.io/session-cookie-max-age: \"60\"",
        &simple_rule("shop.com", "pair"),
    )));
    let p = proxy(objects, false);
    // Without the cookie, requests take turns (and each gets a cookie).
    let first = get(&p, "shop.com", "/");
    let set_cookie = first.header("set-cookie").expect("a cookie").to_string();
    assert!(
        set_cookie.starts_with("route=")
            && set_cookie.contains("Max-Age=60")
            && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let second = get(&p, "shop.com", "/");
    assert_ne!(first.backend(), second.backend());
    // With it, every request goes to the same endpoint, and no new cookie.
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let (resolve, u) = url(&p, "shop.com", "/");
    for _ in 0..6 {
        let got = curl(&["--resolve", &resolve, "-b", &cookie, &u]);
        assert_eq!(got.backend(), first.backend());
        assert_eq!(got.header("set-cookie"), None);
    }
}

#[test]
fn source_ranges_allow_or_refuse_clients() {
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&format!(
        "{}{}",
        ingress(
            "closed",
            "nginx.ingress.kubernetes.io/whitelist-source-range: \"10.0.0.0/8\"",
            &simple_rule("closed.com", "web")
        ),
        ingress(
            "open",
            "nginx.ingress.kubernetes.io/whitelist-source-range: \"10.0.0.0/8, 127.0.0.0/8\"",
            &simple_rule("open.com", "web")
        ),
    )));
    let p = proxy(objects, false);
    let got = get(&p, "closed.com", "/");
    assert_eq!(got.status, 403);
    assert!(
        got.body
            .contains("client 127.0.0.1 is not in the source ranges of Ingress web/closed"),
        "{}",
        got.body
    );
    assert_eq!(get(&p, "open.com", "/").status, 200);
}

#[test]
fn backend_connections_are_kept_alive_and_reused() {
    let b = Backend::start("web", "127.0.0.1");
    let mut objects = service("web", "web", &[b.addr], None);
    objects.extend(load(&ingress("i", "", &simple_rule("shop.com", "web"))));
    let p = proxy(objects, false);
    for _ in 0..20 {
        assert_eq!(get(&p, "shop.com", "/").status, 200);
    }
    let conns = b.connections.load(std::sync::atomic::Ordering::SeqCst);
    // Each of the 2 workers keeps its own pool.
    assert!(
        (1..=2).contains(&conns),
        "20 requests one after the other need at most one backend connection per worker, not {conns}"
    );
    let distinct: BTreeSet<String> = b.seen().into_iter().collect();
    assert_eq!(distinct.len(), 1);
}

/// The affinity cookie's `Path` is one the browser sends back on the
/// requests that reach the rule (RFC 6265 §5.1.4 path-match on the path
/// as the client spells it): `/api` for a Prefix `/api/` (which `/api`
/// reaches), `/app` for `/%61pp`, `/` for `/a%5Cb` (reached by `/a%5cb`),
/// `/git` for `/git/group%2Fname` (reached by `/git/group/name` and by
/// `/git/group%2fname`, nginx decoding `%2F` before matching).
#[test]
fn the_affinity_cookie_path_covers_the_requests_of_its_rule() {
    let b = Backend::start("a", "127.0.0.1");
    let mut objects = service("web", "one", &[b.addr], None);
    let rule = |p: &str, ty: &str| {
        format!(
            "      - {{path: \"{p}\", pathType: {ty}, backend: {{service: {{name: one, port: {{number: 80}}}}}}}}\n"
        )
    };
    objects.extend(load(&ingress(
        "sticky",
        "nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/session-cookie-name: route",
        &format!(
            "  rules:\n  - host: shop.com\n    http:\n      paths:\n{}{}{}{}",
            rule("/api/", "Prefix"),
            rule("/%61pp", "Prefix"),
            rule("/a%5Cb", "Exact"),
            rule("/git/group%2Fname", "ImplementationSpecific"),
        ),
    )));
    let p = proxy(objects, false);
    // RFC 6265 §5.1.4.
    let path_matches = |cookie: &str, request: &str| {
        request == cookie
            || (request.starts_with(cookie)
                && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
    };
    let mut bad = Vec::new();
    for (request, want) in [
        ("/api", "/api"),
        ("/api/x", "/api"),
        ("/app/x", "/app"),
        ("/a%5cb", "/"),
        ("/a%5Cb", "/"),
        ("/git/group/name", "/git"),
        ("/git/group%2fname/x", "/git"),
    ] {
        let got = get(&p, "shop.com", request);
        let cookie = got.header("set-cookie").unwrap_or_default().to_string();
        let path = cookie
            .split("; ")
            .find_map(|a| a.strip_prefix("Path="))
            .unwrap_or("?");
        if got.status != 200 || path != want || !path_matches(path, request) {
            bad.push(format!("{request}: {} {cookie:?}", got.status));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
