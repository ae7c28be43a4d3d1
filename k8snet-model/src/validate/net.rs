//! IP addresses and CIDRs as the apiserver accepts them, in its two modes:
//! - strict ([`parse_ip_strict`], [`parse_cidr_strict`]), as under
//!   `StrictIPCIDRValidation` (this crate checks the IP fields not listed
//!   below this way, e.g. pod and endpoint addresses): no IPv4 leading
//!   zeros, no IPv4-mapped IPv6, and for CIDRs no bits set beyond the
//!   prefix length;
//! - legacy ([`parse_ip_legacy`], [`parse_cidr_legacy`]), for the fields a
//!   default apiserver checks with `IsValidIPForLegacyField` /
//!   `IsValidCIDRForLegacyField` and consumers read with `ParseIPSloppy` /
//!   `ParseCIDRSloppy` (`clusterIP(s)`, `externalIPs`, `loadBalancerIP`,
//!   load balancer ingress IPs, `loadBalancerSourceRanges`, `podCIDR(s)`,
//!   `ipBlock`, admin `networks`, Node `InternalIP`/`ExternalIP`
//!   addresses): the legacy spellings are accepted with a warning naming
//!   what they are read as.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

use super::{Errors, FieldPath};
use crate::error::FieldErrorKind;
use crate::load::LocalEndpoints;

const IP_EXAMPLE: &str = "must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)";
const CIDR_EXAMPLE: &str = "must be a valid CIDR value (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// Parses an IP address the way the apiserver's strict validation accepts it.
///
/// # Errors
/// A message that starts with the quoted input and says what is wrong, e.g.
/// `"010.0.0.1": must not have leading zeros (use "10.0.0.1")`.
///
/// ```
/// use k8snet_model::validate::parse_ip_strict;
/// assert!(parse_ip_strict("10.0.0.1").is_ok());
/// assert!(parse_ip_strict("::ffff:10.0.0.1").unwrap_err().contains("IPv4-mapped"));
/// ```
pub fn parse_ip_strict(s: &str) -> Result<IpAddr, String> {
    ip_reason(s).map_err(|reason| format!("{s:?}: {reason}"))
}

fn ip_reason(s: &str) -> Result<IpAddr, String> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => Err(format!(
                "must not be an IPv4-mapped IPv6 address (use \"{v4}\")"
            )),
            None => Ok(IpAddr::V6(v6)),
        },
        Ok(ip) => Ok(ip),
        Err(_) => Err(match without_leading_zeros(s) {
            Some(fixed) => format!("must not have leading zeros (use \"{fixed}\")"),
            None => IP_EXAMPLE.to_string(),
        }),
    }
}

/// `010.001.0.1` → `10.1.0.1`: what the apiserver's sloppy parser
/// (`netutils.ParseIPSloppy`) reads, so the message can name the intended
/// address.
fn without_leading_zeros(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut out = Vec::with_capacity(4);
    for p in parts {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        out.push(p.parse::<u8>().ok()?.to_string());
    }
    Some(out.join("."))
}

/// Whether the apiserver's lenient parser reads `s` as an IP address.
/// That parser is today's `ParseIPSloppy` of k8s.io/utils/net: the strict
/// parser first, then, when that fails, the strict parser again after
/// leading zeros are stripped from the parts of a trailing dotted quad
/// (the whole string, or what follows its last `:`). So it accepts what
/// the strict parser accepts, plus IPv4 parts with leading zeros
/// (`010.1.1.1` is 10.1.1.1), also as the tail of an IPv6 address
/// (`::ffff:010.1.1.1`). The apiserver uses it to refuse IPs where a DNS
/// name is expected (Ingress rule hosts, load balancer hostnames), so a
/// name like `010.1.1.1` is refused there.
pub(crate) fn is_ip_sloppy(s: &str) -> bool {
    parse_ip_sloppy(s).is_some()
}

/// The address the apiserver's lenient parser (`ParseIPSloppy`) reads,
/// as written: an IPv4-mapped IPv6 address stays IPv6 here.
fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(v4) = sloppy_v4(s) {
        return Some(IpAddr::V4(v4));
    }
    // An IPv6 address may end in dotted IPv4 (`::ffff:010.1.1.1`).
    match s.rsplit_once(':') {
        Some((head, tail)) if tail.contains('.') => {
            let v4 = sloppy_v4(tail)?;
            format!("{head}:{v4}")
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        }
        _ => None,
    }
}

/// Parses an IP address of a legacy field (`spec.externalIPs`,
/// `status.loadBalancer.ingress[].ip`, `spec.loadBalancerIP`) as the
/// apiserver does without the `StrictIPCIDRValidation` gate (alpha, off by
/// default): it checks the value with `IsValidIPForLegacyField` and
/// consumers (kube-proxy) read it with `netutils.ParseIPSloppy`. So it
/// accepts
/// - IPv4 parts with leading zeros, read as decimal (`010.001.0.1` is
///   10.1.0.1; each part at most 255), alone or as the dotted tail of an
///   IPv6 address;
/// - IPv4-mapped IPv6 (`::ffff:10.1.1.1`), returned as the IPv4 address:
///   Go's `To4` (and so kube-proxy's family checks, `IsIPv4`, and
///   `IsLoopback` and the like) treats it as IPv4.
///
/// The apiserver warns (`GetWarningsForIP`) whenever the text is not the
/// returned address's `to_string()`.
///
/// # Errors
/// A message that starts with the quoted input and says what is wrong.
///
/// ```
/// use k8snet_model::validate::parse_ip_legacy;
/// let read = |s| parse_ip_legacy(s).map(|ip| ip.to_string());
/// assert_eq!(read("010.001.0.1")?, "10.1.0.1");
/// assert_eq!(read("::ffff:10.1.1.1")?, "10.1.1.1");
/// assert_eq!(read("FD00::0001")?, "fd00::1");
/// assert!(parse_ip_legacy("10.1.1.256").is_err());
/// assert!(parse_ip_legacy("10.1.1").is_err());
/// assert!(parse_ip_legacy(" 10.1.1.1").is_err());
/// # Ok::<(), String>(())
/// ```
pub fn parse_ip_legacy(s: &str) -> Result<IpAddr, String> {
    match parse_ip_sloppy(s) {
        Some(IpAddr::V6(v6)) => Ok(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        Some(ip) => Ok(ip),
        None => Err(format!("{s:?}: {IP_EXAMPLE}")),
    }
}

/// A dotted quad with leading zeros stripped, then parsed strictly: four
/// dot-separated decimal parts, each with at least one digit and a value
/// up to 255 once its leading zeros are gone (`0256` is 256, refused).
fn sloppy_v4(s: &str) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = part.trim_start_matches('0');
        *octet = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
    }
    parts
        .next()
        .is_none()
        .then_some(std::net::Ipv4Addr::from(octets))
}

/// Parses a CIDR strictly: a valid address, a prefix length without leading
/// zeros, and no bits set beyond the prefix (`10.0.0.1/8` is refused,
/// naming `10.0.0.0/8`).
///
/// # Errors
/// A message that starts with the quoted input and says what is wrong.
///
/// ```
/// use k8snet_model::validate::parse_cidr_strict;
/// assert_eq!(parse_cidr_strict("10.0.0.0/8")?.to_string(), "10.0.0.0/8");
/// let err = parse_cidr_strict("10.0.0.1/8").unwrap_err();
/// assert!(err.contains("\"10.0.0.0/8\""), "{err}");
/// # Ok::<(), String>(())
/// ```
pub fn parse_cidr_strict(s: &str) -> Result<IpNet, String> {
    let net = parse_cidr(s)?;
    if net.trunc() != net {
        return Err(format!(
            "{s:?}: must not have bits set beyond the prefix length (the network is \"{}\")",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Parses a CIDR that may have host bits set (`1.2.3.4/24`) with a strict
/// address and prefix length: the first step of [`parse_cidr_strict`],
/// which then refuses the host bits. (Fields that take host bits,
/// `podCIDRs` and `loadBalancerSourceRanges`, are legacy fields read with
/// [`parse_cidr_legacy`].)
pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, String> {
    cidr_reason(s).map_err(|reason| format!("{s:?}: {reason}"))
}

fn cidr_reason(s: &str) -> Result<IpNet, String> {
    let Some((addr, len)) = s.split_once('/') else {
        return Err(CIDR_EXAMPLE.to_string());
    };
    let ip = ip_reason(addr).map_err(|r| {
        if r == IP_EXAMPLE {
            CIDR_EXAMPLE.to_string()
        } else {
            r
        }
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix_ok = !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'));
    let prefix = len.parse::<u8>().ok().filter(|p| prefix_ok && *p <= max);
    match prefix {
        Some(p) => IpNet::new(ip, p).map_err(|_| CIDR_EXAMPLE.to_string()),
        None => Err(format!(
            "prefix length must be a number in 0..={max} without leading zeros"
        )),
    }
}

/// An `ipBlock` CIDR as a default apiserver reads it: see
/// [`parse_cidr_legacy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LegacyCidr {
    /// The network every implementation matches: the address masked to
    /// the prefix, and an IPv4-mapped IPv6 CIDR with a prefix of at least
    /// 96 as the IPv4 network it covers (`::ffff:10.0.0.0/104` is
    /// `10.0.0.0/8`).
    pub net: IpNet,
    /// The address as written (bits beyond the prefix kept), in the
    /// family of `net`.
    pub addr: IpAddr,
    /// The prefix length as written, out of 32 for a dotted IPv4 address
    /// and out of 128 for IPv6 (IPv4-mapped included): the mask size
    /// Go's `IPMask.Size` reports, which the apiserver compares to check
    /// that an `except` is a strict subset of its `cidr`.
    pub written_prefix: u8,
    /// Whether the address had bits set beyond the prefix length.
    pub host_bits: bool,
}

impl LegacyCidr {
    /// Whether `except` passes the apiserver's strict-subset check
    /// against this `cidr` (`ValidateIPBlock`): this network contains the
    /// network address of `except`, and this prefix as written is shorter
    /// than the one of `except` as written.
    pub fn has_strict_subset(&self, except: &Self) -> bool {
        self.net.contains(&except.net.network()) && self.written_prefix < except.written_prefix
    }
}

/// Parses a CIDR of a legacy field (`ipBlock.cidr`, `ipBlock.except`) as
/// the apiserver does without the `StrictIPCIDRValidation` gate (alpha,
/// off by default): it checks the value with `IsValidCIDRForLegacyField`
/// and reads it with `netutils.ParseCIDRSloppy`, as Go's `net.ParseCIDR`
/// of Go 1.16 did. So it accepts
/// - a prefix length of decimal digits with leading zeros (`/08` is 8),
///   at most 32 after a dotted IPv4 address and 128 after IPv6;
/// - IPv4 parts with leading zeros, read as decimal (`010.002.0.0` is
///   10.2.0.0; each part at most 255), alone or as the dotted tail of an
///   IPv6 address;
/// - bits set beyond the prefix length (dropped: the network is meant);
/// - IPv4-mapped IPv6: `::ffff:a.b.c.d/n` with `n` of at least 96 is the
///   IPv4 network `a.b.c.d/(n-96)` (Go matches it against IPv4
///   addresses); with a shorter prefix it stays an IPv6 network.
///
/// The returned [`LegacyCidr`] holds the network, the prefix as written
/// and whether host bits were set; the apiserver warns
/// (`GetWarningsForCIDR`) whenever the text is not `net.to_string()`.
///
/// # Errors
/// A message that starts with the quoted input and says what is wrong.
///
/// ```
/// use k8snet_model::validate::parse_cidr_legacy;
/// let read = |s| parse_cidr_legacy(s).map(|c| c.net.to_string());
/// assert_eq!(read("010.002.0.0/016")?, "10.2.0.0/16");
/// assert_eq!(read("fd00::1/064")?, "fd00::/64");
/// assert_eq!(read("::ffff:10.0.0.0/104")?, "10.0.0.0/8");
/// assert_eq!(parse_cidr_legacy("::ffff:10.0.0.0/104")?.written_prefix, 104);
/// assert!(parse_cidr_legacy("10.0.0.0256/8").is_err());
/// assert!(parse_cidr_legacy("10.0.0.0/33").is_err());
/// # Ok::<(), String>(())
/// ```
pub fn parse_cidr_legacy(s: &str) -> Result<LegacyCidr, String> {
    let Some((addr, len)) = s.split_once('/') else {
        return Err(format!("{s:?}: {CIDR_EXAMPLE}"));
    };
    let Some(ip) = parse_ip_sloppy(addr) else {
        return Err(format!("{s:?}: {CIDR_EXAMPLE}"));
    };
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) {
        // Leading zeros are read away, so any count of them is fine.
        let digits = len.trim_start_matches('0');
        if digits.is_empty() {
            Some(0)
        } else {
            digits.parse::<u8>().ok().filter(|p| *p <= max)
        }
    } else {
        None
    };
    let Some(prefix) = prefix else {
        return Err(format!(
            "{s:?}: prefix length must be a decimal number in 0..={max}"
        ));
    };
    let written = IpNet::new(ip, prefix).map_err(|_| format!("{s:?}: {CIDR_EXAMPLE}"))?;
    let host_bits = written.trunc() != written;
    let (net, addr) = match ip {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (
                IpNet::new(IpAddr::V4(v4), prefix - 96)
                    .map_err(|_| format!("{s:?}: {CIDR_EXAMPLE}"))?
                    .trunc(),
                IpAddr::V4(v4),
            ),
            None => (written.trunc(), ip),
        },
        _ => (written.trunc(), ip),
    };
    Ok(LegacyCidr {
        net,
        addr,
        written_prefix: prefix,
        host_bits,
    })
}

/// The ranges `ValidateNonSpecialIP` refuses for endpoints and external IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpecialIp {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// 224.0.0.0/24, ff02::/16 (any link-local-scope multicast).
    LinkLocalMulticast,
}

impl SpecialIp {
    /// The range an address is in, or `None` when it may serve as an
    /// endpoint or external IP.
    pub(crate) fn of(ip: IpAddr) -> Option<Self> {
        if ip.is_unspecified() {
            return Some(Self::Unspecified);
        }
        if ip.is_loopback() {
            return Some(Self::Loopback);
        }
        let (link_local, ll_multicast) = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                (v4.is_link_local(), o[0] == 224 && o[1] == 0 && o[2] == 0)
            }
            IpAddr::V6(v6) => (is_v6_link_local(v6), is_v6_link_local_multicast(v6)),
        };
        if link_local {
            Some(Self::LinkLocal)
        } else if ll_multicast {
            Some(Self::LinkLocalMulticast)
        } else {
            None
        }
    }

    /// Why the apiserver refuses the address.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Unspecified => "may not be unspecified (0.0.0.0, ::)",
            Self::Loopback => "may not be in the loopback range (127.0.0.0/8, ::1/128)",
            Self::LinkLocal => "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
            Self::LinkLocalMulticast => {
                "may not be in the link-local multicast range (224.0.0.0/24, ff02::/16)"
            }
        }
    }

    /// Whether a backend on this host can be reached at such an address,
    /// which makes it a usable endpoint for local serving (loopback and
    /// link-local unicast; never unspecified or multicast).
    pub(crate) fn is_host_local(self) -> bool {
        matches!(self, Self::Loopback | Self::LinkLocal)
    }

    /// `loopback` / `link-local`, for messages.
    fn noun(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::LinkLocal => "link-local",
            Self::LinkLocalMulticast => "link-local multicast",
        }
    }
}

fn is_v6_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// Multicast with link-local scope (`ffx2::`), as Go's `IsLinkLocalMulticast`.
fn is_v6_link_local_multicast(ip: Ipv6Addr) -> bool {
    let o = ip.octets();
    o[0] == 0xff && o[1] & 0x0f == 0x02
}

/// Validates an IP field; returns the address when it parses.
pub(crate) fn ip<'p>(errs: &mut Errors, path: impl Into<FieldPath<'p>>, s: &str) -> Option<IpAddr> {
    match parse_ip_strict(s) {
        Ok(ip) => Some(ip),
        Err(msg) => {
            errs.invalid(path, msg);
            None
        }
    }
}

/// Validates an endpoint address: a strict IP outside the ranges
/// `ValidateNonSpecialIP` refuses, except that a
/// loopback or link-local address is only a warning when the collector
/// accepts local endpoints ([`LocalEndpoints::Warn`]). Returns the
/// address when it parses and is accepted, so that further checks (the
/// slice's family) still apply to it.
pub(crate) fn endpoint_ip<'p>(
    errs: &mut Errors,
    path: impl Into<FieldPath<'p>>,
    s: &str,
) -> Option<IpAddr> {
    let path = path.into();
    let ip = ip(errs, path, s)?;
    match SpecialIp::of(ip) {
        None => Some(ip),
        Some(special)
            if special.is_host_local() && errs.local_endpoints == LocalEndpoints::Warn =>
        {
            errs.accepted_local(
                path,
                format!(
                    "{s} is a {} address (accepted for local serving)",
                    special.noun()
                ),
            );
            Some(ip)
        }
        Some(special) => {
            errs.invalid(path, format!("{s:?}: {}", special.reason()));
            None
        }
    }
}

/// Validates an IP of a legacy field ([`parse_ip_legacy`]): a spelling
/// a default apiserver stores is accepted with a warning naming the
/// address read (`GetWarningsForIP`); returns that address.
pub(crate) fn legacy_ip<'p>(
    errs: &mut Errors,
    path: impl Into<FieldPath<'p>>,
    s: &str,
) -> Option<IpAddr> {
    let path = path.into();
    match parse_ip_legacy(s) {
        Ok(ip) => {
            if ip.to_string() != s {
                errs.warn(
                    FieldErrorKind::Invalid,
                    path,
                    format!(
                        "{s:?}: non-standard IP address; read as \"{ip}\" \
                         (accepted, as the apiserver does; write \"{ip}\")"
                    ),
                );
            }
            Some(ip)
        }
        Err(msg) => {
            errs.invalid(path, msg);
            None
        }
    }
}

/// Validates a legacy-field IP that must be usable as an external IP
/// (`ValidateNonSpecialIP` on what was read: `::ffff:127.0.0.1` is
/// loopback).
pub(crate) fn legacy_non_special_ip<'p>(
    errs: &mut Errors,
    path: impl Into<FieldPath<'p>>,
    s: &str,
) -> Option<IpAddr> {
    let path = path.into();
    let ip = legacy_ip(errs, path, s)?;
    match SpecialIp::of(ip) {
        Some(special) => {
            errs.invalid(path, format!("{s:?}: {}", special.reason()));
            None
        }
        None => Some(ip),
    }
}

/// Validates a CIDR of a legacy field ([`parse_cidr_legacy`]):
/// `ipBlock.cidr`/`except`, `loadBalancerSourceRanges`, `podCIDRs`. A
/// spelling a default apiserver stores is accepted with a warning naming
/// the network read (`GetWarningsForCIDR`): refusing it would drop the
/// whole object (a policy's isolation, a Service's proxying).
pub(crate) fn legacy_cidr<'p>(
    errs: &mut Errors,
    path: impl Into<FieldPath<'p>>,
    s: &str,
) -> Option<LegacyCidr> {
    let path = path.into();
    let read = match parse_cidr_legacy(s) {
        Ok(read) => read,
        Err(msg) => {
            errs.invalid(path, msg);
            return None;
        }
    };
    let net = read.net;
    if read.host_bits {
        let (addr, width) = (read.addr, if net.addr().is_ipv4() { 32 } else { 128 });
        errs.warn(
            FieldErrorKind::Invalid,
            path,
            format!(
                "{s:?}: has bits set beyond the prefix length; read as the network \"{net}\" \
                 (accepted, as the apiserver does; for the one address write \"{addr}/{width}\")"
            ),
        );
    } else if net.to_string() != s {
        errs.warn(
            FieldErrorKind::Invalid,
            path,
            format!(
                "{s:?}: non-standard CIDR value; read as \"{net}\" \
                 (accepted, as the apiserver does; write \"{net}\")"
            ),
        );
    }
    Some(read)
}

/// Validates a strict CIDR field; returns the network when it parses.
pub(crate) fn cidr_strict<'p>(
    errs: &mut Errors,
    path: impl Into<FieldPath<'p>>,
    s: &str,
) -> Option<IpNet> {
    match parse_cidr_strict(s) {
        Ok(net) => Some(net),
        Err(msg) => {
            errs.invalid(path, msg);
            None
        }
    }
}

/// The families of the entries of a dual-stack list that parsed, in order.
/// Only the first two can matter to [`dual_stack`] (a third entry is an
/// error by itself), so nothing more is kept and nothing is allocated.
#[derive(Debug, Default)]
pub(crate) struct Families {
    parsed: usize,
    first_two_v4: [bool; 2],
}

impl Families {
    /// Records the family of the next entry that parsed.
    pub(crate) fn add(&mut self, ip: IpAddr) {
        if let Some(slot) = self.first_two_v4.get_mut(self.parsed) {
            *slot = ip.is_ipv4();
        }
        self.parsed += 1;
    }

    /// Exactly two entries parsed, and they are of the same family.
    fn same_pair(&self) -> bool {
        self.parsed == 2 && self.first_two_v4[0] == self.first_two_v4[1]
    }
}

/// Checks a dual-stack list (`podIPs`, `podCIDRs`, `clusterIPs`): at most
/// two entries, of different families. `families` holds those of the
/// entries that parsed.
pub(crate) fn dual_stack<'p, 'v>(
    errs: &mut Errors,
    path: impl Into<FieldPath<'p>>,
    values: impl ExactSizeIterator<Item = &'v str>,
    families: &Families,
) {
    if values.len() > 2 || families.same_pair() {
        let values: Vec<&str> = values.collect();
        errs.invalid(
            path,
            format!(
                "{values:?}: may specify no more than one value for each IP family (at most 2)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips() {
        assert!(parse_ip_strict("10.0.0.1").is_ok());
        assert!(parse_ip_strict("2001:db8::1").is_ok());
        let e = parse_ip_strict("010.0.0.1").unwrap_err();
        assert!(e.contains("\"10.0.0.1\""), "{e}");
        let e = parse_ip_strict("::ffff:1.2.3.4").unwrap_err();
        assert!(e.contains("\"1.2.3.4\""), "{e}");
        let e = parse_ip_strict("nope").unwrap_err();
        assert!(e.starts_with("\"nope\": must be a valid IP"), "{e}");
        assert!(parse_ip_strict("").is_err());
        assert!(parse_ip_strict("fe80::1%eth0").is_err());
    }

    #[test]
    fn sloppy_ips_are_what_parse_ip_sloppy_reads() {
        for ip in [
            "10.1.1.1",
            "010.1.1.1",
            "0000010.001.000.0255",
            "2001:db8::1",
            "::ffff:1.2.3.4",
            "::ffff:010.1.1.1",
            "1::0255.01.1.1",
            "0000::1",
        ] {
            assert!(is_ip_sloppy(ip), "{ip}");
        }
        for name in [
            "",
            "web.example.com",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.256",
            "1.2.3.0256",
            "1..2.3",
            "1.2.3.4.",
            "+1.2.3.4",
            "010.1.1.1a",
            "::ffff:1.2.3",
            "1::0256.1.1.1",
            // A prefix is stripped of zeros too, but an address with one
            // is still no IP.
            "1.2.3.4/24",
            "001.2.3.4/024",
            // Zeros are stripped only in a dotted quad, never in IPv6
            // groups beyond what the strict parser allows (4 digits).
            "00001::1",
            "fe80::1%eth0",
        ] {
            assert!(!is_ip_sloppy(name), "{name}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr_strict("10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(parse_cidr_strict("0.0.0.0/0").is_ok());
        assert!(parse_cidr_strict("fd00::/8").is_ok());
        let e = parse_cidr_strict("10.0.0.1/8").unwrap_err();
        assert!(
            e.contains("\"10.0.0.1/8\"") && e.contains("\"10.0.0.0/8\""),
            "{e}"
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/08",
            "10.0.0.0/",
            "/8",
            "10.0.0.0/8/8",
            "fd00::/129",
            "010.0.0.0/8",
            "10.0.0.0/-1",
        ] {
            assert!(parse_cidr_strict(bad).is_err(), "{bad}");
        }
        assert!(parse_cidr("10.0.0.1/8").is_ok());
        let e = parse_cidr("010.0.0.0/8").unwrap_err();
        assert!(e.contains("leading zeros"), "{e}");
    }

    #[test]
    fn legacy_cidrs_are_read_as_parse_cidr_sloppy_reads_them() {
        let read = |s: &str| parse_cidr_legacy(s).map(|c| (c.net.to_string(), c.written_prefix));
        for (s, net, written) in [
            ("10.0.0.0/8", "10.0.0.0/8", 8),
            ("010.002.0.0/16", "10.2.0.0/16", 16),
            ("0000010.0.0.0/8", "10.0.0.0/8", 8),
            ("10.0.0.0/0008", "10.0.0.0/8", 8),
            ("10.0.0.0/00", "0.0.0.0/0", 0),
            ("10.1.2.3/8", "10.0.0.0/8", 8),
            ("fd00::1/064", "fd00::/64", 64),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8", 104),
            ("::ffff:010.2.0.0/112", "10.2.0.0/16", 112),
            ("::ffff:10.0.0.0/96", "0.0.0.0/0", 96),
            ("::ffff:10.0.0.1/128", "10.0.0.1/32", 128),
            // Below 96 the mapped prefix stays IPv6 (the ffff is cut).
            ("::ffff:10.0.0.0/80", "::/80", 80),
            // Only ::ffff:0:0/96 is IPv4-mapped; IPv4-compatible stays IPv6.
            ("::10.0.0.0/104", "::a00:0/104", 104),
        ] {
            assert_eq!(read(s), Ok((net.to_string(), written)), "{s}");
        }
        let mapped = parse_cidr_legacy("::ffff:10.0.0.1/104").unwrap();
        assert!(mapped.host_bits);
        assert_eq!(mapped.addr.to_string(), "10.0.0.1");
        assert!(!parse_cidr_legacy("010.0.0.0/8").unwrap().host_bits);
        for bad in [
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/0033",
            "fd00::/129",
            "::ffff:10.0.0.0/129",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0.0256/8",
            "1.2.3/8",
            "00001::/16",
            "fe80::1%eth0/64",
            "/8",
            "",
        ] {
            assert!(parse_cidr_legacy(bad).is_err(), "{bad}");
        }
        // The strict-subset check: the except's network address inside
        // the cidr's network, the written prefixes compared as Go does.
        let c = |s: &str| parse_cidr_legacy(s).unwrap();
        assert!(c("10.0.0.0/8").has_strict_subset(&c("10.2.0.0/16")));
        assert!(c("10.0.0.0/8").has_strict_subset(&c("::ffff:10.2.0.0/112")));
        assert!(!c("::ffff:10.0.0.0/104").has_strict_subset(&c("10.2.0.0/16")));
        assert!(!c("10.0.0.0/8").has_strict_subset(&c("10.0.0.0/8")));
        assert!(!c("10.0.0.0/8").has_strict_subset(&c("fd00::/16")));
        assert!(!c("::/0").has_strict_subset(&c("10.0.0.0/8")));
        // Go tests only the except's network address: a mapped except
        // with a long written prefix passes though it is wider as IPv4.
        // (`0.0.0.0/4` read, against `0.0.0.0/8`); with another network
        // address it fails.
        assert!(c("0.0.0.0/8").has_strict_subset(&c("::ffff:0.0.0.0/100")));
        assert!(!c("10.0.0.0/8").has_strict_subset(&c("::ffff:10.0.0.0/100")));
    }

    #[test]
    fn special() {
        use SpecialIp::*;
        let r = |s: &str| SpecialIp::of(s.parse().unwrap());
        assert_eq!(r("0.0.0.0"), Some(Unspecified));
        assert_eq!(r("::"), Some(Unspecified));
        assert_eq!(r("127.0.0.5"), Some(Loopback));
        assert_eq!(r("::1"), Some(Loopback));
        assert_eq!(r("169.254.1.1"), Some(LinkLocal));
        assert_eq!(r("fe80::1"), Some(LinkLocal));
        assert_eq!(r("febf::1"), Some(LinkLocal));
        assert_eq!(r("fec0::1"), None);
        assert_eq!(r("224.0.0.251"), Some(LinkLocalMulticast));
        assert_eq!(r("ff02::fb"), Some(LinkLocalMulticast));
        assert_eq!(r("239.1.1.1"), None);
        assert_eq!(r("10.0.0.1"), None);
        assert_eq!(r("fd00::1"), None);
        // Only what a local backend can listen on is host-local.
        let host_local: Vec<SpecialIp> = [Unspecified, Loopback, LinkLocal, LinkLocalMulticast]
            .into_iter()
            .filter(|s| s.is_host_local())
            .collect();
        assert_eq!(host_local, [Loopback, LinkLocal]);
    }
}
