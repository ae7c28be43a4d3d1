//! A ruleset using every feature is applied in a test namespace, then
//! checked twice: read back through our API (equal to what was applied) and
//! listed by the real `nft -j list table` (same chains, sets, element and
//! rule counts). The rendered text also passes `nft -c -f`.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use common::{every_feature_table, in_ns, json_summary, model_summary, nft_json};
use k8snet_nft::{Family, diff, render};
use k8snet_testnet::{Testnet, kernel_test};

#[test]
fn every_feature_applies_and_reads_back_equal() {
    kernel_test!();
    let tn = Testnet::new("nftall").unwrap();
    let table = every_feature_table("k8snet-all");

    let (stats, back) = in_ns(tn.node(), |nft| {
        let batch = diff(None, &table).unwrap();
        let stats = nft.apply(&batch).unwrap_or_else(|e| panic!("{e}\n{batch}"));
        (stats, nft.read_table(Family::Inet, "k8snet-all").unwrap())
    });
    assert!(stats.messages > 40, "{stats:?}");
    let back = back.expect("the table exists");
    assert_eq!(
        back,
        table,
        "readback differs:\n{}\nvs applied\n{}",
        render(&back),
        render(&table)
    );

    // A second sync finds nothing to do.
    let again = in_ns(tn.node(), |nft| nft.sync(&table).unwrap());
    assert_eq!(again.messages, 0);

    let j = nft_json(tn.node(), "k8snet-all");
    assert_eq!(json_summary(&j), model_summary(&table), "nft -j: {j}");
    // nft sees our rule comments.
    let text = j.to_string();
    assert!(text.contains("\"comment\":\"maglev slots\""), "{text}");
}

#[test]
fn rendered_text_is_valid_nft_input() {
    kernel_test!();
    let tn = Testnet::new("nftcheck").unwrap();
    let table = every_feature_table("k8snet-render");
    let path = std::env::temp_dir().join(format!("k8snet-nft-render-{}.nft", std::process::id()));
    std::fs::write(&path, render(&table)).unwrap();
    // `-c`: parse and evaluate in the test namespace, commit nothing.
    let out = tn.node().cmd(&["nft", "-c", "-f", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    out.unwrap_or_else(|e| panic!("{e}\n{}", render(&table)));
}
