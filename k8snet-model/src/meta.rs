//! Object metadata shared by every resource, and the [`Resource`] trait.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Labels or annotations: a sorted string map (sorted so output is stable).
pub type StringMap = BTreeMap<String, String>;

/// `metadata` of an object: the fields a networking component reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The object's name (required; syntax depends on the kind).
    #[serde(default)]
    pub name: String,
    /// The namespace, for namespaced kinds (`default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: StringMap,
    /// Annotations (ingress-nginx settings, the legacy ingress class, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: StringMap,
    /// The apiserver's unique id, when the manifest came from a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The apiserver's resource version, when the manifest came from a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// RFC 3339 creation time; decides which of two conflicting Ingress rules wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// RFC 3339 deletion time: set while the object is terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Generation of the desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl ObjectMeta {
    /// Metadata with a name and a namespace.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            namespace: Some(namespace.into()),
            ..Self::default()
        }
    }

    /// Metadata of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The namespace, `default` when absent (what the apiserver assigns).
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

/// The namespace an object lands in when its manifest names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The label every Namespace carries with its own name (set on load).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// What every resource type knows about itself.
pub trait Resource {
    /// `kind`, e.g. `Service`.
    const KIND: &'static str;
    /// `apiVersion`, e.g. `v1` or `networking.k8s.io/v1`.
    const API_VERSION: &'static str;
    /// Whether objects live in a namespace.
    const NAMESPACED: bool;
    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;
    /// The object's metadata, mutable.
    fn meta_mut(&mut self) -> &mut ObjectMeta;
}

/// Implements [`Resource`] for a struct with a `metadata` field.
macro_rules! resource {
    ($ty:ty, $kind:literal, $api:literal, $namespaced:literal) => {
        impl $crate::meta::Resource for $ty {
            const KIND: &'static str = $kind;
            const API_VERSION: &'static str = $api;
            const NAMESPACED: bool = $namespaced;
            fn meta(&self) -> &$crate::meta::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut $crate::meta::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use resource;
