//! Any input: `Zone::answer` never panics, never allocates, and either
//! stays silent or writes a well-formed reply (decoded by hickory-proto)
//! that carries the query's ID and fits the transport's limit.
#![allow(unsafe_code)] // the counting allocator below, and nothing else

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::OnceLock;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use k8snet_dns::{AnswerOutcome, PodMode, Transport, Zone, ZoneConfig};
use proptest::prelude::*;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts this thread's allocations.
struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        let cfg = ZoneConfig::default().pods(PodMode::Insecure);
        Zone::build(&common::cluster(common::FIXTURE), &cfg).unwrap()
    })
}

fn query(name: &str, t: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if edns {
        m.set_edns(Edns::new());
    }
    m.to_vec().unwrap()
}

/// Valid queries that reach every answer path.
fn seeds() -> Vec<Vec<u8>> {
    let names = [
        ("svc1.testns.svc.cluster.local.", RecordType::A),
        (
            "_http._tcp.hdls1.testns.svc.cluster.local.",
            RecordType::SRV,
        ),
        ("hdls1.testns.svc.cluster.local.", RecordType::AAAA),
        ("external.testns.svc.cluster.local.", RecordType::A),
        ("1.0.19.198.in-addr.arpa.", RecordType::PTR),
        ("nope.testns.svc.cluster.local.", RecordType::A),
        ("1-2-3-4.testns.pod.cluster.local.", RecordType::A),
        ("cluster.local.", RecordType::SOA),
        ("example.com.", RecordType::A),
    ];
    names
        .iter()
        .flat_map(|&(n, t)| [query(n, t, false), query(n, t, true)])
        .collect()
}

fn check(input: &[u8]) {
    let z = zone();
    let mut out = vec![0u8; 65_535];
    for (transport, limit) in [(Transport::Udp, 1232), (Transport::Tcp, 65_535)] {
        let before = ALLOCATIONS.with(Cell::get);
        let outcome = z.answer_with(input, transport, &mut out);
        assert_eq!(ALLOCATIONS.with(Cell::get), before, "answer_with allocated");
        let reply = match outcome {
            AnswerOutcome::Answered(r) | AnswerOutcome::NotAuthoritative(r) => r,
            AnswerOutcome::Dropped => continue,
            _ => unreachable!("no other outcome exists today"),
        };
        assert!(reply.len >= 12 && reply.len <= limit, "{} bytes", reply.len);
        assert_eq!(out[..2], input[..2], "the query's ID");
        let m = Message::from_vec(&out[..reply.len]).unwrap_or_else(|e| {
            panic!("malformed reply {:?} to {input:?}: {e}", &out[..reply.len])
        });
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(usize::from(reply.answers), m.answers.len());
    }
}

#[test]
fn seeds_are_answered_without_allocating() {
    for q in seeds() {
        check(&q);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        check(&input);
    }

    #[test]
    fn mutated_queries(
        seed in 0usize..18,
        flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<u16>()),
    ) {
        let mut q = seeds()[seed].clone();
        for (at, byte) in flips {
            let i = usize::from(at) % q.len();
            q[i] = byte;
        }
        if let Some(c) = cut {
            q.truncate(usize::from(c) % (q.len() + 1));
        }
        check(&q);
    }
}
