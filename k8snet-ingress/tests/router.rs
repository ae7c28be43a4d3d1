//! Router semantics beyond the docs' table: hosts, merging, default
//! backends, classes, TLS, annotations, reports.

mod common;

use common::{cluster, dest, ingress, path, router};
use k8snet_ingress::{ClassSelector, MatchKind, ReportKind, Router};
use k8snet_model::NsName;

fn rules(host: Option<&str>, paths: &[(&str, &str, &str)]) -> String {
    let mut s = match host {
        Some(h) => format!("  - host: \"{h}\"\n    http:\n      paths:\n"),
        None => "  - http:\n      paths:\n".to_string(),
    };
    for (p, ty, svc) in paths {
        s.push_str(&path(p, ty, svc));
    }
    s
}

/// Each raw request path (as the client spelled it) reaches the Service
/// named, by `Router::route_request`.
fn reaches(r: &Router, host: &str, cases: &[(&str, &str)]) {
    for (raw, want) in cases {
        let got = r
            .route_request(host, raw)
            .and_then(|x| Some(x.backend().as_service()?.name.to_string()));
        assert_eq!(got.as_deref(), Some(*want), "{raw}");
    }
}

/// The router of two Ingresses for `shop.com` with one rule each
/// (namespace, path, pathType, service): `team-x/old` created in 2024 and
/// `team-y/new` in 2025.
fn older_and_newer(older: (&str, &str, &str, &str), newer: (&str, &str, &str, &str)) -> Router {
    let one = |(ns, path, kind, svc): (&str, &str, &str, &str), name, created| {
        let spec = format!(
            "  rules:\n{}",
            rules(Some("shop.com"), &[(path, kind, svc)])
        );
        ingress(ns, name, Some(created), &spec)
    };
    router(
        &(one(older, "old", "2024-01-01T00:00:00Z") + &one(newer, "new", "2025-01-01T00:00:00Z")),
    )
}

#[test]
fn hosts_exact_then_one_label_wildcard_then_host_less() {
    let spec = format!(
        "  rules:\n{}{}{}",
        rules(Some("foo.bar.com"), &[("/", "Prefix", "exact")]),
        rules(Some("*.bar.com"), &[("/", "Prefix", "wild")]),
        rules(None, &[("/", "Prefix", "any")]),
    );
    let r = router(&ingress("default", "hosts", None, &spec));
    for (host, want) in [
        ("foo.bar.com", "exact"),
        ("FOO.Bar.com:8080", "exact"),
        ("foo.bar.com.", "exact"),
        ("baz.bar.com", "wild"),
        ("bar.com", "any"),         // the wildcard needs one more label
        ("baz.foo.bar.com", "any"), // and exactly one
        ("other.org", "any"),
        ("", "any"),
    ] {
        assert_eq!(dest(&r, host, "/x"), format!("default/{want}:80"), "{host}");
    }
    let route = r.route("baz.bar.com", "/x").unwrap();
    assert_eq!(route.host().as_deref(), Some("*.bar.com"));
    assert_eq!(route.kind(), Some(MatchKind::Prefix));
    assert_eq!(r.route("x.org", "/").unwrap().host(), None);
}

#[test]
fn a_host_without_a_matching_path_falls_through_to_less_specific_rules() {
    let spec = format!(
        "  rules:\n{}{}",
        rules(Some("shop.com"), &[("/api", "Prefix", "api")]),
        rules(None, &[("/", "Prefix", "site")]),
    );
    let r = router(&ingress("default", "fall", None, &spec));
    assert_eq!(dest(&r, "shop.com", "/api/x"), "default/api:80");
    assert_eq!(dest(&r, "shop.com", "/other"), "default/site:80");
}

#[test]
fn default_backends_serve_their_own_hosts_and_host_less_ones_serve_the_rest() {
    let tenant = ingress(
        "a",
        "tenant",
        Some("2024-01-01T00:00:00Z"),
        &format!(
            "  defaultBackend: {{service: {{name: tenant-default, port: {{number: 80}}}}}}\n  rules:\n{}",
            rules(Some("a.com"), &[("/app", "Prefix", "app")])
        ),
    );
    let global = ingress(
        "ops",
        "catch-all",
        Some("2025-01-01T00:00:00Z"),
        "  defaultBackend: {service: {name: not-found, port: {name: http}}}\n",
    );
    let r = router(&(tenant + &global));
    assert_eq!(dest(&r, "a.com", "/app/1"), "a/app:80");
    assert_eq!(dest(&r, "a.com", "/other"), "a/tenant-default:80");
    // The tenant's default does not catch other hosts, although it is older.
    assert_eq!(dest(&r, "b.com", "/app"), "ops/not-found:http");
    assert_eq!(r.stats().ingresses, 2);
}

#[test]
fn ingresses_for_one_host_merge_and_the_oldest_keeps_a_duplicate() {
    let old = ingress(
        "team1",
        "old",
        Some("2023-05-01T10:00:00Z"),
        &format!(
            "  rules:\n{}",
            rules(
                Some("shop.com"),
                &[("/cart", "Prefix", "cart-v1"), ("/", "Prefix", "web")]
            )
        ),
    );
    let new = ingress(
        "team2",
        "new",
        Some("2024-05-01T10:00:00+02:00"),
        &format!(
            "  rules:\n{}",
            rules(
                Some("shop.com"),
                &[
                    ("/cart", "Prefix", "cart-v2"),
                    ("/cart", "Exact", "cart-exact"),
                    ("/pay", "Prefix", "pay")
                ]
            )
        ),
    );
    // Listed newest first: the order of documents must not matter.
    let r = router(&(new + &old));
    assert_eq!(dest(&r, "shop.com", "/cart/1"), "team1/cart-v1:80");
    assert_eq!(dest(&r, "shop.com", "/cart"), "team2/cart-exact:80"); // another pathType is another rule
    assert_eq!(dest(&r, "shop.com", "/pay"), "team2/pay:80");
    assert_eq!(dest(&r, "shop.com", "/"), "team1/web:80");
    let shadowed: Vec<_> = r
        .reports()
        .into_iter()
        .filter(|x| x.kind == ReportKind::ShadowedRule)
        .collect();
    assert_eq!(shadowed.len(), 1, "{shadowed:?}");
    assert_eq!(shadowed[0].ingress, Some(NsName::new("team2", "new")));
    assert!(
        shadowed[0].message.contains("older Ingress team1/old"),
        "{}",
        shadowed[0]
    );
    assert_eq!(r.reports_for(&NsName::new("team2", "new")).len(), 1);
}

#[test]
fn equal_timestamps_break_ties_by_namespace_and_name() {
    let ts = Some("2024-01-01T00:00:00Z");
    let a = ingress(
        "b-ns",
        "x",
        ts,
        &format!(
            "  rules:\n{}",
            rules(Some("t.com"), &[("/", "Prefix", "from-b")])
        ),
    );
    let b = ingress(
        "a-ns",
        "x",
        ts,
        &format!(
            "  rules:\n{}",
            rules(Some("t.com"), &[("/", "Prefix", "from-a")])
        ),
    );
    assert_eq!(dest(&router(&(a + &b)), "t.com", "/"), "a-ns/from-a:80");
}

#[test]
fn service_ports_by_number_or_name_and_resource_backends() {
    let yaml = ingress(
        "media",
        "mixed",
        None,
        "  rules:
  - host: m.com
    http:
      paths:
      - {path: /n, pathType: Prefix, backend: {service: {name: svc, port: {number: 8080}}}}
      - {path: /s, pathType: Prefix, backend: {service: {name: svc, port: {name: grpc}}}}
      - {path: /icons, pathType: ImplementationSpecific, backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: icon-assets}}}",
    );
    let r = router(&yaml);
    assert_eq!(dest(&r, "m.com", "/n"), "media/svc:8080");
    assert_eq!(dest(&r, "m.com", "/s/x"), "media/svc:grpc");
    assert_eq!(
        dest(&r, "m.com", "/icons/a.png"),
        "resource StorageBucket/icon-assets"
    );
    assert_eq!(
        r.route("m.com", "/icons").unwrap().kind(),
        Some(MatchKind::ImplementationSpecific)
    );
    assert_eq!(r.backends().len(), 3);
}

const CLASSES: &str = "
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: k8snet, annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}}
spec: {controller: k8snet.io/ingress}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
";

fn classed(name: &str, class_name: Option<&str>, legacy: Option<&str>) -> String {
    let annotations = legacy.map_or(String::new(), |c| {
        format!(", annotations: {{kubernetes.io/ingress.class: {c}}}")
    });
    let field = class_name.map_or(String::new(), |c| format!("  ingressClassName: {c}\n"));
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: default{annotations}}}\nspec:\n{field}  rules:\n{}",
        rules(Some(&format!("{name}.com")), &[("/", "Prefix", name)])
    )
}

#[test]
fn class_selection_by_name_default_annotation_and_legacy_annotation() {
    let yaml = format!(
        "{CLASSES}{}{}{}{}",
        classed("by-field", Some("nginx"), None),
        classed("legacy", None, Some("k8snet")),
        classed("classless", None, None),
        classed("other", None, Some("traefik")),
    );
    let c = cluster(&yaml);
    let served = |sel: &ClassSelector| {
        let r = Router::compile(&c, sel);
        ["by-field", "legacy", "classless", "other"]
            .into_iter()
            .filter(|n| r.route(&format!("{n}.com"), "/").is_some())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        served(&ClassSelector::default_class()),
        ["legacy", "classless"]
    );
    assert_eq!(
        served(&ClassSelector::named("k8snet")),
        ["legacy", "classless"]
    );
    assert_eq!(served(&ClassSelector::named("nginx")), ["by-field"]);
    assert_eq!(served(&ClassSelector::named("traefik")), ["other"]);

    // Without any default class, "default" serves the class-less ones only.
    let no_default = yaml.replace(
        "ingressclass.kubernetes.io/is-default-class: \"true\"",
        "a: b",
    );
    let c2 = cluster(&no_default);
    let r = Router::compile(&c2, &ClassSelector::default_class());
    assert!(r.route("classless.com", "/").is_some());
    assert!(r.route("legacy.com", "/").is_none());
    assert!(
        Router::compile(&c2, &ClassSelector::named("k8snet"))
            .route("classless.com", "/")
            .is_none()
    );

    // Two defaults: admission would refuse class-less Ingresses.
    let two = yaml.replace("metadata: {name: nginx}", "metadata: {name: nginx, annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}}");
    let r = Router::compile(&cluster(&two), &ClassSelector::named("k8snet"));
    assert!(r.route("classless.com", "/").is_none());
    assert!(r.reports().iter().any(|x| x.kind == ReportKind::Class));
}

#[test]
fn regex_paths_and_rewrite_target_with_capture_groups() {
    let yaml = "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rewrite
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/use-regex: \"true\"
    nginx.ingress.kubernetes.io/rewrite-target: /$2
spec:
  rules:
  - host: rewrite.bar.com
    http:
      paths:
      - {path: /something(/|$)(.*), pathType: ImplementationSpecific, backend: {service: {name: http-svc, port: {number: 80}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: exact, port: {number: 80}}}}
";
    let r = router(yaml);
    for (req, want) in [
        ("/something", "/"),
        ("/something/", "/"),
        ("/something/new", "/new"),
        ("/SOMETHING/new/x", "/new/x"), // ~* is case-insensitive
    ] {
        let route = r.route("rewrite.bar.com", req).unwrap();
        assert_eq!(route.kind(), Some(MatchKind::Regex));
        assert_eq!(route.rewrite(req).as_deref(), Some(want), "{req}");
    }
    assert!(r.route("rewrite.bar.com", "/somethingelse").is_none());
    // A non-regex rule of the same Ingress is rewritten whole; $2 is empty.
    let exact = r.route("rewrite.bar.com", "/exact").unwrap();
    assert_eq!(exact.rewrite("/exact").as_deref(), Some("/"));
}

#[test]
fn an_invalid_regex_is_left_out_and_reported() {
    let yaml = "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad, namespace: default, annotations: {nginx.ingress.kubernetes.io/use-regex: \"true\"}}
spec:
  rules:
  - http:
      paths:
      - {path: \"/(unclosed\", pathType: ImplementationSpecific, backend: {service: {name: a, port: {number: 80}}}}
";
    let r = router(yaml);
    assert!(r.route("", "/(unclosed").is_none());
    assert!(
        r.reports()
            .iter()
            .any(|x| x.kind == ReportKind::InvalidPath)
    );
}

#[test]
fn unsupported_annotations_are_reported_once_per_ingress() {
    let yaml = "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: many
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/configuration-snippet: \"more_set_headers x\"
    nginx.ingress.kubernetes.io/canary: \"true\"
    nginx.ingress.kubernetes.io/proxy-body-size: huge
    cert-manager.io/cluster-issuer: letsencrypt
spec:
  rules:
  - host: a.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: a, port: {number: 80}}}}]}
  - host: b.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: b, port: {number: 80}}}}]}
";
    let r = router(yaml);
    let reports = r.reports();
    let unsupported: Vec<_> = reports
        .iter()
        .filter(|x| x.kind == ReportKind::UnsupportedAnnotations)
        .collect();
    assert_eq!(unsupported.len(), 1, "{reports:#?}");
    assert_eq!(
        unsupported[0].to_string(),
        "Ingress default/many: annotations not supported by k8snet-ingress, ignored: canary, configuration-snippet"
    );
    assert_eq!(
        reports
            .iter()
            .filter(|x| x.kind == ReportKind::InvalidAnnotation)
            .count(),
        1
    );
    assert_eq!(reports.len(), 2);
}

fn tls_secret(ns: &str, name: &str, crt: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData: {{tls.crt: \"{crt}\", tls.key: \"key-of-{crt}\"}}\n"
    )
}

#[test]
fn sni_selects_the_certificate_and_host_selects_the_route() {
    let yaml = format!(
        "{}{}{}{}",
        tls_secret("web", "shop-cert", "shop"),
        tls_secret("web", "wild-cert", "wild"),
        tls_secret("web", "fallback-cert", "fallback"),
        ingress(
            "web",
            "tls",
            None,
            &format!(
                "  tls:\n  - {{hosts: [shop.com], secretName: shop-cert}}\n  - {{hosts: [\"*.apps.com\"], secretName: wild-cert}}\n  - {{secretName: fallback-cert}}\n  - {{hosts: [gone.com], secretName: missing}}\n  rules:\n{}{}",
                rules(Some("shop.com"), &[("/", "Prefix", "shop")]),
                rules(Some("*.apps.com"), &[("/", "Prefix", "apps")])
            )
        )
    );
    let r = router(&yaml);
    let cert = |sni: &str| {
        r.certificate(sni)
            .map(|c| String::from_utf8_lossy(c.chain_pem()).into_owned())
    };
    assert_eq!(cert("shop.com").as_deref(), Some("shop"));
    assert_eq!(cert("SHOP.com").as_deref(), Some("shop"));
    assert_eq!(cert("x.apps.com").as_deref(), Some("wild"));
    assert_eq!(cert("y.x.apps.com").as_deref(), Some("fallback"));
    assert_eq!(cert("unknown.org").as_deref(), Some("fallback"));
    assert_eq!(r.certificate("shop.com").unwrap().key_pem(), b"key-of-shop");
    assert!(r.has_tls("shop.com") && r.has_tls("x.apps.com") && !r.has_tls("other.com"));
    // The route ignores SNI: what counts is the Host.
    assert_eq!(dest(&r, "x.apps.com", "/"), "web/apps:80");
    let missing: Vec<_> = r
        .reports()
        .into_iter()
        .filter(|x| x.kind == ReportKind::Tls)
        .collect();
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0].message.contains("Secret web/missing not found"),
        "{}",
        missing[0]
    );
}

/// nginx decodes every %XX of the request path before it resolves dot
/// segments and matches locations (`ngx_http_parse_complex_uri`: a decoded
/// character is re-read in the state it interrupted, so `%2F` separates
/// and `..%2F` steps up). A backend that decodes `%2F` before resolving
/// dots (Go's FileServer, Python's http.server) sees `/admin` too, so the
/// request must not stay under the `/public` rule.
#[test]
fn an_encoded_slash_cannot_step_out_of_a_prefix() {
    let y = ingress(
        "default",
        "private",
        None,
        &format!(
            "  rules:\n{}",
            rules(Some("shop.com"), &[("/", "Prefix", "private")])
        ),
    ) + &ingress(
        "default",
        "public",
        None,
        &format!(
            "  rules:\n{}",
            rules(Some("shop.com"), &[("/public", "Prefix", "public")])
        ),
    );
    let r = router(&y);
    for raw in [
        "/public/..%2Fadmin",
        "/public/%2e%2e%2fadmin",
        "/public%2F..%2F..%2Fadmin",
        "/public/..%5Cadmin",
    ] {
        let p = k8snet_ingress::normalize_path(raw);
        assert_eq!(
            dest(&r, "shop.com", &p),
            "default/private:80",
            "{raw} → {p}"
        );
    }
    // Without dots, an encoded slash separates elements as `/` does.
    for raw in ["/public%2Fx", "/public/a%2Fb"] {
        let p = k8snet_ingress::normalize_path(raw);
        assert_eq!(dest(&r, "shop.com", &p), "default/public:80", "{raw} → {p}");
    }
}

/// "precedence will be given first to the longest matching path" (Ingress
/// docs, "Multiple matches"); ingress-nginx sorts a host's locations by
/// descending path length (internal/ingress/controller/controller.go,
/// `len(Locations[i].Path) > len(Locations[j].Path)`) and, under
/// use-regex, tests the `~*` locations in that order: a shorter regex path
/// does not beat a longer Prefix path, and a longer one does.
#[test]
fn regex_and_prefix_paths_compete_by_written_length() {
    let one = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: r, namespace: default, annotations: {{nginx.ingress.kubernetes.io/use-regex: \"true\"}}}}\nspec:\n  rules:\n{}",
        rules(
            Some("shop.com"),
            &[
                ("/api", "ImplementationSpecific", "api"),
                ("/api/v1", "Prefix", "v1"),
                ("/api/v1/items/[0-9]+", "ImplementationSpecific", "item"),
                ("/", "Prefix", "root"),
            ]
        )
    );
    let r = router(&one);
    assert_eq!(dest(&r, "shop.com", "/api/x"), "default/api:80");
    assert_eq!(dest(&r, "shop.com", "/API/x"), "default/api:80");
    assert_eq!(dest(&r, "shop.com", "/api/v1/users"), "default/v1:80");
    assert_eq!(dest(&r, "shop.com", "/api/v1/items/42"), "default/item:80");
    assert_eq!(dest(&r, "shop.com", "/api/v1/items/x"), "default/v1:80");
    assert_eq!(dest(&r, "shop.com", "/other"), "default/root:80");
}

/// A wildcard covers one non-empty label: `.foo.com` (an empty first
/// label) is not `x.foo.com`.
#[test]
fn a_host_with_an_empty_first_label_is_not_under_a_wildcard() {
    let spec = format!(
        "  rules:\n{}{}",
        rules(Some("*.foo.com"), &[("/", "Prefix", "wild")]),
        rules(None, &[("/", "Prefix", "any")]),
    );
    let r = router(&ingress("default", "w", None, &spec));
    assert_eq!(dest(&r, "x.foo.com", "/"), "default/wild:80");
    assert_eq!(dest(&r, ".foo.com", "/"), "default/any:80");
    assert_eq!(dest(&r, ".foo.com:80", "/"), "default/any:80");
}

/// The apiserver accepts `%5C` in Exact/Prefix paths and `%2F` in
/// ImplementationSpecific ones; a request spelling the rule's path reaches
/// it. `%2F` is a slash for matching, as nginx decodes it before it
/// matches locations: `/api/group%2Fname` is the rule `/api/group/name`,
/// which the plain spelling reaches too (nginx's behaviour); `%5C` is not
/// (nginx on Linux keeps `\` an ordinary character).
#[test]
fn rule_paths_with_encoded_separators_stay_reachable() {
    let spec = format!(
        "  rules:\n{}",
        rules(
            Some("shop.com"),
            &[
                ("/", "Prefix", "root"),
                ("/a%5Cb", "Exact", "exact"),
                ("/c%5Cd", "Prefix", "prefix"),
                ("/api/group%2Fname", "ImplementationSpecific", "impl"),
            ]
        )
    );
    let r = router(&ingress("default", "enc", None, &spec));
    for (raw, want) in [
        ("/a%5Cb", "exact"),
        ("/a%5cb", "exact"),
        ("/c%5Cd/x", "prefix"),
        ("/api/group%2Fname", "impl"),
        ("/api/group%2fname/x", "impl"),
        ("/api/group/name", "impl"),
        ("/api//group/name/x", "impl"),
        // Not the plain spelling of a `%5C` rule, nor a dot segment
        // stepping out.
        ("/a/b", "root"),
        ("/c/d/x", "root"),
        ("/c%5Cd/..%5Cx", "root"),
    ] {
        let got = r.route_request("shop.com", raw).and_then(|x| {
            let s = x.backend().as_service()?;
            Some(format!("{}/{}:{}", s.namespace, s.name, s.port))
        });
        assert_eq!(got, Some(format!("default/{want}:80")), "{raw}");
    }
}

/// A rule spelled with a raw `\` (an ordinary character for nginx on
/// Linux, a separator for some backends) is reached by every spelling
/// of its path that nginx would match it with: unreserved escapes
/// decoded (`%78` is `x`, `%62` is `b`) and repeated slashes merged.
/// Otherwise `/%78/a\b` would slip past it to `/`.
#[test]
fn a_backslash_rule_is_reached_by_every_spelling_of_its_path() {
    let spec = format!(
        "  rules:\n{}",
        rules(
            Some("shop.com"),
            &[
                ("/x/a\\\\b", "Exact", "bs"),
                ("/p/a\\\\b", "Prefix", "bsp"),
                ("/", "Prefix", "root"),
            ]
        )
    );
    let r = router(&ingress("default", "bs", None, &spec));
    reaches(
        &r,
        "shop.com",
        &[
            ("/x/a\\b", "bs"),
            ("/%78/a\\b", "bs"),
            ("/x/a\\%62", "bs"),
            ("/x//a\\b", "bs"),
            ("/p/a\\b/c", "bsp"),
            ("/%70/a\\b/c", "bsp"),
        ],
    );
}

/// nginx decodes `%2F` to `/` before it matches locations
/// (`ngx_http_parse_complex_uri`, state `sw_quoted_second`): an
/// ImplementationSpecific `/a%2Fb` is the rule `/a/b`, so a newer one
/// does not take the requests of an older `/a/b` (nor skip its
/// annotations); the older keeps them.
#[test]
fn an_encoded_slash_rule_does_not_take_an_older_rules_requests() {
    let r = older_and_newer(
        ("team-a", "/a/b", "Prefix", "plain"),
        ("team-b", "/a%2Fb", "ImplementationSpecific", "esc"),
    );
    // nginx decodes %2F before it matches locations: /a%2Fb/x is /a/b/x.
    for raw in ["/a%2Fb/x", "/a%2fb"] {
        let got = r.route_request("shop.com", raw).and_then(|x| {
            let s = x.backend().as_service()?;
            Some(format!("{}/{}", s.namespace, s.name))
        });
        assert_eq!(got.as_deref(), Some("team-a/plain"), "{raw}");
    }
}

/// Two rules of the same type that differ only by `%2F` against `/` are
/// one rule: the older keeps it and the newer is reported as shadowed.
#[test]
fn an_encoded_slash_rule_repeating_an_older_rule_is_reported() {
    let r = older_and_newer(
        ("team-a", "/a/b", "ImplementationSpecific", "plain"),
        ("team-b", "/a%2fb", "ImplementationSpecific", "esc"),
    );
    assert_eq!(dest(&r, "shop.com", "/a/b/x"), "team-a/plain:80");
    let shadowed: Vec<_> = r
        .reports()
        .into_iter()
        .filter(|x| x.kind == ReportKind::ShadowedRule)
        .collect();
    assert_eq!(shadowed.len(), 1, "{shadowed:?}");
    assert_eq!(
        shadowed[0].ingress,
        Some(NsName::new("team-b", "new")),
        "{shadowed:?}"
    );
}

#[test]
fn an_escaped_rule_does_not_shadow_a_newer_canonical_rule() {
    let r = older_and_newer(
        ("team-a", "/a%5Cb", "Prefix", "esc"),
        ("team-b", "/a/b", "Prefix", "plain"),
    );
    assert_eq!(dest(&r, "shop.com", "/a/b"), "team-b/plain:80");
    let shadowed: Vec<_> = r
        .reports()
        .into_iter()
        .filter(|x| x.kind == ReportKind::ShadowedRule)
        .collect();
    assert!(shadowed.is_empty(), "{shadowed:?}");
}

#[test]
fn an_escaped_exact_rule_does_not_take_a_plain_path() {
    let r = older_and_newer(
        ("team-b", "/a/b", "Prefix", "plain"),
        ("team-a", "/a%5Cb", "Exact", "esc"),
    );
    assert_eq!(dest(&r, "shop.com", "/a/b"), "team-b/plain:80");
}

#[test]
fn a_dot_segment_rule_does_not_become_a_catch_all() {
    let spec = format!(
        "  rules:\n{}",
        rules(
            Some("shop.com"),
            &[
                ("/static/..", "ImplementationSpecific", "dots"),
                ("/api", "Prefix", "api")
            ]
        )
    );
    let r = router(&ingress("default", "dots", None, &spec));
    assert!(r.route("shop.com", "/anything").is_none());
}

#[test]
fn encoded_dots_in_a_prefix_rule_do_not_take_the_root() {
    let r = older_and_newer(
        ("team-a", "/static/%2e%2e", "Prefix", "dots"),
        ("team-b", "/", "Prefix", "root"),
    );
    assert_eq!(dest(&r, "shop.com", "/x"), "team-b/root:80");
}

#[test]
fn a_dot_segment_rule_is_reported_and_the_others_still_route() {
    let spec = format!(
        "  rules:\n{}",
        rules(
            Some("shop.com"),
            &[
                ("/static/..", "ImplementationSpecific", "dots"),
                ("/static/%2E%2e", "Exact", "dots"),
                ("/api", "Prefix", "api"),
            ]
        )
    );
    let r = router(&ingress("default", "dots", None, &spec));
    let unreachable: Vec<_> = r
        .reports()
        .into_iter()
        .filter(|x| x.kind == ReportKind::UnreachablePath)
        .collect();
    assert_eq!(unreachable.len(), 2, "{unreachable:?}");
    assert!(
        unreachable[0].message.contains("\"/static/..\"")
            && unreachable[0].message.contains("dot segment"),
        "{unreachable:?}"
    );
    assert_eq!(dest(&r, "shop.com", "/api/x"), "default/api:80");
    assert_eq!(dest(&r, "shop.com", "/static"), "404");
    assert_eq!(dest(&r, "shop.com", "/"), "404");
    assert_eq!(r.stats().rules, 1);
}

/// A Prefix rule spelled with a backslash (`%5C` or raw) has a boundary at
/// every separator: continuing the path with another backslash stays
/// under it (otherwise `/a%5Cb%5Cc` would slip past `/a%5Cb` to `/`).
#[test]
fn a_backslash_prefix_rule_covers_what_follows_a_backslash() {
    let spec = format!(
        "  rules:\n{}",
        rules(
            Some("h.com"),
            &[
                ("/a%5Cb", "Prefix", "esc"),
                ("/p/a\\\\b", "Prefix", "bs"),
                ("/", "Prefix", "root"),
            ]
        )
    );
    let r = router(&ingress("d", "i", None, &spec));
    reaches(
        &r,
        "h.com",
        &[
            ("/a%5Cb", "esc"),
            ("/a%5Cb/c", "esc"),
            ("/a%5Cb%5C", "esc"),
            ("/a%5Cb%5Cc", "esc"),
            ("/p/a\\b/c", "bs"),
            ("/p/a\\b\\c", "bs"),
            // Not a boundary: the element goes on.
            ("/a%5Cbc", "root"),
            ("/p/a\\bc", "root"),
        ],
    );
}

/// A rule whose first separator is `%5C` is not the plain path's rule: an
/// older Prefix `/%5Cadmin` does not take `/admin/...` from a newer
/// `/admin`.
#[test]
fn a_leading_encoded_backslash_rule_is_not_the_plain_rule() {
    let r = older_and_newer(
        ("team-b", "/%5Cadmin", "Prefix", "esc"),
        ("team-a", "/admin", "Prefix", "admin"),
    );
    assert_eq!(dest(&r, "shop.com", "/admin/x"), "team-a/admin:80");
    reaches(
        &r,
        "shop.com",
        &[
            ("/admin/x", "admin"),
            ("/%5Cadmin/x", "esc"),
            ("/%5cadmin", "esc"),
            ("//%5C%61dmin", "esc"),
        ],
    );
}

#[test]
fn a_prefix_rule_ending_with_a_backslash_covers_what_follows_it() {
    let spec = format!(
        "  rules:\n{}",
        rules(
            Some("h.com"),
            &[
                ("/a%5Cb%5C", "Prefix", "esc"),
                ("/q/a\\\\b\\\\", "Prefix", "bs"),
                ("/%5C", "Prefix", "lead"),
                ("/", "Prefix", "root"),
            ]
        )
    );
    let r = router(&ingress("d", "i", None, &spec));
    reaches(
        &r,
        "h.com",
        &[
            ("/a%5Cb%5Cc", "esc"),
            ("/q/a\\b\\c", "bs"),
            ("/%5Cx", "lead"),
        ],
    );
}

#[test]
fn an_encoded_backslash_reaches_the_rule_spelled_with_a_raw_one() {
    let spec = format!(
        "  rules:\n{}",
        rules(
            Some("h.com"),
            &[
                ("/x/a\\\\b", "Prefix", "bs"),
                ("/y/a\\\\b", "Exact", "bsx"),
                ("/", "Prefix", "root"),
            ]
        )
    );
    let r = router(&ingress("d", "i", None, &spec));
    reaches(
        &r,
        "h.com",
        &[
            ("/x/a\\b/secret", "bs"),
            ("/x/a%5Cb/secret", "bs"),
            ("/x/a%5cb", "bs"),
            ("/y/a%5Cb", "bsx"),
        ],
    );
}

/// `/a\b` and `/a%5Cb` are one rule (one character for matching): the
/// older keeps it and the newer is reported as shadowed.
#[test]
fn a_raw_backslash_rule_repeating_an_encoded_one_is_reported() {
    let r = older_and_newer(
        ("team-a", "/a%5Cb", "Prefix", "esc"),
        ("team-b", "/a\\\\b", "Prefix", "raw"),
    );
    for raw in ["/a\\b/x", "/a%5cb/x", "/a%5Cb"] {
        let got = r
            .route_request("shop.com", raw)
            .and_then(|x| Some(x.backend().as_service()?.name.to_string()));
        assert_eq!(got.as_deref(), Some("esc"), "{raw}");
    }
    let shadowed: Vec<_> = r
        .reports()
        .into_iter()
        .filter(|x| x.kind == ReportKind::ShadowedRule)
        .collect();
    assert_eq!(shadowed.len(), 1, "{shadowed:?}");
    assert_eq!(
        shadowed[0].ingress,
        Some(NsName::new("team-b", "new")),
        "{shadowed:?}"
    );
}
