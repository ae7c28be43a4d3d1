//! Robustness of our plugins in namespaces made by k8snet-testnet: 32
//! concurrent ADDs, a plugin killed mid-ADD (GC cleans what it left),
//! 1,000 ADD/DEL cycles leave nothing, masquerade and port mappings appear
//! and disappear, loopback.

#![cfg(all(feature = "linux", target_os = "linux"))]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use k8snet_cni::linux::{Bridge, Loopback, Portmap};
use k8snet_testnet::{Netns, Testnet};
use serde_json::{Value, json};

fn conf(data: &Path, version: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version, "name": "kt", "type": "k8snet-bridge", "bridge": "kbr0", "isGateway": true,
        "ipam": {"type": "k8snet-host-local", "dataDir": data,
                 "ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "fd00:18::/64"}]],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn ip_files(dir: &Path) -> Vec<String> {
    data_dir_state(dir)
        .into_keys()
        .filter(|k| k.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

fn index_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("k8snet-index"))
        .map(|rd| rd.flatten().filter(|e| e.file_name() != "stamp").count())
        .unwrap_or(0)
}

fn node_veths(node: &Netns) -> Vec<String> {
    node.links()
        .unwrap()
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .collect()
}

#[test]
fn thirty_two_concurrent_adds_never_share_an_address() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnicon").unwrap();
    let pods: Vec<Netns> = (0..32)
        .map(|i| tn.add_netns(&format!("p{i}")).unwrap())
        .collect();
    let data = TempDir::new("con");
    let c = conf(&data.0, "1.0.0", json!({}));
    let node = tn.node();
    let results: Vec<Ran> = std::thread::scope(|s| {
        let hs: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = &c;
                s.spawn(move || {
                    run_ours(
                        node,
                        &Bridge,
                        &env("ADD", &format!("c{i}"), Some(&p.path()), "/x"),
                        c,
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = BTreeSet::new();
    for r in &results {
        assert!(r.ok(), "{r:?}");
        for ip in r.stdout["ips"].as_array().unwrap() {
            assert!(
                seen.insert(ip["address"].as_str().unwrap().to_owned()),
                "duplicate {ip}"
            );
        }
    }
    assert_eq!(seen.len(), 64);
    assert_eq!(ip_files(&data.0.join("kt")).len(), 64);
    assert_eq!(node_veths(node).len(), 32);
    // These ADDs raced on creating the bridge too: each reports the MAC the
    // bridge has (it used to follow the lowest port's until some ADD pinned
    // whatever it had read, so most results named a MAC it no longer had).
    let link: Value =
        serde_json::from_str(&node.ip(&["-j", "link", "show", "dev", "kbr0"]).unwrap()).unwrap();
    let bridge_mac = link[0]["address"].as_str().unwrap();
    for r in &results {
        assert_eq!(r.stdout["interfaces"][0]["mac"], bridge_mac, "{}", r.stdout);
    }
}

/// The variable that makes this test binary the plugin process the test
/// below kills (see [`act_as_plugin_if_asked`]).
const PLUGIN_ENV: &str = "K8SNET_CNI_TEST_PLUGIN";
const KILLED_TEST: &str = "a_plugin_killed_mid_add_leaves_nothing_gc_does_not_clean";

/// The test below starts this test binary again, running only itself, with
/// [`PLUGIN_ENV`] set: the copy is then the bridge plugin (stdin, `CNI_*`,
/// stdout, exit status, exactly as the example binary) and exits before
/// the test's body, so no helper test has to be ignored. Without the
/// variable this does nothing.
fn act_as_plugin_if_asked() {
    if std::env::var(PLUGIN_ENV).as_deref() != Ok("bridge") {
        return;
    }
    let mut stdin = Vec::new();
    let code = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => {
            let out = k8snet_cni::run_with(&Bridge, |k| std::env::var(k).ok(), &stdin);
            let mut so = std::io::stdout().lock();
            let _ = so.write_all(&out.stdout).and_then(|()| so.flush());
            i32::from(out.status)
        }
        Err(_) => 2,
    };
    std::process::exit(code);
}

#[test]
fn a_plugin_killed_mid_add_leaves_nothing_gc_does_not_clean() {
    act_as_plugin_if_asked();
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnikill").unwrap();
    let data = TempDir::new("kill");
    let c = conf(&data.0, "1.1.0", json!({"ipMasq": true}));
    let exe = std::env::current_exe().unwrap();
    for (i, delay_ms) in [0u64, 1, 2, 3, 5, 8, 12, 20, 40, 200]
        .into_iter()
        .enumerate()
    {
        let pod = tn.add_netns(&format!("k{i}")).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", tn.node().name()])
            .arg(&exe)
            .args(["--exact", KILLED_TEST, "--nocapture", "--test-threads", "1"])
            .env(PLUGIN_ENV, "bridge")
            .envs(env("ADD", &format!("k{i}"), Some(&pod.path()), "/x"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(c.to_string().as_bytes())
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    // GC with no valid attachment: everything the killed ADDs made goes.
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    let r = run_ours(tn.node(), &Bridge, &env("GC", "", None, "/x"), &gc);
    assert!(r.ok(), "{r:?}");
    wait_until("killed ADDs' veths to go", || {
        node_veths(tn.node()).is_empty()
    });
    assert!(
        ip_files(&data.0.join("kt")).is_empty(),
        "{:?}",
        data_dir_state(&data.0.join("kt"))
    );
    let nft = tn
        .node()
        .cmd(&["nft", "list", "table", "inet", "k8snet-cni-masq"])
        .unwrap_or_default();
    assert!(!nft.contains("chain m_"), "{nft}");
    for ns in tn.namespaces().iter().skip(1) {
        assert_eq!(ns.links().unwrap(), ["lo"], "{}", ns.name());
    }
}

#[test]
fn a_thousand_add_del_cycles_leave_nothing() {
    k8snet_testnet::kernel_test!();
    let cycles: usize = std::env::var("K8SNET_CNI_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut tn = Testnet::new("cnicyc").unwrap();
    let pod = tn.add_netns("p").unwrap();
    let data = TempDir::new("cyc");
    let c = conf(&data.0, "1.0.0", json!({"ipMasq": true}));
    let dir = data.0.join("kt");
    for i in 0..cycles {
        let id = format!("cyc{i}");
        let a = run_ours(
            tn.node(),
            &Bridge,
            &env("ADD", &id, Some(&pod.path()), "/x"),
            &c,
        );
        assert!(a.ok(), "cycle {i}: {a:?}");
        let d = run_ours(
            tn.node(),
            &Bridge,
            &env("DEL", &id, Some(&pod.path()), "/x"),
            &with_prev(&c, &a.stdout),
        );
        assert!(d.ok(), "cycle {i}: {d:?}");
        // DEL handed the veth pair's deletion to a detached process and
        // freed the name: the next ADD reuses `eth0` at once.
        assert!(
            !pod.links().unwrap().iter().any(|l| l == "eth0"),
            "cycle {i}"
        );
    }
    wait_for_deferred_deletions(&[&pod]);
    assert!(node_veths(tn.node()).is_empty());
    assert_eq!(pod.links().unwrap(), ["lo"]);
    let addrs = pod.ip(&["-br", "addr", "show", "dev", "lo"]).unwrap();
    assert!(!addrs.contains("198.18."), "{addrs}");
    assert!(ip_files(&dir).is_empty());
    assert_eq!(index_entries(&dir), 0);
    let nft = tn
        .node()
        .cmd(&["nft", "list", "table", "inet", "k8snet-cni-masq"])
        .unwrap();
    assert!(
        !nft.contains("chain m_") && !nft.contains("198.18."),
        "{nft}"
    );
}

#[test]
fn masquerade_and_port_mappings_come_and_go() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnipm").unwrap();
    let pod = tn.add_netns("p").unwrap();
    let data = TempDir::new("pm");
    let c = conf(&data.0, "1.0.0", json!({"ipMasq": true}));
    let a = run_ours(
        tn.node(),
        &Bridge,
        &env("ADD", "pm1", Some(&pod.path()), "/x"),
        &c,
    );
    assert!(a.ok(), "{a:?}");
    let masq = tn
        .node()
        .cmd(&["nft", "list", "table", "inet", "k8snet-cni-masq"])
        .unwrap();
    assert!(
        masq.contains("198.18.0.2 : jump m_") && masq.contains("masquerade"),
        "{masq}"
    );
    // The node's own address, a pod listening on :80, hostPort 8080.
    tn.node()
        .ip(&["addr", "add", "198.19.128.1/24", "dev", "lo"])
        .unwrap();
    let pm = json!({"cniVersion": "1.0.0", "name": "kt", "type": "k8snet-portmap",
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": a.stdout});
    let p = run_ours(
        tn.node(),
        &Portmap,
        &env("ADD", "pm1", Some(&pod.path()), "/x"),
        &pm,
    );
    assert!(p.ok(), "{p:?}");
    assert_eq!(p.stdout, a.stdout, "portmap passes prevResult through");
    let listener = pod
        .run(|| TcpListener::bind("198.18.0.2:80"))
        .unwrap()
        .unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"pod").unwrap();
    });
    let got = tn
        .node()
        .run(|| {
            let mut s = TcpStream::connect_timeout(
                &"198.19.128.1:8080".parse().unwrap(),
                Duration::from_secs(5),
            )?;
            let mut b = String::new();
            s.read_to_string(&mut b).map(|_| b)
        })
        .unwrap()
        .unwrap();
    server.join().unwrap();
    assert_eq!(got, "pod");
    let chk = run_ours(
        tn.node(),
        &Portmap,
        &env("CHECK", "pm1", Some(&pod.path()), "/x"),
        &pm,
    );
    assert!(chk.ok(), "{chk:?}");
    let pd = run_ours(
        tn.node(),
        &Portmap,
        &env("DEL", "pm1", Some(&pod.path()), "/x"),
        &pm,
    );
    assert!(pd.ok(), "{pd:?}");
    let table = tn
        .node()
        .cmd(&["nft", "list", "table", "inet", "k8snet-portmap"])
        .unwrap();
    assert!(!table.contains("8080"), "{table}");
    let d = run_ours(
        tn.node(),
        &Bridge,
        &env("DEL", "pm1", Some(&pod.path()), "/x"),
        &with_prev(&c, &a.stdout),
    );
    assert!(d.ok(), "{d:?}");
    let masq = tn
        .node()
        .cmd(&["nft", "list", "table", "inet", "k8snet-cni-masq"])
        .unwrap();
    assert!(
        !masq.contains("chain m_") && !masq.contains("198.18.0.2"),
        "{masq}"
    );
}

#[test]
fn loopback_matches_the_reference() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cnilo").unwrap();
    let pod = tn.add_netns("p").unwrap();
    pod.ip(&["link", "set", "lo", "down"]).unwrap();
    let c = json!({"cniVersion": "1.0.0", "name": "lo", "type": "k8snet-loopback"});
    let mut e = env("ADD", "lo1", Some(&pod.path()), "/x");
    e.iter_mut().for_each(|(k, v)| {
        if k == "CNI_IFNAME" {
            *v = "lo".into()
        }
    });
    let ours = run_ours(tn.node(), &Loopback, &e, &c);
    assert!(ours.ok(), "{ours:?}");
    assert!(pod.ip(&["link", "show", "lo"]).unwrap().contains("UP"));
    if reference_available() {
        let pod2 = tn.add_netns("q").unwrap();
        pod2.ip(&["link", "set", "lo", "down"]).unwrap();
        let mut e2 = env("ADD", "lo2", Some(&pod2.path()), REF_DIR);
        e2.iter_mut().for_each(|(k, v)| {
            if k == "CNI_IFNAME" {
                *v = "lo".into()
            }
        });
        let mut rc = c.clone();
        rc["type"] = json!("loopback");
        let reference = run_ref(tn.node(), "loopback", &e2, &rc);
        assert_same(
            &normalize_result(&ours.stdout),
            &normalize_result(&reference.stdout),
            "loopback result",
        );
    }
    let mut d = e.clone();
    d[0].1 = "DEL".into();
    assert!(run_ours(tn.node(), &Loopback, &d, &c).ok());
    assert!(!pod.ip(&["link", "show", "lo"]).unwrap().contains(",UP"));
}

/// The reference loopback never parses CNI_ARGS: a malformed pair does not
/// fail its ADD (ours sets `lo` up and answers as usual).
#[test]
fn loopback_add_does_not_parse_cni_args() {
    k8snet_testnet::kernel_test!();
    let mut tn = Testnet::new("cniloa").unwrap();
    let pod = tn.add_netns("p").unwrap();
    pod.ip(&["link", "set", "lo", "down"]).unwrap();
    let c = json!({"cniVersion": "1.0.0", "name": "lo", "type": "k8snet-loopback"});
    let mut e = env("ADD", "lo1", Some(&pod.path()), "/x");
    for (k, v) in &mut e {
        if k == "CNI_IFNAME" {
            *v = "lo".into();
        }
    }
    e.push(("CNI_ARGS".into(), "K8S_POD_NAME=web;novalue".into()));
    let ours = run_ours(tn.node(), &Loopback, &e, &c);
    assert!(ours.ok(), "{ours:?}");
    assert!(pod.ip(&["link", "show", "lo"]).unwrap().contains("UP"));
}
