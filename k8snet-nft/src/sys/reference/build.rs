//! The reference builder (tests only): lowered plain data copied into
//! libnftnl objects and serialised by libnftnl, as the crate did before its
//! own encoder.

use std::ffi::CStr;
use std::io;

use nftnl_sys as nf;

use super::*;
use crate::lower::{LowElem, LowExpr, LowSet, Msg, uapi};
use crate::sys::Request;

impl Builder {
    /// Appends the batch begin (or end) message.
    pub(crate) fn batch_marker(
        &mut self,
        out: &mut Vec<u8>,
        seq: u32,
        begin: bool,
    ) -> io::Result<()> {
        self.emit(out, 64, |buf| {
            // SAFETY: buf is the zeroed scratch buffer with room for a header.
            Ok(unsafe {
                if begin {
                    nf::nftnl_batch_begin(buf, seq)
                } else {
                    nf::nftnl_batch_end(buf, seq)
                }
            })
        })
    }

    /// Appends one lowered message, with `NLM_F_ACK`, to `out`.
    pub(crate) fn build(
        &mut self,
        out: &mut Vec<u8>,
        family: u8,
        table: &str,
        msg: &Msg,
        seq: u32,
    ) -> io::Result<()> {
        let table_c = cstr(table)?;
        let fam = u16::from(family);
        let hdr = move |buf, ty: u16, flags: u16| {
            // SAFETY: buf is the zeroed scratch buffer (checked size).
            unsafe { nf::nftnl_nlmsg_build_hdr(buf, ty, fam, flags | F_ACK, seq) }
        };
        match msg {
            Msg::NewTable | Msg::DelTable => self.emit(out, 512, |buf| {
                let t = Owned::new(unsafe_alloc_table(), nf::nftnl_table_free)?;
                // SAFETY: t is a live table; strings are NUL-terminated and
                // copied by libnftnl.
                unsafe {
                    nf::nftnl_table_set_str(
                        t.as_ptr(),
                        nf::NFTNL_TABLE_NAME as u16,
                        table_c.as_ptr(),
                    );
                    nf::nftnl_table_set_u32(t.as_ptr(), nf::NFTNL_TABLE_FLAGS as u16, 0);
                }
                let (ty, fl) = if *msg == Msg::NewTable {
                    (NEWTABLE, F_CREATE)
                } else {
                    (DELTABLE, 0)
                };
                let nlh = hdr(buf, ty, fl);
                // SAFETY: nlh is the header just built in the scratch buffer.
                unsafe { nf::nftnl_table_nlmsg_build_payload(nlh, t.as_ptr()) };
                Ok(nlh)
            }),
            Msg::NewChain { name, hook } => self.emit(out, 1024, |buf| {
                let c = chain_obj(&table_c, name)?;
                if let Some((num, prio, kind, policy)) = hook {
                    let kind_c = cstr(kind)?;
                    // SAFETY: c is a live chain; libnftnl copies the string.
                    unsafe {
                        nf::nftnl_chain_set_u32(c.as_ptr(), nf::NFTNL_CHAIN_HOOKNUM as u16, *num);
                        nf::nftnl_chain_set_s32(c.as_ptr(), nf::NFTNL_CHAIN_PRIO as u16, *prio);
                        nf::nftnl_chain_set_str(
                            c.as_ptr(),
                            nf::NFTNL_CHAIN_TYPE as u16,
                            kind_c.as_ptr(),
                        );
                        nf::nftnl_chain_set_u32(c.as_ptr(), nf::NFTNL_CHAIN_POLICY as u16, *policy);
                    }
                }
                let nlh = hdr(buf, NEWCHAIN, F_CREATE);
                // SAFETY: header in the scratch buffer, live chain.
                unsafe { nf::nftnl_chain_nlmsg_build_payload(nlh, c.as_ptr()) };
                Ok(nlh)
            }),
            Msg::DelChain { name } => self.emit(out, 1024, |buf| {
                let c = chain_obj(&table_c, name)?;
                let nlh = hdr(buf, DELCHAIN, 0);
                // SAFETY: header in the scratch buffer, live chain.
                unsafe { nf::nftnl_chain_nlmsg_build_payload(nlh, c.as_ptr()) };
                Ok(nlh)
            }),
            Msg::FlushChain { name } => self.emit(out, 1024, |buf| {
                let r = rule_obj(&table_c, name)?;
                let nlh = hdr(buf, DELRULE, 0);
                // SAFETY: header in the scratch buffer, live rule.
                unsafe { nf::nftnl_rule_nlmsg_build_payload(nlh, r.as_ptr()) };
                Ok(nlh)
            }),
            Msg::NewSet(s) => self.emit(out, 2048 + s.udata.len(), |buf| {
                let set = set_obj(&table_c, s)?;
                let nlh = hdr(buf, NEWSET, F_CREATE);
                // SAFETY: header in the scratch buffer, live set.
                unsafe { nf::nftnl_set_nlmsg_build_payload(nlh, set.as_ptr()) };
                Ok(nlh)
            }),
            Msg::DelSet { name } => self.emit(out, 1024, |buf| {
                let set = set_named(&table_c, name, None)?;
                let nlh = hdr(buf, DELSET, 0);
                // SAFETY: header in the scratch buffer, live set.
                unsafe { nf::nftnl_set_nlmsg_build_payload(nlh, set.as_ptr()) };
                Ok(nlh)
            }),
            Msg::NewElems { set, elems, .. } | Msg::DelElems { set, elems } => {
                let estimate = 1024 + elems.iter().map(crate::lower::elem_bytes).sum::<usize>();
                let (add, set_id) = match msg {
                    Msg::NewElems { set_id, .. } => (true, *set_id),
                    _ => (false, None),
                };
                self.emit(out, estimate, |buf| {
                    let s = set_named(&table_c, set, set_id)?;
                    for e in elems {
                        add_elem(&s, e)?;
                    }
                    let (ty, fl) = if add {
                        (NEWSETELEM, F_CREATE)
                    } else {
                        (DELSETELEM, 0)
                    };
                    let nlh = hdr(buf, ty, fl);
                    // SAFETY: header in the scratch buffer, live set with elements.
                    unsafe { nf::nftnl_set_elems_nlmsg_build_payload(nlh, s.as_ptr()) };
                    Ok(nlh)
                })
            }
            Msg::NewRule {
                chain,
                exprs,
                udata,
            } => {
                let estimate = 1024 + udata.len() + exprs.iter().map(expr_size).sum::<usize>();
                self.emit(out, estimate, |buf| {
                    let r = rule_obj(&table_c, chain)?;
                    // SAFETY: r is live; libnftnl copies udata.len() bytes.
                    unsafe {
                        nf::nftnl_rule_set_data(
                            r.as_ptr(),
                            nf::NFTNL_RULE_USERDATA as u16,
                            udata.as_ptr().cast(),
                            len_u32(udata.len()),
                        )
                    };
                    for e in exprs {
                        let ex = expr_obj(e)?;
                        // SAFETY: the rule takes ownership of the expression.
                        unsafe { nf::nftnl_rule_add_expr(r.as_ptr(), ex.release()) };
                    }
                    let nlh = hdr(buf, NEWRULE, F_CREATE | F_APPEND);
                    // SAFETY: header in the scratch buffer, live rule.
                    unsafe { nf::nftnl_rule_nlmsg_build_payload(nlh, r.as_ptr()) };
                    Ok(nlh)
                })
            }
        }
    }

    /// A dump (or get) request for the table's objects.
    pub(crate) fn request(
        &mut self,
        what: Request<'_>,
        family: u8,
        table: &str,
        seq: u32,
    ) -> io::Result<Vec<u8>> {
        let table_c = cstr(table)?;
        let fam = u16::from(family);
        let mut out = Vec::new();
        self.emit(&mut out, 1024, |buf| {
            // SAFETY (all arms): buf is the zeroed scratch buffer; objects are
            // live for the call and their strings are copied by libnftnl.
            let nlh = |ty, flags| unsafe { nf::nftnl_nlmsg_build_hdr(buf, ty, fam, flags, seq) };
            match what {
                Request::Table => {
                    let t = Owned::new(unsafe_alloc_table(), nf::nftnl_table_free)?;
                    // SAFETY: t is live; the name is NUL-terminated and copied.
                    unsafe {
                        nf::nftnl_table_set_str(
                            t.as_ptr(),
                            nf::NFTNL_TABLE_NAME as u16,
                            table_c.as_ptr(),
                        )
                    };
                    let h = nlh(GETTABLE, 0);
                    // SAFETY: h is the header just built in the scratch buffer; t is live.
                    unsafe { nf::nftnl_table_nlmsg_build_payload(h, t.as_ptr()) };
                    Ok(h)
                }
                Request::Chains => Ok(nlh(GETCHAIN, F_DUMP)),
                Request::Sets => {
                    let s = set_named(&table_c, "", None)?;
                    // SAFETY: s is live; unsetting frees the name libnftnl owns.
                    unsafe { nf::nftnl_set_unset(s.as_ptr(), nf::NFTNL_SET_NAME as u16) };
                    let h = nlh(GETSET, F_DUMP);
                    // SAFETY: h is the header just built in the scratch buffer; s is live.
                    unsafe { nf::nftnl_set_nlmsg_build_payload(h, s.as_ptr()) };
                    Ok(h)
                }
                Request::Elements(set) => {
                    let s = set_named(&table_c, set, None)?;
                    let h = nlh(GETSETELEM, F_DUMP);
                    // SAFETY: h is the header just built in the scratch buffer; s is live.
                    unsafe { nf::nftnl_set_elems_nlmsg_build_payload(h, s.as_ptr()) };
                    Ok(h)
                }
                Request::Rules => {
                    // SAFETY: a plain allocation, wrapped (and so freed) at once.
                    let r = Owned::new(unsafe { nf::nftnl_rule_alloc() }, nf::nftnl_rule_free)?;
                    // SAFETY: r is live; the strings are NUL-terminated and copied.
                    unsafe {
                        nf::nftnl_rule_set_str(
                            r.as_ptr(),
                            nf::NFTNL_RULE_TABLE as u16,
                            table_c.as_ptr(),
                        )
                    };
                    let h = nlh(GETRULE, F_DUMP);
                    // SAFETY: h is the header just built in the scratch buffer; r is live.
                    unsafe { nf::nftnl_rule_nlmsg_build_payload(h, r.as_ptr()) };
                    Ok(h)
                }
            }
        })?;
        Ok(out)
    }
}

fn unsafe_alloc_table() -> *mut nf::nftnl_table {
    // SAFETY: a plain allocation; the caller wraps it in Owned.
    unsafe { nf::nftnl_table_alloc() }
}

fn chain_obj(table: &CStr, name: &str) -> io::Result<Owned<nf::nftnl_chain>> {
    let name = cstr(name)?;
    // SAFETY: fresh allocation wrapped at once; strings are copied.
    let c = Owned::new(unsafe { nf::nftnl_chain_alloc() }, nf::nftnl_chain_free)?;
    // SAFETY: c is live; the strings are NUL-terminated and copied.
    unsafe {
        nf::nftnl_chain_set_str(c.as_ptr(), nf::NFTNL_CHAIN_TABLE as u16, table.as_ptr());
        nf::nftnl_chain_set_str(c.as_ptr(), nf::NFTNL_CHAIN_NAME as u16, name.as_ptr());
    }
    Ok(c)
}

fn rule_obj(table: &CStr, chain: &str) -> io::Result<Owned<nf::nftnl_rule>> {
    let chain = cstr(chain)?;
    // SAFETY: fresh allocation wrapped at once; strings are copied.
    let r = Owned::new(unsafe { nf::nftnl_rule_alloc() }, nf::nftnl_rule_free)?;
    // SAFETY: r is live; the strings are NUL-terminated and copied.
    unsafe {
        nf::nftnl_rule_set_str(r.as_ptr(), nf::NFTNL_RULE_TABLE as u16, table.as_ptr());
        nf::nftnl_rule_set_str(r.as_ptr(), nf::NFTNL_RULE_CHAIN as u16, chain.as_ptr());
    }
    Ok(r)
}

fn set_named(table: &CStr, name: &str, id: Option<u32>) -> io::Result<Owned<nf::nftnl_set>> {
    let name = cstr(name)?;
    // SAFETY: fresh allocation wrapped at once; strings are copied.
    let s = Owned::new(unsafe { nf::nftnl_set_alloc() }, nf::nftnl_set_free)?;
    // SAFETY: s is live; the strings are NUL-terminated and copied.
    unsafe {
        nf::nftnl_set_set_str(s.as_ptr(), nf::NFTNL_SET_TABLE as u16, table.as_ptr());
        nf::nftnl_set_set_str(s.as_ptr(), nf::NFTNL_SET_NAME as u16, name.as_ptr());
        if let Some(id) = id {
            nf::nftnl_set_set_u32(s.as_ptr(), nf::NFTNL_SET_ID as u16, id);
        }
    }
    Ok(s)
}

fn set_obj(table: &CStr, l: &LowSet) -> io::Result<Owned<nf::nftnl_set>> {
    let s = set_named(table, &l.name, Some(l.id))?;
    let p = s.as_ptr();
    // SAFETY: p is live; data pointers are valid for the lengths given and
    // copied by libnftnl; DESC_CONCAT takes at most 16 bytes (checked).
    unsafe {
        nf::nftnl_set_set_u32(p, nf::NFTNL_SET_FLAGS as u16, l.flags);
        nf::nftnl_set_set_u32(p, nf::NFTNL_SET_KEY_TYPE as u16, l.key_type);
        nf::nftnl_set_set_u32(p, nf::NFTNL_SET_KEY_LEN as u16, l.key_len);
        if let Some((ty, len)) = l.data {
            nf::nftnl_set_set_u32(p, nf::NFTNL_SET_DATA_TYPE as u16, ty);
            if let Some(len) = len {
                nf::nftnl_set_set_u32(p, nf::NFTNL_SET_DATA_LEN as u16, len);
            }
        }
        if let Some(t) = l.timeout_ms {
            nf::nftnl_set_set_u64(p, nf::NFTNL_SET_TIMEOUT as u16, t);
        }
        if let Some(size) = l.size {
            nf::nftnl_set_set_u32(p, nf::NFTNL_SET_DESC_SIZE as u16, size);
        }
        if !l.concat.is_empty() && l.concat.len() < 16 {
            nf::nftnl_set_set_data(
                p,
                nf::NFTNL_SET_DESC_CONCAT as u16,
                l.concat.as_ptr().cast(),
                len_u32(l.concat.len()),
            );
        }
        if !l.udata.is_empty() {
            nf::nftnl_set_set_data(
                p,
                nf::NFTNL_SET_USERDATA as u16,
                l.udata.as_ptr().cast(),
                len_u32(l.udata.len()),
            );
        }
    }
    Ok(s)
}

fn add_elem(s: &Owned<nf::nftnl_set>, e: &LowElem) -> io::Result<()> {
    let chain = e
        .verdict
        .as_ref()
        .and_then(|(_, c)| c.as_deref())
        .map(cstr)
        .transpose()?;
    // SAFETY: fresh allocation; every data pointer is valid for its length
    // and copied by libnftnl; the set takes ownership of the element.
    let el = Owned::new(unsafe { nf::nftnl_set_elem_alloc() }, elem_free)?;
    let p = el.as_ptr();
    let set = |attr: u32, b: &[u8]| unsafe {
        nf::nftnl_set_elem_set(p, attr as u16, b.as_ptr().cast(), len_u32(b.len()));
    };
    set(nf::NFTNL_SET_ELEM_KEY, &e.key);
    if let Some(k) = &e.key_end {
        set(nf::NFTNL_SET_ELEM_KEY_END, k);
    }
    if let Some(d) = &e.data {
        set(nf::NFTNL_SET_ELEM_DATA, d);
    }
    // SAFETY: p is the live element; the string is copied; the set
    // takes ownership of the element (released from its guard).
    unsafe {
        if e.flags != 0 {
            nf::nftnl_set_elem_set_u32(p, nf::NFTNL_SET_ELEM_FLAGS as u16, e.flags);
        }
        if let Some((code, _)) = &e.verdict {
            nf::nftnl_set_elem_set_u32(p, nf::NFTNL_SET_ELEM_VERDICT as u16, *code as u32);
        }
        if let Some(c) = &chain {
            nf::nftnl_set_elem_set_str(p, nf::NFTNL_SET_ELEM_CHAIN as u16, c.as_ptr());
        }
        if let Some(t) = e.timeout_ms {
            nf::nftnl_set_elem_set_u64(p, nf::NFTNL_SET_ELEM_TIMEOUT as u16, t);
        }
        nf::nftnl_set_elem_add(s.as_ptr(), el.release());
    }
    Ok(())
}

/// `nftnl_set_elem_free` takes a mutable pointer; adapt it to `Owned`.
unsafe extern "C" fn elem_free(e: *const nf::nftnl_set_elem) {
    // SAFETY: called once by Owned::drop with the pointer it was given.
    unsafe { nf::nftnl_set_elem_free(e.cast_mut()) }
}

fn expr_size(e: &LowExpr) -> usize {
    let data = match e {
        LowExpr::Cmp { data, .. } | LowExpr::Immediate { data, .. } => data.len(),
        LowExpr::Range { from, to, .. } => from.len() + to.len(),
        LowExpr::Bitwise { mask, xor, .. } => mask.len() + xor.len(),
        LowExpr::Verdict { chain, .. } => chain.as_ref().map_or(0, String::len),
        LowExpr::Lookup { set, .. } | LowExpr::Dynset { set, .. } => set.len(),
        LowExpr::Log { prefix } => prefix.as_ref().map_or(0, String::len),
        _ => 0,
    };
    160 + data
}

fn expr_obj(e: &LowExpr) -> io::Result<Owned<nf::nftnl_expr>> {
    let name = match e {
        LowExpr::Payload { .. } => c"payload",
        LowExpr::Meta { .. } | LowExpr::MetaSet { .. } => c"meta",
        LowExpr::Ct { .. } | LowExpr::CtSet { .. } => c"ct",
        LowExpr::Fib { .. } => c"fib",
        LowExpr::Cmp { .. } => c"cmp",
        LowExpr::Range { .. } => c"range",
        LowExpr::Bitwise { .. } => c"bitwise",
        LowExpr::Immediate { .. } | LowExpr::Verdict { .. } => c"immediate",
        LowExpr::Lookup { .. } => c"lookup",
        LowExpr::Dynset { .. } => c"dynset",
        LowExpr::Hash { .. } => c"hash",
        LowExpr::Numgen { .. } => c"numgen",
        LowExpr::Nat { .. } => c"nat",
        LowExpr::Masq { .. } => c"masq",
        LowExpr::Reject { .. } => c"reject",
        LowExpr::Counter => c"counter",
        LowExpr::Log { .. } => c"log",
    };
    // SAFETY: name is a static C string; the result is wrapped at once.
    let x = Owned::new(
        unsafe { nf::nftnl_expr_alloc(name.as_ptr()) },
        nf::nftnl_expr_free,
    )?;
    let p = x.as_ptr();
    // SAFETY (closures and block below): p is a live expression of the kind
    // the attributes belong to; data and strings are copied by libnftnl.
    let u32_ = |a: u32, v: u32| unsafe { nf::nftnl_expr_set_u32(p, a as u16, v) };
    let bytes = |a: u32, b: &[u8]| unsafe {
        nf::nftnl_expr_set(p, a as u16, b.as_ptr().cast(), len_u32(b.len()));
    };
    let string = |a: u32, s: &str| -> io::Result<()> {
        let c = cstr(s)?;
        // SAFETY: p is live; c is NUL-terminated and copied by libnftnl.
        unsafe { nf::nftnl_expr_set_str(p, a as u16, c.as_ptr()) };
        Ok(())
    };
    match e {
        LowExpr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            u32_(nf::NFTNL_EXPR_PAYLOAD_BASE, *base);
            u32_(nf::NFTNL_EXPR_PAYLOAD_OFFSET, *offset);
            u32_(nf::NFTNL_EXPR_PAYLOAD_LEN, *len);
            u32_(nf::NFTNL_EXPR_PAYLOAD_DREG, *dreg);
        }
        LowExpr::Meta { key, dreg } => {
            u32_(nf::NFTNL_EXPR_META_KEY, *key);
            u32_(nf::NFTNL_EXPR_META_DREG, *dreg);
        }
        LowExpr::MetaSet { key, sreg } => {
            u32_(nf::NFTNL_EXPR_META_KEY, *key);
            u32_(nf::NFTNL_EXPR_META_SREG, *sreg);
        }
        LowExpr::Ct { key, dreg } => {
            u32_(nf::NFTNL_EXPR_CT_KEY, *key);
            u32_(nf::NFTNL_EXPR_CT_DREG, *dreg);
        }
        LowExpr::CtSet { key, sreg } => {
            u32_(nf::NFTNL_EXPR_CT_KEY, *key);
            u32_(nf::NFTNL_EXPR_CT_SREG, *sreg);
        }
        LowExpr::Fib {
            flags,
            result,
            dreg,
        } => {
            u32_(nf::NFTNL_EXPR_FIB_FLAGS, *flags);
            u32_(nf::NFTNL_EXPR_FIB_RESULT, *result);
            u32_(nf::NFTNL_EXPR_FIB_DREG, *dreg);
        }
        LowExpr::Cmp { sreg, op, data } => {
            u32_(nf::NFTNL_EXPR_CMP_SREG, *sreg);
            u32_(nf::NFTNL_EXPR_CMP_OP, *op);
            bytes(nf::NFTNL_EXPR_CMP_DATA, data);
        }
        LowExpr::Range { sreg, op, from, to } => {
            u32_(nf::NFTNL_EXPR_RANGE_SREG, *sreg);
            u32_(nf::NFTNL_EXPR_RANGE_OP, *op);
            bytes(nf::NFTNL_EXPR_RANGE_FROM_DATA, from);
            bytes(nf::NFTNL_EXPR_RANGE_TO_DATA, to);
        }
        LowExpr::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => {
            u32_(nf::NFTNL_EXPR_BITWISE_SREG, *sreg);
            u32_(nf::NFTNL_EXPR_BITWISE_DREG, *dreg);
            u32_(nf::NFTNL_EXPR_BITWISE_LEN, len_u32(mask.len()));
            bytes(nf::NFTNL_EXPR_BITWISE_MASK, mask);
            bytes(nf::NFTNL_EXPR_BITWISE_XOR, xor);
        }
        LowExpr::Immediate { dreg, data } => {
            u32_(nf::NFTNL_EXPR_IMM_DREG, *dreg);
            bytes(nf::NFTNL_EXPR_IMM_DATA, data);
        }
        LowExpr::Verdict { code, chain } => {
            u32_(nf::NFTNL_EXPR_IMM_DREG, uapi::REG_VERDICT);
            u32_(nf::NFTNL_EXPR_IMM_VERDICT, *code as u32);
            if let Some(c) = chain {
                string(nf::NFTNL_EXPR_IMM_CHAIN, c)?;
            }
        }
        LowExpr::Lookup {
            sreg,
            dreg,
            set,
            set_id,
            invert,
        } => {
            u32_(nf::NFTNL_EXPR_LOOKUP_SREG, *sreg);
            if let Some(d) = dreg {
                u32_(nf::NFTNL_EXPR_LOOKUP_DREG, *d);
            }
            string(nf::NFTNL_EXPR_LOOKUP_SET, set)?;
            if let Some(id) = set_id {
                u32_(nf::NFTNL_EXPR_LOOKUP_SET_ID, *id);
            }
            if *invert {
                u32_(nf::NFTNL_EXPR_LOOKUP_FLAGS, 1);
            }
        }
        LowExpr::Dynset {
            op,
            sreg_key,
            set,
            timeout_ms,
        } => {
            u32_(nf::NFTNL_EXPR_DYNSET_OP, *op);
            u32_(nf::NFTNL_EXPR_DYNSET_SREG_KEY, *sreg_key);
            string(nf::NFTNL_EXPR_DYNSET_SET_NAME, set)?;
            if let Some(t) = timeout_ms {
                // SAFETY: as above.
                unsafe { nf::nftnl_expr_set_u64(p, nf::NFTNL_EXPR_DYNSET_TIMEOUT as u16, *t) };
            }
        }
        LowExpr::Hash {
            sreg,
            len,
            modulus,
            seed,
            offset,
            dreg,
        } => {
            u32_(nf::NFTNL_EXPR_HASH_SREG, *sreg);
            u32_(nf::NFTNL_EXPR_HASH_LEN, *len);
            u32_(nf::NFTNL_EXPR_HASH_MODULUS, *modulus);
            u32_(nf::NFTNL_EXPR_HASH_SEED, *seed);
            u32_(nf::NFTNL_EXPR_HASH_OFFSET, *offset);
            u32_(nf::NFTNL_EXPR_HASH_DREG, *dreg);
            u32_(nf::NFTNL_EXPR_HASH_TYPE, 0);
        }
        LowExpr::Numgen {
            dreg,
            modulus,
            random,
            offset,
        } => {
            u32_(nf::NFTNL_EXPR_NG_DREG, *dreg);
            u32_(nf::NFTNL_EXPR_NG_MODULUS, *modulus);
            u32_(nf::NFTNL_EXPR_NG_TYPE, u32::from(*random));
            u32_(nf::NFTNL_EXPR_NG_OFFSET, *offset);
        }
        LowExpr::Nat {
            kind,
            family,
            reg_addr,
            reg_proto,
        } => {
            u32_(nf::NFTNL_EXPR_NAT_TYPE, *kind);
            u32_(nf::NFTNL_EXPR_NAT_FAMILY, *family);
            u32_(nf::NFTNL_EXPR_NAT_REG_ADDR_MIN, *reg_addr);
            if let Some(r) = reg_proto {
                u32_(nf::NFTNL_EXPR_NAT_REG_PROTO_MIN, *r);
            }
        }
        LowExpr::Masq { flags } => {
            if *flags != 0 {
                u32_(nf::NFTNL_EXPR_MASQ_FLAGS, *flags);
            }
        }
        LowExpr::Reject { kind, code } => {
            u32_(nf::NFTNL_EXPR_REJECT_TYPE, *kind);
            // SAFETY: as above.
            unsafe { nf::nftnl_expr_set_u8(p, nf::NFTNL_EXPR_REJECT_CODE as u16, *code) };
        }
        LowExpr::Counter => {}
        LowExpr::Log { prefix } => {
            if let Some(pfx) = prefix {
                string(nf::NFTNL_EXPR_LOG_PREFIX, pfx)?;
            }
        }
    }
    Ok(x)
}
