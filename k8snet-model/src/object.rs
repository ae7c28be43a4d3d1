//! [`Object`]: any resource this crate models, tagged by kind.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::adminpolicy::{AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy};
use crate::core::{Namespace, Node, Pod, Secret, Service};
use crate::discovery::EndpointSlice;
use crate::meta::{ObjectMeta, Resource};
use crate::networking::{Ingress, IngressClass, NetworkPolicy};

macro_rules! objects {
    ($($variant:ident),* $(,)?) => {
        /// Any resource this crate models.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        #[allow(clippy::large_enum_variant)]
        pub enum Object {
            $(
                #[doc = concat!("A ", stringify!($variant), ".")]
                $variant($variant),
            )*
        }

        /// The kinds this crate models.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Kind {
            $(
                #[doc = concat!("`", stringify!($variant), "`.")]
                $variant,
            )*
        }

        impl Kind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The `kind` string.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => <$variant as Resource>::KIND,)*
                }
            }

            /// The `apiVersion` this crate reads and writes.
            pub fn api_version(self) -> &'static str {
                match self {
                    $(Kind::$variant => <$variant as Resource>::API_VERSION,)*
                }
            }

            /// Whether objects of the kind live in a namespace.
            pub fn is_namespaced(self) -> bool {
                match self {
                    $(Kind::$variant => <$variant as Resource>::NAMESPACED,)*
                }
            }

            /// The kind named by a `kind` string.
            pub fn from_kind(kind: &str) -> Option<Kind> {
                match kind {
                    $(k if k == <$variant as Resource>::KIND => Some(Kind::$variant),)*
                    _ => None,
                }
            }
        }

        impl Object {
            /// The object's kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $(Object::$variant(_) => Kind::$variant,)*
                }
            }

            /// The object's metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Object::$variant(o) => o.meta(),)*
                }
            }

            /// The object's metadata, mutable.
            pub fn meta_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(Object::$variant(o) => o.meta_mut(),)*
                }
            }

            /// Decodes the body of a manifest whose kind is known; the error
            /// carries the path of the offending field.
            pub(crate) fn decode<'de, D>(kind: Kind, body: D) -> Result<Object, DecodeError>
            where
                D: serde::Deserializer<'de>,
            {
                match kind {
                    $(Kind::$variant => decode_as::<$variant, D>(body).map(Object::$variant),)*
                }
            }

            /// Decodes JSON text. Tracking the field path costs as much as
            /// the decoding itself, so it is paid only for text that fails.
            pub(crate) fn decode_json(kind: Kind, text: &str) -> Result<Object, DecodeError> {
                let fast = match kind {
                    $(Kind::$variant => serde_json::from_str::<$variant>(text).map(Object::$variant),)*
                };
                fast.or_else(|_| Object::decode(kind, &mut serde_json::Deserializer::from_str(text)))
            }

            /// The object as a JSON value with `apiVersion` and `kind` set.
            pub fn to_value(&self) -> Value {
                let (kind, mut body) = match self {
                    $(Object::$variant(o) => (Kind::$variant, serde_json::to_value(o)),)*
                };
                let mut out = serde_json::Map::new();
                out.insert("apiVersion".into(), kind.api_version().into());
                out.insert("kind".into(), kind.as_str().into());
                if let Ok(Value::Object(fields)) = body.as_mut().map(std::mem::take) {
                    out.extend(fields);
                }
                Value::Object(out)
            }
        }

        $(
            impl From<$variant> for Object {
                fn from(o: $variant) -> Object {
                    Object::$variant(o)
                }
            }
        )*
    };
}

objects!(
    Namespace,
    Node,
    Pod,
    Service,
    EndpointSlice,
    Ingress,
    IngressClass,
    Secret,
    NetworkPolicy,
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    ClusterNetworkPolicy,
);

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl Object {
    /// A reference naming the object (`Kind ns/name`).
    pub fn reference(&self) -> ObjectRef {
        let meta = self.meta();
        let kind = self.kind();
        ObjectRef {
            kind,
            namespace: kind
                .is_namespaced()
                .then(|| meta.namespace_or_default().to_string()),
            name: meta.name.clone(),
        }
    }
}

/// Kind, namespace and name of an object: how errors and logs name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The kind.
    pub kind: Kind,
    /// The namespace (for namespaced kinds).
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    /// `Service default/web`, or `IngressClass nginx` for cluster-scoped kinds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A failure to decode a manifest body into its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    /// Field path (`spec.ports[0].protocol`), empty at the top.
    pub(crate) path: String,
    /// What was wrong.
    pub(crate) message: String,
}

fn decode_as<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    body: D,
) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        DecodeError {
            path: if path == "." { String::new() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}
