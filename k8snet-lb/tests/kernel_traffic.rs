//! Real traffic between test namespaces through `inet k8snet-lb`: every
//! flow lands where `predict` says, for ClusterIPs (IPv4 and IPv6), node
//! ports and load balancer IPs from outside, with source ranges, Local
//! policy, ClientIP affinity, empty Services and a removed backend.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use k8snet_lb::predict::{Flow, Prediction, predict};
use k8snet_model::{NsName, Protocol};
use k8snet_testnet::kernel_test;

fn service(name: &str, ip: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  clusterIP: {ip}\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n{extra}"
    )
}

fn all_backends(svc: &str, family: &str) -> String {
    slice(
        svc,
        family,
        "http",
        "TCP",
        &[(0, "node-a"), (1, "node-a"), (2, "node-a"), (3, "node-a")],
    )
}

/// Checks `flows` source ports from `from` to `to` against `predict`.
fn check_flows(
    ns: &k8snet_testnet::Netns,
    table: &k8snet_lb::ServiceTable,
    from: IpAddr,
    to: SocketAddr,
    sports: std::ops::Range<u16>,
) -> Vec<String> {
    let mut got = Vec::new();
    for sport in sports {
        let flow = Flow {
            saddr: from,
            sport,
            daddr: to.ip(),
            dport: to.port(),
            protocol: Protocol::Tcp,
        };
        let Prediction::Endpoint { ip, .. } = predict(table, &flow) else {
            panic!("{flow:?}: {:?}", predict(table, &flow))
        };
        let name =
            ask(ns, SocketAddr::new(from, sport), to).unwrap_or_else(|e| panic!("{flow:?}: {e}"));
        assert_eq!(name, name_of(ip), "flow from port {sport} to {to}");
        got.push(name);
    }
    got
}

#[test]
fn pod_to_cluster_ip_reaches_exactly_the_predicted_backend() {
    kernel_test!();
    let node = Node::new("lbcip");
    let yaml = format!(
        "{NODE_A}{}{}",
        service("web", "198.19.0.20", ""),
        all_backends("web", "IPv4")
    );
    let (_, _, table) = plan_yaml(&yaml);
    let mut px = node.proxier();
    px.sync(&table).unwrap();
    let got = check_flows(
        node.client.netns(),
        &table,
        "198.18.0.2".parse().unwrap(),
        "198.19.0.20:80".parse().unwrap(),
        41_000..41_050,
    );
    let distinct: std::collections::BTreeSet<_> = got.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "50 flows spread over all 4 backends: {got:?}"
    );
}

#[test]
fn ipv6_cluster_ip_reaches_exactly_the_predicted_backend() {
    kernel_test!();
    let node = Node::new("lbcip6");
    let extra = "  clusterIPs: ['fd00:19::20']\n  ipFamilies: [IPv6]\n";
    let yaml = format!(
        "{NODE_A}{}{}",
        service("web", "'fd00:19::20'", extra),
        all_backends("web", "IPv6")
    );
    let (_, _, table) = plan_yaml(&yaml);
    node.proxier().sync(&table).unwrap();
    check_flows(
        node.client.netns(),
        &table,
        "fd00:18::2".parse().unwrap(),
        "[fd00:19::20]:80".parse().unwrap(),
        42_000..42_020,
    );
}

#[test]
fn node_port_and_load_balancer_ip_from_outside_with_source_ranges() {
    kernel_test!();
    let node = Node::new("lbext");
    let extra = "  type: LoadBalancer\n  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]\n  externalIPs: [198.19.2.70]\n  loadBalancerSourceRanges: [198.19.200.0/29]\nstatus: {loadBalancer: {ingress: [{ip: 198.19.1.60}]}}\n";
    let yaml = format!(
        "{NODE_A}{}{}",
        service("web", "198.19.0.20", extra)
            .replace("  ports: [{name: http, port: 80, targetPort: 8080}]\n", ""),
        all_backends("web", "IPv4")
    );
    let (_, _, table) = plan_yaml(&yaml);
    node.proxier().sync(&table).unwrap();
    let out = node.outside.netns();
    let allowed: IpAddr = "198.19.200.2".parse().unwrap();
    for to in ["198.19.128.1:30080", "198.19.1.60:80", "198.19.2.70:80"] {
        check_flows(out, &table, allowed, to.parse().unwrap(), 43_000..43_010);
    }
    // 198.19.200.9 is outside 198.19.200.0/29: the load balancer IP drops
    // it, while the node port and the external IP still answer.
    let refused = SocketAddr::new("198.19.200.9".parse().unwrap(), 43_100);
    let flow = Flow {
        saddr: refused.ip(),
        sport: 43_100,
        daddr: "198.19.1.60".parse().unwrap(),
        dport: 80,
        protocol: Protocol::Tcp,
    };
    assert_eq!(predict(&table, &flow), Prediction::Drop);
    let e = ask(out, refused, "198.19.1.60:80".parse().unwrap()).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ),
        "{e}"
    );
    let np = ask(
        out,
        SocketAddr::new(refused.ip(), 43_101),
        "198.19.128.1:30080".parse().unwrap(),
    );
    assert!(np.is_ok(), "node ports ignore source ranges: {np:?}");
}

#[test]
fn local_policy_keeps_external_traffic_on_local_endpoints() {
    kernel_test!();
    let node = Node::new("lblocal");
    let extra = "  type: NodePort\n  externalTrafficPolicy: Local\n";
    let svc = service("web", "198.19.0.21", extra)
        .replace("targetPort: 8080}", "targetPort: 8080, nodePort: 30081}");
    // b0 is on this node; b1..b3 are on node-b (reachable, but remote).
    let eps = slice(
        "web",
        "IPv4",
        "http",
        "TCP",
        &[(0, "node-a"), (1, "node-b"), (2, "node-b"), (3, "node-b")],
    );
    let (_, _, table) = plan_yaml(&format!("{NODE_A}{svc}{eps}"));
    node.proxier().sync(&table).unwrap();
    let got = check_flows(
        node.outside.netns(),
        &table,
        "198.19.200.2".parse().unwrap(),
        "198.19.128.1:30081".parse().unwrap(),
        44_000..44_020,
    );
    assert!(got.iter().all(|n| n == "b0"), "{got:?}");
    // ClusterIP traffic (Cluster policy) still spreads.
    let got = check_flows(
        node.client.netns(),
        &table,
        "198.18.0.2".parse().unwrap(),
        "198.19.0.21:80".parse().unwrap(),
        44_100..44_130,
    );
    assert!(got.iter().any(|n| n != "b0"), "{got:?}");
}

#[test]
fn client_ip_affinity_pins_a_client() {
    kernel_test!();
    let node = Node::new("lbaff");
    let extra =
        "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n";
    let yaml = format!(
        "{NODE_A}{}{}",
        service("sticky", "198.19.0.22", extra),
        all_backends("sticky", "IPv4")
    );
    let (_, _, table) = plan_yaml(&yaml);
    node.proxier().sync(&table).unwrap();
    let got = check_flows(
        node.client.netns(),
        &table,
        "198.18.0.2".parse().unwrap(),
        "198.19.0.22:80".parse().unwrap(),
        45_000..45_020,
    );
    assert!(
        got.iter().all(|n| *n == got[0]),
        "one client, one backend: {got:?}"
    );
    // The affinity set learnt the client.
    let learnt = node
        .tn
        .node()
        .cmd(&["nft", "list", "table", "inet", "k8snet-lb"])
        .unwrap();
    assert!(learnt.contains("198.18.0.2 expires"), "{learnt}");
}

#[test]
fn an_empty_service_rejects_at_once() {
    kernel_test!();
    let node = Node::new("lbempty");
    let (_, _, table) = plan_yaml(&format!("{NODE_A}{}", service("empty", "198.19.0.23", "")));
    node.proxier().sync(&table).unwrap();
    let t0 = Instant::now();
    let e = ask(
        node.client.netns(),
        "198.18.0.2:0".parse().unwrap(),
        "198.19.0.23:80".parse().unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "refused after {:?}",
        t0.elapsed()
    );
}

#[test]
fn removing_one_backend_moves_only_the_flows_maglev_moves() {
    kernel_test!();
    let node = Node::new("lbremove");
    let yaml = format!(
        "{NODE_A}{}{}",
        service("web", "198.19.0.20", ""),
        all_backends("web", "IPv4")
    );
    let (_, ctx, before) = plan_yaml(&yaml);
    let mut px = node.proxier();
    px.sync(&before).unwrap();
    let client = node.client.netns();
    let (from, to) = (
        "198.18.0.2".parse::<IpAddr>().unwrap(),
        "198.19.0.20:80".parse::<SocketAddr>().unwrap(),
    );
    let first = check_flows(client, &before, from, to, 46_000..46_050);

    // b2 goes away: one service's update.
    let yaml = format!(
        "{NODE_A}{}{}",
        service("web", "198.19.0.20", ""),
        slice(
            "web",
            "IPv4",
            "http",
            "TCP",
            &[(0, "node-a"), (1, "node-a"), (3, "node-a")]
        )
    );
    let (cluster, _, after) = plan_yaml(&yaml);
    let ports = k8snet_lb::plan_service(&cluster, &ctx, &NsName::new("default", "web"));
    px.update_service("default", "web", &ports).unwrap();
    node.forget_connections();
    let second = check_flows(client, &after, from, to, 46_000..46_050);

    // Flows that moved: those on b2, plus those whose slot the Maglev table
    // reassigned among the survivors (few).
    let moved_survivors = first
        .iter()
        .zip(&second)
        .filter(|(a, b)| a != b && *a != "b2")
        .count();
    assert!(second.iter().all(|n| n != "b2"));
    let old_pool = before.ports[0].cluster_pool.as_ref().unwrap();
    let new_pool = after.ports[0].cluster_pool.as_ref().unwrap();
    assert_eq!(
        old_pool.slots.len(),
        new_pool.slots.len(),
        "same table size (4 and 3 endpoints)"
    );
    assert!(
        moved_survivors <= 10,
        "{moved_survivors} of 50 flows moved between survivors: {first:?} -> {second:?}"
    );
}

/// kube-proxy #131765: the no-endpoint checks must run after DNAT, or the
/// node's own traffic to an eTP=Local NodePort is dropped before the
/// "short-circuit local traffic" rule can send it to the cluster pool.
#[test]
fn node_to_its_own_node_port_short_circuits_without_local_endpoints() {
    kernel_test!();
    let node = Node::new("lbnp");
    let (_, _, table) = plan_yaml(&remote_only_local_policy());
    node.proxier().sync(&table).unwrap();
    let from: SocketAddr = "198.19.128.1:48000".parse().unwrap();
    let to: SocketAddr = "198.19.128.1:30081".parse().unwrap();
    let flow = tcp_flow(from, to);
    let Prediction::Endpoint {
        ip,
        masquerade: true,
        ..
    } = predict(&table, &flow)
    else {
        panic!("{:?}", predict(&table, &flow))
    };
    let got = ask(node.tn.node(), from, to);
    assert_eq!(
        got.ok(),
        Some(name_of(ip)),
        "node-originated NodePort traffic"
    );
}

/// A VIP-style load balancer (kube-vip, ...) puts the VIP on the node; the
/// node's own traffic to it leaves with the VIP as source, which
/// `fib saddr type local` (not the node IP set) recognises.
#[test]
fn node_to_a_local_load_balancer_ip_short_circuits_without_local_endpoints() {
    kernel_test!();
    let node = Node::new("lbvip");
    node.tn
        .node()
        .ip(&["addr", "add", "198.19.1.60/32", "dev", "lo"])
        .unwrap();
    // The VIP is an address the node holds: predict learns it from the
    // kernel, as `fib saddr type local` does.
    let (_, _, table) = plan_on(&node, &remote_only_local_policy());
    node.proxier().sync(&table).unwrap();
    let from: SocketAddr = "198.19.1.60:48001".parse().unwrap();
    let to: SocketAddr = "198.19.1.60:80".parse().unwrap();
    let flow = tcp_flow(from, to);
    let Prediction::Endpoint {
        ip,
        masquerade: true,
        ..
    } = predict(&table, &flow)
    else {
        panic!("{:?}", predict(&table, &flow))
    };
    let got = ask(node.tn.node(), from, to);
    assert_eq!(got.ok(), Some(name_of(ip)), "node-originated VIP traffic");
    // nft itself lists the rules as k8snet-nft renders them.
    let listed = node
        .tn
        .node()
        .cmd(&["nft", "list", "table", "inet", "k8snet-lb"])
        .unwrap();
    for rule in [
        "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"",
        "fib saddr type local goto svc4-",
    ] {
        assert!(listed.contains(rule), "{rule} missing in\n{listed}");
    }
}

/// kube-proxy masquerades `saddr == endpoint` for every endpoint, so a pod
/// reaching itself through its Service is answered even when its slice
/// names no node (the field is optional).
#[test]
fn a_pod_reaches_itself_through_its_service_without_node_name() {
    kernel_test!();
    let node = Node::new("lbhair");
    let yaml = format!(
        "{NODE_A}---\napiVersion: v1\nkind: Service\nmetadata: {{name: self, namespace: default}}\nspec:\n  clusterIP: 198.19.0.24\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: self-1, namespace: default, labels: {{kubernetes.io/service-name: self}}}}\naddressType: IPv4\nendpoints: [{{addresses: ['{}']}}]\nports: [{{name: http, port: 8080}}]\n",
        backend_v4(0)
    );
    // As the CNI bridge plugin's `hairpinMode: true` does.
    node.tn
        .node()
        .cmd(&[
            "bridge",
            "link",
            "set",
            "dev",
            node.backends[0].node_ifname(),
            "hairpin",
            "on",
        ])
        .unwrap();
    let (_, _, table) = plan_yaml(&yaml);
    node.proxier().sync(&table).unwrap();
    let from = SocketAddr::new(backend_v4(0), 48_100);
    let to: SocketAddr = "198.19.0.24:80".parse().unwrap();
    let flow = tcp_flow(from, to);
    assert_eq!(
        predict(&table, &flow),
        Prediction::Endpoint {
            ip: backend_v4(0),
            port: 8080,
            masquerade: true
        }
    );
    let got = ask(node.backends[0].netns(), from, to);
    assert_eq!(
        got.ok().as_deref(),
        Some("b0"),
        "hairpin through the Service"
    );
}

/// kube-proxy's `cluster-ips-check`: a new connection to a ClusterIP on a
/// port no Service uses is rejected, not routed on.
#[test]
fn a_cluster_ip_on_a_port_no_service_uses_is_rejected() {
    kernel_test!();
    let node = Node::new("lbcip");
    let yaml = format!(
        "{NODE_A}{}{}",
        service("web", "198.19.0.20", ""),
        slice("web", "IPv4", "http", "TCP", &[(0, "node-a")])
    );
    let (_, _, table) = plan_yaml(&yaml);
    node.proxier().sync(&table).unwrap();
    let from: SocketAddr = "198.18.0.2:0".parse().unwrap();
    for (to, proto) in [
        ("198.19.0.20:81", Protocol::Tcp),
        ("198.19.0.20:80", Protocol::Udp),
    ] {
        let to: SocketAddr = to.parse().unwrap();
        let flow = Flow {
            saddr: from.ip(),
            sport: 48_200,
            daddr: to.ip(),
            dport: to.port(),
            protocol: proto,
        };
        assert_eq!(predict(&table, &flow), Prediction::Reject, "{to} {proto:?}");
    }
    let e = ask(node.client.netns(), from, "198.19.0.20:81".parse().unwrap()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    // From the node itself too (filter-output).
    let e = ask(
        node.tn.node(),
        "198.19.128.1:0".parse().unwrap(),
        "198.19.0.20:81".parse().unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
}

/// The first packet of a TCP connection from `from` to `to`.
fn tcp_flow(from: SocketAddr, to: SocketAddr) -> Flow {
    Flow {
        saddr: from.ip(),
        sport: from.port(),
        daddr: to.ip(),
        dport: to.port(),
        protocol: Protocol::Tcp,
    }
}

/// Whether a prediction and what the kernel did (a name, or a TCP
/// connection that timed out) agree.
fn agrees(predicted: &Prediction, kernel: &Result<String, std::io::ErrorKind>) -> bool {
    match (predicted, kernel) {
        (Prediction::Endpoint { ip, .. }, Ok(name)) => *name == name_of(*ip),
        (Prediction::Drop, Err(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)) => {
            true
        }
        _ => false,
    }
}

/// `fib saddr type local` for IPv6 in the output hook: the node's own
/// traffic to its eTP=Local NodePort (node IPv6) and to a VIP it holds
/// is short-circuited to the cluster pool, where predict says.
#[test]
fn ipv6_node_traffic_to_local_policy_frontends_short_circuits() {
    kernel_test!();
    let node = Node::new("rv6l");
    node.tn
        .node()
        .ip(&["-6", "addr", "add", "fd00:19::60/128", "dev", "lo", "nodad"])
        .unwrap();
    let (_, _, table) = plan_on(&node, &remote_only_local_policy_v6());
    node.proxier().sync(&table).unwrap();
    let mut bad = Vec::new();
    for (from, to) in [
        ("[fd00:19:1::1]:48010", "[fd00:19:1::1]:30083"),
        ("[fd00:19::60]:48011", "[fd00:19::60]:80"),
    ] {
        let (from, to): (SocketAddr, SocketAddr) = (from.parse().unwrap(), to.parse().unwrap());
        let flow = tcp_flow(from, to);
        let Prediction::Endpoint { ip, .. } = predict(&table, &flow) else {
            panic!("{:?}", predict(&table, &flow))
        };
        let got = ask(node.tn.node(), from, to);
        if got.as_ref().ok() != Some(&name_of(ip)) {
            bad.push(format!(
                "{from} -> {to}: {got:?}, predicted {}",
                name_of(ip)
            ));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The `kubernetes` Service: its EndpointSlice (written by the apiserver)
/// names no node; on a control-plane node the endpoint is the node's IP.
fn apiserver_service() -> String {
    format!(
        "{NODE_A}---\napiVersion: v1\nkind: Service\nmetadata: {{name: kubernetes, namespace: default}}\nspec:\n  clusterIP: 198.19.0.1\n  ports: [{{name: https, port: 443, targetPort: 6443}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: kubernetes, namespace: default, labels: {{kubernetes.io/service-name: kubernetes}}}}\naddressType: IPv4\nendpoints: [{{addresses: ['198.19.128.1'], conditions: {{ready: true}}}}]\nports: [{{name: https, port: 6443, protocol: TCP}}]\n"
    )
}

/// Node-local traffic that never went through a Service (a process on the
/// node connecting to the apiserver at the node IP directly) keeps its
/// source: kube-proxy masquerades `saddr == endpoint` only inside the
/// endpoint chain, i.e. for DNATed traffic (`ct status dnat`). Through the
/// ClusterIP the same connection is DNATed and masqueraded.
#[test]
fn direct_node_traffic_to_a_host_network_endpoint_keeps_its_source() {
    kernel_test!();
    use std::io::Write;
    let node = Node::new("rvhp");
    let (_, _, table) = plan_yaml(&apiserver_service());
    node.proxier().sync(&table).unwrap();
    let server: SocketAddr = "198.19.128.1:6443".parse().unwrap();
    let listener = node
        .tn
        .node()
        .run(|| std::net::TcpListener::bind(server).unwrap())
        .unwrap();
    // Answers each of two connections with the peer it saw.
    let h = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut c, peer) = listener.accept().unwrap();
            let _ = c.write_all(peer.to_string().as_bytes());
        }
    });
    let from: SocketAddr = "198.19.128.1:45123".parse().unwrap();
    let seen = ask(node.tn.node(), from, server);
    let cluster_ip: SocketAddr = "198.19.0.1:443".parse().unwrap();
    let from2: SocketAddr = "198.19.128.1:45124".parse().unwrap();
    let seen2 = ask(node.tn.node(), from2, cluster_ip);
    h.join().unwrap();
    assert_eq!(
        seen.unwrap(),
        from.to_string(),
        "the server saw another peer"
    );
    assert_eq!(
        predict(&table, &tcp_flow(from2, cluster_ip)),
        Prediction::Endpoint {
            ip: server.ip(),
            port: 6443,
            masquerade: true
        }
    );
    // Through the ClusterIP it is DNATed, and masqueraded (a source the
    // kernel picks, a `fully-random` port).
    let seen2: SocketAddr = seen2.unwrap().parse().unwrap();
    assert_ne!(seen2, from2, "masqueraded through the ClusterIP");
}

/// eTP=Local LB 198.19.1.60 (routed towards the outside link) whose
/// endpoints are all on node-b. The node's own connection, with the
/// source the kernel picks (198.19.200.1, an address the node holds on
/// its uplink but not in Node.status.addresses), is short-circuited by
/// `fib saddr type local`; predict, told the addresses the node holds,
/// says the same.
#[test]
fn predict_agrees_on_node_traffic_from_an_address_not_in_node_ips() {
    kernel_test!();
    let node = Node::new("rvfib");
    let (_, ctx, table) = plan_on(&node, &remote_only_local_policy());
    assert!(!ctx.ips.contains(&"198.19.200.1".parse().unwrap()));
    node.proxier().sync(&table).unwrap();
    let to: SocketAddr = "198.19.1.60:80".parse().unwrap();
    // The source the kernel picks for this destination (uplink address).
    let from: SocketAddr = "198.19.200.1:48020".parse().unwrap();
    let kernel = ask(node.tn.node(), from, to).map_err(|e| e.kind());
    let predicted = predict(&table, &tcp_flow(from, to));
    assert!(
        agrees(&predicted, &kernel),
        "predict {predicted:?}, kernel {kernel:?}"
    );
    assert!(kernel.is_ok(), "{kernel:?}");
}

/// A loopback source (127/8, `::1`) to a NodePort: the kernel delivers it
/// only when the endpoint is reached through `lo` too (an address the node
/// holds); DNATed to a pod it is dropped (IPv4: a martian source with
/// `route_localnet` off; IPv6: `::1` arriving on a non-loopback link).
/// predict says the same in each case.
#[test]
fn predict_agrees_on_loopback_sources_to_node_ports() {
    kernel_test!();
    use std::io::Write;
    let node = Node::new("rvlo");
    // eTP=Local without local endpoints (the node short-circuits to the
    // pods on node-b), both families; and `host`, whose endpoint is the
    // node itself (host network, no nodeName).
    let svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  clusterIP: 198.19.0.21\n  type: NodePort\n  externalTrafficPolicy: Local\n  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081}]\n";
    let eps = slice(
        "web",
        "IPv4",
        "http",
        "TCP",
        &[(1, "node-b"), (2, "node-b")],
    );
    let v6 = local_policy_lb("web6", "IPv6", &[(1, "node-b"), (2, "node-b")]);
    let host = "---\napiVersion: v1\nkind: Service\nmetadata: {name: host, namespace: default}\nspec:\n  clusterIP: 198.19.0.23\n  clusterIPs: [198.19.0.23, 'fd00:19::23']\n  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n  type: NodePort\n  ports: [{name: http, port: 80, targetPort: 6443, nodePort: 30090}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: host-4, namespace: default, labels: {kubernetes.io/service-name: host}}\naddressType: IPv4\nendpoints: [{addresses: ['198.19.128.1']}]\nports: [{name: http, port: 6443}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: host-6, namespace: default, labels: {kubernetes.io/service-name: host}}\naddressType: IPv6\nendpoints: [{addresses: ['fd00:19:1::1']}]\nports: [{name: http, port: 6443}]\n";
    let (_, _, table) = plan_on(&node, &format!("{NODE_A}{svc}{eps}{v6}{host}"));
    node.proxier().sync(&table).unwrap();
    let mut listeners = Vec::new();
    for a in ["198.19.128.1:6443", "[fd00:19:1::1]:6443"] {
        let a: SocketAddr = a.parse().unwrap();
        let l = node
            .tn
            .node()
            .run(|| std::net::TcpListener::bind(a).unwrap())
            .unwrap();
        listeners.push(std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let _ = c.write_all(b"host");
        }));
    }
    let mut bad = Vec::new();
    for (from, to) in [
        ("127.0.0.1:48030", "198.19.128.1:30081"),
        ("[::1]:48031", "[fd00:19:1::1]:30083"),
        ("127.0.0.1:48032", "198.19.128.1:30090"),
        ("[::1]:48033", "[fd00:19:1::1]:30090"),
    ] {
        let (from, to): (SocketAddr, SocketAddr) = (from.parse().unwrap(), to.parse().unwrap());
        let predicted = predict(&table, &tcp_flow(from, to));
        let kernel = ask(node.tn.node(), from, to).map_err(|e| e.kind());
        let ok = match (&predicted, &kernel) {
            (Prediction::Endpoint { ip, .. }, Ok(name)) if to.port() == 30090 => {
                *ip == to.ip() && name == "host"
            }
            _ => to.port() != 30090 && predicted == Prediction::Drop && agrees(&predicted, &kernel),
        };
        if !ok {
            bad.push(format!(
                "{from} -> {to}: predict {predicted:?}, kernel {kernel:?}"
            ));
        }
    }
    for h in listeners {
        h.join().unwrap();
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// iTP=Local ClusterIP without a local endpoint keeps its own "drop"
/// (cluster-ips-check must not turn it into a reject), from a pod and
/// from the node; IPv6 ClusterIP on an unused port is rejected.
#[test]
fn cluster_ips_check_keeps_no_endpoint_drop_and_rejects_ipv6() {
    kernel_test!();
    let node = Node::new("rvcip");
    let svc = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  clusterIP: 198.19.0.40\n  internalTrafficPolicy: Local\n  ports: [{name: http, port: 80, targetPort: 8080}]\n";
    let eps = slice("web", "IPv4", "http", "TCP", &[(1, "node-b")]);
    let svc6 = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web6, namespace: default}\nspec:\n  clusterIP: 'fd00:19::40'\n  clusterIPs: ['fd00:19::40']\n  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv6]\n  ports: [{name: http, port: 80, targetPort: 8080}]\n";
    let eps6 = slice("web6", "IPv6", "http", "TCP", &[(0, "node-a")]);
    let (_, _, table) = plan_yaml(&format!("{NODE_A}{svc}{eps}{svc6}{eps6}"));
    node.proxier().sync(&table).unwrap();
    let to: SocketAddr = "198.19.0.40:80".parse().unwrap();
    for (ns, from) in [
        (node.client.netns(), "198.18.0.2:48040"),
        (node.tn.node(), "198.19.128.1:48041"),
    ] {
        let from: SocketAddr = from.parse().unwrap();
        assert_eq!(predict(&table, &tcp_flow(from, to)), Prediction::Drop);
        let e = ask(ns, from, to).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{from}: {e}");
    }
    let from: SocketAddr = "[fd00:18::2]:48042".parse().unwrap();
    let to6: SocketAddr = "[fd00:19::40]:81".parse().unwrap();
    assert_eq!(predict(&table, &tcp_flow(from, to6)), Prediction::Reject);
    let e = ask(node.client.netns(), from, to6).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
}
