//! Building nf_tables messages from lowered plain data, in safe Rust: the
//! attributes, their order and their nests are those libnftnl 1.2 writes
//! (the `reference` tests check the bytes against it).

use std::io;

use super::nla::{Nest, Writer};
use crate::lower::{LowElem, LowExpr, LowSet, Msg, uapi};

/// `NFNL_SUBSYS_NFTABLES`: the high byte of every nf_tables message type.
const SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` and `_END`.
const BATCH_BEGIN: u16 = 0x10;
const BATCH_END: u16 = 0x11;
/// `nfnetlink` message types (`NFT_MSG_*`).
const NEWTABLE: u16 = 0;
const GETTABLE: u16 = 1;
const DELTABLE: u16 = 2;
const NEWCHAIN: u16 = 3;
const GETCHAIN: u16 = 4;
const DELCHAIN: u16 = 5;
const NEWRULE: u16 = 6;
const GETRULE: u16 = 7;
const DELRULE: u16 = 8;
const NEWSET: u16 = 9;
const GETSET: u16 = 10;
const DELSET: u16 = 11;
const NEWSETELEM: u16 = 12;
const GETSETELEM: u16 = 13;
const DELSETELEM: u16 = 14;
const F_ACK: u16 = 0x4;
const F_DUMP: u16 = 0x300;
const F_CREATE: u16 = 0x400;
const F_APPEND: u16 = 0x800;

/// Attribute numbers of `linux/netfilter/nf_tables.h`.
mod a {
    pub(super) const TABLE_NAME: u16 = 1;
    pub(super) const TABLE_FLAGS: u16 = 2;

    pub(super) const CHAIN_TABLE: u16 = 1;
    pub(super) const CHAIN_NAME: u16 = 3;
    pub(super) const CHAIN_HOOK: u16 = 4;
    pub(super) const CHAIN_POLICY: u16 = 5;
    pub(super) const CHAIN_TYPE: u16 = 7;
    pub(super) const HOOK_HOOKNUM: u16 = 1;
    pub(super) const HOOK_PRIORITY: u16 = 2;

    pub(super) const RULE_TABLE: u16 = 1;
    pub(super) const RULE_CHAIN: u16 = 2;
    pub(super) const RULE_EXPRESSIONS: u16 = 4;
    pub(super) const RULE_USERDATA: u16 = 7;

    pub(super) const SET_TABLE: u16 = 1;
    pub(super) const SET_NAME: u16 = 2;
    pub(super) const SET_FLAGS: u16 = 3;
    pub(super) const SET_KEY_TYPE: u16 = 4;
    pub(super) const SET_KEY_LEN: u16 = 5;
    pub(super) const SET_DATA_TYPE: u16 = 6;
    pub(super) const SET_DATA_LEN: u16 = 7;
    pub(super) const SET_DESC: u16 = 9;
    pub(super) const SET_ID: u16 = 10;
    pub(super) const SET_TIMEOUT: u16 = 11;
    pub(super) const SET_USERDATA: u16 = 13;
    pub(super) const SET_DESC_SIZE: u16 = 1;
    pub(super) const SET_DESC_CONCAT: u16 = 2;
    pub(super) const SET_FIELD_LEN: u16 = 1;

    pub(super) const ELEM_KEY: u16 = 1;
    pub(super) const ELEM_DATA: u16 = 2;
    pub(super) const ELEM_FLAGS: u16 = 3;
    pub(super) const ELEM_TIMEOUT: u16 = 4;
    pub(super) const ELEM_KEY_END: u16 = 10;
    pub(super) const ELEM_LIST_TABLE: u16 = 1;
    pub(super) const ELEM_LIST_SET: u16 = 2;
    pub(super) const ELEM_LIST_ELEMENTS: u16 = 3;
    pub(super) const ELEM_LIST_SET_ID: u16 = 4;

    pub(super) const DATA_VALUE: u16 = 1;
    pub(super) const DATA_VERDICT: u16 = 2;
    pub(super) const VERDICT_CODE: u16 = 1;
    pub(super) const VERDICT_CHAIN: u16 = 2;
    pub(super) const LIST_ELEM: u16 = 1;
    pub(super) const EXPR_NAME: u16 = 1;
    pub(super) const EXPR_DATA: u16 = 2;
}

/// Attribute numbers of each expression (`NFTA_<EXPR>_*`).
mod x {
    pub(super) const PAYLOAD_DREG: u16 = 1;
    pub(super) const PAYLOAD_BASE: u16 = 2;
    pub(super) const PAYLOAD_OFFSET: u16 = 3;
    pub(super) const PAYLOAD_LEN: u16 = 4;
    pub(super) const META_DREG: u16 = 1;
    pub(super) const META_KEY: u16 = 2;
    pub(super) const META_SREG: u16 = 3;
    pub(super) const CT_DREG: u16 = 1;
    pub(super) const CT_KEY: u16 = 2;
    pub(super) const CT_SREG: u16 = 4;
    pub(super) const FIB_DREG: u16 = 1;
    pub(super) const FIB_RESULT: u16 = 2;
    pub(super) const FIB_FLAGS: u16 = 3;
    pub(super) const CMP_SREG: u16 = 1;
    pub(super) const CMP_OP: u16 = 2;
    pub(super) const CMP_DATA: u16 = 3;
    pub(super) const RANGE_SREG: u16 = 1;
    pub(super) const RANGE_OP: u16 = 2;
    pub(super) const RANGE_FROM: u16 = 3;
    pub(super) const RANGE_TO: u16 = 4;
    pub(super) const BITWISE_SREG: u16 = 1;
    pub(super) const BITWISE_DREG: u16 = 2;
    pub(super) const BITWISE_LEN: u16 = 3;
    pub(super) const BITWISE_MASK: u16 = 4;
    pub(super) const BITWISE_XOR: u16 = 5;
    pub(super) const IMM_DREG: u16 = 1;
    pub(super) const IMM_DATA: u16 = 2;
    pub(super) const LOOKUP_SET: u16 = 1;
    pub(super) const LOOKUP_SREG: u16 = 2;
    pub(super) const LOOKUP_DREG: u16 = 3;
    pub(super) const LOOKUP_SET_ID: u16 = 4;
    pub(super) const LOOKUP_FLAGS: u16 = 5;
    pub(super) const DYNSET_SET_NAME: u16 = 1;
    pub(super) const DYNSET_OP: u16 = 3;
    pub(super) const DYNSET_SREG_KEY: u16 = 4;
    pub(super) const DYNSET_TIMEOUT: u16 = 6;
    pub(super) const HASH_SREG: u16 = 1;
    pub(super) const HASH_DREG: u16 = 2;
    pub(super) const HASH_LEN: u16 = 3;
    pub(super) const HASH_MODULUS: u16 = 4;
    pub(super) const HASH_SEED: u16 = 5;
    pub(super) const HASH_OFFSET: u16 = 6;
    pub(super) const HASH_TYPE: u16 = 7;
    pub(super) const NG_DREG: u16 = 1;
    pub(super) const NG_MODULUS: u16 = 2;
    pub(super) const NG_TYPE: u16 = 3;
    pub(super) const NG_OFFSET: u16 = 4;
    pub(super) const NAT_TYPE: u16 = 1;
    pub(super) const NAT_FAMILY: u16 = 2;
    pub(super) const NAT_REG_ADDR_MIN: u16 = 3;
    pub(super) const NAT_REG_PROTO_MIN: u16 = 5;
    pub(super) const MASQ_FLAGS: u16 = 1;
    pub(super) const REJECT_TYPE: u16 = 1;
    pub(super) const REJECT_ICMP_CODE: u16 = 2;
    pub(super) const LOG_PREFIX: u16 = 2;
}

/// What to ask the kernel for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Request<'a> {
    Table,
    Chains,
    Sets,
    Elements(&'a str),
    Rules,
}

/// Runs `f` on a message appended to `out`; on error `out` is left as it
/// was.
fn append(
    out: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    f: impl FnOnce(&mut Writer<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let before = out.len();
    let mut w = Writer::begin(out, ty, flags, seq, family, res_id);
    let done = f(&mut w).and_then(|()| w.finish());
    if done.is_err() {
        out.truncate(before);
    }
    done
}

/// Appends the batch begin (or end) message.
pub(crate) fn batch_marker(out: &mut Vec<u8>, seq: u32, begin: bool) -> io::Result<()> {
    let ty = if begin { BATCH_BEGIN } else { BATCH_END };
    // AF_UNSPEC, and the subsystem the batch is for as the resource id.
    append(out, ty, 0, seq, 0, SUBSYS_NFTABLES, |_| Ok(()))
}

fn nft_type(ty: u16) -> u16 {
    (SUBSYS_NFTABLES << 8) | ty
}

/// Appends one lowered message, with `NLM_F_ACK`, to `out`.
pub(crate) fn build(
    out: &mut Vec<u8>,
    family: u8,
    table: &str,
    msg: &Msg,
    seq: u32,
) -> io::Result<()> {
    let mut put = |ty: u16, flags: u16, f: &dyn Fn(&mut Writer<'_>) -> io::Result<()>| {
        append(out, nft_type(ty), flags | F_ACK, seq, family, 0, f)
    };
    match msg {
        Msg::NewTable => put(NEWTABLE, F_CREATE, &|w| table_attrs(w, table, true)),
        Msg::DelTable => put(DELTABLE, 0, &|w| table_attrs(w, table, true)),
        Msg::NewChain { name, hook } => put(NEWCHAIN, F_CREATE, &|w| {
            w.put_strz(a::CHAIN_TABLE, table)?;
            w.put_strz(a::CHAIN_NAME, name)?;
            if let Some((num, prio, kind, policy)) = hook {
                let n = w.nest(a::CHAIN_HOOK);
                w.put_u32(a::HOOK_HOOKNUM, *num)?;
                w.put_u32(a::HOOK_PRIORITY, prio.cast_unsigned())?;
                w.end_nest(n)?;
                w.put_u32(a::CHAIN_POLICY, *policy)?;
                w.put_strz(a::CHAIN_TYPE, kind)?;
            }
            Ok(())
        }),
        Msg::DelChain { name } => put(DELCHAIN, 0, &|w| {
            w.put_strz(a::CHAIN_TABLE, table)?;
            w.put_strz(a::CHAIN_NAME, name)
        }),
        Msg::FlushChain { name } => put(DELRULE, 0, &|w| {
            w.put_strz(a::RULE_TABLE, table)?;
            w.put_strz(a::RULE_CHAIN, name)
        }),
        Msg::NewSet(s) => put(NEWSET, F_CREATE, &|w| set_attrs(w, table, s)),
        Msg::DelSet { name } => put(DELSET, 0, &|w| {
            w.put_strz(a::SET_TABLE, table)?;
            w.put_strz(a::SET_NAME, name)
        }),
        Msg::NewElems { set, set_id, elems } => put(NEWSETELEM, F_CREATE, &|w| {
            elems_attrs(w, table, set, *set_id, elems)
        }),
        Msg::DelElems { set, elems } => {
            put(DELSETELEM, 0, &|w| elems_attrs(w, table, set, None, elems))
        }
        Msg::NewRule {
            chain,
            exprs,
            udata,
        } => put(NEWRULE, F_CREATE | F_APPEND, &|w| {
            w.put_strz(a::RULE_TABLE, table)?;
            w.put_strz(a::RULE_CHAIN, chain)?;
            w.put(a::RULE_USERDATA, udata)?;
            if !exprs.is_empty() {
                let list = w.nest(a::RULE_EXPRESSIONS);
                for e in exprs {
                    let elem = w.nest(a::LIST_ELEM);
                    expr(w, e)?;
                    w.end_nest(elem)?;
                }
                w.end_nest(list)?;
            }
            Ok(())
        }),
    }
}

/// A dump (or get) request for the table's objects.
pub(crate) fn request(what: Request<'_>, family: u8, table: &str, seq: u32) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut put = |ty: u16, flags: u16, f: &dyn Fn(&mut Writer<'_>) -> io::Result<()>| {
        append(&mut out, nft_type(ty), flags, seq, family, 0, f)
    };
    match what {
        Request::Table => put(GETTABLE, 0, &|w| table_attrs(w, table, false)),
        Request::Chains => put(GETCHAIN, F_DUMP, &|_| Ok(())),
        Request::Sets => put(GETSET, F_DUMP, &|w| w.put_strz(a::SET_TABLE, table)),
        Request::Elements(set) => put(GETSETELEM, F_DUMP, &|w| {
            elems_attrs(w, table, set, None, &[])
        }),
        Request::Rules => put(GETRULE, F_DUMP, &|w| w.put_strz(a::RULE_TABLE, table)),
    }?;
    Ok(out)
}

fn table_attrs(w: &mut Writer<'_>, table: &str, flags: bool) -> io::Result<()> {
    w.put_strz(a::TABLE_NAME, table)?;
    if flags {
        w.put_u32(a::TABLE_FLAGS, 0)?;
    }
    Ok(())
}

fn set_attrs(w: &mut Writer<'_>, table: &str, s: &LowSet) -> io::Result<()> {
    w.put_strz(a::SET_TABLE, table)?;
    w.put_strz(a::SET_NAME, &s.name)?;
    w.put_u32(a::SET_FLAGS, s.flags)?;
    w.put_u32(a::SET_KEY_TYPE, s.key_type)?;
    w.put_u32(a::SET_KEY_LEN, s.key_len)?;
    if let Some((ty, len)) = s.data {
        w.put_u32(a::SET_DATA_TYPE, ty)?;
        if let Some(len) = len {
            w.put_u32(a::SET_DATA_LEN, len)?;
        }
    }
    w.put_u32(a::SET_ID, s.id)?;
    // libnftnl keeps at most 16 field lengths, and counts them up to the
    // first zero after the first.
    let concat = if !s.concat.is_empty() && s.concat.len() < 16 {
        let n = 1 + s.concat[1..].iter().take_while(|l| **l != 0).count();
        Some(&s.concat[..n])
    } else {
        None
    };
    if s.size.is_some() || concat.is_some() {
        let desc = w.nest(a::SET_DESC);
        if let Some(size) = s.size {
            w.put_u32(a::SET_DESC_SIZE, size)?;
        }
        if let Some(fields) = concat {
            let list = w.nest(a::SET_DESC_CONCAT);
            for len in fields {
                let f = w.nest(a::LIST_ELEM);
                w.put_u32(a::SET_FIELD_LEN, u32::from(*len))?;
                w.end_nest(f)?;
            }
            w.end_nest(list)?;
        }
        w.end_nest(desc)?;
    }
    if let Some(t) = s.timeout_ms {
        w.put_u64(a::SET_TIMEOUT, t)?;
    }
    if !s.udata.is_empty() {
        w.put(a::SET_USERDATA, &s.udata)?;
    }
    Ok(())
}

fn elems_attrs(
    w: &mut Writer<'_>,
    table: &str,
    set: &str,
    set_id: Option<u32>,
    elems: &[LowElem],
) -> io::Result<()> {
    w.put_strz(a::ELEM_LIST_SET, set)?;
    if let Some(id) = set_id {
        w.put_u32(a::ELEM_LIST_SET_ID, id)?;
    }
    w.put_strz(a::ELEM_LIST_TABLE, table)?;
    if elems.is_empty() {
        return Ok(());
    }
    let list = w.nest(a::ELEM_LIST_ELEMENTS);
    // libnftnl numbers the element nests 1, 2, 3...
    for (i, e) in elems.iter().enumerate() {
        let ty = u16::try_from(i + 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many elements"))?;
        let n = w.nest(ty);
        elem(w, e)?;
        w.end_nest(n)?;
    }
    w.end_nest(list)
}

fn value(w: &mut Writer<'_>, ty: u16, data: &[u8]) -> io::Result<()> {
    let n = w.nest(ty);
    w.put(a::DATA_VALUE, data)?;
    w.end_nest(n)
}

fn verdict(w: &mut Writer<'_>, ty: u16, code: i32, chain: Option<&str>) -> io::Result<()> {
    let outer = w.nest(ty);
    let inner = w.nest(a::DATA_VERDICT);
    w.put_u32(a::VERDICT_CODE, code.cast_unsigned())?;
    if let Some(c) = chain {
        w.put_strz(a::VERDICT_CHAIN, c)?;
    }
    w.end_nest(inner)?;
    w.end_nest(outer)
}

fn elem(w: &mut Writer<'_>, e: &LowElem) -> io::Result<()> {
    if e.flags != 0 {
        w.put_u32(a::ELEM_FLAGS, e.flags)?;
    }
    if let Some(t) = e.timeout_ms {
        w.put_u64(a::ELEM_TIMEOUT, t)?;
    }
    value(w, a::ELEM_KEY, &e.key)?;
    if let Some(k) = &e.key_end {
        value(w, a::ELEM_KEY_END, k)?;
    }
    if let Some((code, chain)) = &e.verdict {
        verdict(w, a::ELEM_DATA, *code, chain.as_deref())?;
    } else if let Some(d) = &e.data {
        value(w, a::ELEM_DATA, d)?;
    }
    Ok(())
}

fn expr_name(e: &LowExpr) -> &'static str {
    match e {
        LowExpr::Payload { .. } => "payload",
        LowExpr::Meta { .. } | LowExpr::MetaSet { .. } => "meta",
        LowExpr::Ct { .. } | LowExpr::CtSet { .. } => "ct",
        LowExpr::Fib { .. } => "fib",
        LowExpr::Cmp { .. } => "cmp",
        LowExpr::Range { .. } => "range",
        LowExpr::Bitwise { .. } => "bitwise",
        LowExpr::Immediate { .. } | LowExpr::Verdict { .. } => "immediate",
        LowExpr::Lookup { .. } => "lookup",
        LowExpr::Dynset { .. } => "dynset",
        LowExpr::Hash { .. } => "hash",
        LowExpr::Numgen { .. } => "numgen",
        LowExpr::Nat { .. } => "nat",
        LowExpr::Masq { .. } => "masq",
        LowExpr::Reject { .. } => "reject",
        LowExpr::Counter => "counter",
        LowExpr::Log { .. } => "log",
    }
}

/// One expression: its name, then its attributes in a data nest.
fn expr(w: &mut Writer<'_>, e: &LowExpr) -> io::Result<()> {
    w.put_strz(a::EXPR_NAME, expr_name(e))?;
    let data: Nest = w.nest(a::EXPR_DATA);
    match e {
        LowExpr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            w.put_u32(x::PAYLOAD_DREG, *dreg)?;
            w.put_u32(x::PAYLOAD_BASE, *base)?;
            w.put_u32(x::PAYLOAD_OFFSET, *offset)?;
            w.put_u32(x::PAYLOAD_LEN, *len)?;
        }
        LowExpr::Meta { key, dreg } => {
            w.put_u32(x::META_KEY, *key)?;
            w.put_u32(x::META_DREG, *dreg)?;
        }
        LowExpr::MetaSet { key, sreg } => {
            w.put_u32(x::META_KEY, *key)?;
            w.put_u32(x::META_SREG, *sreg)?;
        }
        LowExpr::Ct { key, dreg } => {
            w.put_u32(x::CT_KEY, *key)?;
            w.put_u32(x::CT_DREG, *dreg)?;
        }
        LowExpr::CtSet { key, sreg } => {
            w.put_u32(x::CT_KEY, *key)?;
            w.put_u32(x::CT_SREG, *sreg)?;
        }
        LowExpr::Fib {
            flags,
            result,
            dreg,
        } => {
            w.put_u32(x::FIB_FLAGS, *flags)?;
            w.put_u32(x::FIB_RESULT, *result)?;
            w.put_u32(x::FIB_DREG, *dreg)?;
        }
        LowExpr::Cmp { sreg, op, data } => {
            w.put_u32(x::CMP_SREG, *sreg)?;
            w.put_u32(x::CMP_OP, *op)?;
            value(w, x::CMP_DATA, data)?;
        }
        LowExpr::Range { sreg, op, from, to } => {
            w.put_u32(x::RANGE_SREG, *sreg)?;
            w.put_u32(x::RANGE_OP, *op)?;
            value(w, x::RANGE_FROM, from)?;
            value(w, x::RANGE_TO, to)?;
        }
        LowExpr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => {
            w.put_u32(x::BITWISE_SREG, *sreg)?;
            w.put_u32(x::BITWISE_DREG, *dreg)?;
            w.put_u32(x::BITWISE_LEN, len_u32(mask.len())?)?;
            value(w, x::BITWISE_MASK, mask)?;
            value(w, x::BITWISE_XOR, xor)?;
        }
        LowExpr::Immediate { dreg, data } => {
            w.put_u32(x::IMM_DREG, *dreg)?;
            value(w, x::IMM_DATA, data)?;
        }
        LowExpr::Verdict { code, chain } => {
            w.put_u32(x::IMM_DREG, uapi::REG_VERDICT)?;
            verdict(w, x::IMM_DATA, *code, chain.as_deref())?;
        }
        LowExpr::Lookup {
            sreg,
            dreg,
            set,
            set_id,
            invert,
        } => {
            w.put_u32(x::LOOKUP_SREG, *sreg)?;
            if let Some(d) = dreg {
                w.put_u32(x::LOOKUP_DREG, *d)?;
            }
            w.put_strz(x::LOOKUP_SET, set)?;
            if let Some(id) = set_id {
                w.put_u32(x::LOOKUP_SET_ID, *id)?;
            }
            if *invert {
                w.put_u32(x::LOOKUP_FLAGS, 1)?;
            }
        }
        LowExpr::Dynset {
            op,
            sreg_key,
            set,
            timeout_ms,
        } => {
            w.put_u32(x::DYNSET_SREG_KEY, *sreg_key)?;
            w.put_u32(x::DYNSET_OP, *op)?;
            if let Some(t) = timeout_ms {
                w.put_u64(x::DYNSET_TIMEOUT, *t)?;
            }
            w.put_strz(x::DYNSET_SET_NAME, set)?;
        }
        LowExpr::Hash {
            sreg,
            len,
            modulus,
            seed,
            offset,
            dreg,
        } => {
            w.put_u32(x::HASH_SREG, *sreg)?;
            w.put_u32(x::HASH_DREG, *dreg)?;
            w.put_u32(x::HASH_LEN, *len)?;
            w.put_u32(x::HASH_MODULUS, *modulus)?;
            w.put_u32(x::HASH_SEED, *seed)?;
            w.put_u32(x::HASH_OFFSET, *offset)?;
            w.put_u32(x::HASH_TYPE, 0)?;
        }
        LowExpr::Numgen {
            dreg,
            modulus,
            random,
            offset,
        } => {
            w.put_u32(x::NG_DREG, *dreg)?;
            w.put_u32(x::NG_MODULUS, *modulus)?;
            w.put_u32(x::NG_TYPE, u32::from(*random))?;
            w.put_u32(x::NG_OFFSET, *offset)?;
        }
        LowExpr::Nat {
            kind,
            family,
            reg_addr,
            reg_proto,
        } => {
            w.put_u32(x::NAT_TYPE, *kind)?;
            w.put_u32(x::NAT_FAMILY, *family)?;
            w.put_u32(x::NAT_REG_ADDR_MIN, *reg_addr)?;
            if let Some(r) = reg_proto {
                w.put_u32(x::NAT_REG_PROTO_MIN, *r)?;
            }
        }
        LowExpr::Masq { flags } => {
            if *flags != 0 {
                w.put_u32(x::MASQ_FLAGS, *flags)?;
            }
        }
        LowExpr::Reject { kind, code } => {
            w.put_u32(x::REJECT_TYPE, *kind)?;
            w.put_u8(x::REJECT_ICMP_CODE, *code)?;
        }
        LowExpr::Counter => {}
        LowExpr::Log { prefix } => {
            if let Some(p) = prefix {
                w.put_strz(x::LOG_PREFIX, p)?;
            }
        }
    }
    w.end_nest(data)
}

fn len_u32(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "data too long"))
}
