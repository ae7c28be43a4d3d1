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
use k8snet_nft::{Chain, ChainType, CtStates, Expr, Family, Hook, Nft, Policy, Rule, Table};
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

fn lb_with_ranges() -> String {
    let svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  clusterIP: 198.19.0.22\n  type: LoadBalancer\n  loadBalancerSourceRanges: [198.19.200.2/32]\n  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30082}]\nstatus: {loadBalancer: {ingress: [{ip: 198.19.1.61}]}}\n";
    let eps = slice(
        "web",
        "IPv4",
        "http",
        "TCP",
        &[(0, "node-a"), (1, "node-a")],
    );
    format!("{NODE_A}{svc}{eps}")
}

/// The table as the previous commit (445984c) laid out its base chains:
/// filter-prerouting/-input/-forward/-output all at -110, firewall-check
/// from filter-prerouting and filter-output, no cluster-ips sets/check.
fn old_layout(mut t: k8snet_nft::Table) -> k8snet_nft::Table {
    let new_jump = |c: &str| Rule::new(vec![Expr::CtState(CtStates::NEW), Expr::jump(c)]);
    let filter = |hook| Chain::base(ChainType::Filter, hook, -110, Policy::Accept);
    t.chains.remove("filter-prerouting-pre-dnat");
    t.chains.remove("filter-output-pre-dnat");
    t.chains.remove("cluster-ips-check");
    t.sets.remove("cluster-ips");
    t.sets.remove("cluster-ips6");
    t.chains.insert(
        "filter-prerouting".into(),
        filter(Hook::Prerouting).with_rule(new_jump("firewall-check")),
    );
    t.chains.insert(
        "filter-input".into(),
        filter(Hook::Input).with_rule(new_jump("endpoints-check")),
    );
    t.chains.insert(
        "filter-forward".into(),
        filter(Hook::Forward).with_rule(new_jump("endpoints-check")),
    );
    t.chains.insert(
        "filter-output".into(),
        filter(Hook::Output)
            .with_rule(new_jump("endpoints-check"))
            .with_rule(new_jump("firewall-check")),
    );
    t
}

/// A node running the old layout is taken over by the new code: the first
/// sync must turn the old base chains into the new ones in one transaction.
#[test]
fn upgrade_from_the_old_base_chain_layout() {
    kernel_test!();
    let node = Node::new("rvup");
    let (_, _, table) = plan_yaml(&lb_with_ranges());
    let mut scratch = k8snet_lb::nftables::Layout::new();
    scratch.sync(&table).unwrap();
    let old = old_layout(scratch.table());
    node.tn
        .node()
        .run(|| Nft::new().unwrap().sync(&old).unwrap())
        .unwrap();
    // The old layout works: the allowed source reaches the LB IP.
    let lb: SocketAddr = "198.19.1.61:80".parse().unwrap();
    assert!(ask(node.outside.netns(), "198.19.200.2:0".parse().unwrap(), lb).is_ok());

    let mut p = node.proxier();
    let r = node.tn.node().run(|| p.sync(&table)).unwrap();
    r.expect("first sync over the old layout");
    let now = node
        .tn
        .node()
        .run(|| {
            Nft::new()
                .unwrap()
                .read_table(Family::Inet, "k8snet-lb")
                .unwrap()
                .unwrap()
        })
        .unwrap();
    let want = p.layout().table();
    let names = |t: &k8snet_nft::Table| t.chains.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&now), names(&want));
    for (n, c) in &want.chains {
        assert_eq!(now.chains[n].base, c.base, "{n}");
    }
    // Firewall still applies after the upgrade; the allowed source passes.
    assert!(ask(node.outside.netns(), "198.19.200.2:0".parse().unwrap(), lb).is_ok());
    assert!(ask(node.outside.netns(), "198.19.200.9:0".parse().unwrap(), lb).is_err());
}

fn web(ip: &str, ports: &str) -> String {
    format!(
        "{NODE_A}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec:\n  clusterIP: {ip}\n  ports: [{ports}]\n{}",
        slice("web", "IPv4", "http", "TCP", &[(0, "node-a")])
    )
}

fn cluster_ips(t: &k8snet_nft::Table) -> Vec<String> {
    t.sets["cluster-ips"]
        .elements
        .keys()
        .map(|k| format!("{:?}", k.0[0]))
        .collect()
}

/// update_service keeps `cluster-ips` right across adding and removing
/// ports, renaming one, and the Service coming back with another
/// ClusterIP; each batch turns the previous table into the layout's.
#[test]
fn update_service_keeps_cluster_ips_counts() {
    let key = NsName::new("default", "web");
    let steps = [
        (
            "198.19.0.30",
            "{name: http, port: 80, targetPort: 8080}, {name: b, port: 81, targetPort: 8080}",
        ),
        ("198.19.0.30", "{name: b, port: 81, targetPort: 8080}"),
        ("198.19.0.30", "{name: c, port: 81, targetPort: 8080}"),
        ("198.19.0.31", "{name: c, port: 81, targetPort: 8080}"),
        (
            "198.19.0.31",
            "{name: c, port: 81, targetPort: 8080, protocol: UDP}, {name: c2, port: 81, targetPort: 8080}",
        ),
    ];
    let (_, _, t0) = plan_yaml(NODE_A);
    let mut l = k8snet_lb::nftables::Layout::new();
    let mut kernel = l.sync(&t0).unwrap().apply_to(None).unwrap();
    for (ip, ports) in steps {
        let (c, ctx, _) = plan_yaml(&web(ip, ports));
        let ps = k8snet_lb::plan_service(&c, &ctx, &key);
        let b = l.update_service("default", "web", &ps).unwrap();
        kernel = b.apply_to(kernel.as_ref()).unwrap();
        let want = l.table();
        assert_eq!(kernel.as_ref(), Some(&want), "{ip} {ports}");
        assert_eq!(
            cluster_ips(&want).len(),
            1,
            "{ip} {ports}: {:?}",
            cluster_ips(&want)
        );
        assert!(
            cluster_ips(&want)[0].contains(ip),
            "{:?}",
            cluster_ips(&want)
        );
    }
    let b = l.update_service("default", "web", &[]).unwrap();
    kernel = b.apply_to(kernel.as_ref()).unwrap();
    assert_eq!(kernel.as_ref(), Some(&l.table()));
    assert!(cluster_ips(&l.table()).is_empty());
}

/// What the kernel holds reads back equal to the layout (fib rules,
/// cluster-ips, hairpin pairs): a restart sends no changes.
#[test]
fn the_new_rules_read_back_equal() {
    kernel_test!();
    let node = Node::new("rvrb");
    let web = local_policy_lb("web", "IPv4", &[(0, "node-a"), (2, "node-b")]);
    let web6 = local_policy_lb("web6", "IPv6", &[(1, "node-b"), (2, "node-b")]);
    let (_, _, table) = plan_yaml(&format!("{NODE_A}{web}{web6}"));
    let mut p = node.proxier();
    node.tn.node().run(|| p.sync(&table).unwrap()).unwrap();
    let kernel = node
        .tn
        .node()
        .run(|| {
            Nft::new()
                .unwrap()
                .read_table(Family::Inet, "k8snet-lb")
                .unwrap()
                .unwrap()
        })
        .unwrap();
    let b = k8snet_nft::diff(Some(&kernel), &p.layout().table()).unwrap();
    assert!(b.is_empty(), "{b}");
    assert!(!kernel.sets["cluster-ips6"].elements.is_empty());
}
