//! Frontends only one Service port may own: an `IP:port/protocol` (cluster
//! IPs, external IPs, load balancer IPs) or a node port of one family and
//! protocol. The plan resolves conflicts between Services (the first in
//! name order keeps a frontend); the nftables layout refuses a change that
//! would make two ports claim one, since the dispatch maps can hold only one
//! verdict per key.

use std::collections::HashMap;
use std::net::IpAddr;

use k8snet_model::Protocol;

use crate::error::{Error, Result};
use crate::plan::{Family, PortId, ServicePort};

/// A frontend only one Service port may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Frontend {
    /// Traffic to this address, protocol and port.
    Ip(IpAddr, Protocol, u16),
    /// Traffic to this node port (any node address) of a family.
    NodePort(Family, Protocol, u16),
}

/// Which field of a Service a frontend comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    ClusterIp,
    ExternalIp,
    LoadBalancerIp,
    NodePort,
}

/// One frontend of a port and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) frontend: Frontend,
    pub(crate) source: Source,
}

impl Claim {
    /// The field of the Service that asks for this frontend, e.g.
    /// `spec.externalIPs` or `spec.ports[name=http].nodePort`.
    pub(crate) fn field(&self, p: &ServicePort) -> String {
        match self.source {
            Source::ClusterIp => "spec.clusterIPs".to_string(),
            Source::ExternalIp => "spec.externalIPs".to_string(),
            Source::LoadBalancerIp => "status.loadBalancer.ingress".to_string(),
            Source::NodePort => format!("{}.nodePort", port_field(p)),
        }
    }

    /// What it is, in words: `node port 30080/TCP (IPv4)`.
    pub(crate) fn describe(&self) -> String {
        match (self.source, self.frontend) {
            (s, Frontend::Ip(ip, proto, port)) => {
                let kind = match s {
                    Source::ClusterIp => "cluster IP",
                    Source::ExternalIp => "external IP",
                    _ => "load balancer IP",
                };
                let ip = std::net::SocketAddr::new(ip, port);
                format!("{kind} {ip}/{proto}")
            }
            (_, Frontend::NodePort(family, proto, port)) => {
                format!("node port {port}/{proto} ({family:?})")
            }
        }
    }
}

/// The cluster IP frontend of a port.
pub(crate) fn cluster_ip_claim(p: &ServicePort) -> Claim {
    Claim {
        frontend: Frontend::Ip(p.cluster_ip, p.id.protocol, p.port),
        source: Source::ClusterIp,
    }
}

/// `spec.ports[name=http]`, or `spec.ports[port=80]` for an unnamed port.
pub(crate) fn port_field(p: &ServicePort) -> String {
    if p.id.port.is_empty() {
        format!("spec.ports[port={}]", p.port)
    } else {
        format!("spec.ports[name={}]", p.id.port)
    }
}

/// Every frontend of a port: its cluster IP first, then external IPs, load
/// balancer IPs and the node port.
pub(crate) fn claims(p: &ServicePort) -> Vec<Claim> {
    let proto = p.id.protocol;
    let ip = |ip: IpAddr, source| Claim {
        frontend: Frontend::Ip(ip, proto, p.port),
        source,
    };
    let mut out = vec![cluster_ip_claim(p)];
    out.extend(p.external_ips.iter().map(|a| ip(*a, Source::ExternalIp)));
    out.extend(
        p.load_balancer_ips
            .iter()
            .map(|a| ip(*a, Source::LoadBalancerIp)),
    );
    out.extend(p.node_port.map(|np| Claim {
        frontend: Frontend::NodePort(p.id.family, proto, np),
        source: Source::NodePort,
    }));
    out
}

/// The error for port `p` asking for `claim`, which `owner` holds.
pub(crate) fn conflict(p: &ServicePort, claim: &Claim, owner: &PortId) -> Error {
    Error::invalid(
        format!("Service {}/{}", p.id.namespace, p.id.name),
        claim.field(p),
        format!(
            "{} is already used by {owner}; refused (a full sync keeps it for the first Service in name order)",
            claim.describe()
        ),
    )
}

/// Who owns each frontend: an index kept beside the programmed ports.
#[derive(Debug, Default, Clone)]
pub(crate) struct Claims {
    owners: HashMap<Frontend, PortId>,
}

impl Claims {
    /// Checks that `ports` claim no frontend twice and none that a port
    /// outside `replacing` owns (the ports being replaced may keep theirs).
    pub(crate) fn check<'a>(
        &self,
        ports: impl IntoIterator<Item = &'a ServicePort>,
        replacing: impl Fn(&PortId) -> bool,
    ) -> Result<()> {
        let mut mine: HashMap<Frontend, (&PortId, Source)> = HashMap::new();
        for p in ports {
            for c in claims(p) {
                if let Some(owner) = self.owners.get(&c.frontend)
                    && !replacing(owner)
                {
                    return Err(conflict(p, &c, owner));
                }
                match mine.get(&c.frontend) {
                    // The same address twice in one list: one frontend.
                    Some((first, source)) if **first == p.id && *source == c.source => {}
                    Some((first, _)) => return Err(conflict(p, &c, first)),
                    None => {
                        mine.insert(c.frontend, (&p.id, c.source));
                    }
                }
            }
        }
        Ok(())
    }

    /// Records `p`'s frontends as its own.
    pub(crate) fn insert(&mut self, p: &ServicePort) {
        for c in claims(p) {
            self.owners.insert(c.frontend, p.id.clone());
        }
    }

    /// Forgets the frontends `p` owns (not those another port took since).
    pub(crate) fn remove(&mut self, p: &ServicePort) {
        for c in claims(p) {
            if self.owners.get(&c.frontend) == Some(&p.id) {
                self.owners.remove(&c.frontend);
            }
        }
    }

    /// How many frontends are owned.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.owners.len()
    }
}
