//! Connections per client address (nginx's `limit_conn` on the client
//! address): counted over all workers, a slot taken per admitted
//! connection and given back when it closes.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

/// The open connections of each client address.
#[derive(Debug)]
pub(crate) struct PerClient {
    max: usize,
    open: Mutex<FxHashMap<IpAddr, usize>>,
}

impl PerClient {
    pub(crate) fn new(max: NonZeroUsize) -> Self {
        Self {
            max: max.get(),
            open: Mutex::default(),
        }
    }

    /// The limit.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more connection from `ip`, or `None` when it has
    /// `max` open already.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            owner: self.clone(),
            ip,
        })
    }

    /// The connections `ip` has open (for tests).
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    owner: Arc<PerClient>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // No entry per client ever seen: only those with connections.
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_gets_its_own_slots_and_closing_frees_them() {
        let limit = Arc::new(PerClient::new(NonZeroUsize::new(2).unwrap()));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "::1".parse().unwrap());
        let a1 = limit.admit(a).expect("first");
        let a2 = limit.admit(a).expect("second");
        assert!(limit.admit(a).is_none(), "a third from the same address");
        let _b1 = limit
            .admit(b)
            .expect("another address is not limited by a's");
        assert_eq!((limit.open(a), limit.open(b)), (2, 1));
        drop(a1);
        let a3 = limit.admit(a).expect("a slot was freed");
        drop((a2, a3));
        assert_eq!(limit.open(a), 0);
        assert!(
            !limit.open.lock().unwrap().contains_key(&a),
            "no entry is kept for a client without connections"
        );
    }
}
