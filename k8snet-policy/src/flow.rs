//! Flows (the connection attempts a verdict is about) and verdicts.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use k8snet_model::names::{check_dns1123_label, check_dns1123_subdomain};
use k8snet_model::{NsName, Protocol};

use crate::error::Error;

/// One side of a flow: a pod by name, or an IP address (a pod's address is
/// attributed to that pod; any other address is outside the pod network).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// A pod, by name. A connection uses one address family end to end, so
    /// a flow from or to a named pod only sees the pod's addresses of a
    /// family the other side has too: against an address, the pod's
    /// address of that family; between two dual-stack pods, each family on
    /// its own (both directions then see the addresses of that family
    /// only), and the flow is allowed when some family allows it. Only
    /// when a side has no address, or the two share no family, do all of a
    /// pod's addresses count (an `ipBlock` then matches if any of them is
    /// in the block).
    Pod(NsName),
    /// An address: of a pod, a node, or anything outside the cluster.
    Ip(IpAddr),
}

impl Endpoint {
    /// A pod endpoint.
    pub fn pod(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self::Pod(NsName::new(namespace, name))
    }
}

impl From<IpAddr> for Endpoint {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

impl From<NsName> for Endpoint {
    fn from(pod: NsName) -> Self {
        Self::Pod(pod)
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    /// `namespace/pod` or an IP address.
    fn from_str(s: &str) -> Result<Self, Error> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        match s.split_once('/') {
            // A namespace is a DNS label, so `10.0.0.0/8` is no pod.
            Some((ns, name))
                if check_dns1123_label(ns).is_ok() && check_dns1123_subdomain(name).is_ok() =>
            {
                Ok(Self::pod(ns, name))
            }
            _ => Err(Error::Endpoint(s.to_string())),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pod(p) => p.fmt(f),
            Self::Ip(ip) => ip.fmt(f),
        }
    }
}

/// A connection attempt: source, destination, protocol and destination port.
/// Replies to an allowed connection are allowed too (connection tracking);
/// they are not flows of their own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Who connects.
    pub src: Endpoint,
    /// To whom.
    pub dst: Endpoint,
    /// The L4 protocol.
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
}

impl Flow {
    /// A flow.
    pub fn new(
        src: impl Into<Endpoint>,
        dst: impl Into<Endpoint>,
        protocol: Protocol,
        port: u16,
    ) -> Self {
        Self {
            src: src.into(),
            dst: dst.into(),
            protocol,
            port,
        }
    }
}

impl fmt::Display for Flow {
    /// `x/a -> y/b TCP 80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} {} {}",
            self.src, self.dst, self.protocol, self.port
        )
    }
}

/// The decision about a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Verdict {
    /// The connection may be established.
    Allow,
    /// The connection is dropped.
    Deny,
}

impl Verdict {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }

    /// Whether this is [`Verdict::Allow`].
    pub fn is_allow(self) -> bool {
        self == Self::Allow
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Protocols as bits, so a rule's protocol test is one AND.
pub(crate) mod proto {
    use k8snet_model::Protocol;

    pub(crate) const TCP: u8 = 1;
    pub(crate) const UDP: u8 = 2;
    pub(crate) const SCTP: u8 = 4;
    /// A protocol this crate does not know yet (the model's enum may grow);
    /// only rules that admit every protocol match it.
    pub(crate) const OTHER: u8 = 8;
    /// Every protocol.
    pub(crate) const ALL: u8 = 0xff;
    /// The protocols a port set can name, in display order.
    pub(crate) const NAMED: [(u8, Protocol); 3] = [
        (SCTP, Protocol::Sctp),
        (TCP, Protocol::Tcp),
        (UDP, Protocol::Udp),
    ];

    #[inline]
    pub(crate) fn bit(p: Protocol) -> u8 {
        match p {
            Protocol::Tcp => TCP,
            Protocol::Udp => UDP,
            Protocol::Sctp => SCTP,
            _ => OTHER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!("x/a".parse::<Endpoint>().unwrap(), Endpoint::pod("x", "a"));
        assert_eq!(
            "10.0.0.1".parse::<Endpoint>().unwrap(),
            Endpoint::Ip("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            "fd00::1".parse::<Endpoint>().unwrap().to_string(),
            "fd00::1"
        );
        for bad in ["", "x", "/a", "x/", "x/a/b", "10.0.0.0/8"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad:?}");
        }
    }
}
