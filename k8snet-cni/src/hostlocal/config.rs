//! host-local's configuration: the reference plugin's keys (`ranges`, the
//! legacy flat range, `routes`, `dataDir`, `resolvConf`) and the requested
//! addresses (`CNI_ARGS` `IP`, `args.cni.ips`, the `ips` and `ipRanges`
//! capabilities), canonicalized as the reference does.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{NetConf, typed};
use crate::env::{Command, Env};
use crate::error::{Error, Result};
use crate::result::{Dns, Route};
use crate::version::Version;

/// The reference plugin's default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// An address as a number, with its family: ranges iterate over these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Addr {
    pub(crate) v4: bool,
    pub(crate) n: u128,
}

impl Addr {
    pub(crate) fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self {
                v4: true,
                n: u128::from(u32::from(a)),
            },
            IpAddr::V6(a) => Self {
                v4: false,
                n: u128::from(a),
            },
        }
    }

    pub(crate) fn ip(self) -> IpAddr {
        if self.v4 {
            IpAddr::V4(Ipv4Addr::from(u32::try_from(self.n).unwrap_or(u32::MAX)))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.n))
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

/// One canonical range: every field filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// The subnet (network address, prefix).
    pub subnet: IpNet,
    /// The first allocatable address (inclusive).
    pub range_start: IpAddr,
    /// The last allocatable address (inclusive).
    pub range_end: IpAddr,
    /// The gateway (never allocated).
    pub gateway: IpAddr,
}

impl Range {
    pub(crate) fn start(&self) -> Addr {
        Addr::from_ip(self.range_start)
    }
    pub(crate) fn end(&self) -> Addr {
        Addr::from_ip(self.range_end)
    }
    pub(crate) fn gw(&self) -> Addr {
        Addr::from_ip(self.gateway)
    }

    /// Whether `ip` is between the range's start and end.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let a = Addr::from_ip(ip);
        a.v4 == self.start().v4 && self.start() <= a && a <= self.end()
    }

    /// The number of allocatable addresses (the gateway excluded).
    pub fn capacity(&self) -> u128 {
        let n = self.end().n - self.start().n + 1;
        if self.contains(self.gateway) {
            n - 1
        } else {
            n
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.range_start, self.range_end)
    }
}

/// Ranges of one family that share an allocation (one address per ADD).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl RangeSet {
    /// The range holding `ip`.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    /// Whether `ip` is in any range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// Whether the set is IPv4.
    pub fn is_v4(&self) -> bool {
        self.0.first().is_some_and(|r| r.range_start.is_ipv4())
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// host-local's configuration for one invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpamConfig {
    /// The network name (the subdirectory of the data dir).
    pub network: String,
    /// The configuration's version.
    pub cni_version: Version,
    /// Range sets: one address is allocated from each.
    pub ranges: Vec<RangeSet>,
    /// Routes to return.
    pub routes: Vec<Route>,
    /// The data directory (the network's files are in `data_dir/network`).
    pub data_dir: PathBuf,
    /// A resolv.conf to return as DNS settings.
    pub resolv_conf: Option<PathBuf>,
    /// Addresses asked for explicitly (read on ADD and CHECK only; empty
    /// for the other commands).
    pub requested: Vec<IpAddr>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireRange {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    range_start: Option<String>,
    #[serde(default)]
    range_end: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireIpam {
    #[serde(flatten)]
    legacy: WireRange,
    #[serde(default)]
    ranges: Vec<Vec<WireRange>>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    resolv_conf: Option<String>,
}

fn parse_ip(s: &str, field: &str) -> Result<IpAddr> {
    s.parse()
        .map_err(|_| Error::config(field, format!("{s:?} is not an IP address")))
}

/// Requested addresses may carry a prefix (`198.18.0.5/24`), as Go's `ip.IP`.
fn parse_requested(s: &str, field: &str) -> Result<IpAddr> {
    match s.parse::<IpNet>() {
        Ok(n) => Ok(n.addr()),
        Err(_) => parse_ip(s, field),
    }
}

fn canonical(w: &WireRange, field: &str) -> Result<Range> {
    let subnet_text = w
        .subnet
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::config(format!("{field}.subnet"), "missing"))?;
    let subnet: IpNet = subnet_text.parse().map_err(|_| {
        Error::config(
            format!("{field}.subnet"),
            format!("{subnet_text:?} is not a CIDR"),
        )
    })?;
    // The reference keeps host bits and then allocates oddly; use the network.
    let subnet = subnet.trunc();
    let max = subnet.max_prefix_len();
    if subnet.prefix_len() > max - 2 {
        return Err(Error::config(
            format!("{field}.subnet"),
            format!("network {subnet} too small to allocate from"),
        ));
    }
    let net = Addr::from_ip(subnet.network());
    let last = {
        let b = Addr::from_ip(subnet.broadcast());
        // IPv4 skips the broadcast address.
        if b.v4 { Addr { n: b.n - 1, ..b } } else { b }
    };
    let inside = |ip: IpAddr, key: &str| -> Result<Addr> {
        let a = Addr::from_ip(ip);
        if a.v4 != net.v4 {
            return Err(Error::config(
                format!("{field}.{key}"),
                format!("{ip} is not the same protocol as subnet {subnet}"),
            ));
        }
        if !subnet.contains(&ip) {
            return Err(Error::config(
                format!("{field}.{key}"),
                format!("{ip} not in network {subnet}"),
            ));
        }
        Ok(a)
    };
    let first = Addr {
        n: net.n + 1,
        ..net
    };
    let gateway = match w.gateway.as_deref().filter(|s| !s.is_empty()) {
        Some(g) => inside(parse_ip(g, &format!("{field}.gateway"))?, "gateway")?,
        None => first,
    };
    let start = match w.range_start.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => inside(parse_ip(s, &format!("{field}.rangeStart"))?, "rangeStart")?,
        None => first,
    };
    let end = match w.range_end.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => inside(parse_ip(s, &format!("{field}.rangeEnd"))?, "rangeEnd")?,
        None => last,
    };
    if end < start {
        return Err(Error::config(
            format!("{field}.rangeEnd"),
            format!("{end} is before rangeStart {start}"),
        ));
    }
    Ok(Range {
        subnet,
        range_start: start.ip(),
        range_end: end.ip(),
        gateway: gateway.ip(),
    })
}

fn overlaps(a: &Range, b: &Range) -> bool {
    a.start().v4 == b.start().v4 && a.start() <= b.end() && b.start() <= a.end()
}

fn canonical_set(set: &[WireRange], field: &str) -> Result<RangeSet> {
    if set.is_empty() {
        return Err(Error::config(field, "empty range set"));
    }
    let ranges = set
        .iter()
        .enumerate()
        .map(|(j, r)| canonical(r, &format!("{field}[{j}]")))
        .collect::<Result<Vec<_>>>()?;
    for (j, r) in ranges.iter().enumerate() {
        if r.range_start.is_ipv4() != ranges[0].range_start.is_ipv4() {
            return Err(Error::config(
                format!("{field}[{j}].subnet"),
                "mixed address families in one range set",
            ));
        }
        if let Some(k) = ranges[..j].iter().position(|p| overlaps(p, r)) {
            return Err(Error::config(
                format!("{field}[{j}].subnet"),
                format!("range {r} overlaps with range {k} ({})", ranges[k]),
            ));
        }
    }
    Ok(RangeSet(ranges))
}

impl IpamConfig {
    /// Reads `ipam` (and the requested addresses) from a plugin request.
    /// Error fields are paths from the configuration's root
    /// (`ipam.ranges[0][0].subnet`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field.
    pub fn from_request(conf: &NetConf, env: &Env) -> Result<Self> {
        let ipam = conf
            .ipam
            .as_ref()
            .ok_or_else(|| Error::config("ipam", "missing"))?;
        let wire: WireIpam = typed(&Value::Object(ipam.clone()), "ipam.")?;
        let mut sets: Vec<(String, Vec<WireRange>)> = Vec::new();
        if let Some(rc) = conf.runtime_config.get("ipRanges") {
            let extra: Vec<Vec<WireRange>> = typed(rc, "runtimeConfig.ipRanges")?;
            for (i, s) in extra.into_iter().enumerate() {
                sets.push((format!("runtimeConfig.ipRanges[{i}]"), s));
            }
        }
        if wire.legacy.subnet.as_deref().is_some_and(|s| !s.is_empty()) {
            sets.push(("ipam".into(), vec![wire.legacy]));
        }
        for (i, s) in wire.ranges.into_iter().enumerate() {
            sets.push((format!("ipam.ranges[{i}]"), s));
        }
        if sets.is_empty() {
            return Err(Error::config("ipam.ranges", "no IP ranges specified"));
        }
        let ranges = sets
            .iter()
            .map(|(field, s)| {
                if field == "ipam" {
                    // The legacy flat form: its fields sit directly in `ipam`.
                    canonical(&s[0], "ipam").map(|r| RangeSet(vec![r]))
                } else {
                    canonical_set(s, field)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        for (i, a) in ranges.iter().enumerate() {
            for (j, b) in ranges.iter().enumerate().skip(i + 1) {
                if a.0.iter().any(|x| b.0.iter().any(|y| overlaps(x, y))) {
                    return Err(Error::config(
                        sets[j].0.clone(),
                        format!("range set {j} overlaps with range set {i}"),
                    ));
                }
            }
        }
        let v4 = ranges.iter().filter(|s| s.is_v4()).count();
        if conf.cni_version < Version::V0_3_0 && (v4 > 1 || ranges.len() - v4 > 1) {
            return Err(Error::config(
                "ipam.ranges",
                format!(
                    "CNI version {} does not support more than 1 address per family",
                    conf.cni_version
                ),
            ));
        }
        let mut requested = Vec::new();
        // Only ADD and CHECK read the requested addresses. The reference's
        // LoadIPAMConfig parses them (and CNI_ARGS, with types.LoadArgs:
        // a malformed pair is code 999) on every command, so a malformed
        // CNI_ARGS or a bad `IP`, `args.cni.ips` or `runtimeConfig.ips`
        // also fails its DEL. Ours does not, on purpose: DEL releases by
        // container ID and interface name and must free the addresses
        // whatever else the runtime passes (GC and STATUS read none).
        if matches!(env.command, Command::Add | Command::Check) {
            if let Some(ip) = env.strict_arg("IP")? {
                for part in ip.split(',').filter(|s| !s.is_empty()) {
                    requested.push(parse_requested(part, "CNI_ARGS.IP")?);
                }
            }
            if let Some(ips) = conf.cni_arg("ips") {
                let list: Vec<String> = typed(ips, "args.cni.ips")?;
                for (i, s) in list.iter().enumerate() {
                    requested.push(parse_requested(s, &format!("args.cni.ips[{i}]"))?);
                }
            }
            if let Some(ips) = conf.runtime_config.get("ips") {
                let list: Vec<String> = typed(ips, "runtimeConfig.ips")?;
                for (i, s) in list.iter().enumerate() {
                    requested.push(parse_requested(s, &format!("runtimeConfig.ips[{i}]"))?);
                }
            }
        }
        // One request per address, however many sources name it (the
        // reference keeps them in a map keyed by the address).
        let mut seen = std::collections::HashSet::new();
        requested.retain(|ip| seen.insert(*ip));
        Ok(Self {
            network: conf.name.clone(),
            cni_version: conf.cni_version,
            ranges,
            routes: wire.routes,
            data_dir: PathBuf::from(
                wire.data_dir
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            ),
            resolv_conf: wire
                .resolv_conf
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            requested,
        })
    }

    /// The network's directory: `data_dir/network`.
    pub fn network_dir(&self) -> PathBuf {
        self.data_dir.join(&self.network)
    }
}

/// Reads DNS settings from a resolv.conf (`nameserver`, `domain`,
/// `search`, `options`), as the reference's `resolvConf` key does.
///
/// # Errors
///
/// [`Error::Io`] naming the file.
pub fn parse_resolv_conf(path: &std::path::Path) -> Result<Dns> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("ipam.resolvConf: reading {}", path.display()), e))?;
    let mut dns = Dns::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.nameservers.extend(words.next().map(str::to_owned)),
            Some("domain") => dns.domain = words.next().map(str::to_owned),
            Some("search") => dns.search.extend(words.map(str::to_owned)),
            Some("options") => dns.options.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    Ok(dns)
}
