//! [`Route`]: the outcome of a lookup.

use regex::Regex;

use k8snet_model::NsName;

use crate::annotations::Settings;
use crate::backend::Backend;
use crate::host::HostKey;
use crate::path::MatchKind;
use crate::table::Entry;

/// Where a request goes, borrowed from the [`Router`](crate::Router) that
/// found it (a lookup allocates nothing).
#[derive(Debug, Clone, Copy)]
pub struct Route<'r> {
    pub(crate) entry: &'r Entry,
    pub(crate) host: &'r HostKey,
    pub(crate) regex: Option<&'r Regex>,
}

impl<'r> Route<'r> {
    /// The backend.
    pub fn backend(&self) -> &'r Backend {
        &self.entry.backend
    }

    /// The Ingress the rule belongs to.
    pub fn ingress(&self) -> &'r NsName {
        &self.entry.ingress.key
    }

    /// The settings from that Ingress's annotations.
    pub fn settings(&self) -> &'r Settings {
        &self.entry.ingress.settings
    }

    /// The rule's host as written (`foo.com`, `*.foo.com`), `None` for a
    /// host-less rule or a catch-all `defaultBackend`.
    pub fn host(&self) -> Option<String> {
        match self.host {
            HostKey::Any => None,
            k => Some(k.to_string()),
        }
    }

    /// The rule's path; `None` when the request matched no path and went
    /// to a `defaultBackend`.
    pub fn path(&self) -> Option<&'r str> {
        self.entry.path.as_ref().map(|(p, _)| &**p)
    }

    /// The `Path` of a cookie scoped to this rule (session affinity): the
    /// leading plain elements of the rule's path as it is matched, which
    /// every request reaching the rule by its usual spelling starts with
    /// (`/api` for a Prefix `/api/`, so that `/api` sends it too; `/` for
    /// `/a%5Cb`, which `/a%5cb` reaches; `/api` for `/%61pi`; `/git` for
    /// `/git/group%2Fname`, which `/git/group%2fname` reaches). `/` for a
    /// regex or a `defaultBackend`.
    pub(crate) fn cookie_path(&self) -> &'r str {
        match (self.kind(), self.path()) {
            (
                Some(MatchKind::Exact | MatchKind::Prefix | MatchKind::ImplementationSpecific),
                Some(written),
            ) => crate::path::plain_prefix(&self.entry.key, written),
            _ => "/",
        }
    }

    /// How the path matched; `None` for a `defaultBackend`.
    pub fn kind(&self) -> Option<MatchKind> {
        self.entry.path.as_ref().map(|(_, k)| *k)
    }

    /// Whether the request went to a `defaultBackend`.
    pub fn is_default_backend(&self) -> bool {
        self.entry.path.is_none()
    }

    /// The path the backend should see under `rewrite-target`, or `None`
    /// when the Ingress does not rewrite. As nginx's `rewrite … break`, the
    /// whole path is replaced, `$1`…`$9` taking the capture groups of a
    /// regex path (empty when there is no such group); `path` is the
    /// (normalized) request path without its query.
    pub fn rewrite(&self, path: &str) -> Option<String> {
        let target = self.settings().rewrite_target.as_deref()?;
        let caps = self.regex.and_then(|re| re.captures(path));
        let mut out = String::with_capacity(target.len() + path.len());
        let mut chars = target.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c == '$'
                && let Some(&(_, d)) = chars.peek()
                && let Some(n) = d.to_digit(10)
            {
                chars.next();
                if let Some(m) = caps.as_ref().and_then(|c| c.get(n as usize)) {
                    out.push_str(m.as_str());
                }
                continue;
            }
            out.push(c);
        }
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        Some(out)
    }
}
