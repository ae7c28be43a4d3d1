//! Small, allocation-free readers and writers of whole messages for the
//! forwarder: the cache key of a query, what a reply says (rcode, TTLs),
//! and the replies built without an upstream (SERVFAIL, TC).

use crate::answer::{ParseError, parse};
use crate::encode::rtype;
use crate::name::MAX_NAME;
use crate::node::skip_name;

/// Longest cache key: a name, type, class and flags.
pub(crate) const MAX_KEY: usize = MAX_NAME + 5;

/// The cache key of a query, and where its question ends.
pub(crate) struct QueryKey {
    pub(crate) key: [u8; MAX_KEY],
    pub(crate) len: usize,
    pub(crate) question_end: usize,
    #[cfg_attr(not(all(feature = "linux", target_os = "linux")), allow(dead_code))]
    pub(crate) edns_payload: Option<u16>,
}

impl QueryKey {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.key[..self.len]
    }
}

/// Reads a query (QR clear, opcode QUERY, one question).
pub(crate) fn query_key(q: &[u8]) -> Option<QueryKey> {
    if q.len() < 12 || q[2] & 0x80 != 0 || (q[2] >> 3) & 0x0F != 0 {
        return None;
    }
    let question = match parse(q) {
        Ok(question) => question,
        Err(ParseError::Malformed) => return None,
    };
    let mut key = [0u8; MAX_KEY];
    let name = question.name;
    for (k, b) in key.iter_mut().zip(name) {
        *k = b.to_ascii_lowercase();
    }
    let mut len = name.len();
    key[len..len + 2].copy_from_slice(&question.qtype.to_be_bytes());
    key[len + 2..len + 4].copy_from_slice(&question.qclass.to_be_bytes());
    let dnssec_ok = question.edns.is_some_and(|e| e.dnssec_ok);
    key[len + 4] = u8::from(dnssec_ok) | if q[3] & 0x10 != 0 { 2 } else { 0 };
    len += 5;
    Some(QueryKey {
        key,
        len,
        question_end: question.end,
        edns_payload: question.edns.map(|e| e.payload),
    })
}

/// What a reply says, for caching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) rcode: u8,
    pub(crate) truncated: bool,
    /// Offsets of every TTL field (OPT excluded).
    pub(crate) ttl_offsets: Vec<u16>,
    /// The smallest record TTL (OPT excluded).
    pub(crate) min_ttl: Option<u32>,
    /// min(SOA TTL, SOA minimum) of the first SOA in the authority section.
    pub(crate) negative_ttl: Option<u32>,
    pub(crate) answers: u16,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Reads a reply; `None` if it is malformed.
pub(crate) fn summarize(r: &[u8]) -> Option<Summary> {
    let qd = be16(r, 4)?;
    let an = be16(r, 6)?;
    let ns = be16(r, 8)?;
    let ar = be16(r, 10)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(r, pos)? + 4;
    }
    let mut s = Summary {
        rcode: r.get(3)? & 0x0F,
        truncated: r.get(2)? & 0x02 != 0,
        ttl_offsets: Vec::new(),
        min_ttl: None,
        negative_ttl: None,
        answers: an,
    };
    let total = u32::from(an) + u32::from(ns) + u32::from(ar);
    for i in 0..total {
        pos = skip_name(r, pos)?;
        let t = be16(r, pos)?;
        let ttl = be32(r, pos + 4)?;
        let rdlen = usize::from(be16(r, pos + 8)?);
        let rdata = pos + 10;
        if rdata + rdlen > r.len() {
            return None;
        }
        if t != rtype::OPT {
            s.ttl_offsets.push(u16::try_from(pos + 4).ok()?);
            s.min_ttl = Some(s.min_ttl.map_or(ttl, |m| m.min(ttl)));
        }
        let in_authority = i >= u32::from(an) && i < u32::from(an) + u32::from(ns);
        if t == rtype::SOA && in_authority && s.negative_ttl.is_none() {
            let after_names = skip_name(r, skip_name(r, rdata)?)?;
            let minimum = be32(r, after_names + 16)?;
            s.negative_ttl = Some(ttl.min(minimum));
        }
        pos = rdata + rdlen;
    }
    Some(s)
}

/// Copies `reply` into `out` as the answer to `query`: the query's ID and
/// question bytes (its case), the reply's flags with the query's RD, AA
/// cleared and RA set (we recursed; we are not the authority).
/// `None` if it does not fit or the questions differ in length.
pub(crate) fn patch_reply(
    query: &[u8],
    question_end: usize,
    reply: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    if reply.len() > out.len() || reply.len() < question_end || query.len() < question_end {
        return None;
    }
    out[..reply.len()].copy_from_slice(reply);
    out[..2].copy_from_slice(&query[..2]);
    out[2] = (out[2] & !0x05) | (query[2] & 0x01);
    out[3] |= 0x80;
    out[12..question_end].copy_from_slice(&query[12..question_end]);
    Some(reply.len())
}

/// A header-and-question reply with rcode `rcode` and flags `extra`.
fn short_reply(query: &[u8], out: &mut [u8], rcode: u8, extra: u8) -> usize {
    let end = query_key(query).map_or(12, |k| k.question_end);
    if query.len() < 12 || out.len() < end {
        return 0;
    }
    out[..end].copy_from_slice(&query[..end]);
    out[2] = 0x80 | (query[2] & 0x01) | extra;
    out[3] = 0x80 | (query[3] & 0x10) | rcode;
    let qd: u16 = if end > 12 { 1 } else { 0 };
    out[4..6].copy_from_slice(&qd.to_be_bytes());
    out[6..12].fill(0);
    end
}

/// Writes SERVFAIL (recursion available) for `query`; returns the length
/// (0 when `query` is too short to answer).
pub fn servfail(query: &[u8], out: &mut [u8]) -> usize {
    short_reply(query, out, 2, 0)
}

/// Writes an empty reply with TC set (the client should retry over TCP);
/// returns the length.
pub fn truncated_reply(query: &[u8], out: &mut [u8]) -> usize {
    short_reply(query, out, 0, 0x02)
}
