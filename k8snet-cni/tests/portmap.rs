//! portmap's choice of the container's addresses from `prevResult`, as the
//! reference's parseConfig (plugins/meta/portmap/main.go) makes it.

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
