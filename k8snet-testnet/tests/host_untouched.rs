//! A full testnet session leaves the host namespace exactly as it was.
//! Alone in its binary so no other test runs between the two snapshots.

mod common;

use std::fs;
use std::net::IpAddr;

use k8snet_testnet::{Testnet, kernel_test, plan};

const HOST_SYSCTLS: [&str; 4] = [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv6/conf/all/forwarding",
    "/proc/sys/net/ipv6/conf/all/accept_dad",
    "/proc/sys/net/ipv6/conf/default/accept_dad",
];

fn host_sysctls() -> Vec<String> {
    HOST_SYSCTLS
        .iter()
        .map(|p| fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn host_links_addresses_routes_and_sysctls_are_unchanged() {
    kernel_test!();
    // This thread never enters a namespace: it is the host's view.
    let before = common::host_snapshot();
    let sysctls = host_sysctls();

    let names: Vec<String> = {
        let mut tn = Testnet::new("host").unwrap();
        tn.enable_forwarding().unwrap();
        let br = tn.add_bridge("br0", &plan::gateways(0)).unwrap();
        let a = tn
            .add_bridged_pod(&br, "a", &[plan::pod_v4(0, 2), plan::pod_v6(0, 2)])
            .unwrap();
        let b = tn
            .add_bridged_pod(&br, "b", &[plan::pod_v4(0, 3), plan::pod_v6(0, 3)])
            .unwrap();
        let c = tn.add_pod("c", &[plan::client_v4(2)]).unwrap();
        c.add_node_addr(plan::client_v4(1)).unwrap();
        c.set_gateway(plan::client_v4(1).addr()).unwrap();
        let a4 = IpAddr::V4(a.ipv4().unwrap());
        let a6 = IpAddr::V6(a.ipv6().unwrap());
        common::tcp_exchange(a.netns(), a4, b.netns(), IpAddr::V4(b.ipv4().unwrap()));
        common::tcp_exchange(a.netns(), a6, b.netns(), IpAddr::V6(b.ipv6().unwrap()));
        common::tcp_exchange(a.netns(), a4, c.netns(), IpAddr::V4(c.ipv4().unwrap()));
        // Mid-session the host is already unchanged.
        assert_eq!(common::host_snapshot(), before);
        tn.namespaces()
            .iter()
            .map(|n| n.name().to_owned())
            .collect()
    };

    assert_eq!(common::host_snapshot(), before);
    assert_eq!(host_sysctls(), sysctls);
    let left = common::netns_list();
    assert!(names.iter().all(|n| !left.contains(n)), "{left:?}");
}
