use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;

use super::*;
use crate::config::NetConf;
use crate::env::Env;

/// A temporary data dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "k8snet-cni-hl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cfg(dir: &TempDir, ipam: serde_json::Value) -> IpamConfig {
    let mut ipam = ipam;
    ipam["dataDir"] = json!(dir.0.display().to_string());
    let conf = NetConf::from_slice(
        json!({"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "ipam": ipam})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let env = Env::from_lookup(|k| (k == "CNI_COMMAND").then(|| "VERSION".to_owned())).unwrap();
    IpamConfig::from_request(&conf, &env).unwrap()
}

fn small(dir: &TempDir) -> IpamConfig {
    cfg(
        dir,
        json!({"type": "host-local", "ranges": [[{"subnet": "198.18.0.0/24", "rangeStart": "198.18.0.1", "rangeEnd": "198.18.0.4"}]]}),
    )
}

#[test]
fn allocates_round_robin_in_the_reference_format() {
    let d = TempDir::new();
    let c = small(&d);
    let a = allocate(&c, "c1", "eth0").unwrap();
    // .1 is the gateway: skipped.
    assert_eq!(a[0].address.to_string(), "198.18.0.2/24");
    assert_eq!(a[0].gateway, Some("198.18.0.1".parse().unwrap()));
    let net = d.0.join("net1");
    assert_eq!(fs::read(net.join("198.18.0.2")).unwrap(), b"c1\r\neth0");
    assert_eq!(
        fs::read_to_string(net.join("last_reserved_ip.0")).unwrap(),
        "198.18.0.2"
    );
    assert!(net.join("lock").exists());
    let b = allocate(&c, "c2", "eth0").unwrap();
    assert_eq!(b[0].address.to_string(), "198.18.0.3/24");
    // Round robin: a released address is not reused before the range wraps.
    release(&c, "c1", "eth0").unwrap();
    let e = allocate(&c, "c3", "eth0").unwrap();
    assert_eq!(e[0].address.to_string(), "198.18.0.4/24");
    let f = allocate(&c, "c4", "eth0").unwrap();
    assert_eq!(f[0].address.to_string(), "198.18.0.2/24");
    // Exhausted: the reference's message, our documented code.
    let err = allocate(&c, "c5", "eth0").unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to allocate for range 0: no IP addresses available in range set: 198.18.0.1-198.18.0.4"
    );
    assert_eq!(err.code(), code::IP_EXHAUSTED);
    assert!(status(&c).unwrap_err().code() == 50);
    // Duplicate ADD for the same attachment is refused.
    let dup = allocate(&c, "c2", "eth0").unwrap_err();
    assert!(
        dup.to_string()
            .contains("duplicate allocation is not allowed"),
        "{dup}"
    );
}

#[test]
fn del_is_idempotent_and_touches_only_its_own_files() {
    let d = TempDir::new();
    let c = small(&d);
    allocate(&c, "c1", "eth0").unwrap();
    allocate(&c, "c1", "eth1").unwrap();
    assert_eq!(release(&c, "c1", "eth0").unwrap().len(), 1);
    assert!(release(&c, "c1", "eth0").unwrap().is_empty());
    assert_eq!(held(&c, "c1", "eth1").unwrap().len(), 1);
    status(&c).unwrap();
}

#[test]
fn sees_allocations_made_by_the_reference() {
    let d = TempDir::new();
    let c = small(&d);
    allocate(&c, "ours", "eth0").unwrap();
    let net = d.0.join("net1");
    // What the reference plugin would write, and an old-format file.
    fs::write(net.join("198.18.0.3"), "theirs\r\neth0").unwrap();
    fs::write(net.join("198.18.0.4"), "legacy").unwrap();
    assert_eq!(
        held(&c, "theirs", "eth0").unwrap(),
        vec!["198.18.0.3".parse::<IpAddr>().unwrap()]
    );
    // Legacy files match any interface of their container.
    assert_eq!(release(&c, "legacy", "eth0").unwrap().len(), 1);
    assert_eq!(release(&c, "theirs", "eth0").unwrap().len(), 1);
    assert!(!net.join("198.18.0.3").exists());
    // The index is never mistaken for an allocation.
    assert_eq!(
        allocate(&c, "next", "eth0").unwrap()[0].address.to_string(),
        "198.18.0.3/24"
    );
}

#[test]
fn gc_keeps_valid_attachments_and_the_bookkeeping() {
    let d = TempDir::new();
    let c = small(&d);
    allocate(&c, "keep", "eth0").unwrap();
    allocate(&c, "drop", "eth0").unwrap();
    fs::write(d.0.join("net1").join("198.18.0.4"), "keep").unwrap();
    let valid = [Attachment {
        container_id: "keep".into(),
        ifname: "eth0".into(),
    }];
    let released = gc(&c, &valid).unwrap();
    assert_eq!(released, vec!["198.18.0.3".parse::<IpAddr>().unwrap()]);
    let net = d.0.join("net1");
    assert!(net.join("lock").exists() && net.join("last_reserved_ip.0").exists());
    assert!(net.join("198.18.0.4").exists());
    // An empty valid set releases everything.
    assert_eq!(gc(&c, &[]).unwrap().len(), 2);
    assert!(held(&c, "keep", "eth0").unwrap().is_empty());
}

#[test]
fn dual_stack_and_requested_addresses() {
    let d = TempDir::new();
    let mut c = cfg(
        &d,
        json!({"type": "host-local", "ranges": [
            [{"subnet": "198.18.0.0/24"}],
            [{"subnet": "fd00:18::/64", "rangeStart": "fd00:18::10", "rangeEnd": "fd00:18::ff"}]
        ], "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}),
    );
    let a = allocate(&c, "c1", "eth0").unwrap();
    assert_eq!(a[0].address.to_string(), "198.18.0.2/24");
    assert_eq!(a[1].address.to_string(), "fd00:18::10/64");
    assert_eq!(a[1].gateway, Some("fd00:18::1".parse().unwrap()));
    assert!(d.0.join("net1").join("fd00:18::10").exists());
    assert!(d.0.join("net1").join("last_reserved_ip.1").exists());
    c.requested = vec!["198.18.0.77".parse().unwrap()];
    let b = allocate(&c, "c2", "eth0").unwrap();
    assert_eq!(b[0].address.to_string(), "198.18.0.77/24");
    let taken = allocate(&c, "c3", "eth0").unwrap_err();
    assert!(
        taken.to_string().contains("198.18.0.77 is not available"),
        "{taken}"
    );
    // Nothing of c3's stays behind after the failure.
    assert!(held(&c, "c3", "eth0").unwrap().is_empty());
}

#[test]
fn config_errors_name_the_field() {
    let d = TempDir::new();
    let conf = |ipam: serde_json::Value| {
        NetConf::from_slice(
            json!({"cniVersion": "1.0.0", "name": "n", "type": "x", "ipam": ipam})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    };
    let env = Env::from_lookup(|k| (k == "CNI_COMMAND").then(|| "VERSION".to_owned())).unwrap();
    let cases = [
        (json!({"type": "h"}), "ipam.ranges: no IP ranges specified"),
        (
            json!({"ranges": [[{"subnet": "nope"}]]}),
            "ipam.ranges[0][0].subnet: \"nope\" is not a CIDR",
        ),
        (
            json!({"ranges": [[{"subnet": "198.18.0.0/31"}]]}),
            "ipam.ranges[0][0].subnet: network 198.18.0.0/31 too small to allocate from",
        ),
        (
            json!({"ranges": [[{"subnet": "198.18.0.0/24", "gateway": "198.18.1.1"}]]}),
            "ipam.ranges[0][0].gateway: 198.18.1.1 not in network 198.18.0.0/24",
        ),
        (
            json!({"ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "198.18.0.0/25"}]]}),
            "ipam.ranges[1]: range set 1 overlaps with range set 0",
        ),
        (
            json!({"ranges": [[{"subnet": 5}]]}),
            "ipam.ranges[0][0].subnet: invalid type: integer `5`, expected a string",
        ),
        (
            json!({"ranges": [[{"subnet": "198.18.0.0/24"}]], "routes": [{"dst": "x"}]}),
            "ipam.routes[0].dst: invalid IP address syntax",
        ),
    ];
    let _ = &d;
    for (ipam, want) in cases {
        let e = IpamConfig::from_request(&conf(ipam), &env).unwrap_err();
        assert_eq!(e.to_string(), want);
        assert_eq!(e.code(), code::INVALID_CONFIG);
    }
}

#[test]
fn concurrent_adds_never_share_an_address() {
    let d = TempDir::new();
    let c = cfg(&d, json!({"ranges": [[{"subnet": "198.18.0.0/24"}]]}));
    let got: Vec<IpAddr> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let c = &c;
                s.spawn(move || {
                    allocate(c, &format!("c{i}"), "eth0").unwrap()[0]
                        .address
                        .addr()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let unique: BTreeSet<_> = got.iter().collect();
    assert_eq!(unique.len(), 32);
}

#[test]
fn released_files_are_reused_for_later_allocations() {
    use std::os::unix::fs::MetadataExt;
    let d = TempDir::new();
    let c = small(&d);
    let net = d.0.join("net1");
    let spare_dir = d.0.join(store::SPARE_DIR).join("net1");
    allocate(&c, "c1", "eth0").unwrap();
    let inode = |p: &std::path::Path| fs::metadata(p).unwrap().ino();
    let ip_inode = inode(&net.join("198.18.0.2"));
    let index_inode = inode(&net.join(store::INDEX_DIR).join("c1%eth0"));
    release(&c, "c1", "eth0").unwrap();
    // Both files are parked, saying nothing any container could match.
    let spares: Vec<_> = fs::read_dir(&spare_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(spares.len(), 2, "{spares:?}");
    for s in &spares {
        assert_eq!(fs::read(s).unwrap(), b"k8snet spare\n");
    }
    // The next ADD takes them: the same inodes, the reference's format.
    let a = allocate(&c, "c2", "eth0").unwrap();
    let ip = net.join(a[0].address.addr().to_string());
    assert_eq!(fs::read(&ip).unwrap(), b"c2\r\neth0");
    let index = net.join(store::INDEX_DIR).join("c2%eth0");
    let reused = [inode(&ip), inode(&index)];
    assert!(reused.contains(&ip_inode) && reused.contains(&index_inode));
    assert_eq!(fs::read_dir(&spare_dir).unwrap().count(), 0);
    assert_eq!(held(&c, "c2", "eth0").unwrap(), vec![a[0].address.addr()]);
    // The pool is bounded however many are released at once.
    let big = cfg(
        &d,
        json!({"type": "host-local", "ranges": [[{"subnet": "198.18.0.0/24"}]]}),
    );
    for i in 0..100 {
        allocate(&big, &format!("b{i}"), "eth0").unwrap();
    }
    for i in 0..100 {
        release(&big, &format!("b{i}"), "eth0").unwrap();
    }
    let n = fs::read_dir(&spare_dir).unwrap().count() as u64;
    assert!((1..=store::SPARE_SLOTS).contains(&n), "{n}");
}

#[test]
fn a_spare_never_claims_a_taken_address() {
    use std::os::unix::fs::MetadataExt;
    let d = TempDir::new();
    let c = small(&d);
    let net = d.0.join("net1");
    allocate(&c, "c1", "eth0").unwrap();
    allocate(&c, "c2", "eth0").unwrap();
    let spare_inode = fs::metadata(net.join("198.18.0.2")).unwrap().ino();
    release(&c, "c1", "eth0").unwrap();
    // The cursor moved back (rewritten in place: the directory, and so the
    // index, stay valid): the next candidate, .3, is c2's.
    fs::write(net.join("last_reserved_ip.0"), "198.18.0.2").unwrap();
    let a = allocate(&c, "c3", "eth0").unwrap();
    assert_eq!(a[0].address.to_string(), "198.18.0.4/24");
    assert_eq!(fs::read(net.join("198.18.0.3")).unwrap(), b"c2\r\neth0");
    assert_eq!(fs::read(net.join("198.18.0.4")).unwrap(), b"c3\r\neth0");
    // .4 is a spare: the claim on .3 failed and left the file to .4.
    let inodes = [
        fs::metadata(net.join("198.18.0.4")).unwrap().ino(),
        fs::metadata(net.join(store::INDEX_DIR).join("c3%eth0"))
            .unwrap()
            .ino(),
    ];
    assert!(inodes.contains(&spare_inode), "{inodes:?} {spare_inode}");
    assert_eq!(held(&c, "c2", "eth0").unwrap().len(), 1);
}

#[test]
fn a_spare_still_linked_to_a_live_file_is_dropped_not_overwritten() {
    let d = TempDir::new();
    let c = small(&d);
    let net = d.0.join("net1");
    let spare_dir = d.0.join(store::SPARE_DIR).join("net1");
    allocate(&c, "c1", "eth0").unwrap();
    // A reservation killed between linking its spare under the address's
    // name and removing the spare name leaves a second name of the live
    // file in the spare directory.
    fs::create_dir_all(&spare_dir).unwrap();
    fs::hard_link(net.join("198.18.0.2"), spare_dir.join("leftover")).unwrap();
    let a = allocate(&c, "c2", "eth0").unwrap();
    assert_eq!(a[0].address.to_string(), "198.18.0.3/24");
    // c1's file still says c1, and the leftover name is gone.
    assert_eq!(fs::read(net.join("198.18.0.2")).unwrap(), b"c1\r\neth0");
    assert_eq!(fs::read(net.join("198.18.0.3")).unwrap(), b"c2\r\neth0");
    assert!(!spare_dir.join("leftover").exists());
    assert_eq!(held(&c, "c1", "eth0").unwrap().len(), 1);
}

#[test]
fn releasing_a_file_with_a_leftover_spare_name_removes_it() {
    let d = TempDir::new();
    let c = small(&d);
    let net = d.0.join("net1");
    let spare_dir = d.0.join(store::SPARE_DIR).join("net1");
    allocate(&c, "c1", "eth0").unwrap();
    // The leftover sits in the very slot the release moves the file to,
    // where a rename onto it would do nothing.
    fs::create_dir_all(&spare_dir).unwrap();
    let slot = (crate::masq::fnv("198.18.0.2") % store::SPARE_SLOTS).to_string();
    fs::hard_link(net.join("198.18.0.2"), spare_dir.join(&slot)).unwrap();
    release(&c, "c1", "eth0").unwrap();
    assert!(
        !net.join("198.18.0.2").exists(),
        "the address is free again"
    );
    assert!(held(&c, "c1", "eth0").unwrap().is_empty());
    // The next ADD gets the address back, with its own content.
    let a = allocate(&c, "c2", "eth0").unwrap();
    assert_eq!(a[0].address.to_string(), "198.18.0.3/24");
    assert_eq!(fs::read(net.join("198.18.0.3")).unwrap(), b"c2\r\neth0");
}

#[test]
fn a_repeated_add_on_a_new_range_extends_the_attachments_index_entry() {
    let d = TempDir::new();
    allocate(&small(&d), "c1", "eth0").unwrap();
    // The same network with another range set: c1 holds nothing there, so
    // the ADD allocates, and rewrites c1's existing index entry in place.
    let other = cfg(
        &d,
        json!({"type": "host-local", "ranges": [[{"subnet": "198.19.0.0/24"}]]}),
    );
    let a = allocate(&other, "c1", "eth0").unwrap();
    assert_eq!(a[0].address.to_string(), "198.19.0.2/24");
    let both: Vec<IpAddr> = vec!["198.18.0.2".parse().unwrap(), "198.19.0.2".parse().unwrap()];
    assert_eq!(held(&other, "c1", "eth0").unwrap(), both);
    let index = d.0.join("net1").join(store::INDEX_DIR).join("c1%eth0");
    assert_eq!(
        fs::read_to_string(&index).unwrap(),
        "k8snet host-local index v1\n198.18.0.2\n198.19.0.2\n"
    );
    let mut released = release(&other, "c1", "eth0").unwrap();
    released.sort();
    assert_eq!(released, both);
    assert!(!index.exists());
}

#[test]
fn one_add_takes_several_spares_from_one_listing() {
    use std::os::unix::fs::MetadataExt;
    let d = TempDir::new();
    let c = cfg(
        &d,
        json!({"type": "host-local", "ranges": [
            [{"subnet": "198.18.0.0/24"}],
            [{"subnet": "fd00:18::/64"}]
        ]}),
    );
    let net = d.0.join("net1");
    let spare_dir = d.0.join(store::SPARE_DIR).join("net1");
    let a = allocate(&c, "c1", "eth0").unwrap();
    let files = |a: &[IpConfig], id: &str| {
        let mut v: Vec<_> = a
            .iter()
            .map(|ip| net.join(ip.address.addr().to_string()))
            .collect();
        v.push(net.join(store::INDEX_DIR).join(format!("{id}%eth0")));
        v
    };
    let mut before: Vec<u64> = files(&a, "c1")
        .iter()
        .map(|p| fs::metadata(p).unwrap().ino())
        .collect();
    release(&c, "c1", "eth0").unwrap();
    let parked = fs::read_dir(&spare_dir).unwrap().count();
    // Three files parked (unless two hashed to one slot).
    assert!((2..=3).contains(&parked), "{parked}");
    let b = allocate(&c, "c2", "eth0").unwrap();
    let after = files(&b, "c2");
    assert_eq!(fs::read(&after[0]).unwrap(), b"c2\r\neth0");
    assert_eq!(fs::read(&after[1]).unwrap(), b"c2\r\neth0");
    let mut reused: Vec<u64> = after
        .iter()
        .map(|p| fs::metadata(p).unwrap().ino())
        .collect();
    // Every parked file was taken by this one ADD.
    assert_eq!(fs::read_dir(&spare_dir).unwrap().count(), 0);
    before.sort_unstable();
    reused.sort_unstable();
    let common = reused.iter().filter(|i| before.contains(i)).count();
    assert_eq!(common, parked, "{before:?} {reused:?}");
    assert_eq!(held(&c, "c2", "eth0").unwrap().len(), 2);
}

#[test]
fn a_cursor_longer_than_the_first_read_is_read_whole_and_cut_when_rewritten() {
    let d = TempDir::new();
    let c = small(&d);
    allocate(&c, "c1", "eth0").unwrap();
    let cursor = d.0.join("net1").join("last_reserved_ip.0");
    // Rewritten in place (the index stays valid), padded past one read.
    fs::write(&cursor, format!("{}198.18.0.3\n", " ".repeat(300))).unwrap();
    let a = allocate(&c, "c2", "eth0").unwrap();
    assert_eq!(a[0].address.to_string(), "198.18.0.4/24");
    assert_eq!(fs::read_to_string(&cursor).unwrap(), "198.18.0.4");
}

#[test]
fn a_shorter_stamp_or_cursor_leaves_no_stale_tail() {
    let d = TempDir::new();
    let c = cfg(
        &d,
        json!({"type": "host-local", "ranges": [[{"subnet": "198.18.0.0/16"}]]}),
    );
    let net = d.0.join("net1");
    let cursor = net.join("last_reserved_ip.0");
    fs::create_dir_all(&net).unwrap();
    fs::write(&cursor, "198.18.100.100").unwrap();
    allocate(&c, "c1", "eth0").unwrap();
    assert_eq!(fs::read_to_string(&cursor).unwrap(), "198.18.100.101");
    // Back to a shorter address: the cursor is cut to it.
    fs::write(&cursor, "198.18.255.254").unwrap();
    let a = allocate(&c, "c2", "eth0").unwrap();
    assert_eq!(a[0].address.to_string(), "198.18.0.2/16");
    assert_eq!(fs::read_to_string(&cursor).unwrap(), "198.18.0.2");
    // A stamp with a longer tail than the real one: after one ADD it says
    // exactly the directory's state, so the next call needs no rebuild
    // (the entry planted in the index survives).
    let stamp = net.join(store::INDEX_DIR).join("stamp");
    let real = fs::read_to_string(&stamp).unwrap();
    fs::write(&stamp, format!("{real} and some more")).unwrap();
    allocate(&c, "c3", "eth0").unwrap();
    let sealed = fs::read_to_string(&stamp).unwrap();
    assert!(!sealed.contains("more"), "{sealed}");
    // An entry planted in the index (not in the network's directory, so
    // the stamp still matches) is believed, not rebuilt away.
    let planted = net.join(store::INDEX_DIR).join("x%eth0");
    fs::write(&planted, "k8snet host-local index v1\n198.18.0.2\n").unwrap();
    assert_eq!(
        held(&c, "x", "eth0").unwrap(),
        vec!["198.18.0.2".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn a_missing_data_dir_is_created_and_a_blocked_one_is_named() {
    let d = TempDir::new();
    let deep = TempDir(d.0.join("a").join("b"));
    let c = small(&deep);
    allocate(&c, "c1", "eth0").unwrap();
    assert_eq!(
        fs::read(deep.0.join("net1").join("198.18.0.2")).unwrap(),
        b"c1\r\neth0"
    );
    // The network's directory is a file: the error names the path.
    let blocked = TempDir::new();
    fs::write(blocked.0.join("net1"), "").unwrap();
    let err = allocate(&small(&blocked), "c1", "eth0").unwrap_err();
    let net = blocked.0.join("net1").display().to_string();
    assert!(err.to_string().contains(&net), "{err}");
    assert_eq!(err.code(), code::IO);
}
