//! Every kube-proxy rule the plan implements, one test each, named after it.

use super::*;

pub(crate) mod fixtures;
mod topology;

use fixtures::*;

#[test]
fn cluster_ip_traffic_goes_to_ready_endpoints() {
    let t = plan_yaml(&[
        svc(""),
        slice(&[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.1.2", "node-b", READY),
        ]),
    ]);
    let p = one(&t);
    assert_eq!(p.internal, Target::ClusterPool);
    assert_eq!(
        keys(p.cluster_pool.as_ref()),
        ["198.18.0.2:8080", "198.18.1.2:8080"]
    );
    assert_eq!(p.cluster_ip, "198.19.0.20".parse::<IpAddr>().unwrap());
    assert_eq!(
        (p.port, p.node_port, p.external.is_none()),
        (80, None, true)
    );
    assert!(p.local_pool.is_none(), "Local policy is not used");
}

/// A cluster IP in a legacy spelling (stored by a default apiserver, read
/// by kube-proxy with `ParseIPSloppy`) is planned on the address read.
#[test]
fn legacy_cluster_ip_spelling_is_planned_on_the_address_read() {
    let t = plan_yaml(&[
        svc("").replace("198.19.0.20", "198.019.000.020"),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
    ]);
    let p = one(&t);
    assert_eq!(p.cluster_ip, "198.19.0.20".parse::<IpAddr>().unwrap());
    assert_eq!(keys(p.cluster_pool.as_ref()), ["198.18.0.2:8080"]);
}

#[test]
fn dual_stack_service_plans_one_port_per_family() {
    let t = plan_yaml(&[
        svc(
            "  clusterIPs: [198.19.0.20, 'fd00:19::20']\n  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n",
        ),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
        slice6(&[ep("fd00:18::2", "node-a", READY)]),
    ]);
    assert_eq!(t.ports.len(), 2);
    assert_eq!(t.ports[0].id.family, Family::IPv4);
    assert_eq!(t.ports[1].id.family, Family::IPv6);
    assert_eq!(
        t.ports[1].cluster_ip,
        "fd00:19::20".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        keys(t.ports[1].cluster_pool.as_ref()),
        ["[fd00:18::2]:8080"]
    );
    assert_eq!(keys(t.ports[0].cluster_pool.as_ref()), ["198.18.0.2:8080"]);
}

#[test]
fn headless_and_external_name_services_are_not_proxied() {
    let headless = "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: shop}\nspec: {clusterIP: None, ports: [{port: 5432}]}\n";
    let ext = "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: shop}\nspec: {type: ExternalName, externalName: example.invalid}\n";
    let t = plan_yaml(&[headless.into(), ext.into()]);
    assert!(t.ports.is_empty(), "{t:#?}");
}

#[test]
fn services_without_endpoints_reject() {
    let t = plan_yaml(&[node_port_svc("")]);
    let p = one(&t);
    assert_eq!(p.internal, Target::Reject);
    assert_eq!(p.external.as_ref().unwrap().target, Target::Reject);
    assert!(p.cluster_pool.is_none() && p.local_pool.is_none());
}

#[test]
fn endpoints_match_ports_by_name_and_protocol() {
    let s = svc_p(
        "[{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]",
        "",
    );
    let sl = format!(
        "{}---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-2, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nendpoints: [{{addresses: [198.18.0.9]}}]\nports: [{{name: dns, port: 5353, protocol: UDP}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-3, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nendpoints: [{{addresses: [198.18.0.8]}}]\nports: [{{name: dns, port: 9999, protocol: TCP}}]\n",
        slice(&[ep("198.18.0.2", "node-a", READY)])
    );
    let t = plan_yaml(&[s, sl]);
    let dns = t.ports.iter().find(|p| p.id.port == "dns").unwrap();
    assert_eq!(dns.id.protocol, k8snet_model::Protocol::Udp);
    assert_eq!(keys(dns.cluster_pool.as_ref()), ["198.18.0.9:5353"]);
    let http = t.ports.iter().find(|p| p.id.port == "http").unwrap();
    assert_eq!(keys(http.cluster_pool.as_ref()), ["198.18.0.2:8080"]);
}

#[test]
fn duplicate_endpoints_prefer_the_non_terminating_copy() {
    let t = plan_yaml(&[
        svc(""),
        slice(&[ep("198.18.0.2", "node-a", TERMINATING)]),
        slice_named("web-b", &[ep("198.18.0.2", "node-a", READY)], "IPv4"),
    ]);
    let pool = one(&t).cluster_pool.clone().unwrap();
    assert_eq!(pool.endpoints.len(), 1);
    assert!(pool.endpoints[0].ready && !pool.endpoints[0].terminating);
}

#[test]
fn terminating_endpoints_used_only_when_no_ready_ones() {
    let mixed = plan_yaml(&[
        svc(""),
        slice(&[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.0.3", "node-a", TERMINATING),
        ]),
    ]);
    assert_eq!(keys(one(&mixed).cluster_pool.as_ref()), ["198.18.0.2:8080"]);
    let only = plan_yaml(&[svc(""), slice(&[ep("198.18.0.3", "node-a", TERMINATING)])]);
    assert_eq!(one(&only).internal, Target::ClusterPool);
    assert_eq!(keys(one(&only).cluster_pool.as_ref()), ["198.18.0.3:8080"]);
}

#[test]
fn not_serving_endpoints_are_never_used() {
    let t = plan_yaml(&[
        svc(""),
        slice(&[
            ep("198.18.0.3", "node-a", GONE),
            ep("198.18.0.4", "node-a", NOT_READY),
        ]),
    ]);
    assert_eq!(one(&t).internal, Target::Reject);
}

#[test]
fn cluster_external_policy_masquerades_everything() {
    let t = plan_yaml(&[
        node_port_svc(""),
        slice(&[ep("198.18.1.2", "node-b", READY)]),
    ]);
    let ext = one(&t).external.clone().unwrap();
    assert_eq!(
        (ext.policy, ext.target),
        (Policy::Cluster, Target::ClusterPool)
    );
    assert!(ext.masquerade_all && !ext.short_circuit);
}

#[test]
fn local_external_policy_uses_only_local_endpoints() {
    let t = plan_yaml(&[
        node_port_svc("  externalTrafficPolicy: Local\n"),
        slice(&[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.1.2", "node-b", READY),
        ]),
    ]);
    let p = one(&t);
    let ext = p.external.clone().unwrap();
    assert_eq!(
        (ext.target, ext.masquerade_all, ext.short_circuit),
        (Target::LocalPool, false, true)
    );
    assert_eq!(keys(p.local_pool.as_ref()), ["198.18.0.2:8080"]);
    // ClusterIP traffic still uses every endpoint.
    assert_eq!(p.internal, Target::ClusterPool);
    assert_eq!(keys(p.cluster_pool.as_ref()).len(), 2);
}

#[test]
fn local_external_policy_drops_when_no_local_endpoints() {
    let t = plan_yaml(&[
        node_port_svc("  externalTrafficPolicy: Local\n"),
        slice(&[ep("198.18.1.2", "node-b", READY)]),
    ]);
    let p = one(&t);
    assert_eq!(p.external.as_ref().unwrap().target, Target::Drop);
    assert!(p.local_pool.is_none());
    // Pods and the node still reach the Service through the short-circuit.
    assert!(p.external.as_ref().unwrap().short_circuit);
    assert_eq!(keys(p.cluster_pool.as_ref()), ["198.18.1.2:8080"]);
}

#[test]
fn local_internal_policy_drops_when_no_local_endpoints() {
    let t = plan_yaml(&[
        svc("  internalTrafficPolicy: Local\n"),
        slice(&[ep("198.18.1.2", "node-b", READY)]),
    ]);
    let p = one(&t);
    assert_eq!(p.internal, Target::Drop);
    assert!(
        p.cluster_pool.is_none(),
        "Cluster policy is not used at all"
    );
    let t = plan_yaml(&[
        svc("  internalTrafficPolicy: Local\n"),
        slice(&[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.1.2", "node-b", READY),
        ]),
    ]);
    assert_eq!(one(&t).internal, Target::LocalPool);
    assert_eq!(keys(one(&t).local_pool.as_ref()), ["198.18.0.2:8080"]);
}

#[test]
fn local_policy_falls_back_to_local_terminating_endpoints() {
    let t = plan_yaml(&[
        svc("  internalTrafficPolicy: Local\n"),
        slice(&[
            ep("198.18.0.2", "node-a", TERMINATING),
            ep("198.18.1.2", "node-b", READY),
        ]),
    ]);
    assert_eq!(one(&t).internal, Target::LocalPool);
    assert_eq!(keys(one(&t).local_pool.as_ref()), ["198.18.0.2:8080"]);
}

#[test]
fn off_cluster_cluster_ip_traffic_is_masqueraded_when_cidrs_are_known() {
    let t = plan_yaml(&[svc(""), slice(&[ep("198.18.0.2", "node-a", READY)])]);
    assert!(one(&t).masquerade_off_cluster);
    assert_eq!(
        t.cluster_cidrs,
        [
            "198.18.0.0/24".parse::<IpNet>().unwrap(),
            "198.18.1.0/24".parse().unwrap()
        ]
    );
    let c = cluster(&[svc(""), slice(&[ep("198.18.0.2", "node-a", READY)])]);
    let bare = plan(&c, &NodeContext::new("node-a"));
    assert!(
        !one(&bare).masquerade_off_cluster,
        "no detector, no masquerade"
    );
}

#[test]
fn node_ports_only_for_node_port_and_load_balancer_types() {
    let t = plan_yaml(&[node_port_svc("")]);
    assert_eq!(one(&t).node_port, Some(30080));
    // A ClusterIP Service that still carries a node port (the apiserver
    // refuses it; a snapshot of trusted objects may not): not exposed.
    let c = cluster(&[node_port_svc("")]);
    let objects = c.objects().into_iter().map(|mut o| {
        if let k8snet_model::Object::Service(s) = &mut o {
            s.spec.service_type = Some(k8snet_model::ServiceType::ClusterIP);
        }
        o
    });
    let c = Cluster::from_objects(objects);
    let t = plan(&c, &NodeContext::from_cluster(&c, "node-a").unwrap());
    assert_eq!(one(&t).node_port, None);
    assert!(one(&t).external.is_none());
}

#[test]
fn external_ips_are_captured_per_family() {
    let t = plan_yaml(&[
        svc("  externalIPs: [198.19.200.50, 'fd00:19:2::50']\n"),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
    ]);
    let p = one(&t);
    assert_eq!(p.external_ips, ["198.19.200.50".parse::<IpAddr>().unwrap()]);
    assert_eq!(p.external.as_ref().unwrap().target, Target::ClusterPool);
}

#[test]
fn load_balancer_ingress_ips_are_captured_except_proxy_mode() {
    let t = plan_yaml(&[
        lb_svc(
            "",
            "[{ip: 198.19.200.60}, {ip: 198.19.200.61, ipMode: Proxy}, {hostname: lb.example.invalid}]",
        ),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
    ]);
    assert_eq!(
        one(&t).load_balancer_ips,
        ["198.19.200.60".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(one(&t).node_port, Some(30080));
}

#[test]
fn source_ranges_apply_to_load_balancer_ips() {
    let t = plan_yaml(&[
        lb_svc(
            "  loadBalancerSourceRanges: [198.19.200.0/25, 'fd00:19:2::/64']\n",
            "[{ip: 198.19.200.60}]",
        ),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
    ]);
    assert_eq!(
        one(&t).source_ranges,
        ["198.19.200.0/25".parse::<IpNet>().unwrap()]
    );
    // Without load balancer IPs there is nothing to firewall.
    let t = plan_yaml(&[lb_svc(
        "  loadBalancerSourceRanges: [198.19.200.0/25]\n",
        "[]",
    )]);
    assert!(one(&t).source_ranges.is_empty());
}

#[test]
fn source_ranges_admit_load_balancer_ips_when_a_range_holds_the_node() {
    let t = plan_yaml(&[
        lb_svc(
            "  loadBalancerSourceRanges: [198.19.128.0/24]\n",
            "[{ip: 198.19.200.60}]",
        ),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
    ]);
    let want: Vec<IpNet> = vec![
        "198.19.128.0/24".parse().unwrap(),
        "198.19.200.60/32".parse().unwrap(),
    ];
    assert_eq!(one(&t).source_ranges, want);
}

#[test]
fn session_affinity_client_ip_has_a_timeout() {
    let t = plan_yaml(&[
        svc("  sessionAffinity: ClientIP\n"),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
    ]);
    assert_eq!(one(&t).affinity_timeout, Some(10_800));
    let t = plan_yaml(&[
        svc(
            "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n",
        ),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
    ]);
    assert_eq!(one(&t).affinity_timeout, Some(60));
    let t = plan_yaml(&[svc(""), slice(&[ep("198.18.0.2", "node-a", READY)])]);
    assert_eq!(one(&t).affinity_timeout, None);
}

#[test]
fn health_check_node_port_answers_with_the_local_endpoint_count() {
    let s = lb_svc(
        "  externalTrafficPolicy: Local\n  healthCheckNodePort: 32000\n",
        "[{ip: 198.19.200.60}]",
    );
    let t = plan_yaml(&[
        s.clone(),
        slice(&[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.0.3", "node-a", READY),
            ep("198.18.1.2", "node-b", READY),
        ]),
    ]);
    let h = &t.health_checks[0];
    assert_eq!((h.node_port, h.local_endpoints), (32000, 2));
    let (status, headers, body) = h.response(true);
    assert_eq!(status, 200);
    assert!(headers.contains(&("X-Load-Balancing-Endpoint-Weight".into(), "2".into())));
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"service": {"namespace": "shop", "name": "web"}, "localEndpoints": 2, "serviceProxyHealthy": true})
    );
    assert_eq!(h.response(false).0, 503);
    let t = plan_yaml(&[s, slice(&[ep("198.18.1.2", "node-b", READY)])]);
    assert_eq!(t.health_checks[0].response(true).0, 503);
}

#[test]
fn conflicting_frontends_keep_the_first_service() {
    let other = "apiVersion: v1\nkind: Service\nmetadata: {name: zzz, namespace: shop}\nspec:\n  type: NodePort\n  clusterIP: 198.19.0.21\n  externalIPs: [198.19.200.50]\n  ports: [{name: http, port: 80, nodePort: 30080}]\n";
    let t = plan_yaml(&[
        node_port_svc("  externalIPs: [198.19.200.50]\n"),
        other.into(),
    ]);
    assert_eq!(t.ports.len(), 2);
    let zzz = t.ports.iter().find(|p| p.id.name == "zzz").unwrap();
    assert!(
        zzz.external_ips.is_empty() && zzz.node_port.is_none(),
        "{zzz:#?}"
    );
    assert_eq!(t.warnings.len(), 2, "{:#?}", t.warnings);
    assert!(
        t.warnings[0].contains("is already used by shop/web:http/TCP/v4"),
        "{:#?}",
        t.warnings
    );
}

#[test]
fn pools_get_a_maglev_table_sized_by_endpoint_count() {
    let eps: Vec<String> = (2..12)
        .map(|i| ep(&format!("198.18.0.{i}"), "node-a", READY))
        .collect();
    let refs: Vec<&str> = eps.iter().map(String::as_str).collect();
    let t = plan_yaml(&[svc(""), slice(&refs)]);
    let pool = one(&t).cluster_pool.clone().unwrap();
    assert_eq!(pool.slots.len(), 61, "10 endpoints x 6 slots -> 61");
    let counts = pool.counts();
    assert!(counts.iter().all(|c| *c == 6 || *c == 7), "{counts:?}");
}

#[test]
fn plan_service_equals_the_services_part_of_plan() {
    let c = cluster(&[
        svc(""),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
        node_port_svc_named("other"),
    ]);
    let ctx = NodeContext::from_cluster(&c, "node-a").unwrap();
    let all = plan(&c, &ctx);
    let web = plan_service(&c, &ctx, &NsName::new("shop", "web"));
    assert_eq!(
        web,
        all.ports
            .iter()
            .filter(|p| p.id.name == "web")
            .cloned()
            .collect::<Vec<_>>()
    );
    assert!(plan_service(&c, &ctx, &NsName::new("shop", "nope")).is_empty());
}

#[test]
fn node_context_comes_from_the_node_object() {
    let c = cluster(&[]);
    let ctx = NodeContext::from_cluster(&c, "node-b").unwrap();
    assert_eq!(ctx.ips, ["198.19.128.2".parse::<IpAddr>().unwrap()]);
    assert_eq!(ctx.zone.as_deref(), Some("zone-b"));
    let e = NodeContext::from_cluster(&c, "node-x")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "node node-x: metadata.name: no such Node in the manifests"
    );
}

#[test]
fn the_table_prints_as_text_and_json() {
    let t = plan_yaml(&[
        node_port_svc("  externalTrafficPolicy: Local\n"),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
    ]);
    let text = t.to_string();
    assert!(
        text.contains("shop/web:http/TCP/v4  198.19.0.20:80"),
        "{text}"
    );
    assert!(
        text.contains("nodePort 30080 (Local policy) -> local pool"),
        "{text}"
    );
    assert!(text.contains("198.18.0.2:8080"), "{text}");
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["ports"][0]["external"]["target"], "local_pool");
    assert_eq!(json["ports"][0]["id"]["family"], "IPv4");
}

#[test]
fn an_external_ip_copying_a_cluster_ip_loses_whatever_the_names() {
    // `aaa` comes first in name order, yet web's cluster IP wins.
    let aaa = "apiVersion: v1\nkind: Service\nmetadata: {name: aaa, namespace: shop}\nspec:\n  clusterIP: 198.19.0.21\n  externalIPs: [198.19.0.20, 198.19.200.50, 198.19.200.50]\n  ports: [{name: http, port: 80}]\n";
    let t = plan_yaml(&[svc(""), aaa.into()]);
    let aaa = t.ports.iter().find(|p| p.id.name == "aaa").unwrap();
    assert_eq!(
        aaa.external_ips,
        ["198.19.200.50".parse::<IpAddr>().unwrap()],
        "the copy is dropped, the repeat folded"
    );
    assert_eq!(
        t.warnings,
        [
            "shop/aaa:http/TCP/v4: external IP 198.19.0.20:80/TCP is already used by shop/web:http/TCP/v4; ignored"
        ]
    );
    // The table lowers: no two ports claim one frontend.
    crate::nftables::Layout::new().sync(&t).unwrap();
}

#[test]
fn serving_endpoints_are_every_serving_endpoint_whatever_the_pools() {
    let t = plan_yaml(&[
        svc("  trafficDistribution: PreferClose\n"),
        slice(&[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.1.2", "node-b", READY),
            ep("198.18.0.3", "node-a", TERMINATING),
            ep("198.18.0.4", "node-a", NOT_READY),
            ep("198.18.0.5", "node-a", GONE),
        ]),
    ]);
    let p = one(&t);
    // New flows: this zone's ready endpoint only.
    assert_eq!(keys(p.cluster_pool.as_ref()), ["198.18.0.2:8080"]);
    // Flows already running may stay on any endpoint still serving.
    let serving: Vec<String> = p
        .serving_endpoints
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        serving,
        ["198.18.0.2:8080", "198.18.0.3:8080", "198.18.1.2:8080"]
    );
}

#[test]
fn load_balancer_ips_and_source_ranges_are_read_whatever_the_type() {
    // kube-proxy's `newBaseServiceInfo` reads status.loadBalancer.ingress
    // and loadBalancerSourceRanges for every type (here a LoadBalancer
    // turned ClusterIP whose status was not cleared yet); the external
    // traffic policy counts only for externally accessible types.
    let c = cluster(&[
        lb_svc(
            "  loadBalancerSourceRanges: [198.19.200.0/25]\n  externalTrafficPolicy: Local\n",
            "[{ip: 198.19.200.60}]",
        ),
        slice(&[ep("198.18.1.2", "node-b", READY)]),
    ]);
    let objects = c.objects().into_iter().map(|mut o| {
        if let k8snet_model::Object::Service(s) = &mut o {
            s.spec.service_type = Some(k8snet_model::ServiceType::ClusterIP);
        }
        o
    });
    let c = Cluster::from_objects(objects);
    let t = plan(&c, &NodeContext::from_cluster(&c, "node-a").unwrap());
    let p = one(&t);
    assert_eq!(
        p.load_balancer_ips,
        ["198.19.200.60".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        p.source_ranges,
        ["198.19.200.0/25".parse::<IpNet>().unwrap()]
    );
    assert_eq!(p.node_port, None);
    let ext = p.external.as_ref().unwrap();
    assert_eq!(ext.policy, Policy::Cluster);
    assert_eq!(ext.target, Target::ClusterPool);
}

#[test]
fn off_cluster_masquerade_is_per_family() {
    // The nodes have IPv4 pod CIDRs only.
    let t = plan_yaml(&[
        svc(
            "  clusterIPs: [198.19.0.20, 'fd00:19::20']\n  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n",
        ),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
        slice6(&[ep("fd00:18::2", "node-a", READY)]),
    ]);
    let masq: Vec<(Family, bool)> = t
        .ports
        .iter()
        .map(|p| (p.id.family, p.masquerade_off_cluster))
        .collect();
    assert_eq!(masq, [(Family::IPv4, true), (Family::IPv6, false)]);
}

/// `shop/web` as a LoadBalancer with these legacy-field values.
fn lb_spelled(ranges: &str, external: &str, ingress: &str) -> String {
    lb_svc(
        &format!("  loadBalancerSourceRanges: {ranges}\n  externalIPs: {external}\n"),
        &format!("[{{ip: '{ingress}'}}]"),
    )
}

#[test]
fn legacy_spellings_plan_as_the_canonical_ones() {
    // A default apiserver stores these (IsValidCIDRForLegacyField,
    // IsValidIPForLegacyField) and kube-proxy reads them with
    // ParseCIDRSloppy / ParseIPSloppy: leading zeros are decimal, an
    // IPv4-mapped address is IPv4.
    let eps = slice(&[ep("198.18.0.2", "node-a", READY)]);
    let canonical = plan_yaml(&[
        lb_spelled("[198.19.128.0/24]", "[198.19.200.50]", "198.19.200.60"),
        eps.clone(),
    ]);
    for (ranges, external, ingress) in [
        (
            "['198.019.128.0/024']",
            "['198.019.200.050']",
            "198.019.200.060",
        ),
        (
            "['::ffff:198.19.128.0/120']",
            "['::ffff:198.19.200.50']",
            "::ffff:198.19.200.60",
        ),
        (" [' 198.19.128.7/24 ']", "[198.19.200.50]", "198.19.200.60"),
    ] {
        let t = plan_yaml(&[lb_spelled(ranges, external, ingress), eps.clone()]);
        assert_eq!(t.ports, canonical.ports, "{ranges} {external} {ingress}");
        assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
    }
    let p = one(&canonical);
    assert_eq!(p.external_ips, ["198.19.200.50".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        p.load_balancer_ips,
        ["198.19.200.60".parse::<IpAddr>().unwrap()]
    );
    assert!(
        p.source_ranges
            .contains(&"198.19.128.0/24".parse().unwrap())
    );
}

#[test]
fn legacy_pod_cidrs_are_cluster_cidrs() {
    let mut m = k8snet_model::Manifests::new();
    m.load_str(
        "n.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec: {podCIDR: '198.018.0.0/024', podCIDRs: ['198.018.0.0/024', 'fd00:18::1/064']}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-b}\nspec: {podCIDR: '::ffff:198.18.1.0/120'}\n",
    );
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let c = Cluster::from_manifests(&m);
    let ctx = NodeContext::from_cluster(&c, "node-a").unwrap();
    let want: Vec<IpNet> = ["198.18.0.0/24", "198.18.1.0/24", "fd00:18::/64"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ctx.cluster_cidrs, want);
}

/// The plan of node-a for `docs` with `shop/web`'s source ranges set to
/// `ranges` without validation (as a library user may build a Service):
/// the apiserver would refuse them.
fn plan_unvalidated_ranges(docs: &[String], ranges: &[&str]) -> ServiceTable {
    let c = cluster(docs);
    let objects = c
        .nodes()
        .cloned()
        .map(k8snet_model::Object::Node)
        .chain(
            c.endpoint_slices()
                .cloned()
                .map(k8snet_model::Object::EndpointSlice),
        )
        .chain(c.services().cloned().map(|mut svc| {
            svc.spec.load_balancer_source_ranges = ranges.iter().map(|r| r.to_string()).collect();
            k8snet_model::Object::Service(svc)
        }));
    let c = Cluster::from_objects(objects);
    plan(&c, &NodeContext::from_cluster(&c, "node-a").unwrap())
}

#[test]
fn an_unreadable_source_range_fails_closed() {
    let eps = slice(&[ep("198.18.0.2", "node-a", READY)]);
    let svc = lb_spelled("[]", "[198.19.200.50]", "198.19.200.60");
    for ranges in [&["nope"][..], &["198.19.200.0/25", "10.0.0.0/33"]] {
        let t = plan_unvalidated_ranges(&[svc.clone(), eps.clone()], ranges);
        let p = one(&t);
        // The load balancer IP is not captured: nothing reaches the
        // Service through it, where the range might have refused it.
        assert!(p.load_balancer_ips.is_empty(), "{ranges:?}: {p:#?}");
        assert!(p.source_ranges.is_empty(), "{ranges:?}: {p:#?}");
        // Node port and external IP are not behind source ranges.
        assert_eq!(p.node_port, Some(30080));
        assert_eq!(p.external_ips, ["198.19.200.50".parse::<IpAddr>().unwrap()]);
        assert!(
            t.warnings.iter().any(|w| w.contains("spec.loadBalancerSourceRanges[")
                && w.contains("not captured")),
            "{ranges:?}: {:#?}",
            t.warnings
        );
        // `predict` and the ruleset agree: the address is no frontend.
        let flow = crate::predict::Flow {
            saddr: "203.0.113.9".parse().unwrap(),
            sport: 40000,
            daddr: "198.19.200.60".parse().unwrap(),
            dport: 80,
            protocol: k8snet_model::Protocol::Tcp,
        };
        assert_eq!(
            crate::predict::predict(&t, &flow),
            crate::predict::Prediction::Pass
        );
        let mut l = crate::nftables::Layout::new();
        l.sync(&t).unwrap();
        let text = k8snet_nft::render(&l.table());
        assert!(!text.contains("198.19.200.60"), "{text}");
        assert!(text.contains("198.19.200.50"), "{text}");
    }
}

/// kube-proxy reads a Node's InternalIP/ExternalIP addresses with
/// `ParseIPSloppy` (`GetNodeHostIPs`): a legacy spelling the model accepts
/// (with a warning) is the node's address, in list order, each once;
/// names and other types are not.
#[test]
fn node_addresses_in_legacy_spellings_are_the_node_ips() {
    let mut m = k8snet_model::Manifests::new();
    m.load_str(
        "t.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nstatus:\n  addresses:\n  - {type: Hostname, address: node-a}\n  - {type: InternalIP, address: 198.019.128.001}\n  - {type: ExternalIP, address: '::ffff:198.19.200.7'}\n  - {type: InternalIP, address: 198.19.128.1}\n  - {type: InternalDNS, address: node-a.example}\n",
    );
    let errors: Vec<String> = m.errors().iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let c = Cluster::from_manifests(&m);
    let ctx = NodeContext::from_cluster(&c, "node-a").unwrap();
    let want: Vec<IpAddr> = ["198.19.128.1", "198.19.200.7"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ctx.ips, want);
}
