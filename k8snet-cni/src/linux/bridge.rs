//! The bridge plugin on netlink: the reference's ADD, DEL, CHECK, with GC
//! and STATUS, every ADD step undone if a later one fails, and no sleeps
//! (the wait for the bridge port is driven by link events).

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, State,
};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use crate::bridge::{
    BridgeConf, complete_result, configured_dns, local_unicast_mac, requested_mac, veth_group,
};
use crate::delegate;
use crate::error::{Error, Result, code};
use crate::linux::detach;
use crate::linux::nl::{
    self, EEXIST, Sandbox, Session, SyncSandbox, alias, controller, in_netns, kind, link_by_name,
    mac, mac_bytes, nl_err, node_sysctl, operstate, port_isolated, sandbox_sysctls,
};
use crate::linux::{configure_iface, masq_kernel};
use crate::plugin::{GcRequest, Plugin, Request};
use crate::result::{CniResult, Interface, IpConfig};
use crate::version::Version;

/// How long the host end may take to become operationally up (the
/// reference gives up after 2.55 s of fixed sleeps).
const PORT_UP_LIMIT: Duration = Duration::from_secs(3);

/// The bridge plugin (binary `k8snet-bridge`): the reference's keys, plus
/// `portIsolation` and `deferDelete` (default `true`: DEL leaves deleting
/// the veth pair to a detached process once the interface is down, without
/// addresses and renamed; `false`: DEL deletes the pair before it returns,
/// as the reference does; see the crate documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bridge;

/// What ADD made so far, undone in reverse on failure.
enum Made {
    HostLink(u32),
    Ipam,
    Masq(String),
}

/// The host end's alias: which attachment it belongs to, for GC.
fn alias_for(network: &str, container_id: &str, ifname: &str) -> String {
    format!("k8snet-cni/{network}/{container_id}/{ifname}")
}

/// The host end's name: stable per attachment (a leftover of a killed ADD
/// is recognised and replaced), random on a clash, as `veth%08x`.
fn veth_name(network: &str, container_id: &str, ifname: &str, attempt: u32) -> String {
    let seed = format!("{network}/{container_id}/{ifname}/{attempt}");
    let h = crate::masq::fnv(&seed);
    let mut x = (h ^ (h >> 32)) as u32;
    let mut b = [0u8; 4];
    if attempt > 0 && urandom(&mut b).is_ok() {
        x ^= u32::from_ne_bytes(b);
    }
    format!("veth{x:08x}")
}

/// The interface group of a link, as the kernel reports it.
fn group(l: &nl::LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Group(g) => Some(*g),
        _ => None,
    })
}

/// A host veth end of network `network` left by an ADD killed between
/// creating the pair and labelling it: our name shape (`veth` + 8 hex
/// digits), no alias, no bridge, and the network's creation group
/// ([`veth_group`]). A veth in use is always on a bridge, so this never
/// matches one (ours or the reference plugin's) that carries traffic; the
/// group keeps it off another network's ADD in flight (created, not yet
/// labelled) and the reference plugin's (same name shape, group 0).
fn orphan_veth(l: &nl::LinkMessage, network: &str) -> bool {
    let named_like_ours = l.attributes.iter().any(|a| match a {
        LinkAttribute::IfName(n) => {
            n.len() == 12 && n.starts_with("veth") && n[4..].bytes().all(|b| b.is_ascii_hexdigit())
        }
        _ => false,
    });
    named_like_ours
        && matches!(kind(l), Some(InfoKind::Veth))
        && alias(l).is_none()
        && controller(l).is_none()
        && group(l) == Some(veth_group(network))
}

/// The bridge `conf.bridge`, created when missing, up (and promiscuous if
/// asked), on the node's blocking socket `sock`.
fn ensure_bridge(sock: &mut nl::SyncSocket, conf: &BridgeConf) -> Result<nl::LinkMessage> {
    use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
    use rtnetlink::packet_route::RouteNetlinkMessage as M;
    let name = &conf.bridge;
    // One lookup when the bridge exists (every ADD but a node's first).
    let br = match sock.link_by_name(name)? {
        Some(br) => br,
        None => {
            // Created with a MAC of its own (random, locally administered):
            // the kernel then keeps it (an address set by user space is not
            // recalculated from the ports), so every ADD, also those racing
            // on a node's first pods, reads and reports the same bridge MAC.
            // Without it the MAC follows the lowest port's until an ADD pins
            // it, and concurrent first ADDs pinned and reported whatever
            // each had read.
            let [mac] = random_macs("the bridge's MAC")?;
            let mut b = LinkBridge::new(name).address(mac.to_vec());
            if conf.mtu > 0 {
                b = b.mtu(conf.mtu);
            }
            let step = format!("failed to create bridge {name:?}");
            let reply = sock.request(&step, M::NewLink(b.build()), NLM_F_CREATE | NLM_F_EXCL)?;
            match reply.result() {
                Err(e) if nl::errno(&e) != Some(EEXIST) => return Err(nl_err(step)(e)),
                _ => {}
            }
            sock.link_by_name(name)?
                .ok_or_else(|| Error::kernel(format!("bridge {name:?}"), "vanished"))?
        }
    };
    if kind(&br) != Some(&InfoKind::Bridge) {
        return Err(Error::kernel(
            format!("failed to create bridge {name:?}"),
            format!("{name:?} already exists but is not a bridge"),
        ));
    }
    // We own the bridge's routes (the reference does the same).
    node_sysctl(&format!("net/ipv6/conf/{name}/accept_ra"), "0");
    // Up (and promiscuous if asked); a request only when it is not so yet.
    let flags = br.header.flags;
    let promisc_ok = !conf.promisc_mode || flags.contains(LinkFlags::Promisc);
    if !flags.contains(LinkFlags::Up) || !promisc_ok {
        let mut set = LinkUnspec::new_with_index(br.header.index).up();
        if conf.promisc_mode {
            set = set.promiscuous(true);
        }
        let step = format!("setting bridge {name:?} up");
        sock.request(&step, M::SetLink(set.build()), NLM_F_CREATE | NLM_F_EXCL)?
            .result()
            .map_err(nl_err(step))?;
    }
    Ok(br)
}

/// The bridge's addresses `wanted`, as the reference's `ensureAddr` for
/// each in turn: added unless present; another address of the family
/// (IPv4) or an overlapping one (IPv6) is an error, or is replaced with
/// `forceAddress`. With `pin`, the bridge's MAC is set to it as well.
///
/// The pin and the address dump go out in one datagram, the deletions and
/// additions in a second. The result of the pin: whether it was made.
fn ensure_addrs(
    sock: &mut nl::SyncSocket,
    br: u32,
    br_name: &str,
    wanted: &[IpNet],
    force: bool,
    pin: Option<Vec<u8>>,
) -> (Result<()>, Result<bool>) {
    use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
    use rtnetlink::packet_route::RouteNetlinkMessage as M;
    let pin_step = format!("could not set {br_name:?}'s mac");
    let list_step = format!("listing addresses of {br_name:?}");
    let mut reqs = Vec::new();
    let pinning = pin.is_some();
    if let Some(m) = pin {
        reqs.push((
            M::SetLink(LinkUnspec::new_with_index(br).address(m).build()),
            NLM_F_CREATE | NLM_F_EXCL,
        ));
    }
    let mut get = AddressMessage::default();
    get.header.index = br;
    reqs.push((M::GetAddress(get), NLM_F_DUMP));
    let mut replies = match sock.batch(&list_step, reqs) {
        Ok(r) => r,
        Err(e) => return (Err(e), Ok(false)),
    };
    let pinned = if pinning && !replies.is_empty() {
        let r = replies.remove(0);
        r.result().map(|()| true).map_err(nl_err(pin_step))
    } else {
        Ok(false)
    };
    let addrs = (|| {
        let listed = replies.pop().unwrap_or_default();
        listed.result().map_err(nl_err(list_step.clone()))?;
        // The kernel dumps every link's addresses: keep the bridge's.
        let mut current: Vec<(IpNet, AddressMessage)> = listed
            .messages
            .into_iter()
            .filter_map(|m| match m {
                M::NewAddress(a) if a.header.index == br => {
                    let ip = a.attributes.iter().find_map(|x| match x {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })?;
                    Some((IpNet::new(ip, a.header.prefix_len).ok()?, a))
                }
                _ => None,
            })
            .collect();
        for addr in wanted {
            let mut present = false;
            let mut reqs = Vec::new();
            let mut what = Vec::new();
            let mut kept = Vec::new();
            for (have, msg) in current.drain(..) {
                if have.addr().is_ipv4() != addr.addr().is_ipv4() || present {
                    kept.push((have, msg));
                    continue;
                }
                if have == *addr {
                    present = true;
                    kept.push((have, msg));
                    continue;
                }
                let clash = addr.addr().is_ipv4()
                    || have.contains(&addr.addr())
                    || addr.contains(&have.addr());
                if !clash {
                    kept.push((have, msg));
                } else if !force {
                    return Err(Error::kernel(
                        "failed to set bridge addr",
                        format!("{br_name:?} already has an IP address different from {addr}"),
                    ));
                } else {
                    reqs.push((M::DelAddress(msg), 0));
                    what.push(format!("could not remove IP address from {br_name:?}"));
                }
            }
            current = kept;
            // Clashing addresses listed before it go even when it is
            // there (the reference deletes them as it meets them).
            let add_at = (!present).then_some(reqs.len());
            if !present {
                reqs.push((
                    M::NewAddress(crate::linux::address_message(br, *addr)),
                    NLM_F_CREATE | NLM_F_EXCL,
                ));
                what.push(format!("could not add IP address to {br_name:?}"));
            }
            if reqs.is_empty() {
                continue;
            }
            let replies = sock.batch(&format!("setting the addresses of {br_name:?}"), reqs)?;
            for (i, (reply, what)) in replies.iter().zip(what).enumerate() {
                match reply.result() {
                    Err(e) if Some(i) == add_at && nl::errno(&e) == Some(EEXIST) => {}
                    // Deleting a primary IPv4 address takes its secondaries
                    // with it: a secondary deleted next is already gone.
                    // (The reference fails the ADD here; a retry succeeds.)
                    Err(e) if Some(i) != add_at && nl::errno(&e) == Some(nl::EADDRNOTAVAIL) => {}
                    Err(e) => return Err(nl_err(what)(e)),
                    Ok(()) => {}
                }
            }
            if !present {
                current.push((*addr, crate::linux::address_message(br, *addr)));
            }
        }
        Ok(())
    })();
    (addrs, pinned)
}

/// The veth pair ADD made: the host end's name and index, and the
/// container end's index when the kernel told it.
struct Veth {
    host: String,
    host_index: u32,
    cont_index: Option<u32>,
}

/// Fills `buf` from `/dev/urandom`.
fn urandom(buf: &mut [u8]) -> std::io::Result<()> {
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, buf))
}

/// `N` MACs as the kernel would pick them (random, locally administered,
/// unicast), from one read of `/dev/urandom`; `what` names them in an
/// error.
fn random_macs<const N: usize>(what: &str) -> Result<[[u8; 6]; N]> {
    let mut b = [[0u8; 6]; N];
    urandom(b.as_flattened_mut())
        .map_err(|e| Error::io(format!("reading /dev/urandom for {what}"), e))?;
    Ok(b.map(|m| local_unicast_mac(&m)))
}

/// The link index the kernel reports as a link's peer (`IFLA_LINK`).
fn peer_index(l: &nl::LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}

/// Creates the veth pair in one request: the host end in our namespace,
/// the peer created directly in the container's (by namespace fd), both
/// with the given MACs and one queue each.
///
/// The request carries `NLM_F_ECHO`: the kernel answers with the new host
/// end (its index, and its peer's index in the container's namespace), so
/// no lookup follows. A kernel that does not echo gets the lookup.
///
/// The bridge, `IFF_UP` and the alias follow in one `SETLINK`. The
/// kernel's create path (net/core/rtnetlink.c, `rtnl_newlink_create`)
/// would take the first two (the header's flags through
/// `rtnl_configure_link`, `IFLA_MASTER` through `do_set_master`) but not
/// `IFLA_IFALIAS`, so that request stays either way; and the host end must
/// not join the bridge before it carries its alias: an ADD killed in
/// between would leave a veth on the bridge without an alias, which GC
/// cannot tell from a pod's (see `orphan_veth`), where an unlabelled one
/// off the bridge is recognised as ours.
///
/// The host end is created in its network's interface group
/// ([`veth_group`]; the create path honours `IFLA_GROUP`: `rtnl_create_link`
/// sets it before the link is registered, so no dump ever shows the link
/// without it), and that `SETLINK` sets it back to 0 (`do_setlink`). GC of
/// a network thus removes only its own unlabelled leftovers, never a veth
/// another network's ADD (or the reference plugin, whose names look like
/// ours) is still setting up.
///
/// Both ends get `IFLA_NUM_TX_QUEUES` and `IFLA_NUM_RX_QUEUES` of 1. The
/// queues in use are 1 either way; without them the kernel allocates one
/// queue per possible CPU and then cuts the real count to 1
/// (`veth_init_queues`), which waits for two expedited RCU grace periods
/// under the RTNL lock. What differs is only the allocated maximum
/// (`numtxqueues`/`numrxqueues` in `ip -d link`), which bounds a later
/// `ethtool -L` on the pair.
///
/// The MACs are ours rather than the kernel's random ones so that the
/// result is known without reading the links back; the kernel then marks
/// them as set by the user (`addr_assign_type` 3, `NET_ADDR_SET`), so
/// udev's `MACAddressPolicy` leaves them alone, where it may rewrite a
/// random one.
fn create_veth(
    host_sock: &mut nl::SyncSocket,
    sb: &mut SyncSandbox,
    req: &Request,
    conf: &BridgeConf,
    [host_mac, cont_mac]: [[u8; 6]; 2],
) -> Result<Veth> {
    use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
    use rtnetlink::packet_route::RouteNetlinkMessage;
    let ifname = &req.env.ifname;
    let wanted_alias = alias_for(&req.conf.name, &req.env.container_id, ifname);
    for attempt in 0..10 {
        let host = veth_name(&req.conf.name, &req.env.container_id, ifname, attempt);
        // The reference's veth ends have a queue length of 0 (Go's netlink
        // sends it); the kernel would give 1000. Match it: veths have no
        // qdisc by default, so it only matters to whoever adds one.
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(ifname.clone())
            .txqueuelen(0)
            .address(cont_mac.to_vec())
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .setns_by_fd(sb.file.as_raw_fd());
        let mut msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.clone())
            .txqueuelen(0)
            .address(host_mac.to_vec())
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .append_extra_attribute(LinkAttribute::Group(veth_group(&req.conf.name)));
        if conf.mtu > 0 {
            peer = peer.mtu(conf.mtu);
            msg = msg.mtu(conf.mtu);
        }
        let msg = msg
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        let step = format!("failed to create veth {host}");
        let reply = host_sock.request(
            &step,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
        )?;
        let outcome = reply.result().map(|()| {
            reply.messages.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
        });
        match outcome {
            Ok(echoed) => {
                let ours = |l: &nl::LinkMessage| {
                    l.attributes
                        .iter()
                        .any(|a| matches!(a, LinkAttribute::IfName(n) if *n == host))
                };
                let link = match echoed.filter(ours) {
                    Some(l) => l,
                    None => host_sock
                        .link_by_name(&host)?
                        .ok_or_else(|| Error::kernel(format!("veth {host}"), "vanished"))?,
                };
                return Ok(Veth {
                    cont_index: peer_index(&link),
                    host_index: link.header.index,
                    host,
                });
            }
            Err(e) if nl::errno(&e) == Some(EEXIST) => {
                if sb.sock.link_by_name(ifname)?.is_some() {
                    return Err(Error::other(
                        code::INTERNAL,
                        format!("container veth name provided ({ifname}) already exists"),
                    ));
                }
                // Our own leftover from a killed ADD of this attachment.
                if let Some(old) = host_sock.link_by_name(&host)?
                    && alias(&old) == Some(wanted_alias.as_str())
                {
                    nl::delete_link_sync(host_sock, old.header.index)?;
                }
            }
            Err(e) => return Err(nl_err(step)(e)),
        }
    }
    Err(Error::kernel(
        "creating the veth pair",
        "no free host interface name after 10 tries",
    ))
}

fn add(
    host_sock: &mut nl::SyncSocket,
    req: &Request,
    conf: &BridgeConf,
    made: &mut Vec<Made>,
) -> Result<CniResult> {
    use rtnetlink::packet_route::RouteNetlinkMessage as M;
    // First: a malformed CNI_ARGS (code 999, as the reference's loadNetConf
    // parses it) or a bad MAC is refused before anything is made.
    let mac_wanted = requested_mac(&req.conf, &req.env)?;
    let netns = req.env.netns.as_deref().ok_or_else(|| Error::Env {
        var: "CNI_NETNS".into(),
        message: "required".into(),
    })?;
    let br = ensure_bridge(host_sock, conf)?;
    let br_index = br.header.index;
    let br = &br;
    let mut sb = nl::sync_sandbox(netns)?;
    let ifname = req.env.ifname.as_str();
    let [host_mac, random_cont] = random_macs("the veth MACs")?;
    let cont_mac = mac_wanted.unwrap_or(random_cont);
    // An existing container interface makes the veth request fail with
    // EEXIST, and `create_veth` then reports it (no lookup beforehand).
    let veth = create_veth(host_sock, &mut sb, req, conf, [host_mac, cont_mac])?;
    let (host_name, host_index) = (veth.host.clone(), veth.host_index);
    made.push(Made::HostLink(host_index));
    // Bridge, up, alias and the default group in one request, after the
    // create (see `create_veth`); both port flags in a second, in the same
    // datagram (the kernel handles them in order).
    let set = LinkUnspec::new_with_index(host_index)
        .controller(br_index)
        .up()
        .append_extra_attribute(LinkAttribute::IfAlias(alias_for(
            &req.conf.name,
            &req.env.container_id,
            ifname,
        )))
        .append_extra_attribute(LinkAttribute::Group(0))
        .build();
    let connect = format!(
        "failed to connect {host_name:?} to bridge {:?}",
        conf.bridge
    );
    let mut reqs = vec![(
        M::SetLink(set),
        rtnetlink::packet_core::NLM_F_CREATE | rtnetlink::packet_core::NLM_F_EXCL,
    )];
    let mut what = vec![connect.clone()];
    if conf.hairpin_mode || conf.port_isolation {
        let mut port = LinkBridgePort::new(host_index);
        let mut flags = Vec::new();
        if conf.hairpin_mode {
            port = port.hairpin(true);
            flags.push("hairpin mode");
        }
        if conf.port_isolation {
            port = port.isolated(true);
            flags.push("port isolation");
        }
        reqs.push((M::NewLink(port.build()), 0));
        what.push(format!(
            "failed to set {} on {host_name}",
            flags.join(" and ")
        ));
    }
    for (reply, what) in host_sock.batch(&connect, reqs)?.iter().zip(what) {
        reply.result().map_err(nl_err(what))?;
    }

    // The richest shape, converted to the configuration's version when
    // printed (a result without addresses then fails at 0.1.0/0.2.0).
    let mut result = CniResult::new(Version::LATEST);
    let mut bridge_addrs = Vec::new();
    if delegate::has_ipam(req) {
        let ipam = delegate::add(req)?;
        made.push(Made::Ipam);
        if ipam.ips.is_empty() {
            return Err(Error::other(
                code::INTERNAL,
                "IPAM plugin returned missing IP config",
            ));
        }
        result.ips = ipam.ips;
        result.routes = ipam.routes;
        result.dns = ipam.dns;
        bridge_addrs = complete_result(&mut result, conf);
        let dad = if conf.enabledad { "1" } else { "0" };
        let mut sysctls = vec![
            (format!("net/ipv6/conf/{ifname}/accept_dad"), dad),
            (format!("net/ipv4/conf/{ifname}/arp_notify"), "1"),
        ];
        if conf.enabledad {
            sysctls.push((format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1"));
        }
        sandbox_sysctls(&sb.file, &sysctls)?;
    }
    // Masquerade as soon as the addresses are known, and keep the
    // netfilter socket until ADD is done: closing it waits out the RCU
    // grace period that frees the transaction (see `masq_kernel`), which
    // then passes while the interface is configured.
    let mut nft = None;
    if conf.ip_masq {
        let chain = crate::masq::chain_name(&req.conf.name, &req.env.container_id, ifname);
        let ips: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
        nft = Some(masq_kernel::setup(&chain, &ips)?);
        made.push(Made::Masq(chain));
    }
    let cont_index = match veth.cont_index {
        Some(i) => i,
        None => {
            sb.sock
                .link_by_name(ifname)?
                .ok_or_else(|| Error::kernel(format!("container interface {ifname}"), "not found"))?
                .header
                .index
        }
    };
    // The container end's MAC is ours; only its MTU (reported from 1.1.0
    // on) needs reading back, in the same batch.
    let read_back = req.conf.cni_version >= Version::V1_1_0;
    let cont = configure_iface(&mut sb.sock, ifname, cont_index, &result, read_back)?;

    let mut pinned = false;
    if conf.is_gateway && !bridge_addrs.is_empty() {
        // The bridge's addresses and its MAC pin are independent: both in
        // one datagram (see `ensure_addrs`). Pin the bridge's MAC (as it
        // was before this port joined): otherwise it follows the lowest
        // port's and changes as pods come and go.
        // A bridge without ports has the MAC 00:00:00:00:00:00 (its last
        // port gone before any ADD pinned it), which the kernel refuses to
        // set: it then takes this port's, and a later ADD pins that.
        let valid = |m: &Vec<u8>| m.len() == 6 && m[0] & 1 == 0 && m.iter().any(|b| *b != 0);
        let (addrs, pin) = ensure_addrs(
            host_sock,
            br_index,
            &conf.bridge,
            &bridge_addrs,
            conf.force_address,
            mac_bytes(br).filter(valid),
        );
        addrs?;
        pinned = pin?;
        if bridge_addrs.iter().any(|a| a.addr().is_ipv4()) {
            node_sysctl("net/ipv4/ip_forward", "1");
        }
        if bridge_addrs.iter().any(|a| a.addr().is_ipv6()) {
            node_sysctl("net/ipv6/conf/all/forwarding", "1");
        }
    }

    // The host end is usually up by now; subscribe to link events (and
    // look again, so that no change is missed) only if it is not. The
    // bridge's MAC follows its ports unless pinned above; read it again
    // only then (its MTU is reported from 1.1.0 on), in the same datagram.
    let up = |l: &nl::LinkMessage| operstate(l) == Some(State::Up);
    let reread_bridge = !pinned || req.conf.cni_version >= Version::V1_1_0;
    let get = |name: &str| {
        let mut l = nl::LinkMessage::default();
        l.attributes.push(LinkAttribute::IfName(name.to_owned()));
        (M::GetLink(l), 0)
    };
    let mut reqs = vec![get(&host_name)];
    if reread_bridge {
        reqs.push(get(&conf.bridge));
    }
    let mut replies = host_sock
        .batch(&format!("looking up link {host_name}"), reqs)?
        .into_iter();
    let link_of = |r: Option<nl::Reply>| {
        r.and_then(|r| {
            r.messages.into_iter().find_map(|m| match m {
                M::NewLink(l) => Some(l),
                _ => None,
            })
        })
    };
    let host_now = link_of(replies.next());
    let br_now = if reread_bridge {
        link_of(replies.next()).unwrap_or_else(|| br.clone())
    } else {
        br.clone()
    };
    let host = match host_now {
        Some(l) if up(&l) => l,
        _ => nl::wait_for_link(host_sock, &host_name, PORT_UP_LIMIT, up)?,
    };
    let mtu_of = |l: &nl::LinkMessage| {
        (req.conf.cni_version >= Version::V1_1_0)
            .then(|| {
                l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Mtu(m) => Some(*m),
                    _ => None,
                })
            })
            .flatten()
    };
    result.interfaces = vec![
        Interface {
            name: conf.bridge.clone(),
            mac: mac(&br_now),
            mtu: mtu_of(&br_now),
            ..Interface::default()
        },
        Interface {
            name: host_name,
            mac: mac(&host),
            mtu: mtu_of(&host),
            ..Interface::default()
        },
        Interface {
            name: ifname.to_owned(),
            mac: cont
                .as_ref()
                .and_then(mac)
                .or_else(|| Some(crate::bridge::format_mac(&cont_mac))),
            mtu: cont.as_ref().and_then(mtu_of),
            sandbox: Some(sb.path.clone()),
            ..Interface::default()
        },
    ];
    // Configured DNS wins over what IPAM returned when any of it is set,
    // an empty list or the domain included (bridge.go dnsConfSet).
    if let Some(dns) = configured_dns(&req.conf) {
        result.dns = dns;
    }
    // The last close of the netfilter socket would wait for what is left
    // of the grace period: a detached process holds a copy and closes it
    // after we are gone (if it cannot be started, we wait here).
    if let Some(n) = &nft {
        let _ = detach::run_detached(None, n.fd);
    }
    drop(nft);
    Ok(result)
}

fn undo(host_sock: &mut nl::SyncSocket, req: &Request, made: &[Made]) {
    for m in made.iter().rev() {
        let outcome = match m {
            Made::HostLink(i) => nl::delete_link_sync(host_sock, *i),
            Made::Ipam => delegate::del(req),
            Made::Masq(chain) => masq_kernel::teardown(|c| c == chain).map(drop),
        };
        if let Err(e) = outcome {
            tracing::warn!("rollback after a failed ADD: {e}");
        }
    }
}

/// The name a container interface gets while its deletion is pending.
fn pending_name(index: u32) -> String {
    format!("k8sdel{index:08x}")
}

/// Starts the process that deletes a link: [`detach::run_detached`] with
/// the socket and the prepared request.
/// The third argument is the netfilter socket the process is to hold.
type Spawner = fn(RawFd, &[u8], Option<RawFd>) -> std::io::Result<()>;

fn spawn_detached(socket: RawFd, request: &[u8], nft: Option<RawFd>) -> std::io::Result<()> {
    detach::run_detached(Some((socket, request)), nft)
}

/// The container interface `index` (in the namespace of `sb`): down, its
/// addresses removed, renamed to [`pending_name`], and its deletion handed
/// to a detached process (`spawn`, given a netlink socket in the
/// container's namespace and the request to send on it). `false` when any
/// step failed: the caller then deletes it (a rename already done does not
/// matter then).
fn defer_link_deletion(
    s: &Session,
    sb: &Sandbox,
    index: u32,
    nft: Option<RawFd>,
    spawn: Spawner,
) -> bool {
    let h = &sb.handle;
    let prepared = s.block_on(async {
        // Down, and (pipelined on the socket) the addresses it has; IPv6
        // ones may go away with the link going down, so those that are
        // gone by the time they are deleted are fine.
        let down = h
            .link()
            .set(LinkUnspec::new_with_index(index).down().build())
            .execute();
        let (down, addrs) =
            futures::future::join(down, crate::linux::address_messages(h, index)).await;
        down.map_err(nl_err(format!("setting link {index} down")))?;
        let rename = h
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .name(pending_name(index))
                    .build(),
            )
            .execute();
        // Each address by its value alone: the label the kernel reports
        // is the old name, which the rename changes.
        let dels = futures::future::join_all(addrs?.into_iter().map(|mut m| {
            m.attributes
                .retain(|a| matches!(a, AddressAttribute::Address(_) | AddressAttribute::Local(_)));
            h.address().del(m).execute()
        }));
        let (rename, dels) = futures::future::join(rename, dels).await;
        rename.map_err(nl_err(format!("renaming link {index}")))?;
        for d in dels {
            match d {
                Err(e) if !matches!(nl::errno(&e), Some(nl::EADDRNOTAVAIL | nl::ENODEV)) => {
                    return Err(nl_err(format!("removing an address of link {index}"))(e));
                }
                _ => {}
            }
        }
        Ok::<_, Error>(())
    });
    if let Err(e) = prepared {
        tracing::warn!("deferring the deletion of the container interface: {e}");
        return false;
    }
    // Bound now rather than by the detached process's `send`: the socket
    // then shows in the namespace's /proc/net/netlink for as long as a
    // process holds it (the kernel tests watch the detached one by it).
    let socket = match in_netns(&sb.file, || {
        let mut s = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
        s.bind_auto()?;
        Ok::<_, std::io::Error>(s)
    }) {
        Ok(Ok(sock)) => sock,
        Ok(Err(e)) => {
            tracing::warn!("deferring the deletion of the container interface: {e}");
            return false;
        }
        Err(e) => {
            tracing::warn!("deferring the deletion of the container interface: {e}");
            return false;
        }
    };
    let request = nl::del_link_request(index);
    match spawn(socket.as_raw_fd(), &request, nft) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("starting the detached link deletion: {e}");
            false
        }
    }
}

/// DEL, with `spawn` starting the detached link deletion (see
/// [`Bridge::del`]).
fn del_with(req: &Request, spawn: Spawner) -> Result<()> {
    let conf = BridgeConf::from_conf(&req.conf)?;
    let (nft, masq_error) = match teardown_masq(req, &conf) {
        Ok(nft) => (nft, None),
        Err(e) => (None, Some(e)),
    };
    let mut handed_over = false;
    if let Some(netns) = &req.env.netns
        && netns.exists()
    {
        let s = Session::new()?;
        match s.sandbox(netns) {
            Ok(sb) => {
                if let Some(l) = s.block_on(link_by_name(&sb.handle, &req.env.ifname))? {
                    let index = l.header.index;
                    handed_over = conf.defer_delete
                        && defer_link_deletion(
                            &s,
                            &sb,
                            index,
                            nft.as_ref().and_then(|n| n.fd),
                            spawn,
                        );
                    if !handed_over {
                        s.block_on(nl::delete_link(&sb.handle, index))?;
                    }
                }
            }
            // Deleted between the check and the open.
            Err(_) if !netns.exists() => {}
            Err(e) => return Err(e),
        }
    }
    // Nothing to delete, but a netfilter socket whose last close would
    // wait for a grace period: a detached process closes it instead.
    if conf.defer_delete
        && !handed_over
        && let Some(n) = &nft
    {
        let _ = detach::run_detached(None, n.fd);
    }
    if delegate::has_ipam(req) {
        delegate::del(req)?;
    }
    masq_error.map_or(Ok(()), Err)
}

fn teardown_masq(req: &Request, conf: &BridgeConf) -> Result<Option<masq_kernel::NftSocket>> {
    if !conf.ip_masq {
        return Ok(None);
    }
    let chain = crate::masq::chain_name(&req.conf.name, &req.env.container_id, &req.env.ifname);
    masq_kernel::teardown(|c| c == chain).map(Some)
}

impl Plugin for Bridge {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = BridgeConf::from_conf(&req.conf)?;
        // No runtime: blocking sockets only (see `nl`).
        let mut host_sock = nl::sync_host()?;
        let mut made = Vec::new();
        let r = add(&mut host_sock, req, &conf, &mut made);
        if r.is_err() {
            undo(&mut host_sock, req, &made);
        }
        r
    }

    /// Removes the masquerade chain, removes the container interface (which
    /// takes the host end with it) and releases the addresses. A missing
    /// netns, no `CNI_NETNS`, or things already gone are all fine.
    ///
    /// The masquerade chain goes first, and its netfilter socket stays open
    /// until the end: the kernel's grace period for freeing the chain then
    /// passes while the veth pair is deleted (which waits for its own), not
    /// after (see `masq_kernel`). A failure there does not stop the rest;
    /// it is reported after it.
    ///
    /// With `deferDelete` (the default) the pair's deletion, and the last
    /// close of that netfilter socket, happen in a detached process (see
    /// [`BridgeConf::defer_delete`] and `detach`); before that the
    /// interface is set down, its addresses removed and its name freed.
    ///
    /// A malformed `CNI_ARGS` does not fail DEL, on purpose unlike the
    /// reference (whose loadNetConf parses it on DEL too): DEL must release
    /// whatever else the runtime passes, so it (and the IPAM DEL it
    /// delegates) takes the well-formed pairs.
    fn del(&self, req: &Request) -> Result<()> {
        del_with(req, spawn_detached)
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = BridgeConf::from_conf(&req.conf)?;
        // As the reference's loadNetConf: a malformed CNI_ARGS is refused.
        req.env.strict_arg("MAC")?;
        let prev = req
            .conf
            .prev_result
            .as_ref()
            .ok_or_else(|| Error::config("prevResult", "required prevResult missing"))?;
        if delegate::has_ipam(req) {
            delegate::check(req)?;
        }
        let netns = req.env.netns.as_deref().ok_or_else(|| Error::Env {
            var: "CNI_NETNS".into(),
            message: "required".into(),
        })?;
        let s = Session::new()?;
        let sb = s.sandbox(netns)?;
        let ifname = &req.env.ifname;
        let cont = s
            .block_on(link_by_name(&sb.handle, ifname))?
            .ok_or_else(|| {
                Error::other(
                    code::INTERNAL,
                    format!(
                        "failed to find container interface {ifname:?} in {}",
                        sb.path
                    ),
                )
            })?;
        let idx = prev.interface_index(ifname, Some(&sb.path));
        if let Some(want) = idx.and_then(|i| prev.interfaces[i].mac.as_deref())
            && mac(&cont).as_deref() != Some(want)
        {
            return Err(Error::other(
                code::INTERNAL,
                format!(
                    "interface {ifname} mac {:?} does not match prevResult {want}",
                    mac(&cont)
                ),
            ));
        }
        let have = s.block_on(crate::linux::addresses(&sb.handle, cont.header.index))?;
        for ip in prev
            .ips
            .iter()
            .filter(|ip| ip.interface.is_some() && ip.interface == idx)
        {
            if !have.contains(&ip.address) {
                return Err(Error::other(
                    code::INTERNAL,
                    format!(
                        "address {} not found on {ifname} in {}",
                        ip.address, sb.path
                    ),
                ));
            }
        }
        let br = s
            .block_on(link_by_name(&s.host, &conf.bridge))?
            .ok_or_else(|| {
                Error::other(
                    code::INTERNAL,
                    format!("bridge {:?} not found", conf.bridge),
                )
            })?;
        if let Some(host) = prev.interfaces.get(1).filter(|i| i.sandbox.is_none()) {
            let link = s
                .block_on(link_by_name(&s.host, &host.name))?
                .ok_or_else(|| {
                    Error::other(
                        code::INTERNAL,
                        format!("host interface {:?} not found", host.name),
                    )
                })?;
            if controller(&link) != Some(br.header.index) {
                return Err(Error::other(
                    code::INTERNAL,
                    format!(
                        "host interface {:?} is not on bridge {:?}",
                        host.name, conf.bridge
                    ),
                ));
            }
            // The port flag ADD sets for `portIsolation`, both ways: a port
            // isolated against the configuration cuts the pod off its
            // neighbours as surely as a missing flag joins them.
            let isolated = port_isolated(&link).unwrap_or(false);
            if isolated != conf.port_isolation {
                return Err(Error::other(
                    code::INTERNAL,
                    format!(
                        "host interface {:?} on bridge {:?}: port flag isolated is {}, portIsolation is {}",
                        host.name,
                        conf.bridge,
                        if isolated { "on" } else { "off" },
                        conf.port_isolation
                    ),
                ));
            }
        }
        // The routes, as the reference's `ip.ValidateExpectedRoute`; a
        // route without a gateway is expected via the gateway ADD gave it.
        let ours: Vec<IpConfig> = prev
            .ips
            .iter()
            .filter(|ip| idx.is_none() || ip.interface == idx)
            .cloned()
            .collect();
        s.block_on(crate::linux::check_routes(
            &sb.handle,
            ifname,
            cont.header.index,
            &sb.path,
            prev,
            &ours,
        ))
    }

    /// Forwards GC to IPAM, deletes host ends of this network whose
    /// attachment is not valid (recognised by their alias) and its
    /// unlabelled leftovers of killed ADDs (recognised by their interface
    /// group, see `orphan_veth`), and their masquerade chains.
    fn gc(&self, req: &GcRequest) -> Result<()> {
        let conf = BridgeConf::from_conf(&req.request.conf)?;
        let network = &req.request.conf.name;
        let mut errors = Vec::new();
        if delegate::has_ipam(&req.request)
            && let Err(e) = delegate::gc(req)
        {
            errors.push(e);
        }
        let prefix = format!("k8snet-cni/{network}/");
        let valid: std::collections::BTreeSet<String> = req
            .valid
            .iter()
            .map(|a| alias_for(network, &a.container_id, &a.ifname))
            .collect();
        let s = Session::new()?;
        let links = nl::sync_host()?.all_links()?;
        for l in links {
            let stale = alias(&l).is_some_and(|a| a.starts_with(&prefix) && !valid.contains(a))
                || orphan_veth(&l, network);
            if stale && let Err(e) = s.block_on(nl::delete_link(&s.host, l.header.index)) {
                errors.push(e);
            }
        }
        // Whatever `ipMasq` says now: an earlier configuration may have set it.
        let _ = conf.ip_masq;
        {
            let net_prefix = crate::masq::network_prefix(network);
            let keep: std::collections::BTreeSet<String> = req
                .valid
                .iter()
                .map(|a| crate::masq::chain_name(network, &a.container_id, &a.ifname))
                .collect();
            if let Err(e) =
                masq_kernel::teardown(|c| c.starts_with(&net_prefix) && !keep.contains(c))
            {
                errors.push(e);
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }

    fn status(&self, req: &Request) -> Result<()> {
        BridgeConf::from_conf(&req.conf)?;
        if delegate::has_ipam(req) {
            delegate::status(req)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::run_with;
    use k8snet_testnet::{Netns, Testnet};
    use serde_json::{Value, json};

    fn conf(data: &std::path::Path) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": "kd", "type": "k8snet-bridge", "bridge": "kbr0",
            "isGateway": true, "ipMasq": true,
            "ipam": {"type": "k8snet-host-local", "dataDir": data,
                     "ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd00:18::/64"}]]}
        })
    }

    fn call(node: &Netns, command: &str, id: &str, pod: &Netns, stdin: &Value) -> (u8, Value) {
        let netns = pod.path().display().to_string();
        let text = stdin.to_string();
        let out = node
            .run(|| {
                run_with(
                    &Bridge,
                    |k| match k {
                        "CNI_COMMAND" => Some(command.to_owned()),
                        "CNI_CONTAINERID" => Some(id.to_owned()),
                        "CNI_NETNS" => Some(netns.clone()),
                        "CNI_IFNAME" => Some("eth0".to_owned()),
                        "CNI_PATH" => Some("/nonexistent".to_owned()),
                        _ => None,
                    },
                    text.as_bytes(),
                )
            })
            .unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status, v)
    }

    /// Prepares the deferred deletion of the pod's `eth0` with `spawn`
    /// standing in for the detached process; whether it was handed over.
    fn defer(node: &Netns, pod: &Netns, spawn: Spawner) -> bool {
        let netns = pod.path();
        node.run(|| {
            let s = Session::new().unwrap();
            let sb = s.sandbox(&netns).unwrap();
            let l = s
                .block_on(link_by_name(&sb.handle, "eth0"))
                .unwrap()
                .unwrap();
            defer_link_deletion(&s, &sb, l.header.index, None, spawn)
        })
        .unwrap()
    }

    fn pending(pod: &Netns) -> Vec<String> {
        pod.links()
            .unwrap()
            .into_iter()
            .filter(|l| l.starts_with("k8sdel"))
            .collect()
    }

    fn node_veths(node: &Netns) -> Vec<String> {
        node.links()
            .unwrap()
            .into_iter()
            .filter(|l| l.starts_with("veth"))
            .collect()
    }

    /// What DEL leaves while the detached process has not run yet: the
    /// container interface renamed, down, without addresses; the host end
    /// still on the bridge. An ADD for the same namespace and interface
    /// then works for another container (the name is free) and for the
    /// same one (whose host end has the same name: ADD deletes the
    /// lingering pair itself).
    #[test]
    fn a_pending_deletion_frees_the_name_and_does_not_block_the_next_add() {
        k8snet_testnet::kernel_test!();
        let mut tn = Testnet::new("cnipend").unwrap();
        let pod = tn.add_netns("p").unwrap();
        let data = std::env::temp_dir().join(format!("k8snet-cni-pend-{}", std::process::id()));
        let c = conf(&data);
        let (st, a) = call(tn.node(), "ADD", "one", &pod, &c);
        assert_eq!(st, 0, "{a}");
        let not_now: Spawner = |_, _, _| Ok(());
        assert!(defer(tn.node(), &pod, not_now));
        let names = pending(&pod);
        assert_eq!(names.len(), 1, "{:?}", pod.links());
        assert!(!pod.links().unwrap().contains(&"eth0".to_owned()));
        let link = pod.ip(&["-o", "link", "show", &names[0]]).unwrap();
        assert!(!link.contains(",UP") && !link.contains("<UP"), "{link}");
        let addrs = pod
            .ip(&["-o", "addr", "show", "dev", &names[0], "scope", "global"])
            .unwrap();
        assert_eq!(addrs.trim(), "", "addresses left on {}", names[0]);
        assert_eq!(node_veths(tn.node()).len(), 1);

        // Another container, same netns and ifname: the name is free.
        let (st, b) = call(tn.node(), "ADD", "two", &pod, &c);
        assert_eq!(st, 0, "{b}");
        assert_eq!(pending(&pod).len(), 1);
        let (st, _) = call(tn.node(), "DEL", "two", &pod, &c.clone().tap_prev(&b));
        assert_eq!(st, 0);
        // `two`'s own DEL deferred for real; wait for that one.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pending(&pod).len() > 1 {
            assert!(std::time::Instant::now() < deadline, "{:?}", pod.links());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }

        // `one`'s DEL (its interface is already out of the way: this only
        // releases its addresses and masquerade chain), then the same
        // container again: its host end's name is taken by the lingering
        // pair, which ADD deletes.
        let (st, _) = call(tn.node(), "DEL", "one", &pod, &c.clone().tap_prev(&a));
        assert_eq!(st, 0);
        assert_eq!(pending(&pod).len(), 1);
        let (st, again) = call(tn.node(), "ADD", "one", &pod, &c);
        assert_eq!(st, 0, "{again}");
        assert!(pending(&pod).is_empty(), "{:?}", pod.links());
        assert_eq!(node_veths(tn.node()).len(), 1);

        // A process that cannot be started: DEL deletes the pair itself,
        // before returning.
        let failing: Spawner = |_, _, _| Err(std::io::Error::other("no fork today"));
        let netns = pod.path();
        let stdin = c.clone().tap_prev(&again).to_string();
        let r = tn.node().run(|| {
            let env = crate::env::Env::from_lookup(|k| match k {
                "CNI_COMMAND" => Some("DEL".to_owned()),
                "CNI_CONTAINERID" => Some("one".to_owned()),
                "CNI_NETNS" => Some(netns.display().to_string()),
                "CNI_IFNAME" => Some("eth0".to_owned()),
                "CNI_PATH" => Some("/nonexistent".to_owned()),
                _ => None,
            })?;
            let conf = crate::config::NetConf::from_slice(stdin.as_bytes())?;
            let req = Request {
                env,
                conf,
                stdin: stdin.clone().into_bytes(),
            };
            del_with(&req, failing)
        });
        r.unwrap().unwrap();
        assert!(node_veths(tn.node()).is_empty());
        assert_eq!(pod.links().unwrap(), ["lo"]);
        let _ = std::fs::remove_dir_all(&data);
    }

    fn br_addrs(node: &Netns, family: &str) -> Vec<String> {
        node.ip(&[
            family, "-o", "addr", "show", "dev", "kbr9", "scope", "global",
        ])
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect()
    }

    /// The bridge's addresses as the reference's `ensureAddr`, on the
    /// node's blocking socket: present is kept, another IPv4 address is an
    /// error (nothing changed) or, with `forceAddress`, replaced; a
    /// non-overlapping IPv6 one stays, an overlapping one is replaced. The
    /// MAC pin in the same datagram is made, and reported.
    #[test]
    fn bridge_addresses_are_ensured_on_the_blocking_socket() {
        k8snet_testnet::kernel_test!();
        let tn = Testnet::new("cnibra").unwrap();
        let node = tn.node();
        node.ip(&["link", "add", "kbr9", "type", "bridge"]).unwrap();
        node.ip(&["addr", "add", "198.18.9.1/24", "dev", "kbr9"])
            .unwrap();
        node.ip(&["addr", "add", "fd00:18:9::1/64", "dev", "kbr9", "nodad"])
            .unwrap();
        let run = |want: &[&str], force: bool, pin: Option<Vec<u8>>| {
            let want: Vec<IpNet> = want.iter().map(|a| a.parse().unwrap()).collect();
            node.run(move || {
                let mut sock = nl::sync_host().unwrap();
                let br = sock.link_by_name("kbr9").unwrap().unwrap();
                let (a, p) = ensure_addrs(&mut sock, br.header.index, "kbr9", &want, force, pin);
                (a.map_err(|e| e.to_string()), p.map_err(|e| e.to_string()))
            })
            .unwrap()
        };
        // Present: nothing to do.
        assert_eq!(run(&["198.18.9.1/24"], false, None), (Ok(()), Ok(false)));
        // Another IPv4 address, without forceAddress: refused, unchanged.
        let (a, p) = run(&["198.18.0.1/24"], false, None);
        let e = a.unwrap_err();
        assert!(
            e.contains("already has an IP address different from 198.18.0.1/24"),
            "{e}"
        );
        assert_eq!(p, Ok(false));
        assert_eq!(br_addrs(node, "-4"), ["198.18.9.1/24"]);
        // With it: replaced; the pin in the same datagram is made.
        let mac = vec![0x02, 0, 0, 0, 0x12, 0x34];
        assert_eq!(run(&["198.18.0.1/24"], true, Some(mac)), (Ok(()), Ok(true)));
        assert_eq!(br_addrs(node, "-4"), ["198.18.0.1/24"]);
        let link = node.ip(&["-o", "link", "show", "kbr9"]).unwrap();
        assert!(link.contains("link/ether 02:00:00:00:12:34"), "{link}");
        // IPv6: a disjoint address stays, next to the new one.
        assert_eq!(run(&["fd00:18::1/64"], false, None), (Ok(()), Ok(false)));
        let mut v6 = br_addrs(node, "-6");
        v6.sort();
        assert_eq!(v6, ["fd00:18:9::1/64", "fd00:18::1/64"]);
        // An overlapping one is replaced (with forceAddress).
        let (a, _) = run(&["fd00:18::2/48"], false, None);
        assert!(a.is_err());
        assert_eq!(run(&["fd00:18::2/48"], true, None), (Ok(()), Ok(false)));
        let mut v6 = br_addrs(node, "-6");
        v6.sort();
        assert_eq!(v6, ["fd00:18:9::1/64", "fd00:18::2/48"]);
        // A refused pin (multicast MAC) is reported as such; the addresses
        // are still ensured.
        let (a, p) = run(
            &["198.18.0.1/24", "fd00:18::2/48"],
            false,
            Some(vec![1, 0, 0, 0, 0, 1]),
        );
        assert_eq!(a, Ok(()));
        assert!(p.unwrap_err().contains("could not set \"kbr9\"'s mac"));
        // A primary with a secondary in the same subnet: deleting the
        // primary takes the secondary along, whose own deletion then finds
        // it gone; with forceAddress that is no failure.
        node.ip(&["addr", "add", "198.18.0.2/24", "dev", "kbr9"])
            .unwrap();
        assert_eq!(run(&["198.18.7.1/24"], true, None), (Ok(()), Ok(false)));
        assert_eq!(br_addrs(node, "-4"), ["198.18.7.1/24"]);
    }

    trait Tap {
        fn tap_set(self, k: &str, v: Value) -> Self;
        fn tap_prev(self, prev: &Value) -> Self;
    }

    impl Tap for Value {
        fn tap_set(mut self, k: &str, v: Value) -> Self {
            self[k] = v;
            self
        }
        fn tap_prev(self, prev: &Value) -> Self {
            self.tap_set("prevResult", prev.clone())
        }
    }
}
