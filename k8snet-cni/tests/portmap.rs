//! portmap's choice of the container's addresses from `prevResult`, as the
//! reference's parseConfig (plugins/meta/portmap/main.go) makes it.

#[cfg(feature = "linux")]
use std::collections::HashMap;
use std::net::IpAddr;

use k8snet_cni::portmap::{container_ips, container_nets};
use k8snet_cni::{CniResult, NetConf, Version};
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

/// A 1.x prevResult at a 0.2.0 configuration is refused before portmap
/// looks at it (Go's ParsePrevResult picks the decoder family from the
/// configuration's version and refuses a result of another family; the
/// reference portmap's plain "could not parse prevResult" error becomes
/// code 999). Had it been read, there would be no address to write at
/// 0.2.0.
#[cfg(feature = "linux")]
#[test]
fn a_1x_prev_result_at_a_020_configuration_is_refused() {
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
            json!({"cniVersion": "0.2.0", "code": 999,
                   "msg": "prevResult.cniVersion: result type supports [0.1.0 0.2.0] but unmarshalled CNIVersion is \"1.0.0\""})
        )
    );
}

/// A 1.x prevResult whose first IPv4 address is not CNI_IFNAME's: written
/// at 0.2.0 it would report `10.0.0.5` while portmap maps to eth0's
/// `198.18.0.2`. Such a prevResult is refused, naming the field.
const CROSS: &str = r#"{"cniVersion":"0.2.0","name":"n","type":"k8snet-portmap",
  "prevResult":{"cniVersion":"1.0.0",
    "interfaces":[{"name":"net1","sandbox":"/run/netns/p"},{"name":"eth0","sandbox":"/run/netns/p"}],
    "ips":[{"address":"10.0.0.5/24","interface":0},{"address":"198.18.0.2/24","interface":1}]}}"#;

#[test]
fn a_prev_result_of_another_family_is_refused() {
    let e = NetConf::from_slice(CROSS.as_bytes()).unwrap_err();
    assert_eq!(e.code(), 999, "{e}");
    assert!(e.to_string().starts_with("prevResult.cniVersion: "), "{e}");
    // Every pair of families, both ways; a prevResult without
    // `cniVersion` takes the configuration's.
    let fam = |v: &str| match v {
        "0.1.0" | "0.2.0" => 0,
        "0.3.0" | "0.3.1" | "0.4.0" => 1,
        _ => 2,
    };
    let all = [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ];
    for conf in all {
        for prev in all {
            let prev_result = if fam(prev) == 0 {
                json!({"cniVersion": prev, "ip4": {"ip": "198.18.0.2/24"}})
            } else {
                json!({"cniVersion": prev, "ips": [{"address": "198.18.0.2/24"}]})
            };
            let c =
                json!({"cniVersion": conf, "name": "n", "type": "t", "prevResult": prev_result});
            let got = NetConf::from_slice(c.to_string().as_bytes());
            assert_eq!(
                got.is_ok(),
                fam(conf) == fam(prev),
                "{conf} {prev}: {got:?}"
            );
        }
        let c = json!({"cniVersion": conf, "name": "n", "type": "t", "prevResult": {}});
        let n = NetConf::from_slice(c.to_string().as_bytes()).unwrap();
        assert_eq!(n.prev_result.unwrap().cni_version.as_str(), conf);
    }
}

/// Within one family portmap maps the address it prints: a 0.4.0
/// prevResult at a 0.3.1 configuration keeps its interfaces, so the
/// address on CNI_IFNAME is both the one mapped and one printed for eth0;
/// a 0.1.0 prevResult at 0.2.0 has one IPv4 address, mapped and printed.
#[cfg(feature = "linux")]
#[test]
fn within_a_family_portmap_maps_the_address_it_prints() {
    let prev = json!({"cniVersion": "0.4.0",
        "interfaces": [{"name": "net1", "sandbox": "/run/netns/p"}, {"name": "eth0", "sandbox": "/run/netns/p"}],
        "ips": [{"version": "4", "address": "10.0.0.5/24", "interface": 0},
                {"version": "4", "address": "198.18.0.2/24", "interface": 1}]});
    let conf =
        json!({"cniVersion": "0.3.1", "name": "n", "type": "k8snet-portmap", "prevResult": prev});
    let n = NetConf::from_slice(conf.to_string().as_bytes()).unwrap();
    assert_eq!(
        container_ips(n.prev_result.as_ref().unwrap(), "eth0"),
        ips(&["198.18.0.2"])
    );
    let out = portmap_add(None, &conf);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status, 0, "{got}");
    assert_eq!(got["cniVersion"], "0.3.1");
    assert_eq!(got["ips"][1]["address"], "198.18.0.2/24");
    assert_eq!(
        got["interfaces"][got["ips"][1]["interface"].as_u64().unwrap() as usize]["name"],
        "eth0"
    );

    let prev = json!({"cniVersion": "0.1.0", "ip4": {"ip": "198.18.0.2/24"}});
    let conf =
        json!({"cniVersion": "0.2.0", "name": "n", "type": "k8snet-portmap", "prevResult": prev});
    let n = NetConf::from_slice(conf.to_string().as_bytes()).unwrap();
    assert_eq!(
        container_ips(n.prev_result.as_ref().unwrap(), "eth0"),
        ips(&["198.18.0.2"])
    );
    let out = portmap_add(None, &conf);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (out.status, &got["ip4"]["ip"]),
        (0, &json!("198.18.0.2/24")),
        "{got}"
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
