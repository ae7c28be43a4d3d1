//! The crate's error type.

/// What can go wrong with the input this crate parses: endpoints, probe
/// lists, port sets and output formats. Compiling and evaluating cannot
/// fail: a [`Cluster`](k8snet_model::Cluster) holds only validated objects.
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
    /// An unknown matrix format.
    #[error("unknown format {0:?} (expected table, json, csv or dot)")]
    Format(String),
}
