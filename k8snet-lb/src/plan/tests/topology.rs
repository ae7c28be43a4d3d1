//! Topology: hints, `trafficDistribution`.

use super::fixtures::*;

fn hinted(ip: &str, node: &str, zones: &str, nodes: &str) -> String {
    let zone = node.replace("node", "zone");
    format!(
        "{{addresses: [{ip}], nodeName: {node}, zone: {zone}, conditions: {READY}, hints: {{forZones: {zones}, forNodes: {nodes}}}}}"
    )
}

#[test]
fn prefer_close_uses_zone_hints() {
    let t = plan_yaml(&[
        svc("  trafficDistribution: PreferClose\n"),
        slice(&[
            &hinted("198.18.0.2", "node-a", "[{name: zone-a}]", "[]"),
            &hinted("198.18.1.2", "node-b", "[{name: zone-b}]", "[]"),
        ]),
    ]);
    assert_eq!(keys(one(&t).cluster_pool.as_ref()), ["198.18.0.2:8080"]);
}

#[test]
fn prefer_close_fills_zone_hints_when_slices_have_none() {
    let eps = [
        ep("198.18.0.2", "node-a", READY),
        ep("198.18.1.2", "node-b", READY),
    ];
    let refs: Vec<&str> = eps.iter().map(String::as_str).collect();
    let t = plan_yaml(&[svc("  trafficDistribution: PreferClose\n"), slice(&refs)]);
    assert_eq!(keys(one(&t).cluster_pool.as_ref()), ["198.18.0.2:8080"]);
    // Without trafficDistribution, no hints: every endpoint.
    let t = plan_yaml(&[svc(""), slice(&refs)]);
    assert_eq!(keys(one(&t).cluster_pool.as_ref()).len(), 2);
}

#[test]
fn zone_hints_are_ignored_when_an_endpoint_lacks_them() {
    let t = plan_yaml(&[
        svc(""),
        slice(&[
            &hinted("198.18.0.2", "node-a", "[{name: zone-a}]", "[]"),
            &ep("198.18.1.2", "node-b", READY)[..],
        ]),
    ]);
    assert_eq!(keys(one(&t).cluster_pool.as_ref()).len(), 2);
}

#[test]
fn zone_hints_are_ignored_when_none_names_this_zone() {
    let t = plan_yaml(&[
        svc(""),
        slice(&[
            &hinted("198.18.0.2", "node-a", "[{name: zone-c}]", "[]"),
            &hinted("198.18.1.2", "node-b", "[{name: zone-b}]", "[]"),
        ]),
    ]);
    assert_eq!(keys(one(&t).cluster_pool.as_ref()).len(), 2);
}

#[test]
fn hints_only_narrow_cluster_policy() {
    // Local policy ignores hints: a local endpoint hinted for another zone
    // still serves external Local traffic.
    let t = plan_yaml(&[
        node_port_svc("  externalTrafficPolicy: Local\n"),
        slice(&[
            &hinted("198.18.0.2", "node-a", "[{name: zone-b}]", "[]"),
            &hinted("198.18.1.2", "node-b", "[{name: zone-b}]", "[]"),
        ]),
    ]);
    assert_eq!(keys(one(&t).local_pool.as_ref()), ["198.18.0.2:8080"]);
}

#[test]
fn prefer_same_node_uses_node_hints() {
    let t = plan_yaml(&[
        svc(""),
        slice(&[
            &hinted(
                "198.18.0.2",
                "node-a",
                "[{name: zone-a}]",
                "[{name: node-a}]",
            ),
            &hinted(
                "198.18.0.3",
                "node-a",
                "[{name: zone-a}]",
                "[{name: node-x}]",
            ),
            &hinted(
                "198.18.1.2",
                "node-b",
                "[{name: zone-b}]",
                "[{name: node-b}]",
            ),
        ]),
    ]);
    assert_eq!(keys(one(&t).cluster_pool.as_ref()), ["198.18.0.2:8080"]);
    // PreferSameNode as trafficDistribution fills node hints too.
    let eps = [
        ep("198.18.0.2", "node-a", READY),
        ep("198.18.1.2", "node-b", READY),
    ];
    let refs: Vec<&str> = eps.iter().map(String::as_str).collect();
    let t = plan_yaml(&[svc("  trafficDistribution: PreferSameNode\n"), slice(&refs)]);
    assert_eq!(keys(one(&t).cluster_pool.as_ref()), ["198.18.0.2:8080"]);
}

#[test]
fn topology_never_hides_terminating_fallback() {
    // No ready endpoint: hints are irrelevant; serving-terminating ones
    // anywhere are used.
    let t = plan_yaml(&[
        svc("  trafficDistribution: PreferClose\n"),
        slice(&[ep("198.18.1.2", "node-b", TERMINATING)]),
    ]);
    assert_eq!(keys(one(&t).cluster_pool.as_ref()), ["198.18.1.2:8080"]);
}
