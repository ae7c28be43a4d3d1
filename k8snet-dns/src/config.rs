//! Zone configuration.

use std::net::IpAddr;
use std::str::FromStr;

use crate::Error;

/// How `a-b-c-d.<ns>.pod.<zone>` names are answered (CoreDNS `pods`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PodMode {
    /// No pod records: NXDOMAIN, `<ns>.pod.<zone>` included (CoreDNS's
    /// default).
    #[default]
    Disabled,
    /// Any well-formed dashed IP in an existing namespace is echoed back
    /// (what kubeadm configures).
    Insecure,
    /// Only IPs of running pods in that namespace.
    Verified,
}

impl FromStr for PodMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "disabled" => Ok(Self::Disabled),
            "insecure" => Ok(Self::Insecure),
            "verified" => Ok(Self::Verified),
            _ => Err(Error::InvalidConfig(format!(
                "pod mode {s:?}: expected disabled, insecure or verified"
            ))),
        }
    }
}

/// The default record TTL (CoreDNS `ttl`).
pub const DEFAULT_TTL: u32 = 5;
/// The TTL of `dns-version` (the specification's example).
pub const DNS_VERSION_TTL: u32 = 28_800;
/// The default EDNS payload size we advertise and fill (DNS Flag Day 2020).
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;

/// What a [`Zone`](crate::Zone) is built with.
///
/// ```
/// use k8snet_dns::{PodMode, ZoneConfig};
/// let cfg = ZoneConfig::new("cluster.local").ttl(30).pods(PodMode::Insecure);
/// assert_eq!(cfg.zone_name(), "cluster.local");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    zone: String,
    ttl: u32,
    pods: PodMode,
    nameservers: Vec<IpAddr>,
    serial: Option<u32>,
    max_udp_payload: u16,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        Self::new("cluster.local")
    }
}

impl ZoneConfig {
    /// The defaults for a cluster domain: TTL 5 s, pod records disabled,
    /// EDNS payload 1232, nameserver addresses from `kube-system/kube-dns`.
    pub fn new(zone: impl Into<String>) -> Self {
        Self {
            zone: zone.into(),
            ttl: DEFAULT_TTL,
            pods: PodMode::Disabled,
            nameservers: Vec::new(),
            serial: None,
            max_udp_payload: DEFAULT_UDP_PAYLOAD,
        }
    }

    /// The record TTL, 0..=3600 (checked by [`Zone::build`](crate::Zone::build)).
    #[must_use]
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// How pod names are answered.
    #[must_use]
    pub fn pods(mut self, mode: PodMode) -> Self {
        self.pods = mode;
        self
    }

    /// The addresses of `ns.dns.<zone>` (the NS glue). Empty (the default)
    /// means the ClusterIPs of `kube-system/kube-dns`, if it exists.
    #[must_use]
    pub fn nameservers(mut self, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        self.nameservers = ips.into_iter().collect();
        self
    }

    /// A fixed SOA serial (default: the Unix time of the build).
    #[must_use]
    pub fn serial(mut self, serial: u32) -> Self {
        self.serial = Some(serial);
        self
    }

    /// The largest UDP response we send to an EDNS client, 512..=65535.
    #[must_use]
    pub fn max_udp_payload(mut self, size: u16) -> Self {
        self.max_udp_payload = size.max(512);
        self
    }

    /// The cluster domain as given.
    pub fn zone_name(&self) -> &str {
        &self.zone
    }

    /// The record TTL.
    pub fn record_ttl(&self) -> u32 {
        self.ttl
    }

    /// The pod mode.
    pub fn pod_mode(&self) -> PodMode {
        self.pods
    }

    pub(crate) fn nameserver_ips(&self) -> &[IpAddr] {
        &self.nameservers
    }

    pub(crate) fn fixed_serial(&self) -> Option<u32> {
        self.serial
    }

    /// The EDNS payload size.
    pub fn udp_payload(&self) -> u16 {
        self.max_udp_payload
    }
}
