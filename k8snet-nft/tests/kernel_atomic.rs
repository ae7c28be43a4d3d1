//! A batch that fails midway changes nothing: after valid operations of
//! every kind, a rule jumps to a chain that does not exist. The kernel
//! refuses the whole transaction, the table reads back exactly as before
//! (through our API and `nft -j`), and the error names the failing rule.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use common::{every_feature_table, in_ns, json_summary, key, nft_json, rule, v4};
use k8snet_nft::{Chain, DataType, Error, Family, MapValue, Object, Op, Set, Value, Verdict, diff};
use k8snet_testnet::{Testnet, kernel_test};

#[test]
fn a_failing_batch_changes_nothing_and_names_the_rule() {
    kernel_test!();
    let tn = Testnet::new("nftatomic").unwrap();
    let before = every_feature_table("k8snet-atomic");
    in_ns(tn.node(), |nft| {
        nft.apply(&diff(None, &before).unwrap()).unwrap()
    });
    let json_before = json_summary(&nft_json(tn.node(), "k8snet-atomic"));

    // A valid change touching chains, rules, sets and elements ...
    let mut after = before.clone();
    after.chains.remove("policy-x");
    after.chains.get_mut("input").unwrap().rules.retain(|r| {
        let t = r.to_string();
        !t.contains("policy-x") && !t.contains("@ifaces")
    });
    after.chains.insert(
        "svc-new".into(),
        Chain::regular().with_rule(rule("counter accept")),
    );
    after
        .chains
        .get_mut("svc-web")
        .unwrap()
        .rules
        .push(rule("jump svc-new"));
    after.sets.remove("ifaces");
    after.sets.insert(
        "extra".into(),
        Set::new(vec![DataType::Ipv4Addr]).with_element(key(&[v4("198.18.1.1")])),
    );
    let svc = after.sets.get_mut("svc-ips").unwrap();
    svc.elements.clear();
    let k = key(&[v4("198.19.0.7"), Value::Proto(6), Value::Port(80)]);
    *svc = svc
        .clone()
        .with_mapping(k, MapValue::Verdict(Verdict::Goto("svc-new".into())));
    let mut batch = diff(Some(&before), &after).unwrap();
    assert!(batch.ops.len() > 10, "{batch}");

    // ... then a rule jumping to a missing chain, then more valid operations.
    let at = batch.ops.len() - 2;
    batch.ops.insert(
        at,
        Op::AddRule {
            chain: "svc-web".into(),
            index: 3,
            rule: rule("ip saddr 198.18.0.2 jump missing"),
        },
    );
    batch.ops.push(Op::AddChain {
        name: "late".into(),
        base: None,
    });

    let (err, back) = in_ns(tn.node(), |nft| {
        let err = nft.apply(&batch).expect_err("the batch must fail");
        (err, nft.read_table(Family::Inet, "k8snet-atomic").unwrap())
    });
    let text = err.to_string();
    println!("refused as expected: {text}");
    assert!(
        matches!(&err, Error::Kernel { object: Object::Rule { chain, index: 3 }, .. } if chain == "svc-web"),
        "{text}"
    );
    assert!(text.contains("rule 3 of chain \"svc-web\""), "{text}");
    assert!(
        text.contains("jump target \"missing\" does not exist"),
        "{text}"
    );

    assert_eq!(back.as_ref(), Some(&before), "the kernel changed");
    assert_eq!(
        json_summary(&nft_json(tn.node(), "k8snet-atomic")),
        json_before
    );

    // The same change without the bad rule goes through.
    let good = diff(Some(&before), &after).unwrap();
    let back = in_ns(tn.node(), |nft| {
        nft.apply(&good).unwrap();
        nft.read_table(Family::Inet, "k8snet-atomic").unwrap()
    });
    assert_eq!(back.as_ref(), Some(&after));
}

#[test]
fn tables_that_are_not_ours_are_refused() {
    kernel_test!();
    let tn = Testnet::new("nftowned").unwrap();
    let err = in_ns(tn.node(), |nft| {
        nft.apply(&k8snet_nft::Batch::delete_table(Family::Inet, "filter"))
            .unwrap_err()
    });
    assert!(matches!(err, Error::NotOwned(_)), "{err}");
}
