//! The portmap plugin's configuration (the `portMappings` capability) and
//! its nftables data; the kernel side is in the `linux` feature.
//!
//! One table per node, `inet k8snet-portmap`: `prerouting` and `output`
//! nat chains send traffic to local addresses to `hostports`, which DNATs
//! through four maps, `hp4`/`hp6` (`protocol . hostPort` →
//! `podIP . containerPort`) and `hp4ip`/`hp6ip` (the same keyed also by the
//! `hostIP`). ADD adds elements in one idempotent transaction; DEL removes
//! those of the container's addresses.
//!
//! With `snat` (the default, as the reference) a `postrouting` nat chain
//! masquerades the DNATed connections whose replies would otherwise miss
//! the node's conntrack: `ct status dnat` plus a lookup of
//! `daddr . saddr` in `masq4`/`masq6` (interval sets of `podIP . source
//! range`). Each mapped pod gets its own subnet as source range (a pod
//! reaching its own hostPort, hairpin, or another pod on its bridge
//! reaching it) and, for IPv4, `127.0.0.0/8` (a connection to
//! `127.0.0.1:<hostPort>` from the node, which also needs `route_localnet`
//! on the interface routing to the pod). `masqAll` makes the range any
//! source. The reference 1.1.1 does the same with a mark set in its DNAT
//! chain and a masquerade of marked packets; `ct status dnat` needs no mark
//! bit. The set `localnet4` (`podIP . ifname`) records which interface
//! each pod needs `route_localnet` on, and `localnet` the interfaces where
//! the plugin turned it on, so that DEL of the last such pod turns it off
//! again (the reference leaves it on).
//!
//! After ADD's elements are in place, the kernel side deletes the conntrack
//! entries of UDP flows to the mapped host ports, as the reference does
//! (see [`crate::conntrack`]).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use k8snet_nft::{
    BaseChain, Batch, ChainType, DataType, Element, Family, Hook, Key, MapValue, Op, Policy, Rule,
    Set, SetFlags, Table, Value,
};
use serde::Deserialize;

use crate::config::typed;
use crate::error::{Error, Result};
use crate::plugin::Request;
use crate::result::CniResult;

/// The table's name.
pub const PORTMAP_TABLE: &str = "k8snet-portmap";
/// `podIP . source range` (IPv4) whose DNATed connections are masqueraded.
pub const MASQ4: &str = "masq4";
/// The same for IPv6.
pub const MASQ6: &str = "masq6";
/// `podIP . ifname`: the interface each IPv4 pod needs `route_localnet` on.
pub const LOCALNET4: &str = "localnet4";
/// `ifname`: where this plugin turned `route_localnet` on.
pub const LOCALNET: &str = "localnet";

/// The plugin's own configuration keys (those of the reference that apply).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortmapConf {
    /// `snat` (default `true`): masquerade hairpin and localhost
    /// connections (and set `route_localnet`).
    #[serde(default = "yes")]
    pub snat: bool,
    /// `masqAll`: masquerade every DNATed connection to the pod, whatever
    /// its source.
    #[serde(default)]
    pub masq_all: bool,
    /// `markMasqBit`: accepted and checked for compatibility; this plugin
    /// uses no mark.
    #[serde(default)]
    mark_masq_bit: Option<i64>,
    /// `externalSetMarkChain`: accepted for compatibility (no mark used).
    #[serde(default)]
    external_set_mark_chain: Option<String>,
    #[serde(default, rename = "conditionsV4")]
    conditions_v4: Option<Vec<String>>,
    #[serde(default, rename = "conditionsV6")]
    conditions_v6: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

impl PortmapConf {
    /// Reads and checks the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (a wrong type, `markMasqBit`
    /// outside 0–31 or given with `externalSetMarkChain`, as the
    /// reference); [`Error::UnsupportedField`] (code 2) for non-empty
    /// `conditionsV4`/`conditionsV6` (iptables match arguments).
    pub fn from_conf(conf: &crate::config::NetConf) -> Result<Self> {
        let c: Self = conf.parse_as()?;
        if c.mark_masq_bit.is_some() && c.external_set_mark_chain.is_some() {
            return Err(Error::config(
                "markMasqBit",
                "cannot be given with externalSetMarkChain",
            ));
        }
        if c.mark_masq_bit.is_some_and(|b| !(0..=31).contains(&b)) {
            return Err(Error::config("markMasqBit", "must be between 0 and 31"));
        }
        for (field, v) in [
            ("conditionsV4", &c.conditions_v4),
            ("conditionsV6", &c.conditions_v6),
        ] {
            if v.as_ref().is_some_and(|v| !v.is_empty()) {
                return Err(Error::UnsupportedField {
                    field: field.into(),
                    value: conf
                        .raw
                        .get(field)
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                });
            }
        }
        Ok(c)
    }
}

/// One `portMappings` entry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port on the node.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// `tcp` (default), `udp` or `sctp`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Only traffic to this node address (empty: any local address).
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

/// A mapping, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// IP protocol number.
    pub proto: u8,
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
    /// Host address, if restricted.
    pub host_ip: Option<IpAddr>,
}

/// The mappings of a request (`runtimeConfig.portMappings`).
///
/// # Errors
///
/// [`Error::Config`] naming the entry and field.
pub fn mappings(req: &Request) -> Result<Vec<Mapping>> {
    let Some(v) = req.conf.runtime_config.get("portMappings") else {
        return Ok(Vec::new());
    };
    let list: Vec<PortMapping> = typed(v, "runtimeConfig.portMappings")?;
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |k: &str| format!("runtimeConfig.portMappings[{i}].{k}");
            let proto = match m
                .protocol
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("") | Some("tcp") => 6,
                Some("udp") => 17,
                Some("sctp") => 132,
                Some(other) => {
                    return Err(Error::config(
                        field("protocol"),
                        format!("unknown protocol {other:?}"),
                    ));
                }
            };
            if m.host_port == 0 {
                return Err(Error::config(field("hostPort"), "must be 1 to 65535"));
            }
            if m.container_port == 0 {
                return Err(Error::config(field("containerPort"), "must be 1 to 65535"));
            }
            let host_ip = match m.host_ip.as_deref().filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                    Error::config(field("hostIP"), format!("{s:?} is not an IP address"))
                })?),
            };
            Ok(Mapping {
                proto,
                host_port: m.host_port,
                container_port: m.container_port,
                host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
            })
        })
        .collect()
}

/// The container's first IPv4 and first IPv6 address in `prev`, as the
/// reference's parseConfig picks them: an address whose `interface` names a
/// listed interface counts only if that interface is `ifname` (CNI_IFNAME)
/// and has a sandbox; an address without `interface`, or whose index is
/// beyond the list, counts as the container's.
pub fn container_ips(prev: &CniResult, ifname: &str) -> Vec<IpAddr> {
    container_nets(prev, ifname)
        .iter()
        .map(IpNet::addr)
        .collect()
}

/// The same addresses with their prefix (the pod's subnet).
pub fn container_nets(prev: &CniResult, ifname: &str) -> Vec<IpNet> {
    let in_sandbox = |i: Option<usize>| match i.and_then(|i| prev.interfaces.get(i)) {
        Some(x) => x.name == ifname && x.sandbox.as_deref().is_some_and(|s| !s.is_empty()),
        None => true,
    };
    let mut out = Vec::new();
    for v4 in [true, false] {
        if let Some(ip) = prev
            .ips
            .iter()
            .find(|ip| ip.address.addr().is_ipv4() == v4 && in_sandbox(ip.interface))
        {
            out.push(ip.address);
        }
    }
    out
}

fn ip_value(ip: IpAddr) -> Value {
    match ip {
        IpAddr::V4(a) => Value::Ipv4(a),
        IpAddr::V6(a) => Value::Ipv6(a),
    }
}

fn set_defs() -> [(&'static str, Set); 8] {
    let key = vec![DataType::InetProto, DataType::InetService];
    let key4 = vec![
        DataType::Ipv4Addr,
        DataType::InetProto,
        DataType::InetService,
    ];
    let key6 = vec![
        DataType::Ipv6Addr,
        DataType::InetProto,
        DataType::InetService,
    ];
    let interval = |key: Vec<DataType>| Set {
        flags: SetFlags {
            interval: true,
            ..SetFlags::default()
        },
        ..Set::new(key)
    };
    [
        (
            "hp4",
            Set::map(key.clone(), vec![DataType::Ipv4Addr, DataType::InetService]),
        ),
        (
            "hp6",
            Set::map(key, vec![DataType::Ipv6Addr, DataType::InetService]),
        ),
        (
            "hp4ip",
            Set::map(key4, vec![DataType::Ipv4Addr, DataType::InetService]),
        ),
        (
            "hp6ip",
            Set::map(key6, vec![DataType::Ipv6Addr, DataType::InetService]),
        ),
        (
            MASQ4,
            interval(vec![DataType::Ipv4Addr, DataType::Ipv4Addr]),
        ),
        (
            MASQ6,
            interval(vec![DataType::Ipv6Addr, DataType::Ipv6Addr]),
        ),
        (
            LOCALNET4,
            Set::new(vec![DataType::Ipv4Addr, DataType::Ifname]),
        ),
        (LOCALNET, Set::new(vec![DataType::Ifname])),
    ]
}

/// The first and last address of `net`.
fn bounds(net: IpNet) -> (Value, Value) {
    (ip_value(net.network()), ip_value(net.broadcast()))
}

/// The `masq4`/`masq6` elements of the pods at `nets`: each pod's address
/// with its own subnet as source range, and `127.0.0.0/8` for IPv4;
/// with `masq_all`, any source instead.
pub fn masq_elements(nets: &[IpNet], masq_all: bool) -> Vec<(&'static str, Key, Element)> {
    let mut out = Vec::new();
    for net in nets {
        let pod = ip_value(net.addr());
        let localhost = Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8);
        let (set, sources): (&str, Vec<IpNet>) = match (net.addr().is_ipv4(), masq_all) {
            (true, false) => (MASQ4, vec![net.trunc(), localhost.into()]),
            (false, false) => (MASQ6, vec![net.trunc()]),
            (true, true) => (MASQ4, vec![Ipv4Net::default().into()]),
            (false, true) => (MASQ6, vec![Ipv6Net::default().into()]),
        };
        for src in sources {
            let (lo, hi) = bounds(src);
            out.push((
                set,
                Key(vec![pod.clone(), lo]),
                Element {
                    end: Some(Key(vec![pod.clone(), hi])),
                    ..Element::default()
                },
            ));
        }
    }
    out
}

/// The `localnet4` element (pod → the interface it is routed through) and,
/// when `turned_on` (the plugin switched `route_localnet` on there), the
/// `localnet` one.
pub fn localnet_elements(
    pod: Ipv4Addr,
    ifname: &str,
    turned_on: bool,
) -> Vec<(&'static str, Key, Element)> {
    let name = Value::Ifname(ifname.to_owned());
    let mut out = vec![(
        LOCALNET4,
        Key(vec![Value::Ipv4(pod), name.clone()]),
        Element::default(),
    )];
    if turned_on {
        out.push((LOCALNET, Key::one(name), Element::default()));
    }
    out
}

/// The interfaces where the plugin turned `route_localnet` on and no mapped
/// pod needs it any more (DEL turns it off there).
pub fn unused_localnets(table: &Table) -> Vec<String> {
    table
        .sets
        .get(LOCALNET)
        .map(|s| {
            s.elements
                .keys()
                .filter_map(|k| match k.0.first() {
                    Some(Value::Ifname(n)) if !localnet_needed(table, n) => Some(n.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `ifname` is needed by a mapped pod (in `localnet4`).
pub fn localnet_needed(table: &Table, ifname: &str) -> bool {
    table.sets.get(LOCALNET4).is_some_and(|s| {
        s.elements
            .keys()
            .any(|k| matches!(k.0.get(1), Some(Value::Ifname(n)) if n == ifname))
    })
}

/// A transaction adding or removing one `localnet` element.
pub fn localnet_batch(table: &Table, ifname: &str, add: bool) -> Batch {
    let mut b = Batch::new(Family::Inet, PORTMAP_TABLE);
    let elements = vec![(
        Key::one(Value::Ifname(ifname.to_owned())),
        Element::default(),
    )];
    if let Some(set) = table.sets.get(LOCALNET) {
        b.know_set(LOCALNET, set);
    }
    b.push(if add {
        Op::AddElements {
            set: LOCALNET.into(),
            elements,
        }
    } else {
        Op::DeleteElements {
            set: LOCALNET.into(),
            elements,
        }
    });
    b
}

/// The map and element for each (mapping, container address) pair of the
/// same family.
pub fn elements(maps: &[Mapping], ips: &[IpAddr]) -> Vec<(&'static str, Key, Element)> {
    let mut out = Vec::new();
    for m in maps {
        for ip in ips {
            if m.host_ip.is_some_and(|h| h.is_ipv4() != ip.is_ipv4()) {
                continue;
            }
            let map = match (ip.is_ipv4(), m.host_ip.is_some()) {
                (true, false) => "hp4",
                (false, false) => "hp6",
                (true, true) => "hp4ip",
                (false, true) => "hp6ip",
            };
            let mut key = vec![Value::Proto(m.proto), Value::Port(m.host_port)];
            if let Some(h) = m.host_ip {
                key.insert(0, ip_value(h));
            }
            let value = Key(vec![ip_value(*ip), Value::Port(m.container_port)]);
            out.push((
                map,
                Key(key),
                Element {
                    value: Some(MapValue::Data(value)),
                    ..Element::default()
                },
            ));
        }
    }
    out
}

fn rule(text: &str) -> Result<Rule> {
    text.parse::<Rule>()
        .map_err(|e| Error::kernel(format!("nftables rule {text:?}"), e))
}

/// The fixed rules of each chain.
fn chain_rules() -> [(&'static str, &'static [&'static str]); 4] {
    [
        ("prerouting", &["fib daddr type local jump hostports"]),
        ("output", &["fib daddr type local jump hostports"]),
        (
            "hostports",
            &[
                "meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @hp4ip",
                "meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @hp6ip",
                "meta nfproto ipv4 dnat ip to meta l4proto . th dport map @hp4",
                "meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @hp6",
            ],
        ),
        (
            "postrouting",
            &[
                "ct status dnat ip daddr . ip saddr @masq4 masquerade",
                "ct status dnat ip6 daddr . ip6 saddr @masq6 masquerade",
            ],
        ),
    ]
}

/// The transaction that installs the table (idempotently) and the elements
/// (of any of its sets and maps).
///
/// # Errors
///
/// Only if a rule fails to build (a bug).
pub fn setup_batch(elems: &[(&'static str, Key, Element)]) -> Result<Batch> {
    let mut b = Batch::new(Family::Inet, PORTMAP_TABLE);
    b.push(Op::AddTable);
    for (name, hook, priority) in [
        ("prerouting", Hook::Prerouting, -100),
        ("output", Hook::Output, -100),
        ("postrouting", Hook::Postrouting, 100),
    ] {
        b.push(Op::AddChain {
            name: name.into(),
            base: Some(BaseChain {
                kind: ChainType::Nat,
                hook,
                priority,
                policy: Policy::Accept,
            }),
        });
    }
    b.push(Op::AddChain {
        name: "hostports".into(),
        base: None,
    });
    for (name, set) in set_defs() {
        b.push(Op::AddSet {
            name: name.into(),
            set,
        });
    }
    for (chain, rules) in chain_rules() {
        b.push(Op::FlushChain { name: chain.into() });
        for (i, text) in rules.iter().enumerate() {
            b.push(Op::AddRule {
                chain: chain.into(),
                index: i + 1,
                rule: rule(text)?,
            });
        }
    }
    for (map, key, e) in elems {
        b.push(Op::AddElements {
            set: (*map).into(),
            elements: vec![(key.clone(), e.clone())],
        });
    }
    Ok(b)
}

/// The transaction that removes every element `doomed` accepts (given the
/// set's name), given the table as read back.
pub fn teardown_batch(
    table: &Table,
    doomed: impl Fn(&str, &Key, &Element) -> bool,
) -> Option<Batch> {
    let mut b = Batch::new(Family::Inet, PORTMAP_TABLE);
    for (name, set) in &table.sets {
        let elements: Vec<(Key, Element)> = set
            .elements
            .iter()
            .filter(|(k, e)| doomed(name, k, e))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        if !elements.is_empty() {
            b.know_set(name, set);
            b.push(Op::DeleteElements {
                set: name.clone(),
                elements,
            });
        }
    }
    (!b.is_empty()).then_some(b)
}

/// Whether an element of set `set` belongs to a pod at one of `ips`: a map
/// element mapping to it, or a `masq*`/`localnet4` element keyed by it.
pub fn of_pod(set: &str, key: &Key, e: &Element, ips: &[IpAddr]) -> bool {
    match set {
        MASQ4 | MASQ6 | LOCALNET4 => ips.iter().any(|ip| key.0.first() == Some(&ip_value(*ip))),
        LOCALNET => false,
        _ => points_at(e, ips),
    }
}

/// The pod addresses the map elements for `maps`' host ports point at (DEL
/// without `prevResult`).
pub fn targets_of(table: &Table, maps: &[Mapping]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for set in table.sets.values().filter(|s| s.is_map()) {
        for (k, e) in &set.elements {
            let hit = maps.iter().any(|m| {
                k.0.ends_with(&[Value::Proto(m.proto), Value::Port(m.host_port)])
            });
            if let (true, Some(MapValue::Data(Key(v)))) = (hit, &e.value) {
                let ip = match v.first() {
                    Some(Value::Ipv4(a)) => IpAddr::V4(*a),
                    Some(Value::Ipv6(a)) => IpAddr::V6(*a),
                    _ => continue,
                };
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

/// Whether an element maps to one of `ips`.
pub fn points_at(e: &Element, ips: &[IpAddr]) -> bool {
    match &e.value {
        Some(MapValue::Data(Key(v))) => ips.iter().any(|ip| v.first() == Some(&ip_value(*ip))),
        _ => false,
    }
}

/// What CHECK finds wrong with `table` (as read back) for the elements
/// `elems` of one container: a fixed chain that is missing or differs, or
/// an element that is missing or maps elsewhere. `None` when all is there.
pub fn verify(table: &Table, elems: &[(&'static str, Key, Element)]) -> Option<String> {
    let want = match setup_batch(elems).map(|b| b.apply_to(None)) {
        Ok(Ok(Some(t))) => t,
        Ok(Err(e)) => return Some(format!("the expected table is not valid: {e}")),
        Err(e) => return Some(format!("the expected table is not valid: {e}")),
        Ok(Ok(None)) => return Some("the expected table is empty".into()),
    };
    for (name, chain) in &want.chains {
        match table.chains.get(name) {
            None => return Some(format!("chain {name} of table {PORTMAP_TABLE} is missing")),
            Some(c) if c != chain => {
                return Some(format!(
                    "chain {name} of table {PORTMAP_TABLE} differs from what ADD installs"
                ));
            }
            Some(_) => {}
        }
    }
    for (set, key, e) in elems {
        let found = table.sets.get(*set).and_then(|s| s.elements.get(key));
        if found != Some(e) {
            return Some(format!(
                "element {} is missing from set {set} of table {PORTMAP_TABLE}",
                key
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetConf;

    fn v4(s: &str) -> Value {
        Value::Ipv4(s.parse().unwrap())
    }

    fn maps() -> [Mapping; 2] {
        [
            Mapping {
                proto: 6,
                host_port: 8080,
                container_port: 80,
                host_ip: None,
            },
            Mapping {
                proto: 17,
                host_port: 5353,
                container_port: 53,
                host_ip: Some("198.19.128.2".parse().unwrap()),
            },
        ]
    }

    #[test]
    fn builds_a_table_that_replays() {
        let ips: Vec<IpAddr> = vec!["198.18.0.5".parse().unwrap(), "fd00:18::5".parse().unwrap()];
        let elems = elements(&maps(), &ips);
        assert_eq!(elems.len(), 3, "the v4 hostIP only maps to the v4 address");
        let t = setup_batch(&elems)
            .unwrap()
            .apply_to(None)
            .unwrap()
            .unwrap();
        let text = k8snet_nft::render(&t);
        assert!(text.contains("tcp . 8080 : 198.18.0.5 . 80"), "{text}");
        assert!(
            text.contains("dnat ip to meta l4proto . th dport map @hp4"),
            "{text}"
        );
        assert!(
            text.contains("ct status dnat ip daddr . ip saddr @masq4 masquerade"),
            "{text}"
        );
        let t2 = setup_batch(&[])
            .unwrap()
            .apply_to(Some(&t))
            .unwrap()
            .unwrap();
        assert_eq!(t2, t, "ADD again is idempotent");
        let del = teardown_batch(&t, |n, k, e| of_pod(n, k, e, &ips[..1])).unwrap();
        let t3 = del.apply_to(Some(&t)).unwrap().unwrap();
        assert_eq!(t3.sets["hp6"].elements.len(), 1);
        assert!(t3.sets["hp4"].elements.is_empty() && t3.sets["hp4ip"].elements.is_empty());
    }

    #[test]
    fn masquerade_ranges_are_the_pods_subnet_and_localhost() {
        let nets: Vec<IpNet> = vec![
            "198.18.0.5/24".parse().unwrap(),
            "fd00:18::5/64".parse().unwrap(),
        ];
        let got: Vec<(&str, String)> = masq_elements(&nets, false)
            .iter()
            .map(|(s, k, e)| (*s, format!("{k} - {}", e.end.as_ref().unwrap())))
            .collect();
        assert_eq!(
            got,
            [
                (
                    MASQ4,
                    "198.18.0.5 . 198.18.0.0 - 198.18.0.5 . 198.18.0.255".into()
                ),
                (
                    MASQ4,
                    "198.18.0.5 . 127.0.0.0 - 198.18.0.5 . 127.255.255.255".into()
                ),
                (
                    MASQ6,
                    "fd00:18::5 . fd00:18:: - fd00:18::5 . fd00:18::ffff:ffff:ffff:ffff".into()
                ),
            ]
        );
        let all: Vec<String> = masq_elements(&nets, true)
            .iter()
            .map(|(s, k, e)| format!("{s} {k} - {}", e.end.as_ref().unwrap()))
            .collect();
        assert_eq!(
            all,
            [
                "masq4 198.18.0.5 . 0.0.0.0 - 198.18.0.5 . 255.255.255.255",
                "masq6 fd00:18::5 . :: - fd00:18::5 . ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ]
        );
    }

    #[test]
    fn del_removes_a_pods_masquerade_and_localnet_elements_only() {
        let a: IpNet = "198.18.0.5/24".parse().unwrap();
        let b: IpNet = "198.18.0.6/24".parse().unwrap();
        let mut elems = elements(&maps()[..1], &[a.addr()]);
        elems.extend(masq_elements(&[a], false));
        elems.extend(localnet_elements(
            "198.18.0.5".parse().unwrap(),
            "kbr0",
            true,
        ));
        let t = setup_batch(&elems)
            .unwrap()
            .apply_to(None)
            .unwrap()
            .unwrap();
        // Adding the same elements again (a repeated ADD) changes nothing.
        let again = setup_batch(&elems)
            .unwrap()
            .apply_to(Some(&t))
            .unwrap()
            .unwrap();
        assert_eq!(again, t);
        assert_eq!(verify(&t, &elems), None);
        // A second pod on the same bridge; route_localnet was already on.
        let mut elems_b = masq_elements(&[b], false);
        elems_b.extend(localnet_elements(
            "198.18.0.6".parse().unwrap(),
            "kbr0",
            false,
        ));
        let t2 = setup_batch(&elems_b)
            .unwrap()
            .apply_to(Some(&t))
            .unwrap()
            .unwrap();
        assert_eq!(t2.sets[MASQ4].elements.len(), 4);
        assert!(unused_localnets(&t2).is_empty());
        // DEL of a: b's elements and the localnet marker stay.
        let ips = [a.addr()];
        let t3 = teardown_batch(&t2, |n, k, e| of_pod(n, k, e, &ips))
            .unwrap()
            .apply_to(Some(&t2))
            .unwrap()
            .unwrap();
        assert_eq!(t3.sets[MASQ4].elements.len(), 2);
        assert!(
            t3.sets[MASQ4]
                .elements
                .keys()
                .all(|k| k.0[0] == v4("198.18.0.6"))
        );
        assert!(t3.sets["hp4"].elements.is_empty());
        assert_eq!(t3.sets[LOCALNET].elements.len(), 1);
        assert!(unused_localnets(&t3).is_empty(), "b still needs kbr0");
        assert!(verify(&t3, &elems).is_some(), "a's elements are gone");
        // DEL of b: kbr0 is no longer needed.
        let ips = [b.addr()];
        let t4 = teardown_batch(&t3, |n, k, e| of_pod(n, k, e, &ips))
            .unwrap()
            .apply_to(Some(&t3))
            .unwrap()
            .unwrap();
        assert_eq!(unused_localnets(&t4), ["kbr0"]);
        assert!(localnet_needed(&t3, "kbr0") && !localnet_needed(&t4, "kbr0"));
        let t5 = localnet_batch(&t4, "kbr0", false)
            .apply_to(Some(&t4))
            .unwrap()
            .unwrap();
        assert!(t5.sets.values().all(|s| s.elements.is_empty()));
        assert!(unused_localnets(&t5).is_empty());
        // Nothing left to remove.
        assert!(teardown_batch(&t5, |n, k, e| of_pod(n, k, e, &ips)).is_none());
    }

    #[test]
    fn check_names_what_is_missing_or_changed() {
        let a: IpNet = "198.18.0.5/24".parse().unwrap();
        let mut elems = elements(&maps()[..1], &[a.addr()]);
        elems.extend(masq_elements(&[a], false));
        let t = setup_batch(&elems)
            .unwrap()
            .apply_to(None)
            .unwrap()
            .unwrap();
        let mut missing = t.clone();
        missing.sets.get_mut(MASQ4).unwrap().elements.clear();
        assert_eq!(
            verify(&missing, &elems).unwrap(),
            "element 198.18.0.5 . 198.18.0.0 is missing from set masq4 of table k8snet-portmap"
        );
        let mut changed = t.clone();
        changed.chains.get_mut("postrouting").unwrap().rules.pop();
        assert_eq!(
            verify(&changed, &elems).unwrap(),
            "chain postrouting of table k8snet-portmap differs from what ADD installs"
        );
        let mut gone = t;
        gone.chains.remove("postrouting");
        assert!(verify(&gone, &elems).unwrap().contains("is missing"));
    }

    #[test]
    fn del_without_prev_result_finds_the_pods_by_host_port() {
        let ips: Vec<IpAddr> = vec!["198.18.0.5".parse().unwrap(), "fd00:18::5".parse().unwrap()];
        let t = setup_batch(&elements(&maps(), &ips))
            .unwrap()
            .apply_to(None)
            .unwrap()
            .unwrap();
        assert_eq!(targets_of(&t, &maps()[..1]), ips);
        assert_eq!(targets_of(&t, &maps()[1..]), ips[..1]);
        let other = Mapping {
            host_port: 9,
            ..maps()[0]
        };
        assert!(targets_of(&t, &[other]).is_empty());
    }

    fn conf(extra: &str) -> Result<PortmapConf> {
        let c = NetConf::from_slice(
            format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"portmap"{extra}}}"#).as_bytes(),
        )?;
        PortmapConf::from_conf(&c)
    }

    #[test]
    fn configuration_keys_as_the_reference() {
        let c = conf("").unwrap();
        assert!(c.snat && !c.masq_all, "snat defaults to true");
        let c = conf(r#","snat":false,"masqAll":true,"markMasqBit":13"#).unwrap();
        assert!(!c.snat && c.masq_all);
        let e = conf(r#","snat":"no""#).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().starts_with("snat: ")),
            (7, true),
            "{e}"
        );
        let e = conf(r#","markMasqBit":32"#).unwrap_err();
        assert_eq!(e.to_string(), "markMasqBit: must be between 0 and 31");
        let e = conf(r#","markMasqBit":1,"externalSetMarkChain":"X""#).unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().starts_with("markMasqBit: "), "{e}");
        let e = conf(r#","conditionsV4":["-s","1.2.3.4"]"#).unwrap_err();
        assert_eq!(e.code(), 2, "{e}");
        assert!(e.to_string().contains("conditionsV4"), "{e}");
        assert!(conf(r#","conditionsV6":[]"#).is_ok());
    }
}
