//! Differential tests: the crate's own encoder against libnftnl (the
//! `reference` module), byte for byte, for every message and expression
//! kind, on hand-picked and generated input; and its parser against
//! libnftnl's on the same messages and on the kernel's own dumps.

use proptest::prelude::*;

use super::reference;
use super::{Request, batch_marker, build, request};
use crate::lower::{LowElem, LowExpr, LowSet, Msg, lower};
use crate::raise::{RawChain, RawRule, RawSet};

#[path = "../../tests/common/mod.rs"]
mod common;

/// Families the backend sends (inet, ip, ip6).
const FAMILIES: [u8; 3] = [1, 2, 10];

/// Both encodings of one message, or both errors.
fn both(family: u8, table: &str, msg: &Msg, seq: u32) -> (Vec<u8>, Vec<u8>) {
    let mut ours = Vec::new();
    let mine = build(&mut ours, family, table, msg, seq);
    let mut theirs = Vec::new();
    let libnftnl = reference::Builder::new().build(&mut theirs, family, table, msg, seq);
    assert_eq!(
        mine.is_ok(),
        libnftnl.is_ok(),
        "{msg:?}: ours {mine:?}, libnftnl {libnftnl:?}"
    );
    (ours, theirs)
}

/// Asserts the encodings are identical, showing where they differ.
fn assert_same(msg: &dyn std::fmt::Debug, ours: &[u8], theirs: &[u8]) {
    if ours != theirs {
        let at = ours
            .iter()
            .zip(theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(theirs.len()));
        panic!(
            "{msg:?}\nfirst difference at byte {at} (lengths {} vs {})\nours:     {:02x?}\nlibnftnl: {:02x?}",
            ours.len(),
            theirs.len(),
            ours,
            theirs
        );
    }
}

fn check_msg(family: u8, table: &str, msg: &Msg, seq: u32) {
    let (ours, theirs) = both(family, table, msg, seq);
    assert_same(msg, &ours, &theirs);
    check_parse(&ours);
}

type ChainTuple = (String, String, Option<(u32, i32, String, u32)>);

fn chain_tuple(c: Option<RawChain>) -> Option<ChainTuple> {
    c.map(|c| (c.table, c.name, c.hook))
}

type SetTuple = (
    String,
    String,
    [u32; 4],
    Option<u32>,
    Option<u64>,
    Option<u32>,
);

fn set_tuple(s: Option<RawSet>) -> Option<SetTuple> {
    s.map(|s| {
        (
            s.table,
            s.name,
            [s.flags, s.key_type, s.key_len, s.data_len],
            s.data_type,
            s.timeout_ms,
            s.size,
        )
    })
}

fn rule_tuple(r: Option<RawRule>) -> Option<(String, String, u64, Vec<u8>)> {
    r.map(|r| (r.table, r.chain, r.handle, r.udata))
}

/// Both parsers give the same values for `msg` (one message), read as
/// the kind of object its type names. (libnftnl exits the process on an
/// attribute of the wrong size, so it only sees messages of its kind.)
fn check_parse(msg: &[u8]) {
    let ty = u16::from_ne_bytes([msg[4], msg[5]]) & 0xff;
    match ty {
        // NFT_MSG_{NEW,GET,DEL}CHAIN
        3..=5 => assert_eq!(
            chain_tuple(super::parse_chain(msg)),
            chain_tuple(reference::parse_chain(msg)),
            "chain of {msg:02x?}"
        ),
        // NFT_MSG_{NEW,GET,DEL}RULE
        6..=8 => assert_eq!(
            rule_tuple(super::parse_rule(msg)),
            rule_tuple(reference::parse_rule(msg)),
            "rule of {msg:02x?}"
        ),
        // NFT_MSG_{NEW,GET,DEL}SET
        9..=11 => assert_eq!(
            set_tuple(super::parse_set(msg)),
            set_tuple(reference::parse_set(msg)),
            "set of {msg:02x?}"
        ),
        // NFT_MSG_{NEW,GET,DEL}SETELEM
        12..=14 => {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            let a = super::parse_elems(msg, &mut ours);
            let b = reference::parse_elems(msg, &mut theirs);
            assert_eq!((a, ours), (b, theirs), "elements of {msg:02x?}");
        }
        _ => {}
    }
}

fn s(x: &str) -> String {
    x.to_owned()
}

/// One of every expression kind, with and without each optional part.
fn every_expr() -> Vec<LowExpr> {
    vec![
        LowExpr::Payload {
            base: 1,
            offset: 12,
            len: 4,
            dreg: 8,
        },
        LowExpr::Meta { key: 16, dreg: 9 },
        LowExpr::MetaSet { key: 3, sreg: 10 },
        LowExpr::Ct { key: 0, dreg: 11 },
        LowExpr::CtSet { key: 3, sreg: 12 },
        LowExpr::Fib {
            flags: 0x11,
            result: 3,
            dreg: 8,
        },
        LowExpr::Cmp {
            sreg: 8,
            op: 1,
            data: vec![10, 0, 0, 1],
        },
        LowExpr::Cmp {
            sreg: 8,
            op: 0,
            data: vec![6],
        },
        LowExpr::Range {
            sreg: 9,
            op: 0,
            from: vec![0, 80],
            to: vec![0x1f, 0x90],
        },
        LowExpr::Bitwise {
            sreg: 8,
            dreg: 8,
            mask: vec![255, 255, 255, 0],
            xor: vec![0; 4],
        },
        LowExpr::Immediate {
            dreg: 10,
            data: vec![1, 2, 3, 4, 5, 6, 7],
        },
        LowExpr::Verdict {
            code: 1,
            chain: None,
        },
        LowExpr::Verdict {
            code: 0,
            chain: None,
        },
        LowExpr::Verdict {
            code: -3,
            chain: Some(s("svc-web")),
        },
        LowExpr::Verdict {
            code: -4,
            chain: Some(s("ep-a")),
        },
        LowExpr::Verdict {
            code: -5,
            chain: None,
        },
        LowExpr::Lookup {
            sreg: 8,
            dreg: None,
            set: s("allowed"),
            set_id: None,
            invert: false,
        },
        LowExpr::Lookup {
            sreg: 8,
            dreg: Some(0),
            set: s("__map%d"),
            set_id: Some(7),
            invert: true,
        },
        LowExpr::Dynset {
            op: 0,
            sreg_key: 8,
            set: s("seen"),
            timeout_ms: None,
        },
        LowExpr::Dynset {
            op: 1,
            sreg_key: 9,
            set: s("affinity"),
            timeout_ms: Some(10_800_000),
        },
        LowExpr::Hash {
            sreg: 8,
            len: 12,
            modulus: 7,
            seed: 0xdead_beef,
            offset: 1,
            dreg: 9,
        },
        LowExpr::Numgen {
            dreg: 8,
            modulus: 3,
            random: true,
            offset: 0,
        },
        LowExpr::Numgen {
            dreg: 8,
            modulus: 5,
            random: false,
            offset: 2,
        },
        LowExpr::Nat {
            kind: 1,
            family: 2,
            reg_addr: 9,
            reg_proto: Some(10),
        },
        LowExpr::Nat {
            kind: 0,
            family: 10,
            reg_addr: 8,
            reg_proto: None,
        },
        LowExpr::Masq { flags: 0 },
        LowExpr::Masq { flags: 0x10 },
        LowExpr::Reject { kind: 1, code: 3 },
        LowExpr::Reject { kind: 0, code: 10 },
        LowExpr::Counter,
        LowExpr::Log { prefix: None },
        LowExpr::Log {
            prefix: Some(s("k8snet drop: ")),
        },
    ]
}

fn low_set(name: &str) -> LowSet {
    LowSet {
        name: s(name),
        id: 3,
        flags: 0,
        key_type: 7,
        key_len: 4,
        data: None,
        timeout_ms: None,
        size: None,
        concat: Vec::new(),
        udata: Vec::new(),
    }
}

/// Every message kind, with and without each optional part.
fn every_msg() -> Vec<Msg> {
    let mut msgs = vec![
        Msg::NewTable,
        Msg::DelTable,
        Msg::NewChain {
            name: s("regular"),
            hook: None,
        },
        Msg::NewChain {
            name: s("prerouting"),
            hook: Some((0, -100, "nat", 1)),
        },
        Msg::NewChain {
            name: s("forward"),
            hook: Some((2, 0, "filter", 0)),
        },
        Msg::DelChain { name: s("old") },
        Msg::FlushChain { name: s("svc") },
        Msg::NewSet(low_set("plain")),
        Msg::NewSet(LowSet {
            flags: 0x8 | 0x4 | 0x80 | 0x10,
            key_type: (7 << 6) | 13,
            key_len: 8,
            data: Some((0xffff_ff00, None)),
            timeout_ms: Some(30_000),
            size: Some(65_536),
            concat: vec![4, 2],
            udata: vec![0, 4, 1, 0, 0, 0],
            ..low_set("everything")
        }),
        Msg::NewSet(LowSet {
            flags: 0x8 | 0x1 | 0x2,
            data: Some((7, Some(4))),
            size: Some(2),
            ..low_set("__map%d")
        }),
        Msg::NewSet(LowSet {
            flags: 0x4,
            concat: vec![16, 2, 4],
            ..low_set("concat3")
        }),
        Msg::DelSet { name: s("gone") },
        Msg::NewElems {
            set: s("plain"),
            set_id: None,
            elems: Vec::new(),
        },
        Msg::NewElems {
            set: s("__map%d"),
            set_id: Some(3),
            elems: vec![
                LowElem {
                    key: vec![10, 0, 0, 1],
                    data: Some(vec![10, 1, 0, 1]),
                    ..LowElem::default()
                },
                LowElem {
                    key: vec![10, 0, 0, 0],
                    key_end: Some(vec![10, 0, 0, 255]),
                    verdict: Some((-3, Some(s("ep-a")))),
                    timeout_ms: Some(5_000),
                    ..LowElem::default()
                },
                LowElem {
                    key: vec![10, 0, 1, 0],
                    flags: 1,
                    verdict: Some((1, None)),
                    ..LowElem::default()
                },
            ],
        },
        Msg::DelElems {
            set: s("plain"),
            elems: vec![LowElem {
                key: vec![1, 2, 3, 4],
                ..LowElem::default()
            }],
        },
        Msg::NewRule {
            chain: s("empty"),
            exprs: Vec::new(),
            udata: Vec::new(),
        },
        Msg::NewRule {
            chain: s("all"),
            exprs: every_expr(),
            udata: b"\x00\x05hello\x6b\x03a b".to_vec(),
        },
    ];
    // Each expression alone, too: a missed attribute shows exactly.
    for e in every_expr() {
        msgs.push(Msg::NewRule {
            chain: s("one"),
            exprs: vec![e],
            udata: vec![1],
        });
    }
    msgs
}

#[test]
fn every_message_and_expression_kind_is_byte_identical_to_libnftnl() {
    for family in FAMILIES {
        for (i, msg) in every_msg().iter().enumerate() {
            let seq = u32::try_from(i).unwrap() * 0x0101_0101;
            check_msg(family, "k8snet-lb", msg, seq);
        }
    }
}

/// `fib saddr type local` (kube-proxy's "local traffic" match), lowered
/// from its text in a whole transaction, encodes as libnftnl encodes it.
#[test]
fn fib_saddr_type_rules_are_byte_identical_to_libnftnl() {
    use crate::model::{Chain, ChainType, Family, Hook, Policy, Table};
    let rule = |t: &str| t.parse::<crate::model::Rule>().unwrap();
    let table = Table::new(Family::Inet, "k8snet-fib")
        .with_chain(
            "nat-output",
            Chain::base(ChainType::Nat, Hook::Output, -100, Policy::Accept)
                .with_rule(rule("fib saddr type local jump ext"))
                .with_rule(rule("fib saddr type != local fib daddr type local accept")),
        )
        .with_chain("ext", Chain::regular());
    let batch = crate::diff(None, &table).unwrap();
    let msgs = lower(&batch).unwrap();
    let mut fib = 0;
    for (i, (_, msg)) in msgs.iter().enumerate() {
        if let Msg::NewRule { exprs, .. } = msg {
            fib += exprs
                .iter()
                .filter(|e| matches!(e, LowExpr::Fib { flags: 1, .. }))
                .count();
        }
        check_msg(1, &batch.table, msg, u32::try_from(i).unwrap());
    }
    assert_eq!(fib, 2, "{msgs:?}");
}

#[test]
fn batch_markers_and_requests_are_byte_identical_to_libnftnl() {
    let mut reference = reference::Builder::new();
    for (seq, begin) in [(0, true), (1, false), (0xffff_fffe, true), (77, false)] {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        batch_marker(&mut ours, seq, begin).unwrap();
        reference.batch_marker(&mut theirs, seq, begin).unwrap();
        assert_same(&(seq, begin), &ours, &theirs);
    }
    let what = [
        Request::Table,
        Request::Chains,
        Request::Sets,
        Request::Elements("svc-ips"),
        Request::Rules,
    ];
    for family in FAMILIES {
        for w in what {
            let ours = request(w, family, "k8snet-policy", 9).unwrap();
            let theirs = reference.request(w, family, "k8snet-policy", 9).unwrap();
            assert_same(&w, &ours, &theirs);
        }
    }
}

#[test]
fn names_with_nul_are_refused_by_both_and_leave_no_bytes() {
    let msgs = [
        Msg::DelChain { name: s("a\0b") },
        Msg::NewRule {
            chain: s("ok"),
            exprs: vec![LowExpr::Log {
                prefix: Some(s("x\0")),
            }],
            udata: Vec::new(),
        },
    ];
    for m in &msgs {
        let (ours, _) = both(1, "k8snet-x", m, 1);
        assert!(ours.is_empty(), "{m:?} left {ours:?}");
    }
}

#[test]
fn oversized_element_messages_are_an_error_not_a_wrapped_length() {
    // 2,000 elements of 64-byte keys: more than a 16-bit nest can hold.
    let elems = (0..2000u32)
        .map(|i| LowElem {
            key: [i.to_be_bytes().as_slice(), &[0; 60]].concat(),
            ..LowElem::default()
        })
        .collect();
    let msg = Msg::NewElems {
        set: s("big"),
        set_id: None,
        elems,
    };
    let mut out = vec![1, 2, 3, 4];
    let err = build(&mut out, 1, "k8snet-x", &msg, 1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(out, [1, 2, 3, 4]);
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9%_-]{1,40}"
}

/// Expression data: never empty (lowering makes none, and libnftnl's rule
/// parser refuses an empty value, while ours does not decode expressions).
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..=max)
}

/// Element keys and data, empty ones included.
fn elem_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn low_expr() -> impl Strategy<Value = LowExpr> {
    let r = any::<u32>;
    prop_oneof![
        (r(), r(), r(), r()).prop_map(|(base, offset, len, dreg)| LowExpr::Payload {
            base,
            offset,
            len,
            dreg
        }),
        (r(), r()).prop_map(|(key, dreg)| LowExpr::Meta { key, dreg }),
        (r(), r()).prop_map(|(key, sreg)| LowExpr::MetaSet { key, sreg }),
        (r(), r()).prop_map(|(key, dreg)| LowExpr::Ct { key, dreg }),
        (r(), r()).prop_map(|(key, sreg)| LowExpr::CtSet { key, sreg }),
        (r(), r(), r()).prop_map(|(flags, result, dreg)| LowExpr::Fib {
            flags,
            result,
            dreg
        }),
        (r(), r(), bytes(64)).prop_map(|(sreg, op, data)| LowExpr::Cmp { sreg, op, data }),
        (r(), r(), bytes(16), bytes(16)).prop_map(|(sreg, op, from, to)| LowExpr::Range {
            sreg,
            op,
            from,
            to
        }),
        (r(), r(), bytes(64), bytes(64)).prop_map(|(sreg, dreg, mask, xor)| {
            LowExpr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            }
        }),
        (r(), bytes(64)).prop_map(|(dreg, data)| LowExpr::Immediate { dreg, data }),
        // The verdicts libnftnl's rule parser accepts (lowering makes no
        // others); elements get any code, to compare the refusals too.
        (
            prop::sample::select(vec![0, 1, 3, -1, -2, -5, -3, -4]),
            name()
        )
            .prop_map(|(code, chain)| LowExpr::Verdict {
                code,
                chain: (code == -3 || code == -4).then_some(chain)
            }),
        (
            r(),
            prop::option::of(r()),
            name(),
            prop::option::of(r()),
            any::<bool>()
        )
            .prop_map(|(sreg, dreg, set, set_id, invert)| LowExpr::Lookup {
                sreg,
                dreg,
                set,
                set_id,
                invert
            }),
        (r(), r(), name(), prop::option::of(any::<u64>())).prop_map(
            |(op, sreg_key, set, timeout_ms)| LowExpr::Dynset {
                op,
                sreg_key,
                set,
                timeout_ms
            }
        ),
        (r(), r(), r(), r(), r(), r()).prop_map(|(sreg, len, modulus, seed, offset, dreg)| {
            LowExpr::Hash {
                sreg,
                len,
                modulus,
                seed,
                offset,
                dreg,
            }
        }),
        (r(), r(), any::<bool>(), r()).prop_map(|(dreg, modulus, random, offset)| {
            LowExpr::Numgen {
                dreg,
                modulus,
                random,
                offset,
            }
        }),
        (r(), r(), r(), prop::option::of(r())).prop_map(|(kind, family, reg_addr, reg_proto)| {
            LowExpr::Nat {
                kind,
                family,
                reg_addr,
                reg_proto,
            }
        }),
        r().prop_map(|flags| LowExpr::Masq { flags }),
        (r(), any::<u8>()).prop_map(|(kind, code)| LowExpr::Reject { kind, code }),
        Just(LowExpr::Counter),
        prop::option::of("[ -~&&[^\\x00]]{1,60}").prop_map(|prefix| LowExpr::Log { prefix }),
    ]
}

fn low_set_strategy() -> impl Strategy<Value = LowSet> {
    (
        (
            name(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
        prop::option::of((any::<u32>(), prop::option::of(any::<u32>()))),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u32>()),
        prop::collection::vec(any::<u8>(), 0..=17),
        prop::collection::vec(any::<u8>(), 0..=256),
    )
        .prop_map(
            |((name, id, flags, key_type, key_len), data, timeout_ms, size, concat, udata)| {
                LowSet {
                    name,
                    id,
                    flags,
                    key_type,
                    key_len,
                    data,
                    timeout_ms,
                    size,
                    concat,
                    udata,
                }
            },
        )
}

fn low_elem() -> impl Strategy<Value = LowElem> {
    (
        elem_bytes(64),
        prop::option::of(elem_bytes(64)),
        any::<u32>(),
        prop::option::of(elem_bytes(64)),
        prop::option::of((any::<i32>(), prop::option::of(name()))),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(key, key_end, flags, data, verdict, timeout_ms)| LowElem {
            key,
            key_end,
            flags,
            // A verdict or data, as lowering makes them.
            data: if verdict.is_some() { None } else { data },
            verdict,
            timeout_ms,
        })
}

fn low_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        Just(Msg::NewTable),
        Just(Msg::DelTable),
        (
            name(),
            prop::option::of((
                any::<u32>(),
                any::<i32>(),
                prop::sample::select(vec!["filter", "nat", "route"]),
                any::<u32>()
            ))
        )
            .prop_map(|(name, hook)| Msg::NewChain { name, hook }),
        name().prop_map(|name| Msg::DelChain { name }),
        name().prop_map(|name| Msg::FlushChain { name }),
        low_set_strategy().prop_map(Msg::NewSet),
        name().prop_map(|name| Msg::DelSet { name }),
        (
            name(),
            prop::option::of(any::<u32>()),
            prop::collection::vec(low_elem(), 0..40)
        )
            .prop_map(|(set, set_id, elems)| Msg::NewElems { set, set_id, elems }),
        (name(), prop::collection::vec(low_elem(), 0..40))
            .prop_map(|(set, elems)| Msg::DelElems { set, elems }),
        (
            name(),
            prop::collection::vec(low_expr(), 0..24),
            prop::collection::vec(any::<u8>(), 0..=256)
        )
            .prop_map(|(chain, exprs, udata)| Msg::NewRule {
                chain,
                exprs,
                udata
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary values in every field of every message kind.
    #[test]
    fn generated_messages_are_byte_identical_to_libnftnl(
        family in prop::sample::select(FAMILIES.to_vec()),
        table in name(),
        msg in low_msg(),
        seq in any::<u32>(),
    ) {
        check_msg(family, &table, &msg, seq);
    }

    /// Whole transactions lowered from generated tables (creating one, and
    /// changing one into another), message by message.
    #[test]
    fn lowered_batches_are_byte_identical_to_libnftnl(a in any::<u64>(), b in any::<u64>()) {
        let (a, b) = (common::generate::gen_table(a), common::generate::gen_table(b));
        for batch in [crate::diff(None, &a).unwrap(), crate::diff(Some(&a), &b).unwrap()] {
            let family = batch.family.nfproto();
            for (i, (_, msg)) in lower(&batch).unwrap().iter().enumerate() {
                let seq = u32::try_from(i).unwrap() + 2;
                check_msg(family, &batch.table, msg, seq);
                if let Msg::NewElems { elems, .. } | Msg::DelElems { elems, .. } = msg {
                    // Lowering's size bound holds for the real encoding.
                    for e in elems {
                        let mut one = Vec::new();
                        let m = Msg::DelElems { set: String::new(), elems: vec![e.clone()] };
                        build(&mut one, family, "", &m, 0).unwrap();
                        let empty = Msg::DelElems { set: String::new(), elems: Vec::new() };
                        let mut none = Vec::new();
                        build(&mut none, family, "", &empty, 0).unwrap();
                        prop_assert!(one.len() - none.len() <= crate::lower::elem_bytes(e));
                    }
                }
            }
        }
    }
}

/// Every message of one dump (or get) answer, as sent by the kernel.
fn dump(sock: &super::Socket, what: Request<'_>, seq: u32) -> Vec<Vec<u8>> {
    sock.send(&request(what, 1, "k8snet-dump", seq).unwrap())
        .unwrap();
    let mut buf = vec![0; 1 << 20];
    let mut out = Vec::new();
    loop {
        let n = sock.recv(&mut buf, true).unwrap().unwrap();
        let mut b = &buf[..n];
        while b.len() >= 16 {
            let len = u32::from_ne_bytes(b[..4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes([b[4], b[5]]);
            assert!((16..=b.len()).contains(&len), "bad message length {len}");
            match ty {
                // NLMSG_DONE
                3 => return out,
                // NLMSG_ERROR
                2 => panic!("the kernel refused {what:?}: {:?}", &b[16..20]),
                _ => out.push(b[..len].to_vec()),
            }
            b = b.get(len.next_multiple_of(4)..).unwrap_or_default();
        }
    }
}

#[test]
fn kernel_dumps_parse_the_same_as_with_libnftnl() {
    k8snet_testnet::kernel_test!();
    let tn = k8snet_testnet::Testnet::new("nftdump").unwrap();
    let table = common::every_feature_table("k8snet-dump");
    let (chains, sets, elems, rules) = tn
        .node()
        .run(|| {
            let mut nft = crate::Nft::new().unwrap();
            nft.apply(&crate::diff(None, &table).unwrap()).unwrap();
            let sock = super::Socket::open().unwrap();
            let chains = dump(&sock, Request::Chains, 1);
            let sets = dump(&sock, Request::Sets, 2);
            let mut elems = 0;
            for (i, m) in sets.iter().enumerate() {
                let set = super::parse_set(m).unwrap();
                let seq = 100 + u32::try_from(i).unwrap();
                for e in dump(&sock, Request::Elements(&set.name), seq) {
                    check_parse(&e);
                    let mut got = Vec::new();
                    super::parse_elems(&e, &mut got).unwrap();
                    elems += got.len();
                }
            }
            let rules = dump(&sock, Request::Rules, 3);
            for m in chains.iter().chain(&sets).chain(&rules) {
                check_parse(m);
            }
            (chains.len(), sets.len(), elems, rules.len())
        })
        .unwrap();
    // Everything the table holds was dumped and compared (sets include the
    // anonymous ones of the rules).
    assert_eq!(chains, table.chains.len());
    assert!(sets > table.sets.len(), "{sets} sets");
    let named: usize = table.sets.values().map(|s| s.elements.len()).sum();
    assert!(elems >= named, "{elems} elements, {named} named");
    let n_rules: usize = table.chains.values().map(|c| c.rules.len()).sum();
    assert_eq!(rules, n_rules);
}
