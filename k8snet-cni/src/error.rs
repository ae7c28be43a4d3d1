//! Errors: the crate's [`Error`] and the wire form [`CniError`] that
//! plugins print and runtimes parse, with the spec's well-known codes.

use std::io;

use serde::{Deserialize, Serialize};

/// The well-known error codes of the CNI specification (0–99 are reserved
/// for it; plugins use 100 and up), plus the ones libcni's Go packages use.
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist (no cleanup is needed).
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables.
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO: u32 = 5;
    /// Failed to decode content.
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Invalid network namespace (Go's `ErrInvalidNetNS`).
    pub const INVALID_NETNS: u32 = 8;
    /// Try again later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin is not available (cannot serve ADD).
    pub const UNAVAILABLE: u32 = 50;
    /// STATUS: the plugin is available but connectivity is degraded.
    pub const DEGRADED: u32 = 51;
    /// host-local (this crate's): no free address left in a range set.
    pub const IP_EXHAUSTED: u32 = 100;
    /// A failure with no better code (Go's `ErrInternal`).
    pub const INTERNAL: u32 = 999;
}

/// The error object of the spec, as printed by a plugin (on stdout, which
/// is where libcni reads it) and parsed by a runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    /// The version of the configuration the plugin was called with; empty
    /// (and then not printed, as the Go skeleton never prints it) when it
    /// is not known.
    #[serde(
        rename = "cniVersion",
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub cni_version: String,
    /// The error code (see [`code`]).
    pub code: u32,
    /// A short message.
    #[serde(default)]
    pub msg: String,
    /// Longer details, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// Everything that can go wrong in this crate, each with its CNI code
/// ([`Error::code`]). Messages name the field or variable at fault, e.g.
/// `ipam.ranges[0][0].subnet: invalid IP network`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration's version is not one the plugin supports (code 1).
    #[error("incompatible CNI versions: config is {config:?}, plugin supports {supported:?}")]
    IncompatibleVersion {
        /// The version asked for.
        config: String,
        /// What the plugin supports.
        supported: Vec<String>,
    },
    /// A field whose value the plugin does not support (code 2).
    #[error("{field}: unsupported value {value}")]
    UnsupportedField {
        /// The field path.
        field: String,
        /// The value, as JSON text.
        value: String,
    },
    /// The container is unknown (code 3).
    #[error("unknown container {0}")]
    UnknownContainer(String),
    /// A `CNI_*` variable is missing or invalid (code 4).
    #[error("{var}: {message}")]
    Env {
        /// The variable(s), e.g. `CNI_NETNS`.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// An I/O failure (code 5).
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Input that is not the expected JSON (code 6).
    #[error("{field}: {message}")]
    Decode {
        /// The field path (`.` for the document itself).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A configuration that parses but is not valid (code 7).
    #[error("{field}: {message}")]
    Config {
        /// The field path, e.g. `plugins[1].ipam.ranges[0][0].subnet`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The network namespace cannot be used (code 8).
    #[error("{path}: {message}")]
    Netns {
        /// The namespace path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A transient failure, e.g. a lock held too long (code 11).
    #[error("{0}")]
    TryAgain(String),
    /// STATUS: not available (code 50).
    #[error("{0}")]
    Unavailable(String),
    /// STATUS: degraded (code 51).
    #[error("{0}")]
    Degraded(String),
    /// An error a plugin reported (runtime side), with the plugin named.
    #[error("plugin {plugin}: {error}")]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// What it printed.
        error: CniError,
    },
    /// A plugin could not be run (runtime side).
    #[error("plugin {plugin}: {message}")]
    Exec {
        /// The plugin type.
        plugin: String,
        /// What went wrong.
        message: String,
    },
    /// A kernel operation failed (netlink, nftables).
    #[error("{what}: {message}")]
    Kernel {
        /// The operation, naming the object.
        what: String,
        /// The kernel's answer.
        message: String,
    },
    /// Any other failure, with an explicit code (plugin codes are 100+).
    #[error("{msg}")]
    Other {
        /// The code.
        code: u32,
        /// The message.
        msg: String,
        /// Details.
        details: String,
    },
    /// Several failures (GC and DEL continue after errors); the code is the
    /// first one's.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<Self>),
}

/// This crate's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The CNI error code.
    pub fn code(&self) -> u32 {
        match self {
            Self::IncompatibleVersion { .. } => code::INCOMPATIBLE_VERSION,
            Self::UnsupportedField { .. } => code::UNSUPPORTED_FIELD,
            Self::UnknownContainer(_) => code::UNKNOWN_CONTAINER,
            Self::Env { .. } => code::INVALID_ENV,
            Self::Io { .. } => code::IO,
            Self::Decode { .. } => code::DECODE,
            Self::Config { .. } => code::INVALID_CONFIG,
            Self::Netns { .. } => code::INVALID_NETNS,
            Self::TryAgain(_) => code::TRY_AGAIN,
            Self::Unavailable(_) => code::UNAVAILABLE,
            Self::Degraded(_) => code::DEGRADED,
            Self::Plugin { error, .. } => error.code,
            Self::Exec { .. } | Self::Kernel { .. } => code::INTERNAL,
            Self::Other { code, .. } => *code,
            Self::Many(errors) => errors.first().map_or(code::INTERNAL, Self::code),
        }
    }

    /// The wire form, stamped with `cni_version`. A plugin's error that a
    /// runtime received keeps its own message and details.
    pub fn to_cni(&self, cni_version: &str) -> CniError {
        let (msg, details) = match self {
            Self::Plugin { error, .. } => (error.msg.clone(), error.details.clone()),
            Self::Other { msg, details, .. } => (msg.clone(), details.clone()),
            other => (other.to_string(), String::new()),
        };
        CniError {
            cni_version: cni_version.to_owned(),
            code: self.code(),
            msg,
            details,
        }
    }

    /// A [`Error::Config`] for `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Io`] naming what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// An [`Error::Other`] with `code`.
    pub fn other(code: u32, msg: impl Into<String>) -> Self {
        Self::Other {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// A [`Error::Kernel`].
    pub fn kernel(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Kernel {
            what: what.into(),
            message: message.to_string(),
        }
    }

    /// The same error with its field path prefixed (`plugins[1].` + path),
    /// for errors found inside one plugin of a list.
    pub fn prefixed(self, prefix: &str) -> Self {
        let join = |field: String| {
            if field == "." || field.is_empty() {
                prefix.trim_end_matches('.').to_owned()
            } else {
                format!("{prefix}{field}")
            }
        };
        match self {
            Self::Config { field, message } => Self::Config {
                field: join(field),
                message,
            },
            Self::Decode { field, message } => Self::Decode {
                field: join(field),
                message,
            },
            Self::UnsupportedField { field, value } => Self::UnsupportedField {
                field: join(field),
                value,
            },
            other => other,
        }
    }
}

impl From<CniError> for Error {
    fn from(e: CniError) -> Self {
        Self::Other {
            code: e.code,
            msg: e.msg,
            details: e.details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_wire_form() {
        let e = Error::config("ipam.ranges[0][0].subnet", "invalid IP network");
        assert_eq!(e.code(), 7);
        assert_eq!(
            e.to_string(),
            "ipam.ranges[0][0].subnet: invalid IP network"
        );
        let w = e.to_cni("1.0.0");
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"cniVersion":"1.0.0","code":7,"msg":"ipam.ranges[0][0].subnet: invalid IP network"}"#
        );
        let p = e.prefixed("plugins[1].");
        assert_eq!(
            p.to_string(),
            "plugins[1].ipam.ranges[0][0].subnet: invalid IP network"
        );
        assert_eq!(Error::TryAgain("x".into()).code(), 11);
        assert_eq!(Error::Many(vec![Error::Unavailable("a".into())]).code(), 50);
    }
}
