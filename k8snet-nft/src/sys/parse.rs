//! Parsing the kernel's dump messages into plain data, in safe Rust. As
//! libnftnl does, a message whose attributes we read is refused (`None`)
//! when one of them has the wrong size for its type.

use super::nla::{attrs, be_u32, be_u64, message_attrs, string};
use crate::lower::LowElem;
use crate::raise::{RawChain, RawRule, RawSet};

/// Walks the attributes of `b`, handing each to `f`; `None` as soon as
/// `f` refuses one.
fn each<'a>(b: &'a [u8], mut f: impl FnMut(u16, &'a [u8]) -> Option<()>) -> Option<()> {
    for (ty, p) in attrs(b) {
        f(ty, p)?;
    }
    Some(())
}

/// A chain message.
pub(crate) fn parse_chain(msg: &[u8]) -> Option<RawChain> {
    let (mut table, mut name, mut kind) = (None, None, None);
    let (mut hooknum, mut prio, mut policy) = (None, None, None);
    each(message_attrs(msg)?, |ty, p| {
        match ty {
            1 => table = Some(string(p)?),
            3 => name = Some(string(p)?),
            4 => each(p, |ty, p| {
                match ty {
                    1 => hooknum = Some(be_u32(p)?),
                    2 => prio = Some(be_u32(p)?.cast_signed()),
                    _ => {}
                }
                Some(())
            })?,
            5 => policy = Some(be_u32(p)?),
            7 => kind = Some(string(p)?),
            _ => {}
        }
        Some(())
    })?;
    Some(RawChain {
        table: table.unwrap_or_default(),
        name: name.unwrap_or_default(),
        hook: hooknum.map(|n| {
            (
                n,
                prio.unwrap_or(0),
                kind.unwrap_or_default(),
                policy.unwrap_or(0),
            )
        }),
    })
}

/// A set message.
pub(crate) fn parse_set(msg: &[u8]) -> Option<RawSet> {
    let mut s = RawSet {
        table: String::new(),
        name: String::new(),
        flags: 0,
        key_type: 0,
        key_len: 0,
        data_type: None,
        data_len: 0,
        timeout_ms: None,
        size: None,
    };
    each(message_attrs(msg)?, |ty, p| {
        match ty {
            1 => s.table = string(p)?,
            2 => s.name = string(p)?,
            3 => s.flags = be_u32(p)?,
            4 => s.key_type = be_u32(p)?,
            5 => s.key_len = be_u32(p)?,
            6 => s.data_type = Some(be_u32(p)?),
            7 => s.data_len = be_u32(p)?,
            9 => each(p, |ty, p| {
                if ty == 1 {
                    s.size = Some(be_u32(p)?);
                }
                Some(())
            })?,
            11 => s.timeout_ms = Some(be_u64(p)?),
            _ => {}
        }
        Some(())
    })?;
    Some(s)
}

/// The bytes of an `NFTA_DATA_VALUE` in a data nest, or the code and
/// chain of an `NFTA_DATA_VERDICT`.
enum Data {
    Value(Vec<u8>),
    Verdict(i32, Option<String>),
}

const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NF_QUEUE: i32 = 3;
const NFT_CONTINUE: i32 = -1;
const NFT_BREAK: i32 = -2;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const NFT_RETURN: i32 = -5;

fn data(nest: &[u8]) -> Option<Data> {
    let mut out = None;
    each(nest, |ty, p| {
        match ty {
            // libnftnl holds 1 to 64 bytes (`NFT_DATA_VALUE_MAXLEN`).
            1 if (1..=64).contains(&p.len()) => out = Some(Data::Value(p.to_vec())),
            1 => return None,
            2 => {
                let (mut code, mut chain) = (None, None);
                each(p, |ty, p| {
                    match ty {
                        1 => code = Some(be_u32(p)?.cast_signed()),
                        2 => chain = Some(string(p)?),
                        _ => {}
                    }
                    Some(())
                })?;
                let code = code?;
                // libnftnl refuses codes it does not know, and a jump or
                // goto without its chain.
                match code {
                    NF_DROP | NF_ACCEPT | NF_QUEUE | NFT_CONTINUE | NFT_BREAK | NFT_RETURN => {}
                    NFT_JUMP | NFT_GOTO if chain.is_some() => {}
                    _ => return None,
                }
                out = Some(Data::Verdict(code, chain));
            }
            _ => {}
        }
        Some(())
    })?;
    out
}

fn value(nest: &[u8]) -> Option<Vec<u8>> {
    match data(nest)? {
        Data::Value(v) => Some(v),
        Data::Verdict(..) => None,
    }
}

fn elem(nest: &[u8]) -> Option<LowElem> {
    let mut e = LowElem::default();
    each(nest, |ty, p| {
        match ty {
            1 => e.key = value(p)?,
            2 => match data(p)? {
                Data::Value(v) => e.data = Some(v),
                Data::Verdict(code, chain) => e.verdict = Some((code, chain)),
            },
            3 => e.flags = be_u32(p)?,
            4 => e.timeout_ms = Some(be_u64(p)?),
            10 => e.key_end = Some(value(p)?),
            _ => {}
        }
        Some(())
    })?;
    if e.verdict.is_some() {
        e.data = None;
    }
    Some(e)
}

/// The elements of one set-element dump message, appended to `out`
/// (nothing if the message cannot be read).
pub(crate) fn parse_elems(msg: &[u8], out: &mut Vec<LowElem>) -> Option<()> {
    let mut got = Vec::new();
    each(message_attrs(msg)?, |ty, p| {
        match ty {
            1 | 2 => drop(string(p)?),
            4 => drop(be_u32(p)?),
            3 => each(p, |ty, p| {
                // Every element of a list is an `NFTA_LIST_ELEM`.
                if ty != 1 {
                    return None;
                }
                got.push(elem(p)?);
                Some(())
            })?,
            _ => {}
        }
        Some(())
    })?;
    out.append(&mut got);
    Some(())
}

/// A rule message.
pub(crate) fn parse_rule(msg: &[u8]) -> Option<RawRule> {
    let mut r = RawRule {
        table: String::new(),
        chain: String::new(),
        handle: 0,
        udata: Vec::new(),
    };
    each(message_attrs(msg)?, |ty, p| {
        match ty {
            1 => r.table = string(p)?,
            2 => r.chain = string(p)?,
            3 => r.handle = be_u64(p)?,
            7 => r.udata = p.to_vec(),
            _ => {}
        }
        Some(())
    })?;
    Some(r)
}
