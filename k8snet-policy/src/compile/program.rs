//! Per-identity programs: for one direction, the flattened rules of every
//! policy that selects the identity, in evaluation order. A verdict walks
//! them with integer compares and one bit test per candidate rule; the cost
//! depends on the rules that apply to the pod, never on the total number
//! of policies.
//!
//! Layout matters more than instruction count here: a verdict is a chain
//! of dependent loads. Entries are 16 bytes (where they came from is kept
//! apart, for explanations), and short programs keep their entries inline,
//! so most directions cost one cache line.
//!
//! The same shape lowers to nftables later: an identity becomes a named set
//! of pod addresses, a program becomes a per-direction chain of verdict-map
//! lookups keyed by (peer set, protocol, port).

use crate::explain::{Action, Tier};
use crate::flow::proto;

use super::peers::PeerSetId;
use super::policies::{ANY_PORT, INGRESS, Policies, PolicyId, PortMatch};
use super::world::{Identity, NamedPort, resolve_named};

/// What matching needs of one (rule, port) pair. A rule with three ports
/// becomes three entries in a row, which keeps first-match order intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) peers: PeerSetId,
    /// Interned port name, resolved on the destination; 0 = `lo..=hi`.
    pub(crate) named: u32,
    pub(crate) lo: u16,
    pub(crate) hi: u16,
    pub(crate) protos: u8,
    pub(crate) action: Action,
}

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) policy: PolicyId,
    pub(crate) rule: u16,
}

const INLINE: usize = 2;

const EMPTY: Entry = Entry {
    peers: 0,
    named: 0,
    lo: 0,
    hi: 0,
    protos: 0,
    action: Action::Deny,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Store {
    Inline(u8, [Entry; INLINE]),
    Heap(Box<[Entry]>),
}

impl Default for Store {
    fn default() -> Self {
        Self::Inline(0, [EMPTY; INLINE])
    }
}

/// The program of one identity and direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Program {
    /// Admin tier (first match wins), then the NetworkPolicy rules (any
    /// match allows; by policy name and rule index), then Baseline (first
    /// match wins).
    store: Store,
    admin_end: u32,
    np_end: u32,
    /// Whether some NetworkPolicy isolates the identity.
    pub(crate) isolated: bool,
}

impl Program {
    /// Every entry.
    #[inline]
    pub(crate) fn entries(&self) -> &[Entry] {
        match &self.store {
            Store::Inline(len, items) => items.get(..usize::from(*len)).unwrap_or_default(),
            Store::Heap(items) => items,
        }
    }

    /// The Admin, NetworkPolicy and Baseline entries.
    #[inline]
    pub(crate) fn tiers(&self) -> (&[Entry], &[Entry], &[Entry]) {
        let e = self.entries();
        let (a, n) = (self.admin_end as usize, self.np_end as usize);
        match (e.get(..a), e.get(a..n), e.get(n..)) {
            (Some(x), Some(y), Some(z)) => (x, y, z),
            _ => (&[], &[], &[]),
        }
    }

    /// The Admin-tier entries, with the index of the first.
    #[inline]
    pub(crate) fn admin(&self) -> (usize, &[Entry]) {
        let e = self.entries();
        (0, e.get(..self.admin_end as usize).unwrap_or_default())
    }

    /// The NetworkPolicy entries, with the index of the first.
    #[inline]
    pub(crate) fn np(&self) -> (usize, &[Entry]) {
        let range = self.admin_end as usize..self.np_end as usize;
        (range.start, self.entries().get(range).unwrap_or_default())
    }

    /// The Baseline-tier entries, with the index of the first.
    #[inline]
    pub(crate) fn baseline(&self) -> (usize, &[Entry]) {
        let start = self.np_end as usize;
        (start, self.entries().get(start..).unwrap_or_default())
    }
}

/// The numeric ports a named port resolves to on `named` (one per
/// protocol it admits that the name exists for).
fn resolved(port: PortMatch, named: &[NamedPort]) -> Vec<PortMatch> {
    [proto::TCP, proto::UDP, proto::SCTP]
        .into_iter()
        .filter(|&bit| port.protos & bit != 0)
        .filter_map(|bit| {
            let n = resolve_named(named, port.named, bit)?;
            Some(PortMatch {
                protos: bit,
                lo: n,
                hi: n,
                named: 0,
            })
        })
        .collect()
}

/// Appends a policy's rules of one direction. Ingress named ports resolve
/// here, on the identity itself (it is the destination); egress ones stay
/// named and resolve on the destination at verdict time.
fn push_rules(
    out: &mut Vec<(Entry, Origin)>,
    policies: &Policies,
    id: PolicyId,
    dir: usize,
    own: &[NamedPort],
) {
    let Some(p) = policies.get(id) else { return };
    for (index, rule) in p.rules[dir].iter().enumerate() {
        let ports = if rule.ports.is_empty() {
            std::slice::from_ref(&ANY_PORT)
        } else {
            rule.ports.as_slice()
        };
        let origin = Origin {
            policy: id,
            rule: u16::try_from(index).unwrap_or(u16::MAX),
        };
        for &port in ports {
            let concrete = if dir == INGRESS && port.named != 0 {
                resolved(port, own)
            } else {
                vec![port]
            };
            for port in concrete {
                let entry = Entry {
                    peers: rule.peers,
                    named: port.named,
                    lo: port.lo,
                    hi: port.hi,
                    protos: port.protos,
                    action: rule.action,
                };
                out.push((entry, origin));
            }
        }
    }
}

/// The policies selecting an identity, per tier in evaluation order:
/// `[admin, network policy, baseline]` (admin and baseline by priority,
/// then name; NetworkPolicies by name).
pub(crate) fn tier_order(identity: &Identity, policies: &Policies) -> [Vec<PolicyId>; 3] {
    let mut admin = Vec::new();
    let mut np = Vec::new();
    let mut baseline = Vec::new();
    for &id in &identity.policies {
        let Some(p) = policies.get(id) else { continue };
        match p.tier {
            Tier::Admin => admin.push((p.order_key(), id)),
            Tier::NetworkPolicy => np.push((p.reference.name.as_str(), id)),
            _ => baseline.push((p.order_key(), id)),
        }
    }
    admin.sort_unstable();
    np.sort_unstable();
    baseline.sort_unstable();
    [
        admin.into_iter().map(|(_, id)| id).collect(),
        np.into_iter().map(|(_, id)| id).collect(),
        baseline.into_iter().map(|(_, id)| id).collect(),
    ]
}

/// A compiled direction: the program and, apart, each entry's origin.
pub(crate) struct Built {
    pub(crate) programs: [Program; 2],
    pub(crate) origins: [Box<[Origin]>; 2],
    pub(crate) isolated_by: [Vec<PolicyId>; 2],
}

/// Builds both programs of an identity from its policy list, with the
/// NetworkPolicies that isolate it per direction (for explanations).
pub(crate) fn build(identity: &Identity, policies: &Policies) -> Built {
    let [admin, np, baseline] = tier_order(identity, policies);
    let mut isolated_by: [Vec<PolicyId>; 2] = Default::default();
    let mut origins: [Box<[Origin]>; 2] = Default::default();
    let own = &identity.named;
    let programs = std::array::from_fn(|dir| {
        let mut all = Vec::new();
        for &id in &admin {
            push_rules(&mut all, policies, id, dir, own);
        }
        let admin_end = all.len();
        for &id in &np {
            if policies.get(id).is_some_and(|p| p.isolates[dir]) {
                isolated_by[dir].push(id);
                push_rules(&mut all, policies, id, dir, own);
            }
        }
        let np_end = all.len();
        for &id in &baseline {
            push_rules(&mut all, policies, id, dir, own);
        }
        let (entries, from): (Vec<Entry>, Vec<Origin>) = all.into_iter().unzip();
        origins[dir] = from.into_boxed_slice();
        let store = if entries.len() <= INLINE {
            let mut items = [EMPTY; INLINE];
            items[..entries.len()].copy_from_slice(&entries);
            Store::Inline(entries.len() as u8, items)
        } else {
            Store::Heap(entries.into_boxed_slice())
        };
        Program {
            store,
            admin_end: u32::try_from(admin_end).unwrap_or(u32::MAX),
            np_end: u32::try_from(np_end).unwrap_or(u32::MAX),
            isolated: !isolated_by[dir].is_empty(),
        }
    });
    Built {
        programs,
        origins,
        isolated_by,
    }
}

#[cfg(test)]
mod tests {
    use super::{Entry, Program};

    #[test]
    fn hot_data_stays_small() {
        // One identity's two programs and named ports share two lines.
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        assert!(
            std::mem::size_of::<Program>() <= 56,
            "{}",
            std::mem::size_of::<Program>()
        );
    }
}
