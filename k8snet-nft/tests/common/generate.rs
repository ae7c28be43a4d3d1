//! Tables generated from a seed, over a pool of chains, sets and rules
//! whose references always resolve (for property tests).

use std::time::Duration;

use k8snet_nft::{
    Chain, ChainType, DataType, Element, Family, Hook, Key, MapValue, Policy, Set, SetFlags, Table,
    Value, Verdict, parse_rule,
};

/// xorshift64: a table is a pure function of its seed.
pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.below(2) == 0
    }
}

pub fn ip(i: u64) -> Value {
    Value::Ipv4(std::net::Ipv4Addr::new(
        198,
        18,
        0,
        u8::try_from(i + 1).unwrap(),
    ))
}

const REGULAR: [&str; 4] = ["c0", "c1", "c2", "c3"];

/// Where a template may go: any chain, or only the filter or nat base chain
/// (the kernel refuses reject outside filter hooks and dnat outside nat).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Any,
    Filter,
    Nat,
}

/// Rule templates and what they need: (text, sets, chains, place).
#[allow(clippy::type_complexity)]
fn templates(concat_s4: bool) -> Vec<(String, Vec<&'static str>, Vec<&'static str>, Place)> {
    let s4 = if concat_s4 {
        "ip saddr . tcp dport @s4 drop"
    } else {
        "ip saddr @s4 accept"
    };
    vec![
        ("counter".into(), vec![], vec![], Place::Any),
        (s4.into(), vec!["s4"], vec![], Place::Any),
        (
            "ip daddr . tcp dport vmap @svc".into(),
            vec!["svc"],
            vec![],
            Place::Any,
        ),
        (
            "ip saddr @iv counter drop".into(),
            vec!["iv"],
            vec![],
            Place::Any,
        ),
        (
            "add @dyn { ip saddr }".into(),
            vec!["dyn"],
            vec![],
            Place::Any,
        ),
        (
            "ip saddr @tm reject with tcp reset".into(),
            vec!["tm"],
            vec![],
            Place::Filter,
        ),
        (
            "tcp dport { 80, 443 } accept comment \"web\"".into(),
            vec![],
            vec![],
            Place::Any,
        ),
        (
            "meta l4proto tcp dnat ip to jhash ip saddr . tcp sport mod 8 seed 0x1 map @slots"
                .into(),
            vec!["slots"],
            vec![],
            Place::Nat,
        ),
        (
            "ct state established,related accept".into(),
            vec![],
            vec![],
            Place::Any,
        ),
        ("jump c1".into(), vec![], vec!["c1"], Place::Any),
        ("goto c2".into(), vec![], vec!["c2"], Place::Any),
        (
            "ip saddr 198.18.0.0/24 jump c3".into(),
            vec![],
            vec!["c3"],
            Place::Any,
        ),
    ]
}

pub fn gen_table(seed: u64) -> Table {
    let mut r = Rng(seed | 1);
    let mut t = Table::new(Family::Inet, "k8snet-prop");
    let chains: Vec<&str> = REGULAR.iter().copied().filter(|_| r.coin()).collect();
    let concat_s4 = r.coin();
    // Sets (each present or not).
    if r.coin() {
        let key = if concat_s4 {
            vec![DataType::Ipv4Addr, DataType::InetService]
        } else {
            vec![DataType::Ipv4Addr]
        };
        let mut s = Set::new(key);
        for i in 0..6 {
            if r.coin() {
                let k = if concat_s4 {
                    Key(vec![ip(i), Value::Port(80)])
                } else {
                    Key::one(ip(i))
                };
                s = s.with_element(k);
            }
        }
        t.sets.insert("s4".into(), s);
    }
    if r.coin() {
        let mut s = Set::verdict_map(vec![DataType::Ipv4Addr, DataType::InetService]);
        for i in 0..5 {
            if r.coin() {
                let v = match r.below(4) {
                    0 => Verdict::Accept,
                    1 => Verdict::Drop,
                    _ => match chains.get(usize::try_from(r.below(4)).unwrap()) {
                        Some(c) => Verdict::Goto((*c).into()),
                        None => Verdict::Return,
                    },
                };
                s = s.with_mapping(Key(vec![ip(i), Value::Port(80)]), MapValue::Verdict(v));
            }
        }
        t.sets.insert("svc".into(), s);
    }
    if r.coin() {
        let mut s = Set::new(vec![DataType::Ipv4Addr]).with_flags(SetFlags {
            interval: true,
            ..SetFlags::default()
        });
        for i in 0..4u8 {
            if r.coin() {
                let lo = Value::Ipv4(std::net::Ipv4Addr::new(198, 18, i * 2, 0));
                let hi = Value::Ipv4(std::net::Ipv4Addr::new(
                    198,
                    18,
                    i * 2,
                    127 + r.coin() as u8,
                ));
                s = s.with_range(Key::one(lo), Key::one(hi));
            }
        }
        t.sets.insert("iv".into(), s);
    }
    if r.coin() {
        let mut s =
            Set::new(vec![DataType::Ipv4Addr]).with_timeout(Duration::from_secs(30 + r.below(2)));
        for i in 0..4 {
            if r.coin() {
                let timeout = r.coin().then(|| Duration::from_secs(60 * (1 + r.below(3))));
                s.elements.insert(
                    Key::one(ip(i)),
                    Element {
                        timeout,
                        ..Element::default()
                    },
                );
            }
        }
        t.sets.insert("tm".into(), s);
    }
    if r.coin() {
        let s = Set::new(vec![DataType::Ipv4Addr]).with_flags(SetFlags {
            dynamic: true,
            ..SetFlags::default()
        });
        t.sets.insert("dyn".into(), s);
    }
    if r.coin() {
        let mut s = Set::map(
            vec![DataType::Integer(32)],
            vec![DataType::Ipv4Addr, DataType::InetService],
        );
        for i in 0..8 {
            if r.coin() {
                let v = Key(vec![ip(r.below(3)), Value::Port(8080)]);
                s = s.with_mapping(Key::one(Value::Int(i)), MapValue::Data(v));
            }
        }
        t.sets.insert("slots".into(), s);
    }
    // Chains with rules whose references exist; jumps only go "up" (no loops).
    let tpl = templates(concat_s4);
    let mut names: Vec<(String, Option<Chain>, Place)> = chains
        .iter()
        .map(|c| ((*c).to_owned(), None, Place::Any))
        .collect();
    if r.coin() {
        let prio = if r.coin() { 0 } else { 10 };
        let policy = if r.coin() {
            Policy::Accept
        } else {
            Policy::Drop
        };
        let chain = Chain::base(ChainType::Filter, Hook::Input, prio, policy);
        names.push(("in".into(), Some(chain), Place::Filter));
    }
    if r.coin() {
        let chain = Chain::base(ChainType::Nat, Hook::Prerouting, -100, Policy::Accept);
        names.push(("pre".into(), Some(chain), Place::Nat));
    }
    for (name, base, place) in names {
        let mut chain = base.unwrap_or_default();
        for _ in 0..r.below(4) {
            let (text, sets, targets, only) =
                &tpl[usize::try_from(r.below(tpl.len() as u64)).unwrap()];
            let ok = (*only == Place::Any || *only == place)
                && sets.iter().all(|s| t.sets.contains_key(*s))
                && targets
                    .iter()
                    .all(|c| chains.contains(c) && (chain.base.is_some() || *c > name.as_str()));
            if ok {
                chain.rules.push(parse_rule(text).unwrap());
            }
        }
        t.chains.insert(name, chain);
    }
    t
}
