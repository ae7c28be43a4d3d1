//! Properties of `diff` without root: playing `diff(a, b)` on `a` (with the
//! kernel's rules, `Batch::apply_to`) gives `b`; equal states give an empty
//! batch; element changes are exactly the elements that differ. Tables are
//! generated from a seed over a pool of chains, sets and rules.

use std::collections::HashSet;

mod common;

use common::generate::{gen_table, ip};
use k8snet_nft::{
    Chain, DataType, Element, Family, Key, Op, Rule, Set, SetFlags, Table, diff, parse_rule,
    rule_text,
};
use proptest::prelude::*;

/// Element keys of a set, if present.
fn keys(t: &Table, set: &str) -> HashSet<(Key, Element)> {
    t.sets
        .get(set)
        .map(|s| {
            s.elements
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect()
        })
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn applying_the_diff_gives_the_new_state(a in any::<u64>(), b in any::<u64>()) {
        let (a, b) = (gen_table(a), gen_table(b));
        let batch = diff(Some(&a), &b).unwrap();
        let got = batch.apply_to(Some(&a)).unwrap_or_else(|e| panic!("{e}\n{batch}"));
        prop_assert_eq!(got.as_ref(), Some(&b), "batch:\n{}", batch);
        let fresh = diff(None, &b).unwrap().apply_to(None).unwrap();
        prop_assert_eq!(fresh.as_ref(), Some(&b));
    }

    #[test]
    fn equal_states_give_an_empty_batch(a in any::<u64>()) {
        let a = gen_table(a);
        let batch = diff(Some(&a), &a).unwrap();
        prop_assert!(batch.is_empty(), "{}", batch);
    }

    #[test]
    fn element_changes_are_exactly_the_differing_elements(a in any::<u64>(), b in any::<u64>()) {
        let (a, b) = (gen_table(a), gen_table(b));
        let batch = diff(Some(&a), &b).unwrap();
        for (name, set) in &b.sets {
            let same_spec = a.sets.get(name).is_some_and(|o| {
                let (mut x, mut y) = (o.clone(), set.clone());
                x.elements.clear();
                y.elements.clear();
                x == y
            });
            let (old, new) = (keys(&a, name), keys(&b, name));
            let added: usize = batch.ops.iter().map(|op| match op {
                Op::AddElements { set: s, elements } if s == name => elements.len(),
                _ => 0,
            }).sum();
            let deleted: usize = batch.ops.iter().map(|op| match op {
                Op::DeleteElements { set: s, elements } if s == name => elements.len(),
                _ => 0,
            }).sum();
            if same_spec {
                prop_assert_eq!(added, new.difference(&old).count());
                prop_assert_eq!(deleted, old.difference(&new).count());
            } else {
                prop_assert_eq!(added, new.len());
                prop_assert_eq!(deleted, 0);
            }
        }
    }

    #[test]
    fn any_text_parses_or_errs_without_panicking(s in "[ -~]{0,80}") {
        let _ = parse_rule(&s);
    }

    #[test]
    fn token_soup_parses_or_errs_without_panicking(
        words in prop::collection::vec(prop::sample::select(vec![
            "ip", "saddr", "daddr", "tcp", "dport", "th", ".", "@s", "{", "}", ",", ":", "vmap",
            "jhash", "mod", "seed", "0x1", "numgen", "random", "map", "dnat", "to", "!=", "-",
            "1.2.3.4", "80", "80-90", "10.0.0.0/8", "goto", "c", "timeout", "1s", "update",
            "comment", "\"x\"", "ct", "state", "mark", "set", "meta", "log", "prefix",
        ]), 0..16)
    ) {
        let _ = parse_rule(&words.join(" "));
    }

    #[test]
    fn rule_text_parses_back(a in any::<u64>()) {
        for chain in gen_table(a).chains.values() {
            for rule in &chain.rules {
                let back: Rule = rule_text(rule).parse().unwrap();
                prop_assert_eq!(&back, rule);
            }
        }
    }
}

#[test]
fn unchanged_chains_are_not_touched() {
    let a = Table::new(Family::Inet, "k8snet-x")
        .with_chain(
            "keep",
            Chain::regular().with_rule(parse_rule("counter").unwrap()),
        )
        .with_chain(
            "edit",
            Chain::regular().with_rule(parse_rule("counter").unwrap()),
        );
    let mut b = a.clone();
    b.chains
        .get_mut("edit")
        .unwrap()
        .rules
        .push(parse_rule("drop").unwrap());
    let batch = diff(Some(&a), &b).unwrap();
    let text = batch.to_string();
    assert_eq!(
        text,
        "flush chain inet k8snet-x edit\n\
         add rule inet k8snet-x edit counter\n\
         add rule inet k8snet-x edit drop\n"
    );
}

#[test]
fn a_set_that_changes_type_is_recreated_after_its_rules_go() {
    let s1 = Set::new(vec![DataType::Ipv4Addr]).with_element(Key::one(ip(0)));
    let s2 = Set::new(vec![DataType::Ipv4Addr, DataType::InetService]);
    let a = Table::new(Family::Inet, "k8snet-x")
        .with_set("s", s1)
        .with_chain(
            "c",
            Chain::regular().with_rule(parse_rule("ip saddr @s drop").unwrap()),
        );
    let b = Table::new(Family::Inet, "k8snet-x")
        .with_set("s", s2)
        .with_chain(
            "c",
            Chain::regular().with_rule(parse_rule("ip saddr . tcp dport @s drop").unwrap()),
        );
    let batch = diff(Some(&a), &b).unwrap();
    assert_eq!(
        batch.to_string(),
        "flush chain inet k8snet-x c\n\
         delete set inet k8snet-x s\n\
         add set inet k8snet-x s { type ipv4_addr . inet_service; }\n\
         add rule inet k8snet-x c ip saddr . tcp dport @s drop\n"
    );
    assert_eq!(batch.apply_to(Some(&a)).unwrap(), Some(b));
}

#[test]
fn dynamic_elements_learnt_by_the_packet_path_are_kept() {
    let dynamic = Set::new(vec![DataType::Ipv4Addr]).with_flags(SetFlags {
        dynamic: true,
        ..SetFlags::default()
    });
    let desired = Table::new(Family::Inet, "k8snet-x").with_set("seen", dynamic.clone());
    let kernel = Table::new(Family::Inet, "k8snet-x")
        .with_set("seen", dynamic.with_element(Key::one(ip(1))));
    assert!(diff(Some(&kernel), &desired).unwrap().is_empty());
}

#[test]
fn invalid_states_are_refused_with_the_object_named() {
    let t = Table::new(Family::Inet, "k8snet-x").with_chain(
        "c",
        Chain::regular().with_rule(parse_rule("jump nowhere").unwrap()),
    );
    let e = diff(None, &t).unwrap_err().to_string();
    assert_eq!(
        e,
        "rule 1 of chain \"c\": jump target \"nowhere\" does not exist"
    );
    let t = Table::new(Family::Inet, "k8snet-x").with_set(
        "s",
        Set::new(vec![DataType::InetService]).with_element(Key::one(ip(0))),
    );
    let e = diff(None, &t).unwrap_err().to_string();
    assert!(e.starts_with("element 198.18.0.1 of set \"s\": key"), "{e}");
    let t = Table::new(Family::Inet, "bad name");
    assert!(diff(None, &t).is_err());
    // `ct status` with no bit would match nothing: refused.
    let empty = k8snet_nft::Rule::new(vec![k8snet_nft::Expr::CtStatus(
        k8snet_nft::CtStatus::default(),
    )]);
    let t = Table::new(Family::Inet, "k8snet-x").with_chain("c", Chain::regular().with_rule(empty));
    let e = diff(None, &t).unwrap_err().to_string();
    assert_eq!(e, "rule 1 of chain \"c\": ct status needs a status bit");
}
