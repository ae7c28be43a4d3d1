//! External address groups: the address space cut at every CIDR boundary
//! any policy mentions, so that every address of a group gets the same
//! verdicts (np-guard's `0.0.0.0-255.255.255.255[External]` rows).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::compile::PolicySet;

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpRange {
    /// The first address.
    pub first: IpAddr,
    /// The last address.
    pub last: IpAddr,
}

pub(crate) fn bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

pub(crate) fn addr(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

impl IpRange {
    /// The range as one CIDR, when it is exactly one.
    pub fn as_cidr(&self) -> Option<IpNet> {
        let (v6, a) = bits(self.first);
        let (_, b) = bits(self.last);
        let width = if v6 { 128 } else { 32 };
        let size = b.checked_sub(a)?.checked_add(1);
        let host_bits = match size {
            None => 128, // the whole IPv6 space
            Some(s) if s.is_power_of_two() => s.trailing_zeros(),
            Some(_) => return None,
        };
        let aligned = host_bits >= 128 || a & ((1u128 << host_bits) - 1) == 0;
        let prefix = u8::try_from(width - host_bits).ok()?;
        aligned
            .then(|| IpNet::new(self.first, prefix).ok())
            .flatten()
    }
}

impl fmt::Display for IpRange {
    /// `10.0.0.0/8` when the range is a CIDR, else `10.0.0.0-10.0.0.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_cidr() {
            Some(net) => net.fmt(f),
            None => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

/// The address space of one family as inclusive ranges of address bits,
/// cut at the first address of every CIDR (and `except`) any peer set
/// holds and after its last: every address of a range is inside exactly
/// the same blocks, so every non-pod address of a range gets the same
/// verdicts (node-local exemptions aside).
pub(crate) fn ranges(set: &PolicySet, v6: bool) -> Vec<(u128, u128)> {
    let max: u128 = if v6 { u128::MAX } else { u128::from(u32::MAX) };
    let mut starts: Vec<u128> = vec![0];
    let nets = set
        .peers
        .list
        .iter()
        .flat_map(|s| &s.blocks)
        .flat_map(|b| std::iter::once(b.net).chain(b.except.iter().copied()))
        .filter(|n| matches!(n, IpNet::V6(_)) == v6);
    for n in nets {
        let (_, a) = bits(n.network());
        let (_, b) = bits(n.broadcast());
        starts.push(a);
        if b < max {
            starts.push(b + 1);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts
        .iter()
        .enumerate()
        .map(|(i, &a)| (a, starts.get(i + 1).map_or(max, |&next| next - 1)))
        .collect()
}

/// The first address of `a..=b` not in `taken` (sorted, deduplicated
/// address bits of one family), if any.
fn first_free(taken: &[u128], a: u128, b: u128) -> Option<u128> {
    let mut candidate = a;
    let start = taken.partition_point(|&t| t < a);
    for &t in &taken[start..] {
        if t != candidate {
            break; // t > candidate: the candidate is free
        }
        candidate = candidate.checked_add(1)?;
    }
    (candidate <= b).then_some(candidate)
}

/// The external groups of a policy set, each with a representative
/// address that belongs to no pod and no node (the first such address of
/// the group). Groups that hold nothing but pod and node addresses are
/// left out. IPv6 appears only when a pod or a policy uses it.
pub(crate) fn groups(set: &PolicySet) -> Vec<(IpRange, IpAddr)> {
    let w = &set.world;
    let mut taken: HashSet<IpAddr> = w
        .pod_slots()
        .flat_map(|(_, s)| s.ips.iter().copied())
        .collect();
    taken.extend(w.nodes.values().flat_map(|n| n.ips.iter().copied()));
    taken.extend(w.hosts.values().flat_map(|h| h.ips.iter().copied()));
    taken.extend(w.pod_slots().flat_map(|(_, s)| s.node_ips.iter().copied()));
    // Per family, sorted: [IPv4, IPv6].
    let mut sorted: [Vec<u128>; 2] = Default::default();
    for ip in &taken {
        let (v6, n) = bits(*ip);
        sorted[usize::from(v6)].push(n);
    }
    for list in &mut sorted {
        list.sort_unstable();
    }
    let uses_v6 = set
        .peers
        .list
        .iter()
        .flat_map(|s| &s.blocks)
        .any(|b| matches!(b.net, IpNet::V6(_)))
        || w.pod_slots()
            .any(|(_, s)| s.ips.iter().any(IpAddr::is_ipv6));
    let mut out = Vec::new();
    for v6 in [false, true] {
        if v6 && !uses_v6 {
            continue;
        }
        for (a, b) in ranges(set, v6) {
            if let Some(rep) = first_free(&sorted[usize::from(v6)], a, b).map(|x| addr(v6, x)) {
                let range = IpRange {
                    first: addr(v6, a),
                    last: addr(v6, b),
                };
                out.push((range, rep));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str, b: &str) -> IpRange {
        IpRange {
            first: a.parse().unwrap(),
            last: b.parse().unwrap(),
        }
    }

    #[test]
    fn the_first_free_address_is_found_past_any_run_of_taken_ones() {
        let taken: Vec<u128> = (10..300).chain([400, 401]).collect();
        assert_eq!(first_free(&taken, 0, 1000), Some(0));
        assert_eq!(first_free(&taken, 10, 1000), Some(300));
        assert_eq!(first_free(&taken, 10, 299), None);
        assert_eq!(first_free(&taken, 400, 401), None);
        assert_eq!(first_free(&taken, 400, 402), Some(402));
        assert_eq!(first_free(&[u128::MAX], u128::MAX, u128::MAX), None);
        assert_eq!(first_free(&[], 7, 7), Some(7));
    }

    /// A block whose first 256 addresses all belong to pods is still an
    /// external group, represented by its first free address. (The search
    /// used to give up after 256 tries and leave the group out.)
    #[test]
    fn a_group_crowded_with_pods_is_kept() {
        use k8snet_model::{Cluster, Manifests};

        use crate::Options;

        let mut yaml = String::from(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
             metadata: {name: out, namespace: x}\n\
             spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 10.0.0.0/23}}]}]}\n",
        );
        for i in 0..256 {
            yaml.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, namespace: x}}\nstatus: {{podIP: 10.0.0.{i}}}\n"
            ));
        }
        let mut m = Manifests::new();
        m.load_str("t.yaml", &yaml);
        assert!(m.errors().is_empty(), "{:?}", m.errors());
        let set = PolicySet::compile(&Cluster::from_manifests(&m), &Options::default());
        let found: Vec<(String, IpAddr)> = groups(&set)
            .into_iter()
            .map(|(range, rep)| (range.to_string(), rep))
            .collect();
        let block = found.iter().find(|(range, _)| range == "10.0.0.0/23");
        assert_eq!(
            block.map(|(_, rep)| rep.to_string()).as_deref(),
            Some("10.0.1.0"),
            "{found:?}"
        );
    }

    #[test]
    fn ranges_print_as_cidrs_when_they_are() {
        assert_eq!(r("0.0.0.0", "255.255.255.255").to_string(), "0.0.0.0/0");
        assert_eq!(r("10.0.0.0", "10.255.255.255").to_string(), "10.0.0.0/8");
        assert_eq!(r("10.0.0.1", "10.0.0.1").to_string(), "10.0.0.1/32");
        assert_eq!(r("10.0.0.0", "10.0.0.5").to_string(), "10.0.0.0-10.0.0.5");
        assert_eq!(r("10.0.0.1", "10.0.0.2").to_string(), "10.0.0.1-10.0.0.2");
        assert_eq!(
            r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").to_string(),
            "::/0"
        );
    }
}
