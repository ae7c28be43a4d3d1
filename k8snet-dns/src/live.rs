//! [`LiveZone`]: the zone that serving threads read while a writer swaps
//! in new snapshots.
//!
//! Built on `arc-swap`: a reader checks for a new snapshot with one atomic
//! load (through a per-thread cache) and never takes a lock, so a writer
//! publishing an update never pauses it; a writer replaces the pointer
//! atomically, and the old snapshot is freed when its last reader lets go.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, Cache};

use crate::Zone;

/// A zone shared between serving threads and one updating writer.
///
/// ```
/// use k8snet_dns::{LiveZone, Zone, ZoneConfig};
/// use k8snet_model::Cluster;
/// let live = LiveZone::new(Zone::build(&Cluster::new(), &ZoneConfig::default())?);
/// let mut reader = live.reader();
/// let before = reader.current().serial();
/// live.store(Zone::build(&Cluster::new(), &ZoneConfig::default().serial(before.wrapping_add(1)))?);
/// assert_eq!(reader.current().serial(), before.wrapping_add(1));
/// # Ok::<(), k8snet_dns::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LiveZone {
    zone: Arc<ArcSwap<Zone>>,
    /// Serialises writers so that read-modify-write updates are not lost.
    writer: Arc<Mutex<()>>,
}

impl LiveZone {
    /// Publishes `zone`.
    pub fn new(zone: Zone) -> Self {
        Self {
            zone: Arc::new(ArcSwap::from_pointee(zone)),
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Zone> {
        self.zone.load_full()
    }

    /// Replaces the zone.
    pub fn store(&self, zone: Zone) {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.zone.store(Arc::new(zone));
    }

    /// Replaces the zone by `f(current)`; concurrent updates are applied
    /// one after the other, none is lost.
    pub fn update(&self, f: impl FnOnce(&Zone) -> Zone) {
        let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let next = f(&self.zone.load());
        self.zone.store(Arc::new(next));
    }

    /// A reader for one serving thread.
    pub fn reader(&self) -> ZoneReader {
        ZoneReader {
            cache: Cache::new(self.zone.clone()),
        }
    }
}

/// A serving thread's view of a [`LiveZone`]: [`ZoneReader::current`]
/// costs one atomic load when nothing changed.
pub struct ZoneReader {
    cache: Cache<Arc<ArcSwap<Zone>>, Arc<Zone>>,
}

impl std::fmt::Debug for ZoneReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneReader").finish_non_exhaustive()
    }
}

impl ZoneReader {
    /// The latest published snapshot.
    pub fn current(&mut self) -> &Zone {
        self.cache.load()
    }
}
