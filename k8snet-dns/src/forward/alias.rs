//! Following an ExternalName's CNAME, as CoreDNS does: a stub resolver
//! (glibc, musl) does not chase a CNAME itself, so a recursive server
//! answers `A`/`AAAA` with the CNAME followed by the target's records.
//! This is a rare, slow path: it decodes and re-encodes with hickory-proto.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// The most CNAMEs [`follow`] chases in one answer (CoreDNS stops after
/// 8 records too).
const MAX_CHAIN: usize = 8;

/// The query for `target` with type `qtype` (RD set, EDNS 1232, ID and
/// the DO and CD bits of `reply`, the answer being chased: the zone
/// echoes them from the client's query, so the target's records are
/// asked for, and cached, as the client asked).
fn target_query(reply: &Message, target: &Name, qtype: RecordType) -> Option<Vec<u8>> {
    let mut out = Message::new(reply.metadata.id, MessageType::Query, OpCode::Query);
    out.metadata.recursion_desired = true;
    out.metadata.checking_disabled = reply.metadata.checking_disabled;
    out.add_query(Query::query(target.clone(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(crate::DEFAULT_UDP_PAYLOAD);
    edns.set_dnssec_ok(reply.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok));
    out.set_edns(edns);
    out.to_vec().ok()
}

/// The query for the target of the single CNAME in `reply` (same type,
/// RD set, EDNS 1232, the DO and CD bits of `reply`); `None` if `reply`
/// is not such an answer.
pub fn alias_query(reply: &[u8]) -> Option<Vec<u8>> {
    let m = Message::from_vec(reply).ok()?;
    let q = m.queries.first()?;
    let [answer] = m.answers.as_slice() else {
        return None;
    };
    let RData::CNAME(target) = &answer.data else {
        return None;
    };
    target_query(&m, &target.0, q.query_type)
}

/// The target of the CNAME that ends the answer section of `m`, unless
/// the question asks for CNAME records.
fn pending_target(m: &Message) -> Option<Name> {
    let q = m.queries.first()?;
    if q.query_type == RecordType::CNAME {
        return None;
    }
    match &m.answers.last()?.data {
        RData::CNAME(target) => Some(target.0.clone()),
        _ => None,
    }
}

/// Appends what `target_reply` says about the CNAME's target to `m`: its
/// answer records; when it has none (NXDOMAIN or NODATA), the SOA of its
/// authority section (RFC 2308 §2.1, §2.2) and its NXDOMAIN (RFC 6604).
/// `false` if it does not decode.
fn absorb(m: &mut Message, target_reply: &[u8]) -> bool {
    let Ok(t) = Message::from_vec(target_reply) else {
        return false;
    };
    if t.metadata.response_code == ResponseCode::NXDomain {
        m.metadata.response_code = ResponseCode::NXDomain;
    }
    if t.answers.is_empty() {
        m.authorities.extend(
            t.authorities
                .into_iter()
                .filter(|r| r.record_type() == RecordType::SOA),
        );
    }
    m.answers.extend(t.answers);
    true
}

/// Encodes `m` into `out`: empty with TC when it is over `limit` bytes.
/// `None` if it does not encode.
fn emit(m: &Message, limit: usize, out: &mut [u8]) -> Option<usize> {
    let mut bytes = m.to_vec().ok()?;
    if bytes.len() > limit.min(out.len()) {
        bytes = m.truncate().to_vec().ok()?;
    }
    let n = bytes.len().min(out.len());
    out[..n].copy_from_slice(&bytes[..n]);
    Some(n)
}

fn copy(reply: &[u8], out: &mut [u8]) -> usize {
    let n = reply.len().min(out.len());
    out[..n].copy_from_slice(&reply[..n]);
    n
}

/// Writes `reply` (the CNAME) with the answer records of `target_reply`
/// appended, into `out`; when the target has no records, the target's
/// SOA goes in the authority section and its NXDOMAIN in the header (RFC
/// 2308, RFC 6604). The header flags (RA included) and the OPT record
/// are `reply`'s. A reply over `limit` bytes is sent empty with TC.
/// Returns the length; `reply` unchanged when either does not decode.
pub fn merge_alias(reply: &[u8], target_reply: &[u8], limit: usize, out: &mut [u8]) -> usize {
    let Ok(mut m) = Message::from_vec(reply) else {
        return copy(reply, out);
    };
    if !absorb(&mut m, target_reply) {
        return copy(reply, out);
    }
    emit(&m, limit, out).unwrap_or_else(|| copy(reply, out))
}

/// Follows the CNAME chain that ends `reply`: `resolve` answers the query
/// for each target (`None`: it cannot, and the chain stops there), up to
/// 8 links, never a target twice (a loop stops). Writes the result as
/// [`merge_alias`] does and returns its length.
#[cfg_attr(
    not(all(feature = "linux", target_os = "linux")),
    allow(dead_code, reason = "the server follows aliases")
)]
pub(crate) fn follow(
    reply: &[u8],
    mut resolve: impl FnMut(&[u8]) -> Option<Vec<u8>>,
    limit: usize,
    out: &mut [u8],
) -> usize {
    let Ok(mut m) = Message::from_vec(reply) else {
        return copy(reply, out);
    };
    let mut seen: Vec<Name> = m.queries.iter().map(|q| q.name().clone()).collect();
    for _ in 0..MAX_CHAIN {
        let Some(target) = pending_target(&m) else {
            break;
        };
        if seen.contains(&target) {
            break;
        }
        let Some(qtype) = m.queries.first().map(|q| q.query_type) else {
            break;
        };
        let Some(query) = target_query(&m, &target, qtype) else {
            break;
        };
        seen.push(target);
        let Some(target_reply) = resolve(&query) else {
            break;
        };
        if !absorb(&mut m, &target_reply) || m.metadata.response_code != ResponseCode::NoError {
            break;
        }
    }
    emit(&m, limit, out).unwrap_or_else(|| copy(reply, out))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::rdata::{CNAME, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::{follow, merge_alias};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// The zone's reply: `alias.` CNAME `target.`, as asked with EDNS.
    fn cname_reply(ra: bool, edns: bool) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.authoritative = true;
        m.metadata.recursion_available = ra;
        m.add_query(Query::query(name("alias.zone."), RecordType::A));
        m.add_answer(Record::from_rdata(
            name("alias.zone."),
            5,
            RData::CNAME(CNAME(name("target.zone."))),
        ));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    fn negative_reply(rcode: ResponseCode) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.add_query(Query::query(name("target.zone."), RecordType::A));
        m.add_authority(Record::from_rdata(
            name("zone."),
            5,
            RData::SOA(SOA::new(
                name("ns.dns.zone."),
                name("hostmaster.zone."),
                1,
                7200,
                1800,
                86400,
                5,
            )),
        ));
        m.to_vec().unwrap()
    }

    fn merged(reply: &[u8], target: &[u8]) -> Message {
        let mut out = vec![0u8; 65_535];
        let n = merge_alias(reply, target, 65_535, &mut out);
        Message::from_vec(&out[..n]).unwrap()
    }

    #[test]
    fn a_target_without_data_keeps_the_cname_and_gives_its_soa() {
        for (rcode, ra) in [
            (ResponseCode::NoError, false),
            (ResponseCode::NXDomain, true),
        ] {
            let m = merged(&cname_reply(ra, true), &negative_reply(rcode));
            assert_eq!(m.metadata.response_code, rcode, "{m}");
            assert_eq!(m.answers.len(), 1, "the CNAME stays: {m}");
            assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
            assert_eq!(m.authorities.len(), 1, "{m}");
            assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
            // RA is the zone reply's: set only by a server that recurses.
            assert_eq!(m.metadata.recursion_available, ra, "{m}");
            assert!(m.edns.is_some());
        }
    }

    #[test]
    fn a_target_with_data_adds_records_and_no_authority() {
        let mut t = Message::new(7, MessageType::Response, OpCode::Query);
        t.add_query(Query::query(name("target.zone."), RecordType::A));
        t.add_answer(Record::from_rdata(
            name("target.zone."),
            5,
            RData::A(Ipv4Addr::new(192, 0, 2, 1).into()),
        ));
        t.add_authority(Record::from_rdata(
            name("zone."),
            5,
            RData::NS(hickory_proto::rr::rdata::NS(name("ns.zone."))),
        ));
        let m = merged(&cname_reply(false, false), &t.to_vec().unwrap());
        let data: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(data, ["target.zone.", "192.0.2.1"]);
        assert!(m.authorities.is_empty(), "{m}");
        assert!(!m.metadata.recursion_available);
        assert!(m.edns.is_none());
    }

    #[test]
    fn a_chain_is_followed_and_a_loop_stops() {
        // target. CNAME next. ; next. CNAME target. (a loop)
        let resolve = |q: &[u8]| {
            let q = Message::from_vec(q).unwrap();
            let asked = q.queries[0].name().clone();
            let to = if asked == name("target.zone.") {
                "next.zone."
            } else {
                "target.zone."
            };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.add_query(q.queries[0].clone());
            r.add_answer(Record::from_rdata(asked, 5, RData::CNAME(CNAME(name(to)))));
            Some(r.to_vec().unwrap())
        };
        let mut out = vec![0u8; 65_535];
        let n = follow(&cname_reply(false, false), resolve, 65_535, &mut out);
        let m = Message::from_vec(&out[..n]).unwrap();
        let data: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(data, ["target.zone.", "next.zone.", "target.zone."], "{m}");
    }

    #[test]
    fn the_target_query_keeps_the_clients_do_and_cd_bits() {
        // The zone's reply echoes the client's CD and (in its OPT) DO.
        for (cd, dnssec_ok) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut reply = Message::from_vec(&cname_reply(false, true)).unwrap();
            reply.metadata.checking_disabled = cd;
            let mut e = Edns::new();
            e.set_dnssec_ok(dnssec_ok);
            reply.set_edns(e);
            let reply = reply.to_vec().unwrap();
            let mut asked = Vec::new();
            let resolve = |q: &[u8]| {
                asked.push(Message::from_vec(q).unwrap());
                None
            };
            let mut out = vec![0u8; 512];
            follow(&reply, resolve, 512, &mut out);
            let [q] = asked.as_slice() else {
                panic!("one target query: {asked:?}")
            };
            assert_eq!(q.queries[0].name(), &name("target.zone."));
            assert!(q.metadata.recursion_desired);
            assert_eq!(q.metadata.checking_disabled, cd, "{q}");
            let e = q.edns.as_ref().expect("EDNS in the target query");
            assert_eq!(e.flags().dnssec_ok, dnssec_ok, "{q}");
            assert_eq!(e.max_payload(), crate::DEFAULT_UDP_PAYLOAD);
        }
    }
}
