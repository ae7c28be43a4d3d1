//! Renders a desired state as `nft -f` text, close to what `nft list`
//! prints. The output is deterministic: chains and sets in name order,
//! elements in key order. A rule's text is also its canonical form, stored
//! with the rule in the kernel and parsed back by [`crate::parse_rule`].

use std::fmt::{self, Write};
use std::time::Duration;

use crate::expr::{CmpOp, DynsetOp, Expr, KeyExpr, MarkTarget, Nat, NatKind, NatTo};
use crate::model::{BaseChain, Chain, Element, MapData, MapValue, Rule, Set, Table};
use crate::types::{DataType, Key, Value};

/// Writes a duration as nft does: `1d2h3m4s500ms`.
pub(crate) fn duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size {
            let _ = write!(out, "{}{unit}", ms / size);
            ms %= size;
        }
    }
    if ms > 0 {
        let _ = write!(out, "{ms}ms");
    }
    out
}

/// The text of a rule (without the chain): `ip saddr @allowed accept`.
pub fn rule_text(rule: &Rule) -> String {
    let mut out = rule
        .exprs
        .iter()
        .map(expr_text)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(c) = &rule.comment {
        let _ = write!(out, " comment \"{c}\"");
    }
    out
}

fn key_expr(k: &KeyExpr) -> String {
    match k {
        KeyExpr::Fields(fields) => fields
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(" . "),
        KeyExpr::Jhash {
            fields,
            modulus,
            seed,
            offset,
        } => {
            let mut s = format!(
                "jhash {} mod {modulus} seed {seed:#x}",
                key_expr(&KeyExpr::Fields(fields.clone()))
            );
            if *offset != 0 {
                let _ = write!(s, " offset {offset}");
            }
            s
        }
        KeyExpr::Numgen {
            random,
            modulus,
            offset,
        } => {
            let mode = if *random { "random" } else { "inc" };
            let mut s = format!("numgen {mode} mod {modulus}");
            if *offset != 0 {
                let _ = write!(s, " offset {offset}");
            }
            s
        }
    }
}

fn neg(negate: bool) -> &'static str {
    if negate { "!= " } else { "" }
}

/// One element of a set (without a value): `a`, `a-b`, `10.0.0.0/8`, or
/// per-field ranges of a concatenation: `198.18.0.2 . 80-90`.
pub(crate) fn element_key(types: &[DataType], key: &Key, end: Option<&Key>) -> String {
    let Some(end) = end.filter(|e| *e != key) else {
        return key.to_string();
    };
    key.0
        .iter()
        .zip(&end.0)
        .zip(types)
        .map(|((a, b), t)| field_range(*t, a, b))
        .collect::<Vec<_>>()
        .join(" . ")
}

/// `a`, `a/len` or `a-b`.
fn field_range(t: DataType, a: &Value, b: &Value) -> String {
    if a == b {
        return a.to_string();
    }
    if matches!(t, DataType::Ipv4Addr | DataType::Ipv6Addr)
        && let Some(len) = prefix_len(&a.encode(t), &b.encode(t))
    {
        return format!("{a}/{len}");
    }
    format!("{a}-{b}")
}

/// The prefix length if `[lo, hi]` is exactly one prefix.
fn prefix_len(lo: &[u8], hi: &[u8]) -> Option<u32> {
    let bits = u32::try_from(lo.len() * 8).ok()?;
    let lo = lo.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let hi = hi.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let host = lo ^ hi;
    // host must be all ones in its low bits, and lo must have them clear.
    if host.checked_add(1).is_some_and(|n| n.is_power_of_two()) && lo & host == 0 && host != 0 {
        Some(bits - (host.count_ones()))
    } else {
        None
    }
}

fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Cmp { field, op, value } => match op {
            CmpOp::Eq => format!("{field} {value}"),
            op => format!("{field} {} {value}", op.symbol()),
        },
        Expr::Range {
            field,
            negate,
            from,
            to,
        } => format!("{field} {}{from}-{to}", neg(*negate)),
        Expr::Prefix {
            field,
            negate,
            addr,
            len,
        } => format!("{field} {}{addr}/{len}", neg(*negate)),
        Expr::CtState(s) => format!("ct state {s}"),
        Expr::CtStatus(s) => format!("ct status {s}"),
        Expr::Lookup { key, set, negate } => {
            format!("{} {}@{set}", key_expr(key), neg(*negate))
        }
        Expr::AnonLookup {
            key,
            negate,
            elements,
        } => {
            let types = key.types();
            let items: Vec<String> = elements
                .iter()
                .map(|(k, end)| element_key(&types, k, end.as_ref()))
                .collect();
            format!(
                "{} {}{{ {} }}",
                key_expr(key),
                neg(*negate),
                items.join(", ")
            )
        }
        Expr::Vmap { key, map } => format!("{} vmap @{map}", key_expr(key)),
        Expr::AnonVmap { key, elements } => {
            let items: Vec<String> = elements.iter().map(|(k, v)| format!("{k} : {v}")).collect();
            format!("{} vmap {{ {} }}", key_expr(key), items.join(", "))
        }
        Expr::SetMark { target, value } => {
            let t = match target {
                MarkTarget::Meta => "meta",
                MarkTarget::Ct => "ct",
            };
            format!("{t} mark set {}", Value::Mark(*value))
        }
        Expr::Dynset {
            op,
            set,
            key,
            timeout,
        } => {
            let op = match op {
                DynsetOp::Add => "add",
                DynsetOp::Update => "update",
            };
            let mut s = format!("{op} @{set} {{ {}", key_expr(&KeyExpr::Fields(key.clone())));
            if let Some(t) = timeout {
                let _ = write!(s, " timeout {}", duration(*t));
            }
            s + " }"
        }
        Expr::Counter => "counter".into(),
        Expr::Log { prefix: None } => "log".into(),
        Expr::Log { prefix: Some(p) } => format!("log prefix \"{p}\""),
        Expr::Nat(nat) => nat_text(nat),
        Expr::Masquerade { fully_random } => {
            if *fully_random {
                "masquerade fully-random".into()
            } else {
                "masquerade".into()
            }
        }
        Expr::Reject(r) => r.to_string(),
        Expr::Verdict(v) => v.to_string(),
    }
}

fn nat_text(nat: &Nat) -> String {
    let kind = match nat.kind {
        NatKind::Snat => "snat",
        NatKind::Dnat => "dnat",
    };
    let fam = match nat.family {
        crate::expr::IpFamily::V4 => "ip",
        crate::expr::IpFamily::V6 => "ip6",
    };
    match &nat.to {
        NatTo::Addr { addr, port: None } => format!("{kind} {fam} to {addr}"),
        NatTo::Addr {
            addr: addr @ std::net::IpAddr::V4(_),
            port: Some(p),
        } => format!("{kind} {fam} to {addr}:{p}"),
        NatTo::Addr {
            addr,
            port: Some(p),
        } => format!("{kind} {fam} to [{addr}]:{p}"),
        NatTo::Map { key, map, port } => {
            let mut s = format!("{kind} {fam} to {} map @{map}", key_expr(key));
            if let Some(p) = port {
                let _ = write!(s, " : {p}");
            }
            s
        }
    }
}

/// The expression nft's `typeof` uses for a type (nft cannot name a bare
/// `integer` type; a 32-bit one is what `numgen` and `jhash` produce).
fn typeof_expr(t: DataType) -> &'static str {
    match t {
        DataType::Ipv4Addr => "ip daddr",
        DataType::Ipv6Addr => "ip6 daddr",
        DataType::InetProto => "meta l4proto",
        DataType::InetService => "th dport",
        DataType::Mark => "meta mark",
        DataType::Ifname => "meta iifname",
        DataType::EtherAddr => "ether saddr",
        DataType::NfProto => "meta nfproto",
        DataType::FibAddrType => "fib daddr type",
        DataType::Integer(_) => "numgen inc mod 1",
    }
}

/// `type a . b : c` (or `typeof ...` when a bare integer is involved).
fn type_line(set: &Set) -> String {
    let data = match &set.data {
        Some(MapData::Data(d)) => Some(d.as_slice()),
        _ => None,
    };
    let has_int = set
        .key
        .iter()
        .chain(data.unwrap_or_default())
        .any(|t| matches!(t, DataType::Integer(_)));
    let join = |types: &[DataType]| -> String {
        let names: Vec<&str> = if has_int {
            types.iter().map(|t| typeof_expr(*t)).collect()
        } else {
            types.iter().map(|t| t.name()).collect()
        };
        names.join(" . ")
    };
    let mut s = format!(
        "{} {}",
        if has_int { "typeof" } else { "type" },
        join(&set.key)
    );
    match &set.data {
        None => {}
        Some(MapData::Verdict) => s.push_str(" : verdict"),
        Some(MapData::Data(d)) => {
            let _ = write!(s, " : {}", join(d));
        }
    }
    s
}

/// One element with its timeout and value: `k timeout 5s : goto c`.
pub(crate) fn element_text(set: &Set, key: &Key, elem: &Element) -> String {
    let mut s = element_key(&set.key, key, elem.end.as_ref());
    if let Some(t) = elem.timeout {
        let _ = write!(s, " timeout {}", duration(t));
    }
    match &elem.value {
        None => {}
        Some(MapValue::Verdict(v)) => {
            let _ = write!(s, " : {v}");
        }
        Some(MapValue::Data(d)) => {
            let _ = write!(s, " : {d}");
        }
    }
    s
}

/// The body of a set declaration, each line prefixed by `indent`.
pub(crate) fn set_body(set: &Set, indent: &str, with_elements: bool) -> String {
    let mut out = format!("{indent}{}\n", type_line(set));
    if let Some(size) = set.size {
        let _ = writeln!(out, "{indent}size {size}");
    }
    let f = set.flags;
    let flags: Vec<&str> = [
        (f.constant, "constant"),
        (f.dynamic, "dynamic"),
        (f.interval, "interval"),
        (f.timeout, "timeout"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect();
    if !flags.is_empty() {
        let _ = writeln!(out, "{indent}flags {}", flags.join(","));
    }
    if let Some(t) = set.timeout {
        let _ = writeln!(out, "{indent}timeout {}", duration(t));
    }
    if with_elements && !set.elements.is_empty() {
        let items: Vec<String> = set
            .elements
            .iter()
            .map(|(k, e)| element_text(set, k, e))
            .collect();
        let sep = format!(",\n{indent}             ");
        let _ = writeln!(out, "{indent}elements = {{ {} }}", items.join(&sep));
    }
    out
}

/// `type nat hook prerouting priority -100; policy accept;`
pub(crate) fn base_line(b: &BaseChain) -> String {
    format!(
        "type {} hook {} priority {}; policy {};",
        b.kind.name(),
        b.hook.name(),
        b.priority,
        b.policy.name()
    )
}

fn chain_text(out: &mut String, name: &str, chain: &Chain) {
    let _ = writeln!(out, "\tchain {name} {{");
    if let Some(b) = &chain.base {
        let _ = writeln!(out, "\t\t{}", base_line(b));
    }
    for rule in &chain.rules {
        let _ = writeln!(out, "\t\t{}", rule_text(rule));
    }
    out.push_str("\t}\n");
}

/// The whole table as `nft -f` input.
pub fn render(table: &Table) -> String {
    let mut out = format!("table {} {} {{\n", table.family, table.name);
    let mut first = true;
    for (name, set) in &table.sets {
        if !first {
            out.push('\n');
        }
        first = false;
        let kind = if set.is_map() { "map" } else { "set" };
        let _ = writeln!(out, "\t{kind} {name} {{");
        out.push_str(&set_body(set, "\t\t", true));
        out.push_str("\t}\n");
    }
    for (name, chain) in &table.chains {
        if !first {
            out.push('\n');
        }
        first = false;
        chain_text(&mut out, name, chain);
    }
    out.push_str("}\n");
    out
}

impl fmt::Display for Table {
    /// The same as [`render`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render(self))
    }
}

impl fmt::Display for Rule {
    /// The same as [`rule_text`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&rule_text(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_nft_writes_them() {
        assert_eq!(duration(Duration::from_secs(10800)), "3h");
        assert_eq!(duration(Duration::from_millis(90_500)), "1m30s500ms");
        assert_eq!(duration(Duration::from_secs(86_401)), "1d1s");
        assert_eq!(duration(Duration::from_millis(1)), "1ms");
    }

    #[test]
    fn ranges_that_are_prefixes_are_written_as_prefixes() {
        let a = |s: &str| Key::one(Value::Ipv4(s.parse().unwrap()));
        let t = [DataType::Ipv4Addr];
        assert_eq!(
            element_key(&t, &a("10.0.0.0"), Some(&a("10.255.255.255"))),
            "10.0.0.0/8"
        );
        assert_eq!(
            element_key(&t, &a("10.0.0.1"), Some(&a("10.0.0.9"))),
            "10.0.0.1-10.0.0.9"
        );
        assert_eq!(
            element_key(&t, &a("10.0.0.1"), Some(&a("10.0.0.1"))),
            "10.0.0.1"
        );
        assert_eq!(
            element_key(&t, &a("0.0.0.0"), Some(&a("255.255.255.255"))),
            "0.0.0.0/0"
        );
    }
}
