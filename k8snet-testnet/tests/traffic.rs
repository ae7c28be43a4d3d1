//! Real traffic between test namespaces, IPv4 and IPv6.

mod common;

use std::net::IpAddr;

use k8snet_testnet::{Testnet, kernel_test, plan};

#[test]
fn pods_on_a_bridge_talk_tcp_and_udp_v4_and_v6() {
    kernel_test!();
    let mut tn = Testnet::new("traffic").unwrap();
    let br = tn.add_bridge("br0", &plan::gateways(0)).unwrap();
    let a = tn
        .add_bridged_pod(&br, "a", &[plan::pod_v4(0, 2), plan::pod_v6(0, 2)])
        .unwrap();
    let b = tn
        .add_bridged_pod(&br, "b", &[plan::pod_v4(0, 3), plan::pod_v6(0, 3)])
        .unwrap();
    let (a4, b4) = (IpAddr::V4(a.ipv4().unwrap()), IpAddr::V4(b.ipv4().unwrap()));
    let (a6, b6) = (IpAddr::V6(a.ipv6().unwrap()), IpAddr::V6(b.ipv6().unwrap()));

    common::tcp_exchange(a.netns(), a4, b.netns(), b4);
    common::tcp_exchange(b.netns(), b6, a.netns(), a6);
    common::udp_exchange(a.netns(), a6, b.netns(), b6);
    common::udp_exchange(b.netns(), b4, a.netns(), a4);

    // The default routes point at the bridge gateways.
    let routes = a.netns().ip(&["-4", "route", "show", "default"]).unwrap();
    assert!(routes.contains("via 198.18.0.1 dev eth0"), "{routes}");
    let routes = a.netns().ip(&["-6", "route", "show", "default"]).unwrap();
    assert!(routes.contains("via fd00:18::1 dev eth0"), "{routes}");
    // Pod to gateway (the node itself) works too.
    common::tcp_exchange(tn.node(), "198.18.0.1".parse().unwrap(), a.netns(), a4);
}

#[test]
fn node_forwards_between_pod_bridge_and_routed_client() {
    kernel_test!();
    let mut tn = Testnet::new("fwd").unwrap();
    tn.enable_forwarding().unwrap();
    let br = tn.add_bridge("cbr0", &plan::gateways(1)).unwrap();
    let pod = tn
        .add_bridged_pod(&br, "pod", &[plan::pod_v4(1, 2), plan::pod_v6(1, 2)])
        .unwrap();
    // An outside client on a point-to-point veth; the node end is its gateway.
    let client = tn
        .add_pod("client", &[plan::client_v4(2), plan::client_v6(2)])
        .unwrap();
    client.add_node_addr(plan::client_v4(1)).unwrap();
    client.add_node_addr(plan::client_v6(1)).unwrap();
    client.set_gateway(plan::client_v4(1).addr()).unwrap();
    client.set_gateway(plan::client_v6(1).addr()).unwrap();

    let (p4, p6) = (
        IpAddr::V4(pod.ipv4().unwrap()),
        IpAddr::V6(pod.ipv6().unwrap()),
    );
    let (c4, c6) = (
        IpAddr::V4(client.ipv4().unwrap()),
        IpAddr::V6(client.ipv6().unwrap()),
    );
    common::tcp_exchange(pod.netns(), p4, client.netns(), c4);
    common::tcp_exchange(pod.netns(), p6, client.netns(), c6);
    common::udp_exchange(client.netns(), c4, pod.netns(), p4);
    common::udp_exchange(client.netns(), c6, pod.netns(), p6);
}
