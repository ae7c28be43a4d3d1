//! Every row of the Examples table of the Kubernetes Ingress docs
//! ("Path types" → "Examples"), as host-less rules of one Ingress.

mod common;

use common::{dest, ingress, path, router};

/// (row, rules as (path, type), requests, the index of the rule that must
/// match, or `None` for no match).
type Row = (
    u8,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
    Option<usize>,
);

const ROWS: &[Row] = &[
    (
        1,
        &[("/", "Prefix")],
        &["/", "/foo", "/foo/bar/baz", "/aaa/", "/%61x"],
        Some(0),
    ),
    (2, &[("/foo", "Exact")], &["/foo"], Some(0)),
    (3, &[("/foo", "Exact")], &["/bar"], None),
    (4, &[("/foo", "Exact")], &["/foo/"], None),
    (5, &[("/foo/", "Exact")], &["/foo"], None),
    (6, &[("/foo", "Prefix")], &["/foo", "/foo/"], Some(0)),
    (7, &[("/foo/", "Prefix")], &["/foo", "/foo/"], Some(0)),
    (8, &[("/aaa/bb", "Prefix")], &["/aaa/bbb"], None),
    (9, &[("/aaa/bbb", "Prefix")], &["/aaa/bbb"], Some(0)),
    (10, &[("/aaa/bbb/", "Prefix")], &["/aaa/bbb"], Some(0)),
    (11, &[("/aaa/bbb", "Prefix")], &["/aaa/bbb/"], Some(0)),
    (12, &[("/aaa/bbb", "Prefix")], &["/aaa/bbb/ccc"], Some(0)),
    (13, &[("/aaa/bbb", "Prefix")], &["/aaa/bbbxyz"], None),
    (
        14,
        &[("/", "Prefix"), ("/aaa", "Prefix")],
        &["/aaa/ccc"],
        Some(1),
    ),
    (
        15,
        &[("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")],
        &["/aaa/bbb"],
        Some(2),
    ),
    (
        16,
        &[("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")],
        &["/ccc"],
        Some(0),
    ),
    (17, &[("/aaa", "Prefix")], &["/ccc"], None),
    (
        18,
        &[("/foo", "Prefix"), ("/foo", "Exact")],
        &["/foo"],
        Some(1),
    ),
];

fn spec(rules: &[(&str, &str)], default_backend: bool) -> String {
    let mut s = String::new();
    if default_backend {
        s.push_str("  defaultBackend: {service: {name: fallback, port: {number: 80}}}\n");
    }
    s.push_str("  rules:\n  - http:\n      paths:\n");
    for (i, (p, ty)) in rules.iter().enumerate() {
        s.push_str(&path(p, ty, &format!("rule{i}")));
    }
    s
}

#[test]
fn every_row_of_the_examples_table() {
    for &(row, rules, requests, want) in ROWS {
        let r = router(&ingress("default", "examples", None, &spec(rules, false)));
        for req in requests {
            let want = want.map_or("404".to_string(), |i| format!("default/rule{i}:80"));
            // Host-less rules match any host, and no host at all.
            for host in ["example.com", ""] {
                assert_eq!(
                    dest(&r, host, req),
                    want,
                    "row {row}: {rules:?} with request {req:?}"
                );
            }
        }
    }
}

#[test]
fn rows_without_a_match_use_the_default_backend_when_there_is_one() {
    for &(row, rules, requests, want) in ROWS {
        if want.is_some() {
            continue;
        }
        let r = router(&ingress("default", "examples", None, &spec(rules, true)));
        for req in requests {
            assert_eq!(
                dest(&r, "example.com", req),
                "default/fallback:80",
                "row {row} {req}"
            );
            assert!(r.route("example.com", req).unwrap().is_default_backend());
        }
    }
}

#[test]
fn paths_are_case_sensitive() {
    let r = router(&ingress(
        "default",
        "case",
        None,
        &spec(&[("/Foo", "Exact"), ("/Bar", "Prefix")], false),
    ));
    assert_eq!(dest(&r, "", "/Foo"), "default/rule0:80");
    assert_eq!(dest(&r, "", "/foo"), "404");
    assert_eq!(dest(&r, "", "/Bar/x"), "default/rule1:80");
    assert_eq!(dest(&r, "", "/bar/x"), "404");
}

#[test]
fn the_longer_of_foo_and_foo_slash_wins() {
    let r = router(&ingress(
        "default",
        "slash",
        None,
        &spec(&[("/foo", "Prefix"), ("/foo/", "Prefix")], false),
    ));
    for req in ["/foo", "/foo/", "/foo/x"] {
        assert_eq!(dest(&r, "", req), "default/rule1:80", "{req}");
    }
    // Exact still wins over the longer /foo/ for the request it names.
    let r = router(&ingress(
        "default",
        "slash",
        None,
        &spec(&[("/foo/", "Prefix"), ("/foo", "Exact")], false),
    ));
    assert_eq!(dest(&r, "", "/foo"), "default/rule1:80");
    assert_eq!(dest(&r, "", "/foo/"), "default/rule0:80");
}
