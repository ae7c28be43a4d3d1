//! The namespaces and the fabric: node namespaces joined by a bridge in
//! `k8snet-fabric`, an outside client behind the fabric's router, routes
//! between the nodes' pod CIDRs. Everything happens inside namespaces this
//! stack made (`ip -n`, or threads that entered them); the host's own
//! namespace is never changed.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use k8snet_testnet::Netns;

use super::plan::{
    CLIENT_NS, DNS_V4, DNS_V6, FABRIC_NS, NodePlan, POD_BRIDGE, Plan, client_addrs, fabric_addrs,
};
use super::state::State;

/// Runs `ip args…` and returns its standard output.
pub(crate) fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip -n NS args…`.
pub(crate) fn ipn(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    ip(&full)
}

/// Whether `/run/netns/NAME` exists.
pub(crate) fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Creates a named namespace, recording it in the state first (so `down`
/// finds it even if we crash right after), with `lo` up.
pub(crate) fn add_netns(state: &mut State, dir: &Path, name: &str) -> anyhow::Result<()> {
    if netns_exists(name) {
        bail!(
            "network namespace {name} exists already: another stack is up (run `k8snet node down`) or it is not ours"
        );
    }
    state.namespaces.insert(name.to_owned());
    state.save(dir)?;
    ip(&["netns", "add", name])?;
    ipn(name, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// Deletes a namespace if it exists.
pub(crate) fn del_netns(name: &str) -> anyhow::Result<()> {
    if netns_exists(name) {
        ip(&["netns", "del", name])?;
    }
    Ok(())
}

/// Sets a `net.*` sysctl inside `ns` (never the host's).
pub(crate) fn sysctl(ns: &str, key: &str, value: &str) -> anyhow::Result<()> {
    Netns::named(ns)
        .sysctl(key, value)
        .with_context(|| format!("sysctl {key}={value} in {ns}"))
}

/// The fabric namespace, its bridge and router addresses, and the outside
/// client.
pub(crate) fn make_fabric(state: &mut State, dir: &Path) -> anyhow::Result<()> {
    add_netns(state, dir, FABRIC_NS)?;
    ipn(FABRIC_NS, &["link", "add", "fab0", "type", "bridge"])?;
    for a in fabric_addrs() {
        ipn(
            FABRIC_NS,
            &["addr", "add", &a.to_string(), "dev", "fab0", "nodad"],
        )?;
    }
    ipn(FABRIC_NS, &["link", "set", "fab0", "up"])?;
    sysctl(FABRIC_NS, "net.ipv4.ip_forward", "1")?;
    sysctl(FABRIC_NS, "net.ipv6.conf.all.forwarding", "1")?;

    add_netns(state, dir, CLIENT_NS)?;
    attach_to_fabric(CLIENT_NS, "client")?;
    for a in client_addrs() {
        ipn(
            CLIENT_NS,
            &["addr", "add", &a.to_string(), "dev", "eth0", "nodad"],
        )?;
    }
    ipn(CLIENT_NS, &["link", "set", "eth0", "up"])?;
    let fabric = fabric_addrs();
    ipn(
        CLIENT_NS,
        &[
            "route",
            "add",
            "default",
            "via",
            &fabric[2].addr().to_string(),
        ],
    )?;
    ipn(
        CLIENT_NS,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &fabric[3].addr().to_string(),
        ],
    )?;
    Ok(())
}

/// A veth `eth0` in `ns` whose peer `fab-<tag>` is a port of the fabric bridge.
fn attach_to_fabric(ns: &str, tag: &str) -> anyhow::Result<()> {
    let peer: String = format!("fab-{tag}").chars().take(15).collect();
    ipn(
        ns,
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", &peer, "netns", FABRIC_NS,
        ],
    )?;
    ipn(FABRIC_NS, &["link", "set", &peer, "master", "fab0", "up"])?;
    Ok(())
}

/// A node namespace: its fabric link and addresses, forwarding, the
/// cluster DNS addresses, the pod bridge's routing settings and the routes
/// to the other nodes' pods and the outside clients.
pub(crate) fn make_node(
    state: &mut State,
    dir: &Path,
    plan: &Plan,
    node: &NodePlan,
) -> anyhow::Result<()> {
    let ns = node.netns.as_str();
    add_netns(state, dir, ns)?;
    attach_to_fabric(ns, &format!("n{}", node.index))?;
    for a in node.addrs {
        ipn(ns, &["addr", "add", &a.to_string(), "dev", "eth0", "nodad"])?;
    }
    ipn(ns, &["link", "set", "eth0", "up"])?;
    // The cluster DNS listens on the kube-dns ClusterIP, local to every node.
    ipn(ns, &["addr", "add", &format!("{DNS_V4}/32"), "dev", "lo"])?;
    ipn(
        ns,
        &[
            "addr",
            "add",
            &format!("{DNS_V6}/128"),
            "dev",
            "lo",
            "nodad",
        ],
    )?;
    sysctl(ns, "net.ipv4.ip_forward", "1")?;
    sysctl(ns, "net.ipv6.conf.all.forwarding", "1")?;
    // Pods sit on isolated bridge ports, so same-node traffic between them
    // is routed by the node (where Service DNAT and NetworkPolicy act):
    // the node answers ARP for the bridge's own subnet (proxy_arp_pvlan)
    // and must not tell pods to talk directly (redirects).
    sysctl(ns, "net.ipv4.conf.all.send_redirects", "0")?;
    sysctl(ns, "net.ipv4.conf.default.send_redirects", "0")?;
    sysctl(ns, "net.ipv6.conf.all.proxy_ndp", "1")?;
    for r in plan.routes(node) {
        let (dst, via) = (r.dst.to_string(), r.via.to_string());
        ipn(ns, &["route", "add", &dst, "via", &via, "dev", "eth0"])?;
    }
    // The pod bridge exists before any pod, so that its sysctls can be set.
    ipn(ns, &["link", "add", POD_BRIDGE, "type", "bridge"])?;
    ipn(ns, &["link", "set", POD_BRIDGE, "up"])?;
    sysctl(
        ns,
        &format!("net.ipv4.conf.{POD_BRIDGE}.proxy_arp_pvlan"),
        "1",
    )?;
    // Proxy ARP answers are delayed at random by up to 0.8 s by default.
    sysctl(ns, &format!("net.ipv4.neigh.{POD_BRIDGE}.proxy_delay"), "0")?;
    sysctl(ns, &format!("net.ipv6.neigh.{POD_BRIDGE}.proxy_delay"), "0")?;
    sysctl(
        ns,
        &format!("net.ipv4.conf.{POD_BRIDGE}.send_redirects"),
        "0",
    )?;
    sysctl(ns, &format!("net.ipv6.conf.{POD_BRIDGE}.proxy_ndp"), "1")?;
    // Where br_netfilter is loaded on the host (Docker loads it), bridges
    // call the IP hooks, and a Service DNAT to a pod on the same bridge is
    // then delivered at layer 2 ("bridged DNAT"), which the isolated ports
    // refuse. Our pods are routed, so this namespace's bridges must not.
    for key in ["iptables", "ip6tables", "arptables"] {
        let key = format!("net.bridge.bridge-nf-call-{key}");
        if Netns::named(ns).read_sysctl(&key).is_ok() {
            sysctl(ns, &key, "0")?;
        }
    }
    Ok(())
}
