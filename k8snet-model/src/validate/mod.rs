//! apiserver-grade validation: every error of an object, each with its
//! field path (`spec.ports[1].port: 70000 is not in 1..=65535`).
//!
//! The checklist is the apiserver's own validation (see the limits table in
//! the project's research notes); where this crate is stricter or looser it
//! says so next to the rule.
//!
//! [`validate`] expects an object after [`apply_defaults`](crate::apply_defaults),
//! as the loader produces it. Every message names the offending value, so a
//! user can act on it without opening the manifest:
//!
//! ```
//! use k8snet_model::{Object, Service, apply_defaults, validate};
//! let svc: Service = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "web"},
//!     "spec": {"ports": [{"port": 70000}]}
//! }))?;
//! let mut obj = Object::Service(svc);
//! apply_defaults(&mut obj);
//! let errs = validate(&obj);
//! assert_eq!(errs[0].to_string(), "spec.ports[0].port: 70000 is not in 1..=65535");
//! # Ok::<(), serde_json::Error>(())
//! ```

mod adminpolicy;
mod core;
mod endpointslice;
mod ingress;
mod meta;
mod net;
mod networkpolicy;
mod path;
mod pod;
mod seen;
mod service;

use crate::error::{FieldError, FieldErrorKind};
use crate::load::LocalEndpoints;
use crate::object::Object;

use self::path::FieldPath;

pub use self::meta::validate_selector;
pub use self::net::{
    LegacyCidr, parse_cidr_legacy, parse_cidr_strict, parse_ip_legacy, parse_ip_strict,
};

/// Validates one (defaulted) object and returns all of its errors, in field
/// order; an empty vector means the apiserver would accept the object.
pub fn validate(object: &Object) -> Vec<FieldError> {
    let mut errs = Errors::default();
    validate_into(object, &mut errs);
    errs.errors
}

/// What [`validate_with`] found: the errors that refuse the object, and the
/// problems that do not (what the apiserver accepts but is most likely a
/// mistake, and what a lenient mode accepted), with messages that say so.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) errors: Vec<FieldError>,
    pub(crate) accepted: Vec<FieldError>,
}

/// [`validate`], with loopback and link-local endpoint addresses accepted
/// (recorded in [`Findings::accepted`]) under [`LocalEndpoints::Warn`].
pub(crate) fn validate_with(object: &Object, local_endpoints: LocalEndpoints) -> Findings {
    let mut errs = Errors {
        local_endpoints,
        ..Errors::default()
    };
    validate_into(object, &mut errs);
    Findings {
        errors: errs.errors,
        accepted: errs.accepted,
    }
}

fn validate_into(object: &Object, errs: &mut Errors) {
    meta::object_meta(object, errs);
    match object {
        Object::Namespace(_) => {}
        Object::Node(node) => core::node(node, errs),
        Object::Pod(pod) => pod::pod(pod, errs),
        Object::Service(svc) => service::service(svc, errs),
        Object::EndpointSlice(slice) => endpointslice::endpoint_slice(slice, errs),
        Object::Ingress(ing) => ingress::ingress(ing, errs),
        Object::IngressClass(class) => ingress::ingress_class(class, errs),
        Object::Secret(secret) => core::secret(secret, errs),
        Object::NetworkPolicy(np) => networkpolicy::network_policy(np, errs),
        Object::AdminNetworkPolicy(anp) => adminpolicy::admin_network_policy(anp, errs),
        Object::BaselineAdminNetworkPolicy(banp) => {
            adminpolicy::baseline_admin_network_policy(banp, errs)
        }
        Object::ClusterNetworkPolicy(cnp) => adminpolicy::cluster_network_policy(cnp, errs),
    }
}

/// The valid port range, as the apiserver's `IsValidPortNum` checks it.
pub(crate) const PORT_RANGE: std::ops::RangeInclusive<i32> = 1..=65535;

/// Collects field errors.
///
/// Every method takes the path as `impl Into<FieldPath>` and renders it only
/// when it records an error, so checking a valid field costs no allocation.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    /// The errors, in field order.
    pub(crate) errors: Vec<FieldError>,
    /// Whether loopback and link-local endpoint addresses are errors
    /// (the default) or accepted.
    pub(crate) local_endpoints: LocalEndpoints,
    /// Warnings: problems the apiserver accepts, and the endpoint
    /// addresses accepted under [`LocalEndpoints::Warn`].
    pub(crate) accepted: Vec<FieldError>,
}

impl Errors {
    /// Records an error of `kind` at `path`.
    pub(crate) fn push<'p>(
        &mut self,
        kind: FieldErrorKind,
        path: impl Into<FieldPath<'p>>,
        msg: impl Into<String>,
    ) {
        let path = path.into().to_string();
        self.errors.push(FieldError::new(kind, path, msg));
    }

    /// Records a loopback or link-local endpoint address accepted for
    /// local serving: not an error, but reported.
    pub(crate) fn accepted_local<'p>(
        &mut self,
        path: impl Into<FieldPath<'p>>,
        msg: impl Into<String>,
    ) {
        let path = path.into().to_string();
        self.accepted
            .push(FieldError::new(FieldErrorKind::Invalid, path, msg));
    }

    /// Records a problem the apiserver accepts, as a warning (never an
    /// error: refusing what the apiserver stores would drop the object).
    pub(crate) fn warn<'p>(
        &mut self,
        kind: FieldErrorKind,
        path: impl Into<FieldPath<'p>>,
        msg: impl Into<String>,
    ) {
        let path = path.into().to_string();
        self.accepted.push(FieldError::new(kind, path, msg));
    }

    /// A required field is missing.
    pub(crate) fn required<'p>(&mut self, path: impl Into<FieldPath<'p>>, msg: impl Into<String>) {
        self.push(FieldErrorKind::Required, path, msg);
    }

    /// A value is malformed or out of range.
    pub(crate) fn invalid<'p>(&mut self, path: impl Into<FieldPath<'p>>, msg: impl Into<String>) {
        self.push(FieldErrorKind::Invalid, path, msg);
    }

    /// A field may not be set here.
    pub(crate) fn forbidden<'p>(&mut self, path: impl Into<FieldPath<'p>>, msg: impl Into<String>) {
        self.push(FieldErrorKind::Forbidden, path, msg);
    }

    /// `value` is not one of `supported`.
    pub(crate) fn not_supported<'p>(
        &mut self,
        path: impl Into<FieldPath<'p>>,
        value: &str,
        supported: &[&str],
    ) {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        self.push(
            FieldErrorKind::NotSupported,
            path,
            format!("{value:?}: supported values: {}", list.join(", ")),
        );
    }

    /// `value` (as the message shows it) repeats the one at `first`.
    pub(crate) fn duplicate<'p, 'f>(
        &mut self,
        path: impl Into<FieldPath<'p>>,
        value: &str,
        first: impl Into<FieldPath<'f>>,
    ) {
        let first = first.into();
        self.push(
            FieldErrorKind::Duplicate,
            path,
            format!("{value} duplicates {first}"),
        );
    }

    /// A list has `got` items, more than `max`.
    pub(crate) fn too_many<'p>(&mut self, path: impl Into<FieldPath<'p>>, got: usize, max: usize) {
        self.push(
            FieldErrorKind::TooMany,
            path,
            format!("{got} items, must have at most {max}"),
        );
    }

    /// A value is `got` bytes long, longer than `max`.
    pub(crate) fn too_long<'p>(&mut self, path: impl Into<FieldPath<'p>>, got: usize, max: usize) {
        self.push(
            FieldErrorKind::TooLong,
            path,
            format!("{got} bytes long, may not be longer than {max}"),
        );
    }

    /// Reports `check(value)`'s message as `"value": message` when it fails.
    pub(crate) fn check<'p>(
        &mut self,
        path: impl Into<FieldPath<'p>>,
        value: &str,
        check: fn(&str) -> Result<(), String>,
    ) {
        if let Err(msg) = check(value) {
            self.invalid(path, format!("{value:?}: {msg}"));
        }
    }

    /// Reports a number outside `range`.
    pub(crate) fn in_range<'p>(
        &mut self,
        path: impl Into<FieldPath<'p>>,
        n: i32,
        range: std::ops::RangeInclusive<i32>,
    ) {
        if !range.contains(&n) {
            self.invalid(
                path,
                format!("{n} is not in {}..={}", range.start(), range.end()),
            );
        }
    }

    /// Reports a port number outside 1..=65535.
    pub(crate) fn port<'p>(&mut self, path: impl Into<FieldPath<'p>>, n: i32) {
        self.in_range(path, n, PORT_RANGE);
    }
}
