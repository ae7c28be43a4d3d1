//! The connectivity matrix: for every pair of pods (and external address
//! groups), the set of protocols and ports the first may open to the second.
//!
//! Each cell is exact, not sampled: the port space is cut at every boundary
//! a rule of either pod mentions (ranges, resolved named ports), and one
//! verdict per piece decides the whole piece.

pub(crate) mod external;
mod render;

use std::fmt;

use k8snet_model::{NsName, Protocol};

use crate::compile::PolicySet;
use crate::compile::policies::{EGRESS, INGRESS};
use crate::compile::world::resolve_named;
use crate::connset::ConnSet;
use crate::flow::{Endpoint, Flow, Verdict, proto};
use crate::options::SelfTraffic;

pub use self::external::IpRange;
pub use self::render::Format;

/// A row or column of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MatrixEndpoint {
    /// A pod.
    Pod(NsName),
    /// Addresses outside the pod network that every policy treats alike.
    External(IpRange),
}

impl fmt::Display for MatrixEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pod(p) => p.fmt(f),
            Self::External(r) => r.fmt(f),
        }
    }
}

/// Why part of a cell is allowed or denied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Segment {
    /// The protocols and ports this explanation covers.
    pub conns: ConnSet,
    /// Their verdict.
    pub verdict: Verdict,
    /// The source's egress decision, as text.
    pub egress: String,
    /// The destination's ingress decision, as text.
    pub ingress: String,
}

/// One pair's connectivity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cell {
    /// What is allowed.
    pub conns: ConnSet,
    /// With `explain`: every distinct reason, allowed parts first.
    pub segments: Vec<Segment>,
}

/// What to compute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MatrixOptions {
    /// Record why each part of each cell is allowed or denied.
    pub explain: bool,
    /// Only these protocols and ports (default: all).
    pub ports: Option<ConnSet>,
    /// Leave out the external address groups.
    pub pods_only: bool,
}

/// All-pairs connectivity of a [`PolicySet`].
///
/// ```
/// use k8snet_model::{Cluster, Manifests};
/// use k8snet_policy::{Format, Matrix, MatrixOptions, Options, PolicySet};
/// let mut m = Manifests::new();
/// m.load_str("m.yaml", "
/// apiVersion: v1
/// kind: Pod
/// metadata: {name: a, namespace: x, labels: {pod: a}}
/// status: {podIP: 198.18.0.1}
/// ---
/// apiVersion: v1
/// kind: Pod
/// metadata: {name: b, namespace: x, labels: {pod: b}}
/// status: {podIP: 198.18.0.2}
/// ---
/// apiVersion: networking.k8s.io/v1
/// kind: NetworkPolicy
/// metadata: {name: a-80, namespace: x}
/// spec: {podSelector: {matchLabels: {pod: a}}, ingress: [{ports: [{port: 80}]}]}
/// ");
/// let set = PolicySet::compile(&Cluster::from_manifests(&m), &Options::default());
/// let matrix = Matrix::build(&set, &MatrixOptions::default());
/// let csv = matrix.render(Format::Csv);
/// assert!(csv.contains("x/b,x/a,TCP 80\n"), "{csv}");
/// assert!(csv.contains("x/a,x/b,All Connections\n"), "{csv}");
/// assert!(csv.contains("0.0.0.0/0,x/a,TCP 80\n"), "{csv}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    endpoints: Vec<MatrixEndpoint>,
    /// Row-major; `None` where nothing is computed (external to external,
    /// and a pod to itself unless self traffic is evaluated).
    cells: Vec<Option<Cell>>,
    explained: bool,
}

impl Matrix {
    /// Computes the matrix.
    pub fn build(set: &PolicySet, options: &MatrixOptions) -> Self {
        let mut endpoints: Vec<MatrixEndpoint> = Vec::new();
        let mut probes: Vec<Endpoint> = Vec::new();
        let mut pods: Vec<&NsName> = set.world.pod_slots().map(|(_, s)| &s.key).collect();
        pods.sort();
        for p in pods {
            endpoints.push(MatrixEndpoint::Pod(p.clone()));
            probes.push(Endpoint::Pod(p.clone()));
        }
        if !options.pods_only {
            for (range, rep) in external::groups(set) {
                endpoints.push(MatrixEndpoint::External(range));
                probes.push(Endpoint::Ip(rep));
            }
        }
        let n = endpoints.len();
        let mut cells = Vec::with_capacity(n * n);
        for (i, src) in probes.iter().enumerate() {
            for (j, dst) in probes.iter().enumerate() {
                let both_external = matches!(
                    (&endpoints[i], &endpoints[j]),
                    (MatrixEndpoint::External(_), MatrixEndpoint::External(_))
                );
                let trivial_self = i == j && set.options.self_traffic == SelfTraffic::Allow;
                cells.push(if both_external || trivial_self {
                    None
                } else {
                    Some(cell(set, src, dst, options))
                });
            }
        }
        Self {
            endpoints,
            cells,
            explained: options.explain,
        }
    }

    /// The rows (and columns), pods by name, then external groups.
    pub fn endpoints(&self) -> &[MatrixEndpoint] {
        &self.endpoints
    }

    /// The cell of a (row, column) pair, if computed.
    pub fn cell(&self, src: usize, dst: usize) -> Option<&Cell> {
        let n = self.endpoints.len();
        if src >= n || dst >= n {
            return None;
        }
        self.cells[src * n + dst].as_ref()
    }

    /// What a pod (or group) may open to another, by display name
    /// (`ns/pod`, `0.0.0.0/0`).
    pub fn get(&self, src: &str, dst: &str) -> Option<&ConnSet> {
        let find = |name: &str| self.endpoints.iter().position(|e| e.to_string() == name);
        self.cell(find(src)?, find(dst)?).map(|c| &c.conns)
    }

    /// Every computed cell: `(row, column, cell)`.
    pub fn cells(&self) -> impl Iterator<Item = (usize, usize, &Cell)> {
        let n = self.endpoints.len();
        self.cells
            .iter()
            .enumerate()
            .filter_map(move |(k, c)| c.as_ref().map(|c| (k / n, k % n, c)))
    }
}

/// The port boundaries of one pair: where some rule of the source's egress
/// or the destination's ingress starts or stops matching.
fn boundaries(set: &PolicySet, src: &Endpoint, dst: &Endpoint, bit: u8) -> Vec<u16> {
    let mut cuts: Vec<u32> = vec![1];
    let slot = |ep: &Endpoint| match ep {
        Endpoint::Pod(k) => set.world.by_key.get(k).and_then(|&s| set.world.slot(s)),
        Endpoint::Ip(ip) => set
            .world
            .pod_by_ip(*ip)
            .and_then(|r| set.world.slot(r.slot)),
    };
    let dst_named = slot(dst)
        .and_then(|s| set.world.hot.get(s.identity as usize))
        .map(|h| &h.named[..]);
    let programs = [
        slot(src).map(|s| (s.identity, EGRESS)),
        slot(dst).map(|s| (s.identity, INGRESS)),
    ];
    for (identity, dir) in programs.into_iter().flatten() {
        let Some(p) = set
            .world
            .hot
            .get(identity as usize)
            .map(|h| &h.programs[dir])
        else {
            continue;
        };
        for e in p.entries() {
            if e.protos & bit == 0 {
                continue;
            }
            if e.named == 0 {
                cuts.push(u32::from(e.lo));
                cuts.push(u32::from(e.hi) + 1);
            } else if let Some(port) = dst_named.and_then(|n| resolve_named(n, e.named, bit)) {
                cuts.push(u32::from(port));
                cuts.push(u32::from(port) + 1);
            }
        }
    }
    cuts.retain(|&c| (1..=u32::from(u16::MAX)).contains(&c));
    cuts.sort_unstable();
    cuts.dedup();
    cuts.into_iter()
        .filter_map(|c| u16::try_from(c).ok())
        .collect()
}

pub(crate) fn cell(
    set: &PolicySet,
    src: &Endpoint,
    dst: &Endpoint,
    options: &MatrixOptions,
) -> Cell {
    let mut conns = ConnSet::none();
    let mut segments: Vec<Segment> = Vec::new();
    for (bit, protocol) in proto::NAMED {
        let mut cuts = boundaries(set, src, dst, bit);
        if let Some(filter) = &options.ports {
            for &(lo, hi) in filter.ranges(protocol) {
                cuts.push(lo);
                cuts.extend(hi.checked_add(1));
            }
            cuts.sort_unstable();
            cuts.dedup();
        }
        for (k, &lo) in cuts.iter().enumerate() {
            let hi = cuts.get(k + 1).map_or(u16::MAX, |&next| next - 1);
            if options
                .ports
                .as_ref()
                .is_some_and(|f| !f.contains(protocol, lo))
            {
                continue;
            }
            let flow = Flow::new(src.clone(), dst.clone(), protocol, lo);
            if options.explain {
                let e = set.explain(&flow);
                let verdict = e.verdict();
                if verdict.is_allow() {
                    conns.insert(protocol, lo, hi);
                }
                add_segment(&mut segments, protocol, lo, hi, verdict, &e);
            } else if set.verdict(&flow).is_allow() {
                conns.insert(protocol, lo, hi);
            }
        }
    }
    segments.sort_by_key(|s| s.verdict);
    Cell { conns, segments }
}

fn add_segment(
    segments: &mut Vec<Segment>,
    protocol: Protocol,
    lo: u16,
    hi: u16,
    verdict: Verdict,
    e: &crate::Explanation,
) {
    // A pair of dual-stack pods decided differently per family: the
    // reasons say which family they are for.
    let prefix = e.family_prefix();
    let egress = format!("{prefix}{}", e.egress);
    let ingress = format!("{prefix}{}", e.ingress);
    let found = segments
        .iter_mut()
        .find(|s| s.verdict == verdict && s.egress == egress && s.ingress == ingress);
    match found {
        Some(s) => s.conns.insert(protocol, lo, hi),
        None => {
            let mut conns = ConnSet::none();
            conns.insert(protocol, lo, hi);
            segments.push(Segment {
                conns,
                verdict,
                egress,
                ingress,
            });
        }
    }
}
