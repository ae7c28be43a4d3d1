//! [`Router`]: every served Ingress merged into per-host tables.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8snet_model::{Cluster, Kind, NsName, ObjectRef};

pub(crate) mod hash;
mod index;
#[cfg(test)]
mod reference;

use crate::backend::Backend;
use crate::class::{ClassSelector, Resolved};
use crate::compile::{CompiledIngress, compile};
use crate::host::{self, HostKey, MAX_HOST};
use crate::report::{Report, ReportKind};
use crate::route::Route;
use crate::sharded::Sharded;
use crate::table::{Entry, HostTable};
use crate::tls::Certificate;
use index::{HostIndex, HostPaths, Side};

/// The compiled routing of one IngressClass.
///
/// Lookups hash the host (exact, then the wildcard of its parent, then
/// host-less rules) into one flat host index, then probe that host's flat
/// path table (the exact path, then the request's leading path elements,
/// longest first): O(host + path segments) whatever the number of rules,
/// touching the same few cache lines at 10 rules as at 10,000.
/// [`Router::update`] applies one changed object in time proportional to
/// that object's rules, plus one pass over the hosts and their path
/// slots to repack the index, sharing everything else with the previous router, which stays
/// valid (the proxy swaps routers while requests are in flight on the old
/// one).
#[derive(Debug, Clone)]
pub struct Router {
    selector: ClassSelector,
    class: Resolved,
    ingresses: Sharded<NsName, Arc<CompiledIngress>>,
    /// Ingresses with rules per host key, oldest first.
    contributors: Sharded<HostKey, Vec<Arc<CompiledIngress>>>,
    exact: Sharded<Box<str>, Arc<HostTable>>,
    wildcard: Sharded<Box<str>, Arc<HostTable>>,
    /// The path tables of `exact` and `wildcard`, built when a host's
    /// table changes.
    paths: Sharded<HostKey, Arc<HostPaths>>,
    /// Those path tables and their hosts packed into flat arrays: what
    /// lookups probe. Rebuilt whole when a host table changes.
    index: Arc<HostIndex>,
    any: Option<Arc<HostTable>>,
    /// Ingresses whose defaultBackend may catch every unclaimed request,
    /// oldest first; the first one does.
    defaults: Arc<Vec<Arc<CompiledIngress>>>,
    default: Option<Arc<Entry>>,
    /// Ingresses with certificates per TLS host key, oldest first.
    tls_contributors: Sharded<HostKey, Vec<Arc<CompiledIngress>>>,
    tls_exact: Sharded<Box<str>, Arc<TlsEntry>>,
    tls_wildcard: Sharded<Box<str>, Arc<TlsEntry>>,
    tls_default: Option<Arc<TlsEntry>>,
    /// Whether any host has a certificate of its own (so that
    /// [`Router::has_tls`] costs nothing when none does).
    tls_hosts: bool,
    /// The Ingresses naming each Secret.
    secret_users: Sharded<NsName, Vec<NsName>>,
}

/// The certificate a TLS host key resolved to.
#[derive(Debug)]
struct TlsEntry {
    cert: Arc<Certificate>,
    reports: Vec<Report>,
}

/// Counts, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RouterStats {
    /// Ingresses served.
    pub ingresses: usize,
    /// Host keys with rules (exact, wildcard and the host-less one).
    pub hosts: usize,
    /// Reachable path rules and defaultBackends.
    pub rules: usize,
    /// TLS host keys with a certificate.
    pub certificates: usize,
}

static ANY: HostKey = HostKey::Any;

impl Router {
    /// Compiles every Ingress of the selected class.
    pub fn compile(cluster: &Cluster, selector: &ClassSelector) -> Self {
        let class = selector.resolve(cluster);
        let mut compiled: Vec<Arc<CompiledIngress>> = cluster
            .ingresses()
            .filter(|i| class.selects(i))
            .map(|i| Arc::new(compile(i, cluster)))
            .collect();
        compiled.sort_by(|a, b| a.age.cmp(&b.age));
        let mut r = Self {
            selector: selector.clone(),
            class,
            ingresses: Sharded::default(),
            contributors: Sharded::default(),
            exact: Sharded::default(),
            wildcard: Sharded::default(),
            paths: Sharded::default(),
            index: Arc::default(),
            any: None,
            defaults: Arc::default(),
            default: None,
            tls_contributors: Sharded::default(),
            tls_exact: Sharded::default(),
            tls_wildcard: Sharded::default(),
            tls_default: None,
            tls_hosts: false,
            secret_users: Sharded::default(),
        };
        let mut hosts = BTreeSet::new();
        let mut tls = BTreeSet::new();
        for ing in &compiled {
            r.register(ing, &mut hosts, &mut tls);
        }
        r.rebuild(&hosts, &tls);
        r
    }

    /// The router after one object changed in `cluster` (which already
    /// holds the change): an Ingress (added, modified or deleted), a
    /// Secret, or an IngressClass. `None` when the change does not affect
    /// routing (then keep this router).
    ///
    /// An Ingress or Secret change costs time proportional to the rules
    /// and hosts of the Ingresses concerned; an IngressClass change that
    /// alters which Ingresses are served recompiles everything.
    pub fn update(&self, cluster: &Cluster, changed: &ObjectRef) -> Option<Self> {
        let key = || {
            NsName::new(
                changed
                    .namespace
                    .as_deref()
                    .unwrap_or(k8snet_model::meta::DEFAULT_NAMESPACE),
                changed.name.clone(),
            )
        };
        match changed.kind {
            Kind::Ingress => Some(self.with_ingresses(cluster, &[key()])),
            Kind::Secret => {
                let users = self.secret_users.get(&key())?.clone();
                Some(self.with_ingresses(cluster, &users))
            }
            Kind::IngressClass => {
                let class = self.selector.resolve(cluster);
                (class != self.class).then(|| Self::compile(cluster, &self.selector))
            }
            _ => None,
        }
    }

    /// Recompiles some Ingresses, reading their current state from `cluster`.
    fn with_ingresses(&self, cluster: &Cluster, keys: &[NsName]) -> Self {
        let mut next = self.clone();
        let mut hosts = BTreeSet::new();
        let mut tls = BTreeSet::new();
        for key in keys {
            // The model has no lookup by key for Ingresses; one pass over
            // them costs microseconds even at 10,000.
            let current = cluster.ingresses().find(|i| {
                i.metadata.name == key.name && i.metadata.namespace_or_default() == key.namespace
            });
            if let Some(old) = next.ingresses.remove(key) {
                next.unregister(&old, &mut hosts, &mut tls);
            }
            if let Some(ing) = current.filter(|i| self.class.selects(i)) {
                next.register(&Arc::new(compile(ing, cluster)), &mut hosts, &mut tls);
            }
        }
        next.rebuild(&hosts, &tls);
        next
    }

    /// Adds an Ingress to the indexes, noting the keys whose tables change.
    fn register(
        &mut self,
        ing: &Arc<CompiledIngress>,
        hosts: &mut BTreeSet<HostKey>,
        tls: &mut BTreeSet<HostKey>,
    ) {
        self.ingresses.insert(ing.key.clone(), ing.clone());
        for (k, _) in &ing.hosts {
            insert_by_age(self.contributors.entry_or_default(k.clone()), ing);
            hosts.insert(k.clone());
        }
        if ing.serves_global_default() {
            insert_by_age(Arc::make_mut(&mut self.defaults), ing);
            hosts.insert(HostKey::Any);
        }
        let mut seen = BTreeSet::new();
        for (k, _) in &ing.tls {
            if seen.insert(k) {
                insert_by_age(self.tls_contributors.entry_or_default(k.clone()), ing);
                tls.insert(k.clone());
            }
        }
        for s in &ing.secrets {
            let users = self.secret_users.entry_or_default(s.clone());
            if !users.contains(&ing.key) {
                users.push(ing.key.clone());
            }
        }
    }

    fn unregister(
        &mut self,
        ing: &Arc<CompiledIngress>,
        hosts: &mut BTreeSet<HostKey>,
        tls: &mut BTreeSet<HostKey>,
    ) {
        for (k, _) in &ing.hosts {
            remove_from(&mut self.contributors, k, &ing.key);
            hosts.insert(k.clone());
        }
        if ing.serves_global_default() {
            Arc::make_mut(&mut self.defaults).retain(|i| i.key != ing.key);
            hosts.insert(HostKey::Any);
        }
        for (k, _) in &ing.tls {
            remove_from(&mut self.tls_contributors, k, &ing.key);
            tls.insert(k.clone());
        }
        for s in &ing.secrets {
            remove_from_users(&mut self.secret_users, s, &ing.key);
        }
    }

    /// Rebuilds the tables of the given keys from their contributors.
    fn rebuild(&mut self, hosts: &BTreeSet<HostKey>, tls: &BTreeSet<HostKey>) {
        for k in hosts {
            let table = self
                .contributors
                .get(k)
                .filter(|c| !c.is_empty())
                .map(|c| Arc::new(HostTable::build(k, c)));
            if *k != HostKey::Any {
                let paths = table.as_ref().map(|t| Arc::new(HostPaths::build(t)));
                match paths {
                    Some(p) => self.paths.insert(k.clone(), p),
                    None => {
                        self.paths.remove(k);
                    }
                }
            }
            match k {
                HostKey::Exact(h) => set(&mut self.exact, h, table),
                HostKey::Wildcard(h) => set(&mut self.wildcard, h, table),
                HostKey::Any => {
                    self.any = table;
                    self.default = self.defaults.first().and_then(|i| {
                        i.default_backend.as_ref().map(|b| {
                            Arc::new(Entry {
                                ingress: i.clone(),
                                path: None,
                                key: Box::default(),
                                backend: b.clone(),
                            })
                        })
                    });
                }
            }
        }
        if hosts.iter().any(|k| *k != HostKey::Any) {
            // One pass over the hosts and their path slots (copied, not
            // rebuilt): the whole update took 0.44 ms with 1,000 hosts,
            // 6 ms with 10,000 (benches/route.rs).
            self.index = Arc::new(HostIndex::build(self.paths.values()));
        }
        for k in tls {
            let entry = self.tls_contributors.get(k).and_then(|c| resolve_tls(k, c));
            match k {
                HostKey::Exact(h) => set(&mut self.tls_exact, h, entry),
                HostKey::Wildcard(h) => set(&mut self.tls_wildcard, h, entry),
                HostKey::Any => self.tls_default = entry,
            }
        }
        self.tls_hosts = self.tls_exact.len() + self.tls_wildcard.len() > 0;
    }

    /// The route for a request: its `Host` header (or `:authority`; the
    /// port is ignored, case too) and its normalized path (without the
    /// query; see [`normalize_path`](crate::normalize_path)). `None` means
    /// 404.
    ///
    /// Hosts are tried from the most specific: the exact host, the
    /// wildcard of its parent, host-less rules; within each, a matching
    /// path wins, else that host's `defaultBackend` (from an Ingress with
    /// rules for it). Last comes the `defaultBackend` of an Ingress
    /// without host rules.
    ///
    /// A rule spelling a backslash, encoded or raw (`/a%5Cb`, `/a\b`), is
    /// not reached through the normalized path (`/a/b`): use
    /// [`Router::route_request`] with the path as the client sent it.
    #[inline]
    pub fn route(&self, host: &str, path: &str) -> Option<Route<'_>> {
        self.route_spelled(host, path, None)
    }

    /// The route for a request path as the client sent it (without the
    /// query): matched normalized ([`normalize_path`](crate::normalize_path)),
    /// as by [`Router::route`], and — only when the client spelled a
    /// backslash, encoded (`%5C`) or raw, so that its spelling differs
    /// from the normalized path — also against the rules spelled the same
    /// way, modulo unreserved escapes, hex case, repeated slashes and the
    /// spelling of the backslash (`/a%5cb`, `/%61%5Cb` and `/a\b` reach a
    /// rule `/a%5Cb` or `/a\b`, which `/a/b` does not). `%2F` is a slash there too, as nginx decodes it before it
    /// matches locations. Of the two matches the more specific wins: an
    /// Exact rule, else the one covering more elements of the normalized
    /// path, the spelled one on a tie.
    pub fn route_request(&self, host: &str, path: &str) -> Option<Route<'_>> {
        let normalized = crate::path::normalize_path(path);
        if matches!(normalized, std::borrow::Cow::Borrowed(_)) {
            return self.route_spelled(host, path, None);
        }
        let spelled = crate::path::request_spelling(path);
        let spelled = spelled.as_deref().filter(|s| **s != *normalized);
        self.route_spelled(host, &normalized, spelled)
    }

    /// [`Router::route`] with the request's spelled key ([`spelled_key`])
    /// when it differs from the normalized `path`.
    ///
    /// [`spelled_key`]: crate::path::spelled_key
    #[inline]
    pub(crate) fn route_spelled(
        &self,
        host: &str,
        path: &str,
        forward: Option<&str>,
    ) -> Option<Route<'_>> {
        // Case is folded by the hash and the comparison, not copied; a
        // host that is not ASCII (no hash) can match host-less rules only.
        if !self.index.is_empty()
            && let Some(h) = host::request_host(host)
            && let Some(hash) = Side::Exact.hash(h)
        {
            if let Some(r) = self
                .index
                .get(Side::Exact, hash, h)
                .and_then(|i| self.index.route(i, path, forward))
            {
                return Some(r);
            }
            if self.index.has_wildcards()
                && let Some(p) = host::parent(h)
                && let Some(hash) = Side::Wildcard.hash(p)
                && let Some(r) = self
                    .index
                    .get(Side::Wildcard, hash, p)
                    .and_then(|i| self.index.route(i, path, forward))
            {
                return Some(r);
            }
        }
        if let Some(r) = self.any.as_deref().and_then(|t| found(t, path, forward)) {
            return Some(r);
        }
        self.default.as_deref().map(|entry| Route {
            entry,
            host: &ANY,
            regex: None,
        })
    }

    /// The certificate for a TLS server name (SNI): the exact host, else
    /// the wildcard of its parent, else the default certificate (a TLS
    /// block without `hosts`). As the Ingress docs say, SNI picks the
    /// certificate and the Host header picks the route.
    pub fn certificate(&self, sni: &str) -> Option<&Arc<Certificate>> {
        let mut buf = [0u8; MAX_HOST];
        if let Some(h) = host::normalize(sni, &mut buf) {
            if let Some(e) = self.tls_exact.get(h) {
                return Some(&e.cert);
            }
            if let Some(e) = host::parent(h).and_then(|p| self.tls_wildcard.get(p)) {
                return Some(&e.cert);
            }
        }
        self.default_certificate()
    }

    /// The certificate for clients that send no SNI (or an unknown name).
    pub fn default_certificate(&self) -> Option<&Arc<Certificate>> {
        self.tls_default.as_ref().map(|e| &e.cert)
    }

    /// Every certificate in use.
    pub fn certificates(&self) -> impl Iterator<Item = &Arc<Certificate>> {
        self.tls_entries().map(|e| &e.cert)
    }

    /// Whether a host has a certificate of its own (not the default one):
    /// `ssl-redirect` applies to such hosts.
    pub fn has_tls(&self, host: &str) -> bool {
        if !self.tls_hosts {
            return false;
        }
        let mut buf = [0u8; MAX_HOST];
        host::normalize(host, &mut buf).is_some_and(|h| {
            self.tls_exact.get(h).is_some()
                || host::parent(h).is_some_and(|p| self.tls_wildcard.get(p).is_some())
        })
    }

    /// Every report: class problems, each Ingress's annotation and TLS
    /// problems, shadowed rules. Each problem appears once.
    pub fn reports(&self) -> Vec<Report> {
        let mut out = self.class.reports.clone();
        let mut ings: Vec<&Arc<CompiledIngress>> = self.ingresses.values().collect();
        ings.sort_by(|a, b| a.key.cmp(&b.key));
        for i in ings {
            out.extend(i.reports.iter().cloned());
        }
        out.extend(self.tables().flat_map(|t| t.reports.iter().cloned()));
        out.extend(self.tls_entries().flat_map(|t| t.reports.iter().cloned()));
        out
    }

    /// The reports about one Ingress (after [`Router::update`], to show
    /// what its change brought).
    pub fn reports_for(&self, ingress: &NsName) -> Vec<Report> {
        let Some(ing) = self.ingresses.get(ingress) else {
            return Vec::new();
        };
        let mut out = ing.reports.clone();
        for (k, _) in &ing.hosts {
            if let Some(t) = self.table(k) {
                out.extend(
                    t.reports
                        .iter()
                        .filter(|r| r.ingress.as_ref() == Some(ingress))
                        .cloned(),
                );
            }
        }
        out
    }

    /// Every backend a request can reach (each once), for resolving
    /// endpoints.
    pub fn backends(&self) -> Vec<&Backend> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let entries = self
            .tables()
            .flat_map(|t| t.entries.iter())
            .chain(self.default.as_deref());
        for e in entries {
            if seen.insert(&e.backend) {
                out.push(&e.backend);
            }
        }
        out
    }

    /// The class selection this router was compiled for.
    pub fn selector(&self) -> &ClassSelector {
        &self.selector
    }

    /// Counts of what was compiled.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            ingresses: self.ingresses.len(),
            hosts: self.exact.len() + self.wildcard.len() + usize::from(self.any.is_some()),
            rules: self.tables().map(|t| t.entries.len()).sum::<usize>()
                + usize::from(self.default.is_some()),
            certificates: self.tls_exact.len()
                + self.tls_wildcard.len()
                + usize::from(self.tls_default.is_some()),
        }
    }

    fn tables(&self) -> impl Iterator<Item = &HostTable> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .chain(self.any.as_ref())
            .map(|t| &**t)
    }

    fn tls_entries(&self) -> impl Iterator<Item = &TlsEntry> {
        self.tls_exact
            .values()
            .chain(self.tls_wildcard.values())
            .chain(self.tls_default.as_ref())
            .map(|t| &**t)
    }

    fn table(&self, k: &HostKey) -> Option<&HostTable> {
        match k {
            HostKey::Exact(h) => self.exact.get(h).map(|t| &**t),
            HostKey::Wildcard(h) => self.wildcard.get(h).map(|t| &**t),
            HostKey::Any => self.any.as_deref(),
        }
    }
}

#[inline]
fn found<'r>(t: &'r HostTable, path: &str, forward: Option<&str>) -> Option<Route<'r>> {
    t.lookup(path, forward).map(|(entry, regex)| Route {
        entry,
        host: &t.key,
        regex,
    })
}

fn set<V: Clone>(map: &mut Sharded<Box<str>, V>, key: &str, value: Option<V>) {
    match value {
        Some(v) => map.insert(key.into(), v),
        None => {
            map.remove(key);
        }
    }
}

/// Inserts keeping the list sorted oldest first (and without repeats).
fn insert_by_age(list: &mut Vec<Arc<CompiledIngress>>, ing: &Arc<CompiledIngress>) {
    list.retain(|i| i.key != ing.key);
    let at = list.partition_point(|i| i.age < ing.age);
    list.insert(at, ing.clone());
}

fn remove_from(map: &mut Sharded<HostKey, Vec<Arc<CompiledIngress>>>, k: &HostKey, ing: &NsName) {
    if let Some(list) = map.get(k) {
        let left: Vec<_> = list.iter().filter(|i| i.key != *ing).cloned().collect();
        if left.is_empty() {
            map.remove(k);
        } else {
            map.insert(k.clone(), left);
        }
    }
}

fn remove_from_users(map: &mut Sharded<NsName, Vec<NsName>>, secret: &NsName, ing: &NsName) {
    if let Some(users) = map.get(secret) {
        let left: Vec<_> = users.iter().filter(|u| *u != ing).cloned().collect();
        if left.is_empty() {
            map.remove(secret);
        } else {
            map.insert(secret.clone(), left);
        }
    }
}

/// The oldest Ingress's certificate for a TLS host key; newer Ingresses
/// naming a different Secret for the same host are reported.
fn resolve_tls(k: &HostKey, contributors: &[Arc<CompiledIngress>]) -> Option<Arc<TlsEntry>> {
    let mut chosen: Option<(Arc<Certificate>, &NsName)> = None;
    let mut reports = Vec::new();
    for ing in contributors {
        for (_, cert) in ing.tls.iter().filter(|(hk, _)| hk == k) {
            match &chosen {
                None => chosen = Some((cert.clone(), &ing.key)),
                Some((c, owner)) if c.secret() != cert.secret() => reports.push(Report::new(
                    Some(&ing.key),
                    ReportKind::Tls,
                    format!(
                        "TLS host {k}: Secret {} is not used; the older Ingress {owner} gives Secret {}",
                        cert.secret(),
                        c.secret()
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    chosen.map(|(cert, _)| Arc::new(TlsEntry { cert, reports }))
}

// The proxy shares one router between its threads.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Router>();
    shared::<Certificate>();
};
