//! # k8snet-model
//!
//! Typed Kubernetes networking resources, label selectors, apiserver-grade
//! defaulting and validation, manifest loading and an indexed [`Cluster`]
//! snapshot: the foundation every other k8snet crate builds on.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adminpolicy;
pub mod core;
pub mod defaults;
pub mod discovery;
mod error;
pub mod meta;
pub mod names;
pub mod networking;
mod object;
pub mod selector;
pub mod validate;
mod yaml;

pub use crate::adminpolicy::*;
pub use crate::core::*;
pub use crate::defaults::apply_defaults;
pub use crate::discovery::*;
pub use crate::error::{Error, FieldError, FieldErrorKind, Location};
pub use crate::meta::{ObjectMeta, Resource, StringMap};
pub use crate::networking::*;
pub use crate::object::{Kind, Object, ObjectRef};
pub use crate::selector::{LabelSelector, LabelSelectorRequirement, Selector, SelectorOperator};
pub use crate::validate::validate;
