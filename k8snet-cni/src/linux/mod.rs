//! The kernel side (feature `linux`): the bridge, loopback and portmap
//! plugins on netlink (rtnetlink) and nftables (k8snet-nft).

mod bridge;
pub mod conntrack;
mod detach;
mod loopback;
pub(crate) mod masq_kernel;
pub(crate) mod nl;
mod portmap;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

pub use bridge::Bridge;
pub use loopback::Loopback;
pub use portmap::Portmap;

use crate::error::{Error, Result, code};
use crate::result::{CniResult, IpConfig, Route};
use nl::nl_err;

/// The kernel's address messages of link `index`.
pub(crate) async fn address_messages(h: &Handle, index: u32) -> Result<Vec<AddressMessage>> {
    h.address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(nl_err(format!("listing addresses of link {index}")))
}

/// The addresses on link `index`.
pub(crate) async fn addresses(h: &Handle, index: u32) -> Result<Vec<IpNet>> {
    let msgs = address_messages(h, index).await?;
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

/// The next hop ADD installs for route `r`: its own gateway when it is of
/// the route's family, else the first gateway of that family among `ips`
/// (as the reference's `ipam.ConfigureIface`), else none (on-link).
pub(crate) fn route_gateway(r: &Route, ips: &[IpConfig]) -> Option<IpAddr> {
    let v4 = r.dst.addr().is_ipv4();
    r.gw.filter(|g| g.is_ipv4() == v4).or_else(|| {
        ips.iter().find_map(|ip| {
            ip.gateway
                .filter(|g| g.is_ipv4() == v4 && ip.address.addr().is_ipv4() == v4)
        })
    })
}

/// A route as the kernel reports it, reduced to what ADD sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InstalledRoute {
    pub(crate) dst: IpNet,
    pub(crate) gw: Option<IpAddr>,
    pub(crate) table: u32,
    pub(crate) priority: u32,
    pub(crate) oif: Option<u32>,
}

impl InstalledRoute {
    fn from_message(m: &RouteMessage) -> Option<Self> {
        let addr = |a: &RouteAddress| match a {
            RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
            RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
            _ => None,
        };
        let unspecified = match m.header.address_family {
            AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => return None,
        };
        let mut out = Self {
            dst: IpNet::new(unspecified, m.header.destination_prefix_length).ok()?,
            gw: None,
            table: u32::from(m.header.table),
            priority: 0,
            oif: None,
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(d) => {
                    out.dst = IpNet::new(addr(d)?, m.header.destination_prefix_length).ok()?;
                }
                RouteAttribute::Gateway(g) => out.gw = addr(g),
                RouteAttribute::Table(t) => out.table = *t,
                RouteAttribute::Priority(p) => out.priority = *p,
                RouteAttribute::Oif(i) => out.oif = Some(*i),
                _ => {}
            }
        }
        Some(out)
    }
}

/// The main routing table's id (routes without `table` go there).
const RT_TABLE_MAIN: u32 = 254;

/// Whether `have` is the route ADD installed for `want` on link `oif`:
/// same destination, next hop (as [`route_gateway`] gives it), table and,
/// when the result names one, metric. A route without a next hop must be
/// on `oif`.
pub(crate) fn route_matches(
    want: &Route,
    gw: Option<IpAddr>,
    oif: u32,
    have: &InstalledRoute,
) -> bool {
    have.dst == want.dst.trunc()
        && have.gw == gw
        && have.table == want.table.unwrap_or(RT_TABLE_MAIN)
        && want.priority.is_none_or(|p| p == 0 || p == have.priority)
        && (gw.is_some() || have.oif == Some(oif))
}

/// The error CHECK gives for a route of the result that is not installed.
pub(crate) fn missing_route(want: &Route, gw: Option<IpAddr>, ifname: &str, netns: &str) -> Error {
    let mut shown = want.dst.to_string();
    match gw {
        Some(g) => shown.push_str(&format!(" via {g}")),
        None => shown.push_str(&format!(" dev {ifname}")),
    }
    if let Some(t) = want.table.filter(|t| *t != RT_TABLE_MAIN) {
        shown.push_str(&format!(" table {t}"));
    }
    if let Some(p) = want.priority.filter(|p| *p != 0) {
        shown.push_str(&format!(" metric {p}"));
    }
    Error::other(
        code::INTERNAL,
        format!("route {shown} of prevResult not found in the routing tables of {netns}"),
    )
}

/// Every route of the namespace of `h`, both families, all tables.
pub(crate) async fn installed_routes(h: &Handle) -> Result<Vec<InstalledRoute>> {
    let mut out = Vec::new();
    for msg in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let msgs: Vec<RouteMessage> = h
            .route()
            .get(msg)
            .execute()
            .try_collect()
            .await
            .map_err(nl_err("listing routes"))?;
        out.extend(msgs.iter().filter_map(InstalledRoute::from_message));
    }
    Ok(out)
}

/// CHECK's part of the reference's `ip.ValidateExpectedRoute`: every route
/// of `result` is installed in the namespace of `h` as ADD installed it
/// (see [`route_matches`]); the error names the first missing one.
pub(crate) async fn check_routes(
    h: &Handle,
    ifname: &str,
    oif: u32,
    netns: &str,
    result: &CniResult,
    ips: &[IpConfig],
) -> Result<()> {
    if result.routes.is_empty() {
        return Ok(());
    }
    let have = installed_routes(h).await?;
    for want in &result.routes {
        let gw = route_gateway(want, ips);
        if !have.iter().any(|r| route_matches(want, gw, oif, r)) {
            return Err(missing_route(want, gw, ifname, netns));
        }
    }
    Ok(())
}

/// Brings the container interface (link `index`, called `ifname`) up with
/// the result's addresses and routes, as the reference's
/// `ipam.ConfigureIface`: a route without a gateway goes via the first
/// gateway of its family. With `read_back`, the link as it is afterwards.
///
/// All of it is one batch on `sock` (link up, each address, each route,
/// and the read-back; in datagrams of at most [`nl::MAX_BATCH`] requests,
/// so that any number of routes fits the socket's receive buffer); the
/// kernel handles them in that order, each before the next, exactly as one
/// request after the other. Each one is answered, so the error reported is
/// that of the first request refused, with the text it always had;
/// requests after a refused one in its datagram may have been applied,
/// which does not matter: a failed ADD deletes the interface. A failure of
/// the socket itself names this step.
pub(crate) fn configure_iface(
    sock: &mut nl::SyncSocket,
    ifname: &str,
    index: u32,
    result: &CniResult,
    read_back: bool,
) -> Result<Option<nl::LinkMessage>> {
    use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
    use rtnetlink::packet_route::RouteNetlinkMessage as M;
    let create = NLM_F_CREATE | NLM_F_EXCL;
    let mut reqs = Vec::new();
    let mut what = Vec::new();
    reqs.push((
        M::SetLink(LinkUnspec::new_with_index(index).up().build()),
        create,
    ));
    what.push(format!("failed to set {ifname:?} up"));
    let mine = |i: Option<usize>| i.is_none() || i == Some(2) || result.interfaces.is_empty();
    for ip in result.ips.iter().filter(|ip| mine(ip.interface)) {
        reqs.push((M::NewAddress(address_message(index, ip.address)), create));
        what.push(format!(
            "failed to add IP addr {} to {ifname:?}",
            ip.address
        ));
    }
    for r in &result.routes {
        let msg = route_message(r, route_gateway(r, &result.ips), index);
        reqs.push((M::NewRoute(msg), create));
        what.push(format!("failed to add route {} on {ifname:?}", r.dst));
    }
    if read_back {
        let mut get = nl::LinkMessage::default();
        get.header.index = index;
        reqs.push((M::GetLink(get), 0));
        what.push(format!("looking up link {ifname}"));
    }
    let replies = sock.batch(&format!("configuring {ifname:?} in the container"), reqs)?;
    for (reply, what) in replies.iter().zip(what) {
        reply.result().map_err(nl_err(what))?;
    }
    Ok(replies.into_iter().last().and_then(|r| {
        read_back
            .then(|| {
                r.messages.into_iter().find_map(|m| match m {
                    M::NewLink(l) => Some(l),
                    _ => None,
                })
            })
            .flatten()
    }))
}

/// The message that adds `addr` to link `index` (as `ip addr add`: for
/// IPv4 with its broadcast address).
pub(crate) fn address_message(index: u32, addr: IpNet) -> AddressMessage {
    use rtnetlink::AddressMessageBuilder;
    match addr.addr() {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, addr.prefix_len())
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a, addr.prefix_len())
            .build(),
    }
}

/// The route message ADD installs for `r` on link `index` via `gw`.
fn route_message(r: &Route, gw: Option<IpAddr>, index: u32) -> RouteMessage {
    // `proto boot`, as routes added by the reference plugins.
    match r.dst.addr() {
        IpAddr::V4(dst) => {
            let b = RouteMessageBuilder::<Ipv4Addr>::new()
                .protocol(RouteProtocol::Boot)
                .destination_prefix(dst, r.dst.prefix_len())
                .output_interface(index);
            match gw {
                Some(IpAddr::V4(g)) => route_options(b.gateway(g), r),
                _ => route_options(b, r),
            }
        }
        IpAddr::V6(dst) => {
            let b = RouteMessageBuilder::<Ipv6Addr>::new()
                .protocol(RouteProtocol::Boot)
                .destination_prefix(dst, r.dst.prefix_len())
                .output_interface(index);
            match gw {
                Some(IpAddr::V6(g)) => route_options(b.gateway(g), r),
                _ => route_options(b, r),
            }
        }
    }
}

/// The route's metric and table, when the result names them.
fn route_options<T>(mut b: RouteMessageBuilder<T>, r: &Route) -> RouteMessage {
    if let Some(p) = r.priority {
        b = b.priority(p);
    }
    if let Some(t) = r.table {
        b = b.table_id(t);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn route(dst: &str, gw: Option<&str>) -> Route {
        Route::new(dst.parse().unwrap(), gw.map(ip))
    }

    fn ips() -> Vec<IpConfig> {
        vec![
            IpConfig {
                address: "198.18.0.5/24".parse().unwrap(),
                gateway: Some(ip("198.18.0.1")),
                interface: Some(2),
            },
            IpConfig {
                address: "fd00:18::5/64".parse().unwrap(),
                gateway: Some(ip("fd00:18::1")),
                interface: Some(2),
            },
        ]
    }

    fn installed(dst: &str, gw: Option<&str>, table: u32, priority: u32) -> InstalledRoute {
        InstalledRoute {
            dst: dst.parse().unwrap(),
            gw: gw.map(ip),
            table,
            priority,
            oif: Some(7),
        }
    }

    #[test]
    fn the_gateway_of_a_route_is_its_own_or_its_familys() {
        let ips = ips();
        assert_eq!(
            route_gateway(&route("0.0.0.0/0", None), &ips),
            Some(ip("198.18.0.1"))
        );
        assert_eq!(
            route_gateway(&route("::/0", None), &ips),
            Some(ip("fd00:18::1"))
        );
        assert_eq!(
            route_gateway(&route("198.19.0.0/17", Some("198.18.0.9")), &ips),
            Some(ip("198.18.0.9"))
        );
        // A gateway of the other family is not used: the family's is.
        assert_eq!(
            route_gateway(&route("198.19.0.0/17", Some("fd00:18::9")), &ips),
            Some(ip("198.18.0.1"))
        );
        assert_eq!(route_gateway(&route("0.0.0.0/0", None), &[]), None);
    }

    #[test]
    fn a_route_matches_on_destination_gateway_table_and_metric() {
        let want = route("198.19.0.0/17", None);
        let gw = Some(ip("198.18.0.1"));
        let have = installed("198.19.0.0/17", Some("198.18.0.1"), 254, 0);
        assert!(route_matches(&want, gw, 7, &have));
        // Another gateway, destination, prefix or table is another route.
        for other in [
            installed("198.19.0.0/17", Some("198.18.0.2"), 254, 0),
            installed("198.19.0.0/16", Some("198.18.0.1"), 254, 0),
            installed("198.19.128.0/17", Some("198.18.0.1"), 254, 0),
            installed("198.19.0.0/17", Some("198.18.0.1"), 100, 0),
            installed("198.19.0.0/17", None, 254, 0),
        ] {
            assert!(!route_matches(&want, gw, 7, &other), "{other:?}");
        }
        // Destinations compare as networks (host bits ignored).
        assert!(route_matches(&route("198.19.0.7/17", None), gw, 7, &have));
        // Table and metric, when the result names them.
        let mut t = route("198.19.0.0/17", None);
        t.table = Some(100);
        t.priority = Some(50);
        assert!(!route_matches(&t, gw, 7, &have));
        let in_100 = installed("198.19.0.0/17", Some("198.18.0.1"), 100, 50);
        assert!(route_matches(&t, gw, 7, &in_100));
        let metric_60 = installed("198.19.0.0/17", Some("198.18.0.1"), 100, 60);
        assert!(!route_matches(&t, gw, 7, &metric_60));
        // Without a gateway, the route must be on our interface.
        let onlink = installed("198.19.0.0/17", None, 254, 0);
        assert!(route_matches(&want, None, 7, &onlink));
        assert!(!route_matches(&want, None, 8, &onlink));
    }

    #[test]
    fn the_missing_route_error_names_the_route() {
        let mut r = route("198.19.0.0/17", None);
        let e = missing_route(&r, Some(ip("198.18.0.1")), "eth0", "/run/netns/p");
        assert_eq!(e.code(), 999);
        assert_eq!(
            e.to_string(),
            "route 198.19.0.0/17 via 198.18.0.1 of prevResult not found in the routing tables of /run/netns/p"
        );
        r.table = Some(100);
        r.priority = Some(5);
        let e = missing_route(&r, None, "eth0", "/run/netns/p");
        assert_eq!(
            e.to_string(),
            "route 198.19.0.0/17 dev eth0 table 100 metric 5 of prevResult not found in the routing tables of /run/netns/p"
        );
    }

    #[test]
    fn kernel_route_messages_are_read_back() {
        let m = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix("198.19.0.0".parse().unwrap(), 17)
            .gateway("198.18.0.1".parse().unwrap())
            .output_interface(3)
            .priority(20)
            .table_id(1000)
            .build();
        assert_eq!(
            InstalledRoute::from_message(&m),
            Some(InstalledRoute {
                dst: "198.19.0.0/17".parse().unwrap(),
                gw: Some(ip("198.18.0.1")),
                table: 1000,
                priority: 20,
                oif: Some(3),
            })
        );
        // A default route has no destination attribute.
        let m = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway("fd00:18::1".parse().unwrap())
            .build();
        let r = InstalledRoute::from_message(&m).unwrap();
        assert_eq!(r.dst, "::/0".parse::<IpNet>().unwrap());
        assert_eq!((r.gw, r.table, r.oif), (Some(ip("fd00:18::1")), 254, None));
    }
}
