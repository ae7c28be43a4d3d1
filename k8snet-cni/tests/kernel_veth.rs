//! The veth pair ADD creates, as the kernel sees it: the MACs the result
//! reports are the links' (ADD chooses them and does not read them back),
//! locally administered unicast ones unless the runtime asks for one, and
//! marked as set rather than random (`addr_assign_type` 3); each
//! end has one queue allocated (`numtxqueues`/`numrxqueues` 1); the MTU a
//! 1.1.0 result reports is the links'. A step that fails after the pair
//! exists (a route the kernel refuses, in the batch that configures the
//! container interface) is reported with its own message and leaves no
//! link, address or IPAM reservation behind.

#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::path::Path;

use common::*;
use k8snet_cni::linux::Bridge;
use k8snet_testnet::{Netns, Testnet};
use serde_json::{Value, json};

fn conf(data: &Path, version: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version, "name": "vt", "type": "k8snet-bridge", "bridge": "kbr0",
        "isGateway": true,
        "ipam": {"type": "k8snet-host-local", "dataDir": data,
                 "ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd00:18::/64"}]],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// `ip -j -d link show dev NAME` in `ns`.
fn link(ns: &Netns, name: &str) -> Value {
    let text = ns.ip(&["-j", "-d", "link", "show", "dev", name]).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v[0].clone()
}

fn local_unicast(mac: &str) -> bool {
    let first = u8::from_str_radix(&mac[..2], 16).unwrap();
    first & 0x01 == 0 && first & 0x02 == 0x02
}

fn node_veths(node: &Netns) -> Vec<String> {
    node.links()
        .unwrap()
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .collect()
}

#[test]
fn result_macs_and_mtus_are_the_links_and_each_end_has_one_queue() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cniveth").unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|p| tn.add_netns(p).unwrap());
    let node = tn.node();
    let data = TempDir::new("veth");

    // 1.0.0 (no MTU in the result), 1.1.0 with a configured MTU, and
    // 1.1.0 with a MAC the runtime asks for.
    let cases = [
        (&a, "a", conf(&data.0, "1.0.0", json!({}))),
        (&b, "b", conf(&data.0, "1.1.0", json!({"mtu": 1400}))),
        (
            &c,
            "c",
            conf(
                &data.0,
                "1.1.0",
                json!({"runtimeConfig": {"mac": "0a:58:c6:12:00:42"}}),
            ),
        ),
    ];
    let mut seen = Vec::new();
    for (pod, id, cf) in &cases {
        let r = run_ours(node, &Bridge, &env("ADD", id, Some(&pod.path()), "/x"), cf);
        assert!(r.ok(), "ADD {id}: {r:?}");
        let ifs = r.stdout["interfaces"].as_array().unwrap();
        let host_name = ifs[1]["name"].as_str().unwrap();
        let host = link(node, host_name);
        let cont = link(pod, "eth0");
        let bridge = link(node, "kbr0");
        assert_eq!(ifs[1]["mac"], host["address"], "{id}: host end {host}");
        assert_eq!(ifs[2]["mac"], cont["address"], "{id}: container end {cont}");
        assert_eq!(ifs[0]["mac"], bridge["address"], "{id}: bridge {bridge}");
        for (what, l) in [("host end", &host), ("container end", &cont)] {
            assert_eq!(l["num_tx_queues"], 1, "{id}: {what} {l}");
            assert_eq!(l["num_rx_queues"], 1, "{id}: {what} {l}");
        }
        // The host end is up, on the bridge, and carries its alias.
        assert_eq!(host["master"], "kbr0", "{id}: {host}");
        assert!(
            host["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "{id}: {host}"
        );
        assert_eq!(
            host["ifalias"],
            format!("k8snet-cni/vt/{id}/eth0"),
            "{host}"
        );
        // Set by the creator (3, NET_ADDR_SET), not random (1): what udev's
        // MACAddressPolicy leaves alone. `ip netns exec` mounts the
        // namespace's own /sys.
        for (ns, dev) in [(node, host_name), (*pod, "eth0")] {
            let t = ns
                .cmd(&["cat", &format!("/sys/class/net/{dev}/addr_assign_type")])
                .unwrap();
            assert_eq!(t.trim(), "3", "{id}: {dev}");
        }
        let host_mac = ifs[1]["mac"].as_str().unwrap();
        assert!(local_unicast(host_mac), "{id}: {host_mac}");
        let cont_mac = ifs[2]["mac"].as_str().unwrap();
        if *id == "c" {
            assert_eq!(cont_mac, "0a:58:c6:12:00:42");
        } else {
            assert!(local_unicast(cont_mac), "{id}: {cont_mac}");
        }
        seen.push(host_mac.to_owned());
        seen.push(cont_mac.to_owned());
        match *id {
            "a" => {
                for i in ifs {
                    assert!(i.get("mtu").is_none(), "1.0.0 reports no MTU: {i}");
                }
            }
            "b" => {
                assert_eq!(ifs[1]["mtu"], 1400);
                assert_eq!(ifs[2]["mtu"], 1400);
                assert_eq!(host["mtu"], 1400);
                assert_eq!(cont["mtu"], 1400);
            }
            _ => {
                assert_eq!(ifs[1]["mtu"], host["mtu"]);
                assert_eq!(ifs[2]["mtu"], cont["mtu"]);
                assert_eq!(ifs[0]["mtu"], bridge["mtu"]);
            }
        }
    }
    // Chosen afresh for every pair.
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "{seen:?}");
}

#[test]
fn a_route_refused_after_the_pair_exists_is_reported_and_leaves_nothing() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnivfail").unwrap();
    let pod = tn.add_netns("p").unwrap();
    let node = tn.node();
    let data = TempDir::new("vfail");
    // A gateway outside every subnet of the interface: the kernel refuses
    // the route (the address and the link-up before it in the same batch
    // were applied).
    let mut c = conf(&data.0, "1.0.0", json!({}));
    c["ipam"]["routes"] = json!([
        {"dst": "0.0.0.0/0"},
        {"dst": "198.19.0.0/17", "gw": "203.0.113.1"}
    ]);
    let r = run_ours(node, &Bridge, &env("ADD", "f", Some(&pod.path()), "/x"), &c);
    assert!(!r.ok(), "{r:?}");
    assert_eq!(r.code(), Some(999), "{r:?}");
    assert!(
        r.msg()
            .starts_with("failed to add route 198.19.0.0/17 on \"eth0\": "),
        "{r:?}"
    );
    assert!(node_veths(node).is_empty(), "{:?}", node.links());
    assert_eq!(pod.links().unwrap(), ["lo"]);
    let net = data.0.join("vt");
    let left: Vec<String> = std::fs::read_dir(&net)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("198.") || n.starts_with("fd00"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "IPAM reservations left: {left:?}");

    // The same attachment then succeeds with a route the kernel takes.
    c["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    let r = run_ours(node, &Bridge, &env("ADD", "f", Some(&pod.path()), "/x"), &c);
    assert!(r.ok(), "{r:?}");
    assert_eq!(node_veths(node).len(), 1);
}
