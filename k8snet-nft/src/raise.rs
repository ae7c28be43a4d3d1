//! Turns what the kernel lists (chains, sets with their elements, rules
//! with their userdata) back into the model. Rules are not decoded from
//! their expressions: the text stored with each rule is parsed.

use std::time::Duration;

use crate::error::{Error, Object, Result};
use crate::expr::Verdict;
use crate::lower::{LowElem, uapi};
use crate::model::{
    BaseChain, Chain, ChainType, Element, Hook, MapData, MapValue, Policy, Rule, Set, SetFlags,
};
use crate::parse::parse_rule;
use crate::types::{DataType, Key, decrement_be, padded_len};

/// A chain as the kernel lists it.
pub(crate) struct RawChain {
    pub(crate) table: String,
    pub(crate) name: String,
    /// Hook number, priority, type and policy of a base chain.
    pub(crate) hook: Option<(u32, i32, String, u32)>,
}

/// A set as the kernel lists it.
pub(crate) struct RawSet {
    pub(crate) table: String,
    pub(crate) name: String,
    pub(crate) flags: u32,
    pub(crate) key_type: u32,
    pub(crate) key_len: u32,
    pub(crate) data_type: Option<u32>,
    pub(crate) data_len: u32,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) size: Option<u32>,
}

/// A rule as the kernel lists it: where it is and its userdata.
pub(crate) struct RawRule {
    pub(crate) table: String,
    pub(crate) chain: String,
    pub(crate) handle: u64,
    pub(crate) udata: Vec<u8>,
}

pub(crate) fn chain(raw: &RawChain) -> Result<Chain> {
    let Some((hook, priority, kind, policy)) = &raw.hook else {
        return Ok(Chain::regular());
    };
    let bad = |what: String| Error::readback(Object::Chain(raw.name.clone()), what);
    let kind = match kind.as_str() {
        "filter" => ChainType::Filter,
        "nat" => ChainType::Nat,
        "route" => ChainType::Route,
        other => return Err(bad(format!("unknown chain type {other:?}"))),
    };
    let hook = Hook::from_number(*hook).ok_or_else(|| bad(format!("unknown hook {hook}")))?;
    let policy = match policy {
        0 => Policy::Drop,
        1 => Policy::Accept,
        other => return Err(bad(format!("unknown policy {other}"))),
    };
    Ok(Chain {
        base: Some(BaseChain {
            kind,
            hook,
            priority: *priority,
            policy,
        }),
        rules: Vec::new(),
    })
}

/// The field types of nft's packed type id, given the total length.
fn split_types(id: u32, len: usize) -> Option<Vec<DataType>> {
    let mut ids = Vec::new();
    let mut v = id;
    while v != 0 {
        ids.push(v & ((1 << uapi::TYPE_BITS) - 1));
        v >>= uapi::TYPE_BITS;
    }
    ids.reverse();
    if let [one] = ids.as_slice() {
        return Some(vec![DataType::from_nft_id(*one, len)?]);
    }
    // Every type but `integer` has a known length; one integer takes the rest.
    let known: Vec<Option<DataType>> = ids
        .iter()
        .map(|i| {
            if *i == 4 {
                None
            } else {
                DataType::from_nft_id(*i, known_len(*i)?)
            }
        })
        .collect();
    let fixed: usize = known
        .iter()
        .flatten()
        .map(|t| t.len().next_multiple_of(4))
        .sum();
    let ints = known.iter().filter(|t| t.is_none()).count();
    let types: Vec<DataType> = match ints {
        0 => known.into_iter().collect::<Option<_>>()?,
        1 => {
            let bits = u8::try_from(len.checked_sub(fixed)? * 8).ok()?;
            known
                .into_iter()
                .map(|t| t.unwrap_or(DataType::Integer(bits)))
                .collect()
        }
        _ => return None,
    };
    (padded_len(&types) == len).then_some(types)
}

fn known_len(id: u32) -> Option<usize> {
    [
        DataType::NfProto,
        DataType::Ipv4Addr,
        DataType::Ipv6Addr,
        DataType::EtherAddr,
    ]
    .into_iter()
    .chain([DataType::InetProto, DataType::InetService, DataType::Mark])
    .chain([DataType::FibAddrType, DataType::Ifname])
    .find(|t| t.nft_id() == id)
    .map(DataType::len)
}

fn verdict(code: i32, chain: Option<String>) -> Option<Verdict> {
    Some(match (code, chain) {
        (uapi::NF_ACCEPT, None) => Verdict::Accept,
        (uapi::NF_DROP, None) => Verdict::Drop,
        (uapi::NFT_RETURN, None) => Verdict::Return,
        (uapi::NFT_JUMP, Some(c)) => Verdict::Jump(c),
        (uapi::NFT_GOTO, Some(c)) => Verdict::Goto(c),
        _ => return None,
    })
}

/// A named set with its elements. `None` for anonymous sets (they belong to
/// rules).
pub(crate) fn set(raw: &RawSet, elems: &[LowElem]) -> Result<Option<Set>> {
    if raw.flags & uapi::SET_ANONYMOUS != 0 {
        return Ok(None);
    }
    let bad = |what: &str| Error::readback(Object::Set(raw.name.clone()), what);
    let key = split_types(raw.key_type, raw.key_len as usize)
        .ok_or_else(|| bad("key type not written by k8snet-nft"))?;
    let data = match raw.data_type {
        None => None,
        Some(uapi::DATA_VERDICT) => Some(MapData::Verdict),
        Some(t) => Some(MapData::Data(
            split_types(t, raw.data_len as usize)
                .ok_or_else(|| bad("data type not written by k8snet-nft"))?,
        )),
    };
    let f = raw.flags;
    let flags = SetFlags {
        interval: f & uapi::SET_INTERVAL != 0,
        timeout: f & uapi::SET_TIMEOUT != 0,
        dynamic: f & uapi::SET_EVAL != 0,
        constant: f & uapi::SET_CONSTANT != 0,
    };
    let mut set = Set {
        key,
        data,
        flags,
        timeout: raw.timeout_ms.filter(|t| *t > 0).map(Duration::from_millis),
        // The kernel gives dynamic sets without a size its default size.
        size: raw
            .size
            .filter(|s| *s > 0 && !(flags.dynamic && *s == crate::validate::DEFAULT_DYNAMIC_SIZE)),
        elements: Default::default(),
    };
    let default_timeout = set.timeout;
    let timeout = |ms: Option<u64>| {
        ms.filter(|t| *t > 0)
            .map(Duration::from_millis)
            .filter(|t| Some(*t) != default_timeout)
    };
    let decode =
        |b: &[u8]| Key::decode(&set.key, b).ok_or_else(|| bad("an element key does not decode"));
    let value = |e: &LowElem| -> Result<Option<MapValue>> {
        Ok(match (&set.data, &e.verdict, &e.data) {
            (None, _, _) => None,
            (Some(MapData::Verdict), Some((code, chain)), _) => Some(MapValue::Verdict(
                verdict(*code, chain.clone())
                    .ok_or_else(|| bad("unknown verdict in an element"))?,
            )),
            (Some(MapData::Data(types)), _, Some(d)) => Some(MapValue::Data(
                Key::decode(types, d).ok_or_else(|| bad("an element value does not decode"))?,
            )),
            _ => return Err(bad("a map element has no value")),
        })
    };
    let mut out = Vec::new();
    if flags.interval && set.key.len() == 1 {
        // Start elements, each closed by the next interval-end element.
        let mut sorted: Vec<&LowElem> = elems.iter().collect();
        let is_end = |e: &LowElem| e.flags & uapi::SET_ELEM_INTERVAL_END != 0;
        sorted.sort_by(|a, b| a.key.cmp(&b.key).then(is_end(b).cmp(&is_end(a))));
        let mut open: Option<&LowElem> = None;
        for e in sorted {
            if is_end(e) {
                if let Some(s) = open.take() {
                    let last =
                        decrement_be(&e.key).ok_or_else(|| bad("an interval ends at zero"))?;
                    out.push((s, Some(last)));
                }
            } else if open.replace(e).is_some() {
                return Err(bad("overlapping intervals"));
            }
        }
        if let Some(s) = open {
            out.push((s, Some(vec![0xff; s.key.len()])));
        }
    } else {
        out.extend(elems.iter().map(|e| (e, e.key_end.clone())));
    }
    for (e, end) in out {
        let k = decode(&e.key)?;
        let end = match end {
            Some(b) if b != e.key => Some(decode(&b)?),
            _ => None,
        };
        let elem = Element {
            end,
            value: value(e)?,
            timeout: timeout(e.timeout_ms),
        };
        set.elements.insert(k, elem);
    }
    Ok(Some(set))
}

/// The rule text and comment stored in a rule's userdata.
pub(crate) fn rule(raw: &RawRule, index: usize) -> Result<Rule> {
    let object = || Object::Rule {
        chain: raw.chain.clone(),
        index,
    };
    let mut text = Vec::new();
    let mut comment = None;
    let mut rest = raw.udata.as_slice();
    while let [ty, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let Some(value) = tail.get(..len) else {
            return Err(Error::readback(object(), "truncated userdata"));
        };
        match *ty {
            uapi::UDATA_RULE_K8SNET => text.extend_from_slice(value),
            uapi::UDATA_RULE_COMMENT => {
                let s = value.strip_suffix(&[0]).unwrap_or(value);
                comment = Some(String::from_utf8_lossy(s).into_owned());
            }
            _ => {}
        }
        rest = &tail[len..];
    }
    if text.is_empty() {
        return Err(Error::readback(
            object(),
            format!("rule (handle {}) was not written by k8snet-nft", raw.handle),
        ));
    }
    let text =
        String::from_utf8(text).map_err(|_| Error::readback(object(), "rule text is not UTF-8"))?;
    let mut rule = parse_rule(&text).map_err(|e| Error::readback(object(), e.to_string()))?;
    rule.comment = comment;
    Ok(rule)
}
