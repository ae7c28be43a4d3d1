//! The Linux backend: programs `inet k8snet-lb` in the calling thread's
//! network namespace and cleans stale UDP conntrack entries.

mod conntrack;
mod stale;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8snet_model::Protocol;
use k8snet_nft::{Batch, Family as NftFamily, Nft};

pub use conntrack::{Conntrack, Entry};

use crate::error::Result;
use crate::health::ProxyHealth;
use crate::nftables::{Layout, TABLE};
use crate::plan::{ServicePort, ServiceTable};
use stale::StaleUdp;

/// Every address the calling thread's network namespace holds on its
/// interfaces (host prefixes, loopback and link-local included): what
/// `fib saddr type local` matches, for [`crate::NodeContext::local_addrs`]
/// so that [`crate::predict`] tells the node's own traffic as the kernel
/// does. Local routes of whole prefixes (AnyIP, `ip route add local
/// 198.51.100.0/24 dev lo`) are not addresses and are not listed.
///
/// # Errors
/// [`crate::Error::Io`] if the kernel cannot be asked (getifaddrs).
pub fn local_addrs() -> Result<Vec<ipnet::IpNet>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| crate::Error::Io {
        what: "listing the namespace's addresses (getifaddrs)".into(),
        source: e.into(),
    })?;
    let mut out: Vec<ipnet::IpNet> = addrs
        .filter_map(|a| a.address)
        .filter_map(|s| {
            if let Some(v4) = s.as_sockaddr_in() {
                Some(std::net::IpAddr::V4(v4.ip()))
            } else {
                s.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip()))
            }
        })
        .map(ipnet::IpNet::from)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// What one sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Netlink messages in the transaction.
    pub messages: usize,
    /// Set elements added or deleted.
    pub elements: usize,
    /// Time to compute the batch (lowering and diff).
    pub compute: Duration,
    /// Time the kernel took (encoding, sending, commit).
    pub apply: Duration,
    /// UDP conntrack entries deleted.
    pub conntrack_deleted: usize,
}

/// The Service proxy of one node: keeps the kernel's `inet k8snet-lb`
/// equal to the latest [`ServiceTable`], one transaction per change.
///
/// Create it in the node's network namespace: it stays bound to the
/// namespace of the thread that called [`Proxier::new`].
pub struct Proxier {
    nft: Nft,
    /// Opened with `nft`, so it works in the same namespace whatever
    /// thread calls later.
    ct: Conntrack,
    layout: Layout,
    /// Whether the kernel may hold a table this proxier did not write.
    first: bool,
    /// Told of every change the kernel accepted.
    health: Option<Arc<ProxyHealth>>,
}

impl Proxier {
    /// A proxier for the calling thread's network namespace.
    ///
    /// # Errors
    /// [`crate::Error::Nft`] or [`crate::Error::Io`] if a netlink socket
    /// cannot be opened.
    pub fn new() -> Result<Self> {
        Ok(Self {
            nft: Nft::new()?,
            ct: Conntrack::open()?,
            layout: Layout::new(),
            first: true,
            health: None,
        })
    }

    /// Reports every applied change to `health` ([`ProxyHealth::updated`]),
    /// so the health check servers see the proxy fall behind when changes
    /// queued with [`ProxyHealth::queued_update`] are not applied in time.
    pub fn set_health(&mut self, health: Arc<ProxyHealth>) {
        self.health = Some(health);
    }

    /// The layout (what the kernel holds after the last successful sync).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Makes the kernel hold `table`. The first call reads what the kernel
    /// has (a restart keeps learnt affinity) and diffs against it; later
    /// calls diff only the Service ports that changed. Stale UDP conntrack
    /// entries are deleted afterwards (kube-proxy's `CleanStaleEntries`:
    /// entries to a frontend not answered by one of its serving
    /// endpoints): of the changed ports, and of
    /// every port on the first call and on the resync after a failed
    /// apply, when conntrack may hold anything. Flows a serving endpoint
    /// answers are never cut.
    ///
    /// # Errors
    /// [`crate::Error::Nft`] if the kernel refuses (it then holds what it
    /// held before; the next call resynchronizes from a readback).
    pub fn sync(&mut self, table: &ServiceTable) -> Result<SyncStats> {
        let before = self.udp_ports();
        let t0 = Instant::now();
        if self.first || !self.layout.is_synced() {
            // What the kernel holds: nothing (the usual start), or a table
            // from an earlier run, which we diff against so learnt affinity
            // survives a restart.
            let existing = self.nft.read_table(NftFamily::Inet, TABLE)?;
            self.layout = Layout::new();
            let batch = match existing {
                None => self.layout.sync(table)?,
                Some(current) => {
                    self.layout.sync(table)?;
                    k8snet_nft::diff(Some(&current), &self.layout.table())?
                }
            };
            let compute = t0.elapsed();
            let mut st = self.apply(&batch, compute)?;
            self.first = false;
            // What conntrack holds is unknown (entries from before a
            // restart or from the failed state): check every port, as
            // kube-proxy does on every sync.
            let ips = self.layout.node_ips().to_vec();
            st.conntrack_deleted = self.clean_conntrack(&[], &ips, &table.ports, true);
            return Ok(st);
        }
        let ips_before = self.layout.node_ips().to_vec();
        let batch = self.layout.sync(table)?;
        let compute = t0.elapsed();
        let mut st = self.apply(&batch, compute)?;
        st.conntrack_deleted = self.clean_conntrack(&before, &ips_before, &table.ports, false);
        Ok(st)
    }

    /// Replaces one Service's ports (from [`crate::plan_service`]; empty to
    /// delete the Service): only its chains and elements change.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] when the ports conflict with another
    /// Service's (see [`Layout::update_service`]): nothing is applied and
    /// the proxier stays in step with the kernel. Before any full sync,
    /// nothing is applied and this is an error. Otherwise as
    /// [`Proxier::sync`].
    pub fn update_service(
        &mut self,
        namespace: &str,
        name: &str,
        ports: &[ServicePort],
    ) -> Result<SyncStats> {
        if self.first || !self.layout.is_synced() {
            return Err(crate::Error::invalid(
                format!("Service {namespace}/{name}"),
                "(update)",
                "the proxier has not synced a full table yet",
            ));
        }
        let before: Vec<ServicePort> = self
            .udp_ports()
            .into_iter()
            .filter(|p| p.id.namespace == namespace && p.id.name == name)
            .collect();
        let t0 = Instant::now();
        let batch = self.layout.update_service(namespace, name, ports)?;
        let compute = t0.elapsed();
        let mut st = self.apply(&batch, compute)?;
        let ips = self.layout.node_ips().to_vec();
        st.conntrack_deleted = self.clean_conntrack(&before, &ips, ports, false);
        Ok(st)
    }

    /// Deletes the table (and everything in it).
    ///
    /// # Errors
    /// [`crate::Error::Nft`] if the kernel refuses (a missing table is fine).
    pub fn delete(&mut self) -> Result<()> {
        if self.nft.read_table(NftFamily::Inet, TABLE)?.is_some() {
            self.nft
                .apply(&Batch::delete_table(NftFamily::Inet, TABLE))?;
        }
        self.layout = Layout::new();
        self.first = true;
        Ok(())
    }

    fn apply(&mut self, batch: &Batch, compute: Duration) -> Result<SyncStats> {
        let t1 = Instant::now();
        let r = self.nft.apply(batch);
        self.finish(r.map_err(Into::into), compute, t1)
    }

    fn finish(
        &mut self,
        r: Result<k8snet_nft::ApplyStats>,
        compute: Duration,
        t1: Instant,
    ) -> Result<SyncStats> {
        match r {
            Ok(s) => {
                if let Some(h) = &self.health {
                    h.updated();
                }
                Ok(SyncStats {
                    messages: s.messages,
                    elements: s.elements,
                    compute,
                    apply: t1.elapsed(),
                    conntrack_deleted: 0,
                })
            }
            Err(e) => {
                // The kernel kept its old state; ours moved on. Resync from
                // a readback next time.
                self.layout.invalidate();
                self.first = true;
                Err(e)
            }
        }
    }

    /// The UDP ports the layout currently programs (kept for cleanup).
    fn udp_ports(&self) -> Vec<ServicePort> {
        self.layout
            .ports()
            .filter(|p| p.id.protocol == Protocol::Udp)
            .cloned()
            .collect()
    }

    /// kube-proxy's `CleanStaleEntries` for UDP (see [`StaleUdp`]): UDP
    /// has no end, so an entry to an endpoint that no longer serves (or
    /// one made before the port had endpoints, never DNATed) would keep a
    /// client's datagrams going there. Failures are logged: cleanup is
    /// best effort.
    ///
    /// `before` are the UDP ports before the change, `ips_before` the node
    /// IPs then (a changed node IP moves every node port's frontends).
    fn clean_conntrack(
        &mut self,
        before: &[ServicePort],
        ips_before: &[std::net::IpAddr],
        after: &[ServicePort],
        all: bool,
    ) -> usize {
        let stale = StaleUdp::new(before, after, ips_before, self.layout.node_ips(), all);
        if stale.is_empty() {
            return 0;
        }
        match self.ct.delete_where(|e| stale.is_stale(e)) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("UDP conntrack cleanup failed: {e}");
                0
            }
        }
    }
}
