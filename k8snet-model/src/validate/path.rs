//! Field paths (`spec.containers[0].ports[1].name`) built on the stack as
//! validation walks an object, and rendered to text only when an error is
//! reported: checking a valid object allocates nothing for its paths.

use std::fmt;

/// A field path: its last segment plus a reference to its parent path,
/// which lives in a caller's stack frame. Creating and copying one is free;
/// [`Display`](fmt::Display) renders it the way the apiserver prints paths.
///
/// Helpers take `impl Into<FieldPath>`, so a fixed path can be passed as
/// a string literal (`"metadata.name"`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldPath<'a> {
    parent: Option<&'a Self>,
    segment: Segment<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    /// A field name, or a dotted run of them (`spec.podSelector`):
    /// `.name` after a parent.
    Field(&'a str),
    /// A list index: `[3]`.
    Index(usize),
    /// A map key, unquoted as the apiserver prints it: `[tls.crt]`.
    Key(&'a str),
}

impl<'a> FieldPath<'a> {
    /// A path that starts at `field`, which may be dotted (`spec.ports`).
    pub(crate) const fn new(field: &'a str) -> Self {
        Self {
            parent: None,
            segment: Segment::Field(field),
        }
    }

    /// The path of field `name` below this one: `{self}.{name}`.
    pub(crate) const fn field<'b>(&'b self, name: &'b str) -> FieldPath<'b> {
        self.child(Segment::Field(name))
    }

    /// The path of list item `index` below this one: `{self}[{index}]`.
    pub(crate) const fn index(&self, index: usize) -> FieldPath<'_> {
        self.child(Segment::Index(index))
    }

    /// The path of map entry `key` below this one: `{self}[{key}]`.
    pub(crate) const fn key<'b>(&'b self, key: &'b str) -> FieldPath<'b> {
        self.child(Segment::Key(key))
    }

    const fn child<'b>(&'b self, segment: Segment<'b>) -> FieldPath<'b> {
        FieldPath {
            parent: Some(self),
            segment,
        }
    }
}

impl<'a> From<&'a str> for FieldPath<'a> {
    fn from(field: &'a str) -> Self {
        Self::new(field)
    }
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            fmt::Display::fmt(parent, f)?;
        }
        match self.segment {
            // Always a dot after a parent, even an empty one, as formatting
            // `"{parent}.{name}"` did (`validate_selector(sel, "")`).
            Segment::Field(name) if self.parent.is_some() => write!(f, ".{name}"),
            Segment::Field(name) => f.write_str(name),
            Segment::Index(index) => write!(f, "[{index}]"),
            Segment::Key(key) => write!(f, "[{key}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_the_apiserver() {
        let spec = FieldPath::new("spec.containers");
        let container = spec.index(0);
        let ports = container.field("ports");
        let port = ports.index(12);
        assert_eq!(
            port.field("name").to_string(),
            "spec.containers[0].ports[12].name"
        );
        let data = FieldPath::new("data");
        assert_eq!(data.key("tls.crt").to_string(), "data[tls.crt]");
        assert_eq!(
            FieldPath::from("metadata.name").to_string(),
            "metadata.name"
        );
        let empty = FieldPath::new("");
        assert_eq!(empty.field("matchLabels").to_string(), ".matchLabels");
    }
}
