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
use crate::sys::{self, Request, Socket, Truncated};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLM_F_DUMP_INTR: u16 = 0x10;
const RECV_BUFFER: usize = 1 << 20;
/// How often a list interrupted by a concurrent change (`NLM_F_DUMP_INTR`)
/// is started again before that is an error.
const DUMP_ATTEMPTS: usize = 4;

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
#[derive(Debug)]
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

/// The messages in one datagram, in order.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidData`] when the bytes do not split into whole
/// messages (a datagram cut short is refused, never read in part).
fn messages(b: &[u8]) -> io::Result<Vec<(Header, &[u8])>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let rest = &b[at..];
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "malformed netlink datagram: {why} at byte {at} of {}",
                    b.len()
                ),
            )
        };
        let h = header(rest).ok_or_else(|| bad("a partial message header"))?;
        if h.len < 16 {
            return Err(bad("a message shorter than its header"));
        }
        if h.len > rest.len() {
            return Err(bad("a message longer than what is left"));
        }
        let msg = &rest[..h.len];
        out.push((h, msg));
        // Messages start 4-byte aligned; the padding after the last one
        // may be left out.
        at = (at + msg.len().next_multiple_of(4)).min(b.len());
    }
    Ok(out)
}

/// The answers to one transaction, whose messages (the batch markers
/// included) carry the sequence numbers `base .. base + span`.
#[derive(Debug)]
struct Answers {
    base: u32,
    span: u32,
    /// Acknowledged messages.
    acks: usize,
    /// Refused ones: sequence number, errno and the extended-ack text.
    errors: Vec<(u32, i32, Option<String>)>,
}

impl Answers {
    fn new(base: u32, span: usize) -> Self {
        Self {
            base,
            span: u32::try_from(span).unwrap_or(u32::MAX),
            acks: 0,
            errors: Vec::new(),
        }
    }

    /// Files the acknowledgements and errors of one datagram. Answers to
    /// other requests (left queued by an earlier request that stopped
    /// reading) are skipped.
    fn absorb(&mut self, datagram: &[u8]) -> io::Result<()> {
        for (h, msg) in messages(datagram)? {
            if h.ty != NLMSG_ERROR || h.seq.wrapping_sub(self.base) >= self.span {
                continue;
            }
            match error_of(&h, msg) {
                (0, _) => self.acks += 1,
                (errno, text) => self.errors.push((h.seq, errno, text)),
            }
        }
        Ok(())
    }
}

/// How the kernel ended a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DumpEnd {
    /// Complete (`NLMSG_DONE`, or the one answer to a get).
    Done,
    /// ENOENT: no such table (or set).
    Missing,
    /// Any other error (as an error message, or in the `NLMSG_DONE`).
    Failed(i32),
}

/// The answer to one list (or get) request with sequence number `seq`,
/// gathered datagram by datagram.
#[derive(Debug)]
struct DumpAnswer {
    seq: u32,
    /// A get: one answer message, no `NLMSG_DONE`.
    get: bool,
    /// The kernel flagged a message (or the end) with `NLM_F_DUMP_INTR`:
    /// the objects changed during the list, which may miss some or repeat
    /// them.
    interrupted: bool,
    messages: Vec<Vec<u8>>,
    end: Option<DumpEnd>,
}

impl DumpAnswer {
    fn new(seq: u32, get: bool) -> Self {
        Self {
            seq,
            get,
            interrupted: false,
            messages: Vec::new(),
            end: None,
        }
    }

    /// Files the messages of one datagram that answer this request (others
    /// are skipped) and returns whether the answer is complete.
    fn absorb(&mut self, datagram: &[u8]) -> io::Result<bool> {
        for (h, msg) in messages(datagram)? {
            if h.seq != self.seq || self.end.is_some() {
                continue;
            }
            if h.flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            self.end = match h.ty {
                NLMSG_DONE => {
                    // The list's own error, if it failed part way.
                    let code = msg
                        .get(16..20)
                        .map_or(0, |s| i32::from_ne_bytes([s[0], s[1], s[2], s[3]]));
                    Some(match errno_of(code) {
                        e if e <= 0 => DumpEnd::Done,
                        libc::ENOENT => DumpEnd::Missing,
                        e => DumpEnd::Failed(e),
                    })
                }
                NLMSG_ERROR => Some(match error_of(&h, msg).0 {
                    0 => DumpEnd::Done,
                    libc::ENOENT => DumpEnd::Missing,
                    errno => DumpEnd::Failed(errno),
                }),
                _ => {
                    self.messages.push(msg.to_vec());
                    self.get.then_some(DumpEnd::Done)
                }
            };
        }
        Ok(self.end.is_some())
    }
}

/// Runs `once` until it yields a consistent result (`Some`), at most
/// `attempts` times; `None` if every attempt was interrupted.
fn until_consistent<T>(
    attempts: usize,
    mut once: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    for _ in 0..attempts {
        if let Some(t) = once()? {
            return Ok(Some(t));
        }
    }
    Ok(None)
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
    (errno_of(errno), text)
}

/// The errno a netlink code carries (a negative errno; 0 for success).
/// `i32::MIN` has no negation: a malformed answer, taken as EINVAL, never
/// as success.
fn errno_of(code: i32) -> i32 {
    code.checked_neg().unwrap_or(libc::EINVAL)
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
        self.clear_stale()
            .map_err(io_err("clearing stale answers from the netlink socket"))?;
        self.sock
            .set_buffers(bytes.len() + 65536, (msgs.len() + 64) * 2048)
            .map_err(io_err("sizing the netlink socket buffers"))?;
        self.sock
            .send(&bytes)
            .map_err(io_err("sending the batch"))?;

        // The kernel handles the batch inside the send: every answer is
        // queued by now.
        let mut answers = Answers::new(base, msgs.len() + 2);
        while let Some(n) = self
            .recv(false)
            .map_err(io_err("reading the kernel's answers"))?
        {
            answers
                .absorb(&self.buf[..n])
                .map_err(io_err("reading the kernel's answers"))?;
        }
        let Answers {
            acks, mut errors, ..
        } = answers;
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

    /// Receives one datagram into the buffer (see [`Socket::recv`]). After a
    /// datagram that did not fit, the buffer grows to fit the next such (and
    /// to at least its usual size).
    fn recv(&mut self, wait: bool) -> io::Result<Option<usize>> {
        let got = self.sock.recv(&mut self.buf, wait);
        if let Err(t) = got.as_ref().map_err(Truncated::of)
            && let Some(t) = t
        {
            self.buf
                .resize(t.len.next_power_of_two().max(RECV_BUFFER), 0);
        }
        got
    }

    /// Reads and drops whatever is queued on the socket: the rest of the
    /// answers to an earlier request that stopped reading early (on an
    /// error). A list the kernel was still producing is read to its end,
    /// so that the next list is not refused (EBUSY).
    fn clear_stale(&mut self) -> io::Result<()> {
        loop {
            match self.recv(false) {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                // Answers lost to a full buffer, or one too long: nothing
                // to keep anyway.
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOBUFS) || Truncated::of(&e).is_some() => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a request and hands every answer message to `each`, once the
    /// list has ended. A list the kernel flags as interrupted by a change
    /// (`NLM_F_DUMP_INTR`) is read to its end and started again, up to
    /// [`DUMP_ATTEMPTS`] times. `Ok(false)` if the kernel answered ENOENT.
    fn dump(
        &mut self,
        what: Request<'_>,
        family: Family,
        table: &str,
        mut each: impl FnMut(&[u8]),
    ) -> Result<bool> {
        let answer = until_consistent(DUMP_ATTEMPTS, || {
            let a = self.dump_once(what, family, table)?;
            Ok((!a.interrupted).then_some(a))
        })?
        .ok_or_else(|| Error::Io {
            what: format!("listing table {table}"),
            source: io::Error::other(format!(
                "the ruleset changed during each of {DUMP_ATTEMPTS} attempts to list it"
            )),
        })?;
        match answer.end {
            Some(DumpEnd::Missing) => Ok(false),
            Some(DumpEnd::Failed(errno)) => Err(Error::Io {
                what: format!("listing table {table}"),
                source: io::Error::from_raw_os_error(errno),
            }),
            Some(DumpEnd::Done) | None => {
                answer.messages.iter().for_each(|m| each(m));
                Ok(true)
            }
        }
    }

    /// One list request and its whole answer.
    fn dump_once(&mut self, what: Request<'_>, family: Family, table: &str) -> Result<DumpAnswer> {
        self.clear_stale()
            .map_err(io_err("clearing stale answers from the netlink socket"))?;
        let seq = self.next_seqs(1);
        let req = sys::request(what, family.nfproto(), table, seq)
            .map_err(io_err("building a list request"))?;
        self.sock
            .send(&req)
            .map_err(io_err("sending a list request"))?;
        let mut answer = DumpAnswer::new(seq, matches!(what, Request::Table));
        loop {
            let n = self
                .recv(true)
                .map_err(io_err("reading a list"))?
                .unwrap_or(0);
            if n == 0 {
                return Err(Error::Io {
                    what: format!("listing table {table}"),
                    source: io::Error::other("the list ended without its end message"),
                });
            }
            if answer
                .absorb(&self.buf[..n])
                .map_err(io_err("reading a list"))?
            {
                return Ok(answer);
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

#[cfg(test)]
#[path = "linux_tests.rs"]
mod tests;
