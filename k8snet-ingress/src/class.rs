//! Which Ingresses a router serves: IngressClass selection.

use k8snet_model::{Cluster, INGRESS_CLASS_ANNOTATION, Ingress};

use crate::report::{Report, ReportKind};

/// The IngressClass a router serves.
///
/// An Ingress is served when
/// - its `spec.ingressClassName`, or else its legacy
///   `kubernetes.io/ingress.class` annotation, names the class; or
/// - it names no class at all and the class is the cluster's default
///   (the one IngressClass annotated
///   `ingressclass.kubernetes.io/is-default-class: "true"`), which is the
///   class admission would have stamped on it.
///
/// [`ClassSelector::default_class`] serves the default class; when the
/// cluster has no default class it serves the Ingresses that name no class
/// (a first local run from plain manifests). With several default classes
/// admission refuses class-less Ingresses, so none are served (reported).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassSelector {
    name: Option<String>,
}

impl ClassSelector {
    /// Serve the IngressClass of this name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
        }
    }

    /// Serve the cluster's default IngressClass.
    pub fn default_class() -> Self {
        Self::default()
    }

    /// The class name given, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(crate) fn resolve(&self, cluster: &Cluster) -> Resolved {
        let defaults: Vec<&str> = cluster
            .ingress_classes()
            .filter(|c| c.is_default())
            .map(|c| c.metadata.name.as_str())
            .collect();
        let mut reports = Vec::new();
        let classless = match defaults.as_slice() {
            [] => self.name.is_none(),
            [one] => self.name.as_deref().is_none_or(|n| n == *one),
            many => {
                reports.push(Report::new(
                    None,
                    ReportKind::Class,
                    format!(
                        "IngressClasses {} are all marked default; Ingresses without a class are not served",
                        many.join(", ")
                    ),
                ));
                false
            }
        };
        let target = self
            .name
            .clone()
            .or_else(|| (defaults.len() == 1).then(|| defaults[0].to_string()));
        Resolved {
            target,
            classless,
            reports,
        }
    }
}

/// A selector applied to one cluster's IngressClasses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Resolved {
    target: Option<String>,
    classless: bool,
    pub(crate) reports: Vec<Report>,
}

impl Resolved {
    pub(crate) fn selects(&self, ing: &Ingress) -> bool {
        let class = ing
            .spec
            .ingress_class_name
            .as_deref()
            .or_else(|| {
                ing.metadata
                    .annotations
                    .get(INGRESS_CLASS_ANNOTATION)
                    .map(String::as_str)
            })
            .filter(|c| !c.is_empty());
        match class {
            Some(c) => self.target.as_deref() == Some(c),
            None => self.classless,
        }
    }
}
