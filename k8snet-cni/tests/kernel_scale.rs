//! The bridge plugin at the edges a review found, in namespaces made by
//! k8snet-testnet: an IPAM result with hundreds of routes (more answers
//! than one datagram's worth fits the netlink socket's receive buffer) is
//! configured completely, at 1.0.0 and at 1.1.0 dual-stack; a route the
//! kernel refuses deep in such a result is reported with its own error and
//! leaves nothing behind; a requested MAC that is multicast or zero is
//! refused before anything is made; GC of one network leaves alone the unlabelled
//! veths of another network's ADD in flight and the reference plugin's,
//! and still removes its own network's leftovers.

#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use k8snet_cni::bridge::veth_group;
use k8snet_cni::linux::Bridge;
use k8snet_testnet::{Netns, Testnet};
use serde_json::{Value, json};

/// Network `name`, IPv4 only or dual-stack, with `routes` from IPAM.
fn conf(data: &Path, name: &str, version: &str, dual: bool, routes: Value) -> Value {
    let mut ranges = vec![json!([{"subnet": "198.18.0.0/24"}])];
    if dual {
        ranges.push(json!([{"subnet": "fd00:18::/64"}]));
    }
    json!({
        "cniVersion": version, "name": name, "type": "k8snet-bridge", "bridge": "kbr0",
        "isGateway": true,
        "ipam": {"type": "k8snet-host-local", "dataDir": data,
                 "ranges": ranges, "routes": routes}
    })
}

/// `n` distinct IPv4 destinations `10.a.b.0/24`.
fn v4_dsts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect()
}

/// `n` distinct IPv6 destinations `fd00:99:i::/64` (`i` from 1: as the
/// kernel shows them).
fn v6_dsts(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("fd00:99:{i:x}::/64")).collect()
}

fn routes(dsts: &[String]) -> Value {
    Value::Array(dsts.iter().map(|d| json!({"dst": d})).collect())
}

/// The routes of the pod's `eth0` of one family (`-4`/`-6`), from
/// `ip -j route`: destination to gateway.
fn pod_routes(pod: &Netns, family: &str) -> Vec<(String, Option<String>)> {
    let text = pod
        .ip(&["-j", family, "route", "show", "dev", "eth0"])
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dst"].as_str().unwrap().to_owned(),
                r["gateway"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Every destination of `want` is installed, via `gw`, exactly once.
fn assert_installed(pod: &Netns, family: &str, want: &[String], gw: &str) {
    let have = pod_routes(pod, family);
    let via: Vec<&String> = have
        .iter()
        .filter(|(_, g)| g.as_deref() == Some(gw))
        .map(|(d, _)| d)
        .collect();
    let set: BTreeSet<&String> = via.iter().copied().collect();
    assert_eq!(set.len(), via.len(), "a route twice: {via:?}");
    let missing: Vec<&String> = want.iter().filter(|d| !set.contains(d)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} routes missing, e.g. {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(via.len(), want.len(), "{family}: {have:?}");
}

fn node_veths(node: &Netns) -> Vec<String> {
    node.links()
        .unwrap()
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .collect()
}

fn ip_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("198.") || n.starts_with("fd00"))
                .collect()
        })
        .unwrap_or_default()
}

/// 300 and 600 IPv4 routes at 1.0.0: all installed via the gateway (the
/// previous single datagram failed with ENOBUFS past about 255), and DEL
/// then works.
#[test]
fn hundreds_of_routes_are_all_installed() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnimany").unwrap();
    for n in [300, 600] {
        let pod = tn.add_netns(&format!("p{n}")).unwrap();
        let node = tn.node();
        let data = TempDir::new("many");
        let dsts = v4_dsts(n);
        let c = conf(&data.0, "kt", "1.0.0", false, routes(&dsts));
        let id = format!("m{n}");
        let r = run_ours(node, &Bridge, &env("ADD", &id, Some(&pod.path()), "/x"), &c);
        assert!(r.ok(), "ADD with {n} routes: {r:?}");
        assert_eq!(r.stdout["routes"].as_array().unwrap().len(), n);
        assert_installed(&pod, "-4", &dsts, "198.18.0.1");
        let d = run_ours(
            node,
            &Bridge,
            &env("DEL", &id, Some(&pod.path()), "/x"),
            &with_prev(&c, &r.stdout),
        );
        assert!(d.ok(), "DEL: {d:?}");
    }
}

/// 1.1.0 dual-stack with 300 IPv4 and 300 IPv6 routes (603 requests in
/// the batch, with the link read back at its end for the MTU): all
/// installed via their family's gateway, and the result carries the
/// container interface's MTU read back after them.
#[test]
fn hundreds_of_dual_stack_routes_are_all_installed_at_1_1_0() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnimany6").unwrap();
    let pod = tn.add_netns("p").unwrap();
    let node = tn.node();
    let data = TempDir::new("many6");
    let (d4, d6) = (v4_dsts(300), v6_dsts(300));
    let all: Vec<String> = d4.iter().chain(&d6).cloned().collect();
    let c = conf(&data.0, "kt", "1.1.0", true, routes(&all));
    let r = run_ours(node, &Bridge, &env("ADD", "d", Some(&pod.path()), "/x"), &c);
    assert!(r.ok(), "{r:?}");
    assert_installed(&pod, "-4", &d4, "198.18.0.1");
    assert_installed(&pod, "-6", &d6, "fd00:18::1");
    let eth0 = &r.stdout["interfaces"][2];
    assert_eq!(eth0["name"], "eth0", "{}", r.stdout);
    assert_eq!(eth0["mtu"], 1500, "{}", r.stdout);
    let addrs = pod.ip(&["-o", "addr", "show", "dev", "eth0"]).unwrap();
    assert!(
        addrs.contains("198.18.0.") && addrs.contains("fd00:18::"),
        "{addrs}"
    );
}

/// A route the kernel refuses (its gateway is not on any link) as the
/// 301st of 400: ADD fails with that route's own error (not a socket
/// error), and the rollback leaves no veth, no container interface and no
/// reserved address.
#[test]
fn a_refused_route_deep_in_a_large_batch_is_reported_as_itself() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnideep").unwrap();
    let pod = tn.add_netns("p").unwrap();
    let node = tn.node();
    let data = TempDir::new("deep");
    let mut rs = routes(&v4_dsts(400));
    rs[300] = json!({"dst": "10.1.44.0/24", "gw": "203.0.113.1"});
    let c = conf(&data.0, "kt", "1.1.0", true, rs);
    let r = run_ours(node, &Bridge, &env("ADD", "x", Some(&pod.path()), "/x"), &c);
    assert!(!r.ok(), "{r:?}");
    let msg = r.msg().to_owned();
    assert!(
        msg.contains("failed to add route 10.1.44.0/24 on \"eth0\""),
        "{msg}"
    );
    assert!(msg.contains("unreachable"), "{msg}");
    assert_ne!(r.code(), Some(5), "{r:?}");
    assert!(node_veths(node).is_empty(), "{:?}", node.links());
    assert_eq!(pod.links().unwrap(), ["lo"]);
    assert!(ip_files(&data.0.join("kt")).is_empty());
}

/// The interface group of a link in `ns`, as `ip -j -d link` reports it
/// ("default" for 0).
fn link_group(ns: &Netns, name: &str) -> String {
    let v: Value =
        serde_json::from_str(&ns.ip(&["-j", "-d", "link", "show", name]).unwrap()).unwrap();
    match &v[0]["group"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn gc(node: &Netns, data: &Path, network: &str, valid: Value) {
    let mut c = conf(data, network, "1.1.0", false, json!([]));
    c["cni.dev/valid-attachments"] = valid;
    let r = run_ours(node, &Bridge, &env("GC", "", None, "/x"), &c);
    assert!(r.ok(), "GC {network}: {r:?}");
}

/// GC of network `other` leaves alone: a veth in the state network `kt`'s
/// ADD leaves it between create and enslave (our name shape, no alias, no
/// bridge, in `kt`'s creation group; its peer in a pod), and one as the
/// reference plugin makes it (same name shape, group 0). GC of `kt` then
/// removes the first (a leftover of a killed ADD of `kt`), still not the
/// second, and not `kt`'s finished attachment, whose host end is back in
/// the default group.
#[test]
fn gc_removes_only_its_own_networks_unlabelled_veths() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnigcgrp").unwrap();
    let p1 = tn.add_netns("p1").unwrap();
    let p2 = tn.add_netns("p2").unwrap();
    let p3 = tn.add_netns("p3").unwrap();
    let node = tn.node();
    let data = TempDir::new("gcgrp");
    let kt_group = veth_group("kt");
    assert_ne!(kt_group, veth_group("other"));
    let group = kt_group.to_string();
    node.ip(&[
        "link",
        "add",
        "vethdeadbeef",
        "group",
        &group,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        p1.name(),
    ])
    .unwrap();
    node.ip(&[
        "link",
        "add",
        "vethfeedf00d",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        p2.name(),
    ])
    .unwrap();
    assert_eq!(link_group(node, "vethdeadbeef"), group);
    assert_eq!(link_group(node, "vethfeedf00d"), "default");

    // A finished attachment of `kt`: its host end is in the default group.
    let c = conf(&data.0, "kt", "1.1.0", false, json!([]));
    let r = run_ours(
        node,
        &Bridge,
        &env("ADD", "live", Some(&p3.path()), "/x"),
        &c,
    );
    assert!(r.ok(), "{r:?}");
    let live = r.stdout["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(link_group(node, &live), "default");

    let valid = json!([{"containerID": "live", "ifname": "eth0"}]);
    gc(node, &data.0, "other", valid.clone());
    let mut left = node_veths(node);
    left.sort();
    let mut want = vec![
        "vethdeadbeef".to_owned(),
        "vethfeedf00d".to_owned(),
        live.clone(),
    ];
    want.sort();
    assert_eq!(left, want);

    gc(node, &data.0, "kt", valid);
    wait_until("kt's leftover to go", || {
        !node_veths(node).contains(&"vethdeadbeef".to_owned())
    });
    let mut left = node_veths(node);
    left.sort();
    let mut want = vec!["vethfeedf00d".to_owned(), live];
    want.sort();
    assert_eq!(left, want);
    assert_eq!(p1.links().unwrap(), ["lo"]);
    assert!(p2.links().unwrap().contains(&"eth0".to_owned()));
    assert!(p3.links().unwrap().contains(&"eth0".to_owned()));
}

/// A requested MAC that no Ethernet interface may have (multicast, or all
/// zero) is refused before anything is made, as an invalid configuration
/// (code 7) naming the field it came from; a unicast one is the container
/// interface's.
#[test]
fn a_requested_multicast_or_zero_mac_is_refused_up_front() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnibadmac").unwrap();
    let pod = tn.add_netns("p").unwrap();
    let node = tn.node();
    let data = TempDir::new("badmac");
    for m in ["01:00:5e:00:00:01", "00:00:00:00:00:00"] {
        let mut c = conf(&data.0, "kt", "1.0.0", false, json!([]));
        c["runtimeConfig"] = json!({"mac": m});
        let r = run_ours(node, &Bridge, &env("ADD", "m", Some(&pod.path()), "/x"), &c);
        assert_eq!(r.code(), Some(7), "{m}: {r:?}");
        assert!(r.msg().starts_with("runtimeConfig.mac: "), "{r:?}");
        assert!(r.msg().contains(m), "{r:?}");
        assert!(node_veths(node).is_empty(), "{:?}", node.links());
        assert_eq!(pod.links().unwrap(), ["lo"]);
        assert!(ip_files(&data.0.join("kt")).is_empty());
    }
    let mut c = conf(&data.0, "kt", "1.0.0", false, json!([]));
    c["runtimeConfig"] = json!({"mac": "0a:58:c6:12:00:05"});
    let r = run_ours(node, &Bridge, &env("ADD", "m", Some(&pod.path()), "/x"), &c);
    assert!(r.ok(), "{r:?}");
    let link = pod.ip(&["-o", "link", "show", "eth0"]).unwrap();
    assert!(link.contains("0a:58:c6:12:00:05"), "{link}");
}
