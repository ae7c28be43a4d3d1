//! Namespaces, commands, closures and teardown.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Mutex;

use k8snet_testnet::{Error, Netns, Testnet, cleanup_stale, in_netns, kernel_test, plan};

/// The inode of the calling thread's network namespace.
fn own_netns_inode() -> u64 {
    fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

#[test]
fn closure_runs_inside_the_namespace_on_another_thread() {
    kernel_test!();
    let mut tn = Testnet::new("run").unwrap();
    let pod = tn.add_pod("p", &[plan::pod_v4(0, 2)]).unwrap();
    let before = own_netns_inode();

    let inside = pod.netns().run(own_netns_inode).unwrap();
    assert_eq!(inside, fs::metadata(pod.netns().path()).unwrap().ino());
    assert_ne!(inside, before);
    assert_eq!(
        own_netns_inode(),
        before,
        "the calling thread must not move"
    );

    let mut links = pod.netns().links().unwrap();
    links.sort();
    assert_eq!(links, ["eth0", "lo"]);
    let node_links = in_netns(tn.node().name(), || {
        nix::net::if_::if_nameindex()
            .unwrap()
            .iter()
            .map(|i| i.name().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    })
    .unwrap();
    assert!(
        node_links.contains(&pod.node_ifname().to_owned()),
        "{node_links:?}"
    );
}

#[test]
fn panic_in_closure_reaches_the_caller_which_stays_home() {
    kernel_test!();
    let tn = Testnet::new("panic").unwrap();
    let before = own_netns_inode();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        tn.node().run(|| panic!("boom")).unwrap();
    }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(own_netns_inode(), before);
}

#[test]
fn entering_a_missing_namespace_is_an_error() {
    kernel_test!();
    let err = Netns::named("kt-does-not-exist").run(|| ()).unwrap_err();
    assert!(matches!(err, Error::Enter { .. }), "{err}");
    // Paths are refused: "/proc/1/ns/net" would be the host's namespace.
    let err = Netns::named("/proc/1/ns/net").sysctl("net.ipv4.ip_forward", "1");
    assert!(matches!(err, Err(Error::InvalidName { .. })), "{err:?}");
}

#[test]
fn cmd_returns_output_and_errors_carry_stderr() {
    kernel_test!();
    let tn = Testnet::new("cmd").unwrap();
    let out = tn.node().cmd(&["ip", "-o", "link", "show", "lo"]).unwrap();
    assert!(out.contains("lo:") && out.contains("UP"), "{out}");

    let err = tn
        .node()
        .cmd(&["ip", "link", "show", "dev", "nosuch0"])
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("nosuch0"), "{text}");
    assert!(text.contains("does not exist"), "stderr missing: {text}");
    assert!(
        text.contains(tn.node().name()),
        "command line missing: {text}"
    );
    assert!(matches!(err, Error::Command { .. }));

    let err = tn.node().cmd(&["no-such-program-kt"]).unwrap_err();
    assert!(err.to_string().contains("no-such-program-kt"), "{err}");
}

#[test]
fn sysctls_change_only_inside_the_namespace() {
    kernel_test!();
    let host_fwd = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_dad = fs::read_to_string("/proc/sys/net/ipv6/conf/default/accept_dad").unwrap();
    let tn = Testnet::new("sysctl").unwrap();
    tn.enable_forwarding().unwrap();
    let node = tn.node();
    assert_eq!(node.read_sysctl("net.ipv4.ip_forward").unwrap(), "1");
    assert_eq!(
        node.read_sysctl("net.ipv6.conf.all.forwarding").unwrap(),
        "1"
    );
    assert_eq!(
        node.read_sysctl("net.ipv6.conf.default.accept_dad")
            .unwrap(),
        "0"
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv6/conf/default/accept_dad").unwrap(),
        host_dad
    );
    // Global (non-net) sysctls are refused: they would change the host.
    let err = node.sysctl("kernel.hostname", "x").unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
}

#[test]
fn addresses_outside_the_plan_and_bad_names_are_refused() {
    kernel_test!();
    let mut tn = Testnet::new("plan").unwrap();
    let err = tn
        .add_pod("p", &["10.0.0.2/24".parse().unwrap()])
        .unwrap_err();
    assert!(matches!(err, Error::OutsidePlan(_)), "{err}");
    let err = tn
        .add_bridge("br0", &["192.168.1.1/24".parse().unwrap()])
        .unwrap_err();
    assert!(matches!(err, Error::OutsidePlan(_)), "{err}");
    assert!(tn.add_bridge("a_bridge_name_too_long", &[]).is_err());
    assert!(tn.add_netns("node").is_err());
    assert!(tn.add_netns("Bad-Name").is_err());
    assert!(Testnet::new("../x").is_err());
    // Nothing half-made was left behind: only the node namespace exists.
    assert_eq!(tn.namespaces().len(), 1);
}

#[test]
fn drop_deletes_every_namespace() {
    kernel_test!();
    let mut tn = Testnet::new("drop").unwrap();
    let br = tn.add_bridge("br0", &plan::gateways(0)).unwrap();
    tn.add_bridged_pod(&br, "a", &[plan::pod_v4(0, 2)]).unwrap();
    tn.add_pod("b", &[plan::pod_v6(0, 3)]).unwrap();
    tn.add_netns("extra").unwrap();
    let names: Vec<String> = tn
        .namespaces()
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    assert_eq!(names.len(), 4);
    for name in &names {
        assert!(name.starts_with("kt-drop-"), "{name}");
        assert!(common::netns_list().contains(name), "{name} not created");
    }
    drop(tn);
    let left = common::netns_list();
    for name in &names {
        assert!(!left.contains(name), "{name} left behind");
        assert!(!Path::new("/run/netns").join(name).exists());
    }
}

#[test]
fn a_panicking_test_body_still_cleans_up() {
    kernel_test!();
    let names = Mutex::new(Vec::new());
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut tn = Testnet::new("unwind").unwrap();
        tn.add_pod("p", &[plan::pod_v4(0, 2), plan::pod_v6(0, 2)])
            .unwrap();
        names
            .lock()
            .unwrap()
            .extend(tn.namespaces().iter().map(|n| n.name().to_owned()));
        panic!("test body failed");
    }));
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 2);
    let left = common::netns_list();
    assert!(names.iter().all(|n| !left.contains(n)), "{left:?}");
}

#[test]
fn parallel_testnets_get_distinct_names() {
    kernel_test!();
    let nets: Vec<Testnet> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Testnet::new("par").unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut names: Vec<&str> = nets.iter().map(|t| t.node().name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 4);
}

#[test]
fn cleanup_stale_removes_only_dead_processes_namespaces() {
    kernel_test!();
    // A pid far above pid_max cannot be a live process.
    let stale = "kt-stale-4294967295-0-node";
    let ours = Testnet::new("stale").unwrap();
    let status = std::process::Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .unwrap();
    assert!(status.success());
    let deleted = cleanup_stale("stale").unwrap();
    assert_eq!(deleted, [stale]);
    let left = common::netns_list();
    assert!(!left.iter().any(|n| n == stale));
    assert!(
        left.iter().any(|n| n == ours.node().name()),
        "live one kept"
    );
}
