//! The crate's error type.

/// Everything that can fail in this crate. Routing itself never fails:
/// what it cannot honour becomes a [`Report`](crate::Report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed (reading a manifest, binding a socket).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS setting or certificate is unusable.
    #[error("TLS: {0}")]
    Tls(String),
}

impl Error {
    #[cfg_attr(not(feature = "linux"), allow(dead_code))]
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
