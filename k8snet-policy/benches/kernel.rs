//! Kernel benches of k8snet-policy (see BENCHMARKS.md for the figures).
//! They need root: each makes its own network namespaces (node and routed
//! pod namespaces, through k8snet-testnet), programs nftables only there,
//! and removes everything when done; elsewhere they print why they
//! skipped.
//!
//! - `program`: the bench cluster (10,000 pods, 1,000 NetworkPolicies,
//!   three AdminNetworkPolicies and a baseline) from a compiled
//!   `PolicySet` into the kernel in one transaction (`enforce`: lowering,
//!   read-back of the absent table, diff, apply, kernel acknowledgement),
//!   with the ruleset's object counts; then one NetworkPolicy edit applied
//!   incrementally, by `enforce` (reads the table back) and by an
//!   `Enforcer` (diffs against what it applied).
//! - `connect`: TCP connect + close between two routed pods whose
//!   policies admit the connection, with 10 and with 5,000 policies in
//!   the cluster (10,000 pods either way). Each configuration has its own
//!   node namespace and pods; a round alternates short bursts between the
//!   two (`BENCH_BURSTS` of `BENCH_BURST_MS`), `BENCH_ROUNDS` rounds.
//!
//! Run: `cargo bench -p k8snet-policy --features linux --bench kernel
//! [-- program|connect]`. Under `cargo test --benches` (no `--bench`
//! argument) each step runs once with short bursts, as a test. Every figure is printed with the load average
//! (`/proc/loadavg`), as the machine is shared.

#![allow(missing_docs)]

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use k8snet_model::{Cluster, Manifests, Object, Protocol};
use k8snet_nft::{Batch, Family, Nft};
use k8snet_policy::{
    Enforcer, Flow, Options, PolicySet, RulesetOptions, RulesetStats, TABLE, Verdict, enforce,
    ruleset,
};
use k8snet_testnet::{Netns, Pod, Testnet, kernel_available, skip_reason};
use socket2::{Domain, Socket, Type};

use support::cluster;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn objects(yaml: &str) -> Vec<Object> {
    let mut m = Manifests::new();
    m.load_str("bench.yaml", yaml);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    m.into_objects()
}

fn clear(nft: &mut Nft) {
    // Deleting an absent table fails; that is fine here.
    let _ = nft.apply(&Batch::delete_table(Family::Inet, TABLE));
}

fn program() {
    let mut c = cluster(1_000);
    let options = Options::default();
    let t = Instant::now();
    let mut set = PolicySet::compile(&c, &options);
    let compile = t.elapsed();
    let rs = RulesetOptions::default();
    let t = Instant::now();
    let table = ruleset(&set, &rs);
    let lower = t.elapsed();
    let counts = RulesetStats::of(&table);
    let t = Instant::now();
    let batch = k8snet_nft::diff(None, &table).expect("diff");
    let diff = t.elapsed();
    println!(
        "program: 10k pods / 1k policies: {:?}; compile {} (not counted); \
         ruleset() {}, diff {}; ruleset: {} chains, {} rules, {} sets, {} elements",
        set.stats(),
        ms(compile),
        ms(lower),
        ms(diff),
        counts.chains,
        counts.rules,
        counts.sets,
        counts.elements
    );
    drop(batch);
    let tn = Testnet::new("polbench").expect("namespace");
    let node = tn.node();
    let rounds = if smoke_test() { 1 } else { 5 };
    let totals: Vec<Duration> = node
        .run(move || {
            let mut nft = Nft::new().expect("netlink");
            let mut totals = Vec::new();
            for round in 0..rounds {
                clear(&mut nft);
                let before = load();
                let t = Instant::now();
                let stats = enforce(&mut nft, &set, &rs).expect("enforce");
                let took = t.elapsed();
                println!(
                    "program: round {round}: enforce (PolicySet -> kernel ack, one transaction) {}: \
                     {} messages, {} elements, {} KiB; load {before}",
                    ms(took),
                    stats.messages,
                    stats.elements,
                    stats.bytes / 1024
                );
                totals.push(took);
            }
            // One NetworkPolicy edit, applied to the programmed kernel:
            // by `enforce` (reads the table back), then by an `Enforcer`
            // (diffs against what it applied).
            let edit = |set: &mut PolicySet, c: &mut Cluster, app: usize| {
                let o = objects(&format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np-7, namespace: ns-7}}\n\
                     spec: {{podSelector: {{matchLabels: {{app: app-{app}}}}}, ingress: [{{from: [{{podSelector: {{}}}}], ports: [{{port: 80}}]}}]}}\n"
                ))
                .remove(0);
                let r = o.reference();
                c.upsert(o).expect("valid");
                let t = Instant::now();
                let update = set.apply(c, &r);
                (t.elapsed(), update.identities)
            };
            for (round, app) in [3, 4, 3].into_iter().enumerate() {
                let before = load();
                let (apply, identities) = edit(&mut set, &mut c, app);
                let t = Instant::now();
                let stats = enforce(&mut nft, &set, &rs).expect("enforce");
                let took = t.elapsed();
                println!(
                    "program: edit {round}: PolicySet::apply {} ({identities} identities), enforce \
                     (read back, diff, apply) {}: {} messages, {} elements; load {before}",
                    ms(apply),
                    ms(took),
                    stats.messages,
                    stats.elements
                );
            }
            let mut enforcer = Enforcer::new(nft, rs.clone());
            enforcer.enforce(&set).expect("enforcer");
            for (round, app) in [4, 3, 4].into_iter().enumerate() {
                let before = load();
                let (apply, identities) = edit(&mut set, &mut c, app);
                let t = Instant::now();
                let stats = enforcer.enforce(&set).expect("enforce");
                let took = t.elapsed();
                println!(
                    "program: edit {round}: PolicySet::apply {} ({identities} identities), \
                     Enforcer::enforce (ruleset, diff, apply) {}: {} messages, {} elements; load {before}",
                    ms(apply),
                    ms(took),
                    stats.messages,
                    stats.elements
                );
            }
            let mut nft = Nft::new().expect("netlink");
            clear(&mut nft);
            totals
        })
        .expect("node namespace");
    let mut sorted = totals.clone();
    sorted.sort();
    println!(
        "program: enforce 10k pods / 1k policies: median {}, best {}, worst {} over {rounds} rounds (target <= 1 s)",
        ms(sorted[sorted.len() / 2]),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    );
}

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 3);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 1);
const PORT: u16 = 8080;

/// The bench cluster with `policies` NetworkPolicies, plus namespace
/// `bench` holding the client and the server: the server admits the
/// client on its named port `http` (8080), the client may open only that.
fn connect_cluster(policies: usize) -> Cluster {
    let mut c = cluster(policies);
    let yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: bench, labels: {{team: t0, env: dev}}}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: client, namespace: bench, labels: {{app: client}}}}\n\
         status: {{podIP: {CLIENT}}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: server, namespace: bench, labels: {{app: server}}}}\n\
         spec: {{containers: [{{name: c, ports: [{{name: http, containerPort: {PORT}}}]}}]}}\n\
         status: {{podIP: {SERVER}}}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: server-in, namespace: bench}}\n\
         spec: {{podSelector: {{matchLabels: {{app: server}}}}, ingress: [{{from: [{{podSelector: {{matchLabels: {{app: client}}}}}}], ports: [{{port: http}}]}}]}}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: client-out, namespace: bench}}\n\
         spec: {{podSelector: {{matchLabels: {{app: client}}}}, policyTypes: [Egress], egress: [{{to: [{{podSelector: {{matchLabels: {{app: server}}}}}}], ports: [{{port: {PORT}}}]}}]}}\n"
    );
    for o in objects(&yaml) {
        c.upsert(o).expect("valid");
    }
    c
}

fn routed_pod(tn: &mut Testnet, name: &str, addr: Ipv4Addr) -> Pod {
    let pod = tn
        .add_pod(name, &[format!("{addr}/32").parse().unwrap()])
        .expect("pod");
    pod.add_node_addr(format!("{GATEWAY}/32").parse().unwrap())
        .expect("gateway address");
    pod.netns()
        .ip(&[
            "-4",
            "route",
            "add",
            &format!("{GATEWAY}/32"),
            "dev",
            "eth0",
        ])
        .expect("route");
    pod.set_gateway(IpAddr::V4(GATEWAY)).expect("gateway");
    tn.node()
        .ip(&[
            "-4",
            "route",
            "add",
            &format!("{addr}/32"),
            "dev",
            pod.node_ifname(),
        ])
        .expect("route");
    pod
}

/// Connections per second from the client namespace: connect, then close
/// with a reset (linger 0, so no TIME_WAIT piles up), for `span`; and the
/// number of attempts that failed (a lost SYN waits for its
/// retransmission, so failures are counted, not hidden).
fn rate(client: &Netns, dst: SocketAddr, span: Duration) -> (f64, u64) {
    client
        .run(move || {
            let start = Instant::now();
            let (mut n, mut failed) = (0u64, 0u64);
            while start.elapsed() < span {
                let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
                s.set_linger(Some(Duration::ZERO)).expect("linger");
                match s.connect_timeout(&dst.into(), Duration::from_secs(3)) {
                    Ok(()) => n += 1,
                    Err(_) => failed += 1,
                }
            }
            (n as f64 / start.elapsed().as_secs_f64(), failed)
        })
        .expect("client namespace")
}

fn connects(client: &Netns, dst: SocketAddr) -> bool {
    client
        .run(move || {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            s.connect_timeout(&dst.into(), Duration::from_millis(300))
                .is_ok()
        })
        .expect("client namespace")
}

/// A node namespace with a client and a server pod, the server
/// listening on `PORT` and `PORT + 1`, and the ruleset of `set` enforced.
struct Site {
    policies: usize,
    tn: Testnet,
    client: Pod,
}

fn site(name: &str, policies: usize, set: &PolicySet, rs: &RulesetOptions) -> Site {
    let mut tn = Testnet::new(name).expect("namespace");
    tn.enable_forwarding().expect("forwarding");
    let client = routed_pod(&mut tn, "client", CLIENT);
    let server = routed_pod(&mut tn, "server", SERVER);
    let listeners = server
        .netns()
        .run(|| {
            [PORT, PORT + 1].map(|p| {
                // A deep backlog: the accept loop must never be the limit.
                let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
                s.set_reuse_address(true).expect("reuse");
                s.bind(&SocketAddr::from((SERVER, p)).into()).expect("bind");
                s.listen(4096).expect("listen");
                TcpListener::from(s)
            })
        })
        .expect("server namespace");
    for l in listeners {
        thread::spawn(move || {
            for conn in l.incoming() {
                drop(conn);
            }
        });
    }
    let denied = SocketAddr::from((SERVER, PORT + 1));
    assert!(connects(client.netns(), denied), "routing");
    let t = Instant::now();
    let stats = tn
        .node()
        .run(|| enforce(&mut Nft::new().expect("netlink"), set, rs).expect("enforce"))
        .expect("node namespace");
    println!(
        "connect: {policies} policies enforced in {} ({} messages)",
        ms(t.elapsed()),
        stats.messages
    );
    // The ruleset is in force: the policy's other port is closed.
    assert!(
        !connects(client.netns(), denied),
        "{policies}: port {} open",
        PORT + 1
    );
    Site {
        policies,
        tn,
        client,
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Run as a test (`cargo test --benches`, without `--bench`): every step
/// once, on the same cluster sizes, with as few repetitions as possible.
fn smoke_test() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn connect() {
    // Each round alternates short bursts between the two configurations,
    // so drifts of the machine's load hit both alike.
    let smoke = smoke_test();
    let burst = Duration::from_millis(env_or("BENCH_BURST_MS", if smoke { 50 } else { 300 }));
    let bursts = env_or("BENCH_BURSTS", if smoke { 2 } else { 10 });
    let rounds = env_or("BENCH_ROUNDS", if smoke { 1 } else { 3 });
    let options = Options::default();
    let rs = RulesetOptions::default();
    let mut sites = Vec::new();
    for (name, n) in [("polc10", 10), ("polc5k", 5_000)] {
        let set = PolicySet::compile(&connect_cluster(n), &options);
        let flow = |port| {
            set.verdict(&Flow::new(
                IpAddr::V4(CLIENT),
                IpAddr::V4(SERVER),
                Protocol::Tcp,
                port,
            ))
        };
        assert_eq!(flow(PORT), Verdict::Allow);
        assert_eq!(flow(PORT + 1), Verdict::Deny);
        let counts = RulesetStats::of(&ruleset(&set, &rs));
        println!(
            "connect: {n} policies: {:?}; ruleset {} chains, {} rules, {} sets, {} elements",
            set.stats(),
            counts.chains,
            counts.rules,
            counts.sets,
            counts.elements
        );
        sites.push(site(name, n, &set, &rs));
    }
    let dst = SocketAddr::from((SERVER, PORT));
    let mut ratios = Vec::new();
    let mut failures = 0;
    for round in 0..rounds {
        let before = load();
        // (connections, seconds) per site.
        let mut sums = vec![(0.0f64, 0.0f64); sites.len()];
        for k in 0..bursts {
            let mut order: Vec<usize> = (0..sites.len()).collect();
            if (round + k) % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (r, failed) = rate(sites[i].client.netns(), dst, burst);
                failures += failed;
                sums[i].0 += r * burst.as_secs_f64();
                sums[i].1 += burst.as_secs_f64();
            }
        }
        let rates: Vec<f64> = sums.iter().map(|(n, t)| n / t).collect();
        let ratio = rates[1] / rates[0];
        println!(
            "connect: round {round}: {} policies {:.0} /s, {} policies {:.0} /s, ratio {ratio:.2} \
             ({bursts} alternating bursts of {} each); load {before} -> {}",
            sites[0].policies,
            rates[0],
            sites[1].policies,
            rates[1],
            ms(burst),
            load()
        );
        ratios.push(ratio);
    }
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "connect: ratio 5,000 / 10 policies per round: {}; median {:.2} (target >= 0.80); \
         {failures} failed attempts",
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        sorted[sorted.len() / 2]
    );
    for s in &sites {
        s.tn.node()
            .run(|| clear(&mut Nft::new().expect("netlink")))
            .expect("node namespace");
    }
}

fn main() {
    if !kernel_available() {
        println!(
            "kernel benches skipped: {}",
            skip_reason().unwrap_or("kernel tests unavailable")
        );
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f));
    if wanted("program") {
        program();
    }
    if wanted("connect") {
        connect();
    }
}
