//! Fuzz the DNS answer path: any bytes, as a query over UDP and over TCP,
//! must get a reply within the transport's limit that carries the query's
//! ID, or no reply — never a panic. The same bytes, as an upstream reply,
//! go through the forwarder's cache (its message reader and TTL patching).
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8snet_dns::forward::{Cache, CacheConfig};
use k8snet_dns::{AnswerOutcome, PodMode, Transport, Zone, ZoneConfig};
use k8snet_model::{Cluster, Manifests};
use libfuzzer_sys::fuzz_target;

const FIXTURE: &str = include_str!("../../k8snet-dns/tests/common/fixture.yaml");

fn zone() -> &'static Zone {
    static ZONE: OnceLock<Zone> = OnceLock::new();
    ZONE.get_or_init(|| {
        let mut m = Manifests::new();
        m.load_str("fixture.yaml", FIXTURE);
        let cfg = ZoneConfig::default().pods(PodMode::Verified);
        Zone::build(&Cluster::from_manifests(&m), &cfg).expect("the fixture builds")
    })
}

/// A valid query the fuzzer's bytes are cached against.
const QUERY: &[u8] = b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x04test\x00\x00\x01\x00\x01";

fuzz_target!(|data: &[u8]| {
    let mut out = vec![0u8; 65_535];
    for (transport, limit) in [(Transport::Udp, 1232), (Transport::Tcp, 65_535)] {
        match zone().answer_with(data, transport, &mut out) {
            AnswerOutcome::Answered(r) | AnswerOutcome::NotAuthoritative(r) => {
                assert!(r.len >= 12 && r.len <= limit);
                assert_eq!(out[..2], data[..2]);
                assert!(out[2] & 0x80 != 0, "a response");
            }
            _ => {}
        }
    }
    let cache = Cache::new(CacheConfig::default());
    let now = Instant::now();
    cache.insert(QUERY, data, now);
    cache.insert(data, data, now);
    let _ = cache.lookup(QUERY, now + Duration::from_secs(1), &mut out);
    let _ = cache.lookup(data, now + Duration::from_secs(1), &mut out);
});
