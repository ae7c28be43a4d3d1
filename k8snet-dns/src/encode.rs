//! Pre-encoding: the records of one name, grouped by the query type they
//! answer, written once at zone-build time as the wire bytes that follow
//! the question of a response.
//!
//! The question of a response starts at offset 12 and echoes the query's
//! name, which has the same length as the stored lowercase key, so every
//! offset is known in advance: owner names compress to pointers into the
//! question (which is how the answer echoes the query's case), and later
//! names to earlier ones. Only backward pointers are written, so cutting a
//! body after any record (truncation) leaves it valid.
//!
//! A node blob, as stored in a shard:
//!
//! ```text
//! u32 total length | u8 flags | u8 key length | key | u8 rrset count |
//! per rrset: u16 qtype, u16 answers, u16 authorities, u16 additionals,
//!            u16 records, u16 body length, u16 end offset per record, body
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::name::{WireName, label_starts};

/// Record types used by the zone.
pub(crate) mod rtype {
    pub(crate) const A: u16 = 1;
    pub(crate) const NS: u16 = 2;
    pub(crate) const CNAME: u16 = 5;
    pub(crate) const SOA: u16 = 6;
    pub(crate) const PTR: u16 = 12;
    pub(crate) const TXT: u16 = 16;
    pub(crate) const AAAA: u16 = 28;
    pub(crate) const SRV: u16 = 33;
    pub(crate) const OPT: u16 = 41;
    pub(crate) const IXFR: u16 = 251;
    pub(crate) const AXFR: u16 = 252;
    pub(crate) const ANY: u16 = 255;
}

/// Node flag: types the name lacks are NXDOMAIN rather than NODATA
/// (CoreDNS answers `dns-version.<zone> A` with NXDOMAIN).
pub(crate) const FLAG_MISSING_NXDOMAIN: u8 = 1;
/// Node flag: the name is an alias; every query type gets its CNAME rrset.
pub(crate) const FLAG_CNAME: u8 = 2;
/// Node flag: the zone apex; SOA queries get the zone's SOA.
pub(crate) const FLAG_APEX: u8 = 4;
/// Node flag, with [`FLAG_CNAME`]: the alias's target is a name of the
/// zone (the zone answers for it without an upstream).
pub(crate) const FLAG_CNAME_IN_ZONE: u8 = 8;

/// Largest response we ever build (TCP's length prefix), less room for OPT.
const MAX_MESSAGE: usize = 65_535 - 11;

/// Record data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(WireName),
    Ns(WireName),
    Ptr(WireName),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: WireName,
    },
    /// One character-string.
    Txt(Vec<u8>),
}

impl RData {
    pub(crate) fn rtype(&self) -> u16 {
        match self {
            Self::A(_) => rtype::A,
            Self::Aaaa(_) => rtype::AAAA,
            Self::Cname(_) => rtype::CNAME,
            Self::Ns(_) => rtype::NS,
            Self::Ptr(_) => rtype::PTR,
            Self::Srv { .. } => rtype::SRV,
            Self::Txt(_) => rtype::TXT,
        }
    }
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rr {
    pub(crate) owner: WireName,
    pub(crate) ttl: u32,
    pub(crate) data: RData,
}

/// The answer to one query type at a name.
#[derive(Debug, Clone, Default)]
pub(crate) struct RrsetSpec {
    pub(crate) qtype: u16,
    pub(crate) answers: Vec<Rr>,
    pub(crate) additionals: Vec<Rr>,
}

/// Everything stored for one name.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    pub(crate) key: WireName,
    pub(crate) flags: u8,
    pub(crate) rrsets: Vec<RrsetSpec>,
}

impl NodeSpec {
    /// A name with no records of its own (an empty non-terminal): NODATA.
    pub(crate) fn empty(key: WireName) -> Self {
        Self {
            key,
            flags: 0,
            rrsets: Vec::new(),
        }
    }

    /// Adds `rr` to the rrset answering its type.
    pub(crate) fn push_answer(&mut self, rr: Rr) {
        let t = rr.data.rtype();
        match self.rrsets.iter_mut().find(|s| s.qtype == t) {
            Some(s) => s.answers.push(rr),
            None => self.rrsets.push(RrsetSpec {
                qtype: t,
                answers: vec![rr],
                additionals: Vec::new(),
            }),
        }
    }
}

/// Appends the blob of `node` to `out`.
pub(crate) fn encode_node(node: &NodeSpec, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(node.flags);
    let key = node.key.as_bytes();
    out.push(key.len() as u8);
    out.extend_from_slice(key);
    let count = node.rrsets.len().min(255);
    out.push(count as u8);
    for set in &node.rrsets[..count] {
        encode_rrset(key, set, out);
    }
    let total = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&total.to_le_bytes());
}

fn encode_rrset(key: &[u8], set: &RrsetSpec, out: &mut Vec<u8>) {
    let mut enc = BodyEncoder::new(key);
    let mut answers = 0u16;
    for rr in &set.answers {
        if !enc.record(rr) {
            tracing::warn!(
                name = %crate::name::to_text(key),
                "answer exceeds 64 KiB; records dropped"
            );
            break;
        }
        answers += 1;
    }
    let mut additionals = 0u16;
    for rr in &set.additionals {
        if !enc.record(rr) {
            break;
        }
        additionals += 1;
    }
    for v in [set.qtype, answers, 0, additionals, enc.ends.len() as u16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(enc.body.len() as u16).to_le_bytes());
    for e in &enc.ends {
        out.extend_from_slice(&e.to_le_bytes());
    }
    out.extend_from_slice(&enc.body);
}

/// Names already in the message (suffix → offset): a short list searched
/// linearly, turned into a hash map once it grows (large headless answers).
#[derive(Default)]
struct Dict<'a> {
    small: Vec<(&'a [u8], u16)>,
    big: Option<HashMap<&'a [u8], u16>>,
}

impl<'a> Dict<'a> {
    fn get(&self, suffix: &[u8]) -> Option<u16> {
        match &self.big {
            Some(m) => m.get(suffix).copied(),
            None => self
                .small
                .iter()
                .find(|(s, _)| *s == suffix)
                .map(|&(_, o)| o),
        }
    }

    fn insert(&mut self, suffix: &'a [u8], off: u16) {
        if self.get(suffix).is_some() {
            return;
        }
        match &mut self.big {
            Some(m) => {
                m.insert(suffix, off);
            }
            None if self.small.len() >= 48 => {
                let mut m: HashMap<&[u8], u16> = self.small.drain(..).collect();
                m.insert(suffix, off);
                self.big = Some(m);
            }
            None => self.small.push((suffix, off)),
        }
    }

    fn forget_from(&mut self, limit: usize) {
        self.small.retain(|&(_, o)| usize::from(o) < limit);
        if let Some(m) = &mut self.big {
            m.retain(|_, o| usize::from(*o) < limit);
        }
    }
}

/// Writes records after a question whose name is `qname`, compressing
/// names against the question and against earlier records.
struct BodyEncoder<'a> {
    body: Vec<u8>,
    /// Offset of the body in the message.
    base: usize,
    dict: Dict<'a>,
    /// End of each record, relative to the body.
    ends: Vec<u16>,
}

impl<'a> BodyEncoder<'a> {
    fn new(qname: &'a [u8]) -> Self {
        let mut dict = Dict::default();
        for s in label_starts(qname) {
            dict.insert(&qname[s..], (12 + s) as u16);
        }
        Self {
            body: Vec::new(),
            base: 12 + qname.len() + 4,
            dict,
            ends: Vec::new(),
        }
    }

    /// Writes one record; `false` (and nothing written) if it would make
    /// the message too large.
    fn record(&mut self, rr: &'a Rr) -> bool {
        let mark = self.body.len();
        self.name(rr.owner.as_bytes(), true);
        self.u16(rr.data.rtype());
        self.u16(1); // IN
        self.body.extend_from_slice(&rr.ttl.to_be_bytes());
        let len_at = self.body.len();
        self.u16(0);
        match &rr.data {
            RData::A(ip) => self.body.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => self.body.extend_from_slice(&ip.octets()),
            RData::Cname(n) | RData::Ns(n) => self.name(n.as_bytes(), true),
            // PTR targets stay uncompressed so updates can read them back;
            // SRV targets must not be compressed (RFC 2782).
            RData::Ptr(n) => self.name(n.as_bytes(), false),
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                self.u16(*priority);
                self.u16(*weight);
                self.u16(*port);
                self.name(target.as_bytes(), false);
            }
            RData::Txt(s) => {
                self.body.push(s.len().min(255) as u8);
                self.body.extend_from_slice(&s[..s.len().min(255)]);
            }
        }
        let rdlen = (self.body.len() - len_at - 2) as u16;
        self.body[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        if self.base + self.body.len() > MAX_MESSAGE {
            self.body.truncate(mark);
            self.dict.forget_from(self.base + mark);
            return false;
        }
        self.ends.push(self.body.len() as u16);
        true
    }

    fn u16(&mut self, v: u16) {
        self.body.extend_from_slice(&v.to_be_bytes());
    }

    fn name(&mut self, name: &'a [u8], compress: bool) {
        let at = self.base + self.body.len();
        let mut starts = [0usize; 128];
        let mut n = 0;
        for s in label_starts(name).take(128) {
            starts[n] = s;
            n += 1;
        }
        let starts = &starts[..n];
        let mut cut = name.len().saturating_sub(1); // the root byte
        let mut pointer = None;
        if compress {
            for &s in starts {
                if let Some(off) = self.dict.get(&name[s..]) {
                    cut = s;
                    pointer = Some(off);
                    break;
                }
            }
        }
        self.body.extend_from_slice(&name[..cut]);
        match pointer {
            Some(off) => self.u16(0xC000 | off),
            None => self.body.push(0),
        }
        for &s in starts.iter().take_while(|&&s| s < cut) {
            let pos = at + s;
            if pos < 0x3FFF {
                self.dict.insert(&name[s..], pos as u16);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> WireName {
        WireName::from_text(s).unwrap()
    }

    #[test]
    fn owner_compresses_to_the_question_and_srv_target_is_literal() {
        let key = n("_http._tcp.web.shop.svc.cluster.local");
        let node = NodeSpec {
            key: key.clone(),
            flags: 0,
            rrsets: vec![RrsetSpec {
                qtype: rtype::SRV,
                answers: vec![Rr {
                    owner: key.clone(),
                    ttl: 5,
                    data: RData::Srv {
                        priority: 0,
                        weight: 100,
                        port: 80,
                        target: n("web.shop.svc.cluster.local"),
                    },
                }],
                additionals: vec![Rr {
                    owner: n("web.shop.svc.cluster.local"),
                    ttl: 5,
                    data: RData::A("198.19.0.20".parse().unwrap()),
                }],
            }],
        };
        let mut out = Vec::new();
        encode_node(&node, &mut out);
        let total = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(total, out.len());
        // The SRV owner is a pointer to the question name at 12.
        let body_at = out.len() - (2 + 10 + 6 + 28) - (2 + 10 + 4);
        assert_eq!(&out[body_at..body_at + 2], &[0xC0, 12]);
        // The additional's owner points into the question too (after
        // `_http._tcp.`), so it echoes the query's case.
        let add_at = out.len() - (2 + 10 + 4);
        assert_eq!(
            u16::from_be_bytes([out[add_at], out[add_at + 1]]),
            0xC000 | (12 + 11)
        );
    }
}
