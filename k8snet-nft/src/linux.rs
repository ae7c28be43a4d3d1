//! The Linux backend: applies a [`Batch`] in one nftables transaction over
//! netlink, maps a refusal back to the object at fault, and reads a table
//! back into the model.

use std::collections::BTreeSet;
use std::io;

use crate::diff::{Batch, Op, diff};
use crate::error::{Error, Object, Result};
use crate::lower::{LowElem, Msg, lower};
use crate::model::{Family, Table};
use crate::raise;
use crate::sys::{self, Request, Socket};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLM_F_DUMP_INTR: u16 = 0x10;
const RECV_BUFFER: usize = 1 << 20;

/// What an [`Nft::apply`] sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Netlink messages (objects) in the transaction.
    pub messages: usize,
    /// Bytes sent.
    pub bytes: usize,
    /// Set elements added or deleted.
    pub elements: usize,
}

/// A handle to nftables in one network namespace: the namespace of the
/// thread that called [`Nft::new`] (the netlink socket stays there, whatever
/// thread uses it later).
///
/// It only touches tables whose names start with [`crate::OWNED_PREFIX`].
pub struct Nft {
    sock: Socket,
    buf: Vec<u8>,
    seq: u32,
}

/// The netlink socket's descriptor: for a caller that must keep it open
/// elsewhere (e.g. hand its last close to another process) or watch it.
impl std::os::fd::AsFd for Nft {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// One netlink message header, read from bytes.
struct Header {
    len: usize,
    ty: u16,
    flags: u16,
    seq: u32,
}

fn header(b: &[u8]) -> Option<Header> {
    let u32_at = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
    };
    let u16_at = |i: usize| b.get(i..i + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]));
    Some(Header {
        len: usize::try_from(u32_at(0)?).ok()?,
        ty: u16_at(4)?,
        flags: u16_at(6)?,
        seq: u32_at(8)?,
    })
}

/// The messages in one datagram.
fn messages(mut b: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    std::iter::from_fn(move || {
        let h = header(b)?;
        if h.len < 16 || h.len > b.len() {
            return None;
        }
        let (msg, rest) = b.split_at(h.len);
        b = rest
            .get(h.len.next_multiple_of(4) - h.len..)
            .unwrap_or_default();
        Some((h, msg))
    })
}

/// The errno of an error message (0 for an ack) and the extended-ack text.
fn error_of(h: &Header, msg: &[u8]) -> (i32, Option<String>) {
    let errno = msg
        .get(16..20)
        .map_or(0, |s| i32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
    let mut text = None;
    if h.flags & NLM_F_ACK_TLVS != 0 {
        // Capped acks: the error code, then the request's 16-byte header.
        let mut tlvs = msg.get(36..).unwrap_or_default();
        while tlvs.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([tlvs[0], tlvs[1]]));
            let ty = u16::from_ne_bytes([tlvs[2], tlvs[3]]);
            if len < 4 || len > tlvs.len() {
                break;
            }
            if ty == 1 {
                let s = &tlvs[4..len];
                let s = s.split(|c| *c == 0).next().unwrap_or_default();
                text = Some(String::from_utf8_lossy(s).into_owned());
            }
            tlvs = tlvs.get(len.next_multiple_of(4)..).unwrap_or_default();
        }
    }
    (-errno, text)
}

fn check_owned(table: &str) -> Result<()> {
    if table.starts_with(crate::OWNED_PREFIX) {
        Ok(())
    } else {
        Err(Error::NotOwned(table.to_owned()))
    }
}

fn io_err(what: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        what: what.to_owned(),
        source,
    }
}

impl Nft {
    /// Opens a netlink socket in the calling thread's network namespace.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be opened (no CAP_NET_ADMIN is
    /// only noticed when applying).
    pub fn new() -> Result<Self> {
        let sock = Socket::open().map_err(io_err("opening a netfilter netlink socket"))?;
        Ok(Self {
            sock,
            buf: vec![0; RECV_BUFFER],
            seq: 1,
        })
    }

    fn next_seqs(&mut self, n: usize) -> u32 {
        let first = self.seq;
        let n = u32::try_from(n).unwrap_or(u32::MAX / 2);
        self.seq = self.seq.wrapping_add(n).max(1);
        first
    }

    /// Applies the batch as one transaction: either every operation takes
    /// effect or none does.
    ///
    /// # Errors
    ///
    /// [`Error::Kernel`] naming the first object the kernel refused (the
    /// kernel then holds exactly what it held before); [`Error::Invalid`]
    /// for batches that cannot be encoded; [`Error::NotOwned`]; [`Error::Io`]
    /// when the socket fails (if the kernel's answers were lost, e.g.
    /// `ENOBUFS`, whether the transaction committed is unknown: read the
    /// table back).
    pub fn apply(&mut self, batch: &Batch) -> Result<ApplyStats> {
        check_owned(&batch.table)?;
        let msgs = lower(batch)?;
        if msgs.is_empty() {
            return Ok(ApplyStats::default());
        }
        let family = batch.family.nfproto();
        let base = self.next_seqs(msgs.len() + 2);
        let mut bytes = Vec::new();
        let build = io_err("building the netlink batch");
        let mut built = || -> io::Result<()> {
            sys::batch_marker(&mut bytes, base, true)?;
            for (i, (_, m)) in msgs.iter().enumerate() {
                let seq = base
                    .wrapping_add(1)
                    .wrapping_add(u32::try_from(i).unwrap_or(0));
                sys::build(&mut bytes, family, &batch.table, m, seq)?;
            }
            let end = base
                .wrapping_add(1)
                .wrapping_add(u32::try_from(msgs.len()).unwrap_or(0));
            sys::batch_marker(&mut bytes, end, false)
        };
        built().map_err(build)?;
        self.sock
            .set_buffers(bytes.len() + 65536, (msgs.len() + 64) * 2048)
            .map_err(io_err("sizing the netlink socket buffers"))?;
        self.sock
            .send(&bytes)
            .map_err(io_err("sending the batch"))?;

        // The kernel handles the batch inside the send: every answer is
        // queued by now.
        let mut acks = 0;
        let mut errors: Vec<(u32, i32, Option<String>)> = Vec::new();
        while let Some(n) = self
            .sock
            .recv(&mut self.buf, false)
            .map_err(io_err("reading the kernel's answers"))?
        {
            for (h, msg) in messages(&self.buf[..n]) {
                if h.ty != NLMSG_ERROR {
                    continue;
                }
                match error_of(&h, msg) {
                    (0, _) => acks += 1,
                    (errno, text) => errors.push((h.seq, errno, text)),
                }
            }
        }
        let stats = ApplyStats {
            messages: msgs.len(),
            bytes: bytes.len(),
            elements: batch.element_count(),
        };
        errors.sort_by_key(|(seq, ..)| seq.wrapping_sub(base));
        let Some((seq, errno, text)) = errors.first().cloned() else {
            if acks < msgs.len() {
                return Err(Error::Io {
                    what: format!("the kernel acknowledged {acks} of {} messages", msgs.len()),
                    source: io::Error::other("missing acknowledgements"),
                });
            }
            return Ok(stats);
        };
        let index = seq.wrapping_sub(base).wrapping_sub(1) as usize;
        let (object, msg) = match msgs.get(index) {
            Some((o, m)) => (o.clone(), Some(m)),
            None => (Object::Transaction, None),
        };
        let mut hint = self.hint(batch, &object, msg, errno);
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            hint = Some(match hint {
                Some(h) => format!("{h}; kernel says: {t}"),
                None => format!("kernel says: {t}"),
            });
        }
        Err(Error::Kernel {
            object,
            source: io::Error::from_raw_os_error(errno),
            hint,
            others: errors.len() - 1,
        })
    }

    /// Explains a refusal from what the failing message references and
    /// what exists: the kernel's chains and sets (read after the abort) plus
    /// those the batch creates before it.
    fn hint(
        &mut self,
        batch: &Batch,
        object: &Object,
        msg: Option<&Msg>,
        errno: i32,
    ) -> Option<String> {
        match (errno, msg?) {
            (libc::EBUSY, Msg::DelChain { .. } | Msg::DelSet { .. }) => {
                return Some("it is still referenced".into());
            }
            (libc::EEXIST, Msg::NewElems { .. }) => {
                return Some("an element exists with another value".into());
            }
            (libc::ENOENT, _) => {}
            _ => return None,
        }
        let (mut chains, mut sets) = self.names(batch.family, &batch.table).unwrap_or_default();
        // What the failing message needs: (is a jump target, chain) and sets.
        let mut need_chains: Vec<(bool, String)> = Vec::new();
        let mut need_sets: Vec<String> = Vec::new();
        for op in &batch.ops {
            match op {
                Op::AddChain { name, .. } => {
                    chains.insert(name.clone());
                }
                Op::AddSet { name, .. } => {
                    sets.insert(name.clone());
                }
                Op::AddRule { chain, index, rule }
                    if *object
                        == (Object::Rule {
                            chain: chain.clone(),
                            index: *index,
                        }) =>
                {
                    need_chains.push((false, chain.clone()));
                    for e in &rule.exprs {
                        need_chains
                            .extend(e.chain_refs().into_iter().map(|c| (true, c.to_owned())));
                        need_sets.extend(e.set_refs().into_iter().map(str::to_owned));
                    }
                    break;
                }
                _ => {}
            }
        }
        if let Some(Msg::NewElems { set, elems, .. } | Msg::DelElems { set, elems }) = msg {
            need_sets.push(set.clone());
            let targets = elems.iter().filter_map(|e| e.verdict.as_ref()?.1.clone());
            need_chains.extend(targets.map(|c| (true, c)));
        }
        let mut missing: Vec<String> = need_chains
            .into_iter()
            .filter(|(_, c)| !chains.contains(c))
            .map(|(jump, c)| {
                let what = if jump { "jump target" } else { "chain" };
                format!("{what} {c:?} does not exist")
            })
            .collect();
        missing.extend(
            need_sets
                .into_iter()
                .filter(|s| !sets.contains(s))
                .map(|s| format!("set {s:?} does not exist")),
        );
        missing.dedup();
        (!missing.is_empty()).then(|| missing.join(", "))
    }

    /// Names of the chains and sets the kernel holds in the table.
    fn names(
        &mut self,
        family: Family,
        table: &str,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
        let mut chains = BTreeSet::new();
        self.dump(Request::Chains, family, table, |m| {
            if let Some(c) = sys::parse_chain(m).filter(|c| c.table == table) {
                chains.insert(c.name);
            }
        })?;
        let mut sets = BTreeSet::new();
        self.dump(Request::Sets, family, table, |m| {
            if let Some(s) = sys::parse_set(m).filter(|s| s.table == table) {
                sets.insert(s.name);
            }
        })?;
        Ok((chains, sets))
    }

    /// Sends a request and hands every answer message to `each`, until the
    /// dump ends. `Ok(false)` if the kernel answered ENOENT.
    fn dump(
        &mut self,
        what: Request<'_>,
        family: Family,
        table: &str,
        mut each: impl FnMut(&[u8]),
    ) -> Result<bool> {
        let seq = self.next_seqs(1);
        let req = sys::request(what, family.nfproto(), table, seq)
            .map_err(io_err("building a list request"))?;
        self.sock
            .send(&req)
            .map_err(io_err("sending a list request"))?;
        let is_get = matches!(what, Request::Table);
        loop {
            let n = self
                .sock
                .recv(&mut self.buf, true)
                .map_err(io_err("reading a list"))?
                .unwrap_or(0);
            if n == 0 {
                return Ok(true);
            }
            for (h, msg) in messages(&self.buf[..n]) {
                if h.seq != seq {
                    continue;
                }
                match h.ty {
                    NLMSG_DONE => return Ok(true),
                    NLMSG_ERROR => {
                        return match error_of(&h, msg).0 {
                            0 => Ok(true),
                            libc::ENOENT => Ok(false),
                            errno => Err(Error::Io {
                                what: format!("listing table {table}"),
                                source: io::Error::from_raw_os_error(errno),
                            }),
                        };
                    }
                    _ => {
                        if h.flags & NLM_F_DUMP_INTR != 0 {
                            return Err(Error::Io {
                                what: format!("listing table {table}"),
                                source: io::Error::other(
                                    "the ruleset changed during the dump; retry",
                                ),
                            });
                        }
                        each(msg);
                        if is_get {
                            return Ok(true);
                        }
                    }
                }
            }
        }
    }

    /// Reads the table back from the kernel: its chains, named sets and maps
    /// with their elements, and rules (from the text stored with each). `None`
    /// if the table does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Readback`] for objects this crate did not write (a rule
    /// without our text, a set type it cannot name); [`Error::NotOwned`];
    /// [`Error::Io`].
    pub fn read_table(&mut self, family: Family, name: &str) -> Result<Option<Table>> {
        check_owned(name)?;
        if !self.dump(Request::Table, family, name, |_| {})? {
            return Ok(None);
        }
        let mut table = Table::new(family, name);
        let mut raw_chains = Vec::new();
        self.dump(Request::Chains, family, name, |m| {
            raw_chains.extend(sys::parse_chain(m).filter(|c| c.table == name));
        })?;
        for rc in &raw_chains {
            table.chains.insert(rc.name.clone(), raise::chain(rc)?);
        }
        let mut raw_sets = Vec::new();
        self.dump(Request::Sets, family, name, |m| {
            raw_sets.extend(sys::parse_set(m).filter(|s| s.table == name));
        })?;
        for rs in &raw_sets {
            if rs.flags & crate::lower::uapi::SET_ANONYMOUS != 0 {
                continue;
            }
            let mut elems: Vec<LowElem> = Vec::new();
            self.dump(Request::Elements(&rs.name), family, name, |m| {
                let _ = sys::parse_elems(m, &mut elems);
            })?;
            if let Some(set) = raise::set(rs, &elems)? {
                table.sets.insert(rs.name.clone(), set);
            }
        }
        let mut raw_rules = Vec::new();
        self.dump(Request::Rules, family, name, |m| {
            raw_rules.extend(sys::parse_rule(m).filter(|r| r.table == name));
        })?;
        for rr in &raw_rules {
            let Some(chain) = table.chains.get_mut(&rr.chain) else {
                continue;
            };
            let rule = raise::rule(rr, chain.rules.len() + 1)?;
            chain.rules.push(rule);
        }
        Ok(Some(table))
    }

    /// Makes the kernel hold `desired`: reads the table back, diffs, and
    /// applies the difference in one transaction (nothing when equal). This
    /// is also how a restarted component recovers without flushing state.
    ///
    /// # Errors
    ///
    /// As [`Nft::read_table`], [`crate::diff`] and [`Nft::apply`].
    pub fn sync(&mut self, desired: &Table) -> Result<ApplyStats> {
        let current = self.read_table(desired.family, &desired.name)?;
        let batch = diff(current.as_ref(), desired)?;
        self.apply(&batch)
    }
}
