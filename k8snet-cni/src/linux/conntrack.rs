//! Conntrack in the calling thread's network namespace, through
//! k8snet-nft's ctnetlink socket ([`k8snet_nft::conntrack::Conntrack`]);
//! [`crate::conntrack`] says which entries portmap deletes.

use k8snet_nft::conntrack::Conntrack;

use crate::conntrack::{Entry, StaleUdp};
use crate::error::{Error, Result};

/// k8snet-nft's error as ours: a socket error stays an I/O error, anything
/// else (a reply that cannot be read) is the kernel's.
fn ct_err(what: &str) -> impl FnOnce(k8snet_nft::Error) -> Error + '_ {
    move |e| match e {
        k8snet_nft::Error::Io { what, source } => Error::io(what, source),
        k8snet_nft::Error::Decode { what, source } => Error::kernel(what, source),
        other => Error::kernel(what, other),
    }
}

/// Every conntrack entry of `family` (`AF_INET` or `AF_INET6`) in the
/// calling thread's network namespace.
///
/// # Errors
///
/// [`Error::Io`] when ctnetlink is unavailable or refuses;
/// [`Error::Kernel`] for a reply that cannot be read.
pub fn entries(family: u8) -> Result<Vec<Entry>> {
    let what = "dumping the conntrack table";
    Conntrack::open()
        .and_then(|mut ct| ct.entries(family))
        .map_err(ct_err(what))
}

/// Deletes the entries `filters` select in the calling thread's network
/// namespace (one dump per family, then one delete per entry); returns how
/// many it deleted.
///
/// # Errors
///
/// As [`entries`]; a delete the kernel refuses (other than for an entry
/// that expired meanwhile).
pub fn delete_stale(filters: &[StaleUdp]) -> Result<usize> {
    if filters.is_empty() {
        return Ok(0);
    }
    let mut families: Vec<u8> = filters.iter().map(|f| f.family).collect();
    families.sort_unstable();
    families.dedup();
    Conntrack::open()
        .and_then(|mut ct| ct.delete_where(&families, |e| filters.iter().any(|f| f.matches(e))))
        .map_err(ct_err("deleting stale conntrack entries"))
}
