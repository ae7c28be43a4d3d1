//! The receive logic of the Linux backend over synthetic datagrams (stale
//! answers, interrupted and failed lists, datagrams cut short), the
//! socket's handling of truncation and EINTR, and, in a namespace of its
//! own, requests that follow one abandoned half way.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;

use k8snet_testnet::interrupt;

use super::*;
use crate::lower::Msg;
use crate::model::{Chain, Set};
use crate::types::{DataType, Key, Value};

/// NLM_F_MULTI: a part of a list.
const MULTI: u16 = 2;
/// NLM_F_CAPPED on an error message.
const CAPPED: u16 = 0x100;
/// NFT_MSG_NEWCHAIN, as the kernel lists a chain.
const NEWCHAIN: u16 = (10 << 8) | 3;

/// One netlink message: header, payload, padding.
fn msg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut b = Vec::new();
    b.extend(u32::try_from(len).unwrap().to_ne_bytes());
    b.extend(ty.to_ne_bytes());
    b.extend(flags.to_ne_bytes());
    b.extend(seq.to_ne_bytes());
    b.extend(0u32.to_ne_bytes());
    b.extend(payload);
    b.resize(len.next_multiple_of(4), 0);
    b
}

/// An acknowledgement (`errno` 0) or error for request `seq`, capped.
fn ack(seq: u32, errno: i32) -> Vec<u8> {
    let mut p = (-errno).to_ne_bytes().to_vec();
    p.extend(msg(NEWCHAIN, 0, seq, &[]));
    msg(NLMSG_ERROR, CAPPED, seq, &p)
}

/// A list entry carrying `tag` (so that it can be told apart).
fn entry(seq: u32, flags: u16, tag: u8) -> Vec<u8> {
    msg(NEWCHAIN, MULTI | flags, seq, &[1, 0, 0, tag])
}

/// The end of a list, with the list's own error code (0 or negative).
fn done(seq: u32, flags: u16, code: i32) -> Vec<u8> {
    msg(NLMSG_DONE, MULTI | flags, seq, &code.to_ne_bytes())
}

fn datagram(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// Answers left queued by an earlier request (before `base`) and to a
/// later one are not counted for this transaction: neither their acks nor
/// their errors.
#[test]
fn a_transaction_counts_only_its_own_answers() {
    // Messages 101..=103 between the markers 100 and 104.
    let mut a = Answers::new(100, 5);
    a.absorb(&datagram(&[
        ack(96, 0),
        ack(97, libc::ENOENT),
        ack(101, 0),
        ack(102, 0),
    ]))
    .unwrap();
    a.absorb(&datagram(&[
        ack(103, 0),
        ack(105, libc::EEXIST),
        entry(99, 0, 1),
    ]))
    .unwrap();
    assert_eq!(a.acks, 3);
    assert!(a.errors.is_empty(), "{:?}", a.errors);

    // A real error of this transaction is kept, stale acks do not make up
    // for the missing one.
    let mut a = Answers::new(100, 5);
    a.absorb(&datagram(&[
        ack(101, 0),
        ack(102, libc::EBUSY),
        ack(99, 0),
        ack(98, 0),
        ack(103, 0),
    ]))
    .unwrap();
    assert_eq!(a.acks, 2);
    assert_eq!(a.errors.len(), 1);
    assert_eq!(a.errors[0].0, 102);
    assert_eq!(a.errors[0].1, libc::EBUSY);
    // An error on a batch marker is this transaction's too.
    let mut a = Answers::new(100, 5);
    a.absorb(&ack(100, libc::EPERM)).unwrap();
    assert_eq!(a.errors.len(), 1);

    // Sequence numbers that wrap around.
    let mut a = Answers::new(u32::MAX - 1, 4);
    a.absorb(&datagram(&[
        ack(u32::MAX, 0),
        ack(0, 0),
        ack(u32::MAX - 2, libc::ENOENT),
    ]))
    .unwrap();
    assert_eq!(a.acks, 2);
    assert!(a.errors.is_empty());
}

/// A list takes its own entries and ends at its own end: entries, ends
/// and errors of other requests in the same datagrams are skipped.
#[test]
fn a_list_takes_only_its_own_messages() {
    let mut d = DumpAnswer::new(7, false);
    let first = datagram(&[
        entry(6, 0, 1),
        done(6, 0, 0),
        entry(7, 0, 2),
        ack(5, libc::EBUSY),
    ]);
    assert!(!d.absorb(&first).unwrap());
    let second = datagram(&[entry(7, 0, 3), done(7, 0, 0), entry(8, 0, 4)]);
    assert!(d.absorb(&second).unwrap());
    assert_eq!(d.end, Some(DumpEnd::Done));
    assert!(!d.interrupted);
    let tags: Vec<u8> = d.messages.iter().map(|m| m[19]).collect();
    assert_eq!(tags, [2, 3]);

    // A get ends with its one answer (no end message follows).
    let mut d = DumpAnswer::new(9, true);
    assert!(
        d.absorb(&datagram(&[entry(8, 0, 1), entry(9, 0, 5)]))
            .unwrap()
    );
    assert_eq!(d.messages.len(), 1);
    assert_eq!(d.end, Some(DumpEnd::Done));

    // Refusals: ENOENT (no such table) and another error, as an error
    // message; a list that failed part way, in its end message.
    let mut d = DumpAnswer::new(3, true);
    assert!(d.absorb(&ack(3, libc::ENOENT)).unwrap());
    assert_eq!(d.end, Some(DumpEnd::Missing));
    let mut d = DumpAnswer::new(3, false);
    assert!(d.absorb(&ack(3, libc::EPERM)).unwrap());
    assert_eq!(d.end, Some(DumpEnd::Failed(libc::EPERM)));
    let mut d = DumpAnswer::new(3, false);
    assert!(
        d.absorb(&datagram(&[entry(3, 0, 1), done(3, 0, -libc::ENOMEM)]))
            .unwrap()
    );
    assert_eq!(d.end, Some(DumpEnd::Failed(libc::ENOMEM)));
}

/// A list the kernel flags as interrupted by a change (on an entry, or
/// only on its end) is known as such, and is started again a bounded
/// number of times.
#[test]
fn an_interrupted_list_is_flagged_and_retried_a_few_times() {
    let mut d = DumpAnswer::new(4, false);
    let parts = [entry(4, 0, 1), entry(4, NLM_F_DUMP_INTR, 2), done(4, 0, 0)];
    assert!(d.absorb(&datagram(&parts)).unwrap());
    assert!(d.interrupted);
    let mut d = DumpAnswer::new(4, false);
    assert!(
        d.absorb(&datagram(&[entry(4, 0, 1), done(4, NLM_F_DUMP_INTR, 0)]))
            .unwrap()
    );
    assert!(d.interrupted);
    // The flag on another request's message is not this list's.
    let mut d = DumpAnswer::new(4, false);
    let parts = [entry(3, NLM_F_DUMP_INTR, 1), entry(4, 0, 2), done(4, 0, 0)];
    assert!(d.absorb(&datagram(&parts)).unwrap());
    assert!(!d.interrupted);

    // Interrupted twice, then consistent: the third result is used.
    let mut calls = 0;
    let got = until_consistent(DUMP_ATTEMPTS, || {
        calls += 1;
        Ok((calls == 3).then_some(calls))
    })
    .unwrap();
    assert_eq!((got, calls), (Some(3), 3));
    // Always interrupted: given up after the bound, not used.
    let mut calls = 0;
    let got = until_consistent(DUMP_ATTEMPTS, || {
        calls += 1;
        Ok(None::<()>)
    })
    .unwrap();
    assert_eq!((got, calls), (None, DUMP_ATTEMPTS));
    // An error ends the attempts.
    let mut calls = 0;
    let got = until_consistent(DUMP_ATTEMPTS, || -> Result<Option<()>> {
        calls += 1;
        Err(Error::NotOwned("x".into()))
    });
    assert!(got.is_err());
    assert_eq!(calls, 1);
}

/// A datagram that does not split into whole messages is an error for
/// every reader, never a shorter list or fewer answers.
#[test]
fn a_datagram_cut_short_is_refused() {
    let whole = datagram(&[entry(7, 0, 1), entry(7, 0, 2), done(7, 0, 0)]);
    for cut in [whole.len() - 4, whole.len() - 22, 10] {
        let part = &whole[..cut];
        let e = messages(part).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("malformed netlink datagram"), "{e}");
        assert!(DumpAnswer::new(7, false).absorb(part).is_err());
        assert!(Answers::new(7, 3).absorb(part).is_err());
    }
    // A length below the header's.
    let mut bad = entry(7, 0, 1);
    bad[0] = 8;
    assert!(messages(&bad).is_err());
    // The last message's padding may be left out.
    let mut e = entry(7, 0, 1);
    e.extend(msg(NEWCHAIN, 0, 7, &[1]));
    let unpadded = &e[..e.len() - 3];
    assert_eq!(messages(unpadded).unwrap().len(), 2);
}

/// A datagram longer than the buffer is an error naming both lengths (the
/// socket never hands out its first bytes as if whole); the next datagram
/// is read normally.
#[test]
fn a_datagram_longer_than_the_buffer_is_an_error() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let sock = Socket::from_fd(OwnedFd::from(b));
    let mut buf = [0u8; 50];
    assert!(sock.recv(&mut buf, false).unwrap().is_none());
    a.send(&[7; 100]).unwrap();
    a.send(&[8; 10]).unwrap();
    let e = sock.recv(&mut buf, true).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert_eq!(Truncated::of(&e), Some(Truncated { len: 100, room: 50 }));
    assert!(e.to_string().contains("100 bytes"), "{e}");
    assert_eq!(sock.recv(&mut buf, true).unwrap(), Some(10));
    assert_eq!(buf[..10], [8; 10]);
}

/// A code with no negation (`i32::MIN`, never sent by the kernel) is a
/// malformed answer: a failure, not a panic (overflow) nor a clean end.
#[test]
fn a_code_of_i32_min_is_a_failure_not_a_panic() {
    let mut d = DumpAnswer::new(3, false);
    assert!(d.absorb(&done(3, 0, i32::MIN)).unwrap());
    assert!(
        matches!(d.end, Some(DumpEnd::Failed(libc::EINVAL))),
        "{:?}",
        d.end
    );
    let mut p = i32::MIN.to_ne_bytes().to_vec();
    p.extend(msg(NEWCHAIN, 0, 101, &[]));
    let mut a = Answers::new(100, 3);
    a.absorb(&msg(NLMSG_ERROR, CAPPED, 101, &p)).unwrap();
    assert_eq!(a.errors.len(), 1);
}

const EINTR_CHILD: &str = "K8SNET_NFT_EINTR_CHILD";
const EINTR_TEST: &str = "linux::tests::a_receive_interrupted_by_a_signal_is_retried";

/// A blocking receive on a socket with a receive timeout (as the netfilter
/// socket has) fails with EINTR when its process is stopped and continued
/// (signal(7)); the socket retries it and returns the datagram sent after.
/// The receive runs in a child process (see `k8snet_testnet::interrupt`).
#[test]
fn a_receive_interrupted_by_a_signal_is_retried() {
    if std::env::var_os(EINTR_CHILD).is_some() {
        return eintr_child();
    }
    interrupt::stop_and_continue_child(EINTR_TEST, EINTR_CHILD);
}

/// The child's role: a reader blocked in [`Socket::recv`] while the parent
/// stops and continues this process, then a datagram for it.
fn eintr_child() {
    let (a, b) = UnixDatagram::pair().unwrap();
    // The receive timeout is what turns the stop into EINTR.
    b.set_read_timeout(Some(interrupt::PATIENCE)).unwrap();
    let sock = Socket::from_fd(OwnedFd::from(b));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        tx.send(interrupt::thread_id()).unwrap();
        let mut buf = [0u8; 64];
        sock.recv(&mut buf, true)
            .map(|n| n.map(|n| buf[..n].to_vec()))
    });
    interrupt::reader_blocked(&rx.recv().unwrap());
    a.send(b"after the stop").unwrap();
    let got = reader.join().unwrap().map_err(|e| e.to_string());
    assert_eq!(got, Ok(Some(b"after the stop".to_vec())));
}

fn big_table(name: &str) -> Table {
    // More elements than one list datagram holds (at most 32 KiB).
    let mut set = Set::new(vec![DataType::Ipv4Addr]);
    for i in 0..6000u32 {
        let ip = std::net::Ipv4Addr::from(0xc612_0000 + i);
        set = set.with_element(Key(vec![Value::Ipv4(ip)]));
    }
    Table::new(Family::Inet, name)
        .with_set("big", set)
        .with_chain("c1", Chain::regular())
}

/// Sends the bytes of a transaction deleting a chain that does not exist,
/// with sequence numbers from `seq`, and reads nothing: its error stays
/// queued.
fn leave_an_error_queued(nft: &Nft, table: &str, seq: u32) {
    let mut bytes = Vec::new();
    sys::batch_marker(&mut bytes, seq, true).unwrap();
    let del = Msg::DelChain {
        name: "nosuch".into(),
    };
    sys::build(&mut bytes, Family::Inet.nfproto(), table, &del, seq + 1).unwrap();
    sys::batch_marker(&mut bytes, seq + 2, false).unwrap();
    nft.sock.send(&bytes).unwrap();
}

/// Requests whose answers were left unread (a transaction's error, a list
/// the kernel is still producing) do not disturb the next requests on the
/// same handle: a transaction is not failed by an old error, a list is not
/// refused as busy nor mixed with the old one. A datagram that does not
/// fit the buffer fails its request clearly, and the next one works.
#[test]
fn requests_after_abandoned_ones_get_their_own_answers() {
    k8snet_testnet::kernel_test!();
    let tn = k8snet_testnet::Testnet::new("nftstale").unwrap();
    let name = "k8snet-stale";
    let table = big_table(name);
    tn.node()
        .run(|| {
            let mut nft = Nft::new().unwrap();
            nft.apply(&diff(None, &table).unwrap()).unwrap();

            // An old transaction's error waits on the socket.
            leave_an_error_queued(&nft, name, 0x5000_0000);
            let more = table.clone().with_chain("c2", Chain::regular());
            nft.apply(&diff(Some(&table), &more).unwrap())
                .expect("a transaction after an unread error");

            // An old list of the big set is still running (only its first
            // datagram is made until it is read), and an error waits.
            let (family, stale) = (Family::Inet.nfproto(), 0x4000_0000);
            let list = sys::request(Request::Elements("big"), family, name, stale).unwrap();
            nft.sock.send(&list).unwrap();
            leave_an_error_queued(&nft, name, 0x6000_0000);
            let mut chains = Vec::new();
            let listed = nft.dump(Request::Chains, Family::Inet, name, |m| {
                chains.extend(sys::parse_chain(m).map(|c| c.name));
            });
            assert!(listed.expect("a list after an unread list"));
            chains.sort();
            assert_eq!(chains, ["c1", "c2"]);
            let back = nft
                .read_table(Family::Inet, name)
                .expect("a read-back after an unread list")
                .expect("the table");
            assert_eq!(back, more);

            // A buffer too small for the answers: a clear error, not a
            // short table; the buffer then grows and the next read works.
            nft.buf = vec![0; 64];
            let e = nft.read_table(Family::Inet, name).unwrap_err().to_string();
            assert!(e.contains("did not fit the 64-byte receive buffer"), "{e}");
            let back = nft.read_table(Family::Inet, name).unwrap().unwrap();
            assert_eq!(back, more);
        })
        .unwrap();
}
