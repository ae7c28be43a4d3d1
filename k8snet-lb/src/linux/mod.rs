//! The Linux backend: programs `inet k8snet-lb` in the calling thread's
//! network namespace and cleans stale UDP conntrack entries.

mod conntrack;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8snet_model::Protocol;
use k8snet_nft::{Batch, Family as NftFamily, Nft};

pub use conntrack::{Conntrack, Entry};

use crate::error::Result;
use crate::health::ProxyHealth;
use crate::nftables::{Layout, TABLE};
use crate::plan::{ServicePort, ServiceTable, Target};

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
    /// calls diff only the Service ports that changed. UDP conntrack
    /// entries to endpoints that went away are deleted afterwards.
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
            let st = self.apply(&batch, compute)?;
            self.first = false;
            return Ok(st);
        }
        let batch = self.layout.sync(table)?;
        let compute = t0.elapsed();
        let mut st = self.apply(&batch, compute)?;
        st.conntrack_deleted = self.clean_conntrack(&before, &table.ports);
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
        st.conntrack_deleted = self.clean_conntrack(&before, ports);
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

    /// kube-proxy's `CleanStaleEntries` for UDP: entries to a frontend of
    /// a port whose reply comes from an endpoint no longer serving it are
    /// deleted (UDP has no end, so they would keep sending there); and when
    /// a port gets its first endpoints, entries made while it had none
    /// (not DNATed) go too. Failures are logged: cleanup is best effort.
    fn clean_conntrack(&mut self, before: &[ServicePort], after: &[ServicePort]) -> usize {
        let mut stale: Vec<Stale> = Vec::new();
        for old in before {
            let new = after.iter().find(|p| p.id == old.id);
            let eps = |p: &ServicePort| -> BTreeSet<(IpAddr, u16)> {
                [&p.cluster_pool, &p.local_pool]
                    .into_iter()
                    .flatten()
                    .flat_map(|pool| pool.endpoints.iter().map(|e| (e.ip, e.port)))
                    .collect()
            };
            let gone: BTreeSet<(IpAddr, u16)> = match new {
                Some(n) => eps(old).difference(&eps(n)).copied().collect(),
                None => eps(old),
            };
            let first_endpoints =
                old.internal == Target::Reject && new.is_some_and(|n| n.internal != Target::Reject);
            if !gone.is_empty() || first_endpoints {
                stale.push(Stale {
                    frontends: frontends(old),
                    gone,
                    fresh: first_endpoints,
                });
            }
        }
        for new in after.iter().filter(|n| n.id.protocol == Protocol::Udp) {
            if !before.iter().any(|o| o.id == new.id) && new.internal != Target::Reject {
                stale.push(Stale {
                    frontends: frontends(new),
                    gone: BTreeSet::new(),
                    fresh: true,
                });
            }
        }
        if stale.is_empty() {
            return 0;
        }
        let result = self.ct.delete_where(|e| {
            e.protocol == 17
                && stale.iter().any(
                    |Stale {
                         frontends: dsts,
                         gone,
                         fresh,
                     }| {
                        dsts.iter().any(|(ip, port)| {
                            ip.is_none_or(|ip| ip == e.orig_dst) && *port == e.orig_dport
                        }) && (gone.contains(&(e.reply_src, e.reply_sport))
                            || (*fresh && e.reply_src == e.orig_dst))
                    },
                )
        });
        match result {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("UDP conntrack cleanup failed: {e}");
                0
            }
        }
    }
}

/// UDP conntrack entries to delete for one port.
struct Stale {
    /// Where clients sent them.
    frontends: Vec<(Option<IpAddr>, u16)>,
    /// Endpoints that left: entries answered by them go.
    gone: BTreeSet<(IpAddr, u16)>,
    /// The port just got endpoints: entries never DNATed go.
    fresh: bool,
}

/// Every (address, port) a port answers on; a node port matches any
/// address (as kube-proxy matches it).
fn frontends(p: &ServicePort) -> Vec<(Option<IpAddr>, u16)> {
    let ips = [p.cluster_ip]
        .into_iter()
        .chain(p.external_ips.iter().copied());
    let mut v: Vec<(Option<IpAddr>, u16)> = ips
        .chain(p.load_balancer_ips.iter().copied())
        .map(|ip| (Some(ip), p.port))
        .collect();
    v.extend(p.node_port.map(|np| (None, np)));
    v
}
