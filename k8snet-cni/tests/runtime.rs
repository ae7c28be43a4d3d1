//! The runtime side against fake plugins (shell scripts that log their
//! calls and print canned answers): chaining, capabilities, the cache in
//! libcni's format, DEL order, CHECK/GC/STATUS rules, error propagation.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use k8snet_cni::runtime::cache;
use k8snet_cni::{Attachment, NetConfList, Runtime, RuntimeConf};
use serde_json::{Value, json};

const FAKE: &str = r#"#!/bin/sh
name=$(basename "$0")
dir=$(cd "$(dirname "$0")/.." && pwd)
echo "$name $CNI_COMMAND ${CNI_CONTAINERID:--} ${CNI_IFNAME:--} ${CNI_NETNS:--} ${CNI_ARGS:--}" >> "$dir/log"
cat > "$dir/$name.$CNI_COMMAND.stdin"
if [ -f "$dir/$name.$CNI_COMMAND.fail" ]; then cat "$dir/$name.$CNI_COMMAND.fail"; exit 1; fi
if [ "$CNI_COMMAND" = ADD ]; then cat "$dir/$name.result"; fi
exit 0
"#;

struct World {
    dir: PathBuf,
}

impl World {
    fn new(plugins: &[(&str, Value)]) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "k8snet-cni-rt-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bin")).unwrap();
        for (name, result) in plugins {
            let bin = dir.join("bin").join(name);
            fs::write(&bin, FAKE).unwrap();
            fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
            fs::write(dir.join(format!("{name}.result")), result.to_string()).unwrap();
        }
        Self { dir }
    }

    fn runtime(&self) -> Runtime {
        Runtime::new(
            vec![self.dir.join("nothing-here"), self.dir.join("bin")],
            self.dir.join("cache"),
        )
    }

    fn log(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn stdin(&self, plugin: &str, command: &str) -> Value {
        serde_json::from_slice(
            &fs::read(self.dir.join(format!("{plugin}.{command}.stdin"))).unwrap(),
        )
        .unwrap()
    }

    fn fail(&self, plugin: &str, command: &str, body: &str) {
        fs::write(self.dir.join(format!("{plugin}.{command}.fail")), body).unwrap();
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn list(version: &str, extra: Value) -> NetConfList {
    let mut v = json!({
        "cniVersion": version,
        "name": "net1",
        "plugins": [
            {"type": "a", "keyA": 1},
            {"type": "b", "capabilities": {"portMappings": true, "mac": false}}
        ]
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    NetConfList::from_slice(v.to_string().as_bytes()).unwrap()
}

fn rt_conf(id: &str) -> RuntimeConf {
    RuntimeConf {
        container_id: id.into(),
        netns: Some("/run/netns/pod".into()),
        ifname: "eth0".into(),
        args: vec![("K8S_POD_NAME".into(), "web".into())],
        capability_args: serde_json::from_value(json!({
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
            "mac": "0a:58:00:00:00:01"
        }))
        .unwrap(),
    }
}

fn plugins() -> Vec<(&'static str, Value)> {
    vec![
        (
            "a",
            json!({"cniVersion": "1.1.0", "ips": [{"address": "198.18.0.2/24", "gateway": "198.18.0.1"}]}),
        ),
        (
            "b",
            json!({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/pod"}],
                     "ips": [{"address": "198.18.0.2/24", "gateway": "198.18.0.1", "interface": 0}]}),
        ),
    ]
}

#[test]
fn add_chains_results_and_caches_them_in_libcni_format() {
    let w = World::new(&plugins());
    let rt = w.runtime();
    let l = list("1.1.0", json!({}));
    let r = rt.add_list(&l, &rt_conf("ctr1")).unwrap();
    assert_eq!(r.interfaces[0].name, "eth0");
    assert_eq!(
        w.log(),
        [
            "a ADD ctr1 eth0 /run/netns/pod K8S_POD_NAME=web",
            "b ADD ctr1 eth0 /run/netns/pod K8S_POD_NAME=web"
        ]
    );
    let a_in = w.stdin("a", "ADD");
    assert_eq!(
        (a_in["name"].as_str(), a_in["cniVersion"].as_str()),
        (Some("net1"), Some("1.1.0"))
    );
    assert!(a_in.get("prevResult").is_none() && a_in.get("runtimeConfig").is_none());
    assert_eq!(a_in["keyA"], 1, "unknown keys pass through");
    let b_in = w.stdin("b", "ADD");
    assert_eq!(b_in["prevResult"]["ips"][0]["address"], "198.18.0.2/24");
    // Only the declared (and true) capabilities.
    assert_eq!(
        b_in["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
    );

    let path = cache::cache_path(rt.cache_dir(), "net1", "ctr1", "eth0");
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
        0o700
    );
    let raw: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let keys: Vec<&str> = raw
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "cniArgs",
        "capabilityArgs",
        "result",
    ] {
        assert!(keys.contains(&k), "{k} missing from {raw}");
    }
    assert_eq!(raw["kind"], "cniCacheV1");
    assert_eq!(raw["cniArgs"], json!([["K8S_POD_NAME", "web"]]));
    let entry = cache::read(&path).unwrap().unwrap();
    assert_eq!(
        entry.config,
        l.bytes(),
        "config is the list's bytes (base64 on disk)"
    );
    assert_eq!(rt.cached_result(&l, &rt_conf("ctr1")).unwrap().unwrap(), r);
}

#[test]
fn del_runs_in_reverse_with_the_cached_result_and_tolerates_no_cache() {
    let w = World::new(&plugins());
    let rt = w.runtime();
    let l = list("1.0.0", json!({}));
    rt.add_list(&l, &rt_conf("ctr1")).unwrap();
    rt.del_list(&l, &rt_conf("ctr1")).unwrap();
    let log = w.log();
    assert_eq!(
        &log[2..],
        [
            "b DEL ctr1 eth0 /run/netns/pod K8S_POD_NAME=web",
            "a DEL ctr1 eth0 /run/netns/pod K8S_POD_NAME=web"
        ]
    );
    assert_eq!(
        w.stdin("a", "DEL")["prevResult"]["interfaces"][0]["name"],
        "eth0"
    );
    assert_eq!(
        w.stdin("b", "DEL")["runtimeConfig"]["portMappings"][0]["hostPort"],
        8080
    );
    assert!(!cache::cache_path(rt.cache_dir(), "net1", "ctr1", "eth0").exists());
    // Again, without a cache entry and without a netns: no prevResult, still fine.
    let mut c = rt_conf("ctr1");
    c.netns = None;
    rt.del_list(&l, &c).unwrap();
    assert!(w.stdin("a", "DEL").get("prevResult").is_none());
    assert!(w.log().last().unwrap().ends_with(" - K8S_POD_NAME=web"));
    // Below 0.4.0 there is no cached prevResult on DEL.
    let old = list("0.3.1", json!({}));
    rt.add_list(&old, &rt_conf("ctr2")).unwrap();
    rt.del_list(&old, &rt_conf("ctr2")).unwrap();
    assert!(w.stdin("a", "DEL").get("prevResult").is_none());
}

#[test]
fn check_needs_040_and_honours_disable_check() {
    let w = World::new(&plugins());
    let rt = w.runtime();
    let e = rt
        .check_list(&list("0.3.1", json!({})), &rt_conf("c"))
        .unwrap_err();
    assert_eq!(e.code(), 1);
    rt.check_list(&list("1.0.0", json!({"disableCheck": true})), &rt_conf("c"))
        .unwrap();
    assert!(w.log().is_empty());
    let l = list("1.0.0", json!({}));
    rt.add_list(&l, &rt_conf("c")).unwrap();
    rt.check_list(&l, &rt_conf("c")).unwrap();
    assert_eq!(
        w.stdin("b", "CHECK")["prevResult"]["ips"][0]["interface"],
        0
    );
}

#[test]
fn plugin_errors_keep_their_code_and_message() {
    let w = World::new(&plugins());
    let rt = w.runtime();
    w.fail(
        "b",
        "ADD",
        r#"{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"try later"}"#,
    );
    let e = rt
        .add_list(&list("1.0.0", json!({})), &rt_conf("c"))
        .unwrap_err();
    assert_eq!(e.code(), 11);
    assert_eq!(e.to_string(), "plugin b: busy (code 11): try later");
    assert!(!cache::cache_path(rt.cache_dir(), "net1", "c", "eth0").exists());
    w.fail("a", "ADD", "not json at all");
    let e = rt
        .add_list(&list("1.0.0", json!({})), &rt_conf("c"))
        .unwrap_err();
    assert!(e.to_string().contains("not json at all"), "{e}");
    let missing =
        NetConfList::from_slice(br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"zzz"}]}"#)
            .unwrap();
    let e = rt.add_list(&missing, &rt_conf("c")).unwrap_err();
    assert!(
        e.to_string().contains("failed to find plugin \"zzz\""),
        "{e}"
    );
    let e = rt
        .add_list(&list("1.0.0", json!({})), &rt_conf("bad/id"))
        .unwrap_err();
    assert_eq!(e.code(), 4);
}

#[test]
fn gc_deletes_stale_attachments_then_sends_gc_with_both_keys() {
    let w = World::new(&plugins());
    let rt = w.runtime();
    let l = list("1.1.0", json!({}));
    for id in ["keep", "stale"] {
        rt.add_list(&l, &rt_conf(id)).unwrap();
    }
    let valid = [Attachment {
        container_id: "keep".into(),
        ifname: "eth0".into(),
    }];
    rt.gc_list(&l, &valid).unwrap();
    let log = w.log();
    assert_eq!(
        &log[4..6],
        [
            "b DEL stale eth0 /run/netns/pod K8S_POD_NAME=web",
            "a DEL stale eth0 /run/netns/pod K8S_POD_NAME=web"
        ]
    );
    assert_eq!(&log[6..], ["a GC - - - -", "b GC - - - -"]);
    let gc_in = w.stdin("a", "GC");
    let want = json!([{"containerID": "keep", "ifname": "eth0"}]);
    assert_eq!(
        (
            &gc_in["cni.dev/valid-attachments"],
            &gc_in["cni.dev/attachments"]
        ),
        (&want, &want)
    );
    assert_eq!(rt.cached_attachments(None).unwrap().len(), 1);
    // Below 1.1.0: stale attachments are still deleted, but no GC is sent.
    rt.gc_list(&list("1.0.0", json!({})), &[]).unwrap();
    assert_eq!(w.log().iter().filter(|l| l.contains(" GC ")).count(), 2);
    assert!(rt.cached_attachments(None).unwrap().is_empty());
    // disableGC: nothing at all.
    let before = w.log().len();
    rt.gc_list(&list("1.1.0", json!({"disableGC": true})), &[])
        .unwrap();
    assert_eq!(w.log().len(), before);
}

#[test]
fn status_is_a_no_op_below_110_and_keeps_codes() {
    let w = World::new(&plugins());
    let rt = w.runtime();
    w.fail(
        "a",
        "STATUS",
        r#"{"cniVersion":"1.1.0","code":50,"msg":"no addresses left"}"#,
    );
    rt.status_list(&list("1.0.0", json!({}))).unwrap();
    assert!(w.log().is_empty());
    let e = rt.status_list(&list("1.1.0", json!({}))).unwrap_err();
    assert_eq!(e.code(), 50);
}

#[test]
fn version_info_asks_the_plugin() {
    let w = World::new(&[]);
    let bin = w.dir.join("bin").join("v");
    fs::write(&bin, "#!/bin/sh\ncat >/dev/null; echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}'\n").unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(w.runtime().version_info("v").unwrap(), ["0.4.0", "1.0.0"]);
}

/// SPEC (Section 3, "Deriving execution configuration from plugin
/// configuration"): the runtime must remove `capabilities` from what it
/// sends; only `runtimeConfig` carries the (declared) capability arguments.
/// (libcni's injectRuntimeConfig leaves the key in; we follow the spec.)
#[test]
fn capabilities_are_not_sent_to_the_plugin() {
    let w = World::new(&plugins());
    let rt = w.runtime();
    let l = list("1.1.0", json!({}));
    rt.add_list(&l, &rt_conf("ctr1")).unwrap();
    let b_in = w.stdin("b", "ADD");
    assert!(b_in.get("runtimeConfig").is_some());
    assert!(b_in.get("capabilities").is_none(), "{b_in}");
    rt.check_list(&l, &rt_conf("ctr1")).unwrap();
    assert!(w.stdin("b", "CHECK").get("capabilities").is_none());
    rt.del_list(&l, &rt_conf("ctr1")).unwrap();
    assert!(w.stdin("b", "DEL").get("capabilities").is_none());
    rt.gc_list(&l, &[]).unwrap();
    assert!(w.stdin("b", "GC").get("capabilities").is_none());
    rt.status_list(&l).unwrap();
    assert!(w.stdin("b", "STATUS").get("capabilities").is_none());
    // The cache keeps the list as written, capabilities included.
    assert!(String::from_utf8_lossy(l.bytes()).contains("capabilities"));
}

/// libcni's ValidateContainerID: an empty container ID is "missing
/// containerID", code 3 (unknown container: nothing to clean up); no
/// plugin runs.
#[test]
fn an_empty_container_id_is_an_unknown_container() {
    let w = World::new(&plugins());
    let rt = w.runtime();
    let l = list("1.1.0", json!({}));
    for e in [
        rt.add_list(&l, &rt_conf("")).unwrap_err(),
        rt.del_list(&l, &rt_conf("")).unwrap_err(),
        rt.check_list(&l, &rt_conf("")).unwrap_err(),
    ] {
        assert_eq!(e.code(), 3, "{e}");
        assert!(e.to_string().contains("missing containerID"), "{e}");
    }
    assert!(w.log().is_empty(), "{:?}", w.log());
    // A malformed one is still a bad variable (code 4).
    assert_eq!(rt.add_list(&l, &rt_conf("bad id")).unwrap_err().code(), 4);
}

/// libcni's GCNetworkList returns nil when it cannot list its cache: no
/// DEL and no GC are sent. (Run as root, a mode cannot hide the directory,
/// so the cache's `results` is made a file, which cannot be listed.)
#[test]
fn gc_with_an_unreadable_cache_does_nothing() {
    let w = World::new(&plugins());
    let rt = w.runtime();
    fs::create_dir_all(rt.cache_dir()).unwrap();
    fs::write(rt.cache_dir().join("results"), "not a directory").unwrap();
    rt.gc_list(&list("1.1.0", json!({})), &[]).unwrap();
    assert!(w.log().is_empty(), "{:?}", w.log());
    // With no cache at all, GC still reaches the plugins.
    let w = World::new(&plugins());
    w.runtime().gc_list(&list("1.1.0", json!({})), &[]).unwrap();
    assert_eq!(w.log(), ["a GC - - - -", "b GC - - - -"]);
}

/// The cache's temporary file is named after the whole file name: two
/// attachments whose names share the part before a dot (network `net.a`
/// and `net.b`) do not share it, and a stray file where the old scheme put
/// its temporary (`net.tmp<pid>`) is no obstacle.
#[test]
fn cache_writes_use_a_temporary_of_their_own() {
    let w = World::new(&[]);
    let dir = w.dir.join("cache");
    let entry = |net: &str| cache::CacheEntry {
        kind: cache::CACHE_KIND.into(),
        container_id: "c1".into(),
        config: b"{}".to_vec(),
        if_name: "eth0".into(),
        network_name: net.into(),
        netns: String::new(),
        cni_args: Vec::new(),
        capability_args: serde_json::Map::new(),
        result: None,
    };
    let results = dir.join("results");
    fs::create_dir_all(results.join(format!("net.tmp{}", std::process::id()))).unwrap();
    std::thread::scope(|s| {
        for net in ["net.a", "net.b"] {
            let (dir, e) = (&dir, entry(net));
            s.spawn(move || {
                for _ in 0..50 {
                    cache::write(dir, &e).unwrap();
                }
            });
        }
    });
    for net in ["net.a", "net.b"] {
        let got = cache::read(&cache::cache_path(&dir, net, "c1", "eth0"))
            .unwrap()
            .unwrap();
        assert_eq!(got, entry(net));
    }
    let mut names: Vec<String> = fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "net.a-c1-eth0".to_owned(),
            "net.b-c1-eth0".to_owned(),
            format!("net.tmp{}", std::process::id())
        ]
    );
}

/// As libcni's AddNetworkList: each plugin's result goes to the next one
/// as printed (not converted to the list's version) and is cached as
/// printed; the result returned (and the one read back from the cache) is
/// converted to the list's version.
#[test]
fn results_pass_on_and_are_cached_as_printed() {
    let w = World::new(&[
        (
            "a",
            json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "198.18.0.2/24"}]}),
        ),
        (
            "b",
            json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "198.18.0.3/24"}]}),
        ),
    ]);
    let rt = w.runtime();
    let l = list("0.3.1", json!({}));
    let r = rt.add_list(&l, &rt_conf("c")).unwrap();
    let b_in = w.stdin("b", "ADD");
    assert_eq!(b_in["cniVersion"], "0.3.1");
    assert_eq!(b_in["prevResult"]["cniVersion"], "0.4.0");
    assert_eq!(r.cni_version, k8snet_cni::Version::V0_3_1);
    assert_eq!(r.ips[0].address.to_string(), "198.18.0.3/24");
    let entry = cache::read(&cache::cache_path(rt.cache_dir(), "net1", "c", "eth0"))
        .unwrap()
        .unwrap();
    assert_eq!(entry.result.unwrap()["cniVersion"], "0.4.0");
    assert_eq!(rt.cached_result(&l, &rt_conf("c")).unwrap().unwrap(), r);
}

/// A last result that cannot be converted to the list's version (1.x
/// without addresses, for a 0.2.0 list) fails ADD, and a cached one fails
/// `cached_result` (libcni: "failed to convert cached result to config
/// version"), instead of coming out as an empty 0.2.0 result.
#[test]
fn a_result_that_cannot_be_converted_fails() {
    let w = World::new(&[
        (
            "a",
            json!({"cniVersion": "1.1.0", "ips": [{"address": "198.18.0.2/24"}]}),
        ),
        (
            "b",
            json!({"cniVersion": "1.1.0", "dns": {"nameservers": ["198.19.0.10"]}}),
        ),
    ]);
    let rt = w.runtime();
    let e = rt
        .add_list(&list("0.2.0", json!({})), &rt_conf("c"))
        .unwrap_err();
    assert_eq!(e.code(), 999, "{e}");
    assert!(e.to_string().contains("cannot convert"), "{e}");
    // Cached by a 1.1.0 list of the same name, read back at 0.2.0.
    let r = rt
        .add_list(&list("1.1.0", json!({})), &rt_conf("c"))
        .unwrap();
    assert_eq!(r.dns.nameservers, ["198.19.0.10"]);
    let e = rt
        .cached_result(&list("0.2.0", json!({})), &rt_conf("c"))
        .unwrap_err();
    assert!(
        e.to_string().contains("failed to convert cached result"),
        "{e}"
    );
}
