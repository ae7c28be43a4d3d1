//! `strip_opt` against hickory-proto's reading of the same bytes: random
//! well-formed replies (17 record kinds, names compressed in RDATA, an OPT
//! at a random place in the additional section) mean the same after the
//! cut, and crafted pointer chains (through non-name bytes, into the
//! header, forward past the cut) are refused rather than changed.
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{
    ANAME, CNAME, HINFO, HTTPS, MX, NAPTR, NS, NULL, PTR, SOA, SRV, SVCB, TXT,
};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

use super::strip_opt;

const NAMES: [&str; 7] = [
    "a.test.",
    "ns.a.test.",
    "X.ns.A.test.",
    "b.example.",
    "mail.b.example.",
    "deep.sub.mail.b.example.",
    ".",
];

fn name(i: usize) -> Name {
    Name::from_ascii(NAMES[i % NAMES.len()]).unwrap()
}

fn rdata(kind: u8, n: usize, x: u32) -> RData {
    let t = name(n);
    match kind % 17 {
        0 => RData::A(Ipv4Addr::from(x).into()),
        1 => RData::AAAA(Ipv6Addr::from(u128::from(x)).into()),
        2 => RData::NS(NS(t)),
        3 => RData::CNAME(CNAME(t)),
        4 => RData::PTR(PTR(t)),
        5 => RData::MX(MX::new(x as u16, t)),
        6 => RData::SOA(SOA::new(t, name(n + 1), x, 1, 2, 3, 4)),
        7 => RData::SRV(SRV::new(1, 2, x as u16, t)),
        8 => RData::TXT(TXT::new(vec![format!("t{x}")])),
        9 => RData::NAPTR(NAPTR::new(
            1,
            2,
            b"u".to_vec().into(),
            b"E2U+sip".to_vec().into(),
            b"".to_vec().into(),
            t,
        )),
        10 => RData::HINFO(HINFO::new("cpu".into(), "os".into())),
        11 => RData::NULL(NULL::with(vec![0xC0, 12, x as u8])),
        12 => RData::SVCB(SVCB::new(1, t, vec![])),
        13 => RData::HTTPS(HTTPS(SVCB::new(1, t, vec![]))),
        14 => RData::ANAME(ANAME(t)),
        15 => RData::Unknown {
            code: RecordType::Unknown(65280),
            rdata: NULL::with(vec![0xC0, 12, 1, 2]),
        },
        _ => RData::Unknown {
            code: RecordType::Unknown(65281),
            rdata: NULL::with(x.to_be_bytes().to_vec()),
        },
    }
}

type Spec = (usize, u8, usize, u32);

fn rec((o, k, n, x): Spec) -> Record {
    Record::from_rdata(name(o), 60, rdata(k, n, x))
}

fn records(m: &Message) -> String {
    format!("{:?}\n{:?}\n{:?}", m.answers, m.authorities, m.additionals)
}

/// Original (OPT at `opt_at` in the additional section) and the same
/// message built without it.
fn build(q: usize, an: &[Spec], ns: &[Spec], ar: &[Spec], opt_at: usize) -> (Vec<u8>, Vec<u8>) {
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(name(q), RecordType::A));
    for s in an {
        m.add_answer(rec(*s));
    }
    for s in ns {
        m.add_authority(rec(*s));
    }
    let mut without = m.clone();
    for s in ar {
        without.add_additional(rec(*s));
    }
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    let mut with = m;
    for (i, s) in ar.iter().enumerate() {
        if i == opt_at {
            with.add_additional(Record::from(&edns));
        }
        with.add_additional(rec(*s));
    }
    if opt_at >= ar.len() {
        with.add_additional(Record::from(&edns));
    }
    (with.to_vec().unwrap(), without.to_vec().unwrap())
}

/// `strip_opt` refuses `m`, or its output decodes (hickory) to the records
/// `before` (the input, decoded) holds.
fn same_records_or_refused(m: &[u8], before: &Message) {
    if let Some((s, _)) = strip_opt(m) {
        let after = Message::from_vec(&s);
        assert_eq!(
            after.as_ref().map(records).ok(),
            Some(records(before)),
            "{after:?}"
        );
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (0usize..7, any::<u8>(), 0usize..7, any::<u32>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Differential: hickory decodes the stripped output to the records
    /// the original carried (OPT aside), and the bytes equal those of the
    /// same message built without the OPT.
    #[test]
    fn stripping_keeps_the_meaning(
        q in 0usize..7,
        an in prop::collection::vec(spec(), 0..4),
        ns in prop::collection::vec(spec(), 0..3),
        ar in prop::collection::vec(spec(), 0..6),
        opt_at in 0usize..7,
    ) {
        let (with, without) = build(q, &an, &ns, &ar, opt_at);
        let original = Message::from_vec(&with).unwrap();
        prop_assert!(original.edns.is_some());
        let (stripped, ext) = strip_opt(&with).expect("a well-formed reply strips");
        prop_assert_eq!(ext, 0);
        let after = Message::from_vec(&stripped).unwrap();
        prop_assert!(after.edns.is_none());
        prop_assert_eq!(records(&original), records(&after));
        prop_assert_eq!(&stripped, &without);
    }

    /// Random mutations: no panic; whatever comes out has no OPT, counts
    /// that match and, where hickory decodes both, the same records.
    #[test]
    fn mutations_never_panic_or_change_meaning(
        q in 0usize..7,
        an in prop::collection::vec(spec(), 0..3),
        ar in prop::collection::vec(spec(), 0..4),
        opt_at in 0usize..5,
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let (mut with, _) = build(q, &an, &[], &ar, opt_at);
        for (i, v) in muts {
            let i = i.index(with.len());
            with[i] = v;
        }
        if do_cut {
            with.truncate(cut.index(with.len() + 1));
        }
        let Some((s, _)) = strip_opt(&with) else { return Ok(()); };
        prop_assert!(s.len() >= 12);
        if let (Ok(before), Ok(after)) = (Message::from_vec(&with), Message::from_vec(&s)) {
            prop_assert!(after.edns.is_none(), "OPT left");
            prop_assert_eq!(records(&before), records(&after), "\n{:02x?}\n{:02x?}", with, s);
        }
    }
}

/// Wire helpers (as in message.rs's tests).
fn head(an: u16, ns: u16, ar: u16, qname: &[u8]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1];
    for c in [an, ns, ar] {
        m.extend_from_slice(&c.to_be_bytes());
    }
    m.extend_from_slice(qname);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

fn rr(m: &mut Vec<u8>, owner: &[u8], t: u16, rdata: &[u8]) {
    m.extend_from_slice(owner);
    m.extend_from_slice(&t.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
}

fn opt(m: &mut Vec<u8>) {
    m.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
}

fn ptr(at: usize) -> [u8; 2] {
    (0xC000 | at as u16).to_be_bytes()
}

const A_TEST: &[u8] = &[1, b'a', 4, b't', b'e', b's', b't', 0];

/// Finding 1: a name behind the cut whose pointer chain passes through
/// bytes that are not a name (here an A record's address, which starts
/// with 192 = 0xC0) gets those bytes rewritten: the A record's address
/// changes. hickory decodes input and output; the records differ.
#[test]
fn a_chain_through_non_name_bytes_changes_no_record() {
    let mut m = head(0, 0, 4, A_TEST);
    opt(&mut m); // additional 1: OPT at 24..35
    let n = m.len(); // 35: `ns.a.test.`
    let mut owner = vec![2, b'n', b's'];
    owner.extend_from_slice(&ptr(12));
    rr(&mut m, &owner, 1, &[192, 0, 2, 53]); // additional 2
    let a2 = m.len();
    // additional 3: an A whose address is the bytes C0 <n> 0 1
    rr(&mut m, &ptr(12), 1, &[0xC0, n as u8, 0, 1]);
    let addr = a2 + 2 + 10;
    // additional 4: a CNAME-less record owned by a pointer into that address
    rr(&mut m, &ptr(addr), 1, &[198, 51, 100, 1]);
    let before = Message::from_vec(&m).expect("hickory decodes the input");
    let a = |m: &Message| {
        m.additionals
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .map(|r| format!("{} {}", r.name, r.data))
            .collect::<Vec<_>>()
    };
    // Refusing (SERVFAIL) is fine; a changed address is not.
    if let Some((s, _)) = strip_opt(&m) {
        let after = Message::from_vec(&s).expect("hickory decodes the output");
        assert_eq!(a(&before), a(&after));
    }
}

/// Finding 2a: names before the cut are never checked: a pointer in the
/// question/answer into the header reads ARCOUNT, which the strip lowers,
/// so the owner name changes (hickory accepts both).
#[test]
fn a_name_before_the_cut_pointing_at_arcount_keeps_its_meaning() {
    // question name: \001.\001. (bytes 01 01 01 01 00)
    let mut m = head(1, 0, 2, &[1, 1, 1, 1, 0]);
    rr(&mut m, &ptr(11), 1, &[192, 0, 2, 1]); // answer owned by "ARCOUNT low byte..."
    opt(&mut m);
    rr(&mut m, &ptr(12), 1, &[192, 0, 2, 2]);
    let before = Message::from_vec(&m).expect("hickory decodes the input");
    match strip_opt(&m) {
        None => {} // refused: fine
        Some((s, _)) => {
            let after = Message::from_vec(&s).expect("hickory decodes the output");
            assert_eq!(
                before.answers[0].name.to_string(),
                after.answers[0].name.to_string(),
                "the answer's owner changed meaning"
            );
        }
    }
}

/// Finding 2b: a forward pointer before the cut (accepted by glibc's
/// ns_name_unpack and musl's dn_expand, which only bound the offset) to a
/// name behind the cut is passed on unmoved: it now names other bytes.
/// The doc says such a reply is malformed (`None`).
#[test]
fn a_forward_pointer_before_the_cut_is_refused() {
    let mut m = head(1, 0, 2, A_TEST);
    let ans = m.len();
    // answer: CNAME whose target points forward, to the owner of the
    // last record (`ns.a.test.`), patched below.
    rr(&mut m, &ptr(12), 5, &[0, 0]);
    opt(&mut m);
    let ns = m.len();
    let mut owner = vec![2, b'n', b's'];
    owner.extend_from_slice(&ptr(12));
    rr(&mut m, &owner, 1, &[192, 0, 2, 53]);
    m[ans + 12..ans + 14].copy_from_slice(&ptr(ns));
    assert_eq!(
        strip_opt(&m),
        None,
        "a forward pointer past the cut is passed on unmoved"
    );
}

/// Exhaustive: every 2-byte position of a few hickory-built replies
/// (OPT not last, compressed names behind it) set to a pointer to every
/// offset; where strip_opt accepts and hickory decodes both, the records
/// must be the same. Prints the failure classes.
#[test]
fn every_pointer_retarget_keeps_meaning_or_is_refused() {
    let cases: [(&[Spec], &[Spec], usize); 3] = [
        (
            &[(0, 3, 1, 0)],
            &[(1, 0, 0, 0xC0_23_00_01), (2, 5, 1, 0), (4, 6, 5, 9)],
            0,
        ),
        (&[(0, 0, 0, 1)], &[(3, 2, 4, 0), (4, 0, 0, 2)], 1),
        (&[], &[(5, 7, 2, 0), (1, 11, 0, 3)], 0),
    ];
    let mut classes = std::collections::BTreeMap::<String, usize>::new();
    let mut examples = std::collections::BTreeMap::<String, String>::new();
    for (an, ar, opt_at) in cases {
        let (base, _) = build(0, an, &[], ar, opt_at);
        for i in 12..base.len() - 1 {
            for t in 0..base.len() {
                let mut m = base.clone();
                m[i..i + 2].copy_from_slice(&ptr(t));
                let Some((s, _)) = strip_opt(&m) else {
                    continue;
                };
                let (Ok(b), Ok(a)) = (Message::from_vec(&m), Message::from_vec(&s)) else {
                    continue;
                };
                if records(&b) != records(&a) {
                    let class = if t < 12 {
                        "target in header"
                    } else {
                        "target >= 12"
                    };
                    *classes.entry(class.into()).or_default() += 1;
                    examples
                        .entry(class.into())
                        .or_insert(format!("i={i} t={t}\n{b}\n{a}"));
                }
            }
        }
    }
    assert!(classes.is_empty(), "{classes:?}\n{examples:#?}");
}

/// Found by the proptest in CI: a name behind the cut points back to
/// bytes before it (the last labels of a record's RDATA) whose labels run
/// on into the OPT and end at its owner (the root). Without the OPT they
/// run on into the next record instead: `os.` became `os.z.`.
#[test]
fn a_name_whose_labels_run_into_the_opt_keeps_its_meaning_or_is_refused() {
    let mut m = head(0, 0, 4, A_TEST);
    let a = m.len();
    // additional 1: an A record whose address ends with the label `os`.
    rr(&mut m, &ptr(12), 1, &[192, 2, b'o', b's']);
    opt(&mut m); // additional 2
    rr(&mut m, &[1, b'z', 0], 1, &[192, 0, 2, 1]); // additional 3: `z.`
    let label = a + 2 + 10 + 1;
    rr(&mut m, &ptr(label), 1, &[198, 51, 100, 1]); // additional 4: `os.`
    let before = Message::from_vec(&m).expect("hickory decodes the input");
    assert_eq!(before.additionals[2].name.to_string(), "os.");
    same_records_or_refused(&m, &before);
}

/// The same run-on from a name before the cut: its pointer targets a
/// label (here an unknown record's one-byte RDATA, 16) that spans the
/// pointing record itself and ends where the OPT's owner ends the name.
/// A compressed name's suffix is an earlier name: it ends before the
/// name that points to it.
#[test]
fn a_name_before_the_cut_whose_labels_run_into_the_opt_is_refused() {
    let mut m = head(0, 0, 4, A_TEST);
    let unknown = m.len();
    rr(&mut m, &ptr(12), 65281, &[16]); // additional 1
    let label = unknown + 2 + 10;
    rr(&mut m, &ptr(label), 1, &[192, 0, 2, 1]); // additional 2, 16 bytes
    opt(&mut m); // additional 3
    rr(&mut m, &[1, b'z', 0], 1, &[192, 0, 2, 2]); // additional 4
    // hickory refuses the binary label, but glibc's ns_name_unpack reads
    // it, and after the cut it would end in `z.`: refused.
    assert_eq!(strip_opt(&m), None);
}

/// Found by the proptest: an NSEC (whose next name must not be
/// compressed, RFC 4034 §4.1.1) behind the cut holding a pointer to a
/// name behind the cut. hickory without DNSSEC reads its RDATA as bytes,
/// so moving the pointer changed them; a reader that follows it would
/// see another name if it were not moved. Refused; likewise for the
/// obsolete MD (3), which hickory also reads as bytes.
#[test]
fn a_pointer_behind_the_cut_in_a_name_that_must_not_be_compressed_is_refused() {
    let mut m = head(0, 0, 3, A_TEST);
    opt(&mut m);
    let owner = m.len();
    rr(&mut m, &[1, b'b', 0], 1, &[192, 0, 2, 1]);
    let cases = [
        (47, false),
        (39, false),
        (64, false),
        (3, false),
        (2, true),
        (33, true),
    ];
    for (t, may) in cases {
        let mut m = m.clone();
        let rdata: Vec<u8> = match t {
            64 => [&[0, 1][..], &ptr(owner)].concat(),
            33 => [&[0, 1, 0, 2, 0, 53][..], &ptr(owner)].concat(),
            _ => ptr(owner).to_vec(),
        };
        rr(&mut m, &ptr(12), t, &rdata);
        assert_eq!(strip_opt(&m).is_some(), may, "type {t}");
    }
}

/// Found by the proptest: a name behind the cut points to a label (behind
/// the cut) whose text holds the pointer that ends another name behind
/// the cut. Moving that pointer changed the label's text. Refused.
#[test]
fn a_label_holding_a_moved_pointer_is_refused() {
    let mut m = head(0, 0, 4, A_TEST);
    opt(&mut m);
    let b = m.len();
    // additional 2: `b.`, whose address ends in a 2-byte label's length.
    rr(&mut m, &[1, b'b', 0], 1, &[192, 0, 2, 2]);
    let label = m.len() - 1;
    // additional 3: owned by a pointer to `b.`, moved by the cut; the
    // label's text is that pointer, and the type's first byte (0) ends it.
    rr(&mut m, &ptr(b), 1, &[192, 0, 2, 3]);
    // additional 4: owned by that label.
    rr(&mut m, &ptr(label), 1, &[192, 0, 2, 4]);
    let before = Message::from_vec(&m).expect("hickory decodes the input");
    assert_eq!(before.additionals[2].name.num_labels(), 1);
    assert_eq!(strip_opt(&m), None);
}

/// Review of the fix above: hickory reads ANAME's RDATA as a name, so a
/// pointer in it behind the cut must not be left unmoved (refused: not
/// every reader decompresses it).
#[test]
fn an_aname_behind_the_cut_keeps_its_meaning_or_is_refused() {
    let mut m = head(0, 0, 3, A_TEST);
    opt(&mut m);
    let b = m.len();
    rr(&mut m, &[1, b'b', 0], 1, &[192, 0, 2, 1]);
    rr(&mut m, &ptr(12), 65305, &ptr(b)); // ANAME b.
    let before = Message::from_vec(&m).expect("hickory decodes the input");
    assert_eq!(before.additionals[1].data.to_string(), "b.");
    same_records_or_refused(&m, &before);
}

/// And an ANAME before the cut is checked like any name: a pointer into
/// ARCOUNT (which the cut lowers) is refused.
#[test]
fn an_aname_before_the_cut_pointing_at_arcount_is_refused() {
    // offset 11 (ARCOUNT's low byte, 1) reads as a label, then the question's bytes
    let mut m = head(1, 0, 1, &[1, 1, 1, 1, 0]);
    rr(&mut m, &ptr(12), 65305, &ptr(11));
    opt(&mut m);
    let before = Message::from_vec(&m).expect("hickory decodes the input");
    same_records_or_refused(&m, &before);
}

/// A pointer read partway along a chain behind the cut overlapping a
/// moved pointer: the move across a 256-byte boundary (261 → 250) turns
/// the shared byte C1 into C0, so the chain's target changes from 193
/// (`a.`) to 192 (`\001a.`).
#[test]
fn a_chain_pointer_overlapping_a_moved_pointer_keeps_its_meaning_or_is_refused() {
    let mut m = head(0, 0, 7, A_TEST);
    rr(&mut m, &ptr(12), 65281, &[0; 144]);
    rr(&mut m, &ptr(12), 1, &[2, 1, b'a', 0]); // `\001a.` at 192, `a.` at 193
    assert_eq!(m.len(), 196);
    rr(&mut m, &ptr(12), 65281, &[0; 42]);
    opt(&mut m); // the cut: 250..261
    let b = m.len();
    assert_eq!(b, 261);
    rr(&mut m, &[1, b'b', 0], 1, &[192, 0, 2, 0xC0]); // address ends in C0
    let p = m.len(); // C1 05: moves to C0 FA
    rr(&mut m, &ptr(b), 1, &[192, 0, 2, 2]);
    rr(&mut m, &ptr(p - 1), 1, &[192, 0, 2, 3]); // reads C0 C1 -> 193
    let before = Message::from_vec(&m).expect("hickory decodes the input");
    assert_eq!(before.additionals[5].name.to_ascii(), "a.");
    same_records_or_refused(&m, &before);
}

/// A6's prefix name (RFC 2874; must not be compressed, but glibc's
/// ns_sprintrr expands it against the message) is checked and never moved.
#[test]
fn a6_prefix_names_are_checked() {
    let mut m = head(0, 0, 3, A_TEST);
    opt(&mut m);
    let b = m.len();
    let rdata = [&[64u8, 1, 2, 3, 4, 5, 6, 7, 8][..], &ptr(b)].concat();
    rr(&mut m, &[1, b'b', 0], 1, &[192, 0, 2, 1]);
    rr(&mut m, &ptr(12), 38, &rdata);
    assert_eq!(strip_opt(&m), None, "A6 behind the cut");
    let mut m = head(1, 0, 1, &[1, 1, 1, 1, 0]);
    rr(&mut m, &ptr(12), 38, &[128, 0xC0, 11]);
    opt(&mut m);
    assert_eq!(strip_opt(&m), None, "A6 before the cut");
}
