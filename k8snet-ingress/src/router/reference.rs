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
use crate::path::{MatchKind, forward_path, normalize_path};
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
const ENCODED_SEGMENTS: &[&str] = &["a%5Cb", "a%5cb", "a%5C", "%5Ca", "a%5Cb%5C"];
const ENCODED_SLASH_SEGMENTS: &[&str] = &["a%2Fb", "a%2fb"];

/// Rule elements with a raw backslash (as YAML writes it in double
/// quotes: `\\` is one `\`), some with escaped unreserved characters.
const BACKSLASH_SEGMENTS: &[&str] = &["a\\\\b", "%61\\\\b", "a\\\\%62", "a\\\\", "\\\\a"];

/// Rule elements with a dot segment, which match nothing: the apiserver
/// refuses plain ones in Exact and Prefix paths, not encoded ones.
const DOT_SEGMENTS: &[&str] = &["%2e%2e", "%2E", ".%2e"];
const PLAIN_DOT_SEGMENTS: &[&str] = &[".", ".."];

/// Rule elements spelling unreserved characters escaped: the same rule as
/// the plain spelling (`%61` is `a`).
const ESCAPED_SEGMENTS: &[&str] = &["%61", "%61%62", "a%62"];

/// A rule path of type `ty`: up to three elements, sometimes one with an
/// encoded separator, a dot segment or escaped unreserved characters,
/// sometimes a trailing slash.
fn rule_path(rng: &mut Rng, ty: &str) -> String {
    let mut p = String::new();
    for _ in 0..rng.below(4) {
        p.push('/');
        let from = match rng.below(26) {
            0..=17 => SEGMENTS,
            18 if ty == "ImplementationSpecific" => PLAIN_DOT_SEGMENTS,
            18 => DOT_SEGMENTS,
            19 => ESCAPED_SEGMENTS,
            20 | 21 => BACKSLASH_SEGMENTS,
            _ if ty == "ImplementationSpecific" && rng.chance(2) => ENCODED_SLASH_SEGMENTS,
            _ => ENCODED_SEGMENTS,
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
        let from: &[&str] = match rng.below(12) {
            0 => &["zz"],
            1..=4 => &[
                "a%5cb",
                "a%5Cb",
                "a%2Fb",
                "a%2f",
                "A%5Cb",
                "a%5C",
                "a%5c",
                "a%5cb%5Cc",
                "%5ca",
                "%5Ca%5Cb",
                "a\\b",
                "%61\\b",
                "a\\%62",
                "a\\",
                "\\%61",
                "%61\\b\\",
                "%2F",
            ],
            5 => &["..", ".", "%2e%2E", "%61", "%61%62", "a%62"],
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

/// A path with every separator (`/`, `\`, `%2F`, `%5C`, any case) a slash.
fn all_separators(p: &str) -> String {
    p.replace("%2f", "/")
        .replace("%2F", "/")
        .replace("%5c", "/")
        .replace("%5C", "/")
        .replace('\\', "/")
}

/// The key a rule path is matched by, or `None` when it has a dot segment
/// (an element, between any separators, of one or two dots, each plain
/// or `%2E`): its [`spell`]ing.
fn rule_key(p: &str) -> Option<String> {
    let dotted = all_separators(p).split('/').any(|e| {
        matches!(
            e.to_ascii_lowercase().replace("%2e", ".").as_str(),
            "." | ".."
        )
    });
    if dotted {
        return None;
    }
    Some(spell(p))
}

/// How a path without dot segments is spelled for matching, as the crate
/// docs state it: `%2F` a slash (nginx decodes it before matching), the
/// unreserved escapes decoded, `%5C` a raw `\` (one spelling of a
/// backslash, as nginx decodes it before matching) and the other escapes
/// in upper case, empty elements (split on `/`)
/// dropped, the separators before the first element one slash unless
/// they hold a backslash (then kept, slashes merged), a trailing slash
/// kept.
fn spell(p: &str) -> String {
    let p = p.replace("%2f", "/").replace("%2F", "/");
    let mut rest = p.as_str();
    let mut decoded = String::new();
    while let Some(at) = rest.find('%') {
        decoded.push_str(&rest[..at]);
        let esc = rest
            .get(at + 1..at + 3)
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
        match esc.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(c) if c.is_ascii_alphanumeric() || b"-._~".contains(&c) => {
                decoded.push(char::from(c));
            }
            // `%5C` is matched as a raw `\` (nginx decodes it first).
            Some(b'\\') => decoded.push('\\'),
            Some(_) => {
                decoded.push('%');
                decoded.push_str(&esc.unwrap_or_default().to_ascii_uppercase());
            }
            None => {
                decoded.push('%');
                rest = &rest[at + 1..];
                continue;
            }
        }
        rest = &rest[at + 3..];
    }
    decoded.push_str(rest);
    // The separators before the first element: one slash, unless they
    // hold a backslash, then kept (slashes merged).
    let mut body = decoded.as_str();
    let mut lead = String::from("/");
    while let Some((sep, b)) = ["/", "\\"]
        .iter()
        .find_map(|sep| Some((*sep, body.strip_prefix(sep)?)))
    {
        if sep != "/" || !lead.ends_with('/') {
            lead.push_str(sep);
        }
        body = b;
    }
    let mut key = format!("{lead}{}", elements(body).join("/"));
    if decoded.len() > 1 && decoded.ends_with('/') && key.len() > 1 && !key.ends_with('/') {
        key.push('/');
    }
    key
}

/// Whether a Prefix rule key covers a request's key: the request's
/// elements (split on `/`) start with the key's, or with all but its last
/// then an element that continues the key's last with a `\\`, or that
/// continues a last element ending with one (a Prefix has a boundary
/// before and after every separator; keys spell a backslash `\\`).
fn covers(key: &str, request: &str) -> bool {
    let (have, want) = (elements(key), elements(request));
    let Some((last, init)) = have.split_last() else {
        return true;
    };
    want.starts_with(&have)
        || (want.len() >= have.len()
            && want.starts_with(init)
            && want[init.len()]
                .strip_prefix(last)
                .is_some_and(|rest| rest.starts_with('\\') || last.ends_with('\\')))
}

/// The reference: every rule of every served Ingress scanned, oldest
/// Ingress first and rules in the order written.
///
/// - Request host: without port and one trailing dot, lower case; a
///   non-ASCII or empty host matches host-less rules only.
/// - Hosts in turn: the exact host, the wildcard of its parent (one label
///   removed), host-less rules. Within one, rules are matched by their
///   key ([`rule_key`]; a rule with a dot segment matches nothing)
///   against the normalized request path and, when it differs, the
///   request's [`spell`]ing (after [`forward_path`] resolved its dot
///   segments). In each, an Exact rule equal
///   to the path wins; else the Prefix (or ImplementationSpecific) rule
///   that [`covers`] the path (its elements, split on `/`, start the
///   path's, the last one possibly continued after a `\`), the
///   longest key, then a trailing slash, then Prefix over
///   ImplementationSpecific; the first (oldest) of equals. Of the two
///   winners the spelled one wins when it is Exact, or when the other is
///   not and it covers at least as many elements counting every
///   separator. The outcome names rule paths as written. With no match
///   on a named host, the defaultBackend of the oldest Ingress with rules
///   for it (that has one) answers.
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
    let normalized = normalize_path(path);
    // The crate resolves the dot segments (keeping each separator as
    // written); the spelling is the reference's own.
    let spelled = spell(&forward_path(path));
    let spelled = (*spelled != *normalized).then_some(&*spelled);
    // The best rule for one spelling: (rank, outcome, rule key).
    type Best = Option<((usize, bool, bool), Outcome, String)>;
    for k in &keys {
        let contributes: Vec<&Ingress> = ingresses
            .iter()
            .filter(|i| {
                i.spec
                    .rules
                    .iter()
                    .any(|r| HostKey::of_rule(r.host.as_deref()) == *k)
            })
            .copied()
            .collect();
        let scan = |request: &str| -> Best {
            let mut best: Best = None;
            for ing in ingresses {
                for rule in &ing.spec.rules {
                    if HostKey::of_rule(rule.host.as_deref()) != *k {
                        continue;
                    }
                    for p in rule.http.iter().flat_map(|h| &h.paths) {
                        let rule_path = p.path.as_deref().unwrap_or("/");
                        let Some(matched) = rule_key(rule_path) else {
                            continue;
                        };
                        let backend = Backend::from_ingress(&ns(ing), &p.backend);
                        let outcome = |kind| {
                            Some((
                                key(ing),
                                Some((rule_path.to_string(), kind)),
                                backend.clone()?,
                            ))
                        };
                        match p.path_type {
                            PathType::Exact if matched == request => {
                                if best
                                    .as_ref()
                                    .is_none_or(|(rank, _, _)| rank.0 != usize::MAX)
                                {
                                    best = Some((
                                        (usize::MAX, true, true),
                                        outcome(MatchKind::Exact),
                                        matched,
                                    ));
                                }
                            }
                            PathType::Exact => {}
                            ty => {
                                if !covers(&matched, request) {
                                    continue;
                                }
                                let explicit = ty == PathType::Prefix;
                                // The keys covering one request: the
                                // longer reaches deeper.
                                let rank = (
                                    matched.strip_suffix('/').unwrap_or(&matched).len(),
                                    matched.len() > 1 && matched.ends_with('/'),
                                    explicit,
                                );
                                if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                                    let kind = if explicit {
                                        MatchKind::Prefix
                                    } else {
                                        MatchKind::ImplementationSpecific
                                    };
                                    best = Some((rank, outcome(kind), matched));
                                }
                            }
                        }
                    }
                }
            }
            best
        };
        let plain = scan(&normalized);
        let by_spelling = spelled.and_then(scan);
        let depth = |key: &str| elements(&all_separators(key)).len();
        let best = match (plain, by_spelling) {
            (Some(n), Some(s))
                if s.0.0 == usize::MAX || (n.0.0 != usize::MAX && depth(&s.2) >= depth(&n.2)) =>
            {
                Some(s)
            }
            (None, s) => s,
            (n, _) => n,
        };
        if let Some((_, outcome, _)) = best {
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

fn outcome(route: Option<crate::Route<'_>>) -> Outcome {
    route.map(|r| {
        (
            r.ingress().clone(),
            r.path()
                .map(|p| (p.to_string(), r.kind().unwrap_or(MatchKind::Regex))),
            r.backend().clone(),
        )
    })
}

/// The property: on every request, the router and the reference agree,
/// on the path as the client sent it ([`Router::route_request`]) and
/// normalized as the proxy normalizes it ([`Router::route`]).
fn check(case: usize, cluster: &Cluster, router: &Router, requests: &[(&str, String)], yaml: &str) {
    let mut ingresses: Vec<&Ingress> = cluster.ingresses().collect();
    ingresses.sort_by_key(|i| Age::of(&i.metadata));
    for (host, raw) in requests {
        assert_eq!(
            outcome(router.route_request(host, raw)),
            reference(&ingresses, host, raw),
            "case {case}: {host:?} {raw:?} against\n{yaml}"
        );
        let normalized = normalize_path(raw);
        assert_eq!(
            outcome(router.route(host, &normalized)),
            reference(&ingresses, host, &normalized),
            "case {case}: {host:?} {normalized:?} against\n{yaml}"
        );
    }
}

#[test]
fn router_agrees_with_a_scan_of_every_rule() {
    let mut rng = Rng(0x5eed_1234);
    let mut matched = 0;
    let mut encoded = 0;
    let mut escaped = 0;
    let mut backslash = 0;
    let mut crossed = 0;
    let mut dotted = 0;
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
        for (h, p) in &requests {
            let written = router.route_request(h, p).and_then(|r| r.path());
            encoded += usize::from(
                written.is_some_and(|w| ["%5C", "%5c", "%2F", "%2f"].iter().any(|e| w.contains(e))),
            );
            backslash += usize::from(
                written.is_some_and(|w| w.contains('\\')) && (p.contains('%') || p.contains("//")),
            );
            escaped += usize::from(written.is_some_and(|w| w.contains("%6")));
            // A backslash spelled one way reaching a rule spelling it the
            // other (`%5C` and `\` are one character for matching).
            let enc = |x: &str| x.to_ascii_uppercase().contains("%5C");
            crossed += usize::from(written.is_some_and(|w| {
                (enc(p) && !p.contains('\\') && w.contains('\\') && !enc(w))
                    || (p.contains('\\') && !enc(p) && enc(w) && !w.contains('\\'))
            }));
        }
        dotted += yaml.matches("%2e").count() + yaml.matches("/..").count();

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
    // And rules spelling a separator encoded, or unreserved characters
    // escaped, and rules with dot segments.
    assert!(
        encoded > 100,
        "only {encoded} matches of encoded rule paths ({escaped} escaped)"
    );
    // Rules with a raw backslash reached by a request spelling its path
    // differently (escapes, repeated slashes).
    assert!(
        backslash > 50,
        "only {backslash} matches of backslash rules by other spellings"
    );
    assert!(
        crossed > 50,
        "only {crossed} matches of a backslash rule by the other spelling"
    );
    assert!(
        escaped > 100,
        "only {escaped} matches of escaped rule paths"
    );
    assert!(dotted > 100, "only {dotted} rule paths with dot segments");
}
