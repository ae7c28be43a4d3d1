//! The kernel side (feature `linux`): the bridge, loopback and portmap
//! plugins on netlink (rtnetlink) and nftables (k8snet-nft).

mod bridge;
mod loopback;
pub(crate) mod masq_kernel;
pub(crate) mod nl;
mod portmap;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::RouteProtocol;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

pub use bridge::Bridge;
pub use loopback::Loopback;
pub use portmap::Portmap;

use crate::error::{Error, Result};
use crate::result::CniResult;
use nl::{link_by_name, nl_err};

/// The addresses on link `index`.
pub(crate) async fn addresses(h: &Handle, index: u32) -> Result<Vec<IpNet>> {
    let msgs: Vec<_> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(nl_err(format!("listing addresses of link {index}")))?;
    Ok(msgs
        .iter()
        .filter_map(|m| {
            let ip = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })?;
            IpNet::new(ip, m.header.prefix_len).ok()
        })
        .collect())
}

/// Brings the container interface up with the result's addresses and
/// routes, as the reference's `ipam.ConfigureIface`: a route without a
/// gateway goes via the first gateway of its family.
pub(crate) async fn configure_iface(h: &Handle, ifname: &str, result: &CniResult) -> Result<()> {
    let link = link_by_name(h, ifname)
        .await?
        .ok_or_else(|| Error::kernel(format!("container interface {ifname}"), "not found"))?;
    let index = link.header.index;
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl_err(format!("failed to set {ifname:?} up")))?;
    let mine = |i: Option<usize>| i.is_none() || i == Some(2) || result.interfaces.is_empty();
    for ip in result.ips.iter().filter(|ip| mine(ip.interface)) {
        h.address()
            .add(index, ip.address.addr(), ip.address.prefix_len())
            .execute()
            .await
            .map_err(nl_err(format!(
                "failed to add IP addr {} to {ifname:?}",
                ip.address
            )))?;
    }
    let gw4 = result.ips.iter().find_map(|ip| match ip.gateway {
        Some(IpAddr::V4(g)) if ip.address.addr().is_ipv4() => Some(g),
        _ => None,
    });
    let gw6 = result.ips.iter().find_map(|ip| match ip.gateway {
        Some(IpAddr::V6(g)) if ip.address.addr().is_ipv6() => Some(g),
        _ => None,
    });
    for r in &result.routes {
        let msg = match (r.dst.addr(), r.gw) {
            (IpAddr::V4(dst), gw) => {
                let gw: Option<Ipv4Addr> = match gw {
                    Some(IpAddr::V4(g)) => Some(g),
                    _ => gw4,
                };
                // `proto boot`, as routes added by the reference plugins.
                let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                    .protocol(RouteProtocol::Boot)
                    .destination_prefix(dst, r.dst.prefix_len())
                    .output_interface(index);
                if let Some(g) = gw {
                    b = b.gateway(g);
                }
                if let Some(p) = r.priority {
                    b = b.priority(p);
                }
                if let Some(t) = r.table {
                    b = b.table_id(t);
                }
                b.build()
            }
            (IpAddr::V6(dst), gw) => {
                let gw: Option<Ipv6Addr> = match gw {
                    Some(IpAddr::V6(g)) => Some(g),
                    _ => gw6,
                };
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                    .protocol(RouteProtocol::Boot)
                    .destination_prefix(dst, r.dst.prefix_len())
                    .output_interface(index);
                if let Some(g) = gw {
                    b = b.gateway(g);
                }
                if let Some(p) = r.priority {
                    b = b.priority(p);
                }
                if let Some(t) = r.table {
                    b = b.table_id(t);
                }
                b.build()
            }
        };
        h.route().add(msg).execute().await.map_err(nl_err(format!(
            "failed to add route {} on {ifname:?}",
            r.dst
        )))?;
    }
    Ok(())
}
