//! `metadata` (name, namespace, labels, annotations), label maps and label
//! selectors (`ValidateObjectMeta`, `ValidateLabelSelector`).

use std::borrow::Cow;

use crate::error::FieldError;
use crate::meta::StringMap;
use crate::names::{
    check_dns1035_label, check_dns1123_label, check_dns1123_subdomain, check_label_key,
    check_label_value,
};
use crate::object::{Kind, Object};
use crate::selector::{LabelSelector, SelectorOperator};

use super::{Errors, FieldPath};

/// The apiserver's cap on the total size of an object's annotations
/// (keys plus values), 256 KiB.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The only name a BaselineAdminNetworkPolicy may have (a singleton).
const BANP_NAME: &str = "default";

/// Validates the metadata every kind shares.
pub(super) fn object_meta(object: &Object, errs: &mut Errors) {
    let meta = object.meta();
    let kind = object.kind();
    if meta.name.is_empty() {
        errs.required("metadata.name", "name is required");
    } else {
        errs.check("metadata.name", &meta.name, name_check(kind));
        if kind == Kind::BaselineAdminNetworkPolicy && meta.name != BANP_NAME {
            errs.invalid(
                "metadata.name",
                format!(
                    "{:?}: a BaselineAdminNetworkPolicy is a singleton and must be named {BANP_NAME:?}",
                    meta.name
                ),
            );
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    if kind.is_namespaced() {
        if namespace.is_empty() {
            errs.required("metadata.namespace", "namespace is required");
        } else {
            errs.check("metadata.namespace", namespace, check_dns1123_label);
        }
    } else if !namespace.is_empty() {
        errs.forbidden(
            "metadata.namespace",
            format!("{namespace:?}: not allowed on a cluster-scoped {kind}"),
        );
    }
    label_map(&meta.labels, "metadata.labels", errs);
    annotations(&meta.annotations, errs);
}

/// The name syntax of each kind (`ValidateXName` in the apiserver).
///
/// Service names are strict DNS-1035 labels: the RelaxedServiceNameValidation
/// gate (DNS-1123 labels, e.g. `1web`) is beta in recent releases, but a
/// name that starts with a digit is still refused by older apiservers and
/// makes an invalid environment-variable prefix, so this crate refuses it.
fn name_check(kind: Kind) -> fn(&str) -> Result<(), String> {
    match kind {
        Kind::Namespace => check_dns1123_label,
        Kind::Service => check_dns1035_label,
        _ => check_dns1123_subdomain,
    }
}

/// Validates a label map (object labels, a Service selector, `matchLabels`):
/// keys are qualified names, values label values. Errors are reported on
/// the map's path with the key in the message, as the apiserver does.
pub(super) fn label_map<'p>(labels: &StringMap, path: impl Into<FieldPath<'p>>, errs: &mut Errors) {
    let path = path.into();
    for (k, v) in labels {
        if let Err(msg) = check_label_key(k) {
            errs.invalid(path, format!("key {k:?}: {msg}"));
        }
        if let Err(msg) = check_label_value(v) {
            errs.invalid(path, format!("value {v:?} of key {k:?}: {msg}"));
        }
    }
}

/// Annotation keys are qualified names (compared lowercased, as the
/// apiserver does, so `Example.com/Key` passes); all annotations together
/// may not exceed 256 KiB.
fn annotations(annotations: &StringMap, errs: &mut Errors) {
    let mut total = 0usize;
    for (k, v) in annotations {
        if let Err(msg) = check_label_key(&lowercase(k)) {
            errs.invalid("metadata.annotations", format!("key {k:?}: {msg}"));
        }
        total = total.saturating_add(k.len()).saturating_add(v.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.too_long("metadata.annotations", total, TOTAL_ANNOTATION_SIZE_LIMIT);
    }
}

/// `s` lowercased; borrowed, without allocating, when it is ASCII without
/// uppercase letters (the usual case), where lowercasing changes nothing.
fn lowercase(s: &str) -> Cow<'_, str> {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// Validates a label selector as the apiserver does: label-key and
/// label-value syntax, `In`/`NotIn` with values, `Exists`/`DoesNotExist`
/// without. `path` is the selector's own path (`spec.podSelector`).
///
/// ```
/// use k8snet_model::LabelSelector;
/// use k8snet_model::validate::validate_selector;
/// let sel: LabelSelector = serde_json::from_value(serde_json::json!({
///     "matchExpressions": [{"key": "tier", "operator": "In"}]
/// }))?;
/// let errs = validate_selector(&sel, "spec.podSelector");
/// assert_eq!(errs[0].path, "spec.podSelector.matchExpressions[0].values");
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn validate_selector(sel: &LabelSelector, path: &str) -> Vec<FieldError> {
    let mut errs = Errors::default();
    selector(sel, path, &mut errs);
    errs.errors
}

/// [`validate_selector`] into a collector.
pub(super) fn selector<'p>(sel: &LabelSelector, path: impl Into<FieldPath<'p>>, errs: &mut Errors) {
    let path = path.into();
    label_map(&sel.match_labels, path.field("matchLabels"), errs);
    let expressions = path.field("matchExpressions");
    for (i, req) in sel.match_expressions.iter().enumerate() {
        let p = expressions.index(i);
        errs.check(p.field("key"), &req.key, check_label_key);
        match req.operator {
            SelectorOperator::In | SelectorOperator::NotIn => {
                if req.values.is_empty() {
                    errs.required(
                        p.field("values"),
                        format!(
                            "must be specified when `operator` is {:?} (key {:?})",
                            op_name(req.operator),
                            req.key
                        ),
                    );
                }
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist => {
                if !req.values.is_empty() {
                    errs.forbidden(
                        p.field("values"),
                        format!(
                            "{:?}: may not be specified when `operator` is {:?}",
                            req.values,
                            op_name(req.operator)
                        ),
                    );
                }
            }
        }
        let values = p.field("values");
        for (j, v) in req.values.iter().enumerate() {
            errs.check(values.index(j), v, check_label_value);
        }
    }
}

fn op_name(op: SelectorOperator) -> &'static str {
    match op {
        SelectorOperator::In => "In",
        SelectorOperator::NotIn => "NotIn",
        SelectorOperator::Exists => "Exists",
        SelectorOperator::DoesNotExist => "DoesNotExist",
    }
}
