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

/// The names in `dir`, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

/// Changes the network directory (a file made and removed) as another
/// writer would, so that the next call finds the stamp stale and rebuilds
/// the index.
fn force_rebuild(net: &std::path::Path) {
    let f = net.join("touch");
    fs::write(&f, "").unwrap();
    fs::remove_file(&f).unwrap();
}

fn wide(dir: &TempDir) -> IpamConfig {
    cfg(
        dir,
        json!({"type": "host-local", "ranges": [[{"subnet": "198.18.0.0/24"}]]}),
    )
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Replaces c1's index entry with one that cannot be opened (ELOOP,
/// standing in for EIO, EMFILE and the like: a symlink to itself), without
/// changing the network directory (the stamp still matches, so no rebuild
/// hides the fault).
fn break_entry(entry: &std::path::Path) {
    fs::remove_file(entry).unwrap();
    std::os::unix::fs::symlink(entry.file_name().unwrap(), entry).unwrap();
}

#[test]
fn an_unreadable_index_entry_is_an_error_and_releases_or_claims_nothing() {
    let d = TempDir::new();
    let c = small(&d);
    let net = d.0.join("net1");
    let index = net.join(store::INDEX_DIR);
    let entry = index.join("c1%eth0");
    allocate(&c, "c1", "eth0").unwrap(); // 198.18.0.2
    let spares = d.0.join(store::SPARE_DIR);

    // DEL fails naming the entry, and releases and retires nothing; the
    // stamp is not sealed but dropped, so the retry rebuilds the index
    // from the address files and releases the address.
    break_entry(&entry);
    let err = release(&c, "c1", "eth0").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&entry.display().to_string()),
        "{err}"
    );
    assert_eq!(fs::read(net.join("198.18.0.2")).unwrap(), b"c1\r\neth0");
    assert!(fs::symlink_metadata(&entry).unwrap().is_symlink());
    assert!(!spares.exists(), "nothing was retired");
    assert!(!index.join("stamp").exists());
    assert_eq!(release(&c, "c1", "eth0").unwrap(), ips(&["198.18.0.2"]));
    assert!(!net.join("198.18.0.2").exists());
    assert!(!entry.exists());

    // CHECK fails (not "no address"), naming the entry; a retry passes.
    allocate(&c, "c1", "eth0").unwrap(); // .3
    break_entry(&entry);
    let err = held(&c, "c1", "eth0").unwrap_err();
    assert!(err.to_string().contains("c1%eth0"), "{err}");
    assert_eq!(held(&c, "c1", "eth0").unwrap(), ips(&["198.18.0.3"]));

    // A repeated ADD on another range fails before claiming anything (it
    // would otherwise skip the duplicate check and write an entry without
    // .3); the retry extends the rebuilt entry.
    let other = cfg(
        &d,
        json!({"type": "host-local", "ranges": [[{"subnet": "198.19.0.0/24"}]]}),
    );
    break_entry(&entry);
    let before = names(&net);
    let err = allocate(&other, "c1", "eth0").unwrap_err();
    assert!(err.to_string().contains("c1%eth0"), "{err}");
    assert_eq!(names(&net), before);
    assert!(fs::symlink_metadata(&entry).unwrap().is_symlink());
    allocate(&other, "c1", "eth0").unwrap();
    assert_eq!(
        held(&c, "c1", "eth0").unwrap(),
        ips(&["198.18.0.3", "198.19.0.2"])
    );

    // Other faults that are not "missing": a directory, bytes that are no
    // UTF-8. Each is an error naming the entry, and the retry works.
    fs::remove_file(&entry).unwrap();
    fs::create_dir(&entry).unwrap();
    let err = release(&c, "c1", "eth0").unwrap_err();
    assert!(err.to_string().contains("c1%eth0"), "{err}");
    assert!(net.join("198.18.0.3").exists());
    assert_eq!(
        held(&c, "c1", "eth0").unwrap(),
        ips(&["198.18.0.3", "198.19.0.2"])
    );
    fs::write(&entry, b"k8snet host-local index v1\n\xff\n").unwrap();
    let err = held(&c, "c1", "eth0").unwrap_err();
    assert!(err.to_string().contains("c1%eth0"), "{err}");
    let mut released = release(&c, "c1", "eth0").unwrap();
    released.sort();
    assert_eq!(released, ips(&["198.18.0.3", "198.19.0.2"]));

    // A Store that met a broken entry never writes the stamp again, even
    // when asked to seal: the next Store rebuilds.
    allocate(&c, "c1", "eth0").unwrap();
    break_entry(&entry);
    {
        let s = Store::open(&net).unwrap();
        assert!(s.by_id("c1", "eth0").is_err());
        s.seal().unwrap();
    }
    assert!(!index.join("stamp").exists());
    assert_eq!(release(&c, "c1", "eth0").unwrap().len(), 1);

    // The network still serves everyone.
    let got = allocate(&c, "c2", "eth0").unwrap()[0].address.addr();
    assert_eq!(held(&c, "c2", "eth0").unwrap(), vec![got]);
    assert!(held(&c, "c1", "eth0").unwrap().is_empty());
}

#[test]
fn long_container_ids_get_bounded_index_names_and_work_everywhere() {
    let d = TempDir::new();
    let c = wide(&d);
    let net = d.0.join("net1");
    let index = net.join(store::INDEX_DIR);
    let id = |len: usize, last: char| {
        let mut s: String = "0123456789abcdef".repeat(len / 16 + 1)[..len - 1].to_owned();
        s.push(last);
        s
    };
    // Pairs that differ only in their last character or their ifname.
    let l300a = id(300, 'x');
    let l300b = id(300, 'y');
    let l1000 = id(1000, 'z');
    allocate(&c, "c1", "eth0").unwrap(); // .2
    let attachments = [
        (l300a.as_str(), "eth0", "198.18.0.3"),
        (l300b.as_str(), "eth0", "198.18.0.4"),
        (l1000.as_str(), "eth0", "198.18.0.5"),
        (l1000.as_str(), "eth1", "198.18.0.6"),
    ];
    for (id, ifname, ip) in attachments {
        let got = allocate(&c, id, ifname).unwrap();
        assert_eq!(got[0].address.addr(), ip.parse::<IpAddr>().unwrap());
        // The address file is the reference's format, whatever the length.
        assert_eq!(
            fs::read_to_string(net.join(ip)).unwrap(),
            format!("{id}\r\n{ifname}")
        );
    }
    let check = || {
        assert_eq!(held(&c, "c1", "eth0").unwrap(), ips(&["198.18.0.2"]));
        for (id, ifname, ip) in attachments {
            assert_eq!(held(&c, id, ifname).unwrap(), ips(&[ip]), "{ifname}");
        }
        assert!(held(&c, &l300a, "eth1").unwrap().is_empty());
    };
    check();
    // Bounded names: the short ID keeps its plain name; the long ones get
    // hashed names, all distinct.
    let listing = names(&index);
    assert_eq!(listing.len(), 6, "{listing:?}");
    assert!(listing.iter().all(|n| n.len() <= 64), "{listing:?}");
    assert!(listing.contains(&"c1%eth0".to_owned()));
    // A repeated ADD is still refused as a duplicate.
    let err = allocate(&c, &l300a, "eth0").unwrap_err();
    assert!(err.to_string().contains("duplicate allocation"), "{err}");
    assert_eq!(names(&index), listing);

    // A rebuild makes the same names and contents as the lookups use.
    let contents = |listing: &[String]| -> Vec<Vec<u8>> {
        listing
            .iter()
            .filter(|n| *n != "stamp")
            .map(|n| fs::read(index.join(n)).unwrap())
            .collect()
    };
    let before = contents(&listing);
    force_rebuild(&net);
    check();
    assert_eq!(names(&index), listing);
    assert_eq!(contents(&listing), before);

    // GC keeps what is valid, releases the rest, and rebuilds.
    let valid = [
        Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        },
        Attachment {
            container_id: l1000.clone(),
            ifname: "eth0".into(),
        },
    ];
    let mut released = gc(&c, &valid).unwrap();
    released.sort();
    assert_eq!(released, ips(&["198.18.0.3", "198.18.0.4", "198.18.0.6"]));
    assert!(held(&c, &l300a, "eth0").unwrap().is_empty());
    assert!(held(&c, &l1000, "eth1").unwrap().is_empty());
    assert_eq!(held(&c, &l1000, "eth0").unwrap(), ips(&["198.18.0.5"]));

    // DEL of the long one releases it and leaves c1 alone.
    assert_eq!(release(&c, &l1000, "eth0").unwrap(), ips(&["198.18.0.5"]));
    assert!(release(&c, &l1000, "eth0").unwrap().is_empty());
    assert_eq!(held(&c, "c1", "eth0").unwrap(), ips(&["198.18.0.2"]));
    assert_eq!(names(&index), ["c1%eth0", "stamp"]);
    assert_eq!(
        names(&net),
        ["198.18.0.2", "k8snet-index", "last_reserved_ip.0", "lock"]
    );
}

#[test]
fn a_long_id_allocated_by_the_reference_does_not_break_the_rebuild() {
    let d = TempDir::new();
    let c = small(&d);
    let net = d.0.join("net1");
    allocate(&c, "c1", "eth0").unwrap(); // .2
    // What the reference writes for a 1000-character ID (it names files by
    // address, so the ID's length does not matter to it); a new file
    // changes the directory, so the next call rebuilds the index.
    let long = "f".repeat(1000);
    fs::write(net.join("198.18.0.3"), format!("{long}\r\neth0")).unwrap();
    // A legacy (ID-only) file with a long ID too.
    let legacy = "e".repeat(400);
    fs::write(net.join("198.18.0.4"), &legacy).unwrap();
    assert_eq!(
        allocate(&c, "c3", "eth0").unwrap_err().to_string(),
        "failed to allocate for range 0: no IP addresses available in range set: 198.18.0.1-198.18.0.4"
    );
    assert_eq!(held(&c, &long, "eth0").unwrap(), ips(&["198.18.0.3"]));
    // The legacy file matches any interface of its container.
    assert_eq!(held(&c, &legacy, "eth7").unwrap(), ips(&["198.18.0.4"]));
    assert_eq!(held(&c, "c1", "eth0").unwrap(), ips(&["198.18.0.2"]));
    assert_eq!(release(&c, &long, "eth0").unwrap(), ips(&["198.18.0.3"]));
    assert_eq!(release(&c, &legacy, "eth0").unwrap(), ips(&["198.18.0.4"]));
    assert_eq!(
        allocate(&c, "c3", "eth0").unwrap()[0].address.to_string(),
        "198.18.0.3/24"
    );
}

#[test]
fn a_hashed_entry_that_records_another_attachment_is_never_used_for_it() {
    let d = TempDir::new();
    let c = wide(&d);
    let net = d.0.join("net1");
    let index = net.join(store::INDEX_DIR);
    let a = "a".repeat(300);
    let b = "b".repeat(300);
    allocate(&c, &a, "eth0").unwrap(); // .2
    allocate(&c, &b, "eth0").unwrap(); // .3
    // Find each entry by the holder it records (the ID in hex).
    let hex_a = "61".repeat(300);
    let (mut entry_a, mut entry_b) = (None, None);
    for n in names(&index).into_iter().filter(|n| n != "stamp") {
        let text = fs::read_to_string(index.join(&n)).unwrap();
        if text.contains(&hex_a) {
            entry_a = Some((n, text));
        } else {
            entry_b = Some(n);
        }
    }
    let (_, text_a) = entry_a.unwrap();
    let entry_b = index.join(entry_b.unwrap());
    // A collision: b's name holding a's record (a file write in the index
    // does not change the network directory: no rebuild repairs it).
    fs::write(&entry_b, &text_a).unwrap();
    let err = held(&c, &b, "eth0").unwrap_err();
    assert!(
        err.to_string().contains(&entry_b.display().to_string()),
        "{err}"
    );
    // The failure distrusts the index: the next call rebuilds it, which
    // gives b its own entry back.
    assert_eq!(held(&c, &b, "eth0").unwrap(), ips(&["198.18.0.3"]));
    // The same for a DEL and an ADD: they fail, releasing and claiming
    // nothing; a's address is never reported for b, nor released.
    let before = names(&net);
    let unchanged = || {
        assert_eq!(names(&net), before);
        assert_eq!(
            fs::read_to_string(net.join("198.18.0.2")).unwrap(),
            format!("{a}\r\neth0")
        );
        assert_eq!(
            fs::read_to_string(net.join("198.18.0.3")).unwrap(),
            format!("{b}\r\neth0")
        );
        // (a successful call: the index is rebuilt and sealed again)
        assert_eq!(held(&c, &a, "eth0").unwrap(), ips(&["198.18.0.2"]));
    };
    fs::write(&entry_b, &text_a).unwrap();
    let err = release(&c, &b, "eth0").unwrap_err();
    assert!(err.to_string().contains("does not record"), "{err}");
    unchanged();
    fs::write(&entry_b, &text_a).unwrap();
    let err = allocate(&c, &b, "eth0").unwrap_err();
    assert!(err.to_string().contains("does not record"), "{err}");
    unchanged();
    assert_eq!(release(&c, &b, "eth0").unwrap(), ips(&["198.18.0.3"]));
    assert_eq!(held(&c, &a, "eth0").unwrap(), ips(&["198.18.0.2"]));
}

#[test]
fn ids_from_planted_files_never_escape_the_index_dir() {
    let d = TempDir::new();
    let c = wide(&d);
    let net = d.0.join("net1");
    allocate(&c, "c1", "eth0").unwrap(); // .2
    let planted = [
        ("198.18.0.10", "../../escape\r\neth0"),
        ("198.18.0.11", "a/b\r\neth0"),
        ("198.18.0.12", ".\r\neth0"),
        ("198.18.0.13", "..\r\neth0"),
        ("198.18.0.14", "x\r\n../../up"),
        ("198.18.0.15", "y\r\n.."),
        ("198.18.0.16", "../../legacy"),
        ("198.18.0.17", "z%q\r\neth0"),
    ];
    for (ip, content) in planted {
        fs::write(net.join(ip), content).unwrap();
    }
    // The next call rebuilds the index from those contents.
    assert_eq!(held(&c, "c1", "eth0").unwrap(), ips(&["198.18.0.2"]));
    allocate(&c, "c2", "eth0").unwrap();
    // Nothing outside the index: the data dir and the network dir hold
    // only what they held, and the index is flat (one file per holder).
    assert_eq!(names(&d.0), ["net1"]);
    let mut expected: Vec<String> = planted.iter().map(|(ip, _)| (*ip).to_owned()).collect();
    expected.extend(
        [
            "198.18.0.2",
            "198.18.0.3",
            "k8snet-index",
            "last_reserved_ip.0",
            "lock",
        ]
        .map(String::from),
    );
    expected.sort();
    assert_eq!(names(&net), expected);
    let index = net.join(store::INDEX_DIR);
    let entries = names(&index);
    assert_eq!(entries.len(), planted.len() + 3, "{entries:?}");
    for n in &entries {
        assert!(
            fs::symlink_metadata(index.join(n)).unwrap().is_file(),
            "{n}"
        );
    }
    // GC releases them all through their index-independent files.
    let valid = [Attachment {
        container_id: "c1".into(),
        ifname: "eth0".into(),
    }];
    assert_eq!(gc(&c, &valid).unwrap().len(), planted.len() + 1);
    assert_eq!(names(&index), ["c1%eth0", "stamp"]);

    // The Store's entry points refuse IDs and ifnames that are no valid
    // CNI values, naming the variable, and create nothing.
    let s = Store::open(&net).unwrap();
    let ip: IpAddr = "198.18.0.20".parse().unwrap();
    let is_env = |r: Result<(), Error>, var: &str| match r {
        Err(Error::Env { var: v, .. }) => assert_eq!(v, var),
        other => panic!("{other:?}"),
    };
    is_env(s.by_id("../x", "eth0").map(drop), "CNI_CONTAINERID");
    is_env(s.by_id("c1", "../e").map(drop), "CNI_IFNAME");
    is_env(s.reserve("a/b", "eth0", ip, 0).map(drop), "CNI_CONTAINERID");
    is_env(s.reserve("c1", "..", ip, 0).map(drop), "CNI_IFNAME");
    is_env(s.record(".", "eth0", &[ip]), "CNI_CONTAINERID");
    is_env(s.record("c1", "a/b", &[ip]), "CNI_IFNAME");
    is_env(s.release_by_id("..", "eth0").map(drop), "CNI_CONTAINERID");
    is_env(s.release_by_id("c1", "").map(drop), "CNI_IFNAME");
    drop(s);
    assert_eq!(names(&index), ["c1%eth0", "stamp"]);
    assert!(!net.join("198.18.0.20").exists());
    // (the spare directory holds what GC released)
    assert_eq!(names(&d.0), [store::SPARE_DIR, "net1"]);
}
