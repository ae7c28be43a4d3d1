//! One node's data plane, on a thread inside the node's namespace: the
//! Service load balancer and the network policy in nftables, the cluster
//! DNS on the kube-dns ClusterIP, and the ingress proxy on the node's
//! addresses. Each change of the snapshot goes through each crate's
//! update path: `Proxier::sync` diffs only the Service ports that changed,
//! `PolicySet::apply` recompiles the identities a change touches and
//! an `Enforcer` applies the ruleset's difference against the table it last
//! applied (no read-back), the zone rebuilds only the
//! changed Services' shards, and the proxy swaps its route table in place.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8snet::dns::{LiveZone, Zone, ZoneConfig};
use k8snet::ingress::proxy::{Proxy, ProxyConfig, Upstreams};
use k8snet::ingress::{ClassSelector, Router};
use k8snet::lb::health::{
    DEFAULT_HEALTH_TIMEOUT, HEALTHZ_PORT, ProxyHealth, ProxyHealthServer, ServiceHealthServer,
};
use k8snet::lb::linux::Proxier;
use k8snet::lb::{NodeContext, ServiceTable};
use k8snet::model::{Cluster, Kind, NsName, ObjectRef};
use k8snet::policy::{Enforcer, Options, PolicySet, RulesetOptions};
use k8snet_testnet::Netns;

use super::plan::{DNS_V4, DNS_V6, NodePlan, ZONE};

/// What one update cost, per component.
#[derive(Debug, Clone, Default)]
pub(crate) struct Applied {
    pub lb: Duration,
    pub policy: Duration,
    pub dns: Duration,
    pub ingress: Duration,
}

enum Msg {
    /// A new snapshot; `changed` lists what differs (`None`: everything).
    Update {
        cluster: Arc<Cluster>,
        changed: Option<Vec<ObjectRef>>,
        done: mpsc::Sender<anyhow::Result<Applied>>,
    },
    Stop,
}

/// A handle to a node's agent thread.
pub(crate) struct NodeAgent {
    pub name: String,
    tx: mpsc::Sender<Msg>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NodeAgent {
    /// Starts the node's components in its namespace with `cluster`.
    pub(crate) fn start(node: &NodePlan, cluster: Arc<Cluster>) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let node = node.clone();
        let name = node.name.clone();
        let thread = thread::Builder::new()
            .name(format!("agent {}", node.name))
            .spawn(move || {
                let ns = node.netns.clone();
                // Netns::run gives a thread inside the namespace; every
                // thread the components start from there stays in it.
                let r = Netns::named(&ns).run(move || match Components::start(&node, &cluster) {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c.serve(&rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                });
                if let Err(e) = r {
                    tracing::error!("agent thread of {ns}: {e}");
                }
            })?;
        let agent = Self {
            name: name.clone(),
            tx,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(agent),
            Ok(Err(e)) => Err(e.context(format!("node {name}"))),
            Err(_) => anyhow::bail!("node {name}: the agent thread ended before starting"),
        }
    }

    /// Applies a new snapshot and waits until the kernel and the servers
    /// hold it.
    pub(crate) fn update(
        &self,
        cluster: Arc<Cluster>,
        changed: Option<Vec<ObjectRef>>,
    ) -> anyhow::Result<Applied> {
        let (done, rx) = mpsc::channel();
        self.tx
            .send(Msg::Update {
                cluster,
                changed,
                done,
            })
            .ok()
            .context("the agent thread is gone")?;
        rx.recv().context("the agent thread is gone")?
    }

    /// Stops the servers and removes the node's nftables tables.
    pub(crate) fn stop(mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The kube-dns Service is served by the node itself (the DNS server on
/// the ClusterIP), so the load balancer leaves it alone.
fn without_cluster_dns(mut table: ServiceTable) -> ServiceTable {
    table.ports.retain(|p| !is_dns_ip(p.cluster_ip));
    table
}

fn is_dns_ip(ip: IpAddr) -> bool {
    ip == IpAddr::V4(DNS_V4) || ip == IpAddr::V6(DNS_V6)
}

/// The node's Service table.
pub(crate) fn lb_table(cluster: &Cluster, node: &str) -> anyhow::Result<ServiceTable> {
    let ctx = NodeContext::from_cluster(cluster, node)?;
    Ok(without_cluster_dns(k8snet::lb::plan(cluster, &ctx)))
}

/// The zone.
pub(crate) fn zone_config() -> ZoneConfig {
    ZoneConfig::new(ZONE).nameservers([IpAddr::V4(DNS_V4)])
}

/// The ingress routes and their upstreams.
pub(crate) fn ingress(cluster: &Cluster) -> (Router, Upstreams) {
    let router = Router::compile(cluster, &ClassSelector::default_class());
    let upstreams = Upstreams::build(cluster, &router);
    (router, upstreams)
}

struct Components {
    name: String,
    proxier: Proxier,
    /// healthCheckNodePort answers of `externalTrafficPolicy: Local` Services.
    service_health: ServiceHealthServer,
    /// kube-proxy's `/healthz` and `/livez` on port 10256.
    _healthz: ProxyHealthServer,
    /// Remembers the policy table it applied, so that an update is diffed
    /// without reading the table back from the kernel.
    enforcer: Enforcer,
    policy: PolicySet,
    dns: k8snet::dns::server::Server,
    proxy: Proxy,
}

impl Components {
    fn start(node: &NodePlan, cluster: &Cluster) -> anyhow::Result<Self> {
        let mut proxier = Proxier::new().context("opening nftables for the load balancer")?;
        let health = Arc::new(ProxyHealth::new(DEFAULT_HEALTH_TIMEOUT));
        proxier.set_health(health.clone());
        let table = lb_table(cluster, &node.name)?;
        proxier
            .sync(&table)
            .context("programming the Service load balancer")?;
        let ips = node.ips();
        let service_health = ServiceHealthServer::new(ips.to_vec(), health.clone())?;
        for e in service_health.sync_table(&table) {
            tracing::warn!("node {}: {e}", node.name);
        }
        let healthz = ProxyHealthServer::start(SocketAddr::new(ips[0], HEALTHZ_PORT), health)
            .context("starting the proxy's /healthz")?;
        let policy = PolicySet::compile(cluster, &Options::default());
        let nft = k8snet_nft::Nft::new().context("opening nftables for network policy")?;
        let mut enforcer = Enforcer::new(nft, RulesetOptions::default());
        enforcer
            .enforce(&policy)
            .context("programming network policy")?;
        let zone = Zone::build(cluster, &zone_config())?;
        let mut dns_cfg = k8snet::dns::server::ServerConfig::new(vec![
            SocketAddr::new(IpAddr::V4(DNS_V4), 53),
            SocketAddr::new(IpAddr::V6(DNS_V6), 53),
        ]);
        dns_cfg.udp_workers = 1;
        let dns = k8snet::dns::server::Server::start(&dns_cfg, LiveZone::new(zone), None)
            .context("starting the cluster DNS")?;
        let (router, upstreams) = ingress(cluster);
        let mut cfg = ProxyConfig::new(ips.iter().map(|ip| SocketAddr::new(*ip, 80)).collect())
            .tls_listen(ips.iter().map(|ip| SocketAddr::new(*ip, 443)).collect());
        cfg.workers = 1;
        let proxy = Proxy::start(cfg, router, upstreams).context("starting the ingress proxy")?;
        Ok(Self {
            name: node.name.clone(),
            proxier,
            service_health,
            _healthz: healthz,
            enforcer,
            policy,
            dns,
            proxy,
        })
    }

    fn serve(mut self, rx: &mpsc::Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Update {
                    cluster,
                    changed,
                    done,
                } => {
                    let _ = done.send(self.update(&cluster, changed.as_deref()));
                }
                Msg::Stop => break,
            }
        }
        self.proxy.shutdown();
        self.dns.shutdown();
        if let Err(e) = self.proxier.delete() {
            tracing::warn!("node {}: removing the load balancer table: {e}", self.name);
        }
        let empty = PolicySet::compile(&Cluster::new(), &Options::default());
        let _ = self.enforcer.enforce(&empty);
    }

    fn update(
        &mut self,
        cluster: &Cluster,
        changed: Option<&[ObjectRef]>,
    ) -> anyhow::Result<Applied> {
        let mut applied = Applied::default();
        let t = Instant::now();
        let table = lb_table(cluster, &self.name)?;
        self.proxier.sync(&table).context("load balancer")?;
        for e in self.service_health.sync_table(&table) {
            tracing::warn!("node {}: {e}", self.name);
        }
        applied.lb = t.elapsed();

        let t = Instant::now();
        match changed {
            Some(refs) => {
                for r in refs {
                    self.policy.apply(cluster, r);
                }
            }
            None => self.policy = PolicySet::compile(cluster, &Options::default()),
        }
        self.enforcer
            .enforce(&self.policy)
            .context("network policy")?;
        applied.policy = t.elapsed();

        let t = Instant::now();
        // What the zone must follow: Services (a changed slice's Service is
        // among its namespace's), namespaces, and pods per namespace; other
        // kinds do not touch the zone. Anything else: a full build.
        let mut services: BTreeSet<NsName> = BTreeSet::new();
        let mut namespaces: BTreeSet<String> = BTreeSet::new();
        let mut pod_namespaces: BTreeSet<String> = BTreeSet::new();
        let mut full = changed.is_none();
        for r in changed.unwrap_or_default() {
            let ns = r.namespace.clone().unwrap_or_default();
            match r.kind {
                Kind::Service => {
                    services.insert(NsName::new(ns, r.name.clone()));
                }
                Kind::EndpointSlice => services.extend(
                    cluster
                        .services_in(&ns)
                        .map(|s| NsName::new(ns.clone(), s.metadata.name.clone())),
                ),
                Kind::Pod => {
                    pod_namespaces.insert(ns);
                }
                Kind::Namespace => {
                    namespaces.insert(r.name.clone());
                }
                Kind::Node
                | Kind::NetworkPolicy
                | Kind::AdminNetworkPolicy
                | Kind::BaselineAdminNetworkPolicy
                | Kind::ClusterNetworkPolicy
                | Kind::Ingress
                | Kind::IngressClass
                | Kind::Secret => {}
                _ => full = true,
            }
        }
        let live = self.dns.zone();
        if full {
            let serial = live.snapshot().serial().wrapping_add(1);
            live.store(Zone::build(cluster, &zone_config().serial(serial))?);
        } else if !(services.is_empty() && namespaces.is_empty() && pod_namespaces.is_empty()) {
            // This thread is the zone's only writer.
            let mut z = live.snapshot().update_services(cluster, &services);
            for ns in &namespaces {
                z = z.update_namespace(cluster, ns);
            }
            for ns in &pod_namespaces {
                z = z.update_pods_in(cluster, ns);
            }
            live.store(z);
        }
        applied.dns = t.elapsed();

        let t = Instant::now();
        let (router, upstreams) = ingress(cluster);
        self.proxy.update(router, upstreams);
        applied.ingress = t.elapsed();
        Ok(applied)
    }
}
