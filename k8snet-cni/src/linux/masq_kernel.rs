//! Applies [`crate::masq`]'s transactions in the plugin's namespace.
//!
//! Both functions hand back the netfilter socket they used. Closing a
//! netfilter socket makes the kernel finish freeing the objects of the last
//! committed transaction first (`nft_rcv_nl_event` flushes the per-namespace
//! destroy work, which waits for an RCU grace period: about 10 ms here,
//! more under load). A caller that keeps the socket until the rest of its
//! work is done lets that grace period pass meanwhile, and the close is
//! then free: the bridge plugin's DEL removes the masquerade rules first
//! and the veth pair (20 ms of its own kernel waiting) after.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use ipnet::IpNet;
use k8snet_nft::{Family, Nft};

use crate::error::{Error, Result};
use crate::masq::{MASQ_TABLE, setup_batch, teardown_batch};

/// The netfilter socket a masquerade change used, and its descriptor
/// (for the detached process, which keeps only the descriptors it is
/// told of).
pub(crate) struct NftSocket {
    nft: Nft,
    /// The socket's descriptor (always known; an `Option` for the
    /// callers that pass "no socket").
    pub(crate) fd: Option<RawFd>,
}

/// Opens a netfilter socket.
fn open() -> Result<NftSocket> {
    let nft = Nft::new().map_err(nft_err("opening nftables"))?;
    let fd = Some(nft.as_fd().as_raw_fd());
    Ok(NftSocket { nft, fd })
}

fn nft_err(what: &str) -> impl FnOnce(k8snet_nft::Error) -> Error + '_ {
    move |e| Error::kernel(what, e)
}

/// Masquerades `ips` through `chain`. An address still mapped to a stale
/// chain (a DEL that never came) is taken over.
///
/// Returns the socket used (see the module's documentation: drop it last).
///
/// # Errors
///
/// The kernel's refusal.
pub(crate) fn setup(chain: &str, ips: &[IpNet]) -> Result<NftSocket> {
    let mut sock = open()?;
    let nft = &mut sock.nft;
    let batch = setup_batch(chain, ips)?;
    if nft.apply(&batch).is_ok() {
        return Ok(sock);
    }
    if let Some(table) = nft
        .read_table(Family::Inet, MASQ_TABLE)
        .map_err(nft_err("reading the masquerade table"))?
    {
        let addrs: Vec<k8snet_nft::Key> = ips
            .iter()
            .map(|ip| {
                k8snet_nft::Key::one(match ip.addr() {
                    std::net::IpAddr::V4(a) => k8snet_nft::Value::Ipv4(a),
                    std::net::IpAddr::V6(a) => k8snet_nft::Value::Ipv6(a),
                })
            })
            .collect();
        let mut stale = table.clone();
        for set in stale.sets.values_mut() {
            set.elements.retain(|k, _| addrs.contains(k));
        }
        let doomed: Vec<String> = stale
            .sets
            .values()
            .flat_map(|s| s.elements.values())
            .filter_map(|e| match &e.value {
                Some(k8snet_nft::MapValue::Verdict(k8snet_nft::Verdict::Jump(c))) => {
                    Some(c.clone())
                }
                _ => None,
            })
            .collect();
        if let Some(b) = teardown_batch(&table, |c| doomed.iter().any(|d| d == c)) {
            nft.apply(&b)
                .map_err(nft_err("removing a stale masquerade chain"))?;
        }
    }
    nft.apply(&batch)
        .map_err(nft_err("installing the masquerade rules"))?;
    Ok(sock)
}

/// Removes the chains `doomed` accepts and the map elements jumping to them.
/// Returns the socket used (see the module's documentation: drop it last).
///
/// # Errors
///
/// The kernel's refusal.
pub(crate) fn teardown(doomed: impl Fn(&str) -> bool) -> Result<NftSocket> {
    let mut sock = open()?;
    let nft = &mut sock.nft;
    let Some(table) = nft
        .read_table(Family::Inet, MASQ_TABLE)
        .map_err(nft_err("reading the masquerade table"))?
    else {
        return Ok(sock);
    };
    if let Some(b) = teardown_batch(&table, doomed) {
        nft.apply(&b)
            .map_err(nft_err("removing masquerade rules"))?;
    }
    Ok(sock)
}
