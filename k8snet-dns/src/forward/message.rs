//! Small readers and writers of whole messages for the forwarder: the
//! cache key of a query, what a reply says (rcode, TTLs), the copy of a
//! stored reply, and the replies built without an upstream (SERVFAIL,
//! TC), all without allocating; and the removal of an upstream's OPT
//! record (one copy, once per upstream reply).
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
/// rcode bits that OPT carried (0 without one); `None` if it is malformed
/// or its meaning could change: records overrunning the message, two OPT
/// records (RFC 6891 §6.1.1), an OPT outside the additional section, a
/// name breaking the pointer rule of [`walk_name`] or reading the OPT's
/// bytes.
///
/// The OPT's bytes are cut out of a copy; nothing is decoded, so any
/// legal record (empty RDATA, unknown types, RFC 3597) passes as it is.
/// The OPT is normally the last record, and cutting it off is all. When
/// records follow it (a TSIG, or a server that writes OPT first), the
/// compression pointers that end their names and point behind the cut
/// are moved back by its length: those of owners and of the names in the
/// RDATA of the types every reader decompresses ([`may_compress`]). A
/// pointer behind the cut to behind the cut anywhere else is refused:
/// in the RDATA of other types (readers differ on whether it is one, and
/// TSIG's and the DNSSEC types' names must not be compressed, RFC 8945
/// §4.2, RFC 4034), in the middle of a chain that is not another name's
/// moved end, or overlapping bytes read as a label or as another pointer.
pub(crate) fn strip_opt(r: &[u8]) -> Option<(Vec<u8>, u8)> {
    let qd = be16(r, 4)?;
    let an = be16(r, 6)?;
    let ns = be16(r, 8)?;
    let ar = be16(r, 10)?;
    let mut pos = 12;
    for _ in 0..qd {
        check_name(r, pos)?;
        pos = skip_name(r, pos)? + 4;
    }
    let before_additional = u32::from(an) + u32::from(ns);
    let mut found: Option<(usize, usize, u8)> = None;
    for i in 0..before_additional + u32::from(ar) {
        let start = pos;
        pos = skip_name(r, pos)?;
        let t = be16(r, pos)?;
        let ext_rcode = *r.get(pos + 4)?;
        let rdata = pos + 10;
        let end = pos + 10 + usize::from(be16(r, pos + 8)?);
        if end > r.len() {
            return None;
        }
        if t == rtype::OPT {
            if i < before_additional || found.is_some() {
                // Only one OPT, in the additional section (RFC 6891 §6.1.1).
                return None;
            }
            found = Some((start, end, ext_rcode));
        } else if found.is_none() {
            // Before the cut: every pointer must point back (RFC 1035
            // 4.1.4), past the header, so nothing before the cut can
            // reach the cut, what follows it, or ARCOUNT.
            check_name(r, start)?;
            for_each_rdata_name(r, t, rdata, end, |n| check_name(r, n))?;
        }
        pos = end;
    }
    let Some((start, end, ext_rcode)) = found else {
        return Some((r.get(..pos)?.to_vec(), 0));
    };
    let mut out = Vec::with_capacity(pos - (end - start));
    out.extend_from_slice(&r[..start]);
    out.extend_from_slice(&r[end..pos]);
    out[10..12].copy_from_slice(&(ar - 1).to_be_bytes());
    if end < pos {
        let mut cut = Cut {
            start,
            end,
            own: Vec::new(),
            labels: Vec::new(),
        };
        let mut at = end;
        while at < pos {
            let owner = at;
            at = skip_name(r, at)?;
            let t = be16(r, at)?;
            let rdata = at + 10;
            let rdata_end = rdata + usize::from(be16(r, at + 8)?);
            cut.relink(r, owner, &mut out, true)?;
            let mut names = [0usize; 2];
            let mut n = 0;
            for_each_rdata_name(r, t, rdata, rdata_end, |name| {
                names[n] = name;
                n += 1;
                Some(())
            })?;
            for &name in &names[..n] {
                cut.relink(r, name, &mut out, may_compress(t))?;
            }
            at = rdata_end;
        }
        cut.check_labels()?;
    }
    Some((out, ext_rcode))
}

/// Checks the pointer rule (see [`walk_name`]) for the name at `at`.
fn check_name(r: &[u8], at: usize) -> Option<()> {
    walk_name(r, at, 0..0, |_| Some(()))
}

/// One read of [`walk_name`].
enum Step {
    /// The bytes `from..to` read as a label (length and text) or as the
    /// root that ends the name.
    Label { from: usize, to: usize },
    /// The pointer at `pos`, to `target`; `first`: it ends the name's own
    /// labels.
    Pointer {
        pos: usize,
        target: usize,
        first: bool,
    },
}

/// Reads the name at `at`, calling `on` for each label and pointer;
/// `None` unless every pointer points back, past the header, to an
/// earlier name, and no byte read lies in `cut`. An earlier name ends
/// before the name that points to it, so the labels read at a pointer's
/// target must end before the labels holding that pointer began: a
/// target whose labels run on past them (through the pointing name, a
/// record's fixed fields, the cut) reads other bytes once the cut is made.
fn walk_name(
    r: &[u8],
    at: usize,
    cut: std::ops::Range<usize>,
    mut on: impl FnMut(Step) -> Option<()>,
) -> Option<()> {
    let mut pos = at;
    let mut segment = at;
    // The name's own labels were bounded by the record that holds them.
    let mut limit = usize::MAX;
    let read = |from: usize, len: usize, limit: usize| {
        let to = from + len;
        (to <= limit && (to <= cut.start || from >= cut.end)).then_some(to)
    };
    for _ in 0..=2 * 127 + 1 {
        let len = *r.get(pos)?;
        match len {
            0 => {
                let to = read(pos, 1, limit)?;
                return on(Step::Label { from: pos, to });
            }
            l if l & 0xC0 == 0xC0 => {
                read(pos, 2, limit)?;
                let target = usize::from(u16::from_be_bytes([l & 0x3F, *r.get(pos + 1)?]));
                if target < 12 || target >= segment {
                    return None;
                }
                let first = segment == at;
                on(Step::Pointer { pos, target, first })?;
                limit = segment;
                pos = target;
                segment = target;
            }
            l if l <= 63 => {
                let to = read(pos, 1 + usize::from(l), limit)?;
                on(Step::Label { from: pos, to })?;
                pos = to;
            }
            _ => return None,
        }
    }
    None
}

/// The bytes `start..end` of a message cut out of it; `own`: where the
/// pointers of the names behind the cut already moved are (ascending);
/// `labels`: the bytes behind the cut read as labels, or as pointers of
/// a chain that leave the moved part.
struct Cut {
    start: usize,
    end: usize,
    own: Vec<usize>,
    labels: Vec<(usize, usize)>,
}

impl Cut {
    /// Moves back the pointer that ends the name at `at` (behind the cut)
    /// when it points behind the cut; `None` if the name breaks the
    /// pointer rule of [`walk_name`], reads a byte of the cut, or holds a
    /// pointer behind the cut, to behind the cut, that is not the end of a
    /// name already moved (bytes of another field: moving them would
    /// change that field). A name that must not be compressed
    /// (`compressed: false`) and ends in a pointer behind the cut is
    /// refused too: readers differ on whether it is a pointer, and moving
    /// it changes what the others read.
    fn relink(&mut self, r: &[u8], at: usize, out: &mut [u8], compressed: bool) -> Option<()> {
        let (start, end) = (self.start, self.end);
        let shift = end - start;
        let (own, labels) = (&mut self.own, &mut self.labels);
        walk_name(r, at, start..end, |step| match step {
            Step::Label { from, to } => {
                if from >= end {
                    labels.push((from, to));
                }
                Some(())
            }
            Step::Pointer { pos, target, .. } if target < start => {
                // Its bytes are read: they must not be a moved pointer's.
                if pos >= end {
                    labels.push((pos, pos + 2));
                }
                Some(())
            }
            Step::Pointer { target, .. } if target < end || !compressed => None,
            Step::Pointer {
                pos,
                target,
                first: true,
            } => {
                let moved = (0xC000 | (target - shift) as u16).to_be_bytes();
                out.get_mut(pos - shift..pos - shift + 2)?
                    .copy_from_slice(&moved);
                own.push(pos);
                Some(())
            }
            Step::Pointer { pos, .. } => own.binary_search(&pos).ok().map(|_| ()),
        })
    }

    /// `None` if a byte read as a label, or as a pointer that leaves the
    /// moved part, is also a byte of a moved pointer (the move would
    /// change that label's text or that pointer's target).
    fn check_labels(&self) -> Option<()> {
        self.labels.iter().try_for_each(|&(from, to)| {
            let first = self.own.partition_point(|&p| p + 1 < from);
            match self.own.get(first) {
                Some(&p) if p < to => None,
                _ => Some(()),
            }
        })
    }
}

/// Whether every reader decompresses the names in the RDATA of type `t`,
/// so a pointer there may be moved: NS, CNAME, SOA, PTR, MX, SRV, NAPTR.
/// For the other types with names readers differ: RFC 1035's rarer types
/// (MD, MF, MB, MG, MR, MINFO) and RFC 3597 §4's (RP, AFSDB, RT, SIG, PX,
/// NXT) are read as plain bytes by hickory-proto, and the later types'
/// names must not be compressed at all.
fn may_compress(t: u16) -> bool {
    matches!(t, 2 | 5 | 6 | 12 | 15 | 33 | 35)
}

/// Calls `f` with the offset of each domain name in the RDATA
/// `rdata..rdata_end` of a record of type `t` that may be compressed:
/// RFC 1035's types and those RFC 3597 §4 asks receivers to decompress,
/// and the other types with names at known places (DNAME, KX, A6, RRSIG,
/// NSEC, SVCB, HTTPS, TKEY, TSIG, hickory's ANAME), whose senders must not
/// compress them but whose receivers (hickory-proto, glibc's ns_sprintrr
/// for A6) would follow a pointer.
/// `None` if `f` fails or a name overruns the RDATA; an empty RDATA has
/// no names.
fn for_each_rdata_name(
    r: &[u8],
    t: u16,
    rdata: usize,
    rdata_end: usize,
    mut f: impl FnMut(usize) -> Option<()>,
) -> Option<()> {
    if rdata == rdata_end {
        return Some(());
    }
    let (skip, names) = match t {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, NXT, DNAME, NSEC, TKEY, TSIG,
        // ANAME
        2..=5 | 7..=9 | 12 | 30 | 39 | 47 | 249 | 250 | 65305 => (0, 1),
        // A6 (RFC 2874): prefix length, address suffix, prefix name
        // (none for a prefix length of 0)
        38 => match *r.get(rdata)? {
            0 => return Some(()),
            p @ 1..=128 => (1 + (135 - usize::from(p)) / 8, 1),
            _ => return None,
        },
        // SOA, MINFO, RP
        6 | 14 | 17 => (0, 2),
        // MX, AFSDB, RT, KX, SVCB, HTTPS
        15 | 18 | 21 | 36 | 64 | 65 => (2, 1),
        // PX
        26 => (2, 2),
        // SIG, RRSIG: the signer's name after 18 bytes
        24 | 46 => (18, 1),
        // SRV
        33 => (6, 1),
        // NAPTR: order, preference, flags, services, regexp, replacement
        35 => {
            let mut p = rdata + 4;
            for _ in 0..3 {
                p += 1 + usize::from(*r.get(p)?);
            }
            (p - rdata, 1)
        }
        _ => return Some(()),
    };
    let mut p = rdata + skip;
    for _ in 0..names {
        if p >= rdata_end {
            return None;
        }
        f(p)?;
        p = skip_name(r, p)?;
    }
    (p <= rdata_end).then_some(())
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
/// not the authority), AD cleared unless the query set AD or DO (RFC
/// 6840 §5.8: the reply may come from the cache, stored for a query that
/// did), and `opt` (which carries the query's DO) appended when given.
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
    let wants_ad = query[3] & 0x20 != 0 || opt.is_some_and(|o| o.dnssec_ok);
    if !wants_ad {
        out[3] &= !0x20;
    }
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

    /// A message under construction: header (counts given), the question
    /// `a.test. A IN` at offset 12, then records.
    fn head(an: u16, ns: u16, ar: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
        for c in [an, ns, ar] {
            m.extend_from_slice(&c.to_be_bytes());
        }
        m.extend_from_slice(&[1, b'a', 4, b't', b'e', b's', b't', 0, 0, 1, 0, 1]);
        m
    }

    /// A record owned by `owner` (wire bytes, maybe a pointer).
    fn rr(m: &mut Vec<u8>, owner: &[u8], t: u16, class: u16, rdata: &[u8]) {
        m.extend_from_slice(owner);
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&class.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 60]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }

    /// `a.test. A 192.0.2.1`, the owner compressed to the question.
    fn a_rr(m: &mut Vec<u8>) {
        rr(m, &[0xC0, 12], 1, 1, &[192, 0, 2, 1]);
    }

    /// An OPT record: payload 4096, extended rcode bits `ext`, DO, options.
    fn opt_rr(m: &mut Vec<u8>, ext: u8, options: &[u8]) {
        m.extend_from_slice(&[0, 0, 41, 0x10, 0, ext, 0, 0x80, 0]);
        m.extend_from_slice(&(options.len() as u16).to_be_bytes());
        m.extend_from_slice(options);
    }

    fn ptr(at: usize) -> [u8; 2] {
        (0xC000 | at as u16).to_be_bytes()
    }

    /// The same message built with and without an OPT record after the
    /// answer, at the start of the additional section: `tail` writes the
    /// records behind it (it gets the message so far, so its pointers
    /// are computed where they land).
    fn with_and_without(ext: u8, extra: u16, tail: impl Fn(&mut Vec<u8>)) -> (Vec<u8>, Vec<u8>) {
        let mut with = head(1, 0, 1 + extra);
        let mut without = head(1, 0, extra);
        a_rr(&mut with);
        a_rr(&mut without);
        opt_rr(&mut with, ext, &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        tail(&mut with);
        tail(&mut without);
        (with, without)
    }

    /// A TSIG record's RDATA (RFC 8945 §4.2): algorithm name (never
    /// compressed), times, MAC, original ID, error, other data.
    fn tsig_rdata() -> Vec<u8> {
        let mut t = vec![11];
        t.extend_from_slice(b"hmac-sha256");
        t.push(0);
        t.extend_from_slice(&[0, 0, 0x60, 0, 0, 0, 1, 44, 0, 32]);
        t.extend_from_slice(&[7u8; 32]);
        t.extend_from_slice(&[0x12, 0x34, 0, 0, 0, 0]);
        t
    }

    /// Writes records at the end of a message.
    type Tail = fn(&mut Vec<u8>);

    #[test]
    fn records_behind_the_opt_are_kept_byte_for_byte() {
        // (what follows the OPT, how many records)
        let tails: [(&str, u16, Tail); 4] = [
            ("nothing", 0, |_| {}),
            // RFC 3597: legal records with empty RDATA, which hickory-proto
            // refuses to decode.
            ("empty NULL and private-use records", 2, |m| {
                rr(m, &[0xC0, 12], 10, 1, &[]);
                rr(m, &[0xC0, 12], 65280, 1, &[]);
            }),
            ("a TSIG", 1, |m| {
                let t = tsig_rdata();
                rr(m, &[0xC0, 12], 250, 255, &t);
            }),
            ("an A", 1, a_rr),
        ];
        for (what, extra, tail) in tails {
            for ext in [0, 1] {
                let (with, without) = with_and_without(ext, extra, tail);
                assert_eq!(
                    strip_opt(&with),
                    Some((without, ext)),
                    "{what}, extended rcode bits {ext}"
                );
            }
        }
    }

    #[test]
    fn an_empty_record_in_the_answer_and_the_opt_not_last() {
        let mut with = head(2, 0, 2);
        let mut without = head(2, 0, 1);
        for m in [&mut with, &mut without] {
            a_rr(m);
            rr(m, &[0xC0, 12], 65280, 1, &[]);
        }
        opt_rr(&mut with, 0, &[]);
        a_rr(&mut with);
        a_rr(&mut without);
        assert_eq!(strip_opt(&with), Some((without, 0)));
    }

    #[test]
    fn pointers_behind_the_cut_move_with_the_names_they_name() {
        // Behind the OPT: `ns.a.test. A` (its owner a new name, `ns` and
        // a pointer to the question), then records naming it by pointer:
        // as owner (AAAA), in an MX's and an SRV's RDATA, twice in an SOA.
        let tail = |m: &mut Vec<u8>| {
            let ns = m.len();
            let mut owner = vec![2, b'n', b's'];
            owner.extend_from_slice(&ptr(12));
            rr(m, &owner, 1, 1, &[192, 0, 2, 53]);
            rr(
                m,
                &ptr(ns),
                28,
                1,
                &[0x20, 1, 0xD, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            );
            let mut mx = vec![0, 10];
            mx.extend_from_slice(&ptr(ns));
            rr(m, &ptr(12), 15, 1, &mx);
            let mut srv = vec![0, 1, 0, 2, 0, 53];
            srv.extend_from_slice(&ptr(ns));
            rr(m, &ptr(12), 33, 1, &srv);
            let mut soa = [ptr(ns), ptr(ns)].concat();
            soa.extend_from_slice(&[0; 20]);
            rr(m, &ptr(12), 6, 1, &soa);
        };
        let (with, without) = with_and_without(0, 5, tail);
        let (stripped, _) = strip_opt(&with).expect("pointers past the cut are moved");
        assert_eq!(stripped, without);
        let m = Message::from_vec(&stripped).unwrap();
        assert!(m.edns.is_none());
        let text: Vec<String> = m.additionals.iter().map(ToString::to_string).collect();
        for (record, want) in text.iter().zip([
            "ns.a.test.",
            "ns.a.test.",
            "10 ns.a.test.",
            "1 2 53 ns.a.test.",
            "ns.a.test. ns.a.test.",
        ]) {
            assert!(record.contains(want), "{record} names {want}");
        }
        // And the same relayed as is would have meant the same.
        let original = Message::from_vec(&with).unwrap();
        assert_eq!(original.additionals, m.additionals);
    }

    #[test]
    fn names_pointing_into_the_opt_the_header_or_past_the_records_are_malformed() {
        let opt_at = head(1, 0, 0).len() + 16;
        for bad in [ptr(opt_at), ptr(opt_at + 3), ptr(0x3FFF), ptr(2)] {
            let mut m = head(1, 0, 2);
            a_rr(&mut m);
            opt_rr(&mut m, 0, &[]);
            rr(&mut m, &bad, 1, 1, &[192, 0, 2, 2]);
            assert_eq!(strip_opt(&m), None, "owner {bad:?}");
            // The same pointer in an NS record's RDATA.
            let mut m = head(1, 0, 2);
            a_rr(&mut m);
            opt_rr(&mut m, 0, &[]);
            rr(&mut m, &ptr(12), 2, 1, &bad);
            assert_eq!(strip_opt(&m), None, "NS {bad:?}");
        }
        // A pointer loop behind the cut.
        let mut m = head(1, 0, 2);
        a_rr(&mut m);
        opt_rr(&mut m, 0, &[]);
        let here = m.len();
        rr(&mut m, &ptr(here), 1, 1, &[192, 0, 2, 2]);
        assert_eq!(strip_opt(&m), None);
    }

    #[test]
    fn an_opt_outside_the_additional_section_is_malformed() {
        let mut answer = head(2, 0, 0);
        a_rr(&mut answer);
        opt_rr(&mut answer, 0, &[]);
        assert_eq!(strip_opt(&answer), None);
        let mut authority = head(1, 1, 1);
        a_rr(&mut authority);
        opt_rr(&mut authority, 0, &[]);
        a_rr(&mut authority);
        assert_eq!(strip_opt(&authority), None);
    }

    /// Walks a message by its counts: the types of its records, or `None`
    /// if the counts do not match the bytes exactly.
    fn walk(m: &[u8]) -> Option<Vec<u16>> {
        let c = |i: usize| u16::from_be_bytes([m[i], m[i + 1]]);
        let mut pos = 12;
        for _ in 0..c(4) {
            pos = crate::node::skip_name(m, pos)? + 4;
        }
        let mut types = Vec::new();
        for _ in 0..u32::from(c(6)) + u32::from(c(8)) + u32::from(c(10)) {
            pos = crate::node::skip_name(m, pos)?;
            types.push(u16::from_be_bytes([*m.get(pos)?, *m.get(pos + 1)?]));
            pos += 10 + usize::from(u16::from_be_bytes([*m.get(pos + 8)?, *m.get(pos + 9)?]));
        }
        (pos == m.len()).then_some(types)
    }

    /// Every truncation and many one-byte changes of a few replies: no
    /// panic, and whatever comes out has counts that match its bytes, no
    /// OPT, and means what the input meant (where hickory-proto decodes
    /// both; a pointer into the header, whose ARCOUNT changes, is refused).
    #[test]
    fn mutations_give_none_or_the_same_message_without_opt() {
        let mut bases = Vec::new();
        let (with, _) = with_and_without(0, 1, a_rr);
        bases.push(with);
        let (with, _) = with_and_without(1, 0, |_| {});
        bases.push(with);
        let (with, _) = with_and_without(0, 2, |m| {
            let ns = m.len();
            let mut owner = vec![2, b'n', b's'];
            owner.extend_from_slice(&ptr(12));
            rr(m, &owner, 1, 1, &[192, 0, 2, 53]);
            let mut mx = vec![0, 10];
            mx.extend_from_slice(&ptr(ns));
            rr(m, &ptr(ns), 15, 1, &mx);
        });
        bases.push(with);
        let mut bad = Vec::new();
        let mut check = |what: String, input: &[u8], same_meaning: bool| {
            let Some((s, _)) = strip_opt(input) else {
                return;
            };
            let Some(types) = walk(&s) else {
                bad.push(format!("{what}: counts do not match"));
                return;
            };
            if types.contains(&41) {
                bad.push(format!("{what}: OPT left"));
            }
            if !same_meaning {
                return;
            }
            if let (Ok(before), Ok(after)) = (Message::from_vec(input), Message::from_vec(&s))
                && (&before.answers, &before.authorities, &before.additionals)
                    != (&after.answers, &after.authorities, &after.additionals)
            {
                bad.push(format!("{what}: records changed {before} {after}"));
            }
        };
        for (b, base) in bases.iter().enumerate() {
            for cut in 0..=base.len() {
                check(format!("base {b} cut at {cut}"), &base[..cut], true);
            }
            for i in 0..base.len() {
                for v in [0u8, 1, 2, 0x0F, 0x29, 0x3F, 0x40, 0xC0, 0xFF] {
                    let mut r = base.clone();
                    r[i] = v;
                    check(format!("base {b} byte {i} = {v:#x}"), &r, true);
                }
            }
        }
        assert!(bad.is_empty(), "{bad:#?}");
    }
}

/// Stripping against hickory-proto's reading: random replies with an OPT
/// anywhere in the additional section, crafted pointer chains.
#[cfg(test)]
#[path = "message_strip_tests.rs"]
mod strip_tests;
