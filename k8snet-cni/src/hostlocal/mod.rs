//! host-local IPAM: the reference plugin's configuration, result and
//! on-disk format ([`store`]), with allocation and release that touch a
//! constant number of files, plus GC and STATUS (FIXMEs upstream).
//!
//! Allocation is the reference's: for each range set, a requested address
//! if one falls in it, else round robin from the address after
//! `last_reserved_ip.<set>`, skipping the gateway, each candidate claimed
//! exclusively (`O_EXCL`, or a `link` that fails when the name exists).
//! All of one ADD runs under the network's `lock`, so concurrent ADDs
//! (ours or the reference's) never share an address.
//!
//! Besides the reference's files, `dataDir` holds our index
//! (`<network>/k8snet-index/`) and up to 64 released files kept for reuse
//! (`.k8snet-spare/<network>/`: creating a file is the costliest step of an
//! allocation); the reference ignores both, and both may be deleted when a
//! node goes back to it.

mod config;
pub mod store;

use std::collections::BTreeSet;
use std::net::IpAddr;

use config::Addr;
pub use config::{DEFAULT_DATA_DIR, IpamConfig, Range, RangeSet, parse_resolv_conf};
use store::Store;

use crate::config::Attachment;
use crate::error::{Error, Result, code};
use crate::plugin::{GcRequest, Plugin, Request};
use crate::result::{CniResult, IpConfig};
use crate::version::Version;

/// The round-robin walk over a range set, as the reference's `RangeIter`:
/// from the address after the last reserved one (or the first range's
/// start), across ranges, skipping gateways, once around.
struct Walk<'a> {
    set: &'a RangeSet,
    idx: usize,
    cur: Option<Addr>,
    start: Option<Addr>,
}

impl<'a> Walk<'a> {
    fn new(set: &'a RangeSet, last: Option<IpAddr>) -> Self {
        let mut w = Self {
            set,
            idx: 0,
            cur: None,
            start: None,
        };
        if let Some(last) = last
            && let Some(i) = set.0.iter().position(|r| r.contains(last))
        {
            w.idx = i;
            w.cur = Some(Addr::from_ip(last));
        }
        w
    }
}

impl Iterator for Walk<'_> {
    type Item = (IpAddr, usize);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let r = self.set.0.get(self.idx)?;
            let next = match self.cur {
                None => {
                    let s = r.start();
                    self.start = Some(s);
                    s
                }
                Some(c) if c == r.end() => {
                    self.idx = (self.idx + 1) % self.set.0.len();
                    self.set.0.get(self.idx)?.start()
                }
                Some(c) => Addr { n: c.n + 1, ..c },
            };
            if self.cur.is_some() {
                match self.start {
                    None => self.start = Some(next),
                    Some(s) if s == next => return None,
                    Some(_) => {}
                }
            }
            self.cur = Some(next);
            let r = self.set.0.get(self.idx)?;
            if next != r.gw() {
                return Some((next.ip(), self.idx));
            }
        }
    }
}

/// Allocates one address per range set for the attachment (the reference's
/// ADD), under the network's lock. On failure nothing stays allocated.
///
/// # Errors
///
/// [`code::IP_EXHAUSTED`] when a set is full (message as the reference's:
/// `failed to allocate for range 0: no IP addresses available in range set:
/// A-B`), or when a requested address is taken; duplicates; I/O.
pub fn allocate(cfg: &IpamConfig, container_id: &str, ifname: &str) -> Result<Vec<IpConfig>> {
    let store = Store::open(&cfg.network_dir())?;
    let held = store.by_id(container_id, ifname)?;
    let mut requested: Vec<IpAddr> = cfg.requested.clone();
    let mut got: Vec<IpConfig> = Vec::new();
    let undo = |got: &[IpConfig]| {
        for ip in got {
            let _ = store.release_unless(ip.address.addr(), |_| false);
        }
    };
    for (idx, set) in cfg.ranges.iter().enumerate() {
        let fail = |msg: String, code: u32| Error::Other {
            code,
            msg: format!("failed to allocate for range {idx}: {msg}"),
            details: String::new(),
        };
        let wanted = requested
            .iter()
            .position(|ip| set.contains(*ip))
            .map(|i| requested.remove(i));
        let picked = if let Some(ip) = wanted {
            let Some(r) = set.range_for(ip) else {
                undo(&got);
                return Err(fail(
                    format!("{ip} is not in range set {set}"),
                    code::INTERNAL,
                ));
            };
            if ip == r.gateway {
                undo(&got);
                return Err(fail(
                    format!("requested ip {ip} is subnet's gateway"),
                    code::INTERNAL,
                ));
            }
            match store.reserve(container_id, ifname, ip, idx) {
                Ok(true) => Some((ip, r.clone())),
                Ok(false) => {
                    undo(&got);
                    return Err(fail(
                        format!("requested IP address {ip} is not available in range set {set}"),
                        code::IP_EXHAUSTED,
                    ));
                }
                Err(e) => {
                    undo(&got);
                    return Err(e);
                }
            }
        } else {
            if let Some(ip) = held.iter().find(|ip| set.contains(**ip)) {
                undo(&got);
                return Err(fail(
                    format!(
                        "{ip} has been allocated to {container_id}, duplicate allocation is not allowed"
                    ),
                    code::INTERNAL,
                ));
            }
            let mut picked = None;
            for (ip, ri) in Walk::new(set, store.last_reserved(idx)) {
                match store.reserve(container_id, ifname, ip, idx) {
                    Ok(true) => {
                        picked = set.0.get(ri).map(|r| (ip, r.clone()));
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        undo(&got);
                        return Err(e);
                    }
                }
            }
            picked
        };
        let Some((ip, range)) = picked else {
            undo(&got);
            return Err(fail(
                format!("no IP addresses available in range set: {set}"),
                code::IP_EXHAUSTED,
            ));
        };
        got.push(IpConfig {
            address: ipnet::IpNet::new(ip, range.subnet.prefix_len())
                .map_err(|e| Error::config("ipam", e.to_string()))?,
            gateway: Some(range.gateway),
            interface: None,
        });
    }
    if !requested.is_empty() {
        undo(&got);
        let list: Vec<String> = requested.iter().map(ToString::to_string).collect();
        return Err(Error::other(
            code::INTERNAL,
            format!("failed to allocate all requested IPs: {}", list.join(" ")),
        ));
    }
    let mut all: Vec<IpAddr> = held;
    all.extend(got.iter().map(|ip| ip.address.addr()));
    store.record(container_id, ifname, &all)?;
    store.seal()?;
    Ok(got)
}

/// Releases everything the attachment holds (DEL); nothing held is fine.
///
/// # Errors
///
/// I/O.
pub fn release(cfg: &IpamConfig, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
    let store = Store::open(&cfg.network_dir())?;
    let released = store.release_by_id(container_id, ifname)?;
    store.seal()?;
    Ok(released)
}

/// The addresses the attachment holds (CHECK).
///
/// # Errors
///
/// I/O.
pub fn held(cfg: &IpamConfig, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
    Store::open(&cfg.network_dir())?.by_id(container_id, ifname)
}

/// Releases every address whose holder is not a valid attachment (GC). A
/// file with only a container ID is kept if any valid attachment has that
/// ID. `lock` and `last_reserved_ip.*` are never touched.
///
/// # Errors
///
/// I/O; GC goes on past a failing file and reports the first failure.
pub fn gc(cfg: &IpamConfig, valid: &[Attachment]) -> Result<Vec<IpAddr>> {
    let store = Store::open(&cfg.network_dir())?;
    let keep_ids: BTreeSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    let keep = |h: &store::Holder| match &h.ifname {
        Some(ifname) => valid
            .iter()
            .any(|a| a.container_id == h.container_id && &a.ifname == ifname),
        None => keep_ids.contains(h.container_id.as_str()),
    };
    let mut released = Vec::new();
    let mut first_error = None;
    for (ip, holder) in store.all()? {
        if keep(&holder) {
            continue;
        }
        match store.release_unless(ip, keep) {
            Ok(true) => released.push(ip),
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    store.reindex()?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(released),
    }
}

/// STATUS: unavailable (50) when any range set has no free address.
///
/// # Errors
///
/// [`Error::Unavailable`]; I/O.
pub fn status(cfg: &IpamConfig) -> Result<()> {
    let store = Store::open(&cfg.network_dir())?;
    let addrs = store.allocated_addresses()?;
    for (idx, set) in cfg.ranges.iter().enumerate() {
        let capacity: u128 = set.0.iter().map(Range::capacity).sum();
        let used = addrs.iter().filter(|ip| set.contains(**ip)).count() as u128;
        if used >= capacity {
            return Err(Error::Unavailable(format!(
                "range set {idx} ({set}) is exhausted: {used} of {capacity} addresses allocated"
            )));
        }
    }
    Ok(())
}

/// The host-local plugin (binary `k8snet-host-local`).
#[derive(Clone, Copy, Debug, Default)]
pub struct HostLocal;

impl Plugin for HostLocal {
    fn add(&self, req: &Request) -> Result<CniResult> {
        let cfg = IpamConfig::from_request(&req.conf, &req.env)?;
        // The richest shape, converted to the configuration's version when
        // printed.
        let mut result = CniResult::new(Version::LATEST);
        if let Some(path) = &cfg.resolv_conf {
            result.dns = parse_resolv_conf(path)?;
        }
        result.ips = allocate(&cfg, &req.env.container_id, &req.env.ifname)?;
        result.routes = cfg.routes.clone();
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let cfg = IpamConfig::from_request(&req.conf, &req.env)?;
        release(&cfg, &req.env.container_id, &req.env.ifname).map(drop)
    }

    fn check(&self, req: &Request) -> Result<()> {
        let cfg = IpamConfig::from_request(&req.conf, &req.env)?;
        if held(&cfg, &req.env.container_id, &req.env.ifname)?.is_empty() {
            return Err(Error::other(
                code::INTERNAL,
                format!(
                    "host-local: Failed to find address added by container {}",
                    req.env.container_id
                ),
            ));
        }
        Ok(())
    }

    fn gc(&self, req: &GcRequest) -> Result<()> {
        let cfg = IpamConfig::from_request(&req.request.conf, &req.request.env)?;
        gc(&cfg, &req.valid).map(drop)
    }

    fn status(&self, req: &Request) -> Result<()> {
        status(&IpamConfig::from_request(&req.conf, &req.env)?)
    }
}

#[cfg(test)]
mod tests;
