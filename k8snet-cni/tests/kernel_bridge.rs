//! The bridge plugin's `portIsolation` and CHECK's route verification, in
//! namespaces made by k8snet-testnet: isolated ports cannot reach each
//! other at L2 (and can through the node with `proxy_arp_pvlan`), open
//! ports can; the flag is on the port and CHECK reads it; CHECK fails,
//! naming the route, when a route of the result is gone.

#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::*;
use k8snet_cni::linux::Bridge;
use k8snet_testnet::{Netns, Testnet};
use serde_json::{Value, json};

/// A bridge network `name` on bridge `bridge`, IPv4 in `subnet` (and IPv6
/// in `subnet6` when given), default routes via the bridge.
fn conf(data: &Path, name: &str, bridge: &str, subnet: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.0.0", "name": name, "type": "k8snet-bridge", "bridge": bridge,
        "isGateway": true,
        "ipam": {"type": "k8snet-host-local", "dataDir": data,
                 "ranges": [[{"subnet": subnet}]],
                 "routes": [{"dst": "0.0.0.0/0"}]}
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn add(node: &Netns, pod: &Netns, id: &str, c: &Value) -> Value {
    let r = run_ours(node, &Bridge, &env("ADD", id, Some(&pod.path()), "/x"), c);
    assert!(r.ok(), "ADD {id}: {r:?}");
    r.stdout
}

fn check(node: &Netns, pod: &Netns, id: &str, c: &Value, prev: &Value) -> Ran {
    run_ours(
        node,
        &Bridge,
        &env("CHECK", id, Some(&pod.path()), "/x"),
        &with_prev(c, prev),
    )
}

/// The pod's IPv4 address and its host veth's name, from the ADD result.
fn addr_and_port(result: &Value) -> (String, String) {
    let ip = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .find(|a| !a.contains(':'))
        .unwrap();
    let ip = ip.split('/').next().unwrap().to_owned();
    let veth = result["interfaces"][1]["name"].as_str().unwrap().to_owned();
    (ip, veth)
}

/// Makes a failed neighbour resolution in `pod` end after one probe of
/// 100 ms, so an unreachable peer is reported quickly (the result is the
/// same with the defaults, only slower).
fn quick_neighbour_failure(pod: &Netns) {
    pod.sysctl("net.ipv4.neigh.eth0.mcast_solicit", "1")
        .unwrap();
    pod.sysctl("net.ipv4.neigh.eth0.retrans_time_ms", "100")
        .unwrap();
}

/// Connects from `from` to `to_ip:port` (where a listener made in the
/// target namespace waits) and reads what the server writes.
fn connect(from: &Netns, to_ip: &str, port: u16) -> std::io::Result<String> {
    let addr: SocketAddr = format!("{to_ip}:{port}").parse().unwrap();
    from.run(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        let mut b = String::new();
        s.read_to_string(&mut b).map(|_| b)
    })
    .unwrap()
}

/// A listener in `ns` on `ip:port` answering every connection with `reply`.
fn serve(ns: &Netns, ip: &str, port: u16, reply: &'static str) {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let listener = ns.run(move || TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.write_all(reply.as_bytes());
        }
    });
}

/// The link-layer address `pod` resolved for `ip` (from `ip neigh`).
fn neighbour_mac(pod: &Netns, ip: &str) -> Option<String> {
    let out = pod.ip(&["-j", "neigh", "show", ip]).unwrap();
    serde_json::from_str::<Value>(&out)
        .ok()?
        .as_array()?
        .iter()
        .find_map(|n| n["lladdr"].as_str().map(str::to_owned))
}

/// The bridge-port flag "isolated" of `port`, as `bridge -d link show`
/// reports it in the node namespace.
fn isolated_flag(node: &Netns, port: &str) -> Option<bool> {
    let out = node
        .cmd(&["bridge", "-j", "-d", "link", "show", "dev", port])
        .unwrap();
    serde_json::from_str::<Value>(&out).unwrap()[0]["isolated"].as_bool()
}

#[test]
fn isolated_ports_do_not_reach_each_other_at_l2_and_open_ones_do() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cniiso").unwrap();
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|p| tn.add_netns(p).unwrap());
    let node = tn.node();
    let data = TempDir::new("iso");
    let iso = conf(
        &data.0,
        "iso",
        "kbr0",
        "198.18.0.0/24",
        json!({"portIsolation": true}),
    );
    let open = conf(
        &data.0,
        "open",
        "kbr1",
        "198.18.1.0/24",
        json!({"portIsolation": false}),
    );
    let ra = add(node, &a, "a", &iso);
    let rb = add(node, &b, "b", &iso);
    let rc = add(node, &c, "c", &open);
    let rd = add(node, &d, "d", &open);
    let (_, port_a) = addr_and_port(&ra);
    let (ip_b, port_b) = addr_and_port(&rb);
    let (_, port_c) = addr_and_port(&rc);
    let (ip_d, port_d) = addr_and_port(&rd);

    // The flag, read back from the kernel by iproute2.
    assert_eq!(isolated_flag(node, &port_a), Some(true));
    assert_eq!(isolated_flag(node, &port_b), Some(true));
    assert_eq!(isolated_flag(node, &port_c), Some(false));
    assert_eq!(isolated_flag(node, &port_d), Some(false));

    serve(&b, &ip_b, 8080, "b");
    serve(&d, &ip_d, 8080, "d");
    serve(node, "198.18.0.1", 8081, "node");
    quick_neighbour_failure(&a);

    // Open ports: c reaches d directly, by d's own MAC.
    assert_eq!(connect(&c, &ip_d, 8080).unwrap(), "d");
    let mac_d = rd["interfaces"][2]["mac"].as_str().unwrap();
    assert_eq!(neighbour_mac(&c, &ip_d).as_deref(), Some(mac_d));

    // Isolated ports: a's ARP for b never reaches b, so the connection
    // fails with "no route to host" (the neighbour entry failed).
    let e = connect(&a, &ip_b, 8080).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HostUnreachable, "{e}");
    assert_eq!(neighbour_mac(&a, &ip_b), None);
    // The kernel's defaults again (3 probes, 1 s apart) for what follows.
    a.sysctl("net.ipv4.neigh.eth0.mcast_solicit", "3").unwrap();
    a.sysctl("net.ipv4.neigh.eth0.retrans_time_ms", "1000")
        .unwrap();
    // The bridge itself is not an isolated port: a still reaches the node.
    assert_eq!(connect(&a, "198.18.0.1", 8081).unwrap(), "node");

    // What isolation is for: with proxy_arp_pvlan the node answers a's
    // ARP for b with the bridge's MAC and routes the traffic (through its
    // forward hook, where policy applies). `proxy_delay` 0: the kernel
    // otherwise delays proxied replies at random, up to 0.8 s.
    node.sysctl("net.ipv4.conf.kbr0.proxy_arp_pvlan", "1")
        .unwrap();
    node.sysctl("net.ipv4.neigh.kbr0.proxy_delay", "0").unwrap();
    a.ip(&["neigh", "flush", "dev", "eth0"]).unwrap();
    b.ip(&["neigh", "flush", "dev", "eth0"]).unwrap();
    assert_eq!(connect(&a, &ip_b, 8080).unwrap(), "b");
    let mac_br = ra["interfaces"][0]["mac"].as_str().unwrap();
    assert_eq!(neighbour_mac(&a, &ip_b).as_deref(), Some(mac_br));

    // CHECK reads the flag: right as ADD left it, wrong either way after
    // a change behind the plugin's back.
    for (pod, id, conf, prev) in [(&a, "a", &iso, &ra), (&c, "c", &open, &rc)] {
        let r = check(node, pod, id, conf, prev);
        assert!(r.ok(), "CHECK {id}: {r:?}");
    }
    node.cmd(&["bridge", "link", "set", "dev", &port_a, "isolated", "off"])
        .unwrap();
    let r = check(node, &a, "a", &iso, &ra);
    assert_eq!(r.code(), Some(999), "{r:?}");
    assert_eq!(
        r.msg(),
        format!(
            "host interface {port_a:?} on bridge \"kbr0\": port flag isolated is off, portIsolation is true"
        )
    );
    node.cmd(&["bridge", "link", "set", "dev", &port_c, "isolated", "on"])
        .unwrap();
    let r = check(node, &c, "c", &open, &rc);
    assert_eq!(r.code(), Some(999), "{r:?}");
    assert_eq!(
        r.msg(),
        format!(
            "host interface {port_c:?} on bridge \"kbr1\": port flag isolated is on, portIsolation is false"
        )
    );

    for (pod, id, conf, prev) in [
        (&a, "a", &iso, &ra),
        (&b, "b", &iso, &rb),
        (&c, "c", &open, &rc),
        (&d, "d", &open, &rd),
    ] {
        let r = run_ours(
            node,
            &Bridge,
            &env("DEL", id, Some(&pod.path()), "/x"),
            &with_prev(conf, prev),
        );
        assert!(r.ok(), "DEL {id}: {r:?}");
    }
}

#[test]
fn check_fails_naming_a_route_that_is_gone() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnirt").unwrap();
    let pod = tn.add_netns("p").unwrap();
    let node = tn.node();
    let data = TempDir::new("rt");
    let c = json!({
        "cniVersion": "1.0.0", "name": "rt", "type": "k8snet-bridge", "bridge": "kbr0",
        "isGateway": true,
        "ipam": {"type": "k8snet-host-local", "dataDir": data.0,
                 "ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd00:18::/64"}]],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"},
                            {"dst": "198.19.0.0/17", "gw": "198.18.0.1"}]}
    });
    let r = add(node, &pod, "rt1", &c);
    let ok = check(node, &pod, "rt1", &c, &r);
    assert!(ok.ok(), "{ok:?}");
    let netns = pod.path().display().to_string();

    // The service route deleted: CHECK names it.
    pod.ip(&["route", "del", "198.19.0.0/17"]).unwrap();
    let e = check(node, &pod, "rt1", &c, &r);
    assert_eq!(e.code(), Some(999), "{e:?}");
    assert_eq!(
        e.msg(),
        format!(
            "route 198.19.0.0/17 via 198.18.0.1 of prevResult not found in the routing tables of {netns}"
        )
    );
    // Back with another next hop: still not the route of the result.
    pod.ip(&["route", "add", "198.19.0.0/17", "via", "198.18.0.9"])
        .unwrap();
    let e = check(node, &pod, "rt1", &c, &r);
    assert!(
        e.msg().starts_with("route 198.19.0.0/17 via 198.18.0.1 "),
        "{e:?}"
    );
    // Back as it was: CHECK passes again.
    pod.ip(&["route", "replace", "198.19.0.0/17", "via", "198.18.0.1"])
        .unwrap();
    let ok = check(node, &pod, "rt1", &c, &r);
    assert!(ok.ok(), "{ok:?}");

    // The IPv6 default route (the result has no gateway for it: the
    // family's gateway, as ADD installed it).
    pod.ip(&["-6", "route", "del", "default"]).unwrap();
    let e = check(node, &pod, "rt1", &c, &r);
    assert_eq!(
        e.msg(),
        format!(
            "route ::/0 via fd00:18::1 of prevResult not found in the routing tables of {netns}"
        )
    );
    // The IPv4 default route too, once IPv6's is back: checked in order.
    pod.ip(&["-6", "route", "add", "default", "via", "fd00:18::1"])
        .unwrap();
    pod.ip(&["route", "del", "default"]).unwrap();
    let e = check(node, &pod, "rt1", &c, &r);
    assert_eq!(
        e.msg(),
        format!(
            "route 0.0.0.0/0 via 198.18.0.1 of prevResult not found in the routing tables of {netns}"
        )
    );
    pod.ip(&["route", "add", "default", "via", "198.18.0.1"])
        .unwrap();
    let ok = check(node, &pod, "rt1", &c, &r);
    assert!(ok.ok(), "{ok:?}");
}
