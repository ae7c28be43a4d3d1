//! The crate's error type.

/// What can go wrong with the input this crate parses: endpoints, probe
/// lists, port sets and output formats. Compiling and evaluating cannot
/// fail: a [`Cluster`](k8snet_model::Cluster) holds validated objects, and
/// a policy field that still cannot be read (an object that skipped
/// validation) is compiled failing closed and reported by
/// [`PolicySet::errors`](crate::PolicySet::errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither `namespace/pod` nor an IP address.
    #[error("{0:?} is neither namespace/pod nor an IP address")]
    Endpoint(String),
    /// A pod no policy set knows (or a finished one).
    #[error("unknown pod {0}")]
    UnknownPod(String),
    /// A probe list that does not parse.
    #[error("invalid probe list: {0}")]
    Probes(String),
    /// A port set that does not parse (e.g. `TCP 80,8080-8090`).
    #[error("invalid port set {input:?}: {reason}")]
    Ports {
        /// The text.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A policy field the compiler could not read (validation refuses it;
    /// only an object inserted without validation has one). The rule
    /// fails closed, never admitting more than any readable value would:
    /// an unreadable peer of an Allow rule (or of a Baseline-tier Pass)
    /// matches nothing, one of a Deny rule matches every address, and an
    /// Admin-tier Pass rule with one denies every address (see
    /// [`PolicySet::errors`](crate::PolicySet::errors)).
    #[error("{object}: {field}: {message}")]
    Unreadable {
        /// The policy.
        object: k8snet_model::ObjectRef,
        /// The field path, e.g. `spec.ingress[0].from[0].ipBlock.except[1]`.
        field: String,
        /// What is wrong with the value.
        message: String,
    },
    /// An unknown matrix format.
    #[error("unknown format {0:?} (expected table, json, csv or dot)")]
    Format(String),
}
