//! Following an ExternalName's CNAME, as CoreDNS does: a stub resolver
//! (glibc, musl) does not chase a CNAME itself, so a recursive server
//! answers `A`/`AAAA` with the CNAME followed by the target's records.
//! This is a rare, slow path: it decodes and re-encodes with hickory-proto.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::RData;

/// The query for the target of the single CNAME in `reply` (same type,
/// RD set, EDNS 1232); `None` if `reply` is not such an answer.
pub fn alias_query(reply: &[u8]) -> Option<Vec<u8>> {
    let m = Message::from_vec(reply).ok()?;
    let q = m.queries.first()?;
    let [answer] = m.answers.as_slice() else {
        return None;
    };
    let RData::CNAME(target) = &answer.data else {
        return None;
    };
    let mut out = Message::new(m.metadata.id, MessageType::Query, OpCode::Query);
    out.metadata.recursion_desired = true;
    out.add_query(Query::query(target.0.clone(), q.query_type));
    let mut edns = Edns::new();
    edns.set_max_payload(crate::DEFAULT_UDP_PAYLOAD);
    out.set_edns(edns);
    out.to_vec().ok()
}

/// Writes `reply` (the CNAME) with the answer records of `target_reply`
/// appended, and the target's NXDOMAIN if it has one (RFC 6604), into
/// `out`; a reply over `limit` bytes is sent empty with TC. Returns the
/// length; `reply` unchanged when `target_reply` does not decode.
pub fn merge_alias(reply: &[u8], target_reply: &[u8], limit: usize, out: &mut [u8]) -> usize {
    let copy = |out: &mut [u8]| {
        let n = reply.len().min(out.len());
        out[..n].copy_from_slice(&reply[..n]);
        n
    };
    let (Ok(mut m), Ok(t)) = (Message::from_vec(reply), Message::from_vec(target_reply)) else {
        return copy(out);
    };
    m.answers.extend(t.answers);
    if t.metadata.response_code == ResponseCode::NXDomain {
        m.metadata.response_code = ResponseCode::NXDomain;
    }
    m.metadata.recursion_available = true;
    let Ok(mut bytes) = m.to_vec() else {
        return copy(out);
    };
    if bytes.len() > limit.min(out.len()) {
        let Ok(b) = m.truncate().to_vec() else {
            return copy(out);
        };
        bytes = b;
    }
    let n = bytes.len().min(out.len());
    out[..n].copy_from_slice(&bytes[..n]);
    n
}
