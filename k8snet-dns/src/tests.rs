//! Unit tests of the zone: every record kind and negative case, decoded
//! with hickory-proto. The fixture mirrors CoreDNS's `handler_test.go`.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use k8snet_model::{Cluster, Manifests};

use crate::{AnswerOutcome, PodMode, Rcode, Transport, Zone, ZoneConfig};

pub(crate) const FIXTURE: &str = include_str!("../tests/common/fixture.yaml");

pub(crate) fn cluster() -> Cluster {
    let mut m = Manifests::new();
    m.load_str("fixture.yaml", FIXTURE);
    assert!(m.errors().is_empty(), "{:#?}", m.errors());
    Cluster::from_manifests(&m)
}

fn zone_with(cfg: ZoneConfig) -> Zone {
    Zone::build(&cluster(), &cfg.serial(1499347823)).unwrap()
}

fn zone() -> Zone {
    zone_with(ZoneConfig::default())
}

pub(crate) fn query(name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(0xBEEF, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn ask_on(z: &Zone, name: &str, t: RecordType, transport: Transport, edns: Option<u16>) -> Message {
    let q = query(name, t, edns);
    let mut out = vec![0u8; 65_535];
    let len = match z.answer_with(&q, transport, &mut out) {
        AnswerOutcome::Answered(r) | AnswerOutcome::NotAuthoritative(r) => r.len,
        AnswerOutcome::Dropped => panic!("dropped {name}"),
    };
    let m = Message::from_vec(&out[..len]).unwrap();
    assert_eq!(m.metadata.id, 0xBEEF);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    m
}

fn ask(z: &Zone, name: &str, t: RecordType) -> Message {
    ask_on(z, name, t, Transport::Tcp, None)
}

fn data(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}

/// NODATA or NXDOMAIN with the zone's SOA (TTL min(ttl, 300), minimum ttl).
fn assert_negative(m: &Message, nx: bool, zone: &str, ttl: u32) {
    let want = if nx {
        ResponseCode::NXDomain
    } else {
        ResponseCode::NoError
    };
    assert_eq!(rcode(m), want, "{m}");
    assert!(m.answers.is_empty(), "{m}");
    assert_eq!(m.authorities.len(), 1, "{m}");
    let soa = &m.authorities[0];
    assert_eq!(soa.name, Name::from_ascii(zone).unwrap());
    assert_eq!(soa.ttl, ttl.min(300));
    let RData::SOA(s) = &soa.data else {
        panic!("{m}")
    };
    assert_eq!(s.minimum, ttl);
    assert_eq!(s.mname.to_string(), format!("ns.dns.{zone}"));
    assert_eq!(s.rname.to_string(), format!("hostmaster.{zone}"));
    assert_eq!((s.refresh, s.retry, s.expire), (7200, 1800, 86400));
}

const Z: &str = "cluster.local.";

#[test]
fn clusterip_address_records_per_family() {
    let z = zone();
    let m = ask(&z, "svc1.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(data(&m), ["198.19.0.1"]);
    assert!(
        m.metadata.authoritative && m.metadata.recursion_desired && !m.metadata.recursion_available
    );
    assert_eq!(m.answers[0].ttl, 5);
    assert_negative(
        &ask(&z, "svc1.testns.svc.cluster.local.", RecordType::AAAA),
        false,
        Z,
        5,
    );
    assert_eq!(
        data(&ask(&z, "svc6.testns.svc.cluster.local.", RecordType::AAAA)),
        ["fd00:19::1"]
    );
    assert_negative(
        &ask(&z, "svc6.testns.svc.cluster.local.", RecordType::A),
        false,
        Z,
        5,
    );
    assert_eq!(
        data(&ask(
            &z,
            "svc-dual.testns.svc.cluster.local.",
            RecordType::A
        )),
        ["198.19.0.3"]
    );
    assert_eq!(
        data(&ask(
            &z,
            "svc-dual.testns.svc.cluster.local.",
            RecordType::AAAA
        )),
        ["fd00:19::3"]
    );
}

#[test]
fn srv_for_named_ports_with_additional_addresses() {
    let z = zone();
    let m = ask(
        &z,
        "_http._tcp.svc1.testns.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(data(&m), ["0 100 80 svc1.testns.svc.cluster.local."]);
    assert_eq!(m.additionals.len(), 1);
    assert_eq!(m.additionals[0].data.to_string(), "198.19.0.1");
    // Dual stack: one SRV of weight 50, both addresses as additionals.
    let m = ask(
        &z,
        "_http._tcp.svc-dual.testns.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(data(&m), ["0 50 80 svc-dual.testns.svc.cluster.local."]);
    assert_eq!(m.additionals.len(), 2);
    // The UDP port of a multi-port service, and the bare SRV of all ports.
    let m = ask(
        &z,
        "_dns._udp.multi.testns.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(data(&m), ["0 100 53 multi.testns.svc.cluster.local."]);
    let m = ask(&z, "multi.testns.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        data(&m),
        [
            "0 50 80 multi.testns.svc.cluster.local.",
            "0 50 53 multi.testns.svc.cluster.local."
        ]
    );
    // Wrong protocol, unknown port, the empty non-terminal: NXDOMAIN.
    for n in [
        "_http._udp.svc1",
        "_nope._tcp.svc1",
        "_tcp.svc1",
        "_dns._tcp.multi",
    ] {
        assert_negative(
            &ask(
                &z,
                &format!("{n}.testns.svc.cluster.local."),
                RecordType::SRV,
            ),
            true,
            Z,
            5,
        );
    }
    // Other types at an SRV name: NODATA.
    assert_negative(
        &ask(
            &z,
            "_http._tcp.svc1.testns.svc.cluster.local.",
            RecordType::A,
        ),
        false,
        Z,
        5,
    );
}

#[test]
fn ptr_records_ipv4_and_full_nibble_ipv6() {
    let z = zone();
    let m = ask(&z, "1.0.19.198.in-addr.arpa.", RecordType::PTR);
    assert_eq!(data(&m), ["svc1.testns.svc.cluster.local."]);
    let v6: IpAddr = "fd00:19::1".parse().unwrap();
    let m = ask(&z, &Name::from(v6).to_string(), RecordType::PTR);
    assert_eq!(data(&m), ["svc6.testns.svc.cluster.local."]);
    let m = ask(&z, "3.0.19.198.in-addr.arpa.", RecordType::PTR);
    assert_eq!(data(&m), ["svc-dual.testns.svc.cluster.local."]);
    // Headless endpoints point to their endpoint names.
    let m = ask(&z, "2.0.18.198.in-addr.arpa.", RecordType::PTR);
    assert_eq!(data(&m), ["198-18-0-2.hdls1.testns.svc.cluster.local."]);
    let m = ask(&z, "4.0.18.198.in-addr.arpa.", RecordType::PTR);
    assert_eq!(data(&m), ["dup-name.hdls1.testns.svc.cluster.local."]);
    let v6: IpAddr = "fd00:18::2".parse().unwrap();
    let m = ask(&z, &Name::from(v6).to_string(), RecordType::PTR);
    assert_eq!(data(&m), ["fd00-18--2.hdls1.testns.svc.cluster.local."]);
    // A not-ready endpoint has none; an unknown reverse name is not ours.
    let m = ask(&z, "6.0.18.198.in-addr.arpa.", RecordType::PTR);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    // Another type at a PTR name: NODATA with the reverse zone's SOA,
    // whose names are under the reverse zone (CoreDNS reverse_test.go).
    let m = ask(&z, "1.0.19.198.in-addr.arpa.", RecordType::A);
    assert_negative(&m, false, "in-addr.arpa.", 5);
    let v6: IpAddr = "fd00:19::1".parse().unwrap();
    let m = ask(&z, &Name::from(v6).to_string(), RecordType::TXT);
    assert_negative(&m, false, "ip6.arpa.", 5);
}

#[test]
fn headless_records_per_ready_endpoint() {
    let z = zone();
    let m = ask(&z, "hdls1.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(
        data(&m),
        ["198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"]
    );
    let m = ask(&z, "hdls1.testns.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(data(&m), ["fd00:18::1", "fd00:18::2"]);
    let m = ask(
        &z,
        "dup-name.hdls1.testns.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(data(&m), ["198.18.0.4", "198.18.0.5"]);
    let m = ask(
        &z,
        "198-18-0-3.hdls1.testns.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(data(&m), ["198.18.0.3"]);
    let m = ask(
        &z,
        "fd00-18--1.hdls1.testns.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(data(&m), ["fd00:18::1"]);
    for n in ["198-18-0-6", "bogus"] {
        assert_negative(
            &ask(
                &z,
                &format!("{n}.hdls1.testns.svc.cluster.local."),
                RecordType::A,
            ),
            true,
            Z,
            5,
        );
    }
    // No ready endpoint: NXDOMAIN (spec §2.4.1), for every type.
    for t in [RecordType::A, RecordType::SRV, RecordType::TXT] {
        assert_negative(
            &ask(&z, "hdls-down.testns.svc.cluster.local.", t),
            true,
            Z,
            5,
        );
    }
}

#[test]
fn headless_srv_targets_endpoints_with_the_slice_port() {
    let z = zone();
    let m = ask(
        &z,
        "_http._tcp.hdls1.testns.svc.cluster.local.",
        RecordType::SRV,
    );
    // 6 ready endpoints: weight 100/6; dup-name merged into one record.
    assert_eq!(
        data(&m),
        [
            "0 16 8080 198-18-0-2.hdls1.testns.svc.cluster.local.",
            "0 16 8080 198-18-0-3.hdls1.testns.svc.cluster.local.",
            "0 16 8080 dup-name.hdls1.testns.svc.cluster.local.",
            "0 16 8080 fd00-18--1.hdls1.testns.svc.cluster.local.",
            "0 16 8080 fd00-18--2.hdls1.testns.svc.cluster.local.",
        ]
    );
    let extra: Vec<String> = m
        .additionals
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(extra.len(), 6, "{extra:?}");
    assert!(extra.contains(&"dup-name.hdls1.testns.svc.cluster.local. 198.18.0.5".to_string()));
    let bare = ask(&z, "hdls1.testns.svc.cluster.local.", RecordType::SRV);
    assert_eq!(bare.answers.len(), 5);
}

#[test]
fn external_name_is_a_cname_for_every_type() {
    let z = zone();
    for t in [
        RecordType::CNAME,
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
    ] {
        let m = ask(&z, "external.testns.svc.cluster.local.", t);
        assert_eq!(data(&m), ["ext.interwebs.test."], "{t}");
        assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
    }
    assert_negative(
        &ask(
            &z,
            "endpoint.external.testns.svc.cluster.local.",
            RecordType::CNAME,
        ),
        true,
        Z,
        5,
    );
}

/// `Reply::alias_in_zone`, as the server reads it: which ExternalName
/// targets the zone answers itself (a server without upstream chases
/// only those). Decided at build time, kept by an incremental update.
#[test]
fn an_alias_says_whether_its_target_is_in_the_zone() {
    let mut c = cluster();
    let mut m = Manifests::new();
    let services = [
        ("inside", "svc1.testns.svc.cluster.local"),
        ("apex", "cluster.local"),
        ("lookalike", "svc1.notcluster.local"),
        ("suffix", "cluster.local.example"),
    ];
    for (name, target) in services {
        m.load_str(
            "aliases.yaml",
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: testns}}\n\
                 spec: {{type: ExternalName, externalName: \"{target}\"}}\n"
            ),
        );
    }
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    for o in m.into_objects() {
        c.upsert(o).unwrap();
    }
    let want = [
        ("external", false),
        ("inside", true),
        ("apex", true),
        ("lookalike", false),
        ("suffix", false),
    ];
    let built = Zone::build(&c, &ZoneConfig::default()).unwrap();
    // The fixture's zone, `inside` then added by an update: it has
    // `external` and `inside` of the names above.
    let updated = zone().update_service(&c, &k8snet_model::NsName::new("testns", "inside"));
    let mut out = vec![0u8; 512];
    for (z, names) in [(&built, &want[..]), (&updated, &want[..2])] {
        for &(svc, in_zone) in names {
            let owner = format!("{svc}.testns.svc.cluster.local.");
            for (t, alias) in [
                (RecordType::A, true),
                (RecordType::TXT, true),
                (RecordType::CNAME, false),
            ] {
                let AnswerOutcome::Answered(r) = z.answer(&query(&owner, t, None), &mut out) else {
                    panic!("{owner} {t}")
                };
                assert_eq!(r.answers, 1, "{owner} {t}");
                assert_eq!(
                    (r.alias, r.alias_in_zone),
                    (alias, alias && in_zone),
                    "{owner} {t}"
                );
            }
        }
    }
}

#[test]
fn schema_version_apex_and_empty_non_terminals() {
    let z = zone_with(ZoneConfig::default().nameservers(["198.19.0.10".parse().unwrap()]));
    let m = ask(&z, "dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(data(&m), ["1.1.0"]);
    assert_eq!(m.answers[0].ttl, 28800);
    assert_negative(
        &ask(&z, "dns-version.cluster.local.", RecordType::A),
        true,
        Z,
        5,
    );
    let m = ask(&z, "cluster.local.", RecordType::SOA);
    assert_eq!(m.answers.len(), 1);
    let RData::SOA(soa) = &m.answers[0].data else {
        panic!()
    };
    assert_eq!(soa.serial, 1499347823);
    let m = ask(&z, "cluster.local.", RecordType::NS);
    assert_eq!(data(&m), ["ns.dns.cluster.local."]);
    assert_eq!(m.additionals[0].data.to_string(), "198.19.0.10");
    assert_eq!(
        data(&ask(&z, "ns.dns.cluster.local.", RecordType::A)),
        ["198.19.0.10"]
    );
    assert_negative(&ask(&z, "cluster.local.", RecordType::HINFO), false, Z, 5);
    // `testns.pod` exists only with pod records: see
    // `pod_namespace_names_exist_only_with_pod_records`.
    for n in ["svc", "pod", "testns.svc", "dns"] {
        assert_negative(
            &ask(&z, &format!("{n}.cluster.local."), RecordType::A),
            false,
            Z,
            5,
        );
        assert_negative(
            &ask(&z, &format!("{n}.cluster.local."), RecordType::NS),
            false,
            Z,
            5,
        );
    }
    assert_negative(
        &ask(&z, "svc1.testns.svc.cluster.local.", RecordType::TXT),
        false,
        Z,
        5,
    );
    assert_negative(
        &ask(&z, "svc1.testns.svc.cluster.local.", RecordType::SOA),
        false,
        Z,
        5,
    );
    for n in [
        "foo",
        "foo.svc",
        "svc0.testns.svc",
        "svc1.nons.svc",
        "x.svc1.testns.svc",
    ] {
        assert_negative(
            &ask(&z, &format!("{n}.cluster.local."), RecordType::A),
            true,
            Z,
            5,
        );
    }
}

#[test]
fn matching_is_case_insensitive_and_echoes_the_query_case() {
    let z = zone();
    let name = "SVC1.TestNS.svc.Cluster.LOCAL.";
    let m = ask(&z, name, RecordType::A);
    assert_eq!(data(&m), ["198.19.0.1"]);
    assert!(m.answers[0].name.eq_case(&Name::from_ascii(name).unwrap()));
    assert!(m.queries[0].name.eq_case(&Name::from_ascii(name).unwrap()));
    let m = ask(
        &z,
        "_HTTP._Tcp.Svc1.testns.svc.cluster.local.",
        RecordType::SRV,
    );
    // The owner and the additional's owner point into the question; the
    // SRV target itself is never compressed (RFC 2782), so it is lowercase.
    assert_eq!(
        m.answers[0].name.to_string(),
        "_HTTP._Tcp.Svc1.testns.svc.cluster.local."
    );
    assert_eq!(
        m.additionals[0].name.to_string(),
        "Svc1.testns.svc.cluster.local."
    );
    let m = ask(&z, "NoSuch.TestNS.svc.Cluster.LOCAL.", RecordType::A);
    assert_eq!(m.authorities[0].name.to_string(), "Cluster.LOCAL.");
}

#[test]
fn pod_records_by_mode() {
    let name = "198-18-0-9.testns.pod.cluster.local.";
    let z = zone();
    assert_negative(&ask(&z, name, RecordType::A), true, Z, 5);
    let z = zone_with(ZoneConfig::default().pods(PodMode::Insecure));
    assert_eq!(data(&ask(&z, name, RecordType::A)), ["198.18.0.9"]);
    assert_eq!(
        data(&ask(&z, "1-2-3-4.testns.pod.cluster.local.", RecordType::A)),
        ["1.2.3.4"]
    );
    assert_eq!(
        data(&ask(
            &z,
            "fd00-18--9.testns.pod.cluster.local.",
            RecordType::AAAA
        )),
        ["fd00:18::9"]
    );
    assert_negative(
        &ask(&z, "fd00-18--9.testns.pod.cluster.local.", RecordType::A),
        false,
        Z,
        5,
    );
    assert_negative(
        &ask(&z, "1-2-3-4.nons.pod.cluster.local.", RecordType::A),
        true,
        Z,
        5,
    );
    assert_negative(
        &ask(&z, "1-2-3.testns.pod.cluster.local.", RecordType::A),
        true,
        Z,
        5,
    );
    let z = zone_with(ZoneConfig::default().pods(PodMode::Verified));
    assert_eq!(data(&ask(&z, name, RecordType::A)), ["198.18.0.9"]);
    assert_eq!(
        data(&ask(
            &z,
            "fd00-18--9.testns.pod.cluster.local.",
            RecordType::AAAA
        )),
        ["fd00:18::9"]
    );
    assert_negative(
        &ask(&z, "1-2-3-4.testns.pod.cluster.local.", RecordType::A),
        true,
        Z,
        5,
    );
}

#[test]
fn zone_and_ttl_are_configurable() {
    let z = zone_with(ZoneConfig::new("example.test").ttl(30));
    let m = ask(&z, "svc1.testns.svc.example.test.", RecordType::A);
    assert_eq!(m.answers[0].ttl, 30);
    assert_negative(
        &ask(&z, "nope.example.test.", RecordType::A),
        true,
        "example.test.",
        30,
    );
    let m = ask(&z, "svc1.testns.svc.cluster.local.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    assert!(Zone::build(&Cluster::new(), &ZoneConfig::default().ttl(3601)).is_err());
    assert!(Zone::build(&Cluster::new(), &ZoneConfig::new("a..b")).is_err());
    let z = Zone::build(&Cluster::new(), &ZoneConfig::default().ttl(600)).unwrap();
    assert_negative(&ask(&z, "x.cluster.local.", RecordType::A), true, Z, 600);
}

#[test]
fn edns_opt_is_echoed_and_versions_checked() {
    let z = zone();
    let m = ask_on(
        &z,
        "svc1.testns.svc.cluster.local.",
        RecordType::A,
        Transport::Udp,
        Some(4096),
    );
    assert_eq!(m.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    let m = ask_on(
        &z,
        "svc1.testns.svc.cluster.local.",
        RecordType::A,
        Transport::Udp,
        None,
    );
    assert!(m.edns.is_none());
    // EDNS version 1: BADVERS.
    let mut q = query("svc1.testns.svc.cluster.local.", RecordType::A, Some(1232));
    let at = q.len() - 5; // OPT: … ext-rcode, version, flags(2), rdlen(2)
    q[at] = 1;
    let mut out = [0u8; 512];
    let AnswerOutcome::Answered(r) = z.answer(&q, &mut out) else {
        panic!()
    };
    assert_eq!(r.rcode, Rcode::BadVers);
    let m = Message::from_vec(&out[..r.len]).unwrap();
    assert_eq!(m.edns.unwrap().rcode_high(), 1);
}

/// A headless service with `n` ready endpoints.
fn big_headless(n: usize) -> Zone {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: big, namespace: ns}\nspec: {clusterIP: None}\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: big-1, namespace: ns, labels: {kubernetes.io/service-name: big}}\n\
         addressType: IPv4\nports: [{name: http, port: 80, protocol: TCP}]\nendpoints:\n",
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "- {{addresses: [198.18.{}.{}], hostname: host-{i}}}\n",
            i / 200,
            i % 200 + 1
        ));
    }
    let mut m = Manifests::new();
    m.load_str("big.yaml", &yaml);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    Zone::build(&Cluster::from_manifests(&m), &ZoneConfig::default()).unwrap()
}

#[test]
fn truncation_sets_tc_and_keeps_whole_records() {
    let z = big_headless(100);
    let name = "big.ns.svc.cluster.local.";
    let m = ask_on(&z, name, RecordType::A, Transport::Udp, None);
    assert!(m.metadata.truncation);
    let q_len = 12 + name.len() + 1 + 4;
    assert_eq!(
        m.answers.len(),
        (512 - q_len) / 16,
        "as many 16-byte A records as fit in 512"
    );
    let m = ask_on(&z, name, RecordType::A, Transport::Udp, Some(4096));
    assert!(m.metadata.truncation);
    assert_eq!(m.answers.len(), (1232 - q_len - 11) / 16);
    let m = ask_on(&z, name, RecordType::A, Transport::Tcp, None);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100);
    // SRV: the answers fit in 1232 but not their additionals: additionals
    // are dropped, without TC (RFC 2181 §9).
    let z = big_headless(20);
    let m = ask_on(
        &z,
        "_http._tcp.big.ns.svc.cluster.local.",
        RecordType::SRV,
        Transport::Udp,
        Some(1232),
    );
    assert!(!m.metadata.truncation, "{m}");
    assert_eq!(m.answers.len(), 20);
    assert_eq!(
        m.additionals.len(),
        8,
        "(1232 - 64 - 20 × 52) / 16 A records"
    );
    // An exact fit is not truncated.
    let z = big_headless(30);
    let q = query(name, RecordType::A, None);
    let mut out = vec![0u8; q.len() + 30 * 16];
    let AnswerOutcome::Answered(r) = z.answer_with(&q, Transport::Tcp, &mut out) else {
        panic!()
    };
    assert!(!r.truncated && r.answers == 30 && r.len == out.len());
}

#[test]
fn malformed_and_unsupported_queries() {
    let z = zone();
    let good = query("svc1.testns.svc.cluster.local.", RecordType::A, None);
    let mut out = [0u8; 512];
    let code = |q: &[u8], out: &mut [u8]| match z.answer(q, out) {
        AnswerOutcome::Answered(r) | AnswerOutcome::NotAuthoritative(r) => Some(r.rcode),
        AnswerOutcome::Dropped => None,
    };
    assert_eq!(code(&good, &mut out), Some(Rcode::NoError));
    assert_eq!(code(&good[..11], &mut out), None, "shorter than a header");
    assert_eq!(
        code(&good[..good.len() - 1], &mut out),
        Some(Rcode::FormErr)
    );
    let mut two = good.clone();
    two[5] = 2;
    assert_eq!(code(&two, &mut out), Some(Rcode::FormErr));
    let mut ptr = good[..12].to_vec();
    ptr.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    assert_eq!(
        code(&ptr, &mut out),
        Some(Rcode::FormErr),
        "compressed question name"
    );
    let mut resp = good.clone();
    resp[2] |= 0x80;
    assert_eq!(code(&resp, &mut out), None, "responses are never answered");
    let mut notify = good.clone();
    notify[2] = 4 << 3;
    assert_eq!(code(&notify, &mut out), Some(Rcode::NotImp));
    assert_eq!(u16::from_be_bytes([out[0], out[1]]), 0xBEEF);
    let m = ask(&z, "example.com.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    assert_eq!(
        rcode(&ask(&z, "cluster.local.", RecordType::AXFR)),
        ResponseCode::Refused
    );
    let mut chaos = Message::new(1, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    chaos.add_query(q);
    let chaos = chaos.to_vec().unwrap();
    assert_eq!(code(&chaos, &mut out), Some(Rcode::Refused));
}

#[test]
fn header_echoes_id_rd_and_cd() {
    let z = zone();
    let mut q = query("svc1.testns.svc.cluster.local.", RecordType::A, None);
    q[2] &= !0x01; // RD off
    q[3] |= 0x10; // CD on
    let mut out = [0u8; 512];
    let AnswerOutcome::Answered(_) = z.answer(&q, &mut out) else {
        panic!()
    };
    assert_eq!(out[2], 0x84, "QR AA, RD clear");
    assert_eq!(out[3], 0x10, "CD kept, RA clear, NOERROR");
}

#[test]
fn update_service_rebuilds_only_its_names() {
    let mut c = cluster();
    let old = Zone::build(&c, &ZoneConfig::default()).unwrap();
    let yaml = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
        metadata: {name: hdls1-v4, namespace: testns, labels: {kubernetes.io/service-name: hdls1}}\n\
        addressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\n\
        endpoints: [{addresses: [198.18.0.2]}, {addresses: [198.18.0.20], hostname: web-0}]\n";
    let mut m = Manifests::new();
    m.load_str("update.yaml", yaml);
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    for o in m.into_objects() {
        c.upsert(o).unwrap();
    }
    let key = k8snet_model::NsName::new("testns", "hdls1");
    let new = old.update_service(&c, &key);
    let a = |z: &Zone, n: &str| data(&ask(z, n, RecordType::A));
    assert_eq!(
        a(&new, "hdls1.testns.svc.cluster.local."),
        ["198.18.0.2", "198.18.0.20"]
    );
    assert_eq!(
        a(&new, "web-0.hdls1.testns.svc.cluster.local."),
        ["198.18.0.20"]
    );
    assert_negative(
        &ask(
            &new,
            "dup-name.hdls1.testns.svc.cluster.local.",
            RecordType::A,
        ),
        true,
        Z,
        5,
    );
    assert_eq!(
        data(&ask(&new, "20.0.18.198.in-addr.arpa.", RecordType::PTR)),
        ["web-0.hdls1.testns.svc.cluster.local."]
    );
    assert_eq!(
        rcode(&ask(&new, "4.0.18.198.in-addr.arpa.", RecordType::PTR)),
        ResponseCode::Refused
    );
    // The old snapshot is untouched; other services are served as before.
    assert_eq!(
        a(&old, "dup-name.hdls1.testns.svc.cluster.local."),
        ["198.18.0.4", "198.18.0.5"]
    );
    assert_eq!(a(&new, "svc1.testns.svc.cluster.local."), ["198.19.0.1"]);
    let shared = old
        .shards
        .iter()
        .zip(new.shards.iter())
        .filter(|(x, y)| std::sync::Arc::ptr_eq(x, y))
        .count();
    assert!(
        shared >= old.shards.len() - 6,
        "{shared} of {} shards shared",
        old.shards.len()
    );
    // The whole zone equals a fresh build, serial aside.
    let fresh = Zone::build(&c, &ZoneConfig::default()).unwrap();
    let body = |z: &Zone| {
        let text = z.to_string();
        text.lines()
            .filter(|l| !l.contains("SOA") && !l.starts_with("; zone"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(body(&new), body(&fresh));
    assert!(new.serial() > old.serial() || new.serial() >= fresh.serial().saturating_sub(1));
    // Deleting the service removes all of its names and PTRs.
    c.delete(&k8snet_model::ObjectRef {
        kind: k8snet_model::Kind::Service,
        namespace: Some("testns".into()),
        name: "hdls1".into(),
    });
    let gone = new.update_service(&c, &key);
    assert_negative(
        &ask(&gone, "hdls1.testns.svc.cluster.local.", RecordType::A),
        true,
        Z,
        5,
    );
    assert_negative(
        &ask(
            &gone,
            "web-0.hdls1.testns.svc.cluster.local.",
            RecordType::A,
        ),
        true,
        Z,
        5,
    );
    assert_eq!(
        rcode(&ask(&gone, "2.0.18.198.in-addr.arpa.", RecordType::PTR)),
        ResponseCode::Refused
    );
}

#[test]
fn update_service_adds_a_service_in_a_new_namespace() {
    let mut c = cluster();
    let old = Zone::build(&c, &ZoneConfig::default()).unwrap();
    let mut m = Manifests::new();
    m.load_str("new.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: fresh}\nspec: {clusterIP: 198.19.1.1, ports: [{port: 443}]}\n");
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    for o in m.into_objects() {
        c.upsert(o).unwrap();
    }
    let new = old.update_service(&c, &k8snet_model::NsName::new("fresh", "api"));
    assert_eq!(
        data(&ask(&new, "api.fresh.svc.cluster.local.", RecordType::A)),
        ["198.19.1.1"]
    );
    assert_negative(
        &ask(&new, "fresh.svc.cluster.local.", RecordType::A),
        false,
        Z,
        5,
    );
    assert_eq!(
        data(&ask(&new, "1.1.19.198.in-addr.arpa.", RecordType::PTR)),
        ["api.fresh.svc.cluster.local."]
    );
}

#[test]
fn listing_and_verification() {
    let z = zone();
    assert!(z.verify().unwrap() > 20);
    let text = z.to_string();
    for line in [
        "svc1.testns.svc.cluster.local.\t5\tIN\tA\t198.19.0.1",
        "_http._tcp.svc1.testns.svc.cluster.local.\t5\tIN\tSRV\t0 100 80 svc1.testns.svc.cluster.local.",
        "dns-version.cluster.local.\t28800\tIN\tTXT\t1.1.0",
        "external.testns.svc.cluster.local.\t5\tIN\tCNAME\text.interwebs.test.",
        "1.0.19.198.in-addr.arpa.\t5\tIN\tPTR\tsvc1.testns.svc.cluster.local.",
        "cluster.local.\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. 1499347823 7200 1800 86400 5",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let dig = z.dig("svc1.testns.svc.cluster.local", "a").unwrap();
    assert!(dig.contains("status: NOERROR"), "{dig}");
    assert!(
        dig.contains("svc1.testns.svc.cluster.local.\t5\tIN\tA\t198.19.0.1"),
        "{dig}"
    );
    assert!(
        z.dig("nope.cluster.local", "A")
            .unwrap()
            .contains("status: NXDOMAIN")
    );
    assert!(z.dig("a..b", "A").is_err());
    assert!(z.dig("a.b", "NOPE").is_err());
}

#[test]
fn records_built_by_hand_match_the_decoded_answer() {
    // The bytes decode to exactly the record hickory would build.
    let z = zone();
    let m = ask(&z, "svc1.testns.svc.cluster.local.", RecordType::A);
    let want = Record::from_rdata(
        Name::from_ascii("svc1.testns.svc.cluster.local.").unwrap(),
        5,
        RData::A("198.19.0.1".parse::<std::net::Ipv4Addr>().unwrap().into()),
    );
    assert_eq!(m.answers, vec![want]);
}

#[test]
fn external_name_with_an_ipv4_value_has_no_record() {
    // The API accepts an IPv4 address as a name of digits; CoreDNS skips
    // such a Service (`HostType` is A, not CNAME), and the Kubernetes docs
    // say DNS does not resolve it: NXDOMAIN for every type.
    let mut m = Manifests::new();
    m.load_str(
        "ipext.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: ipext, namespace: testns}\n\
         spec: {type: ExternalName, externalName: 198.51.100.7}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: digits, namespace: testns}\n\
         spec: {type: ExternalName, externalName: 198.51.100.7.example}\n",
    );
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let z = Zone::build(&Cluster::from_manifests(&m), &ZoneConfig::default()).unwrap();
    for t in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
        assert_negative(&ask(&z, "ipext.testns.svc.cluster.local.", t), true, Z, 5);
    }
    // A name that merely starts with digits is still a CNAME.
    assert_eq!(
        data(&ask(
            &z,
            "digits.testns.svc.cluster.local.",
            RecordType::CNAME
        )),
        ["198.51.100.7.example."]
    );
}

#[test]
fn pod_namespace_names_exist_only_with_pod_records() {
    // CoreDNS `findPods`: with pods disabled every name under `pod.<zone>`
    // below the namespace level is NXDOMAIN, `<ns>.pod.<zone>` included.
    assert_negative(
        &ask(&zone(), "testns.pod.cluster.local.", RecordType::A),
        true,
        Z,
        5,
    );
    // `pod.<zone>` itself stays an empty non-terminal.
    assert_negative(
        &ask(&zone(), "pod.cluster.local.", RecordType::A),
        false,
        Z,
        5,
    );
    for mode in [PodMode::Insecure, PodMode::Verified] {
        let z = zone_with(ZoneConfig::default().pods(mode));
        assert_negative(
            &ask(&z, "testns.pod.cluster.local.", RecordType::A),
            false,
            Z,
            5,
        );
        // An unknown namespace is NXDOMAIN in every mode.
        assert_negative(
            &ask(&z, "nons.pod.cluster.local.", RecordType::A),
            true,
            Z,
            5,
        );
    }
}
