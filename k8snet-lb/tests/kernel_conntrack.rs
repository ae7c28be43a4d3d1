//! UDP has no end: a conntrack entry to a removed endpoint would keep a
//! client's datagrams going there. The proxier deletes those entries (in
//! the node namespace) when the endpoint leaves.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use k8snet_lb::linux::Conntrack;
use k8snet_model::NsName;
use k8snet_testnet::kernel_test;

fn yaml(eps: &[(u8, &str)]) -> String {
    format!(
        "{NODE_A}---\napiVersion: v1\nkind: Service\nmetadata: {{name: dns, namespace: default}}\nspec:\n  clusterIP: 198.19.0.10\n  ports: [{{name: dns, port: 53, targetPort: 8080, protocol: UDP}}]\n{}",
        slice("dns", "IPv4", "dns", "UDP", eps)
    )
}

#[test]
fn udp_conntrack_entries_to_removed_endpoints_are_deleted() {
    kernel_test!();
    let node = Node::new("lbct");
    let (_, ctx, table) = plan_yaml(&yaml(&[(0, "node-a"), (1, "node-a")]));
    let mut px = node.proxier();
    px.sync(&table).unwrap();
    let from: SocketAddr = "198.18.0.2:47000".parse().unwrap();
    let to: SocketAddr = "198.19.0.10:53".parse().unwrap();
    let wait = Duration::from_secs(2);
    let first = ask_udp(node.client.netns(), from, to, wait).unwrap();
    assert_eq!(
        ask_udp(node.client.netns(), from, to, wait).unwrap(),
        first,
        "conntrack pins the flow"
    );
    let entries = || {
        node.tn
            .node()
            .run(|| Conntrack::open().unwrap().list().unwrap())
            .unwrap()
    };
    let served_by = |name: &str| {
        let ip = if name == "b0" {
            backend_v4(0)
        } else {
            backend_v4(1)
        };
        entries()
            .into_iter()
            .filter(|e| e.protocol == 17 && e.reply_src == ip)
            .count()
    };
    assert_eq!(served_by(&first), 1, "{:?}", entries());

    // The endpoint that served the flow leaves.
    let survivor = if first == "b0" { 1 } else { 0 };
    let (cluster, _, _) = plan_yaml(&yaml(&[(survivor, "node-a")]));
    let ports = k8snet_lb::plan_service(&cluster, &ctx, &NsName::new("default", "dns"));
    let st = px.update_service("default", "dns", &ports).unwrap();
    assert_eq!(st.conntrack_deleted, 1);
    assert_eq!(served_by(&first), 0);
    // The same flow now reaches the survivor at once.
    assert_eq!(
        ask_udp(node.client.netns(), from, to, wait).unwrap(),
        format!("b{survivor}")
    );
}
