//! The result of ADD (and the `prevResult` of chained plugins) in every
//! spec version, and the conversions between them.
//!
//! [`CniResult`] is the 1.1.0 shape, a superset of all others; it reads any
//! version ([`CniResult::from_json`]) and writes any version
//! ([`CniResult::to_json`]), which is how conversions are done:
//! - 1.0.0 ↔ 1.1.0 only relabel (the 1.1 fields survive);
//! - 1.x → 0.3.x/0.4.0 adds `ips[].version` and drops interface `mtu`,
//!   `socketPath` and `pciID`; 0.x → 1.x drops `version`;
//! - → 0.1.0/0.2.0 keeps the first IPv4 and first IPv6 address as `ip4` and
//!   `ip6`, splits routes between them by family (only `dst` and `gw`: a
//!   0.2.0 route has no other field) and drops interfaces; a result with no
//!   address cannot be converted to these versions
//!   ([`CniResult::try_to_json`]).
//!
//! A result remembers its version ([`CniResult::cni_version`]: the one it
//! was read at, or the one a plugin built it for). Written at that same
//! version, or from 0.1.0 to 0.2.0 or back (one shape), nothing is
//! converted, as Go's Convert returns such a result as it is: a 0.2.0
//! result without addresses is written as it came and its routes keep all
//! their fields. Plugins that build a result in the richest shape mark it
//! [`Version::LATEST`] (as Go's plugins use `current.ImplementedSpecVersion`),
//! so that writing it at an older version converts it.
//!
//! Reading is as lenient as Go's `encoding/json`, which every Go runtime
//! and plugin uses: `null` for a list (`interfaces`, `ips`, `routes`,
//! `dns.nameservers`, ...) is an empty list, `null` for `dns` is no DNS, an
//! empty string for an address (`gateway`, `gw`) or for an interface's
//! `mac`, `sandbox`, `socketPath` or `pciID` (and `dns.domain`) is absent,
//! and `ips[].interface` is not checked against `interfaces` (consumers
//! look it up with `get`). What is written is unchanged: absent fields are
//! omitted.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::version::Version;

/// One interface the plugins created or configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// The interface name (`eth0`, `cni0`, `veth1a2b3c4d`).
    pub name: String,
    /// The hardware address, if any (`aa:bb:cc:dd:ee:ff`).
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub mac: Option<String>,
    /// The MTU (1.1.0; dropped below 1.0.0).
    #[serde(default, skip_serializing_if = "is_none_or_zero")]
    pub mtu: Option<u32>,
    /// The container's netns path for interfaces inside it; absent (or
    /// empty) on the host.
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub sandbox: Option<String>,
    /// A vhost-user socket path (1.1.0).
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub socket_path: Option<String>,
    /// A PCI address (1.1.0).
    #[serde(
        default,
        rename = "pciID",
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub pci_id: Option<String>,
}

fn is_none_or_zero(v: &Option<u32>) -> bool {
    matches!(v, None | Some(0))
}

/// `null` (or absent, with `default`) as the type's default, as Go reads
/// `null` into a slice or struct.
fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `""` as absent, as Go prints an empty string field with `omitempty`.
fn empty_as_none<'de, D>(d: D) -> std::result::Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// An optional address where `""` is none, as Go's `net.IP` reads it.
fn empty_as_no_ip<'de, D>(d: D) -> std::result::Result<Option<IpAddr>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IP address"))),
    }
}

/// One address given to an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix length (`198.18.0.2/24`).
    pub address: IpNet,
    /// The default gateway for this subnet, if any.
    pub gateway: Option<IpAddr>,
    /// The index into [`CniResult::interfaces`] (absent from IPAM plugins).
    pub interface: Option<usize>,
}

/// A route to install in the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The destination (`0.0.0.0/0`).
    pub dst: IpNet,
    /// The next hop; absent (or `""`) means the default gateway of the
    /// interface.
    #[serde(
        default,
        deserialize_with = "empty_as_no_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub gw: Option<IpAddr>,
    /// Route MTU.
    #[serde(default, skip_serializing_if = "is_none_or_zero")]
    pub mtu: Option<u32>,
    /// Advertised MSS.
    #[serde(default, skip_serializing_if = "is_none_or_zero")]
    pub advmss: Option<u32>,
    /// Metric.
    #[serde(default, skip_serializing_if = "is_none_or_zero")]
    pub priority: Option<u32>,
    /// Routing table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Scope (0 universe, 253 link, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route to `dst` via `gw` (or via the interface's gateway).
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Self {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings for the container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in priority order.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub nameservers: Vec<String>,
    /// The local domain (`""` reads as none).
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set (then it is not printed).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A CNI result in its richest (1.1.0) form.
///
/// Equality (`==`) compares the remembered [`CniResult::cni_version`] too:
/// the same document read at 0.3.1 and at 0.4.0 gives two unequal results
/// (they print differently). Compare the fields, or convert both to one
/// version first ([`CniResult::try_converted`]), to compare content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniResult {
    /// The version whose shape it has: the one it was read at, or the one
    /// it was built for ([`Version::LATEST`] for a result in the richest
    /// shape). Writing it at another version converts it (see the module
    /// docs).
    pub cni_version: Version,
    /// Interfaces.
    pub interfaces: Vec<Interface>,
    /// Addresses.
    pub ips: Vec<IpConfig>,
    /// Routes.
    pub routes: Vec<Route>,
    /// DNS.
    pub dns: Dns,
}

// --- wire forms -----------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCurrent {
    #[serde(default, deserialize_with = "null_as_default")]
    cni_version: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    interfaces: Vec<Interface>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    ips: Vec<WireIp>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    routes: Vec<Route>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Dns::is_empty"
    )]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct WireIp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: IpNet,
    #[serde(
        default,
        deserialize_with = "empty_as_no_ip",
        skip_serializing_if = "Option::is_none"
    )]
    gateway: Option<IpAddr>,
}

/// 0.3.x/0.4.0 interfaces: only these three fields exist.
#[derive(Serialize)]
struct WireIface040<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire040<'a> {
    cni_version: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<WireIface040<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ips: Vec<WireIp>,
    #[serde(skip_serializing_if = "<[Route]>::is_empty")]
    routes: &'a [Route],
    #[serde(skip_serializing_if = "Dns::is_empty")]
    dns: &'a Dns,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire020 {
    #[serde(default, deserialize_with = "null_as_default")]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<Wire020Ip>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<Wire020Ip>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Dns::is_empty"
    )]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct Wire020Ip {
    ip: IpNet,
    #[serde(
        default,
        deserialize_with = "empty_as_no_ip",
        skip_serializing_if = "Option::is_none"
    )]
    gateway: Option<IpAddr>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    routes: Vec<Route>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireOut<'a> {
    Legacy(Wire020),
    V040(Wire040<'a>),
    Current(WireCurrent),
}

fn decode<T: serde::de::DeserializeOwned>(v: &Value, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        Error::Decode {
            field: if path == "." {
                prefix.trim_end_matches('.').to_owned()
            } else {
                format!("{prefix}{path}")
            },
            message: e.into_inner().to_string(),
        }
    })
}

impl CniResult {
    /// An empty result for `version`.
    pub fn new(cni_version: Version) -> Self {
        Self {
            cni_version,
            interfaces: Vec::new(),
            ips: Vec::new(),
            routes: Vec::new(),
            dns: Dns::default(),
        }
    }

    /// Reads a result of any version. The version is the document's
    /// `cniVersion`, or `default_version` when it has none (an empty
    /// `prevResult` is an empty result).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] naming the field, or for an unknown version.
    pub fn from_json(v: &Value, default_version: Version) -> Result<Self> {
        Self::from_json_at(v, default_version, "")
    }

    /// As [`CniResult::from_json`], with error paths under `prefix` (e.g.
    /// `"prevResult."`).
    ///
    /// # Errors
    ///
    /// As [`CniResult::from_json`].
    pub fn from_json_at(v: &Value, default_version: Version, prefix: &str) -> Result<Self> {
        if !v.is_object() {
            return Err(Error::Decode {
                field: prefix.trim_end_matches('.').to_owned(),
                message: "a result must be a JSON object".into(),
            });
        }
        let version = match v.get("cniVersion").and_then(Value::as_str) {
            None | Some("") => default_version,
            Some(s) => s
                .parse()
                .map_err(|e: crate::version::UnknownVersion| Error::Decode {
                    field: format!("{prefix}cniVersion"),
                    message: e.to_string(),
                })?,
        };
        if version.is_legacy_result() {
            let w: Wire020 = decode(v, prefix)?;
            let mut r = Self::new(version);
            for ip in [w.ip4, w.ip6].into_iter().flatten() {
                r.ips.push(IpConfig {
                    address: ip.ip,
                    gateway: ip.gateway,
                    interface: None,
                });
                r.routes.extend(ip.routes);
            }
            r.dns = w.dns;
            return Ok(r);
        }
        // `ips[].interface` is not checked against `interfaces`: Go never
        // does (IPAM plugins print indexes with no interfaces), and every
        // consumer here looks it up with `get`.
        let w: WireCurrent = decode(v, prefix)?;
        Ok(Self {
            cni_version: version,
            interfaces: w.interfaces,
            ips: w
                .ips
                .into_iter()
                .map(|ip| IpConfig {
                    address: ip.address,
                    gateway: ip.gateway,
                    interface: ip.interface,
                })
                .collect(),
            routes: w.routes,
            dns: w.dns,
        })
    }

    /// Parses a result from bytes; see [`CniResult::from_json`].
    ///
    /// # Errors
    ///
    /// [`Error::Decode`].
    pub fn from_slice(bytes: &[u8], default_version: Version) -> Result<Self> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| Error::Decode {
            field: ".".into(),
            message: e.to_string(),
        })?;
        Self::from_json(&v, default_version)
    }

    /// The result written at `version` (converting as the module docs say).
    /// At 0.1.0/0.2.0 a result without addresses is written as one with
    /// neither `ip4` nor `ip6`; [`CniResult::try_to_json`] refuses it when
    /// that is a conversion, as Go's Convert does.
    pub fn to_json(&self, version: Version) -> Value {
        // Serializing these plain structs cannot fail.
        serde_json::to_value(self.wire(version)).unwrap_or(Value::Null)
    }

    /// The result as JSON text at `version`, keys in the spec's order (as
    /// the Go plugins print them); see [`CniResult::to_json`].
    pub fn to_json_string(&self, version: Version) -> String {
        serde_json::to_string(&self.wire(version)).unwrap_or_default()
    }

    /// As [`CniResult::to_json`], failing where Go's conversion fails: from
    /// 0.3.0 or later to 0.1.0 or 0.2.0 when there is no address to put in
    /// `ip4` or `ip6`. A result already in the 0.1.0/0.2.0 shape is not
    /// converted, so it does not fail.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] (code 999, as Go's plain error becomes) "cannot
    /// convert: no valid IP addresses".
    pub fn try_to_json(&self, version: Version) -> Result<Value> {
        self.check_convertible(version)?;
        Ok(self.to_json(version))
    }

    /// As [`CniResult::to_json_string`], failing as
    /// [`CniResult::try_to_json`] does.
    ///
    /// # Errors
    ///
    /// As [`CniResult::try_to_json`].
    pub fn try_to_json_string(&self, version: Version) -> Result<String> {
        self.check_convertible(version)?;
        Ok(self.to_json_string(version))
    }

    /// Whether writing at `version` is no conversion: the same version, or
    /// between 0.1.0 and 0.2.0 (the same shape).
    fn same_shape(&self, version: Version) -> bool {
        self.cni_version == version
            || (self.cni_version.is_legacy_result() && version.is_legacy_result())
    }

    fn check_convertible(&self, version: Version) -> Result<()> {
        if version.is_legacy_result() && !self.same_shape(version) && self.ips.is_empty() {
            return Err(Error::other(
                crate::error::code::INTERNAL,
                "cannot convert: no valid IP addresses",
            ));
        }
        Ok(())
    }

    fn wire(&self, version: Version) -> WireOut<'_> {
        let s = version.as_str();
        if version.is_legacy_result() {
            // Converted, a 0.2.0 route is only `dst` and `gw`; unconverted
            // it keeps what it was read with.
            let keep_routes = self.same_shape(version);
            let pick = |v4: bool| {
                self.ips
                    .iter()
                    .find(|ip| ip.address.addr().is_ipv4() == v4)
                    .map(|ip| Wire020Ip {
                        ip: ip.address,
                        gateway: ip.gateway,
                        routes: self
                            .routes
                            .iter()
                            .filter(|r| r.dst.addr().is_ipv4() == v4)
                            .map(|r| {
                                if keep_routes {
                                    r.clone()
                                } else {
                                    Route::new(r.dst, r.gw)
                                }
                            })
                            .collect(),
                    })
            };
            return WireOut::Legacy(Wire020 {
                cni_version: s.to_owned(),
                ip4: pick(true),
                ip6: pick(false),
                dns: self.dns.clone(),
            });
        }
        let with_family = version < Version::V1_0_0;
        let ips = self
            .ips
            .iter()
            .map(|ip| WireIp {
                version: with_family.then(|| {
                    if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    }
                    .to_owned()
                }),
                interface: ip.interface,
                address: ip.address,
                gateway: ip.gateway,
            })
            .collect();
        if with_family {
            WireOut::V040(Wire040 {
                cni_version: s,
                interfaces: self
                    .interfaces
                    .iter()
                    .map(|i| WireIface040 {
                        name: &i.name,
                        mac: i.mac.as_deref(),
                        sandbox: i.sandbox.as_deref(),
                    })
                    .collect(),
                ips,
                routes: &self.routes,
                dns: &self.dns,
            })
        } else {
            WireOut::Current(WireCurrent {
                cni_version: s.to_owned(),
                interfaces: self.interfaces.clone(),
                ips,
                routes: self.routes.clone(),
                dns: self.dns.clone(),
            })
        }
    }

    /// The result converted to `version`, as Go's `GetAsVersion`: written
    /// and read back, so the fields the version lacks are gone, and marked
    /// `version`. A conversion that Go refuses fails here too (it does not
    /// come out as an empty result that then writes at `version`).
    ///
    /// # Errors
    ///
    /// As [`CniResult::try_to_json`]: from 0.3.0 or later to 0.1.0/0.2.0
    /// without an address.
    pub fn try_converted(&self, version: Version) -> Result<Self> {
        let mut out = Self::from_json(&self.try_to_json(version)?, version)?;
        out.cni_version = version;
        Ok(out)
    }

    /// The index of the interface called `name` that lives in `sandbox`
    /// (`None` for host interfaces).
    pub fn interface_index(&self, name: &str, sandbox: Option<&str>) -> Option<usize> {
        self.interfaces
            .iter()
            .position(|i| i.name == name && i.sandbox.as_deref() == sandbox)
    }
}
