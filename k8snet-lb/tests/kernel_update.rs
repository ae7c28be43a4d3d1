//! A one-Service update that conflicts with another Service is refused
//! before anything reaches the kernel: `inet k8snet-lb` reads back exactly
//! as before, traffic still flows as before, and the next valid update is
//! applied as usual.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::net::SocketAddr;
use std::time::SystemTime;

use common::*;
use k8snet_lb::nftables::TABLE;
use k8snet_model::NsName;
use k8snet_nft::{Family, Nft, Table};
use k8snet_testnet::kernel_test;

/// A NodePort Service on `ip` and `node_port`, port `http` 80 → 8080.
fn node_port_service(name: &str, ip: &str, node_port: u16) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  type: NodePort\n  clusterIP: {ip}\n  ports: [{{name: http, port: 80, targetPort: 8080, nodePort: {node_port}}}]\n"
    )
}

fn read(node: &Node) -> Table {
    node.tn
        .node()
        .run(|| {
            Nft::new()
                .unwrap()
                .read_table(Family::Inet, TABLE)
                .unwrap()
                .expect("the table exists")
        })
        .unwrap()
}

#[test]
fn a_refused_update_leaves_the_kernel_table_unchanged() {
    kernel_test!();
    let node = Node::new("lbrefuse");
    let web = || {
        node_port_service("web", "198.19.0.20", 30080)
            + &slice(
                "web",
                "IPv4",
                "http",
                "TCP",
                &[(0, "node-a"), (1, "node-a")],
            )
    };
    let other_slice = |eps: &[(u8, &str)]| slice("other", "IPv4", "http", "TCP", eps);
    let yaml = format!(
        "{NODE_A}{}{}{}",
        web(),
        node_port_service("other", "198.19.0.30", 30090),
        other_slice(&[(2, "node-a")])
    );
    let (_, ctx, table) = plan_yaml(&yaml);
    let mut px = node.proxier();
    let health = std::sync::Arc::new(k8snet_lb::health::ProxyHealth::new(
        std::time::Duration::from_secs(60),
    ));
    px.set_health(health.clone());
    px.sync(&table).unwrap();
    assert!(health.status_at(SystemTime::now()).last_updated.is_some());
    // Checked an hour ahead: a pending update is late by then.
    let later = || SystemTime::now() + std::time::Duration::from_secs(3600);
    let before = read(&node);
    let out = node.outside.netns();
    let client = "198.19.200.2".parse().unwrap();
    let to_other: SocketAddr = "198.19.128.1:30090".parse().unwrap();
    assert_eq!(
        ask(out, SocketAddr::new(client, 0), to_other).unwrap(),
        "b2"
    );

    // `other` moves to web's node port, and to a new endpoint: refused.
    let yaml = format!(
        "{NODE_A}{}{}{}",
        web(),
        node_port_service("other", "198.19.0.30", 30080),
        other_slice(&[(3, "node-a")])
    );
    let (cluster, _, _) = plan_yaml(&yaml);
    let other = NsName::new("default", "other");
    let ports = k8snet_lb::plan_service(&cluster, &ctx, &other);
    assert_eq!(ports[0].node_port, Some(30080));
    health.queued_update();
    let e = px.update_service("default", "other", &ports).unwrap_err();
    assert!(
        !health.status_at(later()).healthy,
        "the refused change is pending"
    );
    assert_eq!(
        e.to_string(),
        "Service default/other: spec.ports[name=http].nodePort: node port 30080/TCP (IPv4) \
         is already used by default/web:http/TCP/v4; refused (a full sync keeps it for the \
         first Service in name order)"
    );
    assert!(read(&node) == before, "the kernel table changed");
    // Both node ports still lead where they did.
    assert_eq!(
        ask(out, SocketAddr::new(client, 0), to_other).unwrap(),
        "b2"
    );
    let to_web: SocketAddr = "198.19.128.1:30080".parse().unwrap();
    let b = ask(out, SocketAddr::new(client, 0), to_web).unwrap();
    assert!(b == "b0" || b == "b1", "{b}");

    // The same change without the conflict goes through.
    let yaml = format!(
        "{NODE_A}{}{}{}",
        web(),
        node_port_service("other", "198.19.0.30", 30090),
        other_slice(&[(3, "node-a")])
    );
    let (cluster, _, _) = plan_yaml(&yaml);
    let ports = k8snet_lb::plan_service(&cluster, &ctx, &other);
    assert_eq!(ports[0].node_port, Some(30090), "{yaml}");
    let st = px.update_service("default", "other", &ports).unwrap();
    assert!(st.messages > 0);
    assert!(health.status_at(later()).healthy, "nothing pending");
    let after = read(&node);
    assert!(after != before);
    node.forget_connections();
    assert_eq!(
        ask(out, SocketAddr::new(client, 0), to_other).unwrap(),
        "b3"
    );
}
