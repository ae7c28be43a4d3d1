//! Masquerading for the bridge plugin's `ipMasq`, as nftables data (the
//! kernel side is in the `linux` feature).
//!
//! One table for the node, `inet k8snet-cni-masq`: a `postrouting` nat
//! chain dispatches on the source address through two verdict maps,
//! `pods4` and `pods6` (pod address → `jump` to that attachment's chain);
//! each attachment's chain `m_<network hash>_<attachment hash>` accepts
//! traffic to its own subnets and masquerades the rest (except multicast).
//! ADD sends one idempotent transaction (the shared chain is flushed and
//! refilled with the same two rules, so concurrent ADDs need no lock); DEL
//! removes one chain and its map elements. Compare the reference's
//! iptables-nft teardown: 451–632 ms per DEL.

use ipnet::IpNet;
use k8snet_nft::{
    BaseChain, Batch, ChainType, DataType, Element, Family, Hook, Key, MapValue, Op, Policy, Rule,
    Set, Table, Value, Verdict,
};

use crate::error::{Error, Result};

/// The table's name.
pub const MASQ_TABLE: &str = "k8snet-cni-masq";
const POSTROUTING: &str = "postrouting";
const MAP4: &str = "pods4";
const MAP6: &str = "pods6";

/// FNV-1a, 64 bits: short, stable chain names.
pub(crate) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The prefix of every chain of `network`.
pub fn network_prefix(network: &str) -> String {
    format!("m_{:016x}_", fnv(network))
}

/// The chain of one attachment.
pub fn chain_name(network: &str, container_id: &str, ifname: &str) -> String {
    format!(
        "{}{:016x}",
        network_prefix(network),
        fnv(&format!("{container_id}/{ifname}"))
    )
}

fn rule(text: &str) -> Result<Rule> {
    text.parse::<Rule>()
        .map_err(|e| Error::kernel(format!("nftables rule {text:?}"), e))
}

fn maps() -> [(&'static str, Set); 2] {
    [
        (MAP4, Set::verdict_map(vec![DataType::Ipv4Addr])),
        (MAP6, Set::verdict_map(vec![DataType::Ipv6Addr])),
    ]
}

/// The transaction that masquerades `ips` of one attachment.
///
/// # Errors
///
/// Only if a rule fails to build (a bug).
pub fn setup_batch(chain: &str, ips: &[IpNet]) -> Result<Batch> {
    let mut b = Batch::new(Family::Inet, MASQ_TABLE);
    b.push(Op::AddTable);
    b.push(Op::AddChain {
        name: POSTROUTING.into(),
        base: Some(BaseChain {
            kind: ChainType::Nat,
            hook: Hook::Postrouting,
            priority: 100,
            policy: Policy::Accept,
        }),
    });
    for (name, set) in maps() {
        b.push(Op::AddSet {
            name: name.into(),
            set,
        });
    }
    b.push(Op::FlushChain {
        name: POSTROUTING.into(),
    });
    for (i, text) in ["ip saddr vmap @pods4", "ip6 saddr vmap @pods6"]
        .iter()
        .enumerate()
    {
        b.push(Op::AddRule {
            chain: POSTROUTING.into(),
            index: i + 1,
            rule: rule(text)?,
        });
    }
    b.push(Op::AddChain {
        name: chain.into(),
        base: None,
    });
    b.push(Op::FlushChain { name: chain.into() });
    let mut rules = Vec::new();
    for ip in ips {
        let fam = if ip.addr().is_ipv4() { "ip" } else { "ip6" };
        rules.push(format!("{fam} daddr {} accept", ip.trunc()));
    }
    if ips.iter().any(|ip| ip.addr().is_ipv4()) {
        rules.push("ip daddr != 224.0.0.0/4 masquerade".into());
    }
    if ips.iter().any(|ip| ip.addr().is_ipv6()) {
        rules.push("ip6 daddr != ff00::/8 masquerade".into());
    }
    for (i, text) in rules.iter().enumerate() {
        b.push(Op::AddRule {
            chain: chain.into(),
            index: i + 1,
            rule: rule(text)?,
        });
    }
    for (map, v4) in [(MAP4, true), (MAP6, false)] {
        let elements: Vec<(Key, Element)> = ips
            .iter()
            .filter(|ip| ip.addr().is_ipv4() == v4)
            .map(|ip| {
                let v = match ip.addr() {
                    std::net::IpAddr::V4(a) => Value::Ipv4(a),
                    std::net::IpAddr::V6(a) => Value::Ipv6(a),
                };
                (
                    Key::one(v),
                    Element {
                        value: Some(MapValue::Verdict(Verdict::Jump(chain.into()))),
                        ..Element::default()
                    },
                )
            })
            .collect();
        if !elements.is_empty() {
            b.push(Op::AddElements {
                set: map.into(),
                elements,
            });
        }
    }
    Ok(b)
}

/// The transaction that removes the chains `doomed` accepts and every map
/// element jumping to them, given the table as read back. `None` when
/// there is nothing to remove.
pub fn teardown_batch(table: &Table, doomed: impl Fn(&str) -> bool) -> Option<Batch> {
    let mut b = Batch::new(Family::Inet, MASQ_TABLE);
    for (name, set) in &table.sets {
        let elements: Vec<(Key, Element)> = set
            .elements
            .iter()
            .filter(|(_, e)| match &e.value {
                Some(MapValue::Verdict(Verdict::Jump(c))) => doomed(c),
                _ => false,
            })
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
    for name in table.chains.keys().filter(|c| doomed(c)) {
        b.push(Op::FlushChain { name: name.clone() });
        b.push(Op::DeleteChain { name: name.clone() });
    }
    (!b.is_empty()).then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_and_teardown_are_consistent() {
        let a = chain_name("net1", "c1", "eth0");
        let b = chain_name("net1", "c2", "eth0");
        assert!(a.starts_with(&network_prefix("net1")) && a != b);
        let ips: Vec<IpNet> = vec![
            "198.18.0.5/24".parse().unwrap(),
            "fd00:18::5/64".parse().unwrap(),
        ];
        let t1 = setup_batch(&a, &ips)
            .unwrap()
            .apply_to(None)
            .unwrap()
            .unwrap();
        // A second ADD (another pod) keeps the shared chain as it was.
        let other: Vec<IpNet> = vec!["198.18.0.6/24".parse().unwrap()];
        let t2 = setup_batch(&b, &other)
            .unwrap()
            .apply_to(Some(&t1))
            .unwrap()
            .unwrap();
        assert_eq!(t2.chains[POSTROUTING].rules.len(), 2);
        assert_eq!(t2.sets[MAP4].elements.len(), 2);
        // An address still mapped to a stale chain is refused, not silently moved.
        assert!(
            setup_batch(&b, &ips[..1])
                .unwrap()
                .apply_to(Some(&t2))
                .is_err()
        );
        let text = k8snet_nft::render(&t2);
        assert!(text.contains("ip daddr 198.18.0.0/24 accept"), "{text}");
        assert!(text.contains("ip6 daddr != ff00::/8 masquerade"), "{text}");
        let del = teardown_batch(&t1, |c| c == a).unwrap();
        let t3 = del.apply_to(Some(&t1)).unwrap().unwrap();
        assert!(!t3.chains.contains_key(&a));
        assert!(t3.sets[MAP4].elements.is_empty() && t3.sets[MAP6].elements.is_empty());
        assert!(teardown_batch(&t3, |c| c == a).is_none());
    }
}
