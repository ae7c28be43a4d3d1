//! Stale UDP entries, decided from plans without a kernel.

use std::net::IpAddr;

use super::*;
use crate::plan::tests::fixtures::*;

/// UDP `shop/web` (198.19.0.20:53, node port 30053) with `eps`.
fn udp(extra: &str, eps: &[String]) -> Vec<ServicePort> {
    let svc = svc_p(
        "[{name: http, port: 53, targetPort: 8080, protocol: UDP, nodePort: 30053}]",
        &format!("  type: NodePort\n{extra}"),
    );
    plan_yaml(&[svc, slice(eps).replace("protocol: TCP", "protocol: UDP")]).ports
}

fn entry(dst: &str, dport: u16, reply: &str, rport: u16) -> Entry {
    Entry {
        protocol: 17,
        orig_src: "198.18.0.9".parse().unwrap(),
        orig_dst: dst.parse().unwrap(),
        orig_sport: 40_000,
        orig_dport: dport,
        reply_src: reply.parse().unwrap(),
        reply_sport: rport,
    }
}

fn node_ips() -> Vec<IpAddr> {
    vec!["198.19.128.1".parse().unwrap()]
}

#[test]
fn flows_to_endpoints_still_serving_are_kept_whatever_their_state() {
    let before = udp(
        "",
        &[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.0.3", "node-a", READY),
            ep("198.18.0.4", "node-a", READY),
        ],
    );
    // .3 terminates but still serves; .4 stops serving.
    let after = udp(
        "",
        &[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.0.3", "node-a", TERMINATING),
            ep("198.18.0.4", "node-a", GONE),
        ],
    );
    let pool = after[0].cluster_pool.as_ref().unwrap();
    assert_eq!(pool.endpoints.len(), 1, "only .2 takes new flows");
    let s = StaleUdp::new(&before, &after, &node_ips(), &node_ips(), false);
    assert!(!s.is_stale(&entry("198.19.0.20", 53, "198.18.0.2", 8080)));
    assert!(!s.is_stale(&entry("198.19.0.20", 53, "198.18.0.3", 8080)));
    assert!(s.is_stale(&entry("198.19.0.20", 53, "198.18.0.4", 8080)));
    // The same through the node port, at the node's IP only.
    assert!(!s.is_stale(&entry("198.19.128.1", 30053, "198.18.0.3", 8080)));
    assert!(s.is_stale(&entry("198.19.128.1", 30053, "198.18.0.4", 8080)));
    assert!(!s.is_stale(&entry("198.19.200.9", 30053, "198.18.0.4", 8080)));
    // Never DNATed (made while nothing served): stale.
    assert!(s.is_stale(&entry("198.19.0.20", 53, "198.19.0.20", 53)));
    // Other ports, other protocols: untouched.
    assert!(!s.is_stale(&entry("198.19.0.20", 54, "198.18.0.4", 8080)));
    let tcp = Entry {
        protocol: 6,
        ..entry("198.19.0.20", 53, "198.18.0.4", 8080)
    };
    assert!(!s.is_stale(&tcp));
}

#[test]
fn endpoints_topology_or_policy_leave_out_of_the_pool_keep_their_flows() {
    let eps = [
        ep("198.18.0.2", "node-a", READY),
        ep("198.18.1.2", "node-b", READY),
    ];
    let before = udp("", &eps);
    // Same zone only (node-a is in zone-a), and Local external policy.
    let after = udp(
        "  trafficDistribution: PreferClose\n  externalTrafficPolicy: Local\n",
        &eps,
    );
    let p = &after[0];
    assert_eq!(keys(p.cluster_pool.as_ref()), ["198.18.0.2:8080"]);
    assert_eq!(keys(p.local_pool.as_ref()), ["198.18.0.2:8080"]);
    let s = StaleUdp::new(&before, &after, &node_ips(), &node_ips(), false);
    assert!(!s.is_stale(&entry("198.19.0.20", 53, "198.18.1.2", 8080)));
    assert!(!s.is_stale(&entry("198.19.128.1", 30053, "198.18.1.2", 8080)));
}

#[test]
fn unchanged_ports_are_checked_only_when_asked_for_all() {
    let ports = udp("", &[ep("198.18.0.2", "node-a", READY)]);
    let stray = entry("198.19.0.20", 53, "198.19.0.20", 53);
    let s = StaleUdp::new(&ports, &ports, &node_ips(), &node_ips(), false);
    assert!(s.is_empty());
    assert!(!s.is_stale(&stray));
    // A start or resync: conntrack may hold anything.
    let s = StaleUdp::new(&[], &ports, &node_ips(), &node_ips(), true);
    assert!(s.is_stale(&stray));
    assert!(!s.is_stale(&entry("198.19.0.20", 53, "198.18.0.2", 8080)));
}

#[test]
fn a_port_left_without_serving_endpoints_drops_their_flows_only() {
    let before = udp(
        "",
        &[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.0.3", "node-a", READY),
        ],
    );
    for after in [udp("", &[ep("198.18.0.2", "node-a", GONE)]), Vec::new()] {
        let s = StaleUdp::new(&before, &after, &node_ips(), &node_ips(), false);
        assert!(s.is_stale(&entry("198.19.0.20", 53, "198.18.0.2", 8080)));
        assert!(s.is_stale(&entry("198.19.128.1", 30053, "198.18.0.3", 8080)));
        // Nothing decides about entries nobody served.
        assert!(!s.is_stale(&entry("198.19.0.20", 53, "198.19.0.20", 53)));
    }
}

#[test]
fn a_new_node_ip_checks_every_node_port_there() {
    // Same ports and endpoints; the node's IP changed. An entry made to the
    // new IP's node port before it was one (never DNATed) is stale; the
    // flows the endpoint answers there are kept.
    let ports = udp("", &[ep("198.18.0.2", "node-a", READY)]);
    let new_ips: Vec<IpAddr> = vec!["198.19.128.7".parse().unwrap()];
    let s = StaleUdp::new(&ports, &ports, &node_ips(), &new_ips, false);
    assert!(s.is_stale(&entry("198.19.128.7", 30053, "198.19.128.7", 30053)));
    assert!(!s.is_stale(&entry("198.19.128.7", 30053, "198.18.0.2", 8080)));
    // The same IPs: nothing changed, nothing to check.
    assert!(StaleUdp::new(&ports, &ports, &new_ips, &new_ips, false).is_empty());
}
