//! The portmap plugin on nftables (a chained plugin: it needs `prevResult`
//! and passes it through). With `snat`, hairpin and localhost connections
//! are masqueraded and `route_localnet` is turned on, in the plugin's own
//! namespace, on the interface that routes to the pod (see
//! [`crate::portmap`]). After ADD's rules are in place, the conntrack
//! entries of UDP flows to the mapped host ports are deleted (see
//! [`crate::conntrack`]), so that a client that was sending before the pod
//! existed reaches it.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use k8snet_nft::{Family, Key, Nft, Table};
use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::RouteAttribute;

use crate::conntrack::stale_udp;
use crate::error::{Error, Result, code};
use crate::linux::conntrack::delete_stale;
use crate::linux::nl::{Session, nl_err};
use crate::plugin::{Plugin, Request};
use crate::portmap::{
    PORTMAP_TABLE, PortmapConf, container_ips, container_nets, elements, localnet_batch,
    localnet_elements, localnet_needed, mappings, masq_elements, of_pod, setup_batch, targets_of,
    teardown_batch, unused_localnets, verify,
};
use crate::result::CniResult;

/// The portmap plugin (binary `k8snet-portmap`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Portmap;

fn nft_err(what: &str) -> impl FnOnce(k8snet_nft::Error) -> Error + '_ {
    move |e| Error::kernel(what, e)
}

fn prev(req: &Request) -> Result<&CniResult> {
    req.conf
        .prev_result
        .as_ref()
        .ok_or_else(|| Error::config("prevResult", "must be called as a chained plugin"))
}

fn localnet_key(ifname: &str) -> String {
    format!("net/ipv4/conf/{ifname}/route_localnet")
}

/// `route_localnet` of `ifname` in the plugin's namespace.
fn read_localnet(ifname: &str) -> Result<bool> {
    let key = localnet_key(ifname);
    std::fs::read_to_string(format!("/proc/sys/{key}"))
        .map(|v| v.trim() == "1")
        .map_err(|e| Error::io(format!("reading {key}"), e))
}

fn write_localnet(ifname: &str, on: bool) -> Result<()> {
    let key = localnet_key(ifname);
    std::fs::write(format!("/proc/sys/{key}"), if on { "1" } else { "0" })
        .map_err(|e| Error::io(format!("writing {key}"), e))
}

/// The interface the plugin's namespace routes `ip` through (the reference's
/// `getRoutableHostIF`), if any.
fn routed_via(ip: Ipv4Addr) -> Result<Option<String>> {
    let s = Session::new()?;
    s.block_on(async {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(ip, 32)
            .build();
        let routes: Vec<_> = match s.host.route().get(msg).execute().try_collect().await {
            Ok(r) => r,
            // No route to the pod: nothing to enable (as the reference).
            Err(_) => return Ok(None),
        };
        let Some(oif) = routes.iter().find_map(|r| {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })
        }) else {
            return Ok(None);
        };
        let mut links = s.host.link().get().match_index(oif).execute();
        let link = links
            .try_next()
            .await
            .map_err(nl_err(format!("looking up link {oif}")))?;
        Ok(link.and_then(|l| {
            l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            })
        }))
    })
}

fn first_v4(ips: &[IpAddr]) -> Option<Ipv4Addr> {
    ips.iter().find_map(|ip| match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    })
}

fn read(nft: &mut Nft) -> Result<Option<Table>> {
    nft.read_table(Family::Inet, PORTMAP_TABLE)
        .map_err(nft_err("reading the portmap table"))
}

/// Turns `route_localnet` off where the plugin turned it on and no mapped
/// pod needs it any more. A concurrent ADD that starts needing it again
/// either sees the table first (and turns it back on after its commit) or
/// is seen here after the write (and it is turned back on here).
fn release_localnets(nft: &mut Nft) -> Result<()> {
    let Some(table) = read(nft)? else {
        return Ok(());
    };
    for ifname in unused_localnets(&table) {
        // The interface may be gone (its bridge deleted): nothing to undo.
        let _ = write_localnet(&ifname, false);
        // A concurrent DEL may have removed the marker already: DEL stays
        // best-effort.
        let _ = nft.apply(&localnet_batch(&table, &ifname, false));
        if let Some(now) = read(nft)?
            && localnet_needed(&now, &ifname)
        {
            nft.apply(&localnet_batch(&now, &ifname, true))
                .map_err(nft_err("updating the portmap localnet set"))?;
            write_localnet(&ifname, true)?;
        }
    }
    Ok(())
}

impl Plugin for Portmap {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let prev = prev(req)?;
        let conf = PortmapConf::from_conf(&req.conf)?;
        let maps = mappings(req)?;
        if maps.is_empty() {
            return Ok(prev.clone());
        }
        let nets = container_nets(prev, &req.env.ifname);
        let ips: Vec<IpAddr> = nets.iter().map(IpNet::addr).collect();
        let mut elems = elements(&maps, &ips);
        let mut nft = Nft::new().map_err(nft_err("opening nftables"))?;
        let mut localnet = None;
        if conf.snat {
            elems.extend(masq_elements(&nets, conf.masq_all));
            // 127.0.0.0/8 may leave through the interface that routes to
            // the pod only with route_localnet there (IPv4 only).
            if let Some(pod) = first_v4(&ips)
                && let Some(ifname) = routed_via(pod)?
            {
                let table = read(&mut nft)?;
                let ours = table.as_ref().is_some_and(|t| {
                    t.sets.get(crate::portmap::LOCALNET).is_some_and(|s| {
                        s.elements
                            .contains_key(&Key::one(k8snet_nft::Value::Ifname(ifname.clone())))
                    })
                });
                let turned_on = ours || !read_localnet(&ifname)?;
                elems.extend(localnet_elements(pod, &ifname, turned_on));
                localnet = Some(ifname);
            }
        }
        nft.apply(&setup_batch(&elems)?).map_err(|e| {
            Error::kernel(
                "runtimeConfig.portMappings",
                format!("installing the port mappings (is a hostPort already taken?): {e}"),
            )
        })?;
        if let Some(ifname) = localnet {
            write_localnet(&ifname, true)?;
        }
        // With the DNAT in place, drop the UDP entries made before it
        // (a client that kept sending to the hostPort would otherwise keep
        // missing the pod). Informative only, as the reference.
        let stale = stale_udp(&maps, &ips);
        if let Err(e) = delete_stale(&stale) {
            tracing::warn!("deleting stale UDP conntrack entries of the hostPorts: {e}");
        }
        Ok(prev.clone())
    }

    /// Removes the elements of the container's addresses (from
    /// `prevResult`); without it, of the addresses that `portMappings`'
    /// host ports map to. Then turns `route_localnet` off where no mapped
    /// pod needs it any more.
    fn del(&self, req: &Request) -> Result<()> {
        let mut nft = Nft::new().map_err(nft_err("opening nftables"))?;
        let Some(table) = read(&mut nft)? else {
            return Ok(());
        };
        let ips = match &req.conf.prev_result {
            Some(prev) => container_ips(prev, &req.env.ifname),
            None => targets_of(&table, &mappings(req)?),
        };
        if let Some(b) = teardown_batch(&table, |n, k, e| of_pod(n, k, e, &ips)) {
            nft.apply(&b).map_err(nft_err("removing port mappings"))?;
        }
        release_localnets(&mut nft)
    }

    /// Every chain as ADD installs it, every element of this container, and
    /// `route_localnet` on where it is needed.
    fn check(&self, req: &Request) -> Result<()> {
        let prev = prev(req)?;
        let conf = PortmapConf::from_conf(&req.conf)?;
        let maps = mappings(req)?;
        if maps.is_empty() {
            return Ok(());
        }
        let mut nft = Nft::new().map_err(nft_err("opening nftables"))?;
        let table =
            read(&mut nft)?.ok_or_else(|| Error::other(code::INTERNAL, "portmap table missing"))?;
        let nets = container_nets(prev, &req.env.ifname);
        let ips: Vec<IpAddr> = nets.iter().map(IpNet::addr).collect();
        let mut elems = elements(&maps, &ips);
        let mut localnet = None;
        if conf.snat {
            elems.extend(masq_elements(&nets, conf.masq_all));
            if let Some(pod) = first_v4(&ips)
                && let Some(ifname) = routed_via(pod)?
            {
                elems.extend(localnet_elements(pod, &ifname, false));
                localnet = Some((pod, ifname));
            }
        }
        if let Some(problem) = verify(&table, &elems) {
            return Err(Error::other(code::INTERNAL, problem));
        }
        if let Some((pod, ifname)) = localnet
            && !read_localnet(&ifname)?
        {
            return Err(Error::other(
                code::INTERNAL,
                format!(
                    "net.ipv4.conf.{ifname}.route_localnet is off: localhost cannot reach the hostPorts of {pod}"
                ),
            ));
        }
        Ok(())
    }
}
