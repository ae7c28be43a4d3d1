//! Reports: what the router could not honour, said once, never silently.

use std::fmt;

use k8snet_model::NsName;

/// Something in the configuration that the router ignored or worked
/// around. Reports are data: the caller decides how to show them (the
/// proxy logs each one with `tracing` when the Ingress is compiled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The Ingress concerned; `None` for class-level problems.
    pub ingress: Option<NsName>,
    /// What kind of problem.
    pub kind: ReportKind,
    /// What happened and what the router did instead.
    pub message: String,
}

/// The kinds of [`Report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReportKind {
    /// `nginx.ingress.kubernetes.io/` annotations k8snet does not implement
    /// (one report per Ingress, listing them all).
    UnsupportedAnnotations,
    /// A supported annotation with a value that does not parse.
    InvalidAnnotation,
    /// A rule that an older Ingress already defines (it keeps it).
    ShadowedRule,
    /// A regex path that does not compile; the path is left out.
    InvalidPath,
    /// A path with a `.` or `..` segment (`/static/..`, `/x/%2e%2e`):
    /// request paths are matched with their dot segments resolved, so no
    /// request can match it (nor in nginx); the path is left out.
    UnreachablePath,
    /// A TLS block that cannot be served (missing or wrong Secret).
    Tls,
    /// Class selection (e.g. several default IngressClasses).
    Class,
}

impl Report {
    pub(crate) fn new(
        ingress: Option<&NsName>,
        kind: ReportKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            ingress: ingress.cloned(),
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ingress {
            Some(i) => write!(f, "Ingress {i}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
