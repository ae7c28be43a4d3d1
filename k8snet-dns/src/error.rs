//! The crate's error type.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range or malformed.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A domain name cannot be encoded.
    #[error("invalid domain name {0:?}")]
    InvalidName(String),
    /// A record type name is not one we know.
    #[error("unknown record type {0:?}")]
    UnknownType(String),
    /// A DNS message could not be built or decoded.
    #[error("DNS message: {0}")]
    Message(String),
    /// A socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No upstream server answered.
    #[error("no upstream answered: {0}")]
    Upstream(String),
}

impl Error {
    #[cfg_attr(not(all(feature = "linux", target_os = "linux")), allow(dead_code))]
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
