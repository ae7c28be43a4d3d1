//! Small readers and writers of whole messages for the forwarder: the
//! cache key of a query, what a reply says (rcode, TTLs), the copy of a
//! stored reply, and the replies built without an upstream (SERVFAIL,
//! TC), all without allocating; and the removal of an upstream's OPT
//! record (a copy, when a reply is stored or relayed).
//!
//! EDNS is hop by hop (RFC 6891 §7): an upstream's OPT record is removed
//! when its reply is stored or relayed, and ours (our payload size, the
//! query's DO bit) is appended exactly when the client's query had one.

use crate::answer::{Edns, ParseError, opt, parse};
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
    /// The query's EDNS, if it had an OPT record.
    pub(crate) edns: Option<Edns>,
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
        edns: question.edns,
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

/// Length of an OPT record without options.
const OPT_LEN: usize = 11;

/// `reply` without its OPT record (ARCOUNT lowered), and the extended
/// rcode bits that OPT carried (0 without one); `None` if it is malformed.
/// The OPT record is normally the last record: it is cut off. Elsewhere
/// (a TSIG after it), the reply is decoded and encoded again without it,
/// as cutting it out could break compression pointers behind it.
pub(crate) fn strip_opt(r: &[u8]) -> Option<(Vec<u8>, u8)> {
    let qd = be16(r, 4)?;
    let an = be16(r, 6)?;
    let ns = be16(r, 8)?;
    let ar = be16(r, 10)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(r, pos)? + 4;
    }
    let before_additional = u32::from(an) + u32::from(ns);
    let mut found: Option<(usize, usize, u8)> = None;
    for i in 0..before_additional + u32::from(ar) {
        let start = pos;
        pos = skip_name(r, pos)?;
        let t = be16(r, pos)?;
        let ext_rcode = *r.get(pos + 4)?;
        let end = pos + 10 + usize::from(be16(r, pos + 8)?);
        if end > r.len() {
            return None;
        }
        if t == rtype::OPT && i >= before_additional {
            if found.is_some() {
                return None; // two OPT records: FORMERR (RFC 6891 §6.1.1)
            }
            found = Some((start, end, ext_rcode));
        }
        pos = end;
    }
    let Some((start, end, ext_rcode)) = found else {
        return Some((r.get(..pos)?.to_vec(), 0));
    };
    if end == pos {
        let mut out = r[..start].to_vec();
        out[10..12].copy_from_slice(&(ar - 1).to_be_bytes());
        return Some((out, ext_rcode));
    }
    let mut m = hickory_proto::op::Message::from_vec(r).ok()?;
    m.edns = None;
    // The extended bits are reported apart; the header keeps the low ones.
    let low = m.metadata.response_code.low();
    m.metadata.response_code = hickory_proto::op::ResponseCode::from_low(low);
    Some((m.to_vec().ok()?, ext_rcode))
}

/// The OPT record a reply to a query with EDNS `edns` carries: our
/// `payload`, the extended rcode bits, the query's DO bit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyOpt {
    pub(crate) payload: u16,
    pub(crate) ext_rcode: u8,
    pub(crate) dnssec_ok: bool,
}

impl ReplyOpt {
    /// Ours, for a query with `edns` (`None`: no OPT in the reply).
    pub(crate) fn for_query(edns: Option<Edns>, payload: u16, ext_rcode: u8) -> Option<Self> {
        edns.map(|e| Self {
            payload,
            ext_rcode,
            dnssec_ok: e.dnssec_ok,
        })
    }
}

/// Appends `o` to the message of `len` bytes in `out` and counts it in
/// ARCOUNT; the new length, or `None` if it does not fit.
fn append_opt(out: &mut [u8], len: usize, o: ReplyOpt) -> Option<usize> {
    if len < 12 || len + OPT_LEN > out.len() {
        return None;
    }
    opt(&mut out[len..], o.payload, o.ext_rcode, o.dnssec_ok);
    let ar = u16::from_be_bytes([out[10], out[11]]).checked_add(1)?;
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    Some(len + OPT_LEN)
}

/// Copies `reply` (stored without OPT) into `out` as the answer to
/// `query`: the query's ID and question bytes (its case), the reply's
/// flags with the query's RD, AA cleared and RA set (we recursed; we are
/// not the authority), and `opt` appended when given.
/// `None` if it does not fit or the questions differ in length.
pub(crate) fn patch_reply(
    query: &[u8],
    question_end: usize,
    reply: &[u8],
    opt: Option<ReplyOpt>,
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
    match opt {
        Some(o) => append_opt(out, reply.len(), o),
        None => Some(reply.len()),
    }
}

/// A header-and-question reply with rcode `rcode` and flags `extra`, and
/// our OPT (payload `payload`) when the query had one.
fn short_reply(query: &[u8], out: &mut [u8], rcode: u8, extra: u8, payload: u16) -> usize {
    let key = query_key(query);
    let end = key.as_ref().map_or(12, |k| k.question_end);
    if query.len() < 12 || out.len() < end {
        return 0;
    }
    out[..end].copy_from_slice(&query[..end]);
    out[2] = 0x80 | (query[2] & 0x01) | extra;
    out[3] = 0x80 | (query[3] & 0x10) | rcode;
    let qd: u16 = if end > 12 { 1 } else { 0 };
    out[4..6].copy_from_slice(&qd.to_be_bytes());
    out[6..12].fill(0);
    match ReplyOpt::for_query(key.and_then(|k| k.edns), payload, 0) {
        // Too small a buffer for the OPT: no reply rather than a wrong one.
        Some(o) => append_opt(out, end, o).unwrap_or(0),
        None => end,
    }
}

/// [`servfail`] advertising `payload` in the OPT record.
pub(crate) fn servfail_with(query: &[u8], payload: u16, out: &mut [u8]) -> usize {
    short_reply(query, out, 2, 0, payload)
}

/// [`truncated_reply`] advertising `payload` in the OPT record.
pub(crate) fn truncated_with(query: &[u8], payload: u16, out: &mut [u8]) -> usize {
    short_reply(query, out, 0, 0x02, payload)
}

/// Writes SERVFAIL (recursion available) for `query`, with an OPT record
/// (payload 1232) when the query had one; returns the length (0 when
/// `query` is too short to answer).
pub fn servfail(query: &[u8], out: &mut [u8]) -> usize {
    servfail_with(query, crate::DEFAULT_UDP_PAYLOAD, out)
}

/// Writes an empty reply with TC set (the client should retry over TCP),
/// with an OPT record (payload 1232) when the query had one; returns the
/// length.
pub fn truncated_reply(query: &[u8], out: &mut [u8]) -> usize {
    truncated_with(query, crate::DEFAULT_UDP_PAYLOAD, out)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::{strip_opt, summarize};

    fn reply(edns: Option<Edns>) -> Message {
        let name = Name::from_ascii("www.example.test.").unwrap();
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(
            name.clone(),
            60,
            RData::A(Ipv4Addr::new(192, 0, 2, 1).into()),
        ));
        m.add_additional(Record::from_rdata(
            name,
            60,
            RData::A(Ipv4Addr::new(192, 0, 2, 2).into()),
        ));
        if let Some(e) = edns {
            m.set_edns(e);
        }
        m
    }

    #[test]
    fn a_trailing_opt_is_cut_off() {
        let without = reply(None).to_vec().unwrap();
        let with = reply(Some(Edns::new())).to_vec().unwrap();
        assert_eq!(with.len(), without.len() + 11);
        assert_eq!(strip_opt(&with), Some((without.clone(), 0)));
        assert_eq!(strip_opt(&without), Some((without, 0)));
    }

    #[test]
    fn an_opt_before_other_records_is_removed_and_the_rest_kept() {
        // OPT first in the additional section, the glue A behind it
        // compressed against the question.
        let with = reply(Some(Edns::new())).to_vec().unwrap();
        let opt_at = with.len() - 11;
        let glue_at = with.len() - 11 - 16;
        let mut moved = with[..glue_at].to_vec();
        moved.extend_from_slice(&with[opt_at..]);
        moved.extend_from_slice(&with[glue_at..opt_at]);
        assert_eq!(Message::from_vec(&moved).unwrap().additionals.len(), 1);
        let (stripped, ext) = strip_opt(&moved).unwrap();
        assert_eq!(ext, 0);
        let m = Message::from_vec(&stripped).unwrap();
        assert!(m.edns.is_none());
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.additionals.len(), 1, "{m}");
        assert_eq!(m.additionals[0].data.to_string(), "192.0.2.2");
        assert_eq!(summarize(&stripped).unwrap().ttl_offsets.len(), 2);
    }

    #[test]
    fn the_extended_rcode_is_reported_and_two_opts_are_malformed() {
        let mut m = reply(Some(Edns::new()));
        m.metadata.response_code = ResponseCode::BADVERS;
        let bytes = m.to_vec().unwrap();
        let (stripped, ext) = strip_opt(&bytes).unwrap();
        assert_eq!(ext, 1);
        assert_eq!(stripped[3] & 0x0F, 0);
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes[bytes.len() - 11..]);
        two[11] += 1;
        assert_eq!(strip_opt(&two), None);
        assert_eq!(strip_opt(&bytes[..bytes.len() - 1]), None);
    }
}
