//! The router against a reference lookup that scans every rule and applies
//! the matching rules as the crate docs state them, on random rule sets
//! and random requests (compiled whole, then after an incremental update).
//!
//! The cases come from a fixed-seed generator, so a failure names its case
//! and reproduces. (The crate has no `proptest` dev-dependency; with one,
//! `check` is the property to hand it.)

use k8snet_model::{Cluster, Ingress, Manifests, NsName, Object, PathType};

use crate::age::Age;
use crate::backend::Backend;
use crate::class::ClassSelector;
use crate::host::HostKey;
use crate::path::{MatchKind, normalize_path};
use crate::router::Router;

/// SplitMix64: small, fast, and good enough to spread test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Rule hosts: exact, wildcards at two levels, host-less (`None`).
const RULE_HOSTS: &[Option<&str>] = &[
    None,
    Some("a.x.io"),
    Some("b.x.io"),
    Some("*.x.io"),
    Some("c.a.x.io"),
    Some("*.a.x.io"),
    Some("x.io"),
    // Longer than the index keeps in its slots.
    Some("long-host-name-beyond-the-inline-limit-of-the-index.x.io"),
    Some("*.long-host-name-beyond-the-inline-limit-of-the-index.x.io"),
];

/// Request hosts: every rule host's spelling (case, port, trailing dot),
/// names only a wildcard covers, one label too many or too few, non-ASCII.
const REQUEST_HOSTS: &[&str] = &[
    "a.x.io",
    "A.X.IO:8080",
    "b.x.io.",
    "q.x.io",
    "Q.X.io:443",
    "c.a.x.io",
    "z.a.x.io",
    "y.z.a.x.io",
    "x.io",
    "io",
    "other.org",
    "",
    "bücher.x.io",
    ".x.io",
    "long-host-name-beyond-the-inline-limit-of-the-index.x.io",
    "LONG-host-name-beyond-the-inline-limit-of-the-index.x.io:80",
    "q.long-host-name-beyond-the-inline-limit-of-the-index.x.io",
    "long-host-name-beyond-the-inline-limit-of-the-index.x.iq",
];

const SEGMENTS: &[&str] = &["a", "b", "aa", "ab", "c"];

/// Rule elements spelling a separator encoded: the apiserver allows `%5C`
/// in every path type and `%2F` in ImplementationSpecific paths only.
const ENCODED_SEGMENTS: &[&str] = &["a%5Cb", "a%5cb", "a%5C"];
const ENCODED_SLASH_SEGMENTS: &[&str] = &["a%2Fb", "a%2fb"];

/// A rule path of type `ty`: up to three elements, sometimes one with an
/// encoded separator, sometimes a trailing slash.
fn rule_path(rng: &mut Rng, ty: &str) -> String {
    let mut p = String::new();
    for _ in 0..rng.below(4) {
        p.push('/');
        let from = if !rng.chance(8) {
            SEGMENTS
        } else if ty == "ImplementationSpecific" && rng.chance(2) {
            ENCODED_SLASH_SEGMENTS
        } else {
            ENCODED_SEGMENTS
        };
        p.push_str(rng.pick::<&str>(from));
    }
    if p.is_empty() || rng.chance(4) {
        p.push('/');
    }
    p
}

/// A request path: up to five elements (one unknown to the rules, some
/// spelling a separator encoded), sometimes a trailing or doubled slash.
fn request_path(rng: &mut Rng) -> String {
    let mut p = String::new();
    for _ in 0..rng.below(6) {
        p.push('/');
        if rng.chance(8) {
            p.push('/');
        }
        let from: &[&str] = match rng.below(10) {
            0 => &["zz"],
            1 => &["a%5cb", "a%2Fb", "a%2f", "A%5Cb"],
            _ => SEGMENTS,
        };
        p.push_str(rng.pick::<&str>(from));
    }
    if p.is_empty() || rng.chance(4) {
        p.push('/');
    }
    p
}

/// One to six Ingresses in two namespaces, some sharing timestamps, some
/// without one, with rules on overlapping hosts and paths, some with a
/// defaultBackend.
fn rule_set(rng: &mut Rng) -> String {
    let mut yaml = String::new();
    for i in 0..1 + rng.below(6) {
        let ns = rng.pick(&["ns1", "ns2"]);
        let created = match rng.below(4) {
            0 => String::new(),
            n => format!(", creationTimestamp: \"2024-01-0{n}T00:00:00Z\""),
        };
        yaml.push_str(&format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: i{i}, namespace: {ns}{created}}}\nspec:\n"
        ));
        let rules = rng.below(4);
        if rules == 0 || rng.chance(3) {
            yaml.push_str(&format!(
                "  defaultBackend: {{service: {{name: d{i}, port: {{number: 80}}}}}}\n"
            ));
        }
        if rules > 0 {
            yaml.push_str("  rules:\n");
        }
        for r in 0..rules {
            match rng.pick(RULE_HOSTS) {
                Some(h) => yaml.push_str(&format!("  - host: \"{h}\"\n    http:\n      paths:\n")),
                None => yaml.push_str("  - http:\n      paths:\n"),
            }
            for p in 0..1 + rng.below(4) {
                let ty = rng.pick(&["Exact", "Prefix", "ImplementationSpecific"]);
                yaml.push_str(&format!(
                    "      - {{path: \"{}\", pathType: {ty}, backend: {{service: {{name: s{i}-{r}-{p}, port: {{number: 80}}}}}}}}\n",
                    rule_path(rng, ty)
                ));
            }
        }
    }
    yaml
}

/// What a lookup decided: the Ingress, the rule's path and kind (`None`
/// for a defaultBackend) and the backend.
type Outcome = Option<(NsName, Option<(String, MatchKind)>, Backend)>;

fn elements(p: &str) -> Vec<&str> {
    p.split('/').filter(|s| !s.is_empty()).collect()
}

/// The reference: every rule of every served Ingress scanned, oldest
/// Ingress first and rules in the order written.
///
/// - Request host: without port and one trailing dot, lower case; a
///   non-ASCII or empty host matches host-less rules only.
/// - Hosts in turn: the exact host, the wildcard of its parent (one label
///   removed), host-less rules. Within one, an Exact rule equal to the
///   path wins; else the Prefix (or ImplementationSpecific) rule whose
///   elements start the path's, with the most elements, then a trailing
///   slash, then Prefix over ImplementationSpecific; the first (oldest)
///   of equals. Rule paths are compared normalized, as request paths
///   (`%5C` and `%2F` are separators); the outcome names them as written. With no match on a named host, the defaultBackend of the
///   oldest Ingress with rules for it (that has one) answers.
/// - Last, the defaultBackend of the oldest Ingress without host rules.
fn reference(ingresses: &[&Ingress], host: &str, path: &str) -> Outcome {
    let key = |ing: &Ingress| NsName::new(ing.metadata.namespace_or_default(), &ing.metadata.name);
    let ns = |ing: &Ingress| ing.metadata.namespace_or_default().to_string();
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    let host = host.strip_suffix('.').unwrap_or(host);
    let mut keys = Vec::new();
    if !host.is_empty() && host.is_ascii() {
        let host = host.to_ascii_lowercase();
        if let Some((_, parent)) = host
            .split_once('.')
            .filter(|(first, p)| !first.is_empty() && !p.is_empty())
        {
            keys.push(HostKey::Wildcard(parent.into()));
        }
        keys.insert(0, HostKey::Exact(host.into()));
    }
    keys.push(HostKey::Any);
    let want = elements(path);
    for k in &keys {
        let mut best: Option<((usize, bool, bool), Outcome)> = None;
        let mut contributes = Vec::new();
        for ing in ingresses {
            for rule in &ing.spec.rules {
                if HostKey::of_rule(rule.host.as_deref()) != *k {
                    continue;
                }
                contributes.push(*ing);
                for p in rule.http.iter().flat_map(|h| &h.paths) {
                    let rule_path = p.path.as_deref().unwrap_or("/");
                    let matched = normalize_path(rule_path);
                    let backend = Backend::from_ingress(&ns(ing), &p.backend);
                    let outcome = |kind| {
                        Some((
                            key(ing),
                            Some((rule_path.to_string(), kind)),
                            backend.clone()?,
                        ))
                    };
                    match p.path_type {
                        PathType::Exact if matched == path => {
                            if best.as_ref().is_none_or(|(rank, _)| rank.0 != usize::MAX) {
                                best = Some(((usize::MAX, true, true), outcome(MatchKind::Exact)));
                            }
                        }
                        PathType::Exact => {}
                        ty => {
                            let have = elements(&matched);
                            if !want.starts_with(&have) {
                                continue;
                            }
                            let explicit = ty == PathType::Prefix;
                            let rank = (
                                have.len(),
                                matched.len() > 1 && matched.ends_with('/'),
                                explicit,
                            );
                            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                                let kind = if explicit {
                                    MatchKind::Prefix
                                } else {
                                    MatchKind::ImplementationSpecific
                                };
                                best = Some((rank, outcome(kind)));
                            }
                        }
                    }
                }
            }
        }
        if let Some((_, outcome)) = best {
            return outcome;
        }
        if *k != HostKey::Any
            && let Some((ing, b)) = contributes
                .iter()
                .find_map(|i| i.spec.default_backend.as_ref().map(|b| (*i, b)))
        {
            return Some((key(ing), None, Backend::from_ingress(&ns(ing), b)?));
        }
    }
    let ing = ingresses.iter().find(|i| {
        i.spec.default_backend.is_some()
            && i.spec
                .rules
                .iter()
                .all(|r| r.host.as_deref().is_none_or(str::is_empty))
    })?;
    let b = ing.spec.default_backend.as_ref()?;
    Some((key(ing), None, Backend::from_ingress(&ns(ing), b)?))
}

fn outcome(router: &Router, host: &str, path: &str) -> Outcome {
    router.route(host, path).map(|r| {
        (
            r.ingress().clone(),
            r.path()
                .map(|p| (p.to_string(), r.kind().unwrap_or(MatchKind::Regex))),
            r.backend().clone(),
        )
    })
}

/// The property: on every request, the router and the reference agree,
/// on the path as generated and normalized as the proxy normalizes it.
fn check(case: usize, cluster: &Cluster, router: &Router, requests: &[(&str, String)], yaml: &str) {
    let mut ingresses: Vec<&Ingress> = cluster.ingresses().collect();
    ingresses.sort_by_key(|i| Age::of(&i.metadata));
    for (host, raw) in requests {
        for path in [raw.as_str(), &normalize_path(raw)] {
            assert_eq!(
                outcome(router, host, path),
                reference(&ingresses, host, path),
                "case {case}: {host:?} {path:?} against\n{yaml}"
            );
        }
    }
}

#[test]
fn router_agrees_with_a_scan_of_every_rule() {
    let mut rng = Rng(0x5eed_1234);
    let mut matched = 0;
    let mut encoded = 0;
    for case in 0..400 {
        let yaml = rule_set(&mut rng);
        let mut m = Manifests::new();
        m.load_str("case.yaml", &yaml);
        assert!(
            m.errors().is_empty(),
            "case {case}: {:?}\n{yaml}",
            m.errors()
        );
        let mut cluster = Cluster::from_manifests(&m);
        let router = Router::compile(&cluster, &ClassSelector::default_class());
        let requests: Vec<(&str, String)> = (0..80)
            .map(|_| (*rng.pick(REQUEST_HOSTS), request_path(&mut rng)))
            .collect();
        check(case, &cluster, &router, &requests, &yaml);
        matched += requests
            .iter()
            .filter(|(h, p)| router.route(h, p).is_some_and(|r| r.path().is_some()))
            .count();
        encoded += requests
            .iter()
            .filter(|(h, p)| {
                router
                    .route(h, &normalize_path(p))
                    .and_then(|r| r.path())
                    .is_some_and(|p| p.contains('%'))
            })
            .count();

        // The same after one Ingress is deleted, applied incrementally.
        let victim = cluster
            .ingresses()
            .nth(rng.below(cluster.ingresses().count()));
        let Some(gone) = victim.map(|i| Object::Ingress(i.clone()).reference()) else {
            continue;
        };
        assert!(cluster.delete(&gone).is_some());
        let next = router
            .update(&cluster, &gone)
            .expect("an Ingress change recompiles");
        check(case, &cluster, &next, &requests, &yaml);
    }
    // The generator must exercise path matches, not only fallbacks.
    assert!(matched > 400 * 80 / 10, "only {matched} path matches");
    // And rules spelling a separator encoded.
    assert!(
        encoded > 100,
        "only {encoded} matches of encoded rule paths"
    );
}
