//! The crate's error type.

/// Everything that can go wrong in this crate. Messages name the object and
/// the field at fault, e.g. `Service default/web: spec.ports[0]: …`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A hash table cannot be built from these parameters.
    #[error("{table}: {reason}")]
    Table {
        /// Which table (`Maglev table of size 8`, `ring hash`, …).
        table: String,
        /// Why it was refused.
        reason: String,
    },
    /// An object cannot be planned or programmed as given.
    #[error("{object}: {field}: {reason}")]
    Invalid {
        /// The object, e.g. `Service default/web` or `node node-1`.
        object: String,
        /// The field path, e.g. `spec.ports[0].nodePort`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The nftables layer refused or failed.
    #[error("nftables: {0}")]
    Nft(#[from] k8snet_nft::Error),
    /// A port cannot be opened (a health check port in use, an address
    /// the host does not have).
    #[error("{object}: {field}: listen on {addr}: {source}")]
    Listen {
        /// What the port is for, e.g. `Service default/web`.
        object: String,
        /// The field that asks for it, e.g. `spec.healthCheckNodePort`.
        field: String,
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// An operating system call failed (netlink, sockets).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn table(table: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Table {
            table: table.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(
        object: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            object: object.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
