//! Sets of (protocol, port) pairs: what one pod may open to another.

use std::fmt;
use std::str::FromStr;

use k8snet_model::Protocol;

use crate::error::Error;
use crate::flow::proto;

/// Ports are 1–65535; port 0 is not a destination.
const FIRST: u16 = 1;
const LAST: u16 = u16::MAX;

/// A set of (protocol, port) pairs over TCP, UDP and SCTP, kept as sorted,
/// disjoint, inclusive port ranges per protocol.
///
/// Its text form is np-guard's: `All Connections`, `No Connections`, or
/// protocols in alphabetical order with their ports,
/// `SCTP 9003,TCP 80,8080-8090,UDP 53`.
///
/// ```
/// use k8snet_model::Protocol;
/// use k8snet_policy::ConnSet;
/// let set: ConnSet = "TCP 80,8080-8090,UDP 53".parse()?;
/// assert!(set.contains(Protocol::Tcp, 8085));
/// assert!(!set.contains(Protocol::Udp, 80));
/// assert_eq!(set.to_string(), "TCP 80,8080-8090,UDP 53");
/// assert_eq!(ConnSet::all().to_string(), "All Connections");
/// # Ok::<(), k8snet_policy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ConnSet {
    /// SCTP, TCP, UDP (display order).
    ranges: [Vec<(u16, u16)>; 3],
}

fn slot(p: Protocol) -> Option<usize> {
    proto::NAMED.iter().position(|(_, q)| *q == p)
}

impl ConnSet {
    /// Nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every port of every protocol.
    pub fn all() -> Self {
        Self {
            ranges: std::array::from_fn(|_| vec![(FIRST, LAST)]),
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.iter().all(Vec::is_empty)
    }

    /// Whether the set holds every port of every protocol.
    pub fn is_all(&self) -> bool {
        self.ranges.iter().all(|r| r.as_slice() == [(FIRST, LAST)])
    }

    /// Whether a port of a protocol is in the set.
    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        slot(protocol).is_some_and(|i| {
            self.ranges[i]
                .iter()
                .any(|&(lo, hi)| lo <= port && port <= hi)
        })
    }

    /// The port ranges of a protocol, sorted and disjoint.
    pub fn ranges(&self, protocol: Protocol) -> &[(u16, u16)] {
        slot(protocol).map_or(&[], |i| &self.ranges[i])
    }

    /// Adds the ports `lo..=hi` of a protocol (port 0 is dropped).
    pub fn insert(&mut self, protocol: Protocol, lo: u16, hi: u16) {
        let lo = lo.max(FIRST);
        let Some(i) = slot(protocol) else { return };
        if lo > hi {
            return;
        }
        let r = &mut self.ranges[i];
        r.push((lo, hi));
        r.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(r.len());
        for &(a, b) in r.iter() {
            match merged.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *r = merged;
    }

    /// The pairs in both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        let mut out = Self::none();
        for (_, p) in proto::NAMED {
            for &(a, b) in self.ranges(p) {
                for &(c, d) in other.ranges(p) {
                    let (lo, hi) = (a.max(c), b.min(d));
                    if lo <= hi {
                        out.insert(p, lo, hi);
                    }
                }
            }
        }
        out
    }

    /// Adds every pair of another set.
    pub fn extend(&mut self, other: &Self) {
        for (_, p) in proto::NAMED {
            for &(a, b) in other.ranges(p) {
                self.insert(p, a, b);
            }
        }
    }
}

impl fmt::Display for ConnSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("All Connections");
        }
        if self.is_empty() {
            return f.write_str("No Connections");
        }
        let mut first = true;
        for (i, (_, p)) in proto::NAMED.iter().enumerate() {
            for (j, &(lo, hi)) in self.ranges[i].iter().enumerate() {
                if !first {
                    f.write_str(",")?;
                }
                first = false;
                if j == 0 {
                    write!(f, "{p} ")?;
                }
                if lo == hi {
                    write!(f, "{lo}")?;
                } else {
                    write!(f, "{lo}-{hi}")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for ConnSet {
    type Err = Error;

    /// The [`Display`](fmt::Display) form; a protocol without ports means
    /// all of its ports (`TCP,UDP 53`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason: &str| Error::Ports {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim();
        if t.eq_ignore_ascii_case("All Connections") {
            return Ok(Self::all());
        }
        let mut set = Self::none();
        if t.eq_ignore_ascii_case("No Connections") || t.is_empty() {
            return Ok(set);
        }
        let mut current: Option<Protocol> = None;
        for token in t.split(',').map(str::trim) {
            let mut words = token.split_whitespace();
            let first = words.next().ok_or_else(|| err("empty item"))?;
            let ports = match first.parse::<Protocol>() {
                Ok(p) => {
                    current = Some(p);
                    match words.next() {
                        Some(ports) => ports,
                        None => {
                            set.insert(p, FIRST, LAST);
                            continue;
                        }
                    }
                }
                Err(_) => first,
            };
            if words.next().is_some() {
                return Err(err("expected PROTOCOL PORT[-PORT] items"));
            }
            let p = current.ok_or_else(|| err("a port before any protocol"))?;
            let num = |x: &str| {
                x.parse::<u16>()
                    .ok()
                    .filter(|&n| n >= FIRST)
                    .ok_or_else(|| err("ports are 1-65535"))
            };
            let (lo, hi) = match ports.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(ports)?, num(ports)?),
            };
            if lo > hi {
                return Err(err("a range must not end before it starts"));
            }
            set.insert(p, lo, hi);
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_adjacent_and_overlapping() {
        let mut s = ConnSet::none();
        s.insert(Protocol::Tcp, 80, 80);
        s.insert(Protocol::Tcp, 81, 90);
        s.insert(Protocol::Tcp, 85, 100);
        s.insert(Protocol::Tcp, 200, 200);
        s.insert(Protocol::Udp, 0, 0); // port 0 is not a port
        assert_eq!(s.ranges(Protocol::Tcp), &[(80, 100), (200, 200)]);
        assert!(s.ranges(Protocol::Udp).is_empty());
        assert_eq!(s.to_string(), "TCP 80-100,200");
    }

    #[test]
    fn text_round_trips() {
        for text in [
            "All Connections",
            "No Connections",
            "SCTP 9003,TCP 80,8080-8090,UDP 53",
            "TCP 1-65535",
        ] {
            let set: ConnSet = text.parse().unwrap();
            assert_eq!(set.to_string(), text);
        }
        let udp_all: ConnSet = "UDP".parse().unwrap();
        assert_eq!(udp_all.to_string(), "UDP 1-65535");
        for bad in ["80", "TCP 0", "TCP 90-80", "TCP 80 81", "ICMP 1"] {
            assert!(bad.parse::<ConnSet>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn intersection() {
        let a: ConnSet = "TCP 1-100,UDP 53".parse().unwrap();
        let b: ConnSet = "TCP 50-200,SCTP 1".parse().unwrap();
        assert_eq!(a.intersection(&b).to_string(), "TCP 50-100");
        assert_eq!(ConnSet::all().intersection(&a), a);
    }
}
