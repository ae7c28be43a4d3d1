//! Shared by the kernel tests: a ruleset using every feature of the crate,
//! running code in a test namespace, and `nft -j` listings.

#![allow(dead_code, unreachable_pub)] // each test binary uses a subset

pub mod generate;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use k8snet_nft::{
    Chain, ChainType, CtStates, DataType, DynsetOp, Element, Expr, Family, Field, Hook, IpFamily,
    Key, KeyExpr, MapValue, MarkTarget, Nat, NatKind, NatTo, Policy, Reject, Rule, Set, SetFlags,
    Table, Value, Verdict,
};
use k8snet_testnet::Netns;

pub fn v4(s: &str) -> Value {
    Value::Ipv4(s.parse::<Ipv4Addr>().unwrap())
}

pub fn v6(s: &str) -> Value {
    Value::Ipv6(s.parse::<Ipv6Addr>().unwrap())
}

pub fn key(values: &[Value]) -> Key {
    Key(values.to_vec())
}

pub fn rule(text: &str) -> Rule {
    text.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `f` with a fresh `Nft` handle on a thread inside `ns`.
#[cfg(all(feature = "linux", target_os = "linux"))]
pub fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce(&mut k8snet_nft::Nft) -> T + Send) -> T {
    ns.run(|| {
        let mut nft = k8snet_nft::Nft::new().expect("netlink socket");
        f(&mut nft)
    })
    .expect("entering the test namespace")
}

/// `nft -j list table inet NAME` in the namespace, parsed.
pub fn nft_json(ns: &Netns, table: &str) -> serde_json::Value {
    let out = ns
        .cmd(&["nft", "-j", "list", "table", "inet", table])
        .expect("nft -j list table");
    serde_json::from_str(&out).expect("nft -j output is JSON")
}

/// Chains, sets with element counts, rules per chain.
pub type Summary = (Vec<String>, Vec<(String, usize)>, Vec<(String, usize)>);

/// What `nft -j` shows: (chains, sets and maps with their element counts,
/// rules per chain), sorted.
pub fn json_summary(j: &serde_json::Value) -> Summary {
    let mut chains = Vec::new();
    let mut sets = Vec::new();
    let mut rules: std::collections::BTreeMap<String, usize> = Default::default();
    for item in j["nftables"].as_array().expect("nftables array") {
        if let Some(c) = item.get("chain") {
            chains.push(c["name"].as_str().unwrap().to_owned());
            rules
                .entry(c["name"].as_str().unwrap().to_owned())
                .or_default();
        }
        for kind in ["set", "map"] {
            if let Some(s) = item.get(kind) {
                let n = s.get("elem").and_then(|e| e.as_array()).map_or(0, Vec::len);
                sets.push((s["name"].as_str().unwrap().to_owned(), n));
            }
        }
        if let Some(r) = item.get("rule") {
            *rules
                .entry(r["chain"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    chains.sort();
    sets.sort();
    (chains, sets, rules.into_iter().collect())
}

/// The same summary from our model.
pub fn model_summary(t: &Table) -> Summary {
    let chains = t.chains.keys().cloned().collect();
    let sets = t
        .sets
        .iter()
        .map(|(n, s)| (n.clone(), s.elements.len()))
        .collect();
    let rules = t
        .chains
        .iter()
        .map(|(n, c)| (n.clone(), c.rules.len()))
        .collect();
    (chains, sets, rules)
}

/// A table using every feature: base and regular chains; named sets with
/// concatenated keys, intervals (one field and concatenated), timeouts, a
/// dynamic set updated from the packet path; verdict and data maps; jhash,
/// numgen, lookups, dynset, NAT, masquerade, reject, counter, log, ct state,
/// ct status and mark, meta mark, fib, anonymous sets, every verdict.
pub fn every_feature_table(name: &str) -> Table {
    let tcp = Value::Proto(6);
    let flags = |interval, timeout, dynamic| SetFlags {
        interval,
        timeout,
        dynamic,
        constant: false,
    };
    let svc_ips = Set::verdict_map(vec![
        DataType::Ipv4Addr,
        DataType::InetProto,
        DataType::InetService,
    ])
    .with_mapping(
        key(&[v4("198.19.0.1"), tcp.clone(), Value::Port(80)]),
        MapValue::Verdict(Verdict::Goto("svc-web".into())),
    )
    .with_mapping(
        key(&[v4("198.19.0.2"), tcp.clone(), Value::Port(80)]),
        MapValue::Verdict(Verdict::Jump("svc-rr".into())),
    )
    .with_mapping(
        key(&[v4("198.19.0.3"), tcp.clone(), Value::Port(9)]),
        MapValue::Verdict(Verdict::Drop),
    );
    let mut slots = Set::map(
        vec![DataType::Integer(32)],
        vec![DataType::Ipv4Addr, DataType::InetService],
    );
    for i in 0..4u64 {
        let backend = format!("198.18.0.{}", 10 + i);
        slots = slots.with_mapping(
            Key::one(Value::Int(i)),
            MapValue::Data(key(&[v4(&backend), Value::Port(8080)])),
        );
    }
    let allowed = Set::new(vec![DataType::Ipv4Addr, DataType::InetService])
        .with_element(key(&[v4("198.18.0.2"), Value::Port(443)]))
        .with_element(key(&[v4("198.18.0.3"), Value::Port(443)]));
    let blocked = Set::new(vec![DataType::Ipv4Addr])
        .with_flags(flags(true, false, false))
        .with_range(Key::one(v4("198.18.5.0")), Key::one(v4("198.18.5.255")))
        .with_range(Key::one(v4("198.18.7.1")), Key::one(v4("198.18.7.9")))
        .with_element(Key::one(v4("198.18.9.9")));
    let nets6 = Set::new(vec![DataType::Ipv6Addr])
        .with_flags(flags(true, false, false))
        .with_range(
            Key::one(v6("fd00:18:0:5::")),
            Key::one(v6("fd00:18:0:5:ffff:ffff:ffff:ffff")),
        );
    let port_ranges = Set::new(vec![DataType::Ipv4Addr, DataType::InetService])
        .with_flags(flags(true, false, false))
        .with_range(
            key(&[v4("198.18.0.0"), Value::Port(1000)]),
            key(&[v4("198.18.255.255"), Value::Port(2000)]),
        );
    let mut recent = Set::new(vec![DataType::Ipv4Addr]).with_timeout(Duration::from_secs(30));
    recent.elements.insert(
        Key::one(v4("198.18.6.6")),
        Element {
            timeout: Some(Duration::from_secs(600)),
            ..Element::default()
        },
    );
    recent = recent.with_element(Key::one(v4("198.18.6.7")));
    let affinity = Set::new(vec![DataType::Ipv4Addr, DataType::InetService])
        .with_flags(flags(false, true, true))
        .with_timeout(Duration::from_secs(60));
    let seen = Set::new(vec![DataType::Ipv4Addr]).with_flags(flags(false, false, true));
    let marks = Set::map(vec![DataType::Mark], vec![DataType::Ipv4Addr]).with_mapping(
        Key::one(Value::Mark(0x4000)),
        MapValue::Data(Key::one(v4("198.18.0.9"))),
    );
    let ifaces =
        Set::new(vec![DataType::Ifname]).with_element(Key::one(Value::Ifname("lo".into())));

    let jhash_dnat = Rule::new(vec![
        Expr::eq(Field::MetaL4proto, tcp.clone()),
        Expr::Nat(Nat {
            kind: NatKind::Dnat,
            family: IpFamily::V4,
            to: NatTo::Map {
                key: KeyExpr::Jhash {
                    fields: vec![Field::IpSaddr, Field::TcpSport],
                    modulus: 4,
                    seed: 0x1234,
                    offset: 0,
                },
                map: "slots".into(),
                port: None,
            },
        }),
    ])
    .with_comment("maglev slots");
    let svc_web = Chain::regular()
        .with_rule(Rule::new(vec![Expr::Dynset {
            op: DynsetOp::Update,
            set: "affinity".into(),
            key: vec![Field::IpSaddr, Field::ThDport],
            timeout: Some(Duration::from_secs(30)),
        }]))
        .with_rule(jhash_dnat);
    let svc_rr = Chain::regular()
        .with_rule(rule("add @seen { ip saddr }"))
        .with_rule(rule(
            "numgen random mod 2 vmap { 0 : goto svc-web, 1 : goto svc-web }",
        ));
    let prerouting = Chain::base(ChainType::Nat, Hook::Prerouting, -100, Policy::Accept)
        .with_rule(rule("ip daddr . meta l4proto . th dport vmap @svc-ips"))
        .with_rule(rule(
            "meta l4proto tcp dnat ip to numgen inc mod 2 offset 2 map @slots",
        ))
        .with_rule(rule(
            "meta l4proto tcp ip daddr 198.19.0.9 dnat ip to 198.18.0.20:8080",
        ))
        .with_rule(rule(
            "meta l4proto tcp dnat ip to meta mark map @marks : 8080",
        ));
    let input = Chain::base(ChainType::Filter, Hook::Input, 0, Policy::Accept)
        .with_rule(rule("ct state established,related accept"))
        .with_rule(rule("ct state invalid drop"))
        .with_rule(rule(
            "ip saddr @blocked counter log prefix \"k8snet-blocked \" drop",
        ))
        .with_rule(rule("ip6 saddr @nets6 drop"))
        .with_rule(rule("ip saddr . tcp dport @allowed accept"))
        .with_rule(rule("ip saddr . tcp dport @port-ranges jump policy-x"))
        .with_rule(rule("ip saddr @recent reject with icmpx admin-prohibited"))
        .with_rule(rule("tcp dport 22 reject with tcp reset"))
        .with_rule(rule("meta iifname @ifaces accept"))
        .with_rule(rule(
            "ct mark 0x00000001 meta mark set 0x00004000 ct mark set 0x00000002",
        ))
        .with_rule(rule(
            "tcp dport { 80, 443, 8000-8080 } accept comment \"web\"",
        ))
        .with_rule(rule("ip6 saddr fd00:18::/48 udp dport != 53 accept"))
        .with_rule(rule("tcp dport 1000-2000 return"))
        .with_rule(rule("tcp dport >= 60000 meta nfproto ipv4 drop"))
        .with_rule(rule("fib daddr type local counter"))
        .with_rule(Rule::new(vec![
            Expr::CtState(CtStates::NEW),
            Expr::SetMark {
                target: MarkTarget::Ct,
                value: 7,
            },
            Expr::Reject(Reject::PortUnreachable),
        ]));
    let postrouting = Chain::base(ChainType::Nat, Hook::Postrouting, 100, Policy::Accept)
        .with_rule(rule("meta mark 0x00004000 masquerade fully-random"))
        .with_rule(rule("ct status dnat ip saddr 127.0.0.0/8 masquerade"))
        .with_rule(rule(
            "ip saddr 198.18.0.0/16 ip daddr != 198.18.0.0/16 snat ip to 198.19.128.1",
        ))
        .with_rule(rule("ip6 saddr fd00:18::/48 snat ip6 to fd00:19:1::1"));
    let policy_x = Chain::regular().with_rule(rule("counter return"));
    let forward = Chain::base(ChainType::Filter, Hook::Forward, 0, Policy::Drop)
        .with_rule(Rule::new(vec![Expr::Verdict(Verdict::Accept)]));

    Table::new(Family::Inet, name)
        .with_set("svc-ips", svc_ips)
        .with_set("slots", slots)
        .with_set("allowed", allowed)
        .with_set("blocked", blocked)
        .with_set("nets6", nets6)
        .with_set("port-ranges", port_ranges)
        .with_set("recent", recent)
        .with_set("affinity", affinity)
        .with_set("seen", seen)
        .with_set("marks", marks)
        .with_set("ifaces", ifaces)
        .with_chain("prerouting", prerouting)
        .with_chain("postrouting", postrouting)
        .with_chain("input", input)
        .with_chain("forward", forward)
        .with_chain("svc-web", svc_web)
        .with_chain("svc-rr", svc_rr)
        .with_chain("policy-x", policy_x)
}

// ---- Traffic between test namespaces ----

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Instant;

pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP server in a test namespace that answers every connection with its
/// name, until stopped (bounded: at most 60 s).
pub struct NameServer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<usize>>,
}

impl NameServer {
    pub fn start(ns: &Netns, addr: SocketAddr, name: &str) -> Self {
        let listener = ns.run(|| TcpListener::bind(addr)).unwrap().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_owned();
        let handle = thread::spawn(move || {
            let start = Instant::now();
            let mut served = 0;
            while !flag.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let _ = conn.write_all(name.as_bytes());
                        served += 1;
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            served
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the server; returns how many connections it answered.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().map_or(0, |h| h.join().unwrap())
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_name(mut s: TcpStream) -> std::io::Result<String> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Connects from `ns` to `to` (with a timeout) and reads the server's name.
pub fn ask(ns: &Netns, to: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    ns.run(|| read_name(TcpStream::connect_timeout(&to, timeout)?))
        .expect("entering the client namespace")
}

/// Connects from `ns`, from source `from` (fixed port), to `to`, and reads
/// the server's name.
pub fn ask_from(ns: &Netns, from: SocketAddrV4, to: SocketAddrV4) -> std::io::Result<String> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, setsockopt, socket, sockopt,
    };
    ns.run(|| {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        bind(fd.as_raw_fd(), &SockaddrIn::from(from))?;
        connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
        read_name(TcpStream::from(fd))
    })
    .expect("entering the client namespace")
}
