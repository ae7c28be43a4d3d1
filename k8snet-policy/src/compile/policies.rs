//! Lowering the four policy kinds into one form: a subject, and per
//! direction an ordered list of rules (action, ports, peer set).

use std::collections::HashMap;

use ipnet::IpNet;
use k8snet_model::validate::parse_cidr_legacy;
use k8snet_model::{
    AdminEgressPeer, AdminEgressRule, AdminIngressPeer, AdminIngressRule, AdminNetworkPolicy,
    AdminPolicyAction, AdminPolicyPort, AdminPolicySubject, BaselineAdminNetworkPolicy,
    ClusterNetworkPolicy, ClusterPolicyAction, ClusterPolicyProtocol, IntOrString, Kind,
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, ObjectRef, PolicyTier, PolicyType,
    Protocol, Selector,
};

use crate::explain::{Action, Tier};
use crate::flow::proto;

use super::peers::{ANY, Atom, Block, NsScope, PeerSetId, PeerSets};
use super::world::{IdentityId, Names, World};

/// Index of a compiled policy.
pub(crate) type PolicyId = u32;

/// Direction indexes into `[ingress, egress]` arrays.
pub(crate) const INGRESS: usize = 0;
/// See [`INGRESS`].
pub(crate) const EGRESS: usize = 1;

/// The `PolicyType` of a direction index.
pub(crate) fn direction(dir: usize) -> PolicyType {
    if dir == EGRESS {
        PolicyType::Egress
    } else {
        PolicyType::Ingress
    }
}

/// Who a policy applies to.
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    /// NetworkPolicy: selected pods of its namespace.
    Namespace { namespace: String, pods: Selector },
    /// Admin tiers: pods of selected namespaces (host-network pods never).
    Cluster {
        namespaces: Selector,
        pods: Option<Selector>,
    },
    /// A subject with no field set (refused by validation): nothing.
    Nothing,
}

/// A port condition: a protocol set and a port range, or a named port
/// resolved on the destination pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortMatch {
    pub(crate) protos: u8,
    pub(crate) lo: u16,
    pub(crate) hi: u16,
    /// Interned port name; 0 = the numeric range applies.
    pub(crate) named: u32,
}

/// Every port of every protocol.
pub(crate) const ANY_PORT: PortMatch = PortMatch {
    protos: proto::ALL,
    lo: 0,
    hi: u16::MAX,
    named: 0,
};

/// One rule.
#[derive(Debug, Clone)]
pub(crate) struct CRule {
    pub(crate) name: Option<String>,
    pub(crate) action: Action,
    /// Empty = every port of every protocol.
    pub(crate) ports: Vec<PortMatch>,
    pub(crate) peers: PeerSetId,
}

/// A policy of any kind, compiled.
#[derive(Debug, Clone)]
pub(crate) struct CompiledPolicy {
    pub(crate) reference: ObjectRef,
    pub(crate) tier: Tier,
    /// Order within the tier (lower first; the name breaks ties).
    pub(crate) priority: i32,
    pub(crate) subject: Subject,
    /// NetworkPolicy: whether it isolates `[ingress, egress]`.
    pub(crate) isolates: [bool; 2],
    pub(crate) rules: [Vec<CRule>; 2],
    /// What could not be read (only in objects that skipped validation).
    pub(crate) errors: Vec<crate::Error>,
}

impl CompiledPolicy {
    /// Whether the subject selects an identity.
    pub(crate) fn selects(&self, world: &World, id: IdentityId) -> bool {
        let Some(identity) = world.identities.get(id as usize) else {
            return false;
        };
        if identity.pods == 0 {
            return false;
        }
        match &self.subject {
            Subject::Namespace { namespace, pods } => {
                identity.namespace == *namespace && pods.matches(&identity.labels)
            }
            Subject::Cluster { namespaces, pods } => {
                !identity.host_network
                    && namespaces.matches(world.ns_labels(&identity.namespace))
                    && pods.as_ref().is_none_or(|p| p.matches(&identity.labels))
            }
            Subject::Nothing => false,
        }
    }

    /// The sort key of the admin and baseline tiers: priority, then name
    /// (equal priorities are undefined upstream; the name makes it stable),
    /// then kind.
    pub(crate) fn order_key(&self) -> (i32, &str, Kind) {
        (self.priority, &self.reference.name, self.reference.kind)
    }

    /// Every peer set the policy references.
    pub(crate) fn peer_sets(&self) -> impl Iterator<Item = PeerSetId> + '_ {
        self.rules.iter().flatten().map(|r| r.peers)
    }
}

/// Shared state while lowering.
pub(crate) struct Lower<'a> {
    pub(crate) world: &'a World,
    pub(crate) names: &'a mut Names,
    pub(crate) peers: &'a mut PeerSets,
    pub(crate) ipblock_matches_pods: bool,
    /// `(field, message)` of the policy being lowered, for
    /// [`CompiledPolicy::errors`].
    pub(crate) errors: Vec<(String, String)>,
}

fn port_u16(n: i32) -> u16 {
    u16::try_from(n.clamp(0, i32::from(u16::MAX))).unwrap_or(u16::MAX)
}

fn range(protos: u8, lo: i32, hi: i32) -> PortMatch {
    PortMatch {
        protos,
        lo: port_u16(lo),
        hi: port_u16(hi),
        named: 0,
    }
}

/// An `ipBlock` (or a `networks` entry, without `except`), read as the
/// apiserver reads it ([`parse_cidr_legacy`]): `010.0.0.0/8`, `10.0.0.0/08`
/// and `10.0.0.1/8` are `10.0.0.0/8`, `::ffff:10.0.0.0/104` is IPv4
/// `10.0.0.0/8`. Validation refuses what it cannot read; should such a value
/// slip through (an object that skipped validation), the error names the
/// field within the block (`cidr`, `except[i]`) and the caller fails
/// closed: an unreadable `except` never leaves the block wider.
fn block(cidr: &str, except: &[String], pods: bool) -> Result<Atom, (String, String)> {
    let net = parse_cidr_legacy(cidr).map_err(|m| ("cidr".to_string(), m))?;
    let except = except
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse_cidr_legacy(e)
                .map(|e| e.net)
                .map_err(|m| (format!("except[{i}]"), m))
        })
        .collect::<Result<Vec<IpNet>, _>>()?;
    Ok(Atom::Block(Block {
        net: net.net,
        except,
        pods,
    }))
}

/// Every address, pods' included: what a rule that cannot be read and
/// must not admit denies.
fn every_address(out: &mut Vec<Atom>) {
    for all in ["0.0.0.0/0", "::/0"] {
        if let Ok(net) = all.parse::<IpNet>() {
            out.push(Atom::Block(Block {
                net,
                except: Vec::new(),
                pods: true,
            }));
        }
    }
}

/// The action and peers of an admin-tier rule of `tier` some peer of which
/// could not be read, failing closed: whatever the unreadable value was,
/// the rule never admits more than it would have.
/// - Deny: the unreadable peer matches every address.
/// - Allow, and Pass in the Baseline tier (which ends the tier: default
///   allow, as permissive as Allow): it matches nothing, so the flow
///   falls through to later rules, which admit at most what the rule would.
/// - Pass in the Admin tier: neither is safe (matching nothing lets the
///   flow reach a later admin Allow the NetworkPolicy tier would have
///   refused; matching everything skips a later admin Deny), so the whole
///   rule becomes a Deny of every address.
fn fail_closed(action: Action, tier: Tier, mut atoms: Vec<Atom>) -> (Action, Vec<Atom>) {
    match (action, tier) {
        (Action::Deny, _) => {
            every_address(&mut atoms);
            (action, atoms)
        }
        (Action::Pass, Tier::Admin) => {
            let mut all = Vec::new();
            every_address(&mut all);
            (Action::Deny, all)
        }
        _ => (action, atoms),
    }
}

impl Lower<'_> {
    /// The errors recorded while lowering the policy `reference`.
    fn take_errors(&mut self, reference: &ObjectRef) -> Vec<crate::Error> {
        std::mem::take(&mut self.errors)
            .into_iter()
            .map(|(field, message)| crate::Error::Unreadable {
                object: reference.clone(),
                field,
                message,
            })
            .collect()
    }

    fn np_ports(&mut self, ports: Option<&[NetworkPolicyPort]>) -> Vec<PortMatch> {
        let ports = ports.unwrap_or_default();
        let mut out = Vec::with_capacity(ports.len());
        for p in ports {
            let protos = proto::bit(p.protocol.unwrap_or(Protocol::Tcp));
            out.push(match &p.port {
                None => range(protos, 0, i32::from(u16::MAX)),
                Some(IntOrString::Int(n)) => range(protos, *n, p.end_port.unwrap_or(*n)),
                Some(IntOrString::String(name)) => PortMatch {
                    protos,
                    lo: 0,
                    hi: 0,
                    named: self.names.intern(name),
                },
            });
        }
        out
    }

    /// The peer set of a NetworkPolicy rule; `rule` names it for errors
    /// (`ingress[0].from`), formatted only when one occurs.
    fn np_peers(
        &mut self,
        namespace: &str,
        peers: Option<&[NetworkPolicyPeer]>,
        rule: (&str, usize, &str),
    ) -> PeerSetId {
        let peers = peers.unwrap_or_default();
        if peers.is_empty() {
            return ANY;
        }
        let atoms = peers
            .iter()
            .enumerate()
            .map(
                |(i, p)| match (&p.ip_block, &p.namespace_selector, &p.pod_selector) {
                    (Some(b), _, _) => block(&b.cidr, &b.except, self.ipblock_matches_pods)
                        .unwrap_or_else(|(field, message)| {
                            // A NetworkPolicy rule admits: match nothing.
                            let (dir, r, peers) = rule;
                            let path = format!("spec.{dir}[{r}].{peers}[{i}].ipBlock.{field}");
                            self.errors.push((path, message));
                            Atom::Nothing
                        }),
                    (None, None, Some(pods)) => Atom::Pods {
                        namespaces: NsScope::Is(namespace.to_string()),
                        pods: Some(pods.compile()),
                        host_network: true,
                    },
                    (None, Some(ns), pods) => Atom::Pods {
                        namespaces: NsScope::Selected(ns.compile()),
                        pods: pods.as_ref().map(|p| p.compile()),
                        host_network: true,
                    },
                    (None, None, None) => Atom::Nothing,
                },
            )
            .collect();
        self.peers.intern(atoms, self.world)
    }

    /// Lowers a NetworkPolicy. Rules of a direction not in `policyTypes`
    /// are ignored, as the API says.
    pub(crate) fn network_policy(&mut self, np: &NetworkPolicy) -> CompiledPolicy {
        let ns = np.metadata.namespace_or_default().to_string();
        let spec = &np.spec;
        let isolates = [
            spec.policy_types.contains(&PolicyType::Ingress),
            spec.policy_types.contains(&PolicyType::Egress),
        ];
        let mut rules: [Vec<CRule>; 2] = Default::default();
        if isolates[INGRESS] {
            for (i, r) in spec.ingress.iter().flatten().enumerate() {
                let ports = self.np_ports(r.ports.as_deref());
                let peers = self.np_peers(&ns, r.from.as_deref(), ("ingress", i, "from"));
                rules[INGRESS].push(np_rule(ports, peers));
            }
        }
        if isolates[EGRESS] {
            for (i, r) in spec.egress.iter().flatten().enumerate() {
                let ports = self.np_ports(r.ports.as_deref());
                let peers = self.np_peers(&ns, r.to.as_deref(), ("egress", i, "to"));
                rules[EGRESS].push(np_rule(ports, peers));
            }
        }
        let reference = ObjectRef {
            kind: Kind::NetworkPolicy,
            namespace: Some(ns.clone()),
            name: np.metadata.name.clone(),
        };
        CompiledPolicy {
            errors: self.take_errors(&reference),
            reference,
            tier: Tier::NetworkPolicy,
            priority: 0,
            subject: Subject::Namespace {
                namespace: ns,
                pods: spec.pod_selector.compile(),
            },
            isolates,
            rules,
        }
    }

    fn admin_ports(&mut self, ports: Option<&[AdminPolicyPort]>) -> Vec<PortMatch> {
        let mut out = Vec::new();
        for p in ports.unwrap_or_default() {
            if let Some(n) = &p.port_number {
                out.push(range(
                    proto::bit(n.protocol.unwrap_or_default()),
                    n.port,
                    n.port,
                ));
            }
            if let Some(r) = &p.port_range {
                out.push(range(
                    proto::bit(r.protocol.unwrap_or_default()),
                    r.start,
                    r.end,
                ));
            }
            if let Some(name) = &p.named_port {
                out.push(self.any_proto_named(name));
            }
        }
        out
    }

    /// An admin-tier named port: the container port's own protocol decides.
    fn any_proto_named(&mut self, name: &str) -> PortMatch {
        PortMatch {
            protos: proto::ALL,
            lo: 0,
            hi: 0,
            named: self.names.intern(name),
        }
    }

    fn cluster_ports(&mut self, protos: Option<&[ClusterPolicyProtocol]>) -> Vec<PortMatch> {
        let mut out = Vec::new();
        for p in protos.unwrap_or_default() {
            for (bit, ports) in [
                (proto::TCP, &p.tcp),
                (proto::UDP, &p.udp),
                (proto::SCTP, &p.sctp),
            ] {
                let Some(ports) = ports else { continue };
                let dp = ports.destination_port.as_ref();
                out.push(
                    match (dp.and_then(|d| d.number), dp.and_then(|d| d.range.as_ref())) {
                        (Some(n), _) => range(bit, n, n),
                        (None, Some(r)) => range(bit, r.start, r.end),
                        (None, None) => range(bit, 0, i32::from(u16::MAX)),
                    },
                );
            }
            if let Some(name) = &p.destination_named_port {
                out.push(self.any_proto_named(name));
            }
        }
        out
    }

    fn ingress_atom(peer: &AdminIngressPeer) -> Atom {
        match (&peer.namespaces, &peer.pods) {
            (Some(ns), _) => Atom::Pods {
                namespaces: NsScope::Selected(ns.compile()),
                pods: None,
                host_network: false,
            },
            (None, Some(p)) => Atom::Pods {
                namespaces: NsScope::Selected(p.namespace_selector.compile()),
                pods: Some(p.pod_selector.compile()),
                host_network: false,
            },
            (None, None) => Atom::Nothing,
        }
    }

    /// Appends the atoms of the admin egress peer `spec.egress[i].to[j]`
    /// (`at` is `(i, j)`, for errors) of a rule with that action; returns
    /// whether some part could not be read (then the caller fails closed,
    /// see [`fail_closed`]).
    fn egress_atoms(
        &mut self,
        peer: &AdminEgressPeer,
        at: (usize, usize),
        action: Action,
        out: &mut Vec<Atom>,
    ) -> bool {
        let (i, j) = at;
        let mut unreadable = false;
        let ingress_like = AdminIngressPeer {
            namespaces: peer.namespaces.clone(),
            pods: peer.pods.clone(),
        };
        if peer.namespaces.is_some() || peer.pods.is_some() {
            out.push(Self::ingress_atom(&ingress_like));
        }
        if let Some(nodes) = &peer.nodes {
            out.push(Atom::Nodes(nodes.compile()));
        }
        for (k, n) in peer.networks.iter().enumerate() {
            match parse_cidr_legacy(n) {
                Ok(net) => out.push(Atom::Block(Block {
                    net: net.net,
                    except: Vec::new(),
                    pods: true,
                })),
                Err(m) => {
                    let path = format!("spec.egress[{i}].to[{j}].networks[{k}]");
                    self.errors.push((path, m));
                    unreadable = true;
                }
            }
        }
        if !peer.domain_names.is_empty() {
            // Names are not resolved here: an Allow rule's match nothing
            // (it admits at most what the rule would). Validation refuses
            // them in any other rule; such a rule cannot be honoured.
            if action == Action::Allow {
                out.push(Atom::Nothing);
            } else {
                let path = format!("spec.egress[{i}].to[{j}].domainNames");
                let names = &peer.domain_names;
                let message = format!(
                    "{names:?}: domainNames may only be used in Allow (Accept) rules, and are not resolved"
                );
                self.errors.push((path, message));
                unreadable = true;
            }
        }
        unreadable
    }

    /// The action and atoms of the admin egress rule `spec.egress[i]` of
    /// a policy in `tier`.
    fn egress_rule(
        &mut self,
        to: &[AdminEgressPeer],
        i: usize,
        action: Action,
        tier: Tier,
    ) -> (Action, Vec<Atom>) {
        let mut atoms = Vec::new();
        let mut unreadable = false;
        for (j, p) in to.iter().enumerate() {
            unreadable |= self.egress_atoms(p, (i, j), action, &mut atoms);
        }
        if unreadable {
            fail_closed(action, tier, atoms)
        } else {
            (action, atoms)
        }
    }

    fn admin_peers(&mut self, atoms: Vec<Atom>) -> PeerSetId {
        // An empty list is refused by validation; here it matches nothing.
        let atoms = if atoms.is_empty() {
            vec![Atom::Nothing]
        } else {
            atoms
        };
        self.peers.intern(atoms, self.world)
    }

    fn admin_policy(
        &mut self,
        head: (Kind, &str, Tier, i32),
        subject: &AdminPolicySubject,
        raw: [Vec<RawRule>; 2],
    ) -> CompiledPolicy {
        let (kind, name, tier, priority) = head;
        let mut rules: [Vec<CRule>; 2] = Default::default();
        for (dir, list) in raw.into_iter().enumerate() {
            for r in list {
                let peers = self.admin_peers(r.atoms);
                rules[dir].push(CRule {
                    name: r.name,
                    action: r.action,
                    ports: r.ports,
                    peers,
                });
            }
        }
        let subject = match (&subject.namespaces, &subject.pods) {
            (Some(ns), _) => Subject::Cluster {
                namespaces: ns.compile(),
                pods: None,
            },
            (None, Some(p)) => Subject::Cluster {
                namespaces: p.namespace_selector.compile(),
                pods: Some(p.pod_selector.compile()),
            },
            (None, None) => Subject::Nothing,
        };
        let reference = ObjectRef {
            kind,
            namespace: None,
            name: name.to_string(),
        };
        CompiledPolicy {
            errors: self.take_errors(&reference),
            reference,
            tier,
            priority,
            subject,
            isolates: [false; 2],
            rules,
        }
    }

    /// The rules of a v1alpha1 policy (AdminNetworkPolicy or Baseline) of
    /// `tier`.
    fn v1a1_rules(
        &mut self,
        ingress: &[AdminIngressRule],
        egress: &[AdminEgressRule],
        tier: Tier,
    ) -> [Vec<RawRule>; 2] {
        let ingress = ingress
            .iter()
            .map(|r| RawRule {
                name: r.name.clone(),
                action: admin_action(r.action),
                ports: self.admin_ports(r.ports.as_deref()),
                atoms: r.from.iter().map(Self::ingress_atom).collect(),
            })
            .collect();
        let egress = egress
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (action, atoms) = self.egress_rule(&r.to, i, admin_action(r.action), tier);
                RawRule {
                    name: r.name.clone(),
                    action,
                    ports: self.admin_ports(r.ports.as_deref()),
                    atoms,
                }
            })
            .collect();
        [ingress, egress]
    }

    /// Lowers an AdminNetworkPolicy (v1alpha1).
    pub(crate) fn admin_network_policy(&mut self, p: &AdminNetworkPolicy) -> CompiledPolicy {
        let raw = self.v1a1_rules(&p.spec.ingress, &p.spec.egress, Tier::Admin);
        let head = (
            Kind::AdminNetworkPolicy,
            p.metadata.name.as_str(),
            Tier::Admin,
            p.spec.priority,
        );
        self.admin_policy(head, &p.spec.subject, raw)
    }

    /// Lowers the BaselineAdminNetworkPolicy. It has no priority; it is
    /// evaluated after every Baseline-tier ClusterNetworkPolicy.
    pub(crate) fn baseline(&mut self, p: &BaselineAdminNetworkPolicy) -> CompiledPolicy {
        let raw = self.v1a1_rules(&p.spec.ingress, &p.spec.egress, Tier::Baseline);
        let kind = Kind::BaselineAdminNetworkPolicy;
        let head = (kind, p.metadata.name.as_str(), Tier::Baseline, i32::MAX);
        self.admin_policy(head, &p.spec.subject, raw)
    }

    /// Lowers a ClusterNetworkPolicy (v1alpha2).
    pub(crate) fn cluster_network_policy(&mut self, p: &ClusterNetworkPolicy) -> CompiledPolicy {
        let tier = match p.spec.tier {
            PolicyTier::Baseline => Tier::Baseline,
            _ => Tier::Admin,
        };
        let ingress = p
            .spec
            .ingress
            .iter()
            .map(|r| RawRule {
                name: r.name.clone(),
                action: cluster_action(r.action),
                ports: self.cluster_ports(r.protocols.as_deref()),
                atoms: r.from.iter().map(Self::ingress_atom).collect(),
            })
            .collect();
        let egress = p
            .spec
            .egress
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (action, atoms) = self.egress_rule(&r.to, i, cluster_action(r.action), tier);
                RawRule {
                    name: r.name.clone(),
                    action,
                    ports: self.cluster_ports(r.protocols.as_deref()),
                    atoms,
                }
            })
            .collect();
        let head = (
            Kind::ClusterNetworkPolicy,
            p.metadata.name.as_str(),
            tier,
            p.spec.priority,
        );
        self.admin_policy(head, &p.spec.subject, [ingress, egress])
    }
}

/// An admin-tier rule before its peers are interned.
struct RawRule {
    name: Option<String>,
    action: Action,
    ports: Vec<PortMatch>,
    atoms: Vec<Atom>,
}

fn np_rule(ports: Vec<PortMatch>, peers: PeerSetId) -> CRule {
    CRule {
        name: None,
        action: Action::Allow,
        ports,
        peers,
    }
}

fn admin_action(a: AdminPolicyAction) -> Action {
    match a {
        AdminPolicyAction::Allow => Action::Allow,
        AdminPolicyAction::Pass => Action::Pass,
        // Deny, and fail closed on an action this crate does not know.
        _ => Action::Deny,
    }
}

fn cluster_action(a: ClusterPolicyAction) -> Action {
    match a {
        ClusterPolicyAction::Accept => Action::Allow,
        ClusterPolicyAction::Pass => Action::Pass,
        _ => Action::Deny,
    }
}

/// The compiled policies, with their indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policies {
    pub(crate) slab: Vec<Option<CompiledPolicy>>,
    free: Vec<PolicyId>,
    pub(crate) by_ref: HashMap<ObjectRef, PolicyId>,
    /// NetworkPolicies by namespace.
    pub(crate) by_ns: HashMap<String, Vec<PolicyId>>,
    /// Cluster-scoped policies.
    pub(crate) cluster: Vec<PolicyId>,
}

impl Policies {
    /// A policy.
    #[inline]
    pub(crate) fn get(&self, id: PolicyId) -> Option<&CompiledPolicy> {
        self.slab.get(id as usize).and_then(Option::as_ref)
    }

    /// Adds a policy.
    pub(crate) fn insert(&mut self, p: CompiledPolicy) -> PolicyId {
        let reference = p.reference.clone();
        let id = match self.free.pop() {
            Some(id) => {
                self.slab[id as usize] = Some(p);
                id
            }
            None => {
                self.slab.push(Some(p));
                (self.slab.len() - 1) as PolicyId
            }
        };
        match &reference.namespace {
            Some(ns) => self.by_ns.entry(ns.clone()).or_default().push(id),
            None => self.cluster.push(id),
        }
        self.by_ref.insert(reference, id);
        id
    }

    /// Removes a policy.
    pub(crate) fn remove(&mut self, reference: &ObjectRef) -> Option<(PolicyId, CompiledPolicy)> {
        let id = self.by_ref.remove(reference)?;
        let p = self.slab.get_mut(id as usize)?.take()?;
        match &reference.namespace {
            Some(ns) => {
                if let Some(ids) = self.by_ns.get_mut(ns) {
                    ids.retain(|&i| i != id);
                }
            }
            None => self.cluster.retain(|&i| i != id),
        }
        self.free.push(id);
        Some((id, p))
    }

    /// The policies whose subject could select pods of `namespace`.
    pub(crate) fn candidates<'a>(&'a self, namespace: &str) -> impl Iterator<Item = PolicyId> + 'a {
        let ns = self.by_ns.get(namespace).map_or(&[][..], Vec::as_slice);
        ns.iter().chain(&self.cluster).copied()
    }

    /// The number of policies.
    pub(crate) fn len(&self) -> usize {
        self.by_ref.len()
    }
}
