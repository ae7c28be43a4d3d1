//! The answer path: parse a query by hand, find the pre-encoded answer,
//! copy it behind the patched header and the echoed question, append OPT.
//! No allocation, no panic, whatever the input.

use std::net::IpAddr;

use crate::config::PodMode;
use crate::encode::{FLAG_APEX, FLAG_CNAME, FLAG_CNAME_IN_ZONE, FLAG_MISSING_NXDOMAIN, rtype};
use crate::name::{self, IN_ADDR_ARPA, IP6_ARPA, MAX_NAME};
use crate::node::{Rrset, skip_name};
use crate::zone::Zone;

/// How a query arrived: it sets the size limit of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// UDP: 512 bytes, or the client's EDNS payload size capped by ours.
    Udp,
    /// TCP: 65,535 bytes.
    Tcp,
}

/// A response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rcode {
    /// NOERROR (an answer, or NODATA).
    NoError,
    /// FORMERR: the query is malformed.
    FormErr,
    /// SERVFAIL.
    ServFail,
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// NOTIMP: an opcode other than QUERY.
    NotImp,
    /// REFUSED: not our zone (or a zone transfer).
    Refused,
    /// BADVERS: an EDNS version other than 0 (extended code 16).
    BadVers,
}

impl Rcode {
    /// The 4 header bits.
    pub fn header_bits(self) -> u8 {
        match self {
            Self::NoError | Self::BadVers => 0,
            Self::FormErr => 1,
            Self::ServFail => 2,
            Self::NxDomain => 3,
            Self::NotImp => 4,
            Self::Refused => 5,
        }
    }

    /// From the header bits.
    pub fn from_header_bits(bits: u8) -> Self {
        match bits & 0xF {
            0 => Self::NoError,
            1 => Self::FormErr,
            3 => Self::NxDomain,
            4 => Self::NotImp,
            5 => Self::Refused,
            _ => Self::ServFail,
        }
    }

    /// The name dig prints (`NOERROR`, `NXDOMAIN`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoError => "NOERROR",
            Self::FormErr => "FORMERR",
            Self::ServFail => "SERVFAIL",
            Self::NxDomain => "NXDOMAIN",
            Self::NotImp => "NOTIMP",
            Self::Refused => "REFUSED",
            Self::BadVers => "BADVERS",
        }
    }
}

impl std::fmt::Display for Rcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reply written into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// Bytes written.
    pub len: usize,
    /// The response code.
    pub rcode: Rcode,
    /// Whether TC is set (records were left out to fit).
    pub truncated: bool,
    /// Records in the answer section.
    pub answers: u16,
    /// The answer is an ExternalName's CNAME given for another query type:
    /// a recursive server appends the records of the target (see
    /// [`forward::merge_alias`](crate::forward::merge_alias)).
    pub alias: bool,
    /// With `alias`: the CNAME's target is a name of this zone, so the
    /// zone itself answers for it and a server without upstream follows
    /// it. A target outside the zone needs an upstream (and is the usual
    /// case: `db` → `db.example.com`). Decided when the zone is built.
    pub alias_in_zone: bool,
}

/// What [`Zone::answer`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerOutcome {
    /// A reply is in the buffer.
    Answered(Reply),
    /// The name is outside the zone (or a reverse name the zone does not
    /// hold): the buffer holds a REFUSED reply, which a forwarding server
    /// replaces by the upstream's answer.
    NotAuthoritative(Reply),
    /// No reply: the input is too short to answer, is itself a response,
    /// or the buffer cannot hold the reply.
    Dropped,
}

/// EDNS as the query carried it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edns {
    pub(crate) payload: u16,
    pub(crate) version: u8,
    pub(crate) dnssec_ok: bool,
}

/// A parsed question: the name as the query spells it (any case).
pub(crate) struct Question<'q> {
    /// The name in wire format, as in the query.
    pub(crate) name: &'q [u8],
    pub(crate) labels: usize,
    /// Where each label starts in `name`.
    starts: [u8; 128],
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    /// End of the question section in the query.
    pub(crate) end: usize,
    pub(crate) edns: Option<Edns>,
}

impl Question<'_> {
    fn start(&self, i: usize) -> usize {
        if i < self.labels {
            usize::from(self.starts[i])
        } else {
            self.name.len() - 1
        }
    }

    /// Label `i` (0 is the leftmost).
    fn label(&self, i: usize) -> &[u8] {
        let s = self.start(i);
        let l = usize::from(self.name[s]);
        self.name.get(s + 1..s + 1 + l).unwrap_or(&[])
    }

    /// The name from label `i` on.
    fn suffix(&self, i: usize) -> &[u8] {
        &self.name[self.start(i)..]
    }

    /// Whether the name is `suffix` (lowercase, `labels` labels) or below it.
    fn is_under(&self, suffix: &[u8], labels: usize) -> bool {
        self.labels >= labels && name::eq_ignore_case(self.suffix(self.labels - labels), suffix)
    }
}

pub(crate) enum ParseError {
    /// Answer with FORMERR.
    Malformed,
}

/// Parses the question and EDNS of a query whose header is known good.
pub(crate) fn parse(q: &[u8]) -> Result<Question<'_>, ParseError> {
    let count = |at: usize| u16::from_be_bytes([q[at], q[at + 1]]);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 {
        return Err(ParseError::Malformed);
    }
    let mut pos = 12;
    let mut labels = 0;
    let mut starts = [0u8; 128];
    loop {
        let len = usize::from(*q.get(pos).ok_or(ParseError::Malformed)?);
        if len == 0 {
            break;
        }
        // Pointers and the reserved label types are refused in a question.
        if len > 63 || pos + len + 2 - 12 > MAX_NAME {
            return Err(ParseError::Malformed);
        }
        // At most 127 labels fit in 255 bytes, each offset below 255.
        starts[labels] = (pos - 12) as u8;
        labels += 1;
        pos += len + 1;
    }
    pos += 1;
    let name = q.get(12..pos).ok_or(ParseError::Malformed)?;
    let mut question = Question {
        name,
        labels,
        starts,
        qtype: 0,
        qclass: 0,
        end: 0,
        edns: None,
    };
    let tail = q.get(pos..pos + 4).ok_or(ParseError::Malformed)?;
    question.qtype = u16::from_be_bytes([tail[0], tail[1]]);
    question.qclass = u16::from_be_bytes([tail[2], tail[3]]);
    pos += 4;
    question.end = pos;
    for _ in 0..count(10) {
        let start = pos;
        pos = skip_name(q, pos).ok_or(ParseError::Malformed)?;
        let f = q.get(pos..pos + 10).ok_or(ParseError::Malformed)?;
        let t = u16::from_be_bytes([f[0], f[1]]);
        let rdlen = usize::from(u16::from_be_bytes([f[8], f[9]]));
        if t == rtype::OPT {
            // One OPT, owned by the root.
            if question.edns.is_some() || pos != start + 1 {
                return Err(ParseError::Malformed);
            }
            question.edns = Some(Edns {
                payload: u16::from_be_bytes([f[2], f[3]]),
                version: f[5],
                dnssec_ok: f[6] & 0x80 != 0,
            });
        }
        pos += 10 + rdlen;
        if pos > q.len() {
            return Err(ParseError::Malformed);
        }
    }
    Ok(question)
}

/// Writes the header: ID and RD/CD from the query.
fn header(out: &mut [u8], query: &[u8], aa: bool, tc: bool, rcode: u8, counts: [u16; 4]) {
    out[0] = query[0];
    out[1] = query[1];
    out[2] = 0x80 | (query[2] & 0x01) | if aa { 0x04 } else { 0 } | if tc { 0x02 } else { 0 };
    out[3] = (query[3] & 0x10) | (rcode & 0x0F);
    for (i, c) in counts.iter().enumerate() {
        out[4 + i * 2..6 + i * 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// The OPT record of a reply (11 bytes: `out` must hold them).
pub(crate) fn opt(out: &mut [u8], payload: u16, ext_rcode: u8, dnssec_ok: bool) {
    out[0] = 0;
    out[1..3].copy_from_slice(&rtype::OPT.to_be_bytes());
    out[3..5].copy_from_slice(&payload.to_be_bytes());
    out[5] = ext_rcode;
    out[6] = 0;
    out[7] = if dnssec_ok { 0x80 } else { 0 };
    out[8] = 0;
    out[9] = 0;
    out[10] = 0;
}

/// A header-only error reply.
fn error_reply(query: &[u8], out: &mut [u8], rcode: Rcode) -> AnswerOutcome {
    header(out, query, false, false, rcode.header_bits(), [0; 4]);
    AnswerOutcome::Answered(Reply {
        len: 12,
        rcode,
        truncated: false,
        answers: 0,
        alias: false,
        alias_in_zone: false,
    })
}

/// What a reply carries after the question.
enum Body<'a> {
    /// An rrset; `true` when it is an alias whose target is in the zone.
    Rrset(Rrset<'a>, bool),
    /// NODATA/NXDOMAIN: the SOA of zone `soa` in the authority section.
    Negative { soa: usize, nxdomain: bool },
    /// The apex SOA as the answer.
    ApexSoa,
    /// One synthesized address record (pod names).
    Address(IpAddr),
    /// REFUSED, not authoritative.
    Refused,
}

impl Zone {
    /// Answers a UDP query: see [`Zone::answer_with`].
    pub fn answer(&self, query: &[u8], out: &mut [u8]) -> AnswerOutcome {
        self.answer_with(query, Transport::Udp, out)
    }

    /// Answers `query` into `out` and tells what was written.
    ///
    /// The reply never exceeds `out.len()` nor the transport's limit (512
    /// bytes for UDP, or the client's EDNS size capped by the zone's, with
    /// a 512 floor; 65,535 for TCP). When the answer does not fit,
    /// additional records go first (without TC, RFC 2181 §9), then answer
    /// records from the end, with TC set. Malformed queries get FORMERR,
    /// opcodes other than QUERY get NOTIMP, EDNS versions above 0 BADVERS,
    /// zone transfers and other classes REFUSED. Never allocates.
    pub fn answer_with(&self, query: &[u8], transport: Transport, out: &mut [u8]) -> AnswerOutcome {
        if query.len() < 12 || out.len() < 12 || query[2] & 0x80 != 0 {
            return AnswerOutcome::Dropped;
        }
        if (query[2] >> 3) & 0x0F != 0 {
            return error_reply(query, out, Rcode::NotImp);
        }
        let q = match parse(query) {
            Ok(q) => q,
            Err(ParseError::Malformed) => return error_reply(query, out, Rcode::FormErr),
        };
        let limit = match (transport, q.edns) {
            (Transport::Tcp, _) => 65_535,
            (Transport::Udp, None) => 512,
            (Transport::Udp, Some(e)) => e.payload.clamp(512, self.meta.config.udp_payload()),
        };
        let limit = usize::from(limit).min(out.len());
        if let Some(e) = q.edns
            && e.version > 0
        {
            if limit < 12 + 11 {
                return AnswerOutcome::Dropped;
            }
            header(out, query, false, false, 0, [0, 0, 0, 1]);
            opt(
                &mut out[12..],
                self.meta.config.udp_payload(),
                1,
                e.dnssec_ok,
            );
            return AnswerOutcome::Answered(Reply {
                len: 23,
                rcode: Rcode::BadVers,
                truncated: false,
                answers: 0,
                alias: false,
                alias_in_zone: false,
            });
        }
        if q.qtype == rtype::OPT {
            return error_reply(query, out, Rcode::FormErr);
        }
        let body = if q.qclass != 1 && q.qclass != rtype::ANY {
            Body::Refused
        } else {
            self.lookup(&q)
        };
        self.write(query, &q, body, limit, out)
    }

    /// Finds what answers the question.
    fn lookup(&self, q: &Question<'_>) -> Body<'_> {
        let name = q.name;
        let zone = self.meta.zone.as_bytes();
        let (in_zone, soa) = if q.is_under(zone, self.meta.zone_labels) {
            (true, 0)
        } else if q.is_under(IN_ADDR_ARPA, 2) {
            (false, 1)
        } else if q.is_under(IP6_ARPA, 2) {
            (false, 2)
        } else {
            return Body::Refused;
        };
        if matches!(q.qtype, rtype::AXFR | rtype::IXFR) {
            return Body::Refused;
        }
        let (shard_hash, hash) = self.query_hashes(q, in_zone);
        let node = self.find_hashed(shard_hash, hash, name);
        let Some(node) = node else {
            if !in_zone {
                return Body::Refused;
            }
            return self.pod(q).unwrap_or(Body::Negative {
                soa,
                nxdomain: true,
            });
        };
        let flags = node.flags();
        if flags & FLAG_CNAME != 0
            && let Some(set) = node.rrset(rtype::CNAME)
        {
            return Body::Rrset(set, flags & FLAG_CNAME_IN_ZONE != 0);
        }
        if flags & FLAG_APEX != 0 && q.qtype == rtype::SOA {
            return Body::ApexSoa;
        }
        let set = if q.qtype == rtype::ANY {
            node.rrsets().next()
        } else {
            node.rrset(q.qtype)
        };
        match set {
            Some(set) => Body::Rrset(set, false),
            None => Body::Negative {
                soa,
                nxdomain: flags & FLAG_MISSING_NXDOMAIN != 0,
            },
        }
    }

    /// The hash of the shard a query name lives in (its Service's name,
    /// for names under `<svc>.<ns>.svc.<zone>`) and of the name itself;
    /// one hash when they are the same name. Never allocates.
    fn query_hashes(&self, q: &Question<'_>, in_zone: bool) -> (u64, u64) {
        let z = self.meta.zone_labels;
        let n = q.labels;
        let full = |below: usize| {
            let h = name::hash(q.name);
            if below == 0 {
                (h, h)
            } else {
                (name::hash(q.suffix(below)), h)
            }
        };
        if in_zone && n >= z + 3 && name::eq_ignore_case(q.label(n - z - 1), b"svc") {
            return full(n - z - 3);
        }
        full(0)
    }

    /// `<dashed-ip>.<ns>.pod.<zone>`, per the pod mode; `None` when the
    /// name is not of that shape or not answered (NXDOMAIN).
    fn pod(&self, q: &Question<'_>) -> Option<Body<'_>> {
        let z = self.meta.zone_labels;
        let mode = self.meta.config.pod_mode();
        if mode == PodMode::Disabled
            || q.labels != z + 3
            || !name::eq_ignore_case(q.label(2), b"pod")
        {
            return None;
        }
        let ip = name::parse_dashed_ip(q.label(0))?;
        let ns = q.label(1);
        let known = match mode {
            PodMode::Verified => self.pods.get_label(ns).is_some_and(|ips| ips.contains(&ip)),
            _ => {
                let ent = q.suffix(1);
                self.find(name::hash(ent), ent).is_some()
            }
        };
        if !known {
            return None;
        }
        let family = if ip.is_ipv4() { rtype::A } else { rtype::AAAA };
        Some(if q.qtype == family || q.qtype == rtype::ANY {
            Body::Address(ip)
        } else {
            Body::Negative {
                soa: 0,
                nxdomain: false,
            }
        })
    }

    /// Writes the reply.
    fn write(
        &self,
        query: &[u8],
        q: &Question<'_>,
        body: Body<'_>,
        limit: usize,
        out: &mut [u8],
    ) -> AnswerOutcome {
        let opt_len = if q.edns.is_some() { 11 } else { 0 };
        let head = q.end;
        if head + opt_len > limit {
            return AnswerOutcome::Dropped;
        }
        out[12..head].copy_from_slice(&query[12..head]);
        let avail = limit - head - opt_len;
        let mut pos = head;
        let mut alias = false;
        let mut alias_in_zone = false;
        let (aa, mut tc, rcode, counts) = match body {
            Body::Rrset(set, in_zone) => {
                alias = set.qtype == rtype::CNAME && q.qtype != rtype::CNAME;
                alias_in_zone = alias && in_zone;
                let total = usize::from(set.answers)
                    + usize::from(set.authorities)
                    + usize::from(set.additionals);
                let mut keep = total;
                while keep > 0 && set.end_of(keep) > avail {
                    keep -= 1;
                }
                let end = set.end_of(keep).min(set.body.len());
                out[pos..pos + end].copy_from_slice(&set.body[..end]);
                pos += end;
                let an = keep.min(usize::from(set.answers));
                let ns = (keep - an).min(usize::from(set.authorities));
                let ar = keep - an - ns;
                let tc = an + ns < usize::from(set.answers) + usize::from(set.authorities);
                (
                    true,
                    tc,
                    Rcode::NoError,
                    [1, an as u16, ns as u16, ar as u16],
                )
            }
            Body::Negative { soa, nxdomain } => {
                let zone_len = match soa {
                    0 => self.meta.zone.as_bytes().len(),
                    1 => IN_ADDR_ARPA.len(),
                    _ => IP6_ARPA.len(),
                };
                let rr = &self.meta.soa[soa.min(2)];
                if 2 + rr.len() > avail {
                    return AnswerOutcome::Dropped;
                }
                let at = 12 + q.name.len() - zone_len;
                out[pos..pos + 2].copy_from_slice(&(0xC000 | at as u16).to_be_bytes());
                out[pos + 2..pos + 2 + rr.len()].copy_from_slice(rr);
                pos += 2 + rr.len();
                let rcode = if nxdomain {
                    Rcode::NxDomain
                } else {
                    Rcode::NoError
                };
                (true, false, rcode, [1, 0, 1, 0])
            }
            Body::ApexSoa => {
                let rr = &self.meta.soa[0];
                if 2 + rr.len() > avail {
                    return AnswerOutcome::Dropped;
                }
                out[pos..pos + 2].copy_from_slice(&0xC00Cu16.to_be_bytes());
                out[pos + 2..pos + 2 + rr.len()].copy_from_slice(rr);
                pos += 2 + rr.len();
                (true, false, Rcode::NoError, [1, 1, 0, 0])
            }
            Body::Address(ip) => {
                let (t, len) = if ip.is_ipv4() {
                    (rtype::A, 4)
                } else {
                    (rtype::AAAA, 16)
                };
                if 12 + len > avail {
                    return AnswerOutcome::Dropped;
                }
                out[pos..pos + 2].copy_from_slice(&0xC00Cu16.to_be_bytes());
                out[pos + 2..pos + 4].copy_from_slice(&t.to_be_bytes());
                out[pos + 4..pos + 6].copy_from_slice(&1u16.to_be_bytes());
                out[pos + 6..pos + 10]
                    .copy_from_slice(&self.meta.config.record_ttl().to_be_bytes());
                out[pos + 10..pos + 12].copy_from_slice(&(len as u16).to_be_bytes());
                match ip {
                    IpAddr::V4(v4) => out[pos + 12..pos + 16].copy_from_slice(&v4.octets()),
                    IpAddr::V6(v6) => out[pos + 12..pos + 28].copy_from_slice(&v6.octets()),
                }
                pos += 12 + len;
                (true, false, Rcode::NoError, [1, 1, 0, 0])
            }
            Body::Refused => (false, false, Rcode::Refused, [1, 0, 0, 0]),
        };
        let mut counts = counts;
        if let Some(e) = q.edns {
            opt(
                &mut out[pos..],
                self.meta.config.udp_payload(),
                0,
                e.dnssec_ok,
            );
            pos += 11;
            counts[3] += 1;
        }
        if rcode == Rcode::Refused {
            tc = false;
        }
        header(out, query, aa, tc, rcode.header_bits(), counts);
        let reply = Reply {
            len: pos,
            rcode,
            truncated: tc,
            answers: counts[1],
            alias,
            alias_in_zone,
        };
        if rcode == Rcode::Refused {
            AnswerOutcome::NotAuthoritative(reply)
        } else {
            AnswerOutcome::Answered(reply)
        }
    }
}
