//! The table of one host: every rule that Ingresses give it, merged.

use std::sync::Arc;

use regex::Regex;

use crate::backend::Backend;
use crate::compile::CompiledIngress;
use crate::host::HostKey;
use crate::path::{MatchKind, PathTable, Rejected, depth};
use crate::report::{Report, ReportKind};

/// A rule (or a `defaultBackend`) a request can end at.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) ingress: Arc<CompiledIngress>,
    /// `None` for a `defaultBackend`; the path as written.
    pub(crate) path: Option<(Box<str>, MatchKind)>,
    /// The path requests are matched against (the rule's key,
    /// `PathRule::key`); empty for a `defaultBackend`.
    pub(crate) key: Box<str>,
    pub(crate) backend: Backend,
}

/// All rules for one host key, merged across Ingresses.
#[derive(Debug)]
pub(crate) struct HostTable {
    pub(crate) key: HostKey,
    pub(crate) entries: Vec<Entry>,
    paths: PathTable,
    /// The `defaultBackend` of the oldest Ingress with rules for this host
    /// that has one: it catches this host's requests that match no path.
    default: Option<u32>,
    pub(crate) reports: Vec<Report>,
}

impl HostTable {
    /// Merges the rules for `key` of `contributors`, which must be sorted
    /// oldest first: an older Ingress keeps a rule that a newer one repeats
    /// (ingress-nginx's rule), and the newer one is reported.
    pub(crate) fn build(key: &HostKey, contributors: &[Arc<CompiledIngress>]) -> Self {
        let mut t = Self {
            key: key.clone(),
            entries: Vec::new(),
            paths: PathTable::default(),
            default: None,
            reports: Vec::new(),
        };
        for ing in contributors {
            for rule in ing
                .hosts
                .iter()
                .filter(|(k, _)| k == key)
                .flat_map(|(_, r)| r)
            {
                let idx = u32::try_from(t.entries.len()).unwrap_or(u32::MAX);
                match t.paths.insert(&rule.key, rule.kind, idx) {
                    Ok(()) => t.entries.push(Entry {
                        ingress: ing.clone(),
                        path: Some((rule.path.clone(), rule.kind)),
                        key: rule.key.clone(),
                        backend: rule.backend.clone(),
                    }),
                    Err(Rejected::Duplicate(older)) => {
                        let owner = t.entries.get(older as usize).map(|e| &e.ingress.key);
                        let same = owner == Some(&ing.key);
                        t.reports.push(Report::new(
                            Some(&ing.key),
                            ReportKind::ShadowedRule,
                            format!(
                                "rule {key}{} ({:?}) is already defined by {}, which keeps it",
                                rule.path,
                                rule.kind,
                                match owner {
                                    Some(o) if !same => format!("the older Ingress {o}"),
                                    _ => "an earlier path of this Ingress".into(),
                                }
                            ),
                        ));
                    }
                    Err(Rejected::BadRegex(why)) => t.reports.push(Report::new(
                        Some(&ing.key),
                        ReportKind::InvalidPath,
                        format!(
                            "path {:?} is not a valid regex (use-regex), left out: {why}",
                            rule.path
                        ),
                    )),
                }
            }
            if t.default.is_none()
                && *key != HostKey::Any
                && let Some(b) = &ing.default_backend
            {
                t.default = Some(u32::try_from(t.entries.len()).unwrap_or(u32::MAX));
                t.entries.push(Entry {
                    ingress: ing.clone(),
                    path: None,
                    key: Box::default(),
                    backend: b.clone(),
                });
            }
        }
        t
    }

    /// The entry for a path: a rule, else this host's `defaultBackend`.
    /// `forward` is the request's spelled key ([`spelled_key`]) when it
    /// differs from the normalized `path`: rules spelled that way are
    /// then tried too (see [`spelled_wins`]).
    ///
    /// [`spelled_key`]: crate::path::spelled_key
    #[inline]
    pub(crate) fn lookup(
        &self,
        path: &str,
        forward: Option<&str>,
    ) -> Option<(&Entry, Option<&Regex>)> {
        let written = |i: u32| {
            self.entries
                .get(i as usize)
                .and_then(|e| e.path.as_ref())
                .map_or(0, |(p, _)| p.len())
        };
        let mut found = self
            .paths
            .lookup(path, written)
            .and_then(|(i, re)| Some((self.entries.get(i as usize)?, re)));
        if let Some(f) = forward
            && let Some(spelled) = self
                .paths
                .lookup_spelled(f)
                .and_then(|i| self.entries.get(i as usize))
            && found.is_none_or(|(n, _)| spelled_wins(n, spelled))
        {
            found = Some((spelled, None));
        }
        found.or_else(|| {
            self.default
                .and_then(|i| self.entries.get(i as usize))
                .map(|e| (e, None))
        })
    }
}

/// Whether the rule a request's spelling matched (an Exact or Prefix
/// key, never a regex: see [`HostTable::lookup`]) beats the rule its
/// normalized path matched: an Exact rule beats any other, a regex wins
/// only with a longer written path (as against a prefix), and of two
/// prefixes the one covering more elements of the normalized path wins
/// (`/a%5Cb` covers two), the spelled one on a tie (it is the more
/// specific spelling: `/a%5cb/x` and `/a\b/x` reach `/a%5Cb` rather than
/// `/a/b`, while `/a/b/x` never reaches `/a%5Cb`).
pub(crate) fn spelled_wins(normalized: &Entry, spelled: &Entry) -> bool {
    let (Some((n_path, n_kind)), Some((s_path, s_kind))) = (&normalized.path, &spelled.path) else {
        return normalized.path.is_none();
    };
    match (n_kind, s_kind) {
        (_, MatchKind::Exact) => true,
        (MatchKind::Exact, _) => false,
        (MatchKind::Regex, _) => s_path.len() >= n_path.len(),
        _ => depth(&spelled.key) >= depth(&normalized.key),
    }
}
