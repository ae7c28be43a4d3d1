//! The lowering, checked by rendering, by playing batches on an in-memory
//! table, and against `predict`.

use super::*;
use crate::plan::tests::fixtures::*;
use crate::plan::{NodeContext, plan, plan_service};
use crate::predict::{Flow, Prediction, predict};
use k8snet_model::{NsName, Protocol};
use k8snet_nft::render;

fn lowered(docs: &[String]) -> (ServiceTable, Layout, String) {
    let t = plan_yaml(docs);
    let mut l = Layout::new();
    l.sync(&t).unwrap();
    let text = render(&l.table());
    (t, l, text)
}

fn two_eps() -> String {
    slice(&[
        ep("198.18.0.2", "node-a", READY),
        ep("198.18.1.2", "node-b", READY),
    ])
}

#[test]
fn an_empty_plan_is_kube_proxys_skeleton() {
    let (_, _, text) = lowered(&[]);
    for line in [
        "chain nat-prerouting {\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\tjump services\n",
        // Pre-DNAT firewalling; no-endpoint and ClusterIP checks after DNAT
        // (kube-proxy #131765).
        "chain filter-prerouting-pre-dnat {\n\t\ttype filter hook prerouting priority -110; policy accept;\n\t\tct state new jump firewall-check\n\t}\n",
        "chain filter-output-pre-dnat {\n\t\ttype filter hook output priority -110; policy accept;\n\t\tct state new jump firewall-check\n\t}\n",
        "chain filter-input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tct state new jump endpoints-check\n\t}\n",
        "chain filter-forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tct state new jump endpoints-check\n\t\tct state new jump cluster-ips-check\n\t}\n",
        "chain filter-output {\n\t\ttype filter hook output priority 0; policy accept;\n\t\tct state new jump endpoints-check\n\t\tct state new jump cluster-ips-check\n\t}\n",
        "\t\tip daddr @cluster-ips goto reject-chain comment \"reject traffic to invalid ports of ClusterIPs\"\n",
        "\t\tip6 daddr @cluster-ips6 goto reject-chain comment \"reject traffic to invalid ports of ClusterIPs\"\n",
        "\t\tip daddr . meta l4proto . th dport vmap @service-ips\n",
        "\t\tip6 daddr . meta l4proto . th dport vmap @service-ips6\n",
        "\t\tip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports\n",
        "\t\tip daddr . meta l4proto . th dport vmap @no-endpoint-services\n",
        "\t\tip daddr . meta l4proto . th dport vmap @firewall-ips\n",
        // Hairpin only after DNAT (kube-proxy masquerades it in the
        // endpoint chain): a direct node-to-node-IP connection keeps its
        // source.
        "\t\tct status dnat ip saddr . ip daddr @hairpin jump mark-for-masquerade\n",
        "\t\tct status dnat ip6 saddr . ip6 daddr @hairpin6 jump mark-for-masquerade\n",
        "\t\tmeta mark != 0x00004000 return\n",
        "\t\tmasquerade fully-random\n",
        "\t\treject with tcp reset\n\t\treject with icmpx port-unreachable\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // The node's IP accepts node ports.
    assert!(text.contains("elements = { 198.19.128.1 }"), "{text}");
}

#[test]
fn a_cluster_ip_dispatches_to_a_jhash_slot_map_filled_from_maglev() {
    let (t, l, text) = lowered(&[svc(""), two_eps()]);
    let p = &t.ports[0];
    let chain = port::chain_name("svc", p);
    assert!(
        text.contains(&format!("198.19.0.20 . tcp . 80 : goto {chain}")),
        "{text}"
    );
    let (map, w) = l.windows[&(p.id.clone(), port::PoolKind::Cluster)].clone();
    let rule = format!(
        "meta l4proto tcp dnat ip to jhash ip saddr . th sport mod 31 seed 0x6b38736e offset {} map @{map}",
        w << 16
    );
    assert!(text.contains(&rule), "missing {rule} in\n{text}");
    let slots = &l.table().sets[&map];
    assert_eq!(slots.elements.len(), 31);
    // Off-cluster sources to the ClusterIP are masqueraded.
    assert!(text.contains("ip daddr 198.19.0.20 meta l4proto tcp th dport 80 ip saddr != { 198.18.0.0/24, 198.18.1.0/24 } jump mark-for-masquerade"), "{text}");
}

#[test]
fn services_without_endpoints_lower_to_reject() {
    let (_, _, text) = lowered(&[node_port_svc("")]);
    assert!(
        text.contains("198.19.0.20 . tcp . 80 : goto reject-chain"),
        "{text}"
    );
    assert!(text.contains("tcp . 30080 : goto reject-chain"), "{text}");
    assert!(!text.contains("chain ext4-"), "{text}");
}

#[test]
fn local_policy_without_local_endpoints_lowers_to_drop_and_short_circuits() {
    let (t, _, text) = lowered(&[
        node_port_svc("  externalTrafficPolicy: Local\n"),
        slice(&[ep("198.18.1.2", "node-b", READY)]),
    ]);
    assert!(text.contains("tcp . 30080 : drop"), "{text}");
    let p = &t.ports[0];
    let ext = port::chain_name("ext", p);
    let svc = port::chain_name("svc", p);
    assert!(
        text.contains(&format!("tcp . 30080 : goto {ext}")),
        "{text}"
    );
    assert!(text.contains(&format!("ip saddr {{ 198.18.0.0/24, 198.18.1.0/24 }} goto {svc} comment \"short-circuit pod traffic\"")), "{text}");
    assert!(
        text.contains(&format!(
            "fib saddr type local goto {svc} comment \"short-circuit local traffic\""
        )),
        "{text}"
    );
}

#[test]
fn source_ranges_lower_to_a_firewall_chain() {
    let (t, _, text) = lowered(&[
        lb_svc(
            "  loadBalancerSourceRanges: [198.19.200.0/25]\n",
            "[{ip: 198.19.200.60}]",
        ),
        two_eps(),
    ]);
    let fw = port::chain_name("fw", &t.ports[0]);
    assert!(
        text.contains(&format!("198.19.200.60 . tcp . 80 : goto {fw}")),
        "{text}"
    );
    assert!(
        text.contains("\t\tip saddr != 198.19.200.0/25 drop\n"),
        "{text}"
    );
}

#[test]
fn affinity_lowers_to_timeout_sets_and_endpoint_chains() {
    let (_, l, text) = lowered(&[
        svc(
            "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n",
        ),
        two_eps(),
    ]);
    assert!(
        text.contains("flags dynamic,timeout\n\t\ttimeout 1m\n") || text.contains("timeout 1m"),
        "{text}"
    );
    assert!(text.contains("update @aff4-"), "{text}");
    assert!(
        text.contains("jhash ip saddr mod 31 seed 0x6b38736e vmap @aslots4-"),
        "{text}"
    );
    assert!(
        text.contains("meta l4proto tcp dnat ip to 198.18.1.2:8080"),
        "{text}"
    );
    assert!(l.windows.is_empty(), "affinity pools use their own map");
}

#[test]
fn hairpin_pairs_are_the_endpoints_that_may_be_on_this_node() {
    // A pair matches only a pod of this node that reached itself: local
    // endpoints, and those without `nodeName` (optional, so one may be
    // here). Remote endpoints are left out, so the set does not grow with
    // the cluster.
    let no_node = "{addresses: [198.18.0.3]}";
    let (_, l, _) = lowered(&[
        svc(""),
        slice(&[
            ep("198.18.1.2", "node-b", READY),
            ep("198.18.0.2", "node-a", READY),
            no_node.into(),
        ]),
    ]);
    let hp = &l.table().sets["hairpin"];
    let keys: Vec<String> = hp.elements.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["198.18.0.2 . 198.18.0.2", "198.18.0.3 . 198.18.0.3"]);
}

#[test]
fn a_changed_service_touches_only_its_own_chains_and_elements() {
    let other = node_port_svc_named("other");
    let other_slice = slice(&[ep("198.18.0.7", "node-a", READY)])
        .replace("web-a", "other-a")
        .replace("service-name: web", "service-name: other");
    let c1 = cluster(&[svc(""), two_eps(), other.clone(), other_slice.clone()]);
    let ctx = NodeContext::from_cluster(&c1, "node-a").unwrap();
    let mut l = Layout::new();
    l.sync(&plan(&c1, &ctx)).unwrap();
    let before = l.table();

    // web loses an endpoint and gains another.
    let c2 = cluster(&[
        svc(""),
        slice(&[
            ep("198.18.0.2", "node-a", READY),
            ep("198.18.1.9", "node-b", READY),
        ]),
        other,
        other_slice,
    ]);
    let ports = plan_service(&c2, &ctx, &NsName::new("shop", "web"));
    let batch = l.update_service("shop", "web", &ports).unwrap();
    let text = batch.to_string();
    assert!(!text.contains("other"), "{text}");
    assert!(
        !text.contains("flush chain"),
        "the pool chain did not change: {text}"
    );
    assert!(text.contains("198.18.1.9 . 8080"), "{text}");
    // Exactly the slots whose endpoint the Maglev table moved change:
    // each is one deleted and one added element. The endpoint that left
    // and the one that came are on node-b: no hairpin pairs change.
    let key_at = |t: &ServiceTable, i: usize| {
        let pool = t
            .ports
            .iter()
            .find(|p| p.id.name == "web")
            .unwrap()
            .cluster_pool
            .clone()
            .unwrap();
        pool.endpoints[pool.slots[i] as usize].key()
    };
    let (t1, t2) = (plan(&c1, &ctx), plan(&c2, &ctx));
    let moved = (0..31)
        .filter(|i| key_at(&t1, *i) != key_at(&t2, *i))
        .count();
    assert_eq!(batch.element_count(), 2 * moved, "{text}");
    assert!(!text.contains("hairpin"), "{text}");
    // Playing the batch on the old table gives the new full table.
    assert_eq!(batch.apply_to(Some(&before)).unwrap(), Some(l.table()));
    // And a full sync of the same plan changes nothing more.
    let again = l.sync(&plan(&c2, &ctx)).unwrap();
    assert!(again.is_empty(), "{again}");
}

#[test]
fn removing_and_re_adding_services_round_trips_through_batches() {
    let (t, mut l, _) = lowered(&[svc(""), two_eps()]);
    let before = l.table();
    let gone = l.update_service("shop", "web", &[]).unwrap();
    let empty = gone.apply_to(Some(&before)).unwrap().unwrap();
    assert!(!render(&empty).contains("svc4-"), "{}", render(&empty));
    assert_eq!(empty, l.table());
    let back = l.update_service("shop", "web", &t.ports).unwrap();
    assert_eq!(back.apply_to(Some(&empty)).unwrap(), Some(before));
}

#[test]
fn predict_agrees_with_the_lowered_slot_map() {
    let eps: Vec<String> = (2..9)
        .map(|i| ep(&format!("198.18.0.{i}"), "node-a", READY))
        .collect();
    let (t, l, _) = lowered(&[svc(""), slice(&eps)]);
    let p = &t.ports[0];
    let (map, w) = l.windows[&(p.id.clone(), port::PoolKind::Cluster)].clone();
    let table = l.table();
    let pool = p.cluster_pool.as_ref().unwrap();
    for sport in 40_000..40_050u16 {
        let flow = Flow {
            saddr: "198.18.0.50".parse().unwrap(),
            sport,
            daddr: p.cluster_ip,
            dport: 80,
            protocol: Protocol::Tcp,
        };
        let Prediction::Endpoint {
            ip,
            port,
            masquerade,
        } = predict(&t, &flow)
        else {
            panic!()
        };
        assert!(!masquerade);
        // The kernel's slot for this flow, read from the lowered map.
        let bytes = k8snet_nft::key_bytes(
            &k8snet_nft::Key(vec![
                k8snet_nft::Value::Ipv4("198.18.0.50".parse().unwrap()),
                k8snet_nft::Value::Port(sport),
            ]),
            &[
                k8snet_nft::DataType::Ipv4Addr,
                k8snet_nft::DataType::InetService,
            ],
        )
        .unwrap();
        let slot = k8snet_nft::predict_jhash_slot(&bytes, t.seed, pool.slots.len() as u32);
        let key = k8snet_nft::Key::one(k8snet_nft::Value::Int(u64::from((w << 16) + slot)));
        let value = table.sets[&map].elements[&key].value.clone().unwrap();
        let want = k8snet_nft::MapValue::Data(k8snet_nft::Key(vec![
            ip_value(ip),
            k8snet_nft::Value::Port(port),
        ]));
        assert_eq!(value, want, "sport {sport}");
    }
}

#[test]
fn predict_covers_reject_drop_firewall_and_hairpin() {
    let flow = |s: &str, d: &str, port| Flow {
        saddr: s.parse().unwrap(),
        sport: 40_000,
        daddr: d.parse().unwrap(),
        dport: port,
        protocol: Protocol::Tcp,
    };
    let t = plan_yaml(&[node_port_svc("")]);
    assert_eq!(
        predict(&t, &flow("198.18.0.9", "198.19.0.20", 80)),
        Prediction::Reject
    );
    assert_eq!(
        predict(&t, &flow("198.19.200.9", "198.19.128.1", 30080)),
        Prediction::Reject
    );
    // kube-proxy's cluster-ips-check: a ClusterIP's other ports (and
    // protocols) are refused; addresses that are no ClusterIP pass.
    assert_eq!(
        predict(&t, &flow("198.18.0.9", "198.19.0.20", 81)),
        Prediction::Reject
    );
    assert_eq!(
        predict(
            &t,
            &Flow {
                protocol: Protocol::Udp,
                ..flow("198.18.0.9", "198.19.0.20", 80)
            }
        ),
        Prediction::Reject
    );
    assert_eq!(
        predict(&t, &flow("198.18.0.9", "198.19.0.21", 80)),
        Prediction::Pass
    );

    let t = plan_yaml(&[
        lb_svc(
            "  loadBalancerSourceRanges: [198.19.200.0/25, 198.18.0.0/16]\n  externalTrafficPolicy: Local\n",
            "[{ip: 198.19.200.60}]",
        ),
        slice(&[ep("198.18.1.2", "node-b", READY)]),
    ]);
    assert_eq!(
        predict(&t, &flow("198.19.200.200", "198.19.200.60", 80)),
        Prediction::Drop,
        "outside the ranges"
    );
    assert_eq!(
        predict(&t, &flow("198.19.200.9", "198.19.200.60", 80)),
        Prediction::Drop,
        "no local endpoint"
    );
    assert!(
        matches!(
            predict(&t, &flow("198.18.0.9", "198.19.200.60", 80)),
            Prediction::Endpoint {
                masquerade: false,
                ..
            }
        ),
        "pods short-circuit"
    );

    let t = plan_yaml(&[svc(""), slice(&[ep("198.18.0.2", "node-a", READY)])]);
    assert_eq!(
        predict(&t, &flow("198.18.0.2", "198.19.0.20", 80)),
        Prediction::Endpoint {
            ip: "198.18.0.2".parse().unwrap(),
            port: 8080,
            masquerade: true
        }
    );
    // A remote endpoint is not in `hairpin`: not masqueraded here.
    let t2 = plan_yaml(&[svc(""), slice(&[ep("198.18.1.2", "node-b", READY)])]);
    assert_eq!(
        predict(&t2, &flow("198.18.1.2", "198.19.0.20", 80)),
        Prediction::Endpoint {
            ip: "198.18.1.2".parse().unwrap(),
            port: 8080,
            masquerade: false
        }
    );
    assert!(
        matches!(
            predict(&t, &flow("198.19.200.9", "198.19.0.20", 80)),
            Prediction::Endpoint {
                masquerade: true,
                ..
            }
        ),
        "off-cluster"
    );
}

#[test]
fn predict_asks_the_nodes_addresses_for_fib_saddr_type_local() {
    let flow = |s: &str, d: &str, port| Flow {
        saddr: s.parse().unwrap(),
        sport: 40_000,
        daddr: d.parse().unwrap(),
        dport: port,
        protocol: Protocol::Tcp,
    };
    let docs = [
        lb_svc("  externalTrafficPolicy: Local\n", "[{ip: 198.19.200.60}]"),
        slice(&[ep("198.18.1.2", "node-b", READY)]),
    ];
    // 198.19.200.1: an uplink address, not among the node's IPs. Unknown
    // to the plan, it is an outside client (no local endpoint: dropped).
    let mut t = plan_yaml(&docs);
    let uplink = flow("198.19.200.1", "198.19.128.1", 30080);
    assert_eq!(predict(&t, &uplink), Prediction::Drop);
    // Told the node holds it, it is the node's own traffic: short-circuit
    // to the cluster pool, masqueraded, as `fib saddr type local` does.
    t.local_addrs = vec!["198.19.200.1/32".parse().unwrap()];
    assert_eq!(
        predict(&t, &uplink),
        Prediction::Endpoint {
            ip: "198.18.1.2".parse().unwrap(),
            port: 8080,
            masquerade: true
        }
    );
    // A VIP as its own source is the node's only if the node holds it.
    let vip = flow("198.19.200.60", "198.19.200.60", 80);
    assert_eq!(predict(&t, &vip), Prediction::Drop);
    t.local_addrs.push("198.19.200.60/32".parse().unwrap());
    assert!(matches!(
        predict(&t, &vip),
        Prediction::Endpoint {
            masquerade: true,
            ..
        }
    ));
    // Loopback is local, but cannot leave `lo`: DNATed to a pod it is
    // dropped, whichever family.
    assert_eq!(
        predict(&t, &flow("127.0.0.1", "198.19.128.1", 30080)),
        Prediction::Drop
    );
}

#[test]
fn predict_lets_loopback_reach_only_endpoints_the_node_holds() {
    let flow = |s: &str, d: &str, port| Flow {
        saddr: s.parse().unwrap(),
        sport: 40_000,
        daddr: d.parse().unwrap(),
        dport: port,
        protocol: Protocol::Tcp,
    };
    // A host-network endpoint (the node's IP, no nodeName).
    let t = plan_yaml(&[
        node_port_svc(""),
        slice(&["{addresses: [198.19.128.1]}".to_string()]),
    ]);
    assert_eq!(
        predict(&t, &flow("127.0.0.1", "198.19.128.1", 30080)),
        Prediction::Endpoint {
            ip: "198.19.128.1".parse().unwrap(),
            port: 8080,
            masquerade: true
        }
    );
    // To the ClusterIP, routed away from `lo`: refused before DNAT.
    assert_eq!(
        predict(&t, &flow("127.0.0.1", "198.19.0.20", 80)),
        Prediction::Drop
    );
    // A pod endpoint: dropped.
    let t = plan_yaml(&[
        node_port_svc(""),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
    ]);
    assert_eq!(
        predict(&t, &flow("127.0.0.5", "198.19.128.1", 30080)),
        Prediction::Drop
    );
}

/// `shop/web` (198.19.0.20:80, node port 30080, two endpoints) and
/// `shop/other` (198.19.0.99:80, node port 30099, one endpoint), synced.
fn two_services() -> (NodeContext, Layout) {
    let c = cluster(&[svc_with_node_port(), two_eps(), other(""), other_slice()]);
    let ctx = NodeContext::from_cluster(&c, "node-a").unwrap();
    let mut l = Layout::new();
    l.sync(&plan(&c, &ctx)).unwrap();
    (ctx, l)
}

fn svc_with_node_port() -> String {
    node_port_svc("")
}

/// `shop/other` with `extra` spec lines.
fn other(extra: &str) -> String {
    node_port_svc_named("other")
        .replace("  type: NodePort\n", &format!("  type: NodePort\n{extra}"))
}

fn other_slice() -> String {
    slice(&[ep("198.18.0.7", "node-a", READY)])
        .replace("web-a", "other-a")
        .replace("service-name: web", "service-name: other")
}

/// `other`'s ports as `plan_service` gives them after `edit`.
fn other_ports(ctx: &NodeContext, other_yaml: String) -> Vec<ServicePort> {
    let c = cluster(&[svc_with_node_port(), two_eps(), other_yaml, other_slice()]);
    plan_service(&c, ctx, &NsName::new("shop", "other"))
}

/// The update of `other` to `yaml` is refused with `message`, and the
/// layout (its table and its ports) is what it was.
fn assert_refused(yaml: String, message: &str) {
    let (ctx, mut l) = two_services();
    let before = l.table();
    let ports_before: Vec<ServicePort> = l.ports().cloned().collect();
    let e = l
        .update_service("shop", "other", &other_ports(&ctx, yaml))
        .unwrap_err();
    assert_eq!(e.to_string(), message);
    assert_eq!(l.table(), before, "the layout changed");
    assert_eq!(l.ports().cloned().collect::<Vec<_>>(), ports_before);
    // And it still tracks the kernel: a valid update of the same Service
    // is a partial batch that plays onto the unchanged table.
    let ok = other_ports(&ctx, other(""));
    let batch = l.update_service("shop", "other", &ok).unwrap();
    assert!(batch.is_empty(), "nothing changed: {batch}");
}

const REFUSED: &str = "refused (a full sync keeps it for the first Service in name order)";

#[test]
fn an_update_taking_another_services_node_port_is_refused() {
    assert_refused(
        other("").replace("30099", "30080"),
        &format!(
            "Service shop/other: spec.ports[name=http].nodePort: node port 30080/TCP (IPv4) is already used by shop/web:http/TCP/v4; {REFUSED}"
        ),
    );
}

#[test]
fn an_update_taking_another_services_cluster_ip_port_is_refused() {
    assert_refused(
        other("").replace("198.19.0.99", "198.19.0.20"),
        &format!(
            "Service shop/other: spec.clusterIPs: cluster IP 198.19.0.20:80/TCP is already used by shop/web:http/TCP/v4; {REFUSED}"
        ),
    );
}

#[test]
fn an_external_ip_copying_another_services_cluster_ip_is_refused() {
    assert_refused(
        other("  externalIPs: [198.19.0.20]\n"),
        &format!(
            "Service shop/other: spec.externalIPs: external IP 198.19.0.20:80/TCP is already used by shop/web:http/TCP/v4; {REFUSED}"
        ),
    );
}

#[test]
fn a_load_balancer_ip_used_by_another_service_is_refused() {
    let (ctx, mut l) = two_services();
    // web gets an external IP; other becomes a LoadBalancer on that IP.
    let c = cluster(&[
        node_port_svc("  externalIPs: [198.19.200.50]\n"),
        two_eps(),
        other(""),
        other_slice(),
    ]);
    let web = plan_service(&c, &ctx, &NsName::new("shop", "web"));
    l.update_service("shop", "web", &web).unwrap();
    let before = l.table();
    let lb = format!(
        "{}status: {{loadBalancer: {{ingress: [{{ip: 198.19.200.50}}]}}}}\n",
        other("").replace("type: NodePort", "type: LoadBalancer")
    );
    let e = l
        .update_service("shop", "other", &other_ports(&ctx, lb))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Service shop/other: status.loadBalancer.ingress: load balancer IP 198.19.200.50:80/TCP is already used by shop/web:http/TCP/v4; {REFUSED}"
        )
    );
    assert_eq!(l.table(), before);
}

#[test]
fn two_ports_of_one_update_claiming_one_node_port_are_refused() {
    // The apiserver refuses such a Service, so the ports are made by hand:
    // a second port `alt` (81) with http's node port.
    let (ctx, mut l) = two_services();
    let before = l.table();
    let mut ports = other_ports(&ctx, other(""));
    let mut alt = ports[0].clone();
    alt.id.port = "alt".into();
    alt.port = 81;
    ports.push(alt);
    let e = l.update_service("shop", "other", &ports).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Service shop/other: spec.ports[name=alt].nodePort: node port 30099/TCP (IPv4) is already used by shop/other:http/TCP/v4; {REFUSED}"
        )
    );
    assert_eq!(l.table(), before);
}

#[test]
fn a_service_keeps_its_own_frontends_and_may_take_freed_ones() {
    let (ctx, mut l) = two_services();
    // Its own node port and cluster IP, with a new endpoint set: accepted.
    let c = cluster(&[
        svc_with_node_port(),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
        other(""),
        other_slice(),
    ]);
    let web = plan_service(&c, &ctx, &NsName::new("shop", "web"));
    assert!(!l.update_service("shop", "web", &web).unwrap().is_empty());
    // Web's node port number in another protocol: no conflict.
    let yaml = other("").replace("nodePort: 30099}", "nodePort: 30080, protocol: UDP}");
    assert!(yaml.contains("protocol: UDP"), "{yaml}");
    l.update_service("shop", "other", &other_ports(&ctx, yaml))
        .unwrap();
    assert!(render(&l.table()).contains("udp . 30080 : goto reject-chain"));
    // Once web is gone, its node port and cluster IP are free.
    l.update_service("shop", "web", &[]).unwrap();
    let before = l.table();
    let taken = other("")
        .replace("30099", "30080")
        .replace("198.19.0.99", "198.19.0.20");
    let batch = l
        .update_service("shop", "other", &other_ports(&ctx, taken))
        .unwrap();
    assert_eq!(batch.apply_to(Some(&before)).unwrap(), Some(l.table()));
    assert!(render(&l.table()).contains("tcp . 30080 : goto"));
    assert_eq!(l.claims.len(), 2, "one cluster IP port, one node port");
}

#[test]
fn an_update_holding_another_services_port_is_refused() {
    let (ctx, mut l) = two_services();
    let ports = other_ports(&ctx, other(""));
    let e = l.update_service("shop", "web", &ports).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Service shop/web: metadata.name: the update holds port shop/other:http/TCP/v4 of another Service"
    );
}

#[test]
fn a_full_sync_of_a_conflicting_table_is_refused_and_changes_nothing() {
    let (ctx, mut l) = two_services();
    let before = l.table();
    let c = cluster(&[svc_with_node_port(), two_eps(), other(""), other_slice()]);
    let mut t = plan(&c, &ctx);
    // Not something `plan` yields: made by hand.
    let i = t.ports.iter().position(|p| p.id.name == "other").unwrap();
    t.ports[i].node_port = Some(30080);
    let e = l.sync(&t).unwrap_err();
    assert!(
        // Ports in id order: `other` comes first and keeps it.
        e.to_string().starts_with("Service shop/web: spec.ports[name=http].nodePort: node port 30080/TCP (IPv4) is already used by shop/other:http/TCP/v4"),
        "{e}"
    );
    assert_eq!(l.table(), before);
    assert!(l.is_synced());
}

#[test]
fn no_cluster_cidr_of_a_family_means_no_off_cluster_masquerade() {
    // node-a/node-b have IPv4 podCIDRs only: kube-proxy has no IPv6 local
    // traffic detector, so it writes no off-cluster masquerade rule for
    // IPv6 ClusterIPs (proxier.go: `else if localDetector.IsImplemented()`).
    let (t, _, text) = lowered(&[
        svc(
            "  clusterIPs: [198.19.0.20, 'fd00:19::20']\n  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: RequireDualStack\n",
        ),
        slice(&[ep("198.18.0.2", "node-a", READY)]),
        slice6(&[ep("fd00:18::2", "node-a", READY)]),
    ]);
    let flow = |s: &str, d: &str| Flow {
        saddr: s.parse().unwrap(),
        sport: 40_000,
        daddr: d.parse().unwrap(),
        dport: 80,
        protocol: Protocol::Tcp,
    };
    assert!(
        matches!(
            predict(&t, &flow("fd00:18::9", "fd00:19::20")),
            Prediction::Endpoint {
                masquerade: false,
                ..
            }
        ),
        "{:?}",
        predict(&t, &flow("fd00:18::9", "fd00:19::20"))
    );
    assert!(!text.contains("ip6 daddr fd00:19::20"), "{text}");
    // IPv4 has its detector: off-cluster sources are masqueraded.
    assert!(matches!(
        predict(&t, &flow("198.19.200.9", "198.19.0.20")),
        Prediction::Endpoint {
            masquerade: true,
            ..
        }
    ));
    assert!(
        text.contains("ip daddr 198.19.0.20 meta l4proto tcp th dport 80 ip saddr != { 198.18.0.0/24, 198.18.1.0/24 } jump mark-for-masquerade"),
        "{text}"
    );
    let v6: Vec<&ServicePort> = t
        .ports
        .iter()
        .filter(|p| p.id.family == Family::IPv6)
        .collect();
    assert!(!v6[0].masquerade_off_cluster);
}

#[test]
fn cluster_ips_hold_each_cluster_ip_while_a_port_uses_it() {
    let ips = |l: &Layout| -> Vec<String> {
        l.table().sets["cluster-ips"]
            .elements
            .keys()
            .map(ToString::to_string)
            .collect()
    };
    let two_ports = svc_p(
        "[{name: http, port: 80, targetPort: 8080}, {name: https, port: 443, targetPort: 8443}]",
        "",
    );
    let c1 = cluster(&[two_ports, two_eps()]);
    let ctx = NodeContext::from_cluster(&c1, "node-a").unwrap();
    let mut l = Layout::new();
    l.sync(&plan(&c1, &ctx)).unwrap();
    assert_eq!(ips(&l), ["198.19.0.20"]);
    // One port goes: the other still uses the address.
    let c2 = cluster(&[svc(""), two_eps()]);
    let before = l.table();
    let ports = plan_service(&c2, &ctx, &NsName::new("shop", "web"));
    let batch = l.update_service("shop", "web", &ports).unwrap();
    assert!(!batch.to_string().contains("cluster-ips"), "{batch}");
    assert_eq!(batch.apply_to(Some(&before)).unwrap(), Some(l.table()));
    assert_eq!(ips(&l), ["198.19.0.20"]);
    // The Service goes: so does its address.
    let before = l.table();
    let batch = l.update_service("shop", "web", &[]).unwrap();
    assert!(
        batch
            .to_string()
            .contains("delete element inet k8snet-lb cluster-ips { 198.19.0.20 }"),
        "{batch}"
    );
    assert_eq!(batch.apply_to(Some(&before)).unwrap(), Some(l.table()));
    assert!(ips(&l).is_empty());
}

#[test]
fn legacy_spellings_lower_to_the_canonical_ruleset() {
    // What a default apiserver stores (leading zeros, IPv4-mapped IPv6)
    // is what kube-proxy's ParseIPSloppy / ParseCIDRSloppy read.
    let eps = slice(&[ep("198.18.0.2", "node-a", READY)]);
    let spelled = |ranges: &str, external: &str, ingress: &str| {
        lb_svc(
            &format!("  loadBalancerSourceRanges: {ranges}\n  externalIPs: {external}\n"),
            &format!("[{{ip: '{ingress}'}}]"),
        )
    };
    let (t, _, canonical) = lowered(&[
        spelled("[198.19.200.0/25]", "[198.19.200.50]", "198.19.200.60"),
        eps.clone(),
    ]);
    assert!(canonical.contains("198.19.200.0/25"), "{canonical}");
    let (u, _, legacy) = lowered(&[
        spelled(
            "['198.019.200.000/025']",
            "['::ffff:198.19.200.50']",
            "198.019.200.060",
        ),
        eps,
    ]);
    assert_eq!(legacy, canonical);
    for saddr in ["198.19.200.9", "198.19.200.200"] {
        let flow = Flow {
            saddr: saddr.parse().unwrap(),
            sport: 40000,
            daddr: "198.19.200.60".parse().unwrap(),
            dport: 80,
            protocol: Protocol::Tcp,
        };
        assert_eq!(predict(&u, &flow), predict(&t, &flow), "{saddr}");
    }
}
