//! # k8snet-model
//!
//! Typed Kubernetes networking resources, label selectors, apiserver-grade
//! defaulting and validation, manifest loading and an indexed [`Cluster`]
//! snapshot: the foundation every other k8snet crate builds on.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Errors carry the file, the object and the field path so a user can act on
// them; they are rare and never on a per-packet path, so their size is fine.
#![allow(clippy::result_large_err)]

pub mod adminpolicy;
mod cluster;
pub mod core;
pub mod defaults;
pub mod discovery;
pub mod endpoints;
mod error;
mod load;
pub mod meta;
pub mod names;
pub mod networking;
mod object;
#[cfg(feature = "k8s-openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "k8s-openapi")))]
pub mod openapi;
pub mod selector;
pub mod validate;
mod yaml;

pub use crate::adminpolicy::*;
pub use crate::cluster::{Change, Cluster, Event, NsName};
pub use crate::core::*;
pub use crate::defaults::apply_defaults;
pub use crate::discovery::*;
pub use crate::error::{Error, FieldError, FieldErrorKind, Location};
pub use crate::load::{Loaded, MANIFEST_EXTENSIONS, Manifests, Warning};
pub use crate::meta::{ObjectMeta, Resource, StringMap};
pub use crate::networking::*;
pub use crate::object::{Kind, Object, ObjectRef};
pub use crate::selector::{LabelSelector, LabelSelectorRequirement, Selector, SelectorOperator};
pub use crate::validate::validate;
