//! portmap's choice of the container's addresses from `prevResult`, as the
//! reference's parseConfig (plugins/meta/portmap/main.go) makes it.

#[cfg(feature = "linux")]
use std::collections::HashMap;
use std::net::IpAddr;

use k8snet_cni::portmap::{container_ips, container_nets};
use k8snet_cni::{CniResult, Version};
use serde_json::{Value, json};

fn result(v: Value) -> CniResult {
    CniResult::from_json(&v, Version::V1_0_0).unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// An address on a listed interface that is not CNI_IFNAME is skipped:
/// with `lo` listed in the sandbox before `eth0`, the mappings go to
/// eth0's address, not to 127.0.0.1.
#[test]
fn portmap_maps_to_the_address_of_cni_ifname() {
    let prev = result(json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "lo", "sandbox": "/run/netns/p"},
                       {"name": "cni0"},
                       {"name": "eth0", "sandbox": "/run/netns/p"}],
        "ips": [{"address": "127.0.0.1/8", "interface": 0},
                {"address": "::1/128", "interface": 0},
                {"address": "198.18.0.2/24", "interface": 2},
                {"address": "fd00:18::2/64", "interface": 2}]}));
    assert_eq!(
        container_ips(&prev, "eth0"),
        ips(&["198.18.0.2", "fd00:18::2"])
    );
    assert_eq!(container_ips(&prev, "lo"), ips(&["127.0.0.1", "::1"]));
    assert_eq!(
        container_nets(&prev, "eth0"),
        vec![
            "198.18.0.2/24".parse().unwrap(),
            "fd00:18::2/64".parse().unwrap()
        ]
    );
    // Another CNI_IFNAME than any listed: nothing on a listed interface.
    assert!(container_ips(&prev, "net1").is_empty());
}

/// `"sandbox": ""` is a host interface (SPEC: "empty/omitted for host
/// interfaces"; Go's portmap tests `Sandbox == ""`), even with the name of
/// CNI_IFNAME: portmap must not map to the host's address.
#[test]
fn an_empty_sandbox_is_a_host_interface() {
    let prev = result(json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "", "sandbox": ""},
                       {"name": "eth0", "sandbox": "/run/netns/p"}],
        "ips": [{"address": "198.18.0.1/24", "interface": 0},
                {"address": "198.18.0.2/24", "interface": 1}]}));
    assert_eq!(container_ips(&prev, "eth0"), ips(&["198.18.0.2"]));
    assert_eq!(
        prev.to_json(Version::V1_0_0)["interfaces"][0],
        json!({"name": "eth0"}),
        "empty strings print as absent, as Go's omitempty"
    );
}

/// No `interface`, or an index beyond the list, counts as the container's
/// (parseConfig skips only a *known* non-sandbox interface); the first
/// address of each family wins.
#[test]
fn unknown_interfaces_count_as_the_containers() {
    let prev = result(json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0"}],
        "ips": [{"address": "198.18.0.1/24", "interface": 0},
                {"address": "198.18.0.5/24", "interface": 7},
                {"address": "198.18.0.6/24"},
                {"address": "fd00:18::6/64"}]}));
    assert_eq!(
        container_ips(&prev, "eth0"),
        ips(&["198.18.0.5", "fd00:18::6"])
    );
}

/// The environment of a portmap ADD, with `CNI_ARGS` when given.
#[cfg(feature = "linux")]
fn add_env(cni_args: Option<&str>) -> HashMap<&'static str, String> {
    let mut e: HashMap<&str, String> = [
        ("CNI_COMMAND", "ADD".to_owned()),
        ("CNI_CONTAINERID", "c1".to_owned()),
        ("CNI_NETNS", "/run/netns/p".to_owned()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", "/nonexistent".to_owned()),
    ]
    .into_iter()
    .collect();
    if let Some(a) = cni_args {
        e.insert("CNI_ARGS", a.to_owned());
    }
    e
}

/// Runs our portmap's ADD (no mappings: it touches no kernel state).
#[cfg(feature = "linux")]
fn portmap_add(cni_args: Option<&str>, stdin: &Value) -> k8snet_cni::Outcome {
    let e = add_env(cni_args);
    k8snet_cni::run_with(
        &k8snet_cni::linux::Portmap,
        |k| e.get(k).cloned(),
        stdin.to_string().as_bytes(),
    )
}

/// A chained plugin at 0.2.0 passing a 0.2.0 prevResult through (portmap
/// with no mappings) prints it as it came, even without `ip4`/`ip6`: Go's
/// Convert returns a result unchanged when it is already at the requested
/// version; only a real conversion to 0.2.0 fails without addresses.
#[cfg(feature = "linux")]
#[test]
fn a_020_prev_result_without_addresses_passes_through() {
    let prev = json!({"cniVersion": "0.2.0", "dns": {"nameservers": ["198.19.0.10"]}});
    let out = portmap_add(
        None,
        &json!({"cniVersion": "0.2.0", "name": "n", "type": "k8snet-portmap", "prevResult": prev}),
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status, got), (0, prev));
    // Routes keep the fields they came with when the version does not change.
    let prev = json!({"cniVersion": "0.2.0", "ip4": {"ip": "198.18.0.2/24",
        "routes": [{"dst": "0.0.0.0/0", "gw": "198.18.0.1", "mtu": 1400}]}});
    let out = portmap_add(
        None,
        &json!({"cniVersion": "0.2.0", "name": "n", "type": "k8snet-portmap", "prevResult": prev}),
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status, got), (0, prev));
}

/// A 1.x prevResult without addresses written at 0.2.0 is a real
/// conversion: it still fails (code 999, as Go's plain error becomes).
#[cfg(feature = "linux")]
#[test]
fn a_1x_prev_result_without_addresses_cannot_be_written_at_020() {
    let out = portmap_add(
        None,
        &json!({"cniVersion": "0.2.0", "name": "n", "type": "k8snet-portmap",
                "prevResult": {"cniVersion": "1.0.0", "dns": {"nameservers": ["198.19.0.10"]}}}),
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (out.status, got),
        (
            1,
            json!({"cniVersion": "0.2.0", "code": 999, "msg": "cannot convert: no valid IP addresses"})
        )
    );
}

/// The reference portmap never parses CNI_ARGS: a malformed pair does not
/// fail its ADD (the skeleton does not look at it either).
#[cfg(feature = "linux")]
#[test]
fn portmap_add_does_not_parse_cni_args() {
    let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "198.18.0.2/24"}]});
    let out = portmap_add(
        Some("K8S_POD_NAME=web;novalue"),
        &json!({"cniVersion": "1.0.0", "name": "n", "type": "k8snet-portmap", "prevResult": prev}),
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status, got), (0, prev));
}
