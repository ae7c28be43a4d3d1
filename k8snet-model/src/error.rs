//! The crate's error type and the field errors of validation.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::object::ObjectRef;

/// Where an object came from: a file (or `-` for stdin) and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file, `<stdin>` or a caller-chosen label.
    pub file: Arc<str>,
    /// The line where the object starts (1-based; 0 when unknown).
    pub line: u32,
}

impl Location {
    /// A source at a line of a file.
    pub fn new(file: impl Into<Arc<str>>, line: u32) -> Self {
        Self {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The kind of a validation error, as Kubernetes' `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldErrorKind {
    /// A required field is missing.
    Required,
    /// A value is malformed or out of range.
    Invalid,
    /// A value is not one of the supported set.
    NotSupported,
    /// A value repeats where it must be unique.
    Duplicate,
    /// Too many items.
    TooMany,
    /// A field may not be set here.
    Forbidden,
    /// A value is too long.
    TooLong,
}

/// One validation error: a field path and a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldError {
    /// The path, e.g. `spec.ports[1].port`.
    pub path: String,
    /// The kind of error.
    pub kind: FieldErrorKind,
    /// A message a user can act on, including the offending value.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(kind: FieldErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error, as text (so the error stays `Clone`).
        message: String,
    },
    /// The text is not valid YAML or JSON.
    #[error("{at}: {message}")]
    Parse {
        /// Where.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// A document has no usable `kind`/`apiVersion`.
    #[error("{at}: {message}")]
    Document {
        /// Where.
        at: Location,
        /// What is missing or wrong.
        message: String,
    },
    /// A manifest field has the wrong type or an unknown enum value.
    #[error("{at}: {object}: {}{message}", path_prefix(path))]
    Decode {
        /// Where.
        at: Location,
        /// The object (name as far as it could be read).
        object: ObjectRef,
        /// The field path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// An object fails validation.
    #[error("{at}: {object}: {error}")]
    Invalid {
        /// Where.
        at: Location,
        /// The object.
        object: ObjectRef,
        /// The field error.
        error: FieldError,
    },
    /// An update was refused (e.g. by a [`Cluster`](crate::Cluster)) because the
    /// object is invalid; nothing was changed.
    #[error("{object}: {}", join_errors(errors))]
    Rejected {
        /// The object.
        object: ObjectRef,
        /// All of its field errors.
        errors: Vec<FieldError>,
    },
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Where the error was found, when it came from a manifest.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Parse { at, .. }
            | Self::Document { at, .. }
            | Self::Decode { at, .. }
            | Self::Invalid { at, .. } => Some(at),
            Self::Io { .. } | Self::Rejected { .. } => None,
        }
    }
}
