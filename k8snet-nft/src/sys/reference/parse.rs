//! The reference parser (tests only): the kernel's dump messages parsed
//! through libnftnl into plain data.

use std::ffi::CStr;

use nftnl_sys as nf;

use super::Owned;
use crate::lower::LowElem;
use crate::raise::{RawChain, RawRule, RawSet};

fn header_ptr(msg: &[u8]) -> Option<*const libc::nlmsghdr> {
    let p = msg.as_ptr().cast::<libc::nlmsghdr>();
    (msg.len() >= size_of::<libc::nlmsghdr>() && p.is_aligned()).then_some(p)
}

fn get_str(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libnftnl returns NUL-terminated strings it owns, valid while
    // the object lives (the caller's object outlives this call).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A chain message.
pub(crate) fn parse_chain(msg: &[u8]) -> Option<RawChain> {
    let h = header_ptr(msg)?;
    // SAFETY: as in parse_table; getters are only called for attributes
    // that are set.
    unsafe {
        let c = Owned::new(nf::nftnl_chain_alloc(), nf::nftnl_chain_free).ok()?;
        let p = c.as_ptr();
        if nf::nftnl_chain_nlmsg_parse(h, p) < 0 {
            return None;
        }
        let is = |a: u32| nf::nftnl_chain_is_set(p, a as u16);
        let hook = is(nf::NFTNL_CHAIN_HOOKNUM).then(|| {
            (
                nf::nftnl_chain_get_u32(p, nf::NFTNL_CHAIN_HOOKNUM as u16),
                nf::nftnl_chain_get_s32(p, nf::NFTNL_CHAIN_PRIO as u16),
                get_str(nf::nftnl_chain_get_str(p, nf::NFTNL_CHAIN_TYPE as u16)),
                nf::nftnl_chain_get_u32(p, nf::NFTNL_CHAIN_POLICY as u16),
            )
        });
        Some(RawChain {
            table: get_str(nf::nftnl_chain_get_str(p, nf::NFTNL_CHAIN_TABLE as u16)),
            name: get_str(nf::nftnl_chain_get_str(p, nf::NFTNL_CHAIN_NAME as u16)),
            hook,
        })
    }
}

/// A set message.
pub(crate) fn parse_set(msg: &[u8]) -> Option<RawSet> {
    let h = header_ptr(msg)?;
    // SAFETY: as in parse_chain.
    unsafe {
        let s = Owned::new(nf::nftnl_set_alloc(), nf::nftnl_set_free).ok()?;
        let p = s.as_ptr();
        if nf::nftnl_set_nlmsg_parse(h, p) < 0 {
            return None;
        }
        let is = |a: u32| nf::nftnl_set_is_set(p, a as u16);
        let u32_ = |a: u32| nf::nftnl_set_get_u32(p, a as u16);
        Some(RawSet {
            table: get_str(nf::nftnl_set_get_str(p, nf::NFTNL_SET_TABLE as u16)),
            name: get_str(nf::nftnl_set_get_str(p, nf::NFTNL_SET_NAME as u16)),
            flags: u32_(nf::NFTNL_SET_FLAGS),
            key_type: u32_(nf::NFTNL_SET_KEY_TYPE),
            key_len: u32_(nf::NFTNL_SET_KEY_LEN),
            data_type: is(nf::NFTNL_SET_DATA_TYPE).then(|| u32_(nf::NFTNL_SET_DATA_TYPE)),
            data_len: if is(nf::NFTNL_SET_DATA_LEN) {
                u32_(nf::NFTNL_SET_DATA_LEN)
            } else {
                0
            },
            timeout_ms: is(nf::NFTNL_SET_TIMEOUT)
                .then(|| nf::nftnl_set_get_u64(p, nf::NFTNL_SET_TIMEOUT as u16)),
            size: is(nf::NFTNL_SET_DESC_SIZE).then(|| u32_(nf::NFTNL_SET_DESC_SIZE)),
        })
    }
}

fn elem_bytes(e: *mut nf::nftnl_set_elem, attr: u32) -> Option<Vec<u8>> {
    // SAFETY: e is a live element of a live set; the returned pointer is
    // valid for len bytes while the element lives, and copied at once.
    unsafe {
        if !nf::nftnl_set_elem_is_set(e, attr as u16) {
            return None;
        }
        let mut len = 0u32;
        let d = nf::nftnl_set_elem_get(e, attr as u16, &mut len);
        if d.is_null() {
            return None;
        }
        Some(std::slice::from_raw_parts(d.cast::<u8>(), len as usize).to_vec())
    }
}

/// The elements of one set-element dump message, appended to `out`.
pub(crate) fn parse_elems(msg: &[u8], out: &mut Vec<LowElem>) -> Option<()> {
    let h = header_ptr(msg)?;
    // SAFETY: as in parse_chain; the iterator is destroyed before the set.
    unsafe {
        let s = Owned::new(nf::nftnl_set_alloc(), nf::nftnl_set_free).ok()?;
        if nf::nftnl_set_elems_nlmsg_parse(h, s.as_ptr()) < 0 {
            return None;
        }
        let it = nf::nftnl_set_elems_iter_create(s.as_ptr());
        if it.is_null() {
            return None;
        }
        loop {
            let e = nf::nftnl_set_elems_iter_next(it);
            if e.is_null() {
                break;
            }
            let is = |a: u32| nf::nftnl_set_elem_is_set(e, a as u16);
            let verdict = is(nf::NFTNL_SET_ELEM_VERDICT).then(|| {
                let code = nf::nftnl_set_elem_get_u32(e, nf::NFTNL_SET_ELEM_VERDICT as u16) as i32;
                let chain = is(nf::NFTNL_SET_ELEM_CHAIN).then(|| {
                    get_str(nf::nftnl_set_elem_get_str(
                        e,
                        nf::NFTNL_SET_ELEM_CHAIN as u16,
                    ))
                });
                (code, chain)
            });
            out.push(LowElem {
                key: elem_bytes(e, nf::NFTNL_SET_ELEM_KEY).unwrap_or_default(),
                key_end: elem_bytes(e, nf::NFTNL_SET_ELEM_KEY_END),
                flags: if is(nf::NFTNL_SET_ELEM_FLAGS) {
                    nf::nftnl_set_elem_get_u32(e, nf::NFTNL_SET_ELEM_FLAGS as u16)
                } else {
                    0
                },
                data: if verdict.is_some() {
                    None
                } else {
                    elem_bytes(e, nf::NFTNL_SET_ELEM_DATA)
                },
                verdict,
                timeout_ms: is(nf::NFTNL_SET_ELEM_TIMEOUT)
                    .then(|| nf::nftnl_set_elem_get_u64(e, nf::NFTNL_SET_ELEM_TIMEOUT as u16)),
            });
        }
        nf::nftnl_set_elems_iter_destroy(it);
    }
    Some(())
}

/// A rule message.
pub(crate) fn parse_rule(msg: &[u8]) -> Option<RawRule> {
    let h = header_ptr(msg)?;
    // SAFETY: as in parse_chain; the userdata is copied before the rule is
    // freed.
    unsafe {
        let r = Owned::new(nf::nftnl_rule_alloc(), nf::nftnl_rule_free).ok()?;
        let p = r.as_ptr();
        if nf::nftnl_rule_nlmsg_parse(h, p) < 0 {
            return None;
        }
        let mut udata = Vec::new();
        if nf::nftnl_rule_is_set(p, nf::NFTNL_RULE_USERDATA as u16) {
            let mut len = 0u32;
            let d = nf::nftnl_rule_get_data(p, nf::NFTNL_RULE_USERDATA as u16, &mut len);
            if !d.is_null() {
                udata = std::slice::from_raw_parts(d.cast::<u8>(), len as usize).to_vec();
            }
        }
        Some(RawRule {
            table: get_str(nf::nftnl_rule_get_str(p, nf::NFTNL_RULE_TABLE as u16)),
            chain: get_str(nf::nftnl_rule_get_str(p, nf::NFTNL_RULE_CHAIN as u16)),
            handle: nf::nftnl_rule_get_u64(p, nf::NFTNL_RULE_HANDLE as u16),
            udata,
        })
    }
}
