//! Lowers a [`Batch`] to kernel-level messages as plain data: register
//! loads, comparisons and lookups for rules, byte strings for set elements,
//! type ids and flags for sets. The `sys` module only encodes these as
//! netlink attributes. Values are the kernel's uapi (`linux/netfilter/
//! nf_tables.h`), which is stable.

use crate::diff::{Batch, Op};
use crate::error::{Error, Object, Result};
use crate::expr::{
    CmpOp, DynsetOp, Expr, Field, IpFamily, KeyExpr, MarkTarget, NatKind, NatTo, Reject, Verdict,
};
use crate::model::{Element, MapData, MapValue, Rule, Set};
use crate::render::rule_text;

mod rule;

use crate::types::{DataType, Key, increment_be, reg_len};
pub(crate) use rule::lower_rule;

/// Kernel constants (nf_tables uapi).
pub(crate) mod uapi {
    pub(crate) const REG_VERDICT: u32 = 0;
    /// The first 32-bit data register (`NFT_REG32_00`).
    pub(crate) const REG32_00: u32 = 8;
    pub(crate) const SET_ANONYMOUS: u32 = 0x1;
    pub(crate) const SET_CONSTANT: u32 = 0x2;
    pub(crate) const SET_INTERVAL: u32 = 0x4;
    pub(crate) const SET_MAP: u32 = 0x8;
    pub(crate) const SET_TIMEOUT: u32 = 0x10;
    pub(crate) const SET_EVAL: u32 = 0x20;
    pub(crate) const SET_CONCAT: u32 = 0x80;
    pub(crate) const SET_ELEM_INTERVAL_END: u32 = 0x1;
    pub(crate) const DATA_VERDICT: u32 = 0xffff_ff00;
    pub(crate) const NF_DROP: i32 = 0;
    pub(crate) const NF_ACCEPT: i32 = 1;
    pub(crate) const NFT_JUMP: i32 = -3;
    pub(crate) const NFT_GOTO: i32 = -4;
    pub(crate) const NFT_RETURN: i32 = -5;
    /// nft's type ids are concatenated in 6-bit steps.
    pub(crate) const TYPE_BITS: u32 = 6;
    /// Rule userdata TLV of nft's comment.
    pub(crate) const UDATA_RULE_COMMENT: u8 = 0;
    /// Rule userdata TLV holding our rule text (nft ignores unknown types).
    pub(crate) const UDATA_RULE_K8SNET: u8 = 0x6b;
    /// The kernel's limit on rule userdata.
    pub(crate) const USERDATA_MAXLEN: usize = 256;
}

use uapi::*;

/// One expression of a rule, as the kernel sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LowExpr {
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Meta {
        key: u32,
        dreg: u32,
    },
    MetaSet {
        key: u32,
        sreg: u32,
    },
    Ct {
        key: u32,
        dreg: u32,
    },
    CtSet {
        key: u32,
        sreg: u32,
    },
    Fib {
        flags: u32,
        result: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Range {
        sreg: u32,
        op: u32,
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Immediate {
        dreg: u32,
        data: Vec<u8>,
    },
    Verdict {
        code: i32,
        chain: Option<String>,
    },
    Lookup {
        sreg: u32,
        dreg: Option<u32>,
        set: String,
        set_id: Option<u32>,
        invert: bool,
    },
    Dynset {
        op: u32,
        sreg_key: u32,
        set: String,
        timeout_ms: Option<u64>,
    },
    Hash {
        sreg: u32,
        len: u32,
        modulus: u32,
        seed: u32,
        offset: u32,
        dreg: u32,
    },
    Numgen {
        dreg: u32,
        modulus: u32,
        random: bool,
        offset: u32,
    },
    Nat {
        kind: u32,
        family: u32,
        reg_addr: u32,
        reg_proto: Option<u32>,
    },
    Masq {
        flags: u32,
    },
    Reject {
        kind: u32,
        code: u8,
    },
    Counter,
    Log {
        prefix: Option<String>,
    },
}

/// A set definition as the kernel sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LowSet {
    pub(crate) name: String,
    pub(crate) id: u32,
    pub(crate) flags: u32,
    pub(crate) key_type: u32,
    pub(crate) key_len: u32,
    /// Data type and length (no length for verdicts).
    pub(crate) data: Option<(u32, Option<u32>)>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) size: Option<u32>,
    /// Field lengths of a concatenated key (empty for one field).
    pub(crate) concat: Vec<u8>,
    pub(crate) udata: Vec<u8>,
}

/// One element as the kernel sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LowElem {
    pub(crate) key: Vec<u8>,
    pub(crate) key_end: Option<Vec<u8>>,
    pub(crate) flags: u32,
    pub(crate) data: Option<Vec<u8>>,
    pub(crate) verdict: Option<(i32, Option<String>)>,
    pub(crate) timeout_ms: Option<u64>,
}

/// One netlink message of a transaction (family and table are the batch's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    NewTable,
    DelTable,
    NewChain {
        name: String,
        hook: Option<(u32, i32, &'static str, u32)>,
    },
    DelChain {
        name: String,
    },
    FlushChain {
        name: String,
    },
    NewSet(LowSet),
    DelSet {
        name: String,
    },
    NewElems {
        set: String,
        set_id: Option<u32>,
        elems: Vec<LowElem>,
    },
    DelElems {
        set: String,
        elems: Vec<LowElem>,
    },
    NewRule {
        chain: String,
        exprs: Vec<LowExpr>,
        udata: Vec<u8>,
    },
}

/// nft's id of a concatenation of types (each 6 bits, first field highest).
pub(crate) fn concat_type_id(types: &[DataType]) -> u32 {
    types
        .iter()
        .fold(0u32, |acc, t| (acc << TYPE_BITS) | t.nft_id())
}

fn verdict_code(v: &Verdict) -> (i32, Option<String>) {
    match v {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Return => (NFT_RETURN, None),
        Verdict::Jump(c) => (NFT_JUMP, Some(c.clone())),
        Verdict::Goto(c) => (NFT_GOTO, Some(c.clone())),
    }
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A set's kernel definition.
pub(crate) fn low_set(name: &str, id: u32, set: &Set, anonymous: bool) -> LowSet {
    let f = set.flags;
    let mut flags = 0;
    for (on, bit) in [
        (anonymous, SET_ANONYMOUS),
        (f.constant || anonymous, SET_CONSTANT),
        (f.interval, SET_INTERVAL),
        (set.is_map(), SET_MAP),
        (f.timeout, SET_TIMEOUT),
        (f.dynamic, SET_EVAL),
        (f.interval && set.key.len() > 1, SET_CONCAT),
    ] {
        if on {
            flags |= bit;
        }
    }
    let data = match &set.data {
        None => None,
        Some(MapData::Verdict) => Some((DATA_VERDICT, None)),
        Some(MapData::Data(types)) => Some((concat_type_id(types), Some(len32(reg_len(types))))),
    };
    // The field lengths go with the CONCAT flag (concatenated intervals).
    let concat = if flags & SET_CONCAT != 0 {
        set.key
            .iter()
            .map(|t| u8::try_from(t.len()).unwrap_or(0))
            .collect()
    } else {
        Vec::new()
    };
    // nft reads the byte order of integer keys and data from these TLVs.
    let mut udata = Vec::new();
    let host = |types: &[DataType]| {
        matches!(
            types,
            [DataType::Integer(_) | DataType::Mark | DataType::Ifname]
        )
    };
    if host(&set.key) {
        udata.extend([0, 4]);
        udata.extend(1u32.to_ne_bytes());
    }
    if let Some(MapData::Data(d)) = &set.data
        && host(d)
    {
        udata.extend([1, 4]);
        udata.extend(1u32.to_ne_bytes());
    }
    LowSet {
        name: name.to_owned(),
        id,
        flags,
        key_type: concat_type_id(&set.key),
        key_len: len32(reg_len(&set.key)),
        data,
        timeout_ms: set.timeout.map(ms),
        size: set.size,
        concat,
        udata,
    }
}

/// The kernel elements of model elements. One-field interval sets hold a
/// range as two elements: its start, and `end + 1` flagged as an interval
/// end (left out when `end` is the largest value). Concatenated interval
/// sets hold the range end in the element itself.
pub(crate) fn low_elems(set: &Set, elements: &[(Key, Element)]) -> Vec<LowElem> {
    let mut out = Vec::with_capacity(elements.len());
    let rbtree = set.flags.interval && set.key.len() == 1;
    for (key, e) in elements {
        let kb = key.encode(&set.key);
        let mut elem = LowElem {
            key: kb.clone(),
            timeout_ms: e.timeout.map(ms),
            ..LowElem::default()
        };
        match &e.value {
            Some(MapValue::Verdict(v)) => elem.verdict = Some(verdict_code(v)),
            Some(MapValue::Data(d)) => {
                if let Some(MapData::Data(types)) = &set.data {
                    elem.data = Some(d.encode(types));
                }
            }
            None => {}
        }
        if rbtree {
            let last = e.end.as_ref().map_or(kb, |end| end.encode(&set.key));
            out.push(elem);
            if let Some(after) = increment_be(&last) {
                out.push(LowElem {
                    key: after,
                    flags: SET_ELEM_INTERVAL_END,
                    timeout_ms: e.timeout.map(ms),
                    ..LowElem::default()
                });
            }
        } else {
            elem.key_end = e.end.as_ref().map(|end| end.encode(&set.key));
            out.push(elem);
        }
    }
    out
}

/// The userdata stored with a rule: nft's comment TLV and our rule text.
pub(crate) fn rule_udata(object: &Object, rule: &Rule) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if let Some(c) = &rule.comment {
        out.push(UDATA_RULE_COMMENT);
        out.push(u8::try_from(c.len() + 1).unwrap_or(u8::MAX));
        out.extend(c.as_bytes());
        out.push(0);
    }
    let bare = Rule {
        comment: None,
        ..rule.clone()
    };
    let text = rule_text(&bare);
    for chunk in text.as_bytes().chunks(255) {
        out.push(UDATA_RULE_K8SNET);
        out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
        out.extend(chunk);
    }
    if out.len() > USERDATA_MAXLEN {
        return Err(Error::invalid(
            object.clone(),
            format!(
                "the rule's text and comment take {} bytes; the kernel keeps at most {USERDATA_MAXLEN} \
                 with a rule (move long element lists to a named set)",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Bytes of element attributes one message may carry (the kernel's nested
/// attribute length is 16 bits; this leaves room for headers).
pub(crate) const ELEMENT_MESSAGE_BYTES: usize = 48 * 1024;

/// An upper bound of one element's encoded size: attribute headers and
/// padding of every field it may have, plus its data.
#[cfg(test)]
pub(crate) fn elem_bytes(e: &LowElem) -> usize {
    128 + e.key.len()
        + e.key_end.as_ref().map_or(0, Vec::len)
        + e.data.as_ref().map_or(0, Vec::len)
        + e.verdict
            .as_ref()
            .and_then(|(_, c)| c.as_ref())
            .map_or(0, String::len)
}

/// An upper bound of the encoded size of one model element of `set` (two
/// kernel elements for a one-field interval), without building it.
fn elem_estimate(set: &Set, (_, e): &(Key, Element)) -> usize {
    let key = reg_len(&set.key);
    let value = match &e.value {
        Some(MapValue::Verdict(v)) => v.target().map_or(0, str::len),
        Some(MapValue::Data(_)) => match &set.data {
            Some(MapData::Data(types)) => reg_len(types),
            _ => 0,
        },
        None => 0,
    };
    if set.flags.interval && set.key.len() == 1 {
        2 * (128 + key) + value
    } else {
        128 + 2 * key + value
    }
}

/// Splits elements into runs whose kernel form fits one message.
fn chunk_elements<'a>(set: &Set, elements: &'a [(Key, Element)]) -> Vec<&'a [(Key, Element)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in elements.iter().enumerate() {
        let size = elem_estimate(set, e);
        if i > start && bytes + size > ELEMENT_MESSAGE_BYTES {
            out.push(&elements[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < elements.len() {
        out.push(&elements[start..]);
    }
    out
}

/// The most anonymous sets one batch may create. The kernel binds each
/// anonymous set by walking the whole pending transaction, so their cost is
/// quadratic: 1,000 took 0.13 s, 2,000 0.35 s and 4,000 1.38 s of kernel
/// time (measured on Linux 6.18). Larger contents belong in named sets.
pub const MAX_ANON_SETS_PER_BATCH: usize = 1024;

/// Lowers a batch to messages, each with the object it is about.
///
/// # Errors
///
/// [`Error::Invalid`] for element operations on a set the batch knows no
/// definition of, rules whose text does not fit the rule's userdata, and
/// batches with more than [`MAX_ANON_SETS_PER_BATCH`] anonymous sets.
pub(crate) fn lower(batch: &Batch) -> Result<Vec<(Object, Msg)>> {
    let out = lower_all(batch)?;
    let anon = out
        .iter()
        .filter(|(_, m)| matches!(m, Msg::NewSet(s) if s.flags & SET_ANONYMOUS != 0))
        .count();
    if anon > MAX_ANON_SETS_PER_BATCH {
        return Err(Error::invalid(
            Object::Transaction,
            format!(
                "{anon} anonymous sets in one batch (at most {MAX_ANON_SETS_PER_BATCH}): \
                 their kernel cost grows with the square of the transaction; use named sets or maps"
            ),
        ));
    }
    Ok(out)
}

fn lower_all(batch: &Batch) -> Result<Vec<(Object, Msg)>> {
    let mut out = Vec::with_capacity(batch.ops.len());
    let mut next_id = 0u32;
    for op in &batch.ops {
        match op {
            Op::AddTable => out.push((Object::Table(batch.table.clone()), Msg::NewTable)),
            Op::DeleteTable => out.push((Object::Table(batch.table.clone()), Msg::DelTable)),
            Op::AddChain { name, base } => {
                let hook = base.map(|b| {
                    let policy = match b.policy {
                        crate::model::Policy::Accept => 1,
                        crate::model::Policy::Drop => 0,
                    };
                    (b.hook.number(), b.priority, b.kind.name(), policy)
                });
                let msg = Msg::NewChain {
                    name: name.clone(),
                    hook,
                };
                out.push((Object::Chain(name.clone()), msg));
            }
            Op::DeleteChain { name } => {
                out.push((
                    Object::Chain(name.clone()),
                    Msg::DelChain { name: name.clone() },
                ));
            }
            Op::FlushChain { name } => {
                out.push((
                    Object::Chain(name.clone()),
                    Msg::FlushChain { name: name.clone() },
                ));
            }
            Op::AddSet { name, set } => {
                next_id += 1;
                let msg = Msg::NewSet(low_set(name, next_id, set, false));
                out.push((Object::Set(name.clone()), msg));
            }
            Op::DeleteSet { name } => {
                out.push((
                    Object::Set(name.clone()),
                    Msg::DelSet { name: name.clone() },
                ));
            }
            Op::AddElements { set, elements } | Op::DeleteElements { set, elements } => {
                let Some(spec) = batch.set_spec(set) else {
                    return Err(Error::invalid(
                        Object::Set(set.clone()),
                        "the batch does not know this set's definition (Batch::know_set)",
                    ));
                };
                // One message per chunk that surely fits the kernel's 16-bit
                // attribute length, whatever size of op the caller built.
                for chunk in chunk_elements(spec, elements) {
                    let object = Object::Elements {
                        set: set.clone(),
                        first: chunk
                            .first()
                            .map(|(k, _)| k.to_string())
                            .unwrap_or_default(),
                        count: chunk.len(),
                    };
                    let elems = low_elems(spec, chunk);
                    let msg = if matches!(op, Op::AddElements { .. }) {
                        Msg::NewElems {
                            set: set.clone(),
                            set_id: None,
                            elems,
                        }
                    } else {
                        Msg::DelElems {
                            set: set.clone(),
                            elems,
                        }
                    };
                    out.push((object, msg));
                }
            }
            Op::AddRule { chain, index, rule } => {
                let object = Object::Rule {
                    chain: chain.clone(),
                    index: *index,
                };
                let udata = rule_udata(&object, rule)?;
                let (pre, exprs) = lower_rule(batch, rule, &mut next_id);
                out.extend(pre.into_iter().map(|m| (object.clone(), m)));
                let msg = Msg::NewRule {
                    chain: chain.clone(),
                    exprs,
                    udata,
                };
                out.push((object, msg));
            }
        }
    }
    Ok(out)
}
