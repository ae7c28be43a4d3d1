//! The portmap plugin's configuration (the `portMappings` capability) and
//! its nftables data; the kernel side is in the `linux` feature.
//!
//! One table per node, `inet k8snet-portmap`: `prerouting` and `output`
//! nat chains send traffic to local addresses to `hostports`, which DNATs
//! through four maps, `hp4`/`hp6` (`protocol . hostPort` →
//! `podIP . containerPort`) and `hp4ip`/`hp6ip` (the same keyed also by the
//! `hostIP`). ADD adds elements in one idempotent transaction; DEL removes
//! those pointing at the container's addresses.

use std::net::IpAddr;

use k8snet_nft::{
    BaseChain, Batch, ChainType, DataType, Element, Family, Hook, Key, MapValue, Op, Policy, Rule,
    Set, Table, Value,
};
use serde::Deserialize;

use crate::config::typed;
use crate::error::{Error, Result};
use crate::plugin::Request;
use crate::result::CniResult;

/// The table's name.
pub const PORTMAP_TABLE: &str = "k8snet-portmap";

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

/// The container's first IPv4 and first IPv6 address in `prev` (those of an
/// interface inside a sandbox, or any when interfaces are not given).
pub fn container_ips(prev: &CniResult) -> Vec<IpAddr> {
    let in_sandbox = |i: Option<usize>| match i {
        Some(i) => prev.interfaces.get(i).is_some_and(|x| x.sandbox.is_some()),
        None => true,
    };
    let mut out = Vec::new();
    for v4 in [true, false] {
        if let Some(ip) = prev
            .ips
            .iter()
            .find(|ip| ip.address.addr().is_ipv4() == v4 && in_sandbox(ip.interface))
        {
            out.push(ip.address.addr());
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

fn map_defs() -> [(&'static str, Set); 4] {
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
    ]
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

/// The transaction that installs the table (idempotently) and the elements.
///
/// # Errors
///
/// Only if a rule fails to build (a bug).
pub fn setup_batch(elems: &[(&'static str, Key, Element)]) -> Result<Batch> {
    let mut b = Batch::new(Family::Inet, PORTMAP_TABLE);
    b.push(Op::AddTable);
    for (name, hook) in [("prerouting", Hook::Prerouting), ("output", Hook::Output)] {
        b.push(Op::AddChain {
            name: name.into(),
            base: Some(BaseChain {
                kind: ChainType::Nat,
                hook,
                priority: -100,
                policy: Policy::Accept,
            }),
        });
    }
    b.push(Op::AddChain {
        name: "hostports".into(),
        base: None,
    });
    for (name, set) in map_defs() {
        b.push(Op::AddSet {
            name: name.into(),
            set,
        });
    }
    let chains: [(&str, &[&str]); 3] = [
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
    ];
    for (chain, rules) in chains {
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

/// The transaction that removes every element `doomed` accepts (by map
/// element), given the table as read back.
pub fn teardown_batch(table: &Table, doomed: impl Fn(&Key, &Element) -> bool) -> Option<Batch> {
    let mut b = Batch::new(Family::Inet, PORTMAP_TABLE);
    for (name, set) in &table.sets {
        let elements: Vec<(Key, Element)> = set
            .elements
            .iter()
            .filter(|(k, e)| doomed(k, e))
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

/// Whether an element maps to one of `ips`.
pub fn points_at(e: &Element, ips: &[IpAddr]) -> bool {
    match &e.value {
        Some(MapValue::Data(Key(v))) => ips.iter().any(|ip| v.first() == Some(&ip_value(*ip))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_table_that_replays() {
        let maps = [
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
        ];
        let ips: Vec<IpAddr> = vec!["198.18.0.5".parse().unwrap(), "fd00:18::5".parse().unwrap()];
        let elems = elements(&maps, &ips);
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
        let t2 = setup_batch(&[])
            .unwrap()
            .apply_to(Some(&t))
            .unwrap()
            .unwrap();
        assert_eq!(t2, t, "ADD again is idempotent");
        let del = teardown_batch(&t, |_, e| points_at(e, &ips[..1])).unwrap();
        let t3 = del.apply_to(Some(&t)).unwrap().unwrap();
        assert_eq!(t3.sets["hp6"].elements.len(), 1);
        assert!(t3.sets["hp4"].elements.is_empty() && t3.sets["hp4ip"].elements.is_empty());
    }
}
