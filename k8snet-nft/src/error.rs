//! The crate's error type. Every error names the object it is about.

use std::fmt;
use std::io;

/// An nftables object, named in errors: `rule 3 of chain "svc-web"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Object {
    /// A table.
    Table(String),
    /// A chain.
    Chain(String),
    /// A rule, counted from 1 in its chain.
    Rule {
        /// The chain.
        chain: String,
        /// The position, from 1.
        index: usize,
    },
    /// A named set or map.
    Set(String),
    /// Elements of a set or map: the first one and how many.
    Elements {
        /// The set.
        set: String,
        /// The first element's key, as nft writes it.
        first: String,
        /// How many elements (in one message).
        count: usize,
    },
    /// The transaction as a whole (its commit).
    Transaction,
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(t) => write!(f, "table {t:?}"),
            Self::Chain(c) => write!(f, "chain {c:?}"),
            Self::Rule { chain, index } => write!(f, "rule {index} of chain {chain:?}"),
            Self::Set(s) => write!(f, "set {s:?}"),
            Self::Elements { set, first, count } if *count > 1 => {
                write!(f, "{count} elements of set {set:?} starting at {first}")
            }
            Self::Elements { set, first, .. } => write!(f, "element {first} of set {set:?}"),
            Self::Transaction => f.write_str("the transaction"),
        }
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The desired state (or a batch) is not valid; nothing was sent.
    #[error("{object}: {reason}")]
    Invalid {
        /// The object at fault.
        object: Object,
        /// Why.
        reason: String,
    },
    /// Rule text that does not parse.
    #[error("cannot parse rule {text:?}: {reason}")]
    Parse {
        /// The text.
        text: String,
        /// Why.
        reason: String,
    },
    /// The kernel refused part of a transaction; the transaction was aborted
    /// and the kernel holds exactly what it held before.
    #[error("{object}: {source}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Kernel {
        /// The object whose message failed.
        object: Object,
        /// The kernel's errno.
        source: io::Error,
        /// What we know about the cause (e.g. a missing jump target).
        hint: Option<String>,
        /// How many other messages of the same transaction failed too.
        others: usize,
    },
    /// A table whose name does not start with [`crate::OWNED_PREFIX`].
    #[error("table {0:?} is not ours: k8snet-nft only touches tables named k8snet*")]
    NotOwned(String),
    /// Netlink communication failed (socket, send, receive).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// A ctnetlink reply (see [`crate::conntrack`]) that cannot be read.
    #[error("{what}: {source}")]
    Decode {
        /// What was being done.
        what: String,
        /// Where and what the reply got wrong.
        source: crate::conntrack::DecodeError,
    },
    /// The kernel holds something this crate cannot express (or did not
    /// write), found while reading a table back.
    #[error("reading back {object}: {reason}")]
    Readback {
        /// The object.
        object: Object,
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn invalid(object: Object, reason: impl Into<String>) -> Self {
        Self::Invalid {
            object,
            reason: reason.into(),
        }
    }

    #[cfg_attr(not(all(feature = "linux", target_os = "linux")), allow(dead_code))]
    pub(crate) fn readback(object: Object, reason: impl Into<String>) -> Self {
        Self::Readback {
            object,
            reason: reason.into(),
        }
    }

    /// The object the error is about, if any.
    pub fn object(&self) -> Option<&Object> {
        match self {
            Self::Invalid { object, .. }
            | Self::Kernel { object, .. }
            | Self::Readback { object, .. } => Some(object),
            _ => None,
        }
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_name_the_object_and_the_cause() {
        let e = Error::Kernel {
            object: Object::Rule {
                chain: "svc-web".into(),
                index: 3,
            },
            source: io::Error::from_raw_os_error(2),
            hint: Some("jump target \"missing\" does not exist".into()),
            others: 0,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("rule 3 of chain \"svc-web\": No such file or directory"),
            "{text}"
        );
        assert!(
            text.ends_with("(jump target \"missing\" does not exist)"),
            "{text}"
        );
    }
}
