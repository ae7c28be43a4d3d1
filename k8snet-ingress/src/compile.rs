//! One Ingress compiled on its own: its settings, its rules grouped by
//! host, its certificates. The router merges these per host.

use std::sync::Arc;

use k8snet_model::{Cluster, Ingress, NsName, PathType};

use crate::age::Age;
use crate::annotations::{self, NGINX_PREFIX, Problem, Settings};
use crate::backend::Backend;
use crate::host::HostKey;
use crate::path::{MatchKind, rule_key};
use crate::report::{Report, ReportKind};
use crate::tls::Certificate;

/// An Ingress, compiled.
#[derive(Debug)]
pub(crate) struct CompiledIngress {
    pub(crate) key: NsName,
    pub(crate) age: Age,
    pub(crate) settings: Settings,
    pub(crate) default_backend: Option<Backend>,
    /// Each host once (rules naming the same host are merged), in the
    /// order the Ingress lists them; paths in list order.
    pub(crate) hosts: Vec<(HostKey, Vec<PathRule>)>,
    pub(crate) tls: Vec<(HostKey, Arc<Certificate>)>,
    /// Secrets named by `tls`, found or not (a Secret created later must
    /// trigger a recompile).
    pub(crate) secrets: Vec<NsName>,
    /// Problems found compiling this Ingress alone.
    pub(crate) reports: Vec<Report>,
}

/// One path of one rule.
#[derive(Debug, Clone)]
pub(crate) struct PathRule {
    /// As written: what reports show and precedence measures.
    pub(crate) path: Box<str>,
    /// What requests are matched against: the written path's spelled key
    /// ([`rule_key`]: unreserved escapes decoded, hex in upper case,
    /// repeated slashes merged, `%2F` a slash, a backslash (`%5C` or
    /// `\\`) kept and written `\\`, dot segments never resolved), so that
    /// `/a%5Cb` and `/a/b` stay distinct rules and the first (the rule
    /// `/a\\b`) is reached by the requests spelling a backslash there,
    /// while `/a%2Fb` is `/a/b`; a regex as written.
    pub(crate) key: Box<str>,
    pub(crate) kind: MatchKind,
    pub(crate) backend: Backend,
}

impl CompiledIngress {
    /// Whether the Ingress has a rule naming a host: then its
    /// `defaultBackend` serves only its own hosts, not every request.
    pub(crate) fn has_host_rules(&self) -> bool {
        self.hosts.iter().any(|(k, _)| *k != HostKey::Any)
    }

    /// Whether its `defaultBackend` is a candidate for requests no host
    /// claims.
    pub(crate) fn serves_global_default(&self) -> bool {
        self.default_backend.is_some() && !self.has_host_rules()
    }
}

pub(crate) fn compile(ing: &Ingress, cluster: &Cluster) -> CompiledIngress {
    let ns = ing.metadata.namespace_or_default();
    let key = NsName::new(ns, ing.metadata.name.clone());
    let mut reports = Vec::new();

    let (settings, problems) = annotations::parse(&ing.metadata.annotations);
    for p in problems {
        reports.push(match p {
            Problem::Unsupported(keys) => Report::new(
                Some(&key),
                ReportKind::UnsupportedAnnotations,
                format!(
                    "annotations not supported by k8snet-ingress, ignored: {}",
                    keys.iter()
                        .map(|k| k.strip_prefix(NGINX_PREFIX).unwrap_or(k))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Problem::Invalid { key: k, value, why } => Report::new(
                Some(&key),
                ReportKind::InvalidAnnotation,
                format!("annotation {k}: {value:?}: {why}"),
            ),
        });
    }

    let regex = settings.regex_paths();
    let mut hosts: Vec<(HostKey, Vec<PathRule>)> = Vec::new();
    for rule in &ing.spec.rules {
        let hk = HostKey::of_rule(rule.host.as_deref());
        let at = match hosts.iter().position(|(k, _)| *k == hk) {
            Some(i) => i,
            None => {
                hosts.push((hk, Vec::new()));
                hosts.len() - 1
            }
        };
        for p in rule.http.iter().flat_map(|h| &h.paths) {
            let Some(backend) = Backend::from_ingress(ns, &p.backend) else {
                continue; // refused by validation; nothing to route to
            };
            let kind = match p.path_type {
                PathType::Exact => MatchKind::Exact,
                PathType::Prefix => MatchKind::Prefix,
                _ if regex => MatchKind::Regex,
                _ => MatchKind::ImplementationSpecific,
            };
            let path = p.path.as_deref().filter(|s| !s.is_empty()).unwrap_or("/");
            let key = match kind {
                MatchKind::Regex => path.into(),
                _ => match rule_key(path) {
                    Some(k) => k.into(),
                    None => {
                        reports.push(Report::new(
                            Some(&key),
                            ReportKind::UnreachablePath,
                            format!(
                                "path {path:?} ({kind:?}) contains a dot segment; matches nothing, left out"
                            ),
                        ));
                        continue;
                    }
                },
            };
            hosts[at].1.push(PathRule {
                path: path.into(),
                key,
                kind,
                backend,
            });
        }
    }

    let mut tls = Vec::new();
    let mut secrets = Vec::new();
    for (i, t) in ing.spec.tls.iter().enumerate() {
        let Some(name) = t.secret_name.as_deref().filter(|s| !s.is_empty()) else {
            reports.push(Report::new(
                Some(&key),
                ReportKind::Tls,
                format!("spec.tls[{i}] names no secretName; its hosts are not served over TLS"),
            ));
            continue;
        };
        let secret_key = NsName::new(ns, name);
        secrets.push(secret_key.clone());
        let cert = match cluster.secret(&secret_key).map(Certificate::from_secret) {
            Some(Ok(c)) => Arc::new(c),
            Some(Err(why)) => {
                reports.push(Report::new(
                    Some(&key),
                    ReportKind::Tls,
                    format!("spec.tls[{i}]: {why}"),
                ));
                continue;
            }
            None => {
                reports.push(Report::new(
                    Some(&key),
                    ReportKind::Tls,
                    format!("spec.tls[{i}]: Secret {secret_key} not found"),
                ));
                continue;
            }
        };
        if t.hosts.is_empty() {
            tls.push((HostKey::Any, cert));
        } else {
            for h in &t.hosts {
                tls.push((HostKey::of_rule(Some(h)), cert.clone()));
            }
        }
    }

    CompiledIngress {
        age: Age::of(&ing.metadata),
        key,
        default_backend: ing
            .spec
            .default_backend
            .as_ref()
            .and_then(|b| Backend::from_ingress(ns, b)),
        settings,
        hosts,
        tls,
        secrets,
        reports,
    }
}
