//! [`Zone`]: the pre-encoded cluster zone, built from a [`Cluster`] and
//! updated one Service or one namespace at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8snet_model::{Cluster, NsName};

use crate::Error;
use crate::config::{DNS_VERSION_TTL, PodMode, ZoneConfig};
use crate::encode::{
    FLAG_APEX, FLAG_MISSING_NXDOMAIN, NodeSpec, RData, Rr, RrsetSpec, encode_node, rtype,
};
use crate::index::NsTable;
use crate::k8s::{key_of, service_name, service_records};
use crate::name::{self, WireName, is_subdomain};
use crate::node::{Node, Shard, ShardBuilder};

/// The SOA timers: refresh, retry, expire (CoreDNS's values).
const SOA_TIMERS: [u32; 3] = [7200, 1800, 86_400];

/// What the answer path needs besides the names.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) config: ZoneConfig,
    /// The zone name, lowercase wire format.
    pub(crate) zone: WireName,
    pub(crate) zone_labels: usize,
    pub(crate) serial: u32,
    /// The SOA record after its owner name (type … rdata), with the
    /// cluster zone, `in-addr.arpa` and `ip6.arpa` as owner respectively.
    pub(crate) soa: [Vec<u8>; 3],
    /// The NS glue comes from `kube-system/kube-dns` (the configuration
    /// named no nameserver), so updates of that Service rewrite it.
    pub(crate) glue_from_cluster: bool,
}

/// The pod IPs of each namespace (lowercase), for `pods verified`.
pub(crate) type PodIndex = NsTable<BTreeSet<IpAddr>>;

/// The Services of each namespace that the zone holds names for.
type ServiceIndex = NsTable<BTreeSet<Box<str>>>;

/// `kube-system/kube-dns`, whose ClusterIPs are the default NS glue.
fn kube_dns() -> NsName {
    NsName::new("kube-system", "kube-dns")
}

/// The cluster DNS zone: every answer pre-encoded, ready to be copied
/// into a response by [`Zone::answer`].
///
/// A `Zone` is an immutable snapshot and cheap to clone (reference
/// counts). Names are spread over shards, and the names of one Service
/// share a shard, so [`Zone::update_service`], [`Zone::update_services`],
/// [`Zone::update_namespace`] and [`Zone::update_pods_in`] build a new
/// snapshot that shares every untouched shard with the old one; readers
/// of the old snapshot are never disturbed. Each gives the same answers
/// as a [`Zone::build`] of the updated cluster (the SOA serial aside).
/// [`LiveZone`](crate::LiveZone) publishes snapshots to serving threads.
///
/// `Display` lists the records in zone-file form.
#[derive(Debug, Clone)]
pub struct Zone {
    pub(crate) meta: Arc<Meta>,
    pub(crate) shards: Arc<[Arc<Shard>]>,
    pub(crate) shift: u32,
    pub(crate) pods: PodIndex,
    services: ServiceIndex,
}

/// Size figures of a [`Zone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ZoneStats {
    /// Names with stored answers (empty non-terminals included).
    pub names: usize,
    /// Shards the names are spread over.
    pub shards: usize,
    /// Heap bytes held by the shards.
    pub heap_bytes: usize,
}

/// A node blob waiting for its shard.
struct Pending {
    hash: u64,
    blob: Vec<u8>,
}

fn pending(spec: &NodeSpec) -> Pending {
    let mut blob = Vec::new();
    encode_node(spec, &mut blob);
    Pending {
        hash: name::hash(spec.key.as_bytes()),
        blob,
    }
}

impl Zone {
    /// Builds the zone of every Service, EndpointSlice, Namespace (and,
    /// with [`PodMode::Verified`], Pod) of `cluster`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zone name that is not a domain name
    /// or a TTL over 3600.
    pub fn build(cluster: &Cluster, config: &ZoneConfig) -> Result<Self, Error> {
        let meta = Arc::new(Meta::new(cluster, config.clone(), None)?);
        // About 48 names per shard: small enough that an update copies
        // little, few enough that publishing a snapshot is cheap.
        let estimate = cluster.services().count() * 4
            + cluster
                .endpoint_slices()
                .map(|s| s.endpoints.len())
                .sum::<usize>()
                / 2
            + cluster.namespaces().count() * 2;
        let bits = (estimate / 48)
            .next_power_of_two()
            .clamp(64, 1 << 16)
            .trailing_zeros();
        let shift = 64 - bits;
        let mut builders: Vec<ShardBuilder> = (0..1usize << bits)
            .map(|_| ShardBuilder::default())
            .collect();
        let mut put = |shard_hash: u64, spec: &NodeSpec| {
            builders[(shard_hash >> shift) as usize]
                .push_spec(name::hash(spec.key.as_bytes()), spec);
        };
        for spec in global_nodes(&meta, cluster) {
            put(name::hash(spec.key.as_bytes()), &spec);
        }
        let mut ptrs: BTreeMap<IpAddr, Vec<WireName>> = BTreeMap::new();
        let mut services = ServiceIndex::new(bits);
        for svc in cluster.services() {
            let key = key_of(svc);
            services.modify(&key.namespace, BTreeSet::is_empty, |set| {
                set.insert(key.name.as_str().into());
            });
            let Some(svc_name) = service_name(&key, &meta.zone) else {
                continue;
            };
            let recs = service_records(cluster, svc, &meta.zone, config.record_ttl());
            let sh = name::hash(svc_name.as_bytes());
            for n in &recs.nodes {
                put(sh, n);
            }
            for (ip, target) in recs.ptrs {
                ptrs.entry(ip).or_default().push(target);
            }
        }
        for (ip, targets) in ptrs {
            let spec = ptr_node(ip, targets, config.record_ttl());
            put(name::hash(spec.key.as_bytes()), &spec);
        }
        let shards: Vec<Arc<Shard>> = builders.into_iter().map(|b| Arc::new(b.finish())).collect();
        Ok(Self {
            meta,
            shards: shards.into(),
            shift,
            pods: pod_index(cluster, config.pod_mode(), bits),
            services,
        })
    }

    /// The configuration the zone was built with.
    pub fn config(&self) -> &ZoneConfig {
        &self.meta.config
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        self.meta.serial
    }

    /// Size figures.
    pub fn stats(&self) -> ZoneStats {
        ZoneStats {
            names: self.shards.iter().map(|s| s.len()).sum(),
            shards: self.shards.len(),
            heap_bytes: self.shards.iter().map(|s| s.heap_bytes()).sum::<usize>()
                + self.shards.len() * 16,
        }
    }

    /// The node stored for a lowercase wire name.
    pub(crate) fn find(&self, shard_hash: u64, key: &[u8]) -> Option<Node<'_>> {
        self.find_hashed(shard_hash, name::hash(key), key)
    }

    /// [`Zone::find`] with the name's own hash already computed.
    pub(crate) fn find_hashed(&self, shard_hash: u64, hash: u64, key: &[u8]) -> Option<Node<'_>> {
        let shard = self.shards.get((shard_hash >> self.shift) as usize)?;
        shard.find(hash, key)
    }

    /// A new snapshot in which one Service's names (its addresses, SRV,
    /// endpoint names, and the PTRs of its IPs) reflect `cluster`; a
    /// Service missing from `cluster` is removed. Only the shards holding
    /// those names are rebuilt; the rest are shared with `self`.
    pub fn update_service(&self, cluster: &Cluster, service: &NsName) -> Self {
        self.update_services(cluster, std::iter::once(service))
    }

    /// [`Zone::update_service`] for several Services at once: each shard
    /// they touch is rebuilt once, and a PTR shared by two of them is
    /// computed from both.
    pub fn update_services<'a>(
        &self,
        cluster: &Cluster,
        services: impl IntoIterator<Item = &'a NsName>,
    ) -> Self {
        let services: BTreeSet<&NsName> = services.into_iter().collect();
        let namespaces: BTreeSet<&str> = services.iter().map(|s| s.namespace.as_str()).collect();
        self.rebuild(cluster, &services, &namespaces, false)
    }

    /// A new snapshot in which every name of namespace `namespace`
    /// reflects `cluster`: its `<ns>.svc` and (with pod records on)
    /// `<ns>.pod` names (present while `cluster` knows the namespace), the names of every Service
    /// the zone or `cluster` has in it (with their PTRs), and, with
    /// [`PodMode::Verified`](crate::PodMode::Verified), its pod records.
    /// This is what a Namespace's creation or deletion (with or without
    /// the objects in it) changes. Only the shards holding those names are
    /// rebuilt; the rest are shared with `self`.
    pub fn update_namespace(&self, cluster: &Cluster, namespace: &str) -> Self {
        let mut keys: BTreeSet<NsName> = cluster
            .services_in(namespace)
            .map(key_of)
            .filter(|k| k.namespace == namespace)
            .collect();
        if let Some(held) = self.services.get(namespace) {
            keys.extend(held.iter().map(|n| NsName::new(namespace, &**n)));
        }
        let services: BTreeSet<&NsName> = keys.iter().collect();
        self.rebuild(cluster, &services, &BTreeSet::from([namespace]), true)
    }

    /// A new snapshot whose pod records (`pods verified`) reflect
    /// `cluster`.
    pub fn update_pods(&self, cluster: &Cluster) -> Self {
        let mut z = self.clone();
        z.pods = pod_index(cluster, self.meta.config.pod_mode(), 64 - self.shift);
        z
    }

    /// A new snapshot whose pod records of one namespace reflect
    /// `cluster`: its pod IPs (`pods verified`), and its `<ns>.svc` and
    /// (with pod records on) `<ns>.pod` names (a Pod in a namespace not seen before makes the
    /// namespace exist). What a Pod's change needs, at the cost of that
    /// namespace's pods only.
    pub fn update_pods_in(&self, cluster: &Cluster, namespace: &str) -> Self {
        self.rebuild(
            cluster,
            &BTreeSet::new(),
            &BTreeSet::from([namespace]),
            true,
        )
    }

    /// Rebuilds the names of `services`, reconciles the `<ns>.svc` and
    /// `<ns>.pod` names of `namespaces` with `cluster` (and their pod
    /// records when `pods`), and applies it all in one pass over the
    /// shards concerned.
    fn rebuild(
        &self,
        cluster: &Cluster,
        services: &BTreeSet<&NsName>,
        namespaces: &BTreeSet<&str>,
        pods: bool,
    ) -> Self {
        let ttl = self.meta.config.record_ttl();
        let zone = &self.meta.zone;
        let mut changes = Changes {
            shift: self.shift,
            by_shard: HashMap::new(),
        };
        let mut index = self.services.clone();
        // The IPs whose PTRs may change: the old addresses and the new.
        let mut ips: Vec<IpAddr> = Vec::new();
        let mut new_ptrs: BTreeMap<IpAddr, Vec<WireName>> = BTreeMap::new();
        // The names of the rebuilt Services: PTR targets at or below them
        // are replaced.
        let mut rebuilt: HashSet<Vec<u8>> = HashSet::new();
        for &key in services {
            let svc = cluster.service(key);
            let held = index
                .get(&key.namespace)
                .is_some_and(|s| s.contains(key.name.as_str()));
            if held != svc.is_some() {
                index.modify(&key.namespace, BTreeSet::is_empty, |set| {
                    if svc.is_some() {
                        set.insert(key.name.as_str().into());
                    } else {
                        set.remove(key.name.as_str());
                    }
                });
            }
            let Some(svc_name) = service_name(key, zone) else {
                continue;
            };
            ips.extend(self.addresses_under(&svc_name));
            let fwd = changes.at(name::hash(svc_name.as_bytes()));
            fwd.remove_under.push(svc_name.clone());
            if let Some(svc) = svc {
                let recs = service_records(cluster, svc, zone, ttl);
                fwd.add.extend(recs.nodes.iter().map(pending));
                for (ip, target) in recs.ptrs {
                    ips.push(ip);
                    new_ptrs.entry(ip).or_default().push(target);
                }
            }
            rebuilt.insert(svc_name.as_bytes().to_vec());
        }
        // The namespaces' empty non-terminals exist while the cluster
        // knows the namespace, as in a full build.
        for &ns in namespaces {
            let wanted = cluster.namespace(ns).is_some();
            for ent in namespace_names(zone, ns, self.meta.config.pod_mode()) {
                let h = name::hash(ent.as_bytes());
                match (self.find(h, ent.as_bytes()).is_some(), wanted) {
                    (false, true) => changes.at(h).add.push(pending(&NodeSpec::empty(ent))),
                    (true, false) => changes.at(h).remove_keys.push(ent),
                    _ => {}
                }
            }
        }
        ips.sort();
        ips.dedup();
        for ip in ips {
            let key = name::reverse_name(ip);
            let h = name::hash(key.as_bytes());
            let mut targets: Vec<WireName> = self
                .find(h, key.as_bytes())
                .and_then(|n| n.rrset(rtype::PTR))
                .map(|set| {
                    set.answer_records()
                        .filter_map(|(_, rdata)| WireName::from_wire(rdata))
                        .filter(|t| !under_any(t.as_bytes(), &rebuilt))
                        .collect()
                })
                .unwrap_or_default();
            targets.extend(new_ptrs.remove(&ip).unwrap_or_default());
            let c = changes.at(h);
            c.remove_keys.push(key);
            if !targets.is_empty() {
                c.add.push(pending(&ptr_node(ip, targets, ttl)));
            }
        }
        let mut config = self.meta.config.clone();
        if self.meta.glue_from_cluster && services.contains(&kube_dns()) {
            let ips = cluster
                .service(&kube_dns())
                .map(|s| s.cluster_ips())
                .unwrap_or_default();
            config = config.nameservers(ips);
            let probe = Meta {
                config: config.clone(),
                zone: zone.clone(),
                zone_labels: self.meta.zone_labels,
                serial: self.meta.serial,
                soa: self.meta.soa.clone(),
                glue_from_cluster: true,
            };
            for spec in apex_nodes(&probe) {
                let c = changes.at(name::hash(spec.key.as_bytes()));
                c.remove_keys.push(spec.key.clone());
                c.add.push(pending(&spec));
            }
        }
        let mut shards: Vec<Arc<Shard>> = self.shards.to_vec();
        for (idx, change) in changes.by_shard {
            if let Some(old) = shards.get(idx) {
                shards[idx] = Arc::new(change.apply(old));
            }
        }
        let mut pod_index = self.pods.clone();
        if pods && self.meta.config.pod_mode() == PodMode::Verified {
            for &ns in namespaces {
                pod_index.set(ns, namespace_pods(cluster, ns));
            }
        }
        let serial = match config.fixed_serial() {
            Some(s) => s,
            None => unix_time().max(self.meta.serial.wrapping_add(1)),
        };
        let meta = Meta {
            soa: soas(&config, zone, serial),
            config,
            zone: zone.clone(),
            zone_labels: self.meta.zone_labels,
            serial,
            glue_from_cluster: self.meta.glue_from_cluster,
        };
        Self {
            meta: Arc::new(meta),
            shards: shards.into(),
            shift: self.shift,
            pods: pod_index,
            services: index,
        }
    }

    /// The A/AAAA addresses stored at `name`.
    fn addresses_under(&self, name: &WireName) -> Vec<IpAddr> {
        let Some(node) = self.find(name::hash(name.as_bytes()), name.as_bytes()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for set in node
            .rrsets()
            .filter(|s| s.qtype == rtype::A || s.qtype == rtype::AAAA)
        {
            for (_, rdata) in set.answer_records() {
                if let Ok(b) = <[u8; 4]>::try_from(rdata) {
                    out.push(IpAddr::from(b));
                } else if let Ok(b) = <[u8; 16]>::try_from(rdata) {
                    out.push(IpAddr::from(b));
                }
            }
        }
        out
    }
}

/// Whether `name` is one of `names` or below one of them.
fn under_any(name: &[u8], names: &HashSet<Vec<u8>>) -> bool {
    name::label_starts(name).any(|at| names.contains(&name[at..]))
}

/// What an update does to each shard it touches.
struct Changes {
    shift: u32,
    by_shard: HashMap<usize, ShardChange>,
}

impl Changes {
    /// The change of the shard that holds names of shard hash `hash`.
    fn at(&mut self, hash: u64) -> &mut ShardChange {
        self.by_shard
            .entry((hash >> self.shift) as usize)
            .or_default()
    }
}

/// What an update does to one shard.
#[derive(Default)]
struct ShardChange {
    /// Drop every name at or below these.
    remove_under: Vec<WireName>,
    /// Drop these names.
    remove_keys: Vec<WireName>,
    add: Vec<Pending>,
}

impl ShardChange {
    fn apply(&self, old: &Shard) -> Shard {
        let removed: HashSet<&[u8]> = self.remove_keys.iter().map(WireName::as_bytes).collect();
        let mut b = ShardBuilder::default();
        for node in old.nodes() {
            let key = node.key();
            if removed.contains(key)
                || self
                    .remove_under
                    .iter()
                    .any(|u| is_subdomain(key, u.as_bytes()))
            {
                continue;
            }
            b.push(name::hash(key), node.bytes());
        }
        for p in &self.add {
            b.push(p.hash, &p.blob);
        }
        b.finish()
    }
}

fn unix_time() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

impl Meta {
    fn new(cluster: &Cluster, mut config: ZoneConfig, serial: Option<u32>) -> Result<Self, Error> {
        let zone = WireName::from_text(config.zone_name())
            .filter(|z| z.label_count() > 0)
            .ok_or_else(|| Error::InvalidConfig(format!("zone {:?}", config.zone_name())))?;
        if config.record_ttl() > 3600 {
            return Err(Error::InvalidConfig(format!(
                "ttl {} is not in 0..=3600",
                config.record_ttl()
            )));
        }
        let glue_from_cluster = config.nameserver_ips().is_empty();
        if glue_from_cluster && let Some(svc) = cluster.service(&kube_dns()) {
            config = config.nameservers(svc.cluster_ips());
        }
        let serial = serial.or(config.fixed_serial()).unwrap_or_else(unix_time);
        Ok(Self {
            zone_labels: zone.label_count(),
            soa: soas(&config, &zone, serial),
            zone,
            serial,
            config,
            glue_from_cluster,
        })
    }
}

/// The SOA records (after the owner) for the zone and the reverse zones
/// (`in-addr.arpa`, `ip6.arpa`): each names `ns.dns.<zone>` and
/// `hostmaster.<zone>` under its own zone, as CoreDNS's `kubernetes`
/// plugin does for every zone it serves (`plugin.SOA`, pinned by its
/// `reverse_test.go`).
fn soas(config: &ZoneConfig, zone: &WireName, serial: u32) -> [Vec<u8>; 3] {
    let ttl = config.record_ttl();
    let soa = |zone: Option<WireName>| {
        let mname = zone
            .as_ref()
            .and_then(|z| z.prepend("dns"))
            .and_then(|n| n.prepend("ns"));
        let rname = zone.as_ref().and_then(|z| z.prepend("hostmaster"));
        let mut rdata = Vec::new();
        for n in [mname, rname] {
            rdata.extend_from_slice(n.as_ref().map_or(&[0u8][..], WireName::as_bytes));
        }
        for v in [serial, SOA_TIMERS[0], SOA_TIMERS[1], SOA_TIMERS[2], ttl] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        let mut rr = Vec::new();
        rr.extend_from_slice(&rtype::SOA.to_be_bytes());
        rr.extend_from_slice(&1u16.to_be_bytes());
        rr.extend_from_slice(&ttl.min(300).to_be_bytes());
        rr.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        rr.extend_from_slice(&rdata);
        rr
    };
    [
        soa(Some(zone.clone())),
        soa(WireName::from_wire(name::IN_ADDR_ARPA)),
        soa(WireName::from_wire(name::IP6_ARPA)),
    ]
}

/// `<ns>.svc.<zone>`, and `<ns>.pod.<zone>` when pod records are on:
/// with pods disabled CoreDNS answers NXDOMAIN for every name below
/// `pod.<zone>` (`findPods`), the namespace's included.
fn namespace_names(zone: &WireName, ns: &str, pods: PodMode) -> Vec<WireName> {
    let kinds: &[&str] = match pods {
        PodMode::Disabled => &["svc"],
        _ => &["svc", "pod"],
    };
    kinds
        .iter()
        .filter_map(|s| zone.prepend(s)?.prepend(ns))
        .collect()
}

/// The apex, `dns-version`, `ns.dns`, and the empty non-terminals.
fn global_nodes(meta: &Meta, cluster: &Cluster) -> Vec<NodeSpec> {
    let zone = &meta.zone;
    let mut specs = apex_nodes(meta);
    if let Some(v) = zone.prepend("dns-version") {
        let mut node = NodeSpec::empty(v.clone());
        node.flags = FLAG_MISSING_NXDOMAIN;
        node.push_answer(Rr {
            owner: v,
            ttl: DNS_VERSION_TTL,
            data: RData::Txt(b"1.1.0".to_vec()),
        });
        specs.push(node);
    }
    for ent in ["dns", "svc", "pod"] {
        specs.extend(zone.prepend(ent).map(NodeSpec::empty));
    }
    for ns in cluster.namespaces() {
        specs.extend(
            namespace_names(zone, &ns.metadata.name, meta.config.pod_mode())
                .into_iter()
                .map(NodeSpec::empty),
        );
    }
    specs
}

/// The apex (with its NS rrset and glue) and `ns.dns.<zone>`: the names
/// the nameserver addresses appear in.
fn apex_nodes(meta: &Meta) -> Vec<NodeSpec> {
    let zone = &meta.zone;
    let ttl = meta.config.record_ttl();
    let mut specs = Vec::new();
    let ns_name = zone.prepend("dns").and_then(|n| n.prepend("ns"));
    let glue: Vec<Rr> = ns_name
        .iter()
        .flat_map(|n| {
            meta.config.nameserver_ips().iter().map(|&ip| Rr {
                owner: n.clone(),
                ttl,
                data: match ip {
                    IpAddr::V4(v4) => RData::A(v4),
                    IpAddr::V6(v6) => RData::Aaaa(v6),
                },
            })
        })
        .collect();
    let mut apex = NodeSpec::empty(zone.clone());
    apex.flags = FLAG_APEX;
    if let Some(ns) = &ns_name {
        apex.rrsets.push(RrsetSpec {
            qtype: rtype::NS,
            answers: vec![Rr {
                owner: zone.clone(),
                ttl,
                data: RData::Ns(ns.clone()),
            }],
            additionals: glue.clone(),
        });
        let mut nsnode = NodeSpec::empty(ns.clone());
        for rr in glue {
            nsnode.push_answer(rr);
        }
        specs.push(nsnode);
    }
    specs.push(apex);
    specs
}

/// The PTR node of an IP.
fn ptr_node(ip: IpAddr, mut targets: Vec<WireName>, ttl: u32) -> NodeSpec {
    targets.sort();
    targets.dedup();
    let key = name::reverse_name(ip);
    let mut node = NodeSpec::empty(key.clone());
    for t in targets {
        node.push_answer(Rr {
            owner: key.clone(),
            ttl,
            data: RData::Ptr(t),
        });
    }
    node
}

fn pod_index(cluster: &Cluster, mode: PodMode, bits: u32) -> PodIndex {
    let mut idx = PodIndex::new(bits);
    if mode != PodMode::Verified {
        return idx;
    }
    for ns in cluster.namespaces() {
        let name = &ns.metadata.name;
        idx.set(name, namespace_pods(cluster, name));
    }
    idx
}

/// The IPs of the pods of `namespace` that own them (not finished, not
/// on the host network); `None` when there are none.
fn namespace_pods(cluster: &Cluster, namespace: &str) -> Option<BTreeSet<IpAddr>> {
    let ips: BTreeSet<IpAddr> = cluster
        .pods_in(namespace)
        .filter(|p| {
            p.metadata.namespace_or_default() == namespace
                && !p.is_finished()
                && !p.spec.host_network
        })
        .flat_map(|p| p.ips())
        .collect();
    (!ips.is_empty()).then_some(ips)
}
