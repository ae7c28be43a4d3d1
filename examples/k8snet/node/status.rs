//! `k8snet node status`: what runs where, and whether each component
//! answers, probed from inside each node namespace.

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use k8snet_testnet::Netns;

use super::kernel::netns_exists;
use super::plan::{CLIENT_NS, DNS_V4, ZONE};
use super::state::State;

/// Whether `pid` is a running `k8snet node run` (not a reused PID).
pub(crate) fn is_our_process(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.windows(2)
                .any(|w| w == [b"node".as_slice(), b"run".as_slice()])
        })
        .unwrap_or(false)
}

pub(crate) fn show(dir: &Path) -> anyhow::Result<ExitCode> {
    let Some(state) = State::load(dir)? else {
        println!("down: nothing recorded in {}", dir.display());
        return Ok(ExitCode::from(3));
    };
    let alive = state.pid.is_some_and(is_our_process);
    println!(
        "stack: {} (pid {}{}){}",
        state.phase,
        state.pid.map_or("-".into(), |p| p.to_string()),
        if alive { ", running" } else { ", NOT running" },
        if state.watch {
            ", watching the manifests"
        } else {
            ""
        }
    );
    if let Some(e) = &state.error {
        println!("error: {e}");
    }
    print_state(&state);
    let mut healthy = alive && state.phase == "ready";
    println!("health:");
    for n in &state.nodes {
        let ns_ok = netns_exists(&n.netns);
        let tables = if ns_ok {
            nft_tables(&n.netns)
        } else {
            Vec::new()
        };
        let lb = tables.iter().any(|t| t == "k8snet-lb");
        let policy = tables.iter().any(|t| t == "k8snet-policy");
        let dns = ns_ok && probe_dns(&n.netns);
        let ingress = ns_ok
            && n.addrs
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|ip| probe_tcp(&n.netns, SocketAddr::new(ip, 80)));
        let healthz = ns_ok
            && n.addrs
                .first()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|ip| probe_healthz(&n.netns, SocketAddr::new(ip, 10256)));
        healthy &= ns_ok && lb && policy && dns && ingress && healthz;
        println!(
            "  node {}: namespace {}, load balancer {} (healthz {}), network policy {}, DNS {}, ingress {}",
            n.name,
            ok(ns_ok),
            ok(lb),
            ok(healthz),
            ok(policy),
            ok(dns),
            ok(ingress)
        );
    }
    let missing: Vec<&str> = state
        .pods
        .iter()
        .filter(|p| !netns_exists(&p.netns))
        .map(|p| p.name.as_str())
        .collect();
    healthy &= missing.is_empty();
    println!(
        "  pods: {} of {} sandboxes present{}",
        state.pods.len() - missing.len(),
        state.pods.len(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(" (missing: {})", missing.join(", "))
        }
    );
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn ok(b: bool) -> &'static str {
    if b { "ok" } else { "FAILING" }
}

/// What runs where.
pub(crate) fn print_state(state: &State) {
    for n in &state.nodes {
        println!(
            "node {} (namespace {}): address {} — DNS {DNS_V4}:53, ingress :80 :443",
            n.name,
            n.netns,
            n.addrs.join(" ")
        );
        for p in state.pods.iter().filter(|p| p.node == n.name) {
            println!(
                "  pod {} (namespace {}): {} serving {}",
                p.name,
                p.netns,
                p.ips.join(" "),
                if p.ports.is_empty() {
                    "nothing".into()
                } else {
                    p.ports.join(" ")
                }
            );
        }
    }
    println!("outside client: namespace {CLIENT_NS} (198.19.200.2, fd00:19:2::2)");
}

/// What a user can try next.
pub(crate) fn print_next_steps(state: &State) {
    println!("try:");
    let first_pod = state.pods.iter().find(|p| p.netns.starts_with("k8snet-"));
    if let Some(p) = first_pod {
        println!("  ip netns exec {} cat /etc/resolv.conf", p.netns);
        println!(
            "  ip netns exec {} dig +search +short kubernetes.default   # names resolve with the pod's search path",
            p.netns
        );
        println!(
            "  ip netns exec {} curl -s http://<service>.<namespace>/",
            p.netns
        );
    }
    if let Some(n) = state.nodes.first()
        && let Some(addr) = n.addrs.first()
    {
        println!(
            "  ip netns exec {CLIENT_NS} curl -s -H 'Host: <ingress host>' http://{addr}/   # the ingress, from outside"
        );
        println!("  ip netns exec {CLIENT_NS} curl -s http://{addr}:<nodePort>/   # a NodePort");
        println!(
            "  ip netns exec {} nft list ruleset   # the load balancer and policy tables",
            n.netns
        );
    }
    println!("  k8snet node status; k8snet node down");
}

fn nft_tables(ns: &str) -> Vec<String> {
    Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "tables"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An SOA query for the zone, from inside the node namespace.
fn probe_dns(ns: &str) -> bool {
    let mut q = vec![0x4b, 0x38, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ZONE.split('.') {
        q.push(u8::try_from(label.len()).unwrap_or(0));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 6, 0, 1]);
    Netns::named(ns)
        .run(move || -> std::io::Result<bool> {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            s.send_to(&q, (DNS_V4, 53))?;
            let mut buf = [0u8; 512];
            let n = s.recv(&mut buf)?;
            // Same ID, a response, NOERROR.
            Ok(n >= 12 && buf[..2] == q[..2] && buf[2] & 0x80 != 0 && buf[3] & 0x0f == 0)
        })
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false)
}

fn probe_tcp(ns: &str, addr: SocketAddr) -> bool {
    Netns::named(ns)
        .run(move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map(|mut s| {
                let _ = s.set_read_timeout(Some(Duration::from_millis(1)));
                let _ = s.read(&mut [0u8; 1]);
            })
        })
        .is_ok_and(|r| r.is_ok())
}

/// `GET /healthz` of the proxy answers 200.
fn probe_healthz(ns: &str, addr: SocketAddr) -> bool {
    use std::io::Write as _;
    Netns::named(ns)
        .run(move || -> std::io::Result<bool> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head)?;
            Ok(head.starts_with(b"HTTP/1.1 200"))
        })
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false)
}
