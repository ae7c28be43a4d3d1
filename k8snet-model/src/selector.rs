//! Label selectors: the API form ([`LabelSelector`]) and a compiled form
//! ([`Selector`]) that matches a label map without allocating.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::meta::StringMap;

/// `metav1.LabelSelector` as written in manifests.
///
/// An empty selector (`{}`) selects everything; where the API allows a
/// selector to be absent, the field is an `Option` and absence means
/// "nothing" or "everything" as that field's documentation says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Exact key/value pairs, all of which must match.
    #[serde(default, skip_serializing_if = "StringMap::is_empty")]
    pub match_labels: StringMap,
    /// Set-based requirements, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: SelectorOperator,
    /// The values for `In`/`NotIn`; must be empty for the others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A selector requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SelectorOperator {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl LabelSelector {
    /// A selector that selects everything (`{}`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector of exact labels.
    pub fn from_labels<K: Into<String>, V: Into<String>>(
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            match_labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// True when the selector has no requirement (selects everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Compiles the selector for fast matching.
    pub fn compile(&self) -> Selector {
        let mut reqs: Vec<Requirement> = self
            .match_labels
            .iter()
            .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
            .collect();
        for e in &self.match_expressions {
            let mut values = e.values.clone();
            values.sort();
            values.dedup();
            reqs.push(match e.operator {
                SelectorOperator::In => Requirement::In(e.key.clone(), values),
                SelectorOperator::NotIn => Requirement::NotIn(e.key.clone(), values),
                SelectorOperator::Exists => Requirement::Exists(e.key.clone()),
                SelectorOperator::DoesNotExist => Requirement::DoesNotExist(e.key.clone()),
            });
        }
        // Sorted and deduplicated so that equal selectors compile to equal
        // values (policy compilation groups by selector).
        reqs.sort();
        reqs.dedup();
        Selector { reqs }
    }

    /// Matches labels (compiles on the fly; prefer [`Selector`] in loops).
    pub fn matches(&self, labels: &StringMap) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| {
                let got = labels.get(&e.key);
                match e.operator {
                    SelectorOperator::In => got.is_some_and(|g| e.values.contains(g)),
                    SelectorOperator::NotIn => got.is_none_or(|g| !e.values.contains(g)),
                    SelectorOperator::Exists => got.is_some(),
                    SelectorOperator::DoesNotExist => got.is_none(),
                }
            })
    }
}

/// One compiled requirement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Requirement {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &StringMap) -> bool {
        match self {
            Self::Equals(k, v) => labels.get(k) == Some(v),
            Self::In(k, vs) => labels.get(k).is_some_and(|g| vs.binary_search(g).is_ok()),
            Self::NotIn(k, vs) => labels.get(k).is_none_or(|g| vs.binary_search(g).is_err()),
            Self::Exists(k) => labels.contains_key(k),
            Self::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A compiled label selector: sorted, deduplicated requirements matched
/// against a label map with no allocation.
///
/// ```
/// use k8snet_model::{LabelSelector, StringMap};
/// let sel: LabelSelector = serde_json::from_str(
///     r#"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"NotIn","values":["db"]}]}"#,
/// )?;
/// let sel = sel.compile();
/// let labels: StringMap = [("app".to_string(), "web".to_string())].into();
/// assert!(sel.matches(&labels));
/// assert_eq!(sel.to_string(), "app=web,tier notin (db)");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    reqs: Vec<Requirement>,
}

impl Selector {
    /// The selector that selects everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// True when every requirement holds for `labels`.
    pub fn matches(&self, labels: &StringMap) -> bool {
        self.reqs.iter().all(|r| r.matches(labels))
    }

    /// True when the selector has no requirement.
    pub fn is_everything(&self) -> bool {
        self.reqs.is_empty()
    }
}

impl From<&LabelSelector> for Selector {
    fn from(s: &LabelSelector) -> Self {
        s.compile()
    }
}

impl fmt::Display for Selector {
    /// kubectl's selector syntax: `a=b,c in (d,e),!f`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.reqs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r {
                Requirement::Equals(k, v) => write!(f, "{k}={v}")?,
                Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(","))?,
                Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(","))?,
                Requirement::Exists(k) => write!(f, "{k}")?,
                Requirement::DoesNotExist(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> StringMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: SelectorOperator, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn operators() {
        use SelectorOperator::*;
        let l = labels(&[("app", "web"), ("tier", "fe")]);
        let cases = [
            (req("app", In, &["web", "api"]), true),
            (req("app", In, &["api"]), false),
            (req("missing", In, &["x"]), false),
            (req("app", NotIn, &["api"]), true),
            (req("app", NotIn, &["web"]), false),
            // NotIn matches when the key is absent.
            (req("missing", NotIn, &["x"]), true),
            (req("tier", Exists, &[]), true),
            (req("missing", Exists, &[]), false),
            (req("missing", DoesNotExist, &[]), true),
            (req("tier", DoesNotExist, &[]), false),
        ];
        for (r, want) in cases {
            let sel = LabelSelector {
                match_labels: StringMap::new(),
                match_expressions: vec![r.clone()],
            };
            assert_eq!(sel.compile().matches(&l), want, "{r:?}");
            assert_eq!(sel.matches(&l), want, "{r:?} (uncompiled)");
        }
    }

    #[test]
    fn empty_selects_all_and_labels_and_together() {
        assert!(
            LabelSelector::everything()
                .compile()
                .matches(&StringMap::new())
        );
        let sel = LabelSelector::from_labels([("a", "1"), ("b", "2")]).compile();
        assert!(sel.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!sel.matches(&labels(&[("a", "1")])));
    }

    #[test]
    fn equal_selectors_compile_equal() {
        use SelectorOperator::*;
        let a = LabelSelector {
            match_labels: StringMap::new(),
            match_expressions: vec![req("x", In, &["b", "a"]), req("y", Exists, &[])],
        };
        let b = LabelSelector {
            match_labels: StringMap::new(),
            match_expressions: vec![req("y", Exists, &[]), req("x", In, &["a", "b", "a"])],
        };
        assert_eq!(a.compile(), b.compile());
    }
}
