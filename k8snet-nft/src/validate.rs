//! Checks a desired state before anything is rendered, diffed or sent:
//! names, types of keys and values, references between objects.

use std::time::Duration;

use crate::error::{Error, Object, Result};
use crate::expr::{CmpOp, Expr, Field, IpFamily, KeyExpr, Nat, NatTo, Verdict};
use crate::model::{Element, Family, MapData, MapValue, Set, Table};
use crate::types::{DataType, Key, padded_len};

/// The most elements an anonymous set or verdict map in a rule may have;
/// larger ones belong in a named set (the kernel's cost per anonymous set
/// grows with the size of the pending transaction).
pub const MAX_ANON_ELEMENTS: usize = 16;

/// The longest name of a table, chain or set (the kernel's limit is 256
/// bytes with the terminating NUL).
pub const MAX_NAME_LEN: usize = 255;

/// The longest comment or log prefix.
pub const MAX_COMMENT_LEN: usize = 127;

/// The size the kernel gives a `dynamic` set created without one.
pub const DEFAULT_DYNAMIC_SIZE: u32 = 65535;

/// Register space for a key or map data, in bytes (16 registers of 4).
const MAX_KEY_BYTES: usize = 64;

/// Checks a name: a letter, then letters, digits and `_ . / -`.
pub(crate) fn check_name(object: impl Fn() -> Object, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && name.len() <= MAX_NAME_LEN;
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            object(),
            format!(
                "bad name {name:?}: use a letter, then letters, digits, '_', '.', '/' or '-', \
                 at most {MAX_NAME_LEN} bytes"
            ),
        ))
    }
}

fn check_text(object: &Object, what: &str, text: &str) -> Result<()> {
    if text.len() > MAX_COMMENT_LEN || text.contains(['"', '\n', '\0']) {
        return Err(Error::invalid(
            object.clone(),
            format!(
                "{what} {text:?} is longer than {MAX_COMMENT_LEN} bytes or has '\"' or a newline"
            ),
        ));
    }
    Ok(())
}

fn check_timeout(object: &Object, t: Duration) -> Result<()> {
    if t.is_zero() || !t.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(Error::invalid(
            object.clone(),
            format!("timeout {t:?} is not a positive whole number of milliseconds"),
        ));
    }
    Ok(())
}

fn check_types(object: &Object, what: &str, types: &[DataType]) -> Result<()> {
    if types.is_empty() || types.len() > 16 {
        return Err(Error::invalid(
            object.clone(),
            format!("{what} needs 1 to 16 fields"),
        ));
    }
    for t in types {
        t.check().map_err(|e| Error::invalid(object.clone(), e))?;
    }
    if padded_len(types) > MAX_KEY_BYTES {
        return Err(Error::invalid(
            object.clone(),
            format!("{what} is longer than {MAX_KEY_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Validates the whole table. The error names the first bad object.
pub fn validate(table: &Table) -> Result<()> {
    check_name(|| Object::Table(table.name.clone()), &table.name)?;
    for (name, set) in &table.sets {
        check_set(table, name, set)?;
    }
    for (name, chain) in &table.chains {
        check_name(|| Object::Chain(name.clone()), name)?;
        for (i, rule) in chain.rules.iter().enumerate() {
            let object = Object::Rule {
                chain: name.clone(),
                index: i + 1,
            };
            check_rule(table, &object, rule)?;
        }
    }
    Ok(())
}

fn check_set(table: &Table, name: &str, set: &Set) -> Result<()> {
    let object = Object::Set(name.to_owned());
    check_name(|| object.clone(), name)?;
    check_types(&object, "the key", &set.key)?;
    if let Some(MapData::Data(types)) = &set.data {
        check_types(&object, "the map data", types)?;
    }
    // nft packs the field types of a set into 32 bits, 6 bits each.
    let too_many = |t: &[DataType]| t.len() > 5;
    if too_many(&set.key) || matches!(&set.data, Some(MapData::Data(d)) if too_many(d)) {
        return Err(Error::invalid(
            object,
            "sets and maps take at most 5 fields",
        ));
    }
    let flags = set.flags;
    if let Some(t) = set.timeout {
        check_timeout(&object, t)?;
        if !flags.timeout {
            return Err(Error::invalid(object, "a timeout needs the timeout flag"));
        }
    }
    if flags.interval && !set.key.iter().all(|t| t.is_ordered()) {
        return Err(Error::invalid(
            object,
            "interval sets need ordered key types (addresses, ports, protocols, MACs)",
        ));
    }
    if flags.constant && (flags.dynamic || flags.timeout) {
        return Err(Error::invalid(
            object,
            "a constant set cannot be dynamic or time out",
        ));
    }
    if flags.dynamic && set.is_map() {
        return Err(Error::invalid(
            object,
            "the packet path updates sets, not maps",
        ));
    }
    if set.size == Some(0) {
        return Err(Error::invalid(object, "size must be at least 1"));
    }
    if flags.dynamic && set.size == Some(DEFAULT_DYNAMIC_SIZE) {
        return Err(Error::invalid(
            object,
            format!("size {DEFAULT_DYNAMIC_SIZE} is the default of dynamic sets; leave it unset"),
        ));
    }
    let mut last_end: Option<Vec<u8>> = None;
    for (key, elem) in &set.elements {
        let at = || Object::Elements {
            set: name.to_owned(),
            first: key.to_string(),
            count: 1,
        };
        check_element(table, set, key, elem).map_err(|reason| Error::invalid(at(), reason))?;
        if let Some(t) = elem.timeout {
            check_timeout(&at(), t)?;
            if set.timeout == Some(t) {
                return Err(Error::invalid(
                    at(),
                    "the timeout is the set's default; leave it unset",
                ));
            }
        }
        // Ranges of one-field interval sets may not overlap (rbtree).
        if flags.interval && set.key.len() == 1 {
            let start = key.encode(&set.key);
            if last_end.as_ref().is_some_and(|e| *e >= start) {
                return Err(Error::invalid(at(), "overlaps the previous element"));
            }
            last_end = Some(elem.end.as_ref().unwrap_or(key).encode(&set.key));
        }
    }
    Ok(())
}

fn check_element(table: &Table, set: &Set, key: &Key, elem: &Element) -> Result<(), String> {
    if !key.fits(&set.key) {
        return Err(format!("key {key} is not of type {}", type_list(&set.key)));
    }
    if let Some(end) = &elem.end {
        if end == key {
            return Err("a single value is written with no range end".into());
        }
        if !set.flags.interval {
            return Err("a range needs the interval flag".into());
        }
        if !end.fits(&set.key) || end.encode(&set.key) < key.encode(&set.key) {
            return Err(format!(
                "range end {end} is not a key at or after the start"
            ));
        }
    }
    if elem.timeout.is_some() && !set.flags.timeout {
        return Err("an element timeout needs the timeout flag".into());
    }
    match (&set.data, &elem.value) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err("a set element has no value".into()),
        (Some(_), None) => Err("a map element needs a value".into()),
        (Some(MapData::Verdict), Some(MapValue::Verdict(v))) => check_target(table, v),
        (Some(MapData::Data(types)), Some(MapValue::Data(d))) if d.fits(types) => Ok(()),
        (Some(data), Some(_)) => Err(format!(
            "the value is not of the map's type {}",
            data_name(data)
        )),
    }
}

fn check_target(table: &Table, v: &Verdict) -> Result<(), String> {
    let Some(target) = v.target() else {
        return Ok(());
    };
    match table.chains.get(target) {
        None => Err(format!("jump target {target:?} does not exist")),
        Some(c) if c.base.is_some() => Err(format!("jump target {target:?} is a base chain")),
        Some(_) => Ok(()),
    }
}

pub(crate) fn type_list(types: &[DataType]) -> String {
    types
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" . ")
}

fn data_name(d: &MapData) -> String {
    match d {
        MapData::Verdict => "verdict".into(),
        MapData::Data(types) => type_list(types),
    }
}

fn check_rule(table: &Table, object: &Object, rule: &crate::model::Rule) -> Result<()> {
    let bad = |reason: String| Error::invalid(object.clone(), reason);
    if rule.exprs.is_empty() {
        return Err(bad("a rule needs at least one item".into()));
    }
    if let Some(c) = &rule.comment {
        check_text(object, "comment", c)?;
    }
    let last = rule.exprs.len() - 1;
    for (i, e) in rule.exprs.iter().enumerate() {
        if matches!(
            e,
            Expr::Verdict(_) | Expr::Vmap { .. } | Expr::AnonVmap { .. }
        ) && i != last
        {
            return Err(bad(format!(
                "item {} is a verdict, so it must be last",
                i + 1
            )));
        }
        check_expr(table, object, e).map_err(bad)?;
    }
    Ok(())
}

fn check_field(table: &Table, f: Field) -> Result<(), String> {
    let v6 = matches!(f, Field::Ip6Saddr | Field::Ip6Daddr);
    let v4 = matches!(f, Field::IpSaddr | Field::IpDaddr);
    match table.family {
        Family::Ip if v6 => Err(format!("{f} in an ip table")),
        Family::Ip6 if v4 => Err(format!("{f} in an ip6 table")),
        _ => Ok(()),
    }
}

fn check_key(table: &Table, key: &KeyExpr) -> Result<(), String> {
    let fields = match key {
        KeyExpr::Fields(f) => f.as_slice(),
        KeyExpr::Jhash {
            fields, modulus, ..
        } => {
            if *modulus == 0 {
                return Err("jhash needs mod of at least 1".into());
            }
            fields.as_slice()
        }
        KeyExpr::Numgen { modulus, .. } => {
            return if *modulus == 0 {
                Err("numgen needs mod of at least 1".into())
            } else {
                Ok(())
            };
        }
    };
    if fields.is_empty() {
        return Err("a key needs at least one field".into());
    }
    for f in fields {
        check_field(table, *f)?;
    }
    let types: Vec<DataType> = fields.iter().map(|f| f.data_type()).collect();
    if padded_len(&types) > MAX_KEY_BYTES {
        return Err(format!("the key is longer than {MAX_KEY_BYTES} bytes"));
    }
    Ok(())
}

fn named_set<'t>(table: &'t Table, name: &str) -> Result<&'t Set, String> {
    table
        .sets
        .get(name)
        .ok_or_else(|| format!("set {name:?} does not exist"))
}

fn same_key(name: &str, want: &[DataType], key: &KeyExpr) -> Result<(), String> {
    let have = key.types();
    if have != want {
        return Err(format!(
            "the key {} does not match set {name:?} of type {}",
            type_list(&have),
            type_list(want)
        ));
    }
    Ok(())
}

fn check_expr(table: &Table, _object: &Object, e: &Expr) -> Result<(), String> {
    match e {
        Expr::Cmp { field, op, value } => {
            check_field(table, *field)?;
            let t = field.data_type();
            if !value.fits(t) {
                return Err(format!("{value} is not a {t} for {field}"));
            }
            if !matches!(op, CmpOp::Eq | CmpOp::Ne) && !t.is_ordered() {
                return Err(format!("{field} values cannot be ordered"));
            }
        }
        Expr::Range {
            field, from, to, ..
        } => {
            check_field(table, *field)?;
            let t = field.data_type();
            if !t.is_ordered() || !from.fits(t) || !to.fits(t) || from.encode(t) > to.encode(t) {
                return Err(format!(
                    "{from}-{to} is not an ordered range of {t} for {field}"
                ));
            }
        }
        Expr::Prefix {
            field, addr, len, ..
        } => {
            check_field(table, *field)?;
            let ok = match field.data_type() {
                DataType::Ipv4Addr => addr.is_ipv4() && *len <= 32,
                DataType::Ipv6Addr => addr.is_ipv6() && *len <= 128,
                _ => false,
            };
            if !ok {
                return Err(format!("{addr}/{len} is not a prefix for {field}"));
            }
        }
        Expr::CtState(s) if s.is_empty() => return Err("ct state needs a state".into()),
        Expr::CtStatus(s) if s.is_empty() => return Err("ct status needs a status bit".into()),
        Expr::CtState(_)
        | Expr::CtStatus(_)
        | Expr::Counter
        | Expr::SetMark { .. }
        | Expr::Reject(_) => {}
        Expr::Masquerade { .. } => {}
        Expr::Lookup { key, set, .. } => {
            check_key(table, key)?;
            let s = named_set(table, set)?;
            if s.is_map() {
                return Err(format!("{set:?} is a map; look up sets"));
            }
            same_key(set, &s.key, key)?;
        }
        Expr::AnonLookup { key, elements, .. } => {
            check_key(table, key)?;
            check_anon_size(elements.len())?;
            let types = key.types();
            for (k, end) in elements {
                if !k.fits(&types) {
                    return Err(format!("{k} is not of type {}", type_list(&types)));
                }
                if let Some(end) = end
                    && (!types.iter().all(|t| t.is_ordered())
                        || !end.fits(&types)
                        || end.encode(&types) < k.encode(&types))
                {
                    return Err(format!("{k}-{end} is not an ordered range"));
                }
            }
        }
        Expr::Vmap { key, map } => {
            check_key(table, key)?;
            let s = named_set(table, map)?;
            if s.data != Some(MapData::Verdict) {
                return Err(format!("{map:?} is not a verdict map"));
            }
            same_key(map, &s.key, key)?;
        }
        Expr::AnonVmap { key, elements } => {
            check_key(table, key)?;
            check_anon_size(elements.len())?;
            let types = key.types();
            for (k, v) in elements {
                if !k.fits(&types) {
                    return Err(format!("{k} is not of type {}", type_list(&types)));
                }
                check_target(table, v)?;
            }
        }
        Expr::Dynset {
            set, key, timeout, ..
        } => {
            check_key(table, &KeyExpr::Fields(key.clone()))?;
            let s = named_set(table, set)?;
            if s.is_map() || !s.flags.dynamic {
                return Err(format!("{set:?} is not a set with the dynamic flag"));
            }
            same_key(set, &s.key, &KeyExpr::Fields(key.clone()))?;
            if let Some(t) = timeout {
                if !s.flags.timeout {
                    return Err(format!("{set:?} has no timeout flag"));
                }
                if t.is_zero() || !t.subsec_nanos().is_multiple_of(1_000_000) {
                    return Err(format!("timeout {t:?} is not whole milliseconds"));
                }
            }
        }
        Expr::Log { prefix } => {
            if let Some(p) = prefix
                && (p.len() > MAX_COMMENT_LEN || p.contains(['"', '\n', '\0']))
            {
                return Err(format!("log prefix {p:?} is too long or has '\"'"));
            }
        }
        Expr::Nat(nat) => check_nat(table, nat)?,
        Expr::Verdict(v) => check_target(table, v)?,
    }
    Ok(())
}

fn check_anon_size(n: usize) -> Result<(), String> {
    if n == 0 || n > MAX_ANON_ELEMENTS {
        return Err(format!(
            "an anonymous set needs 1 to {MAX_ANON_ELEMENTS} elements; use a named set"
        ));
    }
    Ok(())
}

fn check_nat(table: &Table, nat: &Nat) -> Result<(), String> {
    let family_ok = matches!(
        (table.family, nat.family),
        (Family::Inet, _) | (Family::Ip, IpFamily::V4) | (Family::Ip6, IpFamily::V6)
    );
    if !family_ok {
        return Err(format!("{:?} NAT in a {} table", nat.family, table.family));
    }
    match &nat.to {
        NatTo::Addr { addr, .. } => {
            if addr.is_ipv4() != (nat.family == IpFamily::V4) {
                return Err(format!("{addr} is not of the NAT family"));
            }
        }
        NatTo::Map { key, map, port } => {
            check_key(table, key)?;
            let s = named_set(table, map)?;
            same_key(map, &s.key, key)?;
            let addr = nat.family.addr_type();
            let ok = match &s.data {
                Some(MapData::Data(d)) if d.as_slice() == [addr] => true,
                Some(MapData::Data(d)) if d.as_slice() == [addr, DataType::InetService] => {
                    port.is_none()
                }
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "{map:?} must map to {addr} (with a fixed port) or {addr} . inet_service"
                ));
            }
        }
    }
    Ok(())
}
