//! [`Zone`]: the pre-encoded cluster zone, built from a [`Cluster`] and
//! updated one Service at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8snet_model::{Cluster, NsName};

use crate::Error;
use crate::config::{DNS_VERSION_TTL, PodMode, ZoneConfig};
use crate::encode::{
    FLAG_APEX, FLAG_MISSING_NXDOMAIN, NodeSpec, RData, Rr, RrsetSpec, encode_node, rtype,
};
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
}

/// The pod IPs of each namespace, for `pods verified`.
#[derive(Debug, Default)]
pub(crate) struct PodIndex {
    pub(crate) by_ip: HashMap<IpAddr, Vec<Box<str>>>,
}

/// The cluster DNS zone: every answer pre-encoded, ready to be copied
/// into a response by [`Zone::answer`].
///
/// A `Zone` is an immutable snapshot and cheap to clone (reference
/// counts). Names are spread over shards, and the names of one Service
/// share a shard, so [`Zone::update_service`] builds a new snapshot that
/// shares every untouched shard with the old one; readers of the old
/// snapshot are never disturbed. [`LiveZone`](crate::LiveZone) publishes
/// snapshots to serving threads.
///
/// `Display` lists the records in zone-file form.
#[derive(Debug, Clone)]
pub struct Zone {
    pub(crate) meta: Arc<Meta>,
    pub(crate) shards: Arc<[Arc<Shard>]>,
    pub(crate) shift: u32,
    pub(crate) pods: Arc<PodIndex>,
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
        for svc in cluster.services() {
            let Some(svc_name) = service_name(&key_of(svc), &meta.zone) else {
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
            pods: Arc::new(pod_index(cluster, config.pod_mode())),
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
        let shard = self.shards.get((shard_hash >> self.shift) as usize)?;
        shard.find(name::hash(key), key)
    }

    /// A new snapshot in which one Service's names (its addresses, SRV,
    /// endpoint names, and the PTRs of its IPs) reflect `cluster`; a
    /// Service missing from `cluster` is removed. Only the shards holding
    /// those names are rebuilt; the rest are shared with `self`.
    pub fn update_service(&self, cluster: &Cluster, service: &NsName) -> Self {
        let ttl = self.meta.config.record_ttl();
        let Some(svc_name) = service_name(service, &self.meta.zone) else {
            return self.clone();
        };
        let svc_hash = name::hash(svc_name.as_bytes());
        // The IPs whose PTRs may change: the old addresses and the new.
        let mut ips: Vec<IpAddr> = self.addresses_under(&svc_name);
        let mut new_ptrs: BTreeMap<IpAddr, Vec<WireName>> = BTreeMap::new();
        let mut changes: HashMap<usize, ShardChange> = HashMap::new();
        let fwd = changes
            .entry((svc_hash >> self.shift) as usize)
            .or_default();
        fwd.remove_under.push(svc_name.clone());
        if let Some(svc) = cluster.service(service) {
            let recs = service_records(cluster, svc, &self.meta.zone, ttl);
            fwd.add.extend(recs.nodes.iter().map(pending));
            for (ip, target) in recs.ptrs {
                ips.push(ip);
                new_ptrs.entry(ip).or_default().push(target);
            }
            // The namespace's empty non-terminals.
            for ent in namespace_names(&self.meta.zone, &service.namespace) {
                let h = name::hash(ent.as_bytes());
                if self.find(h, ent.as_bytes()).is_none() {
                    let c = changes.entry((h >> self.shift) as usize).or_default();
                    c.add.push(pending(&NodeSpec::empty(ent)));
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
                        .filter(|t| !is_subdomain(t.as_bytes(), svc_name.as_bytes()))
                        .collect()
                })
                .unwrap_or_default();
            targets.extend(new_ptrs.remove(&ip).unwrap_or_default());
            let c = changes.entry((h >> self.shift) as usize).or_default();
            c.remove_keys.push(key);
            if !targets.is_empty() {
                c.add.push(pending(&ptr_node(ip, targets, ttl)));
            }
        }
        let mut shards: Vec<Arc<Shard>> = self.shards.to_vec();
        for (idx, change) in changes {
            if let Some(old) = shards.get(idx) {
                shards[idx] = Arc::new(change.apply(old));
            }
        }
        let serial = match self.meta.config.fixed_serial() {
            Some(s) => s,
            None => unix_time().max(self.meta.serial.wrapping_add(1)),
        };
        let meta = Meta {
            config: self.meta.config.clone(),
            zone: self.meta.zone.clone(),
            zone_labels: self.meta.zone_labels,
            serial,
            soa: soas(&self.meta.config, &self.meta.zone, serial),
        };
        Self {
            meta: Arc::new(meta),
            shards: shards.into(),
            shift: self.shift,
            pods: self.pods.clone(),
        }
    }

    /// A new snapshot whose pod records (`pods verified`) reflect `cluster`.
    pub fn update_pods(&self, cluster: &Cluster) -> Self {
        let mut z = self.clone();
        z.pods = Arc::new(pod_index(cluster, self.meta.config.pod_mode()));
        z
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
        for (h, node) in old.nodes() {
            let key = node.key();
            if removed.contains(key)
                || self
                    .remove_under
                    .iter()
                    .any(|u| is_subdomain(key, u.as_bytes()))
            {
                continue;
            }
            b.push(h, node.bytes());
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
        if config.nameserver_ips().is_empty()
            && let Some(svc) = cluster.service(&NsName::new("kube-system", "kube-dns"))
        {
            config = config.nameservers(svc.cluster_ips());
        }
        let serial = serial.or(config.fixed_serial()).unwrap_or_else(unix_time);
        Ok(Self {
            zone_labels: zone.label_count(),
            soa: soas(&config, &zone, serial),
            zone,
            serial,
            config,
        })
    }
}

/// The SOA records (after the owner) for the zone and the reverse zones.
fn soas(config: &ZoneConfig, zone: &WireName, serial: u32) -> [Vec<u8>; 3] {
    let ttl = config.record_ttl();
    let mname = zone.prepend("dns").and_then(|n| n.prepend("ns"));
    let rname = zone.prepend("hostmaster");
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
    [rr.clone(), rr.clone(), rr]
}

/// `<ns>.svc.<zone>` and `<ns>.pod.<zone>`.
fn namespace_names(zone: &WireName, ns: &str) -> Vec<WireName> {
    ["svc", "pod"]
        .iter()
        .filter_map(|s| zone.prepend(s)?.prepend(ns))
        .collect()
}

/// The apex, `dns-version`, `ns.dns`, and the empty non-terminals.
fn global_nodes(meta: &Meta, cluster: &Cluster) -> Vec<NodeSpec> {
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
            namespace_names(zone, &ns.metadata.name)
                .into_iter()
                .map(NodeSpec::empty),
        );
    }
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

fn pod_index(cluster: &Cluster, mode: PodMode) -> PodIndex {
    let mut idx = PodIndex::default();
    if mode != PodMode::Verified {
        return idx;
    }
    for pod in cluster.pods() {
        if pod.is_finished() || pod.spec.host_network {
            continue;
        }
        let ns: Box<str> = pod
            .metadata
            .namespace_or_default()
            .to_ascii_lowercase()
            .into();
        for ip in pod.ips() {
            idx.by_ip.entry(ip).or_default().push(ns.clone());
        }
    }
    idx
}
