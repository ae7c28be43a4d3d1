//! Helpers for the kernel tests: running the reference plugins (processes
//! under `ip netns exec <node>`) and ours (in process, on a thread inside
//! the node namespace), and reading kernel state as comparable facts.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use k8snet_cni::{Plugin, run_with};
use k8snet_testnet::Netns;
use serde_json::{Value, json};

/// Where Debian's containernetworking-plugins live.
pub const REF_DIR: &str = "/usr/lib/cni";

/// Whether the reference plugins are installed (else differentials skip).
pub fn reference_available() -> bool {
    Path::new(REF_DIR).join("bridge").exists() && Path::new(REF_DIR).join("host-local").exists()
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "k8snet-cni-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one invocation gave.
#[derive(Debug, Clone)]
pub struct Ran {
    pub status: i32,
    pub stdout: Value,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
    pub fn code(&self) -> Option<u64> {
        self.stdout.get("code").and_then(Value::as_u64)
    }
    pub fn msg(&self) -> &str {
        self.stdout.get("msg").and_then(Value::as_str).unwrap_or("")
    }
}

fn parse(stdout: &[u8]) -> Value {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(stdout)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(stdout).into_owned()))
}

/// The `CNI_*` variables of one call.
pub fn env(command: &str, id: &str, netns: Option<&Path>, path: &str) -> Vec<(String, String)> {
    let mut v = vec![
        ("CNI_COMMAND".to_owned(), command.to_owned()),
        ("CNI_CONTAINERID".to_owned(), id.to_owned()),
        ("CNI_IFNAME".to_owned(), "eth0".to_owned()),
        ("CNI_PATH".to_owned(), path.to_owned()),
    ];
    if let Some(n) = netns {
        v.push(("CNI_NETNS".to_owned(), n.display().to_string()));
    }
    v
}

/// Runs a reference plugin in the node namespace.
pub fn run_ref(node: &Netns, plugin: &str, env: &[(String, String)], stdin: &Value) -> Ran {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", node.name(), &format!("{REF_DIR}/{plugin}")]);
    for (k, _) in std::env::vars() {
        if k.starts_with("CNI_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Ran {
        status: out.status.code().unwrap_or(-1),
        stdout: parse(&out.stdout),
    }
}

/// Runs one of our plugins in process, on a thread inside the node namespace.
pub fn run_ours<P: Plugin + Sync>(
    node: &Netns,
    plugin: &P,
    env: &[(String, String)],
    stdin: &Value,
) -> Ran {
    let map: BTreeMap<String, String> = env.iter().cloned().collect();
    let text = stdin.to_string();
    let out = node
        .run(|| run_with(plugin, |k| map.get(k).cloned(), text.as_bytes()))
        .unwrap();
    Ran {
        status: i32::from(out.status),
        stdout: parse(&out.stdout),
    }
}

/// The config with `prevResult` added.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// A result with MACs, veth names and the sandbox path made neutral, and an
/// empty `dns` dropped (the reference 1.1.1 prints `"dns": {}`).
pub fn normalize_result(v: &Value) -> Value {
    let mut v = v.clone();
    if v.get("dns") == Some(&json!({})) {
        v.as_object_mut().unwrap().remove("dns");
    }
    if let Some(ifs) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifs {
            if i.get("mac").is_some() {
                i["mac"] = json!("MAC");
            }
            if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
                i["name"] = json!("VETH");
            }
            if i.get("sandbox").is_some() {
                i["sandbox"] = json!("SANDBOX");
            }
        }
    }
    v
}

fn pick(v: &Value, keys: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for k in keys {
        if let Some(x) = v.get(*k) {
            out.insert((*k).to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

fn veth(name: &str) -> String {
    if name.starts_with("veth") {
        "VETH".into()
    } else {
        name.to_owned()
    }
}

fn ip_json(ns: &Netns, args: &[&str]) -> Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let text = ns.ip(&full).unwrap();
    serde_json::from_str(&text).unwrap_or(Value::Array(Vec::new()))
}

/// The kernel state of a namespace as comparable facts: links (kind,
/// flags, state, MTU, master, bridge port and bridge options), addresses
/// (link-local ones, derived from MACs, left out), routes, bridge ports and
/// the sysctls the plugins set. Names of veths, MACs and indexes are
/// neutralised.
pub fn kernel_state(ns: &Netns) -> Value {
    let links: Vec<Value> = ip_json(ns, &["-d", "link", "show"])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| {
            let mut p = pick(
                l,
                &[
                    "flags",
                    "mtu",
                    "operstate",
                    "linkmode",
                    "group",
                    "txqlen",
                    "link_type",
                ],
            );
            p["ifname"] = json!(veth(l["ifname"].as_str().unwrap_or("")));
            if let Some(m) = l.get("master") {
                p["master"] = m.clone();
            }
            if let Some(li) = l.get("linkinfo") {
                p["kind"] = li.get("info_kind").cloned().unwrap_or(Value::Null);
                p["slave_kind"] = li.get("info_slave_kind").cloned().unwrap_or(Value::Null);
                if let Some(sd) = li.get("info_slave_data") {
                    p["port"] = pick(
                        sd,
                        &[
                            "state",
                            "hairpin",
                            "learning",
                            "flood",
                            "proxy_arp",
                            "isolated",
                            "guard",
                        ],
                    );
                }
                if let Some(d) = li.get("info_data") {
                    p["bridge"] = pick(
                        d,
                        &[
                            "stp_state",
                            "vlan_filtering",
                            "mcast_snooping",
                            "forward_delay",
                        ],
                    );
                }
            }
            p
        })
        .collect();
    let addrs: Vec<Value> = ip_json(ns, &["addr", "show"])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .flat_map(|l| {
            let dev = veth(l["ifname"].as_str().unwrap_or(""));
            l["addr_info"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a["scope"] != "link")
                .map(move |a| {
                    let mut p = pick(
                        &a,
                        &[
                            "family",
                            "local",
                            "prefixlen",
                            "scope",
                            "nodad",
                            "noprefixroute",
                        ],
                    );
                    p["dev"] = json!(dev);
                    p
                })
        })
        .collect();
    let mut routes = Vec::new();
    for fam in ["-4", "-6"] {
        for r in ip_json(ns, &[fam, "route", "show", "table", "all"])
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            if r["dst"]
                .as_str()
                .is_some_and(|d| d.starts_with("fe80") || d.starts_with("ff00"))
                || r["type"] == "local"
                || r["type"] == "multicast"
                || r["type"] == "broadcast"
                || r["table"] == "local"
            {
                continue;
            }
            let mut p = pick(
                &r,
                &[
                    "dst", "gateway", "protocol", "scope", "metric", "flags", "pref", "prefsrc",
                    "type", "table",
                ],
            );
            p["dev"] = json!(veth(r["dev"].as_str().unwrap_or("")));
            routes.push(p);
        }
    }
    let ports: Vec<Value> =
        serde_json::from_str::<Value>(&ns.cmd(&["bridge", "-j", "link"]).unwrap_or_default())
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let mut x = pick(p, &["flags", "mtu", "master", "state", "priority", "cost"]);
                x["ifname"] = json!(veth(p["ifname"].as_str().unwrap_or("")));
                x
            })
            .collect();
    let mut sysctls = serde_json::Map::new();
    for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
        sysctls.insert(key.into(), json!(ns.read_sysctl(key).unwrap_or_default()));
    }
    for dev in ["eth0", "cni0", "kbr0"] {
        for key in [
            format!("net.ipv6.conf.{dev}.accept_dad"),
            format!("net.ipv4.conf.{dev}.arp_notify"),
            format!("net.ipv6.conf.{dev}.accept_ra"),
        ] {
            if let Ok(v) = ns.read_sysctl(&key) {
                sysctls.insert(key, json!(v));
            }
        }
    }
    json!({"links": links, "addrs": addrs, "routes": routes, "bridge_ports": ports, "sysctls": sysctls})
}

/// The files of a host-local network directory and their contents (ours'
/// index directory left out).
pub fn data_dir_state(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "k8snet-index" {
                continue;
            }
            out.insert(name, std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    out
}

/// Replaces container IDs in data-dir contents (each side uses its own).
pub fn data_dir_neutral(dir: &Path, id_from: &str, id_to: &str) -> BTreeMap<String, String> {
    data_dir_state(dir)
        .into_iter()
        .map(|(k, v)| (k, v.replace(id_from, id_to)))
        .collect()
}

/// Waits (in the test, bounded) until `cond` holds: the kernel tears a
/// deleted namespace down asynchronously, taking its veth peers with it.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The prefix of a container interface whose deletion the bridge plugin
/// handed to a detached process (`deferDelete`, the default).
pub const PENDING_PREFIX: &str = "k8sdel";

/// The links of `ns` whose deferred deletion is still pending.
pub fn pending_deletions(ns: &Netns) -> Vec<String> {
    ns.links()
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.starts_with(PENDING_PREFIX))
        .collect()
}

/// Waits (polling, 10 s at most) until the veth pairs whose deletion our
/// DEL deferred are gone from the pod namespaces `pods` (deleting the pair
/// removes both ends at once, so the node's end is gone then too).
pub fn wait_for_deferred_deletions(pods: &[&Netns]) {
    wait_until("the deferred veth deletions", || {
        pods.iter().all(|p| pending_deletions(p).is_empty())
    });
}

/// The number of ports on the bridges of `ns`.
pub fn bridge_ports(ns: &Netns) -> usize {
    serde_json::from_str::<Value>(&ns.cmd(&["bridge", "-j", "link"]).unwrap_or_default())
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

/// The paths where two JSON values differ, with both sides.
pub fn json_diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                json_diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                json_diff(p, q, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: ours {a} / reference {b}")),
        _ => {}
    }
}

/// Asserts two states are equal, printing only the differences.
pub fn assert_same(ours: &Value, reference: &Value, what: &str) {
    let mut d = Vec::new();
    json_diff(ours, reference, "", &mut d);
    assert!(d.is_empty(), "{what} differs:\n{}", d.join("\n"));
}
