//! Unit tests of the packed host and path slots against the hosts' own
//! tables.

use k8snet_model::{Cluster, Manifests};

use super::*;
use crate::class::ClassSelector;
use crate::router::Router;

/// One host's Ingress with these `(path, pathType)` rules, each to its
/// own Service, and a defaultBackend when asked.
fn router(paths: &[(String, &str)], default: bool, regex: bool) -> Router {
    let mut yaml = String::from(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: i\n  namespace: ns\n",
    );
    if regex {
        yaml.push_str("  annotations: {nginx.ingress.kubernetes.io/use-regex: \"true\"}\n");
    }
    yaml.push_str("spec:\n");
    if default {
        yaml.push_str("  defaultBackend: {service: {name: dflt, port: {number: 80}}}\n");
    }
    yaml.push_str("  rules:\n  - host: h.example.com\n    http:\n      paths:\n");
    for (n, (p, ty)) in paths.iter().enumerate() {
        yaml.push_str(&format!(
            "      - {{path: \"{p}\", pathType: {ty}, backend: {{service: {{name: s{n}, port: {{number: 80}}}}}}}}\n"
        ));
    }
    let mut m = Manifests::new();
    m.load_str("t.yaml", &yaml);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    Router::compile(
        &Cluster::from_manifests(&m),
        &ClassSelector::default_class(),
    )
}

type Decision<'a> = Option<(Option<&'a str>, Option<MatchKind>, &'a crate::Backend)>;

/// The flat lookup decides as the host's own table does, for every
/// request path.
fn agrees(r: &Router, requests: &[String]) -> usize {
    let key = HostKey::Exact("h.example.com".into());
    let table = r.table(&key).expect("the host has a table");
    let h = Side::Exact.hash("h.example.com").expect("ASCII");
    let i = r
        .index
        .get(Side::Exact, h, "H.Example.com")
        .expect("indexed");
    let mut found = 0;
    for p in requests {
        let flat: Decision<'_> = r
            .index
            .route(i, p, None)
            .map(|x| (x.path(), x.kind(), x.backend()));
        let want: Decision<'_> = table.lookup(p, None).map(|(e, _)| {
            (
                e.path.as_ref().map(|(p, _)| &**p),
                e.path.as_ref().map(|(_, k)| *k),
                &e.backend,
            )
        });
        assert_eq!(flat, want, "{p:?}");
        found += usize::from(flat.is_some());
    }
    found
}

/// `/s0/s1/…` with `n` elements, each `width` bytes or more.
fn deep(n: usize, width: usize) -> String {
    (0..n).map(|i| format!("/{:0>width$}", i)).collect()
}

#[test]
fn large_tables_long_keys_and_deep_prefixes_decide_as_the_host_table() {
    let mut paths: Vec<(String, &str)> = Vec::new();
    for n in 0..40 {
        let ty = ["Exact", "Prefix", "ImplementationSpecific"][n % 3];
        paths.push((deep(1 + n % 7, 1 + n % 9), ty));
        // Long keys (beyond the inline 18 bytes), one with a
        // trailing slash that outranks its twin.
        paths.push((format!("/a-rather-long-element-{n}/and-more"), ty));
    }
    paths.push(("/a-rather-long-element-4/and-more/".into(), "Prefix"));
    paths.push(("/".into(), "ImplementationSpecific"));
    // 254: the deepest rule the packed table takes (see the next test).
    for d in [17, 20, 40, 254] {
        paths.push((deep(d, 1), "Prefix"));
    }
    let r = router(&paths, true, false);
    let mut requests = vec!["/".to_string(), "".into(), "/zz".into(), "//".into()];
    for (p, _) in &paths {
        requests.push(p.clone());
        requests.push(format!("{p}/x"));
        requests.push(format!("{p}x"));
        requests.push(p.replace('/', "//"));
        requests.push(p.trim_end_matches('/').to_string() + "/");
    }
    for d in [16, 17, 18, 19, 21, 39, 41, 253, 255, 301] {
        requests.push(deep(d, 1));
    }
    let found = agrees(&r, &requests);
    assert_eq!(found, requests.len(), "the root rule catches every path");
    // Without the root rule and the defaultBackend, misses stay misses.
    paths.retain(|(p, _)| p != "/");
    let r = router(&paths, false, false);
    let found = agrees(&r, &requests);
    assert!(found > 0 && found < requests.len(), "{found}");
}

/// Whether the host `h.example.com` is looked up in its own table.
fn falls_back(r: &Router) -> bool {
    let h = Side::Exact.hash("h.example.com").expect("ASCII");
    let i = r
        .index
        .get(Side::Exact, h, "h.example.com")
        .expect("indexed");
    r.index.slots[i].flags & FALLBACK != 0
}

#[test]
fn a_prefix_rule_deeper_than_a_byte_counts_sends_the_host_to_its_table() {
    // A lookup hashes a request's elements only as deep as the host's
    // deepest Prefix rule; with that depth at 255 or more the packed
    // table would have to hash every element of a long request (a
    // 16,000-element path cost ~400 µs), so the host uses its own table,
    // which stops at the exact depth.
    let mut paths: Vec<(String, &str)> = (0..50).map(|k| (format!("/k{k}"), "Prefix")).collect();
    paths.push((deep(254, 1), "Prefix"));
    let r = router(&paths, false, false);
    assert!(!falls_back(&r), "254 elements stay in the packed table");
    paths.push((deep(255, 1), "Prefix"));
    let r = router(&paths, false, false);
    assert!(falls_back(&r), "255 elements: the host's own table");
    let requests: Vec<String> = [253, 254, 255, 256, 2000]
        .iter()
        .map(|&d| deep(d, 1))
        .chain(["/k7/x".into(), "/a".repeat(16_000)])
        .collect();
    assert_eq!(
        agrees(&r, &requests),
        5,
        "every deep request and /k7/x match"
    );
}

#[test]
fn long_keys_of_every_host_are_found_in_the_shared_arena() {
    let mut m = Manifests::new();
    for h in 0..6 {
        m.load_str(
            &format!("{h}.yaml"),
            &format!(
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{h}, namespace: ns}}\nspec:\n  rules:\n  - host: h{h}.example.com\n    http:\n      paths:\n      - {{path: /a-long-exact-path-of-host-{h}, pathType: Exact, backend: {{service: {{name: e{h}, port: {{number: 80}}}}}}}}\n      - {{path: /a-long-prefix-path-of-host/{h}, pathType: Prefix, backend: {{service: {{name: p{h}, port: {{number: 80}}}}}}}}\n"
            ),
        );
    }
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let r = Router::compile(
        &Cluster::from_manifests(&m),
        &ClassSelector::default_class(),
    );
    let name = |host: &str, path: &str| {
        r.route(host, path)
            .and_then(|x| x.backend().as_service().map(|s| s.name.clone()))
    };
    for h in 0..6 {
        let host = format!("h{h}.example.com");
        let exact = format!("/a-long-exact-path-of-host-{h}");
        let prefix = format!("/a-long-prefix-path-of-host/{h}/x");
        assert_eq!(name(&host, &exact), Some(format!("e{h}")));
        assert_eq!(name(&host, &prefix), Some(format!("p{h}")));
        let other = (h + 1) % 6;
        assert_eq!(
            name(&host, &format!("/a-long-exact-path-of-host-{other}")),
            None
        );
    }
}

#[test]
fn small_tables_and_regex_hosts_decide_as_the_host_table() {
    let paths: Vec<(String, &str)> = vec![
        ("/api".into(), "Prefix"),
        ("/api/".into(), "ImplementationSpecific"),
        ("/api/v1/resources-with-a-long-name".into(), "Exact"),
        ("/api/v1/resources-with-a-long-name".into(), "Prefix"),
        ("/api/v1".into(), "Exact"),
    ];
    let requests: Vec<String> = [
        "/api",
        "/api/",
        "/API",
        "/api/v1",
        "/api/v1/",
        "/api/v1/resources-with-a-long-name",
        "/api/v1/resources-with-a-long-name/x",
        "/api/v1/resources-with-a-long-namex",
        "/apix",
        "/",
    ]
    .map(String::from)
    .to_vec();
    for default in [false, true] {
        agrees(&router(&paths, default, false), &requests);
    }
    // use-regex: the host's table decides (regexes first, as nginx).
    let r = router(
        &[("/api/v[0-9]+".into(), "ImplementationSpecific")],
        false,
        true,
    );
    assert_eq!(agrees(&r, &requests), 5);
}

#[test]
fn zero_nibbles_are_exact() {
    assert_eq!(zero_nibbles(0), !0x7777_7777_7777_7777);
    assert_eq!(zero_nibbles(u64::MAX), 0);
    assert_eq!(zero_nibbles(0xf0f1_0110_8000_1234), 0x0800_8008_0888_0000);
    // A zero next to others does not make them look zero.
    assert_eq!(zero_nibbles(0x1010_1010_1010_1010), 0x0808_0808_0808_0808);
}

#[test]
fn slots_fill_whole_lines() {
    assert_eq!(size_of::<HostSlot>(), 64);
    assert_eq!(align_of::<HostSlot>(), 64);
    assert_eq!(size_of::<PathSlot>(), 32);
    assert_eq!(align_of::<PathSlot>(), 32);
}

#[test]
fn elements_drop_empty_ones_and_compare_across_doubled_slashes() {
    let of = |p: &str| -> Vec<String> {
        elements(p.as_bytes())
            .map(|(s, e)| p[s..e].to_string())
            .collect()
    };
    assert_eq!(of("//aaa//bbb/"), ["aaa", "bbb"]);
    assert_eq!(of("/"), Vec::<String>::new());
    assert_eq!(of("aaa"), ["aaa"]);
    assert!(same_elements(b"aaa/bbb", b"aaa//bbb"));
    assert!(same_elements(b"aaa/bbb", b"aaa/bbb"));
    assert!(!same_elements(b"aaa/bbb", b"aaa/bbbx"));
    assert!(!same_elements(b"aaa/bb", b"aaa/bbb"));
}
