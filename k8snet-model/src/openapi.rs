//! Conversions from and to the [`k8s_openapi`] types (feature `k8s-openapi`).
//!
//! | Our type | k8s-openapi type | Into ours | Into theirs |
//! |---|---|---|---|
//! | [`Namespace`](crate::Namespace) | `api::core::v1::Namespace` | `TryFrom` | `From` |
//! | [`Node`](crate::Node) | `api::core::v1::Node` | `TryFrom` | `From` |
//! | [`Pod`](crate::Pod) | `api::core::v1::Pod` | `TryFrom` | `From` |
//! | [`Service`](crate::Service) | `api::core::v1::Service` | `TryFrom` | `From` |
//! | [`Secret`](crate::Secret) | `api::core::v1::Secret` | `TryFrom` | `From` |
//! | [`EndpointSlice`](crate::EndpointSlice) | `api::discovery::v1::EndpointSlice` | `TryFrom` | `From` |
//! | [`NetworkPolicy`](crate::NetworkPolicy) | `api::networking::v1::NetworkPolicy` | `TryFrom` | `From` |
//! | [`Ingress`](crate::Ingress) | `api::networking::v1::Ingress` | `TryFrom` | `From` |
//! | [`IngressClass`](crate::IngressClass) | `api::networking::v1::IngressClass` | `TryFrom` | `From` |
//! | [`LabelSelector`] | `apimachinery::pkg::apis::meta::v1::LabelSelector` | `TryFrom` | `From` |
//! | [`ObjectMeta`] | `apimachinery::pkg::apis::meta::v1::ObjectMeta` | `From` | `From` |
//! | [`IntOrString`] | `apimachinery::pkg::util::intstr::IntOrString` | `From` | `From` |
//!
//! AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy
//! are CRDs of the `policy.networking.k8s.io` group: k8s-openapi has no type
//! for them, so there is nothing to convert.
//!
//! # Into our types
//!
//! Every resource conversion is a `TryFrom` with [`ConversionError`], even
//! where no modeled field can fail today (Namespace, Node, Secret,
//! IngressClass), so generic code can treat every kind alike. A conversion
//! fails only where k8s-openapi holds a string that our type models as an
//! enum and the string is none of the enum's values: protocols, Service
//! `type`/`ipFamilies`/`ipFamilyPolicy`/traffic policies/`sessionAffinity`,
//! pod `phase`, `addressType`, `policyTypes`, `pathType` and selector
//! operators. The error names the field, e.g. `spec.ports[0].protocol`.
//!
//! Fields are *not* validated (see [`validate`](fn@crate::validate)): a field
//! that is absent in k8s-openapi becomes our empty default exactly as
//! deserializing the object's JSON would (a missing `metadata.name` becomes
//! `""`, a missing `spec` the default spec). So for every object `o`,
//! `T::try_from(o)` equals deserializing `serde_json::to_value(&o)` as `T`.
//!
//! Fields we do not model are dropped: for example `metadata.ownerReferences`,
//! `finalizers` and `managedFields`, Pod and Node fields unrelated to
//! networking, `Service.status.conditions`, `Ingress.status`,
//! `Secret.immutable`, `Endpoint.deprecatedTopology`, the `apiVersion`,
//! `resourceVersion` and `fieldPath` of an endpoint's `targetRef`, and the
//! `ports` of a load balancer ingress point.
//!
//! # Into k8s-openapi types
//!
//! These conversions cannot fail. Like the apiserver's `omitempty`, an empty
//! list or map, a `false` flag, an empty `metadata.name`/`spec.controller` and
//! an all-default status become `None`; `spec` is always set. So `ours → theirs
//! → ours` is the identity, and `theirs → ours → theirs` is the identity on
//! the modeled fields up to those empty values. Two fields need parsing and
//! are dropped, with a warning, when malformed (validation rejects them too):
//! timestamps, which must be RFC 3339 (they come back normalized to UTC), and
//! Secret `data` values, which must be padded standard base64.
//!
//! # Kubernetes versions
//!
//! Only fields present in the earliest version k8s-openapi 0.29 supports
//! (1.33) are touched, so the conversions compile whatever `v1_*` feature the
//! final binary picks; this crate never enables one. The one field whose type
//! changed, `EndpointSlice.endpoints` (a list up to 1.35, optional from 1.36),
//! is converted through a small private trait implemented for both shapes, so
//! no version macro or cfg is needed.
//!
//! ```
//! use k8s_openapi::api::core::v1 as k8s;
//! use k8snet_model::{Protocol, Service};
//!
//! let theirs = k8s::Service {
//!     metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
//!         name: Some("web".into()),
//!         namespace: Some("shop".into()),
//!         ..Default::default()
//!     },
//!     spec: Some(k8s::ServiceSpec {
//!         ports: Some(vec![k8s::ServicePort {
//!             port: 80,
//!             protocol: Some("TCP".into()),
//!             ..Default::default()
//!         }]),
//!         ..Default::default()
//!     }),
//!     status: None,
//! };
//! let ours = Service::try_from(theirs.clone())?;
//! assert_eq!(ours.spec.ports[0].protocol, Some(Protocol::Tcp));
//! assert_eq!(k8s::Service::from(ours), theirs);
//!
//! let mut bad = theirs;
//! bad.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("ICMP".into());
//! let err = Service::try_from(bad).unwrap_err();
//! assert_eq!(err.path, "spec.ports[0].protocol");
//! # Ok::<(), k8snet_model::openapi::ConversionError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as kmeta;
use k8s_openapi::apimachinery::pkg::util::intstr;

use crate::core::{
    IntOrString, IpFamily, IpFamilyPolicy, PodPhase, Protocol, ServiceType, SessionAffinity,
    TrafficPolicy,
};
use crate::discovery::AddressType;
use crate::meta::{ObjectMeta, StringMap};
use crate::networking::{PathType, PolicyType};
use crate::selector::{LabelSelector, LabelSelectorRequirement, SelectorOperator};

mod base64;
mod core_v1;
mod discovery_v1;
mod networking_v1;

// ---------------------------------------------------------------- error

/// A k8s-openapi object that our types cannot represent.
///
/// ```
/// # use k8snet_model::openapi::ConversionError;
/// let e = ConversionError::new("spec.ports[0].protocol", "unsupported value \"ICMP\"");
/// assert_eq!(e.to_string(), "spec.ports[0].protocol: unsupported value \"ICMP\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConversionError {
    /// The field path inside the converted value, e.g. `spec.ports[0].protocol`.
    pub path: String,
    /// What is wrong, including the offending value.
    pub message: String,
}

impl ConversionError {
    /// An error at a field path.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A field path built on the stack while converting; rendered only on error.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Self>,
    seg: Seg,
}

#[derive(Clone, Copy)]
enum Seg {
    Root,
    Field(&'static str),
    Index(usize),
}

impl<'a> Path<'a> {
    /// The converted value itself.
    const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    /// A field of this value.
    fn field(&'a self, name: &'static str) -> Self {
        Path {
            parent: Some(self),
            seg: Seg::Field(name),
        }
    }

    /// An element of this list.
    fn index(&'a self, i: usize) -> Self {
        Path {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }

    /// `spec.ports[0].protocol`.
    fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            segs.push(p.seg);
            at = p.parent;
        }
        let mut out = String::new();
        for seg in segs.into_iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }

    fn error(&self, message: impl Into<String>) -> ConversionError {
        ConversionError::new(self.render(), message)
    }
}

type Result<T> = std::result::Result<T, ConversionError>;

// ---------------------------------------------------------------- enums

/// An enum the API spells as a string.
trait ApiEnum: Sized + Copy {
    /// Every API spelling, in declaration order.
    const VALUES: &'static [&'static str];
    /// The API spelling.
    fn api_str(self) -> &'static str;
    /// The variant spelled `s`.
    fn from_api_str(s: &str) -> Option<Self>;
}

/// Implements [`ApiEnum`] from one list, so both directions stay in step
/// (the exhaustive `match` of `api_str` fails to compile on a new variant).
macro_rules! api_enum {
    ($ty:ty { $($variant:ident = $s:literal),+ $(,)? }) => {
        impl ApiEnum for $ty {
            const VALUES: &'static [&'static str] = &[$($s),+];
            fn api_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $s,)+
                }
            }
            fn from_api_str(s: &str) -> Option<Self> {
                match s {
                    $($s => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

api_enum!(Protocol { Tcp = "TCP", Udp = "UDP", Sctp = "SCTP" });
api_enum!(IpFamily { IPv4 = "IPv4", IPv6 = "IPv6" });
api_enum!(ServiceType {
    ClusterIP = "ClusterIP",
    NodePort = "NodePort",
    LoadBalancer = "LoadBalancer",
    ExternalName = "ExternalName",
});
api_enum!(IpFamilyPolicy {
    SingleStack = "SingleStack",
    PreferDualStack = "PreferDualStack",
    RequireDualStack = "RequireDualStack",
});
api_enum!(TrafficPolicy { Cluster = "Cluster", Local = "Local" });
api_enum!(SessionAffinity { None = "None", ClientIP = "ClientIP" });
api_enum!(PodPhase {
    Pending = "Pending",
    Running = "Running",
    Succeeded = "Succeeded",
    Failed = "Failed",
    Unknown = "Unknown",
});
api_enum!(AddressType { IPv4 = "IPv4", IPv6 = "IPv6", Fqdn = "FQDN" });
api_enum!(PolicyType { Ingress = "Ingress", Egress = "Egress" });
api_enum!(PathType {
    Exact = "Exact",
    Prefix = "Prefix",
    ImplementationSpecific = "ImplementationSpecific",
});
api_enum!(SelectorOperator {
    In = "In",
    NotIn = "NotIn",
    Exists = "Exists",
    DoesNotExist = "DoesNotExist",
});

/// Parses an enum string, naming the supported values on error.
fn parse_enum<T: ApiEnum>(s: &str, path: &Path<'_>) -> Result<T> {
    T::from_api_str(s).ok_or_else(|| {
        let supported = T::VALUES
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        path.error(format!(
            "unsupported value {s:?}: supported values: {supported}"
        ))
    })
}

/// Parses an optional enum string.
fn parse_opt_enum<T: ApiEnum>(s: Option<String>, path: &Path<'_>) -> Result<Option<T>> {
    s.map(|s| parse_enum(&s, path)).transpose()
}

/// The API spelling of an optional enum.
fn opt_enum_str<T: ApiEnum>(v: Option<T>) -> Option<String> {
    v.map(|v| v.api_str().to_owned())
}

// ---------------------------------------------------------------- helpers

/// Converts every element, naming its index on error.
fn try_vec<T, U>(
    items: Vec<T>,
    path: &Path<'_>,
    mut f: impl FnMut(T, &Path<'_>) -> Result<U>,
) -> Result<Vec<U>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| f(item, &path.index(i)))
        .collect()
}

/// Converts an optional list into our list (absent = empty).
fn try_opt_vec<T, U>(
    items: Option<Vec<T>>,
    path: &Path<'_>,
    f: impl FnMut(T, &Path<'_>) -> Result<U>,
) -> Result<Vec<U>> {
    try_vec(items.unwrap_or_default(), path, f)
}

/// An empty list becomes `None`, as `omitempty` drops it.
fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Converts every element and drops an empty result.
fn non_empty_map<T, U>(v: Vec<T>, f: impl FnMut(T) -> U) -> Option<Vec<U>> {
    non_empty(v.into_iter().map(f).collect())
}

/// An empty map becomes `None`.
fn non_empty_strings(m: StringMap) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

/// An empty string becomes `None`.
fn non_empty_string(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// `false` becomes `None`.
fn true_or_none(b: bool) -> Option<bool> {
    b.then_some(true)
}

/// A default value becomes `None`.
fn non_default<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

/// An RFC 3339 string as an API timestamp; malformed ones are dropped.
fn time_from_string(s: String, field: &str) -> Option<kmeta::Time> {
    match s.parse::<k8s_openapi::jiff::Timestamp>() {
        Ok(t) => Some(kmeta::Time(t)),
        Err(e) => {
            tracing::warn!(
                "metadata.{field}: dropping malformed timestamp {s:?} converting to k8s-openapi: {e}"
            );
            None
        }
    }
}

/// An API timestamp as RFC 3339 in UTC (`2024-05-01T10:00:00Z`, with a
/// fraction only when there is one: what the apiserver writes).
fn time_to_string(t: kmeta::Time) -> String {
    t.0.to_string()
}

// ---------------------------------------------------------------- IntOrString

impl From<intstr::IntOrString> for IntOrString {
    fn from(v: intstr::IntOrString) -> Self {
        match v {
            intstr::IntOrString::Int(n) => Self::Int(n),
            intstr::IntOrString::String(s) => Self::String(s),
        }
    }
}

impl From<IntOrString> for intstr::IntOrString {
    fn from(v: IntOrString) -> Self {
        match v {
            IntOrString::Int(n) => Self::Int(n),
            IntOrString::String(s) => Self::String(s),
        }
    }
}

// ---------------------------------------------------------------- ObjectMeta

/// Keeps name, namespace, labels, annotations, uid, resourceVersion,
/// generation and the creation and deletion timestamps; drops the rest.
impl From<kmeta::ObjectMeta> for ObjectMeta {
    fn from(m: kmeta::ObjectMeta) -> Self {
        Self {
            name: m.name.unwrap_or_default(),
            namespace: m.namespace,
            labels: m.labels.unwrap_or_default(),
            annotations: m.annotations.unwrap_or_default(),
            uid: m.uid,
            resource_version: m.resource_version,
            creation_timestamp: m.creation_timestamp.map(time_to_string),
            deletion_timestamp: m.deletion_timestamp.map(time_to_string),
            generation: m.generation,
        }
    }
}

/// Malformed timestamps are dropped (with a warning); an empty name becomes
/// `None`.
impl From<ObjectMeta> for kmeta::ObjectMeta {
    fn from(m: ObjectMeta) -> Self {
        Self {
            name: non_empty_string(m.name),
            namespace: m.namespace,
            labels: non_empty_strings(m.labels),
            annotations: non_empty_strings(m.annotations),
            uid: m.uid,
            resource_version: m.resource_version,
            creation_timestamp: m
                .creation_timestamp
                .and_then(|t| time_from_string(t, "creationTimestamp")),
            deletion_timestamp: m
                .deletion_timestamp
                .and_then(|t| time_from_string(t, "deletionTimestamp")),
            generation: m.generation,
            ..Self::default()
        }
    }
}

// ---------------------------------------------------------------- LabelSelector

/// Fails on an operator other than `In`, `NotIn`, `Exists` and
/// `DoesNotExist` (path `matchExpressions[i].operator`).
impl TryFrom<kmeta::LabelSelector> for LabelSelector {
    type Error = ConversionError;

    fn try_from(s: kmeta::LabelSelector) -> Result<Self> {
        selector_from(s, &Path::ROOT)
    }
}

impl From<LabelSelector> for kmeta::LabelSelector {
    fn from(s: LabelSelector) -> Self {
        Self {
            match_labels: non_empty_strings(s.match_labels),
            match_expressions: non_empty_map(s.match_expressions, |e| {
                kmeta::LabelSelectorRequirement {
                    key: e.key,
                    operator: e.operator.api_str().to_owned(),
                    values: non_empty(e.values),
                }
            }),
        }
    }
}

fn selector_from(s: kmeta::LabelSelector, path: &Path<'_>) -> Result<LabelSelector> {
    Ok(LabelSelector {
        match_labels: s.match_labels.unwrap_or_default(),
        match_expressions: try_opt_vec(
            s.match_expressions,
            &path.field("matchExpressions"),
            |e, p| {
                Ok(LabelSelectorRequirement {
                    key: e.key,
                    operator: parse_enum(&e.operator, &p.field("operator"))?,
                    values: e.values.unwrap_or_default(),
                })
            },
        )?,
    })
}

fn opt_selector_from(
    s: Option<kmeta::LabelSelector>,
    path: &Path<'_>,
) -> Result<Option<LabelSelector>> {
    s.map(|s| selector_from(s, path)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: ApiEnum + serde::Serialize + serde::de::DeserializeOwned + PartialEq>() {
        for s in T::VALUES {
            let v = T::from_api_str(s).expect("listed value parses");
            assert_eq!(v.api_str(), *s);
            // The spelling agrees with serde's.
            assert_eq!(serde_json::to_value(v).ok(), Some(serde_json::json!(s)));
            let back: T = serde_json::from_value(serde_json::json!(s)).expect("serde parses");
            assert!(back == v);
        }
        assert!(T::from_api_str("").is_none());
    }

    #[test]
    fn enum_spellings_match_serde() {
        check::<Protocol>();
        check::<IpFamily>();
        check::<ServiceType>();
        check::<IpFamilyPolicy>();
        check::<TrafficPolicy>();
        check::<SessionAffinity>();
        check::<PodPhase>();
        check::<AddressType>();
        check::<PolicyType>();
        check::<PathType>();
        check::<SelectorOperator>();
    }

    #[test]
    fn paths_render() {
        let root = Path::ROOT;
        let spec = root.field("spec");
        let ports = spec.field("ports");
        let first = ports.index(0);
        assert_eq!(first.field("protocol").render(), "spec.ports[0].protocol");
        assert_eq!(root.index(2).field("key").render(), "[2].key");
        assert_eq!(root.render(), "");
    }

    #[test]
    fn unknown_enum_names_supported_values() {
        let e = parse_enum::<Protocol>("ICMP", &Path::ROOT.field("protocol")).unwrap_err();
        assert_eq!(e.path, "protocol");
        assert_eq!(
            e.message,
            r#"unsupported value "ICMP": supported values: "TCP", "UDP", "SCTP""#
        );
    }
}
