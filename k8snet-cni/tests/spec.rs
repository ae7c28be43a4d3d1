//! Golden tests derived from the CNI spec's examples (re-expressed in the
//! project's address plan): results at every version and the conversions
//! between them, the error and VERSION objects, GC's keys, configuration
//! lists, and the plugin skeleton's handling of env, stdin and versions.

use std::collections::HashMap;
use std::path::PathBuf;

use k8snet_cni::{
    CniResult, Error, GcRequest, NetConfList, Plugin, Request, Version, code, run_with,
};
use serde_json::Value;

fn golden(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn result_golden(v: Version) -> Value {
    golden(&format!("result-{v}.json"))
}

#[test]
fn the_richest_result_converts_to_every_version() {
    let full = CniResult::from_json(&result_golden(Version::V1_1_0), Version::V1_1_0).unwrap();
    for v in Version::ALL {
        assert_eq!(full.to_json(v), result_golden(v), "1.1.0 -> {v}");
    }
}

#[test]
fn every_version_reads_and_writes_back_unchanged() {
    for v in Version::ALL {
        let g = result_golden(v);
        let r = CniResult::from_json(&g, Version::V0_1_0).unwrap();
        assert_eq!(r.cni_version, v);
        assert_eq!(r.to_json(v), g, "{v}");
    }
}

#[test]
fn upgrades_keep_what_the_older_version_had() {
    // 0.4.0 -> 1.0.0 drops `version`; the 1.1-only interface fields were never there.
    let r = CniResult::from_json(&result_golden(Version::V0_4_0), Version::V0_4_0).unwrap();
    let mut want = result_golden(Version::V1_0_0);
    for i in want["interfaces"].as_array_mut().unwrap() {
        let o = i.as_object_mut().unwrap();
        o.remove("mtu");
        o.remove("socketPath");
        o.remove("pciID");
    }
    assert_eq!(r.to_json(Version::V1_0_0), want);
    // 0.2.0 -> 1.1.0: ips without interfaces, routes of both families.
    let old = CniResult::from_json(&result_golden(Version::V0_2_0), Version::V0_2_0).unwrap();
    let up = old.to_json(Version::V1_1_0);
    assert!(up.get("interfaces").is_none());
    assert_eq!(up["ips"][1]["address"], "fd00:18::3/64");
    assert!(up["ips"][0].get("interface").is_none());
    assert_eq!(up["routes"].as_array().unwrap().len(), 3);
}

#[test]
fn results_print_in_the_spec_order_and_omit_empty_parts() {
    let full = CniResult::from_json(&result_golden(Version::V1_1_0), Version::V1_1_0).unwrap();
    let text = full.to_json_string(Version::V1_0_0);
    assert!(
        text.starts_with(r#"{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","#),
        "{text}"
    );
    let empty = CniResult::new(Version::V1_0_0);
    assert_eq!(
        empty.to_json_string(Version::V1_0_0),
        r#"{"cniVersion":"1.0.0"}"#
    );
    // An empty prevResult is an empty result, not an error.
    assert_eq!(
        CniResult::from_json(&serde_json::json!({}), Version::V1_0_0).unwrap(),
        empty
    );
    let bad = CniResult::from_json(
        &serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"x"}]}),
        Version::V1_0_0,
    )
    .unwrap_err();
    assert_eq!(bad.code(), code::DECODE);
    assert!(bad.to_string().starts_with("ips[0].address: "), "{bad}");
}

#[test]
fn configuration_lists_negotiate_and_keep_unknown_keys() {
    let bytes = serde_json::to_vec(&golden("conflist-1.1.0.json")).unwrap();
    let list = NetConfList::from_slice(&bytes).unwrap();
    assert_eq!(list.version(), Version::V1_1_0);
    assert_eq!(list.plugins.len(), 3);
    assert_eq!(list.plugins[0]["keyA"][1], "plugin specific");
    assert_eq!(list.capabilities(2), vec!["portMappings".to_owned()]);
    assert_eq!(list.bytes(), &bytes[..]);
}

/// A plugin that records what it was given.
#[derive(Default)]
struct Fake;

impl Plugin for Fake {
    fn add(&self, req: &Request) -> k8snet_cni::Result<CniResult> {
        let mut r = req
            .conf
            .prev_result
            .clone()
            .unwrap_or_else(|| CniResult::new(req.conf.cni_version));
        r.dns.domain = Some(
            req.conf
                .raw
                .get("keyA")
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_owned(),
        );
        r.ips.push(k8snet_cni::IpConfig {
            address: "198.18.0.9/24".parse().unwrap(),
            gateway: None,
            interface: None,
        });
        Ok(r)
    }
    fn del(&self, _: &Request) -> k8snet_cni::Result<()> {
        Ok(())
    }
    fn check(&self, _: &Request) -> k8snet_cni::Result<()> {
        Err(Error::other(150, "fake check failed"))
    }
    fn gc(&self, req: &GcRequest) -> k8snet_cni::Result<()> {
        let got: Vec<String> = req
            .valid
            .iter()
            .map(|a| format!("{}/{}", a.container_id, a.ifname))
            .collect();
        Err(Error::other(151, got.join(",")))
    }
    fn status(&self, _: &Request) -> k8snet_cni::Result<()> {
        Err(Error::Unavailable("no addresses left".into()))
    }
}

fn invoke(command: &str, stdin: &str) -> (u8, Value) {
    let env: HashMap<&str, String> = [
        ("CNI_COMMAND", command.to_owned()),
        ("CNI_CONTAINERID", "ctr-1".to_owned()),
        ("CNI_NETNS", "/run/netns/pod-a".to_owned()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", "/nonexistent".to_owned()),
    ]
    .into_iter()
    .collect();
    let out = run_with(&Fake, |k| env.get(k).cloned(), stdin.as_bytes());
    let v = if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).unwrap()
    };
    (out.status, v)
}

#[test]
fn version_answers_with_the_supported_versions() {
    let (status, v) = invoke("VERSION", r#"{"cniVersion":"1.1.0"}"#);
    assert_eq!((status, v), (0, golden("version.json")));
}

#[test]
fn errors_go_to_stdout_with_their_code() {
    let (status, v) = invoke("ADD", "{not json");
    assert_eq!((status, v["code"].as_u64()), (1, Some(6)));
    let (_, v) = invoke("ADD", r#"{"cniVersion":"9.9.9","name":"n","type":"fake"}"#);
    assert_eq!(v["code"], 1);
    let (_, v) = invoke(
        "CHECK",
        r#"{"cniVersion":"0.3.1","name":"n","type":"fake"}"#,
    );
    assert_eq!(v["code"], 1, "CHECK needs 0.4.0: {v}");
    let (_, v) = invoke(
        "CHECK",
        r#"{"cniVersion":"0.4.0","name":"n","type":"fake"}"#,
    );
    assert_eq!(
        (v["code"].as_u64(), v["msg"].as_str()),
        (Some(150), Some("fake check failed"))
    );
    assert_eq!(v["cniVersion"], "0.4.0");
    let (_, v) = invoke(
        "STATUS",
        r#"{"cniVersion":"1.0.0","name":"n","type":"fake"}"#,
    );
    assert_eq!(v["code"], 1, "STATUS needs 1.1.0");
    let (_, v) = invoke(
        "STATUS",
        r#"{"cniVersion":"1.1.0","name":"n","type":"fake"}"#,
    );
    assert_eq!(v["code"], 50);
    let (_, v) = invoke(
        "ADD",
        r#"{"cniVersion":"1.0.0","name":"bad name","type":"fake"}"#,
    );
    assert_eq!(
        (
            v["code"].as_u64(),
            v["msg"].as_str().unwrap().starts_with("name: ")
        ),
        (Some(7), true)
    );
    let (_, v) = invoke(
        "ADD",
        r#"{"cniVersion":"1.0.0","name":"n","type":"fake","prevResult":{"ips":[{"address":"nope"}]}}"#,
    );
    assert_eq!(v["code"], 7);
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .starts_with("prevResult.ips[0].address: "),
        "{v}"
    );
}

#[test]
fn env_errors_name_the_variables() {
    let out = run_with(
        &Fake,
        |k| (k == "CNI_COMMAND").then(|| "ADD".to_owned()),
        b"{}",
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], 4);
    assert_eq!(
        v["msg"],
        "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH: required environment variables missing"
    );
}

#[test]
fn gc_sees_both_attachment_keys() {
    let req = serde_json::to_string(&golden("gc-request.json")).unwrap();
    let (_, v) = invoke("GC", &req);
    assert_eq!(v["msg"], "dummy/net1,other/eth0");
}

#[test]
fn add_prints_at_the_configuration_version_with_prev_result_chained() {
    let prev = result_golden(Version::V0_4_0);
    let stdin = serde_json::json!({"cniVersion": "0.4.0", "name": "n", "type": "fake", "keyA": "kept", "prevResult": prev});
    let (status, v) = invoke("ADD", &stdin.to_string());
    assert_eq!(status, 0);
    assert_eq!(v["cniVersion"], "0.4.0");
    assert_eq!(v["interfaces"].as_array().unwrap().len(), 3);
    assert_eq!(v["ips"][2]["version"], "4");
    assert_eq!(v["dns"]["domain"], "kept");
    let (_, v) = invoke("ADD", r#"{"cniVersion":"0.2.0","name":"n","type":"fake"}"#);
    assert_eq!(v["ip4"]["ip"], "198.18.0.9/24");
}

#[test]
fn host_local_error_matches_the_golden_error() {
    let want = golden("error.json");
    let dir = std::env::temp_dir().join(format!("k8snet-cni-spec-{}", std::process::id()));
    let stdin = serde_json::json!({"cniVersion": "1.1.0", "name": "n", "type": "k8snet-host-local",
        "ipam": {"type": "k8snet-host-local", "dataDir": dir, "ranges": [[{"subnet": "10.0.0"}]]}});
    let env: HashMap<&str, &str> = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c"),
        ("CNI_NETNS", "/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/x"),
    ]
    .into_iter()
    .collect();
    let out = run_with(
        &k8snet_cni::hostlocal::HostLocal,
        |k| env.get(k).map(|v| (*v).to_owned()),
        stdin.to_string().as_bytes(),
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status, got), (1, want));
    let _ = std::fs::remove_dir_all(dir);
}

fn host_local(command: &str, cni_args: Option<&str>, stdin: &Value) -> (u8, Value) {
    let mut env: HashMap<&str, String> = [
        ("CNI_COMMAND", command.to_owned()),
        ("CNI_CONTAINERID", "ctr1".to_owned()),
        ("CNI_NETNS", "/run/netns/p".to_owned()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", "/nonexistent".to_owned()),
    ]
    .into_iter()
    .collect();
    if let Some(a) = cni_args {
        env.insert("CNI_ARGS", a.to_owned());
    }
    let out = run_with(
        &k8snet_cni::hostlocal::HostLocal,
        |k| env.get(k).cloned(),
        stdin.to_string().as_bytes(),
    );
    let v = if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).unwrap()
    };
    (out.status, v)
}

fn data_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("k8snet-cni-spec-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A configuration without `name`: the Go skeleton refuses it before the
/// plugin runs, for every command but VERSION (validateConfig: "missing
/// network name", code 7). host-local used to accept it and allocate in
/// `dataDir` itself, not in a network's subdirectory.
#[test]
fn a_configuration_without_name_is_refused_with_code_7() {
    let dir = data_dir("noname");
    let stdin = serde_json::json!({"cniVersion": "1.1.0", "type": "k8snet-host-local",
        "ipam": {"type": "k8snet-host-local", "dataDir": dir,
                 "ranges": [[{"subnet": "198.18.0.0/24"}]]}});
    let (status, v) = host_local("ADD", None, &stdin);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(left.is_empty(), "wrote into the dataDir: {left:?}");
    assert_eq!(
        (status, v),
        (
            1,
            serde_json::json!({"cniVersion": "1.1.0", "code": 7, "msg": "name: missing network name"})
        )
    );
    for command in ["DEL", "CHECK", "GC", "STATUS"] {
        let (status, v) = invoke(command, r#"{"cniVersion":"1.1.0","type":"fake"}"#);
        assert_eq!((status, v["code"].as_u64()), (1, Some(7)), "{command}: {v}");
        let (_, v) = invoke(command, r#"{"cniVersion":"1.1.0","name":"","type":"fake"}"#);
        assert_eq!(v["code"], 7, "{command}: {v}");
    }
    let (status, _) = invoke("VERSION", r#"{"cniVersion":"1.1.0"}"#);
    assert_eq!(status, 0);
}

/// The Go skeleton prints no `cniVersion` in its errors; ours prints the
/// configuration's version when it is known (the spec's error object) and
/// leaves the key out, rather than printing `""`, when it is not.
#[test]
fn an_error_without_a_known_version_has_no_cni_version_key() {
    let (status, v) = invoke("ADD", "{not json");
    assert_eq!(status, 1);
    assert!(v.get("cniVersion").is_none(), "{v}");
    let (_, v) = invoke("ADD", r#"{"name":"n","type":"fake","cniVersion":7}"#);
    assert!(v.get("cniVersion").is_none(), "{v}");
    let (_, v) = invoke(
        "CHECK",
        r#"{"cniVersion":"0.4.0","name":"n","type":"fake"}"#,
    );
    assert_eq!(v["cniVersion"], "0.4.0");
    // What a runtime reads back: no key is an empty version.
    let e: k8snet_cni::CniError = serde_json::from_str(r#"{"code":7,"msg":"m"}"#).unwrap();
    assert_eq!((e.cni_version.as_str(), e.code), ("", 7));
    let e: k8snet_cni::CniError =
        serde_json::from_str(r#"{"cniVersion":null,"code":7,"msg":"m"}"#).unwrap();
    assert_eq!(e.cni_version, "");
}

/// The Go skeleton never looks at CNI_ARGS: a malformed one reaches the
/// plugin, whatever the command. `Env` keeps it as given and its
/// well-formed pairs.
#[test]
fn the_skeleton_does_not_parse_cni_args() {
    let run = |command: &str, stdin: &str| {
        let env: HashMap<&str, String> = [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", "ctr-1".to_owned()),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", "/nonexistent".to_owned()),
            ("CNI_NETNS", "/run/netns/p".to_owned()),
            ("CNI_ARGS", "novalue;IP=198.18.0.9".to_owned()),
        ]
        .into_iter()
        .collect();
        run_with(&Fake, |k| env.get(k).cloned(), stdin.as_bytes())
    };
    let conf = r#"{"cniVersion":"1.1.0","name":"n","type":"fake"}"#;
    assert_eq!(run("VERSION", conf).status, 0);
    assert_eq!(run("ADD", conf).status, 0);
    assert_eq!(
        (run("DEL", conf).status, run("DEL", conf).stdout),
        (0, Vec::new())
    );
    assert_eq!(run("STATUS", conf).status, 1, "Fake's STATUS is code 50");
    // Fake's own CHECK error, not an environment error.
    let v: Value = serde_json::from_slice(&run("CHECK", conf).stdout).unwrap();
    assert_eq!(v["code"], 150, "{v}");
    for command in ["ADD", "CHECK", "DEL"] {
        let env = k8snet_cni::Env::from_lookup(|k| match k {
            "CNI_COMMAND" => Some(command.into()),
            "CNI_CONTAINERID" => Some("c".into()),
            "CNI_NETNS" => Some("/run/netns/p".into()),
            "CNI_IFNAME" => Some("eth0".into()),
            "CNI_PATH" => Some("/x".into()),
            "CNI_ARGS" => Some("=x;novalue;IP=198.18.0.9".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            env.args,
            vec![("IP".to_owned(), "198.18.0.9".to_owned())],
            "{command}"
        );
        assert_eq!(env.raw_args, "=x;novalue;IP=198.18.0.9", "{command}");
        let e = env.strict_arg("IP").unwrap_err();
        assert_eq!(e.code(), 999);
        assert_eq!(e.to_string(), r#"ARGS: invalid pair "novalue""#);
    }
}

/// host-local reads CNI_ARGS (`IP`) as the reference's LoadIPAMConfig does
/// (types.LoadArgs): a malformed pair fails ADD and CHECK with the
/// reference's code (999, its plain error made internal by the skeleton)
/// and message. DEL takes the well-formed pairs and frees the address
/// (the reference fails it; see IpamConfig::from_request).
#[test]
fn host_local_add_and_check_refuse_a_malformed_cni_args_del_frees() {
    let dir = data_dir("badargs");
    let stdin = serde_json::json!({"cniVersion": "1.0.0", "name": "net1", "type": "k8snet-host-local",
        "ipam": {"type": "k8snet-host-local", "dataDir": dir,
                 "ranges": [[{"subnet": "198.18.0.0/24"}]]}});
    for command in ["ADD", "CHECK"] {
        let (status, v) = host_local(command, Some("K8S_POD_NAME=web;novalue"), &stdin);
        assert_eq!(
            (status, v["code"].as_u64(), v["msg"].as_str()),
            (1, Some(999), Some(r#"ARGS: invalid pair "novalue""#)),
            "{command}: {v}"
        );
    }
    let held = || dir.join("net1").join("198.18.0.9").exists();
    assert!(!held(), "a refused ADD allocated");
    let (status, v) = host_local("ADD", Some("IP=198.18.0.9"), &stdin);
    assert_eq!(status, 0, "{v}");
    assert!(held());
    let (status, v) = host_local("DEL", Some("novalue;IP=198.18.0.9"), &stdin);
    let freed = !held();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!((status, v), (0, Value::Null));
    assert!(freed, "DEL did not free the address");
}

/// The reference bridge's loadNetConf parses CNI_ARGS on ADD and CHECK: a
/// malformed pair is refused with the reference's code (999) and message,
/// before anything is done in the kernel.
#[cfg(feature = "linux")]
#[test]
fn bridge_add_and_check_refuse_a_malformed_cni_args() {
    let stdin = serde_json::json!({"cniVersion": "1.0.0", "name": "net1", "type": "k8snet-bridge",
        "bridge": "kbr0",
        "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "198.18.0.2/24"}]}});
    for command in ["ADD", "CHECK"] {
        let env: HashMap<&str, String> = [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", "ctr1".to_owned()),
            ("CNI_NETNS", "/run/netns/does-not-exist".to_owned()),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", "/nonexistent".to_owned()),
            ("CNI_ARGS", "K8S_POD_NAME=web;novalue".to_owned()),
        ]
        .into_iter()
        .collect();
        let out = run_with(
            &k8snet_cni::linux::Bridge,
            |k| env.get(k).cloned(),
            stdin.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (out.status, v["code"].as_u64(), v["msg"].as_str()),
            (1, Some(999), Some(r#"ARGS: invalid pair "novalue""#)),
            "{command}: {v}"
        );
    }
}

/// host-local: the same address requested twice (CNI_ARGS `IP` and the
/// `ips` capability, with and without a prefix) is one request in the
/// reference (main.go keeps the requested IPs in a map keyed by the
/// address), so ADD succeeds with that address.
#[test]
fn host_local_same_ip_requested_twice_is_one_request() {
    let dir = data_dir("dup");
    let stdin = serde_json::json!({"cniVersion": "1.0.0", "name": "net1", "type": "k8snet-host-local",
        "runtimeConfig": {"ips": ["198.18.0.7/24", "198.18.0.7"]},
        "args": {"cni": {"ips": ["198.18.0.7"]}},
        "ipam": {"type": "k8snet-host-local", "dataDir": dir,
                 "ranges": [[{"subnet": "198.18.0.0/24"}]]}});
    let (status, v) = host_local("ADD", Some("IP=198.18.0.7"), &stdin);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, 0, "{v}");
    assert_eq!(
        v["ips"],
        serde_json::json!([{"address": "198.18.0.7/24", "gateway": "198.18.0.1"}])
    );
}

/// `Env::strict_arg` refuses what Go's `types.LoadArgs` refuses: an empty
/// part (a trailing `;`), `K=V=W`, and an `IgnoreUnknown` that is not a
/// boolean, all with code 999 and the reference's message; a repeated key
/// takes its last value (LoadArgs sets the field once per pair). Unknown
/// keys are accepted (a documented difference).
#[test]
fn strict_arg_refuses_what_load_args_refuses() {
    let strict = |args: &str| {
        let env = k8snet_cni::Env::from_lookup(|k| match k {
            "CNI_COMMAND" => Some("ADD".into()),
            "CNI_CONTAINERID" => Some("c".into()),
            "CNI_NETNS" => Some("/run/netns/p".into()),
            "CNI_IFNAME" => Some("eth0".into()),
            "CNI_PATH" => Some("/x".into()),
            "CNI_ARGS" => Some(args.into()),
            _ => None,
        })
        .unwrap();
        env.strict_arg("IP")
            .map(|v| v.map(str::to_owned))
            .map_err(|e| (e.code(), e.to_string()))
    };
    let bad = |msg: &str| Err((999, msg.to_owned()));
    assert_eq!(strict("IP=198.18.0.9;"), bad(r#"ARGS: invalid pair """#));
    assert_eq!(strict(";IP=198.18.0.9"), bad(r#"ARGS: invalid pair """#));
    assert_eq!(
        strict("IP=198.18.0.9=x"),
        bad(r#"ARGS: invalid pair "IP=198.18.0.9=x""#)
    );
    assert_eq!(
        strict("IgnoreUnknown=maybe;IP=198.18.0.9"),
        bad(
            r#"ARGS: error parsing value of pair "IgnoreUnknown=maybe": boolean unmarshal error: invalid input maybe"#
        )
    );
    assert_eq!(strict(""), Ok(None));
    assert_eq!(
        strict("IgnoreUnknown=TRUE;K8S_POD_NAME=web;IP=198.18.0.9"),
        Ok(Some("198.18.0.9".into()))
    );
    assert_eq!(
        strict("K8S_POD_NAME=web;IP=198.18.0.9"),
        Ok(Some("198.18.0.9".into()))
    );
    assert_eq!(
        strict("IP=198.18.0.8;IP=198.18.0.9"),
        Ok(Some("198.18.0.9".into()))
    );
}

/// host-local DEL releases by container ID and interface name: a requested
/// address that does not parse (CNI_ARGS `IP`, `args.cni.ips`,
/// `runtimeConfig.ips`) does not fail it, and the address is freed.
#[test]
fn host_local_del_ignores_bad_requested_ips() {
    let dir = data_dir("delbadip");
    let stdin = |extra: Value| {
        let mut v = serde_json::json!({"cniVersion": "1.0.0", "name": "net1", "type": "k8snet-host-local",
            "ipam": {"type": "k8snet-host-local", "dataDir": dir,
                     "ranges": [[{"subnet": "198.18.0.0/24"}]]}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let held = || dir.join("net1").join("198.18.0.9").exists();
    let cases = [
        (Some("IP=garbage"), serde_json::json!({})),
        (
            None,
            serde_json::json!({"args": {"cni": {"ips": ["garbage"]}}}),
        ),
        (None, serde_json::json!({"args": {"cni": {"ips": 5}}})),
        (
            None,
            serde_json::json!({"runtimeConfig": {"ips": ["garbage"]}}),
        ),
    ];
    let mut failures = Vec::new();
    for (args, extra) in cases {
        let (status, v) = host_local("ADD", Some("IP=198.18.0.9"), &stdin(serde_json::json!({})));
        assert_eq!(status, 0, "{v}");
        assert!(held());
        // The same input fails ADD ...
        let (add_status, _) = host_local("ADD", args, &stdin(extra.clone()));
        // ... but not DEL, which frees the address.
        let (status, v) = host_local("DEL", args, &stdin(extra.clone()));
        if (add_status, status, held()) != (1, 0, false) {
            failures.push(format!(
                "{args:?} {extra}: ADD {add_status}, DEL {status} {v}, held {}",
                held()
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{failures:#?}");
}
