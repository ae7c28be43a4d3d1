//! Conntrack entries in the calling thread's network namespace, as the
//! proxier sees them: list and delete through k8snet-nft's ctnetlink
//! client ([`k8snet_nft::conntrack`]), which keeps each entry's kernel id
//! and zone so a delete removes exactly the entry that was listed.

use std::net::IpAddr;

use k8snet_nft::conntrack::{self as ct, AF_INET, AF_INET6};

use crate::error::Result;

/// One conntrack entry: its original and reply tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The L4 protocol number.
    pub protocol: u8,
    /// Original direction: source.
    pub orig_src: IpAddr,
    /// Original direction: destination (the Service frontend).
    pub orig_dst: IpAddr,
    /// Original source port.
    pub orig_sport: u16,
    /// Original destination port.
    pub orig_dport: u16,
    /// Reply direction: source (the endpoint, after DNAT).
    pub reply_src: IpAddr,
    /// Reply source port.
    pub reply_sport: u16,
}

impl Entry {
    /// The proxier's view of a dumped entry; `None` without a reply tuple
    /// (the kernel dumps one with every entry).
    fn of(e: &ct::Entry) -> Option<Self> {
        let r = e.reply?;
        Some(Self {
            protocol: e.orig.proto,
            orig_src: e.orig.src,
            orig_dst: e.orig.dst,
            orig_sport: e.orig.sport,
            orig_dport: e.orig.dport,
            reply_src: r.src,
            reply_sport: r.sport,
        })
    }
}

/// A ctnetlink socket in the calling thread's network namespace.
#[derive(Debug)]
pub struct Conntrack {
    ct: ct::Conntrack,
}

impl Conntrack {
    /// Opens a ctnetlink socket in the calling thread's namespace.
    ///
    /// # Errors
    /// [`crate::Error::Nft`] if the socket cannot be opened or bound.
    pub fn open() -> Result<Self> {
        Ok(Self {
            ct: ct::Conntrack::open()?,
        })
    }

    /// Every entry of both families.
    ///
    /// # Errors
    /// [`crate::Error::Nft`] on socket errors or unreadable replies.
    pub fn list(&mut self) -> Result<Vec<Entry>> {
        Ok(self.ct.list()?.iter().filter_map(Entry::of).collect())
    }

    /// Deletes one entry (by its original tuple, in the default zone); a
    /// vanished entry is fine.
    ///
    /// # Errors
    /// [`crate::Error::Nft`] if the kernel refuses.
    pub fn delete(&mut self, e: &Entry) -> Result<()> {
        let family = if e.orig_src.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        };
        let orig = ct::Tuple {
            src: e.orig_src,
            dst: e.orig_dst,
            proto: e.protocol,
            sport: e.orig_sport,
            dport: e.orig_dport,
        };
        self.ct.delete(&ct::Entry {
            family,
            orig,
            reply: None,
            id: None,
            zone: None,
        })?;
        Ok(())
    }

    /// Deletes every entry `pred` selects (each exactly as listed: by its
    /// id and zone too); returns how many were deleted.
    ///
    /// # Errors
    /// [`crate::Error::Nft`] on socket errors.
    pub fn delete_where(&mut self, pred: impl Fn(&Entry) -> bool) -> Result<usize> {
        Ok(self.ct.delete_where(&[AF_INET, AF_INET6], |e| {
            Entry::of(e).is_some_and(|e| pred(&e))
        })?)
    }
}
