//! [`Cluster`]: an indexed snapshot of the objects, updated incrementally.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::adminpolicy::{AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy};
use crate::core::{Namespace, Node, Pod, PodPhase, Secret, Service};
use crate::defaults::apply_defaults;
use crate::discovery::EndpointSlice;
use crate::error::Error;
use crate::load::Manifests;
use crate::meta::{NAMESPACE_NAME_LABEL, ObjectMeta, StringMap};
use crate::networking::{Ingress, IngressClass, NetworkPolicy};
use crate::object::{Kind, Object, ObjectRef};
use crate::validate::validate;

/// The key of a namespaced object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl NsName {
    /// A key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn of(meta: &ObjectMeta) -> Self {
        Self::new(meta.namespace_or_default(), meta.name.clone())
    }
}

impl std::fmt::Display for NsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A watch-style event an agent applies to a [`Cluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // events are consumed at once, never stored in bulk
pub enum Event {
    /// Added or modified.
    Upsert(Object),
    /// Deleted.
    Delete(ObjectRef),
}

/// What an event did. Anything but [`Change::Unchanged`] moves
/// [`Cluster::revision`], and `Unchanged` never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The object is new (a Namespace known so far only implicitly, because
    /// objects name it, counts as new when it is upserted).
    Added,
    /// The object replaced a different version, or a delete removed
    /// something (an object, or an unused implicit namespace).
    Modified,
    /// The object equals what was stored, or a delete found nothing to
    /// remove; nothing changed.
    Unchanged,
}

/// An indexed snapshot of the cluster's networking objects.
///
/// Objects are kept in name order (so every consumer's output is stable),
/// with indexes for what the data planes look up per packet or per event:
/// pods by IP and by namespace, services by IP, slices by service,
/// policies by namespace. [`Cluster::upsert`] and [`Cluster::delete`] keep
/// the indexes current, so an agent applies watch events without
/// rebuilding; an invalid object is refused and leaves the snapshot as it
/// was.
///
/// ```
/// use k8snet_model::{Cluster, Manifests, NsName};
/// let mut m = Manifests::new();
/// m.load_str("demo.yaml", "
/// apiVersion: v1
/// kind: Pod
/// metadata: {name: web-0, namespace: shop, labels: {app: web}}
/// spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
/// status: {phase: Running, podIP: 198.18.0.2}
/// ---
/// apiVersion: v1
/// kind: Service
/// metadata: {name: web, namespace: shop}
/// spec: {clusterIP: 198.19.0.20, selector: {app: web}, ports: [{port: 80, targetPort: http}]}
/// ");
/// assert!(m.errors().is_empty());
/// let mut cluster = Cluster::from_manifests(&m);
/// cluster.derive_missing_endpoint_slices();
/// let pod = cluster.pod_by_ip("198.18.0.2".parse()?).unwrap();
/// assert_eq!(pod.metadata.name, "web-0");
/// let svc = NsName::new("shop", "web");
/// let slices: Vec<_> = cluster.slices_for_service(&svc).collect();
/// assert_eq!(slices[0].ports[0].port, Some(8080));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    namespaces: BTreeMap<String, Namespace>,
    /// Namespaces that exist only because an object names them.
    implicit_namespaces: BTreeSet<String>,
    nodes: BTreeMap<String, Node>,
    pods: BTreeMap<NsName, Pod>,
    services: BTreeMap<NsName, Service>,
    slices: BTreeMap<NsName, EndpointSlice>,
    ingresses: BTreeMap<NsName, Ingress>,
    ingress_classes: BTreeMap<String, IngressClass>,
    secrets: BTreeMap<NsName, Secret>,
    network_policies: BTreeMap<NsName, NetworkPolicy>,
    admin_network_policies: BTreeMap<String, AdminNetworkPolicy>,
    baseline_admin_network_policies: BTreeMap<String, BaselineAdminNetworkPolicy>,
    cluster_network_policies: BTreeMap<String, ClusterNetworkPolicy>,

    // Objects of one namespace are a contiguous range of their map (keys
    // sort by namespace first), so "by namespace" needs no index of its own.
    // Every object that claims an IP is kept (see `Owners`), so deleting
    // one of two claimants leaves the other findable.
    pods_by_ip: HashMap<IpAddr, Owners<(IpClaim, NsName)>>,
    services_by_ip: HashMap<IpAddr, Owners<NsName>>,
    slices_by_service: HashMap<NsName, BTreeSet<String>>,
    revision: u64,
}

impl Cluster {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the valid objects of a manifest set.
    pub fn from_manifests(manifests: &Manifests) -> Self {
        let mut c = Self::new();
        for l in manifests.objects() {
            c.insert_trusted(l.object.clone());
        }
        c
    }

    /// A snapshot of objects that are already defaulted and validated
    /// (e.g. from [`Manifests::into_objects`]).
    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> Self {
        let mut c = Self::new();
        for o in objects {
            c.insert_trusted(o);
        }
        c
    }

    /// A counter bumped by every change, for consumers that cache.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Applies a watch event. The change it reports agrees with the
    /// revision: [`Change::Unchanged`] exactly when the revision stayed.
    ///
    /// # Errors
    /// As [`Cluster::upsert`].
    pub fn apply(&mut self, event: Event) -> Result<Change, Error> {
        match event {
            Event::Upsert(o) => self.upsert(o),
            Event::Delete(r) => {
                // A delete may change the snapshot without returning an
                // object (forgetting an unused implicit namespace).
                let before = self.revision;
                self.delete(&r);
                Ok(if self.revision == before {
                    Change::Unchanged
                } else {
                    Change::Modified
                })
            }
        }
    }

    /// Adds or replaces an object after defaulting and validating it.
    ///
    /// # Errors
    /// [`Error::Rejected`] with every field error when the object is
    /// invalid; the snapshot is then unchanged.
    pub fn upsert(&mut self, mut object: Object) -> Result<Change, Error> {
        apply_defaults(&mut object);
        let errors = validate(&object);
        if !errors.is_empty() {
            return Err(Error::Rejected {
                object: object.reference(),
                errors,
            });
        }
        Ok(self.insert_trusted(object))
    }

    /// Inserts an object known to be defaulted and valid.
    fn insert_trusted(&mut self, object: Object) -> Change {
        if object.kind().is_namespaced() {
            self.ensure_namespace(object.meta().namespace_or_default());
        }
        let change = match object {
            Object::Namespace(ns) => {
                // A namespace known only implicitly becomes an object: new
                // to `objects()` and to `delete`, whatever its content.
                let was_implicit = self.implicit_namespaces.remove(&ns.metadata.name);
                match put(&mut self.namespaces, ns.metadata.name.clone(), ns) {
                    _ if was_implicit => Change::Added,
                    change => change,
                }
            }
            Object::Node(n) => put(&mut self.nodes, n.metadata.name.clone(), n),
            // One map lookup each: the entry decides between added,
            // unchanged and modified, and the old object unindexes itself.
            Object::Pod(p) => match self.pods.entry(NsName::of(&p.metadata)) {
                Entry::Occupied(e) if *e.get() == p => return Change::Unchanged,
                Entry::Occupied(mut e) => {
                    unindex_pod(&mut self.pods_by_ip, e.key(), e.get());
                    index_pod(&mut self.pods_by_ip, e.key(), &p);
                    e.insert(p);
                    Change::Modified
                }
                Entry::Vacant(e) => {
                    index_pod(&mut self.pods_by_ip, e.key(), &p);
                    e.insert(p);
                    Change::Added
                }
            },
            Object::Service(s) => match self.services.entry(NsName::of(&s.metadata)) {
                Entry::Occupied(e) if *e.get() == s => return Change::Unchanged,
                Entry::Occupied(mut e) => {
                    unindex_service(&mut self.services_by_ip, e.key(), e.get());
                    index_service(&mut self.services_by_ip, e.key(), &s);
                    e.insert(s);
                    Change::Modified
                }
                Entry::Vacant(e) => {
                    index_service(&mut self.services_by_ip, e.key(), &s);
                    e.insert(s);
                    Change::Added
                }
            },
            Object::EndpointSlice(s) => match self.slices.entry(NsName::of(&s.metadata)) {
                Entry::Occupied(e) if *e.get() == s => return Change::Unchanged,
                Entry::Occupied(mut e) => {
                    unindex_slice(&mut self.slices_by_service, e.key(), e.get());
                    index_slice(&mut self.slices_by_service, e.key(), &s);
                    e.insert(s);
                    Change::Modified
                }
                Entry::Vacant(e) => {
                    index_slice(&mut self.slices_by_service, e.key(), &s);
                    e.insert(s);
                    Change::Added
                }
            },
            Object::Ingress(i) => put(&mut self.ingresses, NsName::of(&i.metadata), i),
            Object::IngressClass(c) => put(&mut self.ingress_classes, c.metadata.name.clone(), c),
            Object::Secret(s) => put(&mut self.secrets, NsName::of(&s.metadata), s),
            Object::NetworkPolicy(p) => put(&mut self.network_policies, NsName::of(&p.metadata), p),
            Object::AdminNetworkPolicy(p) => {
                put(&mut self.admin_network_policies, p.metadata.name.clone(), p)
            }
            Object::BaselineAdminNetworkPolicy(p) => put(
                &mut self.baseline_admin_network_policies,
                p.metadata.name.clone(),
                p,
            ),
            Object::ClusterNetworkPolicy(p) => put(
                &mut self.cluster_network_policies,
                p.metadata.name.clone(),
                p,
            ),
        };
        if change != Change::Unchanged {
            self.revision += 1;
        }
        change
    }

    /// Removes an object; returns it if it was present.
    ///
    /// Deleting a Namespace known only implicitly returns nothing (it was
    /// never an object) but forgets it when no object is left in it; that
    /// moves the revision, and [`Cluster::apply`] reports it as
    /// [`Change::Modified`].
    pub fn delete(&mut self, r: &ObjectRef) -> Option<Object> {
        let key = NsName::new(
            r.namespace
                .as_deref()
                .unwrap_or(crate::meta::DEFAULT_NAMESPACE),
            r.name.clone(),
        );
        let removed: Option<Object> = match r.kind {
            Kind::Namespace => {
                // An implicit namespace was never stored as an object: there
                // is nothing to return, but an unused one is forgotten.
                let implicit = self.implicit_namespaces.remove(&r.name);
                let ns = self.namespaces.remove(&r.name);
                // A namespace that still holds objects stays known
                // (implicitly) so their namespace selectors keep working.
                if ns.is_some() && self.namespace_in_use(&r.name) {
                    self.ensure_namespace(&r.name);
                } else if implicit && ns.is_some() {
                    self.revision += 1;
                }
                ns.filter(|_| !implicit).map(Object::from)
            }
            Kind::Node => self.nodes.remove(&r.name).map(Object::from),
            Kind::Pod => {
                self.unindex_pod(&key);
                self.pods.remove(&key).map(Object::from)
            }
            Kind::Service => {
                self.unindex_service(&key);
                self.services.remove(&key).map(Object::from)
            }
            Kind::EndpointSlice => {
                self.unindex_slice(&key);
                self.slices.remove(&key).map(Object::from)
            }
            Kind::Ingress => self.ingresses.remove(&key).map(Object::from),
            Kind::IngressClass => self.ingress_classes.remove(&r.name).map(Object::from),
            Kind::Secret => self.secrets.remove(&key).map(Object::from),
            Kind::NetworkPolicy => self.network_policies.remove(&key).map(Object::from),
            Kind::AdminNetworkPolicy => self
                .admin_network_policies
                .remove(&r.name)
                .map(Object::from),
            Kind::BaselineAdminNetworkPolicy => self
                .baseline_admin_network_policies
                .remove(&r.name)
                .map(Object::from),
            Kind::ClusterNetworkPolicy => self
                .cluster_network_policies
                .remove(&r.name)
                .map(Object::from),
        };
        if removed.is_some() {
            self.revision += 1;
        }
        removed
    }

    fn namespace_in_use(&self, ns: &str) -> bool {
        in_namespace(&self.pods, ns).next().is_some()
            || in_namespace(&self.services, ns).next().is_some()
            || in_namespace(&self.network_policies, ns).next().is_some()
            || in_namespace(&self.slices, ns).next().is_some()
            || in_namespace(&self.ingresses, ns).next().is_some()
            || in_namespace(&self.secrets, ns).next().is_some()
    }

    fn ensure_namespace(&mut self, name: &str) {
        if !self.namespaces.contains_key(name) {
            let mut ns = Namespace {
                metadata: ObjectMeta::cluster(name),
            };
            ns.metadata
                .labels
                .insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
            self.namespaces.insert(name.to_string(), ns);
            self.implicit_namespaces.insert(name.to_string());
        }
    }

    fn unindex_pod(&mut self, key: &NsName) {
        if let Some(old) = self.pods.get(key) {
            unindex_pod(&mut self.pods_by_ip, key, old);
        }
    }

    fn unindex_service(&mut self, key: &NsName) {
        if let Some(old) = self.services.get(key) {
            unindex_service(&mut self.services_by_ip, key, old);
        }
    }

    fn unindex_slice(&mut self, key: &NsName) {
        if let Some(old) = self.slices.get(key) {
            unindex_slice(&mut self.slices_by_service, key, old);
        }
    }

    // ------------------------------------------------------------ queries

    /// A namespace (explicit, or implied by an object in it).
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.get(name)
    }

    /// All namespaces, by name.
    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces.values()
    }

    /// Whether a namespace exists only because objects name it.
    pub fn is_implicit_namespace(&self, name: &str) -> bool {
        self.implicit_namespaces.contains(name)
    }

    /// The labels of a namespace (an unknown namespace has none).
    pub fn namespace_labels(&self, name: &str) -> Option<&StringMap> {
        self.namespaces.get(name).map(|n| &n.metadata.labels)
    }

    /// A node.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// All nodes, by name.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// A pod.
    pub fn pod(&self, key: &NsName) -> Option<&Pod> {
        self.pods.get(key)
    }

    /// All pods, by namespace and name.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    /// The number of pods.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The pods of a namespace, by name.
    pub fn pods_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
        in_namespace(&self.pods, namespace)
    }

    /// The services of a namespace, by name.
    pub fn services_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        in_namespace(&self.services, namespace)
    }

    /// The (running, pod-network) pod that owns an IP.
    ///
    /// Finished (Succeeded or Failed) and host-network pods own no IP.
    /// When several pods claim one (a pod being replaced and its
    /// successor, or manifests that reuse an address), the answer is the
    /// same whatever order they were upserted and deleted in: a pod that is
    /// not terminating before one that is, then a Running pod before one in
    /// another phase, then the first by namespace and name.
    ///
    /// The claimants of an IP are kept in that order as pods are upserted
    /// and deleted, so a lookup costs one hash and one map lookup however
    /// many pods claim the IP (it suits a per-packet path).
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        let (_, key) = self.pods_by_ip.get(&ip)?.first()?;
        self.pods.get(key)
    }

    /// A service.
    pub fn service(&self, key: &NsName) -> Option<&Service> {
        self.services.get(key)
    }

    /// All services, by namespace and name.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// The service that owns a cluster IP; when several claim it (which the
    /// apiserver's allocator never allows), the first by namespace and
    /// name, whatever order they were upserted and deleted in. The
    /// claimants are kept in that order, so a lookup never scans them.
    pub fn service_by_ip(&self, ip: IpAddr) -> Option<&Service> {
        self.services_by_ip
            .get(&ip)
            .and_then(|owners| owners.first())
            .and_then(|k| self.services.get(k))
    }

    /// An EndpointSlice.
    pub fn endpoint_slice(&self, key: &NsName) -> Option<&EndpointSlice> {
        self.slices.get(key)
    }

    /// All EndpointSlices.
    pub fn endpoint_slices(&self) -> impl Iterator<Item = &EndpointSlice> {
        self.slices.values()
    }

    /// The EndpointSlices of a service, by name.
    pub fn slices_for_service(&self, service: &NsName) -> impl Iterator<Item = &EndpointSlice> {
        self.slices_by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(move |n| {
                self.slices
                    .get(&NsName::new(service.namespace.clone(), n.clone()))
            })
    }

    /// An Ingress.
    pub fn ingress(&self, key: &NsName) -> Option<&Ingress> {
        self.ingresses.get(key)
    }

    /// All Ingresses.
    pub fn ingresses(&self) -> impl Iterator<Item = &Ingress> {
        self.ingresses.values()
    }

    /// An IngressClass (cluster-scoped).
    pub fn ingress_class(&self, name: &str) -> Option<&IngressClass> {
        self.ingress_classes.get(name)
    }

    /// All IngressClasses.
    pub fn ingress_classes(&self) -> impl Iterator<Item = &IngressClass> {
        self.ingress_classes.values()
    }

    /// A (TLS) Secret.
    pub fn secret(&self, key: &NsName) -> Option<&Secret> {
        self.secrets.get(key)
    }

    /// A NetworkPolicy.
    pub fn network_policy(&self, key: &NsName) -> Option<&NetworkPolicy> {
        self.network_policies.get(key)
    }

    /// All NetworkPolicies.
    pub fn network_policies(&self) -> impl Iterator<Item = &NetworkPolicy> {
        self.network_policies.values()
    }

    /// The NetworkPolicies of a namespace.
    pub fn network_policies_in<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a NetworkPolicy> + 'a {
        in_namespace(&self.network_policies, namespace)
    }

    /// An AdminNetworkPolicy (cluster-scoped).
    pub fn admin_network_policy(&self, name: &str) -> Option<&AdminNetworkPolicy> {
        self.admin_network_policies.get(name)
    }

    /// All AdminNetworkPolicies.
    pub fn admin_network_policies(&self) -> impl Iterator<Item = &AdminNetworkPolicy> {
        self.admin_network_policies.values()
    }

    /// The BaselineAdminNetworkPolicy (the singleton `default`), if any.
    pub fn baseline_admin_network_policy(&self) -> Option<&BaselineAdminNetworkPolicy> {
        self.baseline_admin_network_policies.get("default")
    }

    /// A ClusterNetworkPolicy (cluster-scoped).
    pub fn cluster_network_policy(&self, name: &str) -> Option<&ClusterNetworkPolicy> {
        self.cluster_network_policies.get(name)
    }

    /// All ClusterNetworkPolicies.
    pub fn cluster_network_policies(&self) -> impl Iterator<Item = &ClusterNetworkPolicy> {
        self.cluster_network_policies.values()
    }

    /// Every object, as [`Object`]s (namespaces first, then by kind).
    pub fn objects(&self) -> Vec<Object> {
        let mut out: Vec<Object> = Vec::new();
        out.extend(
            self.namespaces
                .iter()
                .filter(|(n, _)| !self.implicit_namespaces.contains(*n))
                .map(|(_, v)| v.clone().into()),
        );
        out.extend(self.nodes.values().cloned().map(Object::from));
        out.extend(self.pods.values().cloned().map(Object::from));
        out.extend(self.services.values().cloned().map(Object::from));
        out.extend(self.slices.values().cloned().map(Object::from));
        out.extend(self.ingress_classes.values().cloned().map(Object::from));
        out.extend(self.ingresses.values().cloned().map(Object::from));
        out.extend(self.secrets.values().cloned().map(Object::from));
        out.extend(self.network_policies.values().cloned().map(Object::from));
        out.extend(
            self.admin_network_policies
                .values()
                .cloned()
                .map(Object::from),
        );
        out.extend(
            self.baseline_admin_network_policies
                .values()
                .cloned()
                .map(Object::from),
        );
        out.extend(
            self.cluster_network_policies
                .values()
                .cloned()
                .map(Object::from),
        );
        out
    }
}

/// The values of one namespace: keys sort by namespace first, so they are
/// one contiguous range starting at `(namespace, "")`.
fn in_namespace<'a, V>(
    map: &'a BTreeMap<NsName, V>,
    namespace: &'a str,
) -> impl Iterator<Item = &'a V> + 'a {
    map.range(NsName::new(namespace, String::new())..)
        .take_while(move |(k, _)| k.namespace == namespace)
        .map(|(_, v)| v)
}

/// The objects that claim one IP, sorted (the owner first) and without
/// repeats. Almost always exactly one, so a vector (one small allocation)
/// rather than a set.
type Owners<T> = Vec<T>;

/// How strongly a pod claims its IPs when several pods claim one: the
/// lesser claim owns it (a pod that is not terminating before one that
/// is, then a Running pod before one in another phase); equal claims go to
/// the first pod by namespace and name. This is the rule of
/// [`Cluster::pod_by_ip`]; other indexes of pods by IP (k8snet-policy's)
/// use it too, so that every crate names the same owner.
///
/// Derived from the pod alone, so an index can find the entry it made for
/// a pod from the same pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpClaim {
    terminating: bool,
    not_running: bool,
}

impl IpClaim {
    /// The claim `pod` makes on its IPs.
    pub fn of(pod: &Pod) -> Self {
        Self {
            terminating: pod.is_terminating(),
            not_running: pod.status.phase != Some(PodPhase::Running),
        }
    }
}

fn add_owner<T: Ord>(by_ip: &mut HashMap<IpAddr, Owners<T>>, ip: IpAddr, owner: T) {
    let owners = by_ip.entry(ip).or_default();
    if let Err(at) = owners.binary_search(&owner) {
        owners.insert(at, owner);
    }
}

fn remove_owner<T: Ord>(by_ip: &mut HashMap<IpAddr, Owners<T>>, ip: IpAddr, owner: &T) {
    if let Some(owners) = by_ip.get_mut(&ip) {
        if let Ok(at) = owners.binary_search(owner) {
            owners.remove(at);
        }
        if owners.is_empty() {
            by_ip.remove(&ip);
        }
    }
}

fn index_pod(by_ip: &mut HashMap<IpAddr, Owners<(IpClaim, NsName)>>, key: &NsName, pod: &Pod) {
    // Finished pods no longer own their IPs (they may be reused).
    if !pod.is_finished() && !pod.spec.host_network {
        let claim = IpClaim::of(pod);
        for ip in pod.ips() {
            add_owner(by_ip, ip, (claim, key.clone()));
        }
    }
}

/// Drops `key`, under which `old` is stored, from the owners of its IPs.
fn unindex_pod(by_ip: &mut HashMap<IpAddr, Owners<(IpClaim, NsName)>>, key: &NsName, old: &Pod) {
    let ips = old.ips();
    if ips.is_empty() {
        return;
    }
    let owner = (IpClaim::of(old), key.clone());
    for ip in ips {
        remove_owner(by_ip, ip, &owner);
    }
}

fn index_service(by_ip: &mut HashMap<IpAddr, Owners<NsName>>, key: &NsName, service: &Service) {
    for ip in service.cluster_ips() {
        add_owner(by_ip, ip, key.clone());
    }
}

/// Drops `key`, under which `old` is stored, from the owners of its
/// cluster IPs.
fn unindex_service(by_ip: &mut HashMap<IpAddr, Owners<NsName>>, key: &NsName, old: &Service) {
    for ip in old.cluster_ips() {
        remove_owner(by_ip, ip, key);
    }
}

fn index_slice(
    by_service: &mut HashMap<NsName, BTreeSet<String>>,
    key: &NsName,
    slice: &EndpointSlice,
) {
    if let Some(svc) = slice.service_name() {
        by_service
            .entry(NsName::new(key.namespace.clone(), svc))
            .or_default()
            .insert(key.name.clone());
    }
}

/// Drops `old`, the slice stored under `key`, from its Service's set.
fn unindex_slice(
    by_service: &mut HashMap<NsName, BTreeSet<String>>,
    key: &NsName,
    old: &EndpointSlice,
) {
    if let Some(svc) = old.service_name() {
        let svc_key = NsName::new(key.namespace.clone(), svc);
        if let Some(set) = by_service.get_mut(&svc_key) {
            set.remove(&key.name);
            if set.is_empty() {
                by_service.remove(&svc_key);
            }
        }
    }
}

fn put<K: Ord, V: PartialEq>(map: &mut BTreeMap<K, V>, key: K, value: V) -> Change {
    match map.entry(key) {
        Entry::Vacant(e) => {
            e.insert(value);
            Change::Added
        }
        Entry::Occupied(e) if *e.get() == value => Change::Unchanged,
        Entry::Occupied(mut e) => {
            e.insert(value);
            Change::Modified
        }
    }
}
