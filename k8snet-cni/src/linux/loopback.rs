//! The loopback plugin: `lo` up inside the container.

use rtnetlink::LinkUnspec;
use rtnetlink::packet_route::link::LinkFlags;

use crate::error::{Error, Result, code};
use crate::linux::addresses;
use crate::linux::nl::{Session, link_by_name, nl_err};
use crate::plugin::{Plugin, Request};
use crate::result::{CniResult, Interface, IpConfig};
use crate::version::Version;

/// The loopback plugin (binary `k8snet-loopback`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Loopback;

fn netns(req: &Request) -> Result<&std::path::Path> {
    req.env.netns.as_deref().ok_or_else(|| Error::Env {
        var: "CNI_NETNS".into(),
        message: "required".into(),
    })
}

impl Plugin for Loopback {
    /// Sets `lo` up and reports its addresses on interface 0 (as the
    /// reference: `127.0.0.1/8` and `::1/128` when present); chained after
    /// another plugin it passes `prevResult` through.
    fn add(&self, req: &Request) -> Result<CniResult> {
        let s = Session::new()?;
        let sb = s.sandbox(netns(req)?)?;
        let lo = s
            .block_on(link_by_name(&sb.handle, "lo"))?
            .ok_or_else(|| Error::kernel("lo", "not found in the container"))?;
        s.block_on(
            sb.handle
                .link()
                .set(LinkUnspec::new_with_index(lo.header.index).up().build())
                .execute(),
        )
        .map_err(nl_err("failed to set lo up"))?;
        // Chained, the previous result passes through (unconverted when it
        // is at the configuration's version).
        if let Some(prev) = &req.conf.prev_result {
            return Ok(prev.clone());
        }
        let mut r = CniResult::new(Version::LATEST);
        r.interfaces.push(Interface {
            name: req.env.ifname.clone(),
            mac: Some("00:00:00:00:00:00".into()),
            sandbox: Some(sb.path.clone()),
            ..Interface::default()
        });
        let mut addrs = s.block_on(addresses(&sb.handle, lo.header.index))?;
        // IPv4 first, as the reference lists them.
        addrs.sort_by_key(|a| a.addr().is_ipv6());
        for a in addrs.into_iter().filter(|a| a.addr().is_loopback()) {
            r.ips.push(IpConfig {
                address: a,
                gateway: None,
                interface: Some(0),
            });
        }
        Ok(r)
    }

    /// Sets `lo` down; a gone namespace or no `CNI_NETNS` is fine.
    fn del(&self, req: &Request) -> Result<()> {
        let Some(path) = req.env.netns.as_deref().filter(|p| p.exists()) else {
            return Ok(());
        };
        let s = Session::new()?;
        let Ok(sb) = s.sandbox(path) else {
            return Ok(());
        };
        if let Some(lo) = s.block_on(link_by_name(&sb.handle, "lo"))? {
            s.block_on(
                sb.handle
                    .link()
                    .set(LinkUnspec::new_with_index(lo.header.index).down().build())
                    .execute(),
            )
            .map_err(nl_err("failed to set lo down"))?;
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let s = Session::new()?;
        let sb = s.sandbox(netns(req)?)?;
        let up = s
            .block_on(link_by_name(&sb.handle, "lo"))?
            .is_some_and(|l| l.header.flags.contains(LinkFlags::Up));
        if up {
            Ok(())
        } else {
            Err(Error::other(code::INTERNAL, "loopback interface is down"))
        }
    }
}
