//! Peer sets: who a rule's `from`/`to` list matches, interned so that equal
//! lists share one set. Pods are matched by identity (one bit test); CIDR
//! blocks by address.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;

use ipnet::IpNet;
use k8snet_model::Selector;

use crate::bitset::BitMatrix;

use super::world::{IdentityId, World};

/// Index of a peer set. [`ANY`] matches everything.
pub(crate) type PeerSetId = u32;

/// The peer set of an absent or empty NetworkPolicy `from`/`to`.
pub(crate) const ANY: PeerSetId = 0;

/// Where a pod peer's namespaces come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum NsScope {
    /// The policy's own namespace (a NetworkPolicy `podSelector` peer).
    Is(String),
    /// Namespaces whose labels match.
    Selected(Selector),
}

/// A CIDR with exceptions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Block {
    pub(crate) net: IpNet,
    pub(crate) except: Vec<IpNet>,
    /// Whether the block also matches pod addresses.
    pub(crate) pods: bool,
}

/// An address as (family, bits), IPv4 in the low 32 bits: what the
/// verdict path compares against [`Range`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Addr {
    pub(crate) v6: bool,
    pub(crate) bits: u128,
}

impl From<IpAddr> for Addr {
    #[inline]
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self {
                v6: false,
                bits: u128::from(u32::from(a)),
            },
            IpAddr::V6(a) => Self {
                v6: true,
                bits: u128::from(a),
            },
        }
    }
}

/// A CIDR as an inclusive range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) v6: bool,
    pub(crate) lo: u128,
    pub(crate) hi: u128,
}

impl Range {
    fn of(net: IpNet) -> Self {
        let (lo, hi) = (Addr::from(net.network()), Addr::from(net.broadcast()));
        Self {
            v6: lo.v6,
            lo: lo.bits,
            hi: hi.bits,
        }
    }

    #[inline]
    fn contains(&self, a: Addr) -> bool {
        self.v6 == a.v6 && self.lo <= a.bits && a.bits <= self.hi
    }
}

/// A block as the verdict path tests it: integer compares only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FastBlock {
    pub(crate) range: Range,
    except: Box<[Range]>,
    pods: bool,
}

impl FastBlock {
    fn of(b: &Block) -> Self {
        Self {
            range: Range::of(b.net),
            except: b.except.iter().map(|e| Range::of(*e)).collect(),
            pods: b.pods,
        }
    }

    #[inline]
    pub(crate) fn contains(&self, a: Addr) -> bool {
        self.range.contains(a) && !self.except.iter().any(|e| e.contains(a))
    }
}

/// One peer of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Atom {
    /// Pods of some namespaces, optionally narrowed by a pod selector.
    Pods {
        namespaces: NsScope,
        pods: Option<Selector>,
        /// Whether host-network pods (under `HostNetwork::AsPod`) count;
        /// the admin APIs exclude them.
        host_network: bool,
    },
    /// An `ipBlock` or a `networks` CIDR.
    Block(Block),
    /// The addresses of the nodes whose labels match (admin egress `nodes`).
    Nodes(Selector),
    /// Matches nothing (`domainNames`: no resolver here).
    Nothing,
}

impl Atom {
    /// Whether the atom selects the pods of an identity.
    pub(crate) fn selects(&self, world: &World, id: IdentityId) -> bool {
        let Self::Pods {
            namespaces,
            pods,
            host_network,
        } = self
        else {
            return false;
        };
        let Some(identity) = world.identities.get(id as usize) else {
            return false;
        };
        if identity.pods == 0 || (identity.host_network && !host_network) {
            return false;
        }
        let ns_ok = match namespaces {
            NsScope::Is(ns) => identity.namespace == *ns,
            NsScope::Selected(sel) => sel.matches(world.ns_labels(&identity.namespace)),
        };
        ns_ok && pods.as_ref().is_none_or(|s| s.matches(&identity.labels))
    }
}

/// Matches every endpoint.
pub(crate) const FLAG_ANY: u8 = 1;
/// Has address blocks.
pub(crate) const FLAG_BLOCKS: u8 = 2;
/// Has address blocks that match pod addresses, and one of them contains
/// the address of some pod. Most blocks name the outside world (a
/// metadata range, the internet); they then cost pods nothing. The flag
/// is conservative: set when a pod address appears in a block, left set
/// when the pod goes.
pub(crate) const FLAG_POD_BLOCKS: u8 = 4;

/// A rule's peers, compiled (the identity bits live in [`PeerSets`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerSet {
    pub(crate) atoms: Vec<Atom>,
    /// Address blocks (CIDRs, node addresses as host routes).
    pub(crate) blocks: Vec<Block>,
    /// The same, as integer ranges.
    fast: Vec<FastBlock>,
    /// Rules using the set; 0 = free.
    refs: u32,
}

impl PeerSet {
    /// Whether an identity is a member.
    fn selects(&self, world: &World, id: IdentityId) -> bool {
        self.atoms.iter().any(|a| a.selects(world, id))
    }

    /// The flags of the set, given the pod addresses.
    fn flags(&self, world: &World) -> u8 {
        let mut f = 0;
        if !self.blocks.is_empty() {
            f |= FLAG_BLOCKS;
        }
        if self
            .fast
            .iter()
            .any(|b| b.pods && world.any_pod_addr_in(|a| b.contains(a), b.range))
        {
            f |= FLAG_POD_BLOCKS;
        }
        f
    }

    /// Whether a pod-matching block contains one of `addrs`.
    fn pod_blocks_contain(&self, addrs: &[Addr]) -> bool {
        self.fast
            .iter()
            .any(|b| b.pods && addrs.iter().any(|&a| b.contains(a)))
    }

    /// Fills in the blocks and returns the member identities.
    fn fill(&mut self, world: &World) -> Vec<IdentityId> {
        let mut members = Vec::new();
        self.blocks.clear();
        for atom in &self.atoms {
            match atom {
                Atom::Pods { namespaces, .. } => {
                    let ids: Vec<IdentityId> = match namespaces {
                        NsScope::Is(ns) => world.identities_in(ns).to_vec(),
                        NsScope::Selected(sel) => world
                            .namespaces
                            .iter()
                            .filter(|(_, labels)| sel.matches(labels))
                            .flat_map(|(ns, _)| world.identities_in(ns).iter().copied())
                            .collect(),
                    };
                    members.extend(ids.into_iter().filter(|&id| atom.selects(world, id)));
                }
                Atom::Block(b) => self.blocks.push(b.clone()),
                Atom::Nodes(sel) => {
                    for node in world.nodes.values().filter(|n| sel.matches(&n.labels)) {
                        for &ip in &node.ips {
                            self.blocks.push(Block {
                                net: IpNet::from(ip),
                                except: Vec::new(),
                                pods: false,
                            });
                        }
                    }
                }
                Atom::Nothing => {}
            }
        }
        self.fast = self.blocks.iter().map(FastBlock::of).collect();
        members
    }

    /// Whether a block matches one of `addrs` (pod addresses when `pod`:
    /// then only blocks that match pods count).
    #[inline]
    pub(crate) fn blocks_match(
        &self,
        addrs: impl Iterator<Item = Addr> + Clone,
        pod: bool,
    ) -> bool {
        self.fast
            .iter()
            .any(|b| (b.pods || !pod) && addrs.clone().any(|a| b.contains(a)))
    }
}

/// All peer sets, with their hot data (flags, identity bits) in dense
/// arrays for the verdict path.
#[derive(Debug, Clone)]
pub(crate) struct PeerSets {
    pub(crate) list: Vec<PeerSet>,
    /// `FLAG_*` per set.
    pub(crate) flags: Vec<u8>,
    /// Row = set, column = identity.
    pub(crate) members: BitMatrix,
    free: Vec<PeerSetId>,
    /// Sets by the hash of their atoms (the atoms live in the set only).
    index: HashMap<u64, Vec<PeerSetId>>,
}

impl Default for PeerSets {
    fn default() -> Self {
        let any = PeerSet {
            refs: 1,
            ..PeerSet::default()
        };
        Self {
            list: vec![any],
            flags: vec![FLAG_ANY],
            members: BitMatrix::default(),
            free: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl PeerSets {
    /// The set of `atoms` (one more reference to it).
    pub(crate) fn intern(&mut self, mut atoms: Vec<Atom>, world: &World) -> PeerSetId {
        atoms.sort();
        atoms.dedup();
        let hash = self.index.hasher().hash_one(&atoms);
        let found = self.index.get(&hash).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|&id| self.list[id as usize].atoms == atoms)
        });
        if let Some(id) = found {
            self.list[id as usize].refs += 1;
            return id;
        }
        let mut set = PeerSet {
            atoms,
            refs: 1,
            ..PeerSet::default()
        };
        let members = set.fill(world);
        let flags = set.flags(world);
        let id = match self.free.pop() {
            Some(id) => {
                self.list[id as usize] = set;
                self.flags[id as usize] = flags;
                id
            }
            None => {
                self.list.push(set);
                self.flags.push(flags);
                (self.list.len() - 1) as PeerSetId
            }
        };
        self.members.clear_row(id);
        for m in members {
            self.members.set(id, m, true);
        }
        self.index.entry(hash).or_default().push(id);
        id
    }

    /// Drops one reference; frees the set with the last.
    pub(crate) fn release(&mut self, id: PeerSetId) {
        if id == ANY {
            return;
        }
        let Some(set) = self.list.get_mut(id as usize) else {
            return;
        };
        set.refs = set.refs.saturating_sub(1);
        if set.refs == 0 {
            let atoms = std::mem::take(&mut set.atoms);
            *set = PeerSet::default();
            self.flags[id as usize] = 0;
            self.members.clear_row(id);
            let hash = self.index.hasher().hash_one(&atoms);
            if let Some(ids) = self.index.get_mut(&hash) {
                ids.retain(|&i| i != id);
                if ids.is_empty() {
                    self.index.remove(&hash);
                }
            }
            self.free.push(id);
        }
    }

    /// Recomputes the bit of one identity in every live set.
    pub(crate) fn update_identity(&mut self, world: &World, id: IdentityId) {
        for (row, set) in self.list.iter().enumerate() {
            if set.refs > 0 && row as PeerSetId != ANY {
                self.members
                    .set(row as PeerSetId, id, set.selects(world, id));
            }
        }
    }

    /// Notes the addresses of a new pod: sets whose pod-matching blocks
    /// contain one of them must now test pod addresses.
    pub(crate) fn note_pod_addrs(&mut self, addrs: &[Addr]) {
        for (flags, set) in self.flags.iter_mut().zip(&self.list) {
            if *flags & FLAG_POD_BLOCKS == 0 && set.pod_blocks_contain(addrs) {
                *flags |= FLAG_POD_BLOCKS;
            }
        }
    }

    /// The number of live sets.
    pub(crate) fn len(&self) -> usize {
        self.list.iter().filter(|s| s.refs > 0).count()
    }
}
