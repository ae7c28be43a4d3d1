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

/// `dns` with endpoints b0 (ready) and b1 with `b1` conditions.
fn yaml_b1(b1: &str) -> String {
    format!(
        "{NODE_A}---\napiVersion: v1\nkind: Service\nmetadata: {{name: dns, namespace: default}}\nspec:\n  clusterIP: 198.19.0.10\n  ports: [{{name: dns, port: 53, targetPort: 8080, protocol: UDP}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: dns-ipv4, namespace: default, labels: {{kubernetes.io/service-name: dns}}}}\naddressType: IPv4\nendpoints: [{{addresses: ['{}'], nodeName: node-a, conditions: {{ready: true}}}}, {{addresses: ['{}'], nodeName: node-a, conditions: {b1}}}]\nports: [{{name: dns, port: 8080, protocol: UDP}}]\n",
        backend_v4(0),
        backend_v4(1)
    )
}

#[test]
fn udp_flows_to_a_terminating_but_serving_endpoint_are_kept() {
    kernel_test!();
    let node = Node::new("lbct2");
    let (_, ctx, table) = plan_yaml(&yaml_b1("{ready: true}"));
    let mut px = node.proxier();
    px.sync(&table).unwrap();
    let to: SocketAddr = "198.19.0.10:53".parse().unwrap();
    let wait = Duration::from_secs(2);
    // A client flow that b1 serves.
    let from = (47_000..47_100)
        .map(|p| SocketAddr::new("198.18.0.2".parse().unwrap(), p))
        .find(|from| ask_udp(node.client.netns(), *from, to, wait).unwrap() == "b1")
        .expect("some source port reaches b1");
    // b1 starts terminating but still serves (graceful shutdown): the plan
    // no longer sends new flows there, but the flow it serves stays.
    let (cluster, _, _) = plan_yaml(&yaml_b1("{ready: false, serving: true, terminating: true}"));
    let ports = k8snet_lb::plan_service(&cluster, &ctx, &NsName::new("default", "dns"));
    let pool = ports[0].cluster_pool.as_ref().unwrap();
    assert_eq!(pool.endpoints.len(), 1, "b1 left the pool");
    let st = px.update_service("default", "dns", &ports).unwrap();
    // kube-proxy (pkg/proxy/conntrack/cleanup.go) keeps entries whose reply
    // source is a *serving* endpoint, whatever its terminating state.
    assert_eq!(
        st.conntrack_deleted, 0,
        "flow to a serving endpoint was cut"
    );
    assert_eq!(ask_udp(node.client.netns(), from, to, wait).unwrap(), "b1");
    // When b1 stops serving, its flow goes and the client moves on.
    let (cluster, _, _) = plan_yaml(&yaml_b1(
        "{ready: false, serving: false, terminating: true}",
    ));
    let ports = k8snet_lb::plan_service(&cluster, &ctx, &NsName::new("default", "dns"));
    let st = px.update_service("default", "dns", &ports).unwrap();
    assert_eq!(st.conntrack_deleted, 1);
    assert_eq!(ask_udp(node.client.netns(), from, to, wait).unwrap(), "b0");
}

/// A UDP flow sent before the Service was programmed has a conntrack entry
/// without DNAT (here: routed on to the outside namespace, which drops
/// it). A restarted proxier's first sync deletes it as kube-proxy does on start (every entry to a
/// frontend not answered by a serving endpoint), so the client's next
/// datagram reaches an endpoint; the flows endpoints serve are kept.
#[test]
fn the_first_sync_deletes_udp_entries_made_before_the_service_existed() {
    kernel_test!();
    let node = Node::new("lbct3");
    // An earlier run programmed no Services (and turned conntrack on).
    let (_, _, empty) = plan_yaml(NODE_A);
    node.proxier().sync(&empty).unwrap();
    let (_, _, table) = plan_yaml(&yaml(&[(0, "node-a")]));
    let from: SocketAddr = "198.18.0.2:47500".parse().unwrap();
    let to: SocketAddr = "198.19.0.10:53".parse().unwrap();
    let short = Duration::from_millis(300);
    assert!(ask_udp(node.client.netns(), from, to, short).is_err());
    let not_dnated = || {
        node.tn
            .node()
            .run(|| Conntrack::open().unwrap().list().unwrap())
            .unwrap()
            .into_iter()
            .filter(|e| e.protocol == 17 && e.orig_dst == to.ip() && e.reply_src == to.ip())
            .count()
    };
    assert_eq!(not_dnated(), 1);
    let mut px = node.proxier();
    let st = px.sync(&table).unwrap();
    assert_eq!(st.conntrack_deleted, 1);
    assert_eq!(not_dnated(), 0);
    let wait = Duration::from_secs(2);
    assert_eq!(ask_udp(node.client.netns(), from, to, wait).unwrap(), "b0");
    // A proxier restarting on the same table keeps the live flow.
    let mut again = node.proxier();
    assert_eq!(again.sync(&table).unwrap().conntrack_deleted, 0);
    assert_eq!(ask_udp(node.client.netns(), from, to, wait).unwrap(), "b0");
}

/// A restart's first sync keeps live UDP flows to a NodePort (from
/// outside, at the node IP) that a serving endpoint answers.
#[test]
fn first_sync_keeps_live_udp_node_port_flows() {
    kernel_test!();
    use std::time::Duration;
    let node = Node::new("rvctn");
    let svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: default}\nspec:\n  clusterIP: 198.19.0.53\n  type: NodePort\n  ports: [{name: dns, port: 53, targetPort: 8080, protocol: UDP, nodePort: 30053}]\n";
    let eps = slice(
        "dns",
        "IPv4",
        "dns",
        "UDP",
        &[(0, "node-a"), (1, "node-a"), (2, "node-a")],
    );
    let (_, _, table) = plan_yaml(&format!("{NODE_A}{svc}{eps}"));
    node.proxier().sync(&table).unwrap();
    let wait = Duration::from_secs(2);
    let to: SocketAddr = "198.19.128.1:30053".parse().unwrap();
    let mut first = Vec::new();
    for p in 47_600..47_606u16 {
        let from = SocketAddr::new("198.19.200.2".parse().unwrap(), p);
        first.push(ask_udp(node.outside.netns(), from, to, wait).unwrap());
    }
    let mut again = node.proxier();
    let st = node.tn.node().run(|| again.sync(&table)).unwrap().unwrap();
    assert_eq!(st.conntrack_deleted, 0);
    for (i, p) in (47_600..47_606u16).enumerate() {
        let from = SocketAddr::new("198.19.200.2".parse().unwrap(), p);
        assert_eq!(
            ask_udp(node.outside.netns(), from, to, wait).unwrap(),
            first[i]
        );
    }
}

/// The node gains an IP (198.19.128.5, on its outside link): node ports
/// now answer there. A UDP flow sent to it before (not DNATed, answered by
/// nobody) is stale once the node IP is programmed, and the sync that
/// programs it deletes the entry, so the client's next datagram reaches
/// the endpoint.
#[test]
fn a_new_node_ip_cleans_udp_entries_to_its_node_ports() {
    kernel_test!();
    let node = Node::new("rvnip");
    let svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: dns, namespace: default}\nspec:\n  clusterIP: 198.19.0.53\n  type: NodePort\n  ports: [{name: dns, port: 53, targetPort: 8080, protocol: UDP, nodePort: 30053}]\n";
    let eps = slice("dns", "IPv4", "dns", "UDP", &[(0, "node-a")]);
    let (_, _, table) = plan_yaml(&format!("{NODE_A}{svc}{eps}"));
    let mut px = node.proxier();
    node.tn.node().run(|| px.sync(&table)).unwrap().unwrap();
    node.outside
        .add_node_addr(k8snet_testnet::plan::node_v4(5))
        .unwrap();
    let from: SocketAddr = "198.19.200.2:47700".parse().unwrap();
    let to: SocketAddr = "198.19.128.5:30053".parse().unwrap();
    let short = Duration::from_millis(300);
    assert!(ask_udp(node.outside.netns(), from, to, short).is_err());
    let moved = NODE_A.replace(
        "{type: InternalIP, address: 198.19.128.1}",
        "{type: InternalIP, address: 198.19.128.1}, {type: InternalIP, address: 198.19.128.5}",
    );
    assert_ne!(moved, NODE_A);
    let (_, _, table2) = plan_yaml(&format!("{moved}{svc}{eps}"));
    let st = node.tn.node().run(|| px.sync(&table2)).unwrap().unwrap();
    assert_eq!(st.conntrack_deleted, 1);
    let wait = Duration::from_secs(2);
    assert_eq!(ask_udp(node.outside.netns(), from, to, wait).unwrap(), "b0");
}
