//! Regression fixtures (`tests/fixtures/**/*.yaml`): truth tables
//! re-expressed from the upstream e2e suite and connection lists
//! re-expressed from np-guard's golden outputs, as our own data.
//!
//! A fixture names a starting cluster (the e2e model of namespaces x, y, z
//! with pods a, b, c, or its own manifests) and a list of steps; each step
//! applies manifests and deletions, then states expectations. Every
//! expectation is checked three ways: on a set updated incrementally with
//! `PolicySet::apply`, on a fresh compile, and with the reference evaluator.

mod reference;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8snet_model::{Cluster, Kind, Manifests, ObjectRef, Protocol};
use k8snet_policy::{
    ConnSet, Endpoint, Flow, HostNetwork, Matrix, MatrixOptions, Options, PolicySet, SelfTraffic,
    Verdict,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// Where the case comes from.
    source: String,
    /// `e2e`: the upstream e2e pod model; absent: `manifests` only.
    #[serde(default)]
    model: Option<String>,
    /// With the e2e model: the pods the case creates (`x/a`, …).
    #[serde(default)]
    pods: Vec<String>,
    /// Manifests loaded before the first step.
    #[serde(default)]
    manifests: String,
    #[serde(default)]
    options: FixtureOptions,
    steps: Vec<Step>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureOptions {
    ipblock_matches_pods: Option<bool>,
    host_network_as_pod: Option<bool>,
    evaluate_self_traffic: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    apply: String,
    /// `Kind ns/name` or `Kind name`.
    #[serde(default)]
    delete: Vec<String>,
    /// Truth tables: rows are sources, columns destinations; `.` allow,
    /// `X` deny, `-` not checked (loopback, as e2e ignores it).
    #[serde(default)]
    tables: Vec<Table>,
    /// np-guard style: every `src => dst : conn` with a non-empty
    /// connection set, in any order.
    #[serde(default)]
    connlist: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    /// `TCP 80`.
    probe: String,
    table: String,
}

const E2E_PORTS: [(&str, u16, &str); 6] = [
    ("serve-80-tcp", 80, "TCP"),
    ("serve-81-tcp", 81, "TCP"),
    ("serve-80-udp", 80, "UDP"),
    ("serve-81-udp", 81, "UDP"),
    ("serve-80-sctp", 80, "SCTP"),
    ("serve-81-sctp", 81, "SCTP"),
];

/// The e2e model: namespaces x, y, z; pod `n/p` has label `pod: p`, serves
/// ports 80 and 81 on TCP, UDP and SCTP under the e2e port names, and has
/// address 198.18.<1|2|3>.<1|2|3> (x/a = 198.18.1.1, y/b = 198.18.2.2).
fn e2e_model(pods: &[String]) -> String {
    let mut out = String::new();
    for ns in ["x", "y", "z"] {
        // Quoted: YAML 1.1 (and so kubectl) reads a bare `y` as `true`.
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: \"{ns}\"}}\n"
        ));
    }
    for p in pods {
        let (ns, name) = p.split_once('/').expect("pods are ns/name");
        let n = ["x", "y", "z"]
            .iter()
            .position(|&x| x == ns)
            .expect("x, y or z")
            + 1;
        let i = ["a", "b", "c"]
            .iter()
            .position(|&x| x == name)
            .expect("a, b or c")
            + 1;
        let ports: Vec<String> = E2E_PORTS
            .iter()
            .map(|(pn, port, proto)| {
                format!("{{name: {pn}, containerPort: {port}, protocol: {proto}}}")
            })
            .collect();
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: \"{ns}\", labels: {{pod: {name}}}}}\n\
             spec: {{nodeName: node-1, containers: [{{name: c, ports: [{}]}}]}}\n\
             status: {{phase: Running, hostIP: 198.19.128.1, podIP: 198.18.{n}.{i}}}\n",
            ports.join(", ")
        ));
    }
    out
}

fn load(cluster: &mut Cluster, file: &Path, text: &str) -> Vec<ObjectRef> {
    let mut m = Manifests::new();
    m.load_str(&file.display().to_string(), text);
    assert!(
        m.errors().is_empty(),
        "{}: {:?}",
        file.display(),
        m.errors()
    );
    m.into_objects()
        .into_iter()
        .map(|o| {
            let r = o.reference();
            cluster.upsert(o).expect("valid");
            r
        })
        .collect()
}

fn parse_ref(s: &str) -> ObjectRef {
    let (kind, name) = s.split_once(' ').expect("Kind name");
    let kind = Kind::from_kind(kind).expect("a known kind");
    let (namespace, name) = match name.split_once('/') {
        Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
        None => (None, name.to_string()),
    };
    ObjectRef {
        kind,
        namespace,
        name,
    }
}

fn options(o: &FixtureOptions) -> Options {
    let mut out = Options::default();
    if let Some(b) = o.ipblock_matches_pods {
        out.ipblock_matches_pods = b;
    }
    if o.host_network_as_pod == Some(true) {
        out.host_network = HostNetwork::AsPod;
    }
    if o.evaluate_self_traffic == Some(true) {
        out.self_traffic = SelfTraffic::Evaluate;
    }
    out
}

fn check_table(
    ctx: &str,
    sets: &[(&str, &PolicySet)],
    cluster: &Cluster,
    opts: &Options,
    t: &Table,
) -> usize {
    let (proto, port) = t.probe.split_once(' ').expect("PROTO PORT");
    let protocol: Protocol = proto.parse().expect("protocol");
    let port: u16 = port.parse().expect("port");
    let mut lines = t.table.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .expect("header")
        .split_whitespace()
        .skip(1)
        .collect();
    let mut checked = 0;
    for line in lines {
        let mut cells = line.split_whitespace();
        let src: Endpoint = cells.next().expect("source").parse().expect("endpoint");
        let cells: Vec<&str> = cells.collect();
        assert_eq!(cells.len(), header.len(), "{ctx}: row {line:?}");
        for (dst, cell) in header.iter().zip(cells) {
            let want = match cell {
                "." => Verdict::Allow,
                "X" => Verdict::Deny,
                "-" => continue,
                other => panic!("{ctx}: cell {other:?}"),
            };
            let dst: Endpoint = dst.parse().expect("endpoint");
            let flow = Flow::new(src.clone(), dst, protocol, port);
            for (what, set) in sets {
                let got = set.explain(&flow);
                assert_eq!(got.verdict(), want, "{ctx} ({what}): {flow}: {got}");
                assert_eq!(set.verdict(&flow), want, "{ctx} ({what}): {flow}");
            }
            let r = reference::verdict(cluster, opts, &flow);
            assert_eq!(r, want, "{ctx} (reference): {flow}");
            checked += 1;
        }
    }
    checked
}

fn connlist(set: &PolicySet) -> BTreeSet<String> {
    let m = Matrix::build(set, &MatrixOptions::default());
    let names: Vec<String> = m.endpoints().iter().map(ToString::to_string).collect();
    m.cells()
        .filter(|(_, _, c)| !c.conns.is_empty())
        .map(|(i, j, c)| format!("{} => {} : {}", names[i], names[j], c.conns))
        .collect()
}

fn run(file: &Path) -> usize {
    let text = std::fs::read_to_string(file).expect("read");
    let fx: Fixture =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(!fx.source.is_empty());
    let opts = options(&fx.options);
    let mut cluster = Cluster::new();
    if fx.model.as_deref() == Some("e2e") {
        load(&mut cluster, file, &e2e_model(&fx.pods));
    }
    load(&mut cluster, file, &fx.manifests);
    let mut set = PolicySet::compile(&cluster, &opts);
    let mut checked = 0;
    for (k, step) in fx.steps.iter().enumerate() {
        let ctx = format!("{} step {k}", file.display());
        let mut changed = load(&mut cluster, file, &step.apply);
        for d in &step.delete {
            let r = parse_ref(d);
            assert!(
                cluster.delete(&r).is_some(),
                "{ctx}: nothing to delete at {d}"
            );
            changed.push(r);
        }
        for r in &changed {
            set.apply(&cluster, r);
        }
        let fresh = PolicySet::compile(&cluster, &opts);
        let sets = [("incremental", &set), ("fresh", &fresh)];
        for t in &step.tables {
            checked += check_table(&ctx, &sets, &cluster, &opts, t);
        }
        if let Some(expected) = &step.connlist {
            let want: BTreeSet<String> = expected
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    // Normalise the connection text through ConnSet.
                    let (pair, conn) = l.rsplit_once(" : ").expect("src => dst : conn");
                    let conn: ConnSet = conn.parse().expect("conn");
                    format!("{pair} : {conn}")
                })
                .collect();
            for (what, s) in sets {
                let got = connlist(s);
                let missing: Vec<_> = want.difference(&got).collect();
                let extra: Vec<_> = got.difference(&want).collect();
                assert!(
                    missing.is_empty() && extra.is_empty(),
                    "{ctx} ({what}):\nmissing: {missing:#?}\nunexpected: {extra:#?}"
                );
            }
            checked += want.len();
        }
    }
    checked
}

fn fixtures(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            fixtures(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_fixture_holds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    fixtures(&dir, &mut files);
    files.sort();
    assert!(files.len() >= 20, "only {} fixtures", files.len());
    let mut total = 0;
    for f in &files {
        let n = run(f);
        assert!(n > 0, "{} checks nothing", f.display());
        total += n;
    }
    println!("{} fixtures, {total} expectations", files.len());
}
