//! Backends: where a matched request goes.

use std::fmt;

use k8snet_model::IngressBackend;

/// Where a matched request goes: a Service port or another resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// A port of a Service in the Ingress's namespace.
    Service(ServiceBackend),
    /// A resource in the Ingress's namespace (e.g. a storage bucket); the
    /// proxy cannot forward to it and answers 503 saying so.
    Resource(ResourceBackend),
}

/// A Service port named by an Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceBackend {
    /// The namespace (the Ingress's).
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service port, as the Ingress names it.
    pub port: PortRef,
}

/// A Service port by number or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortRef {
    /// `port.number`: the Service's `port` (not the target port).
    Number(u16),
    /// `port.name`: the name of a Service port.
    Name(String),
}

/// A resource backend (`backend.resource`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceBackend {
    /// The namespace (the Ingress's).
    pub namespace: String,
    /// The API group; `None` for the core group.
    pub api_group: Option<String>,
    /// The kind.
    pub kind: String,
    /// The name.
    pub name: String,
}

impl Backend {
    /// The backend an Ingress in `namespace` names, or `None` when it
    /// names neither a Service with a port nor a resource (which
    /// validation refuses).
    pub fn from_ingress(namespace: &str, b: &IngressBackend) -> Option<Self> {
        if let Some(svc) = &b.service {
            let port = match (&svc.port.name, svc.port.number) {
                (Some(n), _) if !n.is_empty() => PortRef::Name(n.clone()),
                (_, Some(n)) => PortRef::Number(u16::try_from(n).ok().filter(|&p| p != 0)?),
                _ => return None,
            };
            return Some(Self::Service(ServiceBackend {
                namespace: namespace.to_string(),
                name: svc.name.clone(),
                port,
            }));
        }
        b.resource.as_ref().map(|r| {
            Self::Resource(ResourceBackend {
                namespace: namespace.to_string(),
                api_group: r.api_group.clone().filter(|g| !g.is_empty()),
                kind: r.kind.clone(),
                name: r.name.clone(),
            })
        })
    }

    /// The Service backend, if it is one.
    pub fn as_service(&self) -> Option<&ServiceBackend> {
        match self {
            Self::Service(s) => Some(s),
            Self::Resource(_) => None,
        }
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

impl fmt::Display for ServiceBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service {}/{}:{}", self.namespace, self.name, self.port)
    }
}

impl fmt::Display for ResourceBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.api_group {
            Some(g) => write!(f, "{}.{} {}/{}", self.kind, g, self.namespace, self.name),
            None => write!(f, "{} {}/{}", self.kind, self.namespace, self.name),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(s) => s.fmt(f),
            Self::Resource(r) => r.fmt(f),
        }
    }
}
