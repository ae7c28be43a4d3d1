//! A "node" namespace with pods hanging off it by veth pairs, torn down on
//! drop. Every link is created inside the test namespaces (`ip -n NODE link
//! add ... peer ... netns POD`), never in the host namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::netns::{self, Netns, check_word};
use crate::{Error, Result, cmd, plan};

/// A node namespace plus the pod (and other) namespaces attached to it.
/// Dropping it deletes every namespace it made, which removes their links.
#[derive(Debug)]
pub struct Testnet {
    stem: String,
    node: Netns,
    /// Every namespace made, in creation order (the node first).
    owned: Vec<Netns>,
    next_veth: u32,
}

/// A pod: its namespace with `eth0`, and the veth peer in the node namespace.
/// A cheap handle; the [`Testnet`] owns the namespace.
#[derive(Clone, Debug)]
pub struct Pod {
    netns: Netns,
    node: Netns,
    node_ifname: String,
    addrs: Vec<IpNet>,
}

/// A bridge in the node namespace, holding the pods' gateway addresses.
#[derive(Clone, Debug)]
pub struct Bridge {
    name: String,
    node: Netns,
    gateways: Vec<IpNet>,
}

fn check_plan(addrs: &[IpNet]) -> Result<()> {
    match addrs.iter().find(|a| !plan::is_allowed(a.addr())) {
        Some(bad) => Err(Error::OutsidePlan(bad.addr())),
        None => Ok(()),
    }
}

/// `ip addr add`, with `nodad` on IPv6 so the address is usable at once.
fn add_addr(ns: &Netns, dev: &str, addr: &IpNet) -> Result<()> {
    let addr = addr.to_string();
    let mut args = vec!["addr", "add", &addr, "dev", dev];
    if addr.contains(':') {
        args.push("nodad");
    }
    ns.ip(&args).map(drop)
}

impl Testnet {
    /// Creates the node namespace `kt-<prefix>-<pid>-<n>-node` with `lo` up
    /// and IPv6 DAD off. `prefix` is 1 to 16 of `a-z`, `0-9`, `_`.
    pub fn new(prefix: &str) -> Result<Self> {
        check_word(prefix)?;
        let stem = netns::unique_stem(prefix);
        let node = netns::create(&format!("{stem}-node"))?;
        // From here on, an early return drops `tn`, which deletes the node.
        let tn = Self {
            stem,
            node: node.clone(),
            owned: vec![node],
            next_veth: 0,
        };
        init_netns(&tn.node)?;
        Ok(tn)
    }

    /// The node namespace.
    pub fn node(&self) -> &Netns {
        &self.node
    }

    /// Every namespace this testnet made, the node first.
    pub fn namespaces(&self) -> &[Netns] {
        &self.owned
    }

    /// Turns on IPv4 and IPv6 forwarding in the node namespace only.
    pub fn enable_forwarding(&self) -> Result<()> {
        self.node.sysctl("net.ipv4.ip_forward", "1")?;
        self.node.sysctl("net.ipv6.conf.all.forwarding", "1")
    }

    /// Creates a bare namespace `kt-...-<name>` (lo up, IPv6 DAD off) that is
    /// not connected to anything; deleted with the testnet.
    pub fn add_netns(&mut self, name: &str) -> Result<Netns> {
        check_word(name)?;
        if name == "node" {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                why: "\"node\" is the node namespace",
            });
        }
        let ns = netns::create(&format!("{}-{name}", self.stem))?;
        self.owned.push(ns.clone());
        init_netns(&ns)?;
        Ok(ns)
    }

    /// Creates a pod namespace joined to the node by a veth pair: `eth0` in
    /// the pod with `addrs`, `vk<N>` in the node, both up (waits for the
    /// carrier). No route is set: see [`Pod::set_gateway`], or use
    /// [`Testnet::add_bridged_pod`].
    pub fn add_pod(&mut self, name: &str, addrs: &[IpNet]) -> Result<Pod> {
        check_plan(addrs)?;
        let ns = self.add_netns(name)?;
        let vk = format!("vk{}", self.next_veth);
        self.next_veth += 1;
        // Both ends are born in their namespaces; the host never sees them.
        self.node.ip(&[
            "link",
            "add",
            &vk,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ])?;
        for addr in addrs {
            add_addr(&ns, "eth0", addr)?;
        }
        ns.ip(&["link", "set", "eth0", "up"])?;
        self.node.ip(&["link", "set", &vk, "up"])?;
        let pod = Pod {
            netns: ns,
            node: self.node.clone(),
            node_ifname: vk,
            addrs: addrs.to_vec(),
        };
        pod.wait_ready()?;
        Ok(pod)
    }

    /// Creates bridge `name` (at most 15 characters) in the node namespace,
    /// with `gateways` as its addresses, up. Pods go on it with
    /// [`Bridge::attach`] or [`Testnet::add_bridged_pod`].
    pub fn add_bridge(&mut self, name: &str, gateways: &[IpNet]) -> Result<Bridge> {
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                why: "link names are 1 to 15 characters, no '/' or spaces",
            });
        }
        check_plan(gateways)?;
        self.node.ip(&["link", "add", name, "type", "bridge"])?;
        for gw in gateways {
            add_addr(&self.node, name, gw)?;
        }
        self.node.ip(&["link", "set", name, "up"])?;
        Ok(Bridge {
            name: name.to_owned(),
            node: self.node.clone(),
            gateways: gateways.to_vec(),
        })
    }

    /// The common layout: [`Testnet::add_pod`], attach its node end to
    /// `bridge`, and route the pod by default via each bridge gateway whose
    /// subnet holds one of the pod's addresses.
    pub fn add_bridged_pod(&mut self, bridge: &Bridge, name: &str, addrs: &[IpNet]) -> Result<Pod> {
        let pod = self.add_pod(name, addrs)?;
        bridge.attach(&pod)?;
        for gw in &bridge.gateways {
            if addrs.iter().any(|a| gw.contains(&a.addr())) {
                pod.set_gateway(gw.addr())?;
            }
        }
        Ok(pod)
    }
}

/// `lo` up, and IPv6 duplicate address detection off so that addresses (and
/// links created later, which copy `default`) are usable without delay.
fn init_netns(ns: &Netns) -> Result<()> {
    ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
    ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
    ns.ip(&["link", "set", "lo", "up"]).map(drop)
}

impl Drop for Testnet {
    /// Deletes every namespace made, pods before the node; never panics.
    fn drop(&mut self) {
        for ns in self.owned.iter().rev() {
            if let Err(e) = netns::delete(ns.name()) {
                eprintln!("k8snet-testnet: cannot delete netns {}: {e}", ns.name());
            }
        }
    }
}

impl Pod {
    /// The pod's namespace (its interface is `eth0`).
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The name of the veth end in the node namespace (`vk<N>`).
    pub fn node_ifname(&self) -> &str {
        &self.node_ifname
    }

    /// The addresses given to `eth0`.
    pub fn addrs(&self) -> &[IpNet] {
        &self.addrs
    }

    /// The first IPv4 address of `eth0`, if any.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|a| match a.addr() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
    }

    /// The first IPv6 address of `eth0`, if any.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.addrs.iter().find_map(|a| match a.addr() {
            IpAddr::V6(ip) => Some(ip),
            IpAddr::V4(_) => None,
        })
    }

    /// Sets (or replaces) the pod's default route via `gateway` on `eth0`.
    pub fn set_gateway(&self, gateway: IpAddr) -> Result<()> {
        if !plan::is_allowed(gateway) {
            return Err(Error::OutsidePlan(gateway));
        }
        let family = if gateway.is_ipv4() { "-4" } else { "-6" };
        let gw = gateway.to_string();
        self.netns
            .ip(&[
                family, "route", "replace", "default", "via", &gw, "dev", "eth0",
            ])
            .map(drop)
    }

    /// Adds `addr` to the node end of the veth (for routed, bridge-less
    /// layouts where the node end is the pod's gateway).
    pub fn add_node_addr(&self, addr: IpNet) -> Result<()> {
        check_plan(&[addr])?;
        add_addr(&self.node, &self.node_ifname, &addr)
    }

    /// Waits until `eth0` has carrier and no IPv6 address is tentative.
    fn wait_ready(&self) -> Result<()> {
        cmd::wait_for(
            &format!("eth0 of {} to be ready", self.netns.name()),
            || {
                let link = self.netns.ip(&["-o", "link", "show", "dev", "eth0"])?;
                let tentative =
                    self.netns
                        .ip(&["-6", "addr", "show", "dev", "eth0", "tentative"])?;
                Ok(link.contains("LOWER_UP") && tentative.trim().is_empty())
            },
        )
    }
}

impl Bridge {
    /// The bridge's link name in the node namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bridge's addresses: the gateways of the pods on it.
    pub fn gateways(&self) -> &[IpNet] {
        &self.gateways
    }

    /// Puts the pod's node-side veth end on this bridge and waits until the
    /// port forwards.
    pub fn attach(&self, pod: &Pod) -> Result<()> {
        let port = pod.node_ifname();
        self.node.ip(&["link", "set", port, "master", &self.name])?;
        cmd::wait_for(&format!("bridge port {port} to forward"), || {
            let detail = self.node.ip(&["-d", "-o", "link", "show", "dev", port])?;
            Ok(detail.contains("bridge_slave state forwarding"))
        })
    }
}
