//! Lowering and raising without a kernel: what goes into registers and set
//! elements, and that the kernel's form of elements and rules comes back
//! as the model.

use std::time::Duration;

use crate::diff::{Batch, Op};
use crate::error::Object;
use crate::lower::{LowElem, LowExpr, low_elems, low_set, lower, lower_rule, rule_udata, uapi};
use crate::model::{Element, Family, MapValue, Rule, Set, SetFlags};
use crate::parse::parse_rule;
use crate::raise::{self, RawRule, RawSet};
use crate::types::{DataType, Key, Value};

fn v4(s: &str) -> Value {
    Value::Ipv4(s.parse().unwrap())
}

/// What the kernel would list for a set we created.
fn raw(set: &Set) -> RawSet {
    let l = low_set("s", 1, set, false);
    RawSet {
        table: "k8snet-t".into(),
        name: "s".into(),
        flags: l.flags,
        key_type: l.key_type,
        key_len: l.key_len,
        data_type: l.data.map(|(t, _)| t),
        data_len: l.data.and_then(|(_, n)| n).unwrap_or(0),
        timeout_ms: l.timeout_ms,
        size: l.size,
    }
}

fn round_trip(set: &Set) -> Set {
    let elements: Vec<_> = set.elements.clone().into_iter().collect();
    let mut elems = low_elems(set, &elements);
    elems.reverse(); // the kernel lists in its own order
    raise::set(&raw(set), &elems).unwrap().unwrap()
}

#[test]
fn one_field_intervals_are_start_and_end_elements() {
    let set = Set::new(vec![DataType::Ipv4Addr])
        .with_flags(SetFlags {
            interval: true,
            ..SetFlags::default()
        })
        .with_range(Key::one(v4("10.0.0.0")), Key::one(v4("10.0.0.255")))
        .with_range(Key::one(v4("10.0.1.0")), Key::one(v4("10.0.1.9")))
        .with_element(Key::one(v4("10.0.2.2")))
        .with_range(Key::one(v4("255.0.0.0")), Key::one(v4("255.255.255.255")));
    let elements: Vec<_> = set.elements.clone().into_iter().collect();
    let low = low_elems(&set, &elements);
    // Three ranges closed by an end element; the last one runs to the top.
    assert_eq!(low.len(), 7);
    let ends: Vec<&LowElem> = low
        .iter()
        .filter(|e| e.flags == uapi::SET_ELEM_INTERVAL_END)
        .collect();
    assert_eq!(ends[0].key, [10, 0, 1, 0]);
    assert_eq!(ends[1].key, [10, 0, 1, 10]);
    assert_eq!(ends[2].key, [10, 0, 2, 3]);
    assert_eq!(round_trip(&set), set);
}

#[test]
fn concatenated_intervals_carry_their_end() {
    let set = Set::new(vec![DataType::Ipv4Addr, DataType::InetService])
        .with_flags(SetFlags {
            interval: true,
            ..SetFlags::default()
        })
        .with_range(
            Key(vec![v4("10.0.0.0"), Value::Port(80)]),
            Key(vec![v4("10.0.0.255"), Value::Port(90)]),
        );
    let l = low_set("s", 1, &set, false);
    assert_ne!(l.flags & uapi::SET_CONCAT, 0);
    assert_eq!(l.concat, [4, 2]);
    assert_eq!(l.key_len, 8);
    assert_eq!(round_trip(&set), set);
}

#[test]
fn maps_timeouts_and_type_ids_round_trip() {
    let mut vmap = Set::verdict_map(vec![
        DataType::Ipv4Addr,
        DataType::InetProto,
        DataType::InetService,
    ]);
    vmap = vmap.with_mapping(
        Key(vec![v4("198.19.0.1"), Value::Proto(6), Value::Port(80)]),
        MapValue::Verdict(crate::Verdict::Goto("svc".into())),
    );
    assert_eq!(
        low_set("m", 1, &vmap, false).key_type,
        (7 << 12) | (12 << 6) | 13
    );
    assert_eq!(round_trip(&vmap), vmap);

    let slots = Set::map(
        vec![DataType::Integer(32)],
        vec![DataType::Ipv4Addr, DataType::InetService],
    )
    .with_mapping(
        Key::one(Value::Int(3)),
        MapValue::Data(Key(vec![v4("198.18.0.3"), Value::Port(8080)])),
    );
    assert_eq!(round_trip(&slots), slots);

    let mut timed = Set::new(vec![DataType::Ipv4Addr]).with_timeout(Duration::from_secs(30));
    timed.elements.insert(
        Key::one(v4("198.18.0.2")),
        Element {
            timeout: Some(Duration::from_millis(1500)),
            ..Element::default()
        },
    );
    timed = timed.with_element(Key::one(v4("198.18.0.3")));
    assert_eq!(round_trip(&timed), timed);
}

#[test]
fn a_jhash_dnat_loads_the_key_side_by_side_and_reads_address_and_port() {
    let rule =
        parse_rule("dnat ip to jhash ip saddr . tcp sport mod 7 seed 0x1 map @slots").unwrap();
    let mut batch = Batch::new(Family::Inet, "k8snet-t");
    batch.know_set(
        "slots",
        &Set::map(
            vec![DataType::Integer(32)],
            vec![DataType::Ipv4Addr, DataType::InetService],
        ),
    );
    let (pre, exprs) = lower_rule(&batch, &rule, &mut 0);
    assert!(pre.is_empty());
    let r = uapi::REG32_00;
    let want = [
        LowExpr::Meta { key: 15, dreg: r },
        LowExpr::Cmp {
            sreg: r,
            op: 0,
            data: vec![2],
        },
        LowExpr::Meta { key: 16, dreg: r },
        LowExpr::Cmp {
            sreg: r,
            op: 0,
            data: vec![6],
        },
        LowExpr::Payload {
            base: 1,
            offset: 12,
            len: 4,
            dreg: r,
        },
        LowExpr::Payload {
            base: 2,
            offset: 0,
            len: 2,
            dreg: r + 1,
        },
        LowExpr::Hash {
            sreg: r,
            len: 8,
            modulus: 7,
            seed: 1,
            offset: 0,
            dreg: r,
        },
        LowExpr::Lookup {
            sreg: r,
            dreg: Some(r),
            set: "slots".into(),
            set_id: None,
            invert: false,
        },
        LowExpr::Nat {
            kind: 1,
            family: 2,
            reg_addr: r,
            reg_proto: Some(r + 1),
        },
    ];
    assert_eq!(exprs, want);
}

#[test]
fn anonymous_sets_are_created_in_the_batch_and_capped() {
    let rule = parse_rule("tcp dport { 80, 443 } accept").unwrap();
    let mut batch = Batch::new(Family::Inet, "k8snet-t");
    batch.push(Op::AddRule {
        chain: "c".into(),
        index: 1,
        rule: rule.clone(),
    });
    let msgs = lower(&batch).unwrap();
    assert_eq!(msgs.len(), 3, "set, its elements, the rule");
    for i in 0..=crate::MAX_ANON_SETS_PER_BATCH {
        batch.push(Op::AddRule {
            chain: "c".into(),
            index: i + 2,
            rule: rule.clone(),
        });
    }
    let err = lower(&batch).unwrap_err().to_string();
    assert!(err.contains("anonymous sets in one batch"), "{err}");
}

#[test]
fn rule_text_and_comment_live_in_userdata() {
    let object = Object::Rule {
        chain: "c".into(),
        index: 1,
    };
    let rule = parse_rule("ip saddr 198.18.0.2 counter accept comment \"from a\"").unwrap();
    let udata = rule_udata(&object, &rule).unwrap();
    // nft's comment TLV first (NUL-terminated), then ours.
    assert_eq!(&udata[..2], [uapi::UDATA_RULE_COMMENT, 7]);
    let raw = RawRule {
        table: "k8snet-t".into(),
        chain: "c".into(),
        handle: 4,
        udata,
    };
    assert_eq!(raise::rule(&raw, 1).unwrap(), rule);

    let long: Rule = parse_rule(&format!("counter comment \"{}\"", "x".repeat(120))).unwrap();
    let mut long = long;
    long.exprs = vec![crate::Expr::Counter; 40];
    assert!(rule_udata(&object, &long).is_err());

    let foreign = RawRule {
        udata: vec![0, 2, b'x', 0],
        ..raw
    };
    let e = raise::rule(&foreign, 2).unwrap_err().to_string();
    assert!(e.contains("was not written by k8snet-nft"), "{e}");
}

#[test]
fn a_huge_element_op_is_split_into_messages_that_fit() {
    let set = Set::map(vec![DataType::Integer(32)], vec![DataType::Ipv4Addr]);
    let elements: Vec<(Key, Element)> = (0..20_000u64)
        .map(|i| {
            let e = Element {
                value: Some(MapValue::Data(Key::one(v4("198.18.0.1")))),
                ..Element::default()
            };
            (Key::one(Value::Int(i)), e)
        })
        .collect();
    let mut batch = Batch::new(Family::Inet, "k8snet-t");
    batch.know_set("m", &set);
    batch.push(Op::AddElements {
        set: "m".into(),
        elements,
    });
    let msgs = lower(&batch).unwrap();
    assert!(msgs.len() > 1);
    let mut total = 0;
    for (object, msg) in &msgs {
        let crate::lower::Msg::NewElems { elems, .. } = msg else {
            panic!("{msg:?}")
        };
        let bytes: usize = elems.iter().map(crate::lower::elem_bytes).sum();
        assert!(bytes <= crate::lower::ELEMENT_MESSAGE_BYTES, "{object}");
        total += elems.len();
    }
    assert_eq!(total, 20_000);
}

#[test]
fn ct_status_loads_the_status_word_and_tests_its_bits() {
    let batch = Batch::new(Family::Inet, "k8snet-t");
    let r = uapi::REG32_00;
    let bits_of = |key: u32, bits: u32| {
        vec![
            LowExpr::Ct { key, dreg: r },
            LowExpr::Bitwise {
                sreg: r,
                dreg: r,
                mask: bits.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            },
            LowExpr::Cmp {
                sreg: r,
                op: 1,
                data: vec![0; 4],
            },
        ]
    };
    // NFT_CT_STATUS is key 2; IPS_SRC_NAT 0x10, IPS_DST_NAT 0x20.
    let (_, exprs) = lower_rule(&batch, &parse_rule("ct status snat,dnat").unwrap(), &mut 0);
    assert_eq!(exprs, bits_of(2, 0x30));
    let (_, exprs) = lower_rule(&batch, &parse_rule("ct status dnat").unwrap(), &mut 0);
    assert_eq!(exprs, bits_of(2, 0x20));
    // `ct state` is key 0 with the same shape.
    let (_, exprs) = lower_rule(&batch, &parse_rule("ct state new").unwrap(), &mut 0);
    assert_eq!(exprs, bits_of(0, 8));
}

#[test]
fn fib_saddr_and_daddr_type_load_the_route_type_of_each_address() {
    let batch = Batch::new(Family::Inet, "k8snet-t");
    let r = uapi::REG32_00;
    // NFTA_FIB_F_SADDR is 1, NFTA_FIB_F_DADDR 2; NFT_FIB_RESULT_ADDRTYPE 3;
    // RTN_LOCAL (2) compared in host order, as nft writes it.
    for (text, flags) in [("fib saddr type local", 1), ("fib daddr type local", 2)] {
        let (pre, exprs) = lower_rule(&batch, &parse_rule(text).unwrap(), &mut 0);
        assert!(pre.is_empty());
        assert_eq!(
            exprs,
            [
                LowExpr::Fib {
                    flags,
                    result: 3,
                    dreg: r
                },
                LowExpr::Cmp {
                    sreg: r,
                    op: 0,
                    data: 2u32.to_ne_bytes().to_vec()
                },
            ],
            "{text}"
        );
    }
}
