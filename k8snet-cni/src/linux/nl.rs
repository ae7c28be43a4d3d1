//! One netlink session per plugin run: a current-thread tokio runtime, a
//! connection in the plugin's own namespace (the node's) and, on demand, one
//! opened inside the container's namespace. The bridge plugin's ADD uses
//! no runtime: plain blocking sockets in the node's namespace
//! ([`sync_host`]) and in the container's ([`SyncSandbox`]), on which
//! requests go out in batches, in as few datagrams as the socket's receive
//! buffer allows ([`SyncSocket::batch`]), and a blocking subscription to
//! link events for the one wait ([`wait_for_link`]).
//!
//! A netlink socket belongs to the namespace of the thread that created it,
//! so the container's socket is created while the calling thread is
//! briefly inside the container's namespace (netavark's way); the runtime
//! is single-threaded and does nothing meanwhile.

use std::fs::File;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use nix::sched::{CloneFlags, setns};
pub(crate) use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoKind, InfoPortData, LinkAttribute, LinkInfo, State,
};
use rtnetlink::{Handle, new_connection};

use crate::bridge::format_mac;
use crate::error::{Error, Result};

// Error numbers as the target's libc defines them (they differ between
// architectures).
/// ENODEV: no such device.
pub(crate) const ENODEV: i32 = nix::errno::Errno::ENODEV as i32;
/// EEXIST.
pub(crate) const EEXIST: i32 = nix::errno::Errno::EEXIST as i32;
/// EADDRNOTAVAIL: no such address.
pub(crate) const EADDRNOTAVAIL: i32 = nix::errno::Errno::EADDRNOTAVAIL as i32;

/// The errno of a netlink error, if it is one.
pub(crate) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        // `i32::MIN` has no absolute value: a malformed answer, EINVAL.
        rtnetlink::Error::NetlinkError(m) => Some(
            m.raw_code()
                .checked_abs()
                .unwrap_or(nix::errno::Errno::EINVAL as i32),
        ),
        _ => None,
    }
}

/// A kernel error naming what was being done.
pub(crate) fn nl_err(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |e| match &e {
        rtnetlink::Error::NetlinkError(m) => Error::kernel(what, m.to_io()),
        _ => Error::kernel(what, e),
    }
}

/// The runtime and the node-side connection.
pub(crate) struct Session {
    rt: tokio::runtime::Runtime,
    /// The plugin's own (node) namespace.
    pub(crate) host: Handle,
}

/// The container's namespace: its file and a connection inside it.
pub(crate) struct Sandbox {
    pub(crate) file: File,
    pub(crate) path: String,
    pub(crate) handle: Handle,
}

/// Puts the calling thread back into its own network namespace when
/// dropped (also while unwinding).
struct Home(File);

impl Drop for Home {
    fn drop(&mut self) {
        if setns(&self.0, CloneFlags::CLONE_NEWNET).is_err() {
            // Carrying on in the container's namespace could change the
            // wrong one; stop instead (this does not happen in practice:
            // the file of our own namespace is held open).
            eprintln!("k8snet-cni: cannot return to the original network namespace");
            std::process::abort();
        }
    }
}

/// Runs `f` with the calling thread inside the namespace of `ns`, then
/// puts it back. Switching this thread instead of spawning one saves a
/// thread start per call (milliseconds on a loaded machine); a plugin runs
/// nothing else meanwhile (its runtime is single-threaded).
pub(crate) fn in_netns<T>(ns: &File, f: impl FnOnce() -> T) -> Result<T> {
    let home = File::open("/proc/thread-self/ns/net")
        .map_err(|e| Error::io("opening our own network namespace", e))?;
    setns(ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::kernel("entering the container's network namespace", e))?;
    let _back = Home(home);
    Ok(f())
}

impl Session {
    /// Builds the runtime and connects in the calling thread's namespace.
    pub(crate) fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::io("starting the netlink runtime", e))?;
        let host = {
            let _guard = rt.enter();
            let (conn, handle, _) =
                new_connection().map_err(|e| Error::io("opening a netlink socket", e))?;
            rt.spawn(conn);
            handle
        };
        Ok(Self { rt, host })
    }

    /// Opens the container's namespace and a connection inside it.
    ///
    /// # Errors
    ///
    /// [`Error::Netns`] (code 8) when the path is not a usable namespace.
    pub(crate) fn sandbox(&self, path: &Path) -> Result<Sandbox> {
        let shown = path.display().to_string();
        let bad = |message: String| Error::Netns {
            path: shown.clone(),
            message,
        };
        let file = File::open(path).map_err(|e| bad(format!("failed to open netns: {e}")))?;
        let made = in_netns(&file, || {
            let _guard = self.rt.enter();
            new_connection().map(|(conn, handle, _)| (conn, handle))
        })
        .map_err(|e| bad(e.to_string()))?;
        let (conn, handle) = made.map_err(|e| bad(format!("netlink socket: {e}")))?;
        self.rt.spawn(conn);
        Ok(Sandbox {
            file,
            path: shown,
            handle,
        })
    }

    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// The link called `name`, if any.
pub(crate) async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut s = h.link().get().match_name(name.to_owned()).execute();
    match s.try_next().await {
        Ok(m) => Ok(m),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(nl_err(format!("looking up link {name}"))(e)),
    }
}

/// A blocking netlink route socket in the calling thread's namespace (the
/// node's, for a plugin). Not bound: the kernel binds it on its first send.
///
/// # Errors
///
/// [`Error::Io`] when the socket cannot be opened.
pub(crate) fn sync_host() -> Result<SyncSocket> {
    let sock = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)
        .map_err(|e| Error::io("opening a netlink socket", e))?;
    Ok(SyncSocket {
        sock,
        seq: 0,
        stale: false,
        room: RECV_ROOM,
        #[cfg(test)]
        between: None,
    })
}

/// The multicast group of link notifications (`RTNLGRP_LINK`).
const RTNLGRP_LINK: u32 = 1;

/// Waits until `cond` holds for link `name` (read on `sock` now, then
/// after every link event), at most `limit`.
///
/// The events come on a blocking socket subscribed to link notifications
/// before the first read (so no change is missed), whose receive timeout
/// is set to what is left of `limit` before each read: no sleeps, no
/// polling. The standard library sets that timeout (`SO_RCVTIMEO`) for
/// any socket; the subscribed netlink socket is handed to it as a datagram
/// socket, which it is, and read with `recv` only.
///
/// # Errors
///
/// [`Error::Io`] when the subscription fails, [`Error::Kernel`] naming the
/// link when it disappears or `cond` still does not hold after `limit`.
pub(crate) fn wait_for_link(
    sock: &mut SyncSocket,
    name: &str,
    limit: Duration,
    cond: impl Fn(&LinkMessage) -> bool,
) -> Result<LinkMessage> {
    use std::os::fd::AsFd;
    let deadline = Instant::now() + limit;
    let subscribe = || {
        let mut s = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
        s.bind_auto()?;
        s.add_membership(RTNLGRP_LINK)?;
        let fd = s.as_fd().try_clone_to_owned()?;
        Ok::<_, std::io::Error>(std::os::unix::net::UnixDatagram::from(fd))
    };
    let events = subscribe().map_err(|e| Error::io("subscribing to link events", e))?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let link = sock
            .link_by_name(name)?
            .ok_or_else(|| Error::kernel(format!("link {name}"), "disappeared"))?;
        if cond(&link) {
            return Ok(link);
        }
        let timed_out = || {
            Error::kernel(
                format!("link {name}"),
                format!("still {:?} after {limit:?}", operstate(&link)),
            )
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        events
            .set_read_timeout(Some(left))
            .map_err(|e| Error::io("waiting for link events", e))?;
        match events.recv(&mut buf) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            // Interrupted, or events lost (ENOBUFS): look again.
            Err(e)
                if e.kind() == std::io::ErrorKind::Interrupted
                    || e.raw_os_error() == Some(ENOBUFS) => {}
            Err(e) => return Err(Error::io("waiting for link events", e)),
        }
    }
}

/// ENOBUFS: a netlink socket's receive buffer overflowed.
const ENOBUFS: i32 = nix::errno::Errno::ENOBUFS as i32;

/// Files the answers in one received datagram under the requests they
/// answer (sequence numbers from `first` on; others are skipped) and
/// returns how many requests they finished: an acknowledgement or error,
/// or the end of a dump. A dump the kernel ended with an error (a negative
/// code in its `NLMSG_DONE`) is that request's error, not a short list; a
/// dump with a message (or end) flagged `NLM_F_DUMP_INTR` is marked
/// [`Reply::interrupted`].
fn absorb(
    datagram: &[u8],
    first: u32,
    replies: &mut [Reply],
) -> std::result::Result<usize, rtnetlink::packet_core::DecodeError> {
    use rtnetlink::packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};
    let mut done = 0;
    let mut at = 0;
    while at < datagram.len() {
        let len = NetlinkBuffer::new_checked(&datagram[at..])?.length() as usize;
        if len == 0 {
            break;
        }
        let end = (at + len).min(datagram.len());
        let msg = NetlinkMessage::<rtnetlink::packet_route::RouteNetlinkMessage>::deserialize(
            &datagram[at..end],
        )?;
        // Messages are 4-byte aligned in a datagram.
        at += (len + 3) & !3;
        let i = msg.header.sequence_number.wrapping_sub(first) as usize;
        let Some(reply) = replies.get_mut(i) else {
            continue;
        };
        if msg.header.flags & rtnetlink::packet_core::NLM_F_DUMP_INTR != 0 {
            reply.interrupted = true;
        }
        match msg.payload {
            NetlinkPayload::InnerMessage(m) => reply.messages.push(m),
            NetlinkPayload::Error(e) => {
                if e.code.is_some() {
                    reply.error = Some(e);
                }
                done += 1;
            }
            NetlinkPayload::Done(d) => {
                if d.code < 0 {
                    let mut e = rtnetlink::packet_core::ErrorMessage::default();
                    e.code = std::num::NonZeroI32::new(d.code);
                    reply.error = Some(e);
                }
                done += 1;
            }
            _ => {}
        }
    }
    Ok(done)
}

/// Deletes link `index` on `sock`; a missing link is fine.
pub(crate) fn delete_link_sync(sock: &mut SyncSocket, index: u32) -> Result<()> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    let reply = sock.request(
        &format!("deleting link {index}"),
        rtnetlink::packet_route::RouteNetlinkMessage::DelLink(link),
        0,
    )?;
    match reply.result() {
        Err(e) if errno(&e) != Some(ENODEV) => Err(nl_err(format!("deleting link {index}"))(e)),
        _ => Ok(()),
    }
}

/// The bytes of an `RTM_DELLINK` request for link `index` (acknowledged),
/// for sending on a plain netlink socket.
pub(crate) fn del_link_request(index: u32) -> Vec<u8> {
    use rtnetlink::packet_core::{
        NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    };
    use rtnetlink::packet_route::RouteNetlinkMessage;
    let mut link = LinkMessage::default();
    link.header.index = index;
    let mut msg = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::DelLink(link)),
    );
    msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// Deletes a link by index; a missing link is fine.
pub(crate) async fn delete_link(h: &Handle, index: u32) -> Result<()> {
    match h.link().del(index).execute().await {
        Err(e) if errno(&e) != Some(ENODEV) => Err(nl_err(format!("deleting link {index}"))(e)),
        _ => Ok(()),
    }
}

pub(crate) fn mac(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) if b.len() == 6 => Some(format_mac(b)),
        _ => None,
    })
}

pub(crate) fn mac_bytes(m: &LinkMessage) -> Option<Vec<u8>> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) => Some(b.clone()),
        _ => None,
    })
}

pub(crate) fn kind(m: &LinkMessage) -> Option<&InfoKind> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k),
            _ => None,
        }),
        _ => None,
    })
}

pub(crate) fn operstate(m: &LinkMessage) -> Option<State> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::OperState(s) => Some(*s),
        _ => None,
    })
}

pub(crate) fn controller(m: &LinkMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    })
}

/// The bridge-port flag "isolated" of a link that is a bridge port (from
/// the port data the kernel reports with the link); `None` when the link is
/// not a bridge port or the kernel does not report the flag.
pub(crate) fn port_isolated(m: &LinkMessage) -> Option<bool> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                port.iter().find_map(|p| match p {
                    InfoBridgePort::Isolated(v) => Some(*v),
                    _ => None,
                })
            }
            _ => None,
        }),
        _ => None,
    })
}

pub(crate) fn alias(m: &LinkMessage) -> Option<&str> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.as_str()),
        _ => None,
    })
}

/// Writes a `net.*` sysctl of the namespace of `ns` (on a thread inside
/// it: `/proc/sys/net` is per namespace). Missing keys are ignored, as the
/// reference does (IPv6 may be off).
pub(crate) fn sandbox_sysctls(ns: &File, pairs: &[(String, &str)]) -> Result<()> {
    in_netns(ns, || {
        for (key, value) in pairs {
            let _ = std::fs::write(format!("/proc/sys/{key}"), value);
        }
    })
}

/// Writes a sysctl of the plugin's own namespace (the node's); missing keys
/// are ignored.
pub(crate) fn node_sysctl(key: &str, value: &str) {
    let _ = std::fs::write(format!("/proc/sys/{key}"), value);
}

/// The container's namespace for ADD: its file and a plain (blocking)
/// netlink socket inside it, on which requests go out in batches (see
/// [`SyncSocket::batch`]).
pub(crate) struct SyncSandbox {
    pub(crate) file: File,
    pub(crate) path: String,
    pub(crate) sock: SyncSocket,
}

/// Opens the namespace at `path` and a blocking netlink socket inside it.
///
/// # Errors
///
/// [`Error::Netns`] (code 8) when the path is not a usable namespace.
pub(crate) fn sync_sandbox(path: &Path) -> Result<SyncSandbox> {
    let shown = path.display().to_string();
    let bad = |message: String| Error::Netns {
        path: shown.clone(),
        message,
    };
    let file = File::open(path).map_err(|e| bad(format!("failed to open netns: {e}")))?;
    let made = in_netns(&file, || {
        let mut s = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
        s.bind_auto()?;
        Ok::<_, std::io::Error>(s)
    })
    .map_err(|e| bad(e.to_string()))?;
    let sock = made.map_err(|e| bad(format!("netlink socket: {e}")))?;
    Ok(SyncSandbox {
        file,
        path: shown,
        sock: SyncSocket {
            sock,
            seq: 0,
            stale: false,
            room: RECV_ROOM,
            #[cfg(test)]
            between: None,
        },
    })
}

/// A blocking netlink route socket that sends several requests in one
/// datagram: the kernel handles the messages of a datagram one after the
/// other, in order, each completely (with its acknowledgement) before the
/// next, so a request may depend on the ones before it. One `sendto` for
/// the lot and one `recvfrom` per answer, with no event loop in between.
pub(crate) struct SyncSocket {
    sock: rtnetlink::sys::Socket,
    seq: u32,
    /// A datagram's answers were not all read (its receive failed): they
    /// are read and dropped before the next send.
    stale: bool,
    /// The receive buffer's size: [`RECV_ROOM`] (smaller in tests).
    room: usize,
    /// Tests only: runs after each datagram of answers is read (to change
    /// what a dump lists between its parts).
    #[cfg(test)]
    between: Option<Box<dyn FnMut() + Send + Sync>>,
}

/// The receive buffer of a [`SyncSocket`]: a netlink answer datagram is at
/// most 32 KiB.
const RECV_ROOM: usize = 64 * 1024;

/// What the kernel answered to one request of a batch: the messages it
/// sent back (a link, for a `GETLINK`) and the error, if it refused it.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    pub(crate) messages: Vec<rtnetlink::packet_route::RouteNetlinkMessage>,
    pub(crate) error: Option<rtnetlink::packet_core::ErrorMessage>,
    /// A dump the kernel flagged as interrupted by a concurrent change
    /// (`NLM_F_DUMP_INTR`): its messages may miss objects or repeat them.
    /// [`SyncSocket::batch`] asks again for such a dump.
    pub(crate) interrupted: bool,
}

impl Reply {
    /// The error as rtnetlink reports it (so that [`errno`] and [`nl_err`]
    /// apply).
    pub(crate) fn result(&self) -> std::result::Result<(), rtnetlink::Error> {
        match &self.error {
            Some(e) => Err(rtnetlink::Error::NetlinkError(e.clone())),
            None => Ok(()),
        }
    }
}

/// The most requests [`SyncSocket::batch`] puts in one datagram. Every
/// answer waits in the socket's receive buffer until it is read, and the
/// kernel charges each one its buffer's true size (about 0.8 KiB for an
/// acknowledgement, a few KiB for a link) against that buffer
/// (`net.core.rmem_default`, 208 KiB by default); an answer that does not
/// fit is dropped and the socket's next read fails with ENOBUFS. About 256
/// acknowledgements fill it; 64 leave room for the few links a batch asks
/// for.
pub(crate) const MAX_BATCH: usize = 64;

/// How many times [`SyncSocket::batch`] asks for a dump that a concurrent
/// change keeps interrupting before that is an error.
pub(crate) const DUMP_ATTEMPTS: usize = 4;

/// `MSG_TRUNC` (`linux/socket.h`, the same on every architecture): a
/// receive returns the datagram's real length, also when it did not fit.
const MSG_TRUNC: i32 = 0x20;
/// `MSG_DONTWAIT`: a receive that does not wait.
const MSG_DONTWAIT: i32 = 0x40;

/// Whether the dump answered by `reply` must be asked for again after
/// `attempts` attempts: it was interrupted by a concurrent change (and not
/// refused). Interrupted [`DUMP_ATTEMPTS`] times, it is an error naming
/// `step`.
fn dump_again(step: &str, reply: &Reply, attempts: usize) -> Result<bool> {
    if !reply.interrupted || reply.error.is_some() {
        return Ok(false);
    }
    if attempts >= DUMP_ATTEMPTS {
        return Err(Error::kernel(
            step.to_owned(),
            format!("the list changed while being read, {attempts} times in a row"),
        ));
    }
    Ok(true)
}

/// Runs `op` again for as long as a signal interrupts it (EINTR, only).
fn retry_eintr<T>(mut op: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

impl SyncSocket {
    /// Sends `requests` (each acknowledged: `NLM_F_REQUEST | NLM_F_ACK`
    /// plus its own flags; a dump, `NLM_F_DUMP`, only as the last request:
    /// the kernel answers it with its messages and a `DONE`, no
    /// acknowledgement) and collects one [`Reply`] per request,
    /// in order. They go out in datagrams of at most [`MAX_BATCH`]
    /// requests, each sent once the answers to the one before are read, so
    /// the order is kept and the answers always fit the receive buffer.
    ///
    /// After a datagram in which the kernel refused a request, the rest are
    /// not sent: the replies then stop at the end of that datagram (the
    /// refusal is among them, with its own error).
    ///
    /// A dump the kernel flags as interrupted by a concurrent change
    /// (`NLM_F_DUMP_INTR`) is sent again on its own, until it is read
    /// whole, at most [`DUMP_ATTEMPTS`] times in all; its reply is the last
    /// one's.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming `step` when the socket fails (sending or
    /// reading, or an answer longer than the receive buffer);
    /// [`Error::Kernel`] naming `step` for an answer that does not parse,
    /// or a dump interrupted [`DUMP_ATTEMPTS`] times.
    pub(crate) fn batch(
        &mut self,
        step: &str,
        requests: Vec<(rtnetlink::packet_route::RouteNetlinkMessage, u16)>,
    ) -> Result<Vec<Reply>> {
        let mut replies = Vec::with_capacity(requests.len());
        let mut requests = requests.into_iter().peekable();
        use rtnetlink::packet_core::NLM_F_DUMP;
        while requests.peek().is_some() {
            let chunk: Vec<_> = requests.by_ref().take(MAX_BATCH).collect();
            // A dump goes last; kept, to be asked for again.
            let dump = chunk
                .last()
                .filter(|(_, flags)| flags & NLM_F_DUMP == NLM_F_DUMP)
                .cloned();
            let mut answered = self.datagram(step, chunk)?;
            if let Some(dump) = dump {
                let mut attempts = 1;
                while let Some(last) = answered.last_mut()
                    && dump_again(step, last, attempts)?
                {
                    attempts += 1;
                    *last = self
                        .datagram(step, vec![dump.clone()])?
                        .pop()
                        .unwrap_or_default();
                }
            }
            let refused = answered.iter().any(|r| r.error.is_some());
            replies.extend(answered);
            if refused {
                break;
            }
        }
        Ok(replies)
    }

    /// One datagram of [`SyncSocket::batch`]: sends `requests` together and
    /// reads one [`Reply`] per request.
    fn datagram(
        &mut self,
        step: &str,
        requests: Vec<(rtnetlink::packet_route::RouteNetlinkMessage, u16)>,
    ) -> Result<Vec<Reply>> {
        use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage};
        let first = self.seq.wrapping_add(1);
        let count = requests.len();
        let mut out = Vec::new();
        for (payload, flags) in requests {
            self.seq = self.seq.wrapping_add(1);
            let mut msg = NetlinkMessage::from(payload);
            msg.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            msg.header.sequence_number = self.seq;
            msg.finalize();
            let at = out.len();
            out.resize(at + msg.buffer_len(), 0);
            msg.serialize(&mut out[at..]);
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        if self.stale {
            self.drain()
                .map_err(|e| Error::io(format!("{step}: clearing stale netlink answers"), e))?;
        }
        retry_eintr(|| self.sock.send(&out, 0))
            .map_err(|e| Error::io(format!("{step}: sending netlink requests"), e))?;
        let mut replies: Vec<Reply> = (0..count).map(|_| Reply::default()).collect();
        let mut done = 0;
        let mut buf: Vec<u8> = Vec::with_capacity(self.room);
        let unparsable = |e: rtnetlink::packet_core::DecodeError| {
            Error::kernel(format!("{step}: reading netlink answers"), e)
        };
        // Until every answer is read, an early return leaves some queued.
        self.stale = true;
        while done < count {
            let n = self
                .recv(&mut buf, 0)
                .map_err(|e| Error::io(format!("{step}: reading netlink answers"), e))?;
            done += absorb(&buf[..n], first, &mut replies).map_err(unparsable)?;
            #[cfg(test)]
            if let Some(f) = self.between.as_mut() {
                f();
            }
        }
        self.stale = false;
        Ok(replies)
    }

    /// Receives one datagram into `buf` (emptied first) and returns its
    /// length. A receive interrupted by a signal is retried; a datagram
    /// longer than the buffer is an error (it is gone: never read in part).
    fn recv(&self, buf: &mut Vec<u8>, flags: i32) -> std::io::Result<usize> {
        buf.clear();
        let n = retry_eintr(|| self.sock.recv(buf, flags | MSG_TRUNC))?;
        if n > buf.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a netlink answer of {n} bytes did not fit the {}-byte receive buffer",
                    buf.len()
                ),
            ));
        }
        Ok(n)
    }

    /// Reads and drops whatever is queued: answers to requests whose
    /// reading stopped early. A dump the kernel was still producing is read
    /// to its end (the kernel refuses another dump on the socket meanwhile).
    fn drain(&mut self) -> std::io::Result<()> {
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_ROOM);
        loop {
            match self.recv(&mut buf, MSG_DONTWAIT) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Answers lost to a full buffer, or one too long: nothing
                // to keep anyway.
                Err(e)
                    if e.raw_os_error() == Some(ENOBUFS)
                        || e.kind() == std::io::ErrorKind::InvalidData => {}
                Err(e) => return Err(e),
            }
        }
        self.stale = false;
        Ok(())
    }

    /// Sends one request (see [`SyncSocket::batch`]) and returns its reply.
    pub(crate) fn request(
        &mut self,
        step: &str,
        request: rtnetlink::packet_route::RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Reply> {
        Ok(self
            .batch(step, vec![(request, flags)])?
            .pop()
            .unwrap_or_default())
    }

    /// Every link of the socket's namespace, from one dump read whole (asked
    /// for again when a concurrent change interrupts it, see
    /// [`SyncSocket::batch`]).
    pub(crate) fn all_links(&mut self) -> Result<Vec<LinkMessage>> {
        use rtnetlink::packet_core::NLM_F_DUMP;
        use rtnetlink::packet_route::RouteNetlinkMessage as M;
        let step = "listing links";
        let reply = self.request(step, M::GetLink(LinkMessage::default()), NLM_F_DUMP)?;
        reply.result().map_err(nl_err(step))?;
        Ok(reply
            .messages
            .into_iter()
            .filter_map(|m| match m {
                M::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, if any.
    pub(crate) fn link_by_name(&mut self, name: &str) -> Result<Option<LinkMessage>> {
        let mut get = LinkMessage::default();
        get.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let reply = self
            .batch(
                &format!("looking up link {name}"),
                vec![(
                    rtnetlink::packet_route::RouteNetlinkMessage::GetLink(get),
                    0,
                )],
            )?
            .pop()
            .unwrap_or_default();
        match reply.result() {
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(nl_err(format!("looking up link {name}"))(e)),
            Ok(()) => Ok(reply.messages.into_iter().find_map(|m| match m {
                rtnetlink::packet_route::RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8snet_testnet::{Testnet, interrupt};
    use rtnetlink::packet_route::RouteNetlinkMessage as M;

    /// The bytes of one netlink message with sequence number `seq`.
    fn wire(seq: u32, payload: rtnetlink::packet_core::NetlinkPayload<M>) -> Vec<u8> {
        wire_flagged(seq, 0, payload)
    }

    /// A dump's entries, its clean end, an acknowledgement, an error, a
    /// dump the kernel ended with an error and an answer to some other
    /// request, in one datagram: each filed under its own request.
    #[test]
    fn answers_in_a_datagram_are_filed_by_request() {
        use rtnetlink::packet_core::{DoneMessage, ErrorMessage, NetlinkPayload};
        let done = |code| {
            let mut d = DoneMessage::default();
            d.code = code;
            NetlinkPayload::Done(d)
        };
        let err = |code| {
            let mut e = ErrorMessage::default();
            e.code = std::num::NonZeroI32::new(code);
            NetlinkPayload::Error(e)
        };
        let mut link = LinkMessage::default();
        link.header.index = 7;
        let mut datagram = Vec::new();
        datagram.extend(wire(
            10,
            NetlinkPayload::InnerMessage(M::NewLink(link.clone())),
        ));
        datagram.extend(wire(10, NetlinkPayload::InnerMessage(M::NewLink(link))));
        datagram.extend(wire(10, done(0)));
        datagram.extend(wire(11, err(0)));
        datagram.extend(wire(12, err(-ENODEV)));
        datagram.extend(wire(13, done(-(nix::errno::Errno::EINTR as i32))));
        datagram.extend(wire(99, err(-EEXIST)));
        let mut replies: Vec<Reply> = (0..4).map(|_| Reply::default()).collect();
        assert_eq!(absorb(&datagram, 10, &mut replies).unwrap(), 4);
        assert_eq!(replies[0].messages.len(), 2);
        assert!(replies[0].result().is_ok());
        assert!(replies[1].result().is_ok() && replies[1].messages.is_empty());
        assert_eq!(errno(&replies[2].result().unwrap_err()), Some(ENODEV));
        // Not a short list that looks complete.
        assert_eq!(
            errno(&replies[3].result().unwrap_err()),
            Some(nix::errno::Errno::EINTR as i32)
        );
        // Cut short: an error, not a panic.
        assert!(absorb(&datagram[..datagram.len() - 30], 10, &mut replies).is_err());
    }

    /// The bytes of one netlink message with sequence number `seq` and
    /// header flags `flags`.
    fn wire_flagged(
        seq: u32,
        flags: u16,
        payload: rtnetlink::packet_core::NetlinkPayload<M>,
    ) -> Vec<u8> {
        use rtnetlink::packet_core::{NetlinkHeader, NetlinkMessage};
        let mut msg = NetlinkMessage::new(NetlinkHeader::default(), payload);
        msg.header.sequence_number = seq;
        msg.header.flags = flags;
        msg.finalize();
        let mut b = vec![0; msg.buffer_len()];
        msg.serialize(&mut b);
        b
    }

    /// A dump the kernel flags as interrupted by a concurrent change (on an
    /// entry, or only on its end) is marked so, and asked for again, a few
    /// times at most; a flag on another request's answer, or on a refused
    /// dump, does not count.
    #[test]
    fn an_interrupted_dump_is_marked_and_asked_for_again() {
        use rtnetlink::packet_core::{
            DoneMessage, ErrorMessage, NLM_F_DUMP_INTR, NLM_F_MULTIPART, NetlinkPayload,
        };
        let entry = || NetlinkPayload::InnerMessage(M::NewLink(LinkMessage::default()));
        let done = || NetlinkPayload::Done(DoneMessage::default());
        let (multi, intr) = (NLM_F_MULTIPART, NLM_F_MULTIPART | NLM_F_DUMP_INTR);
        let mut datagram = Vec::new();
        // 20: the flag on an entry; 21: only on the end; 22: none (but the
        // answer to 99, another request, has it).
        datagram.extend(wire_flagged(20, multi, entry()));
        datagram.extend(wire_flagged(20, intr, entry()));
        datagram.extend(wire_flagged(20, multi, done()));
        datagram.extend(wire_flagged(21, multi, entry()));
        datagram.extend(wire_flagged(21, intr, done()));
        datagram.extend(wire_flagged(99, intr, entry()));
        datagram.extend(wire_flagged(22, multi, entry()));
        datagram.extend(wire_flagged(22, multi, done()));
        let mut replies: Vec<Reply> = (0..3).map(|_| Reply::default()).collect();
        assert_eq!(absorb(&datagram, 20, &mut replies).unwrap(), 3);
        let marks: Vec<bool> = replies.iter().map(|r| r.interrupted).collect();
        assert_eq!(marks, [true, true, false]);
        assert_eq!(replies[0].messages.len(), 2);

        // Asked for again while interrupted, then an error naming the step.
        assert!(dump_again("listing", &replies[0], 1).unwrap());
        assert!(dump_again("listing", &replies[0], DUMP_ATTEMPTS - 1).unwrap());
        let e = dump_again("listing", &replies[0], DUMP_ATTEMPTS)
            .unwrap_err()
            .to_string();
        assert!(e.contains("listing") && e.contains("changed while"), "{e}");
        assert!(!dump_again("listing", &replies[2], 1).unwrap());
        // A refused dump is an error of its own, not asked for again.
        let mut refused = Reply {
            interrupted: true,
            ..Reply::default()
        };
        let mut err = ErrorMessage::default();
        err.code = std::num::NonZeroI32::new(-EEXIST);
        refused.error = Some(err);
        assert!(!dump_again("listing", &refused, 1).unwrap());
    }

    /// Sends the bytes of a dump request (`GETADDR`, every link's) with
    /// sequence number `seq` on the socket, reading nothing.
    fn send_address_dump(sock: &SyncSocket, seq: u32) {
        use rtnetlink::packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage};
        use rtnetlink::packet_route::address::AddressMessage;
        let mut msg = NetlinkMessage::new(
            NetlinkHeader::default(),
            rtnetlink::packet_core::NetlinkPayload::from(M::GetAddress(AddressMessage::default())),
        );
        msg.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        msg.header.sequence_number = seq;
        msg.finalize();
        let mut b = vec![0; msg.buffer_len()];
        msg.serialize(&mut b);
        sock.sock.send(&b, 0).unwrap();
    }

    /// Against the kernel: an address dump longer than one datagram, with
    /// an address added while it is read, comes flagged as interrupted
    /// (what [`SyncSocket::batch`] acts on); a dump left running by a
    /// batch whose reading failed is read to its end before the next
    /// request, so the next dump is not refused as busy.
    #[test]
    fn dumps_interrupted_or_left_running_by_the_kernel() {
        use rtnetlink::packet_core::NLM_F_DUMP;
        use rtnetlink::packet_route::address::AddressMessage;
        k8snet_testnet::kernel_test!();
        let mut tn = Testnet::new("cnidump").unwrap();
        let ns = tn.add_netns("p").unwrap();
        ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
            .unwrap();
        let mut sb = sync_sandbox(&ns.path()).unwrap();
        let d0 = sb.sock.link_by_name("d0").unwrap().unwrap().header.index;
        // About 80 bytes an address: several datagrams of at most 32 KiB.
        let adds: Vec<_> = (0..1200u32)
            .map(|i| {
                let ip = std::net::Ipv4Addr::from(0xc612_0000 + i);
                let net = ipnet::IpNet::new(ip.into(), 32).unwrap();
                (
                    M::NewAddress(crate::linux::address_message(d0, net)),
                    rtnetlink::packet_core::NLM_F_CREATE | rtnetlink::packet_core::NLM_F_EXCL,
                )
            })
            .collect();
        let replies = sb.sock.batch("adding", adds).unwrap();
        assert!(replies.iter().all(|r| r.error.is_none()));

        // The first datagram, a change, then the rest.
        let seq = 0x4000_0000;
        send_address_dump(&sb.sock, seq);
        let mut replies = vec![Reply::default()];
        let mut buf = Vec::with_capacity(64 * 1024);
        let n = sb.sock.recv(&mut buf, 0).unwrap();
        let mut done = absorb(&buf[..n], seq, &mut replies).unwrap();
        assert_eq!(done, 0, "the dump fits one datagram");
        ns.ip(&["addr", "add", "198.18.200.1/32", "dev", "d0"])
            .unwrap();
        while done == 0 {
            let n = sb.sock.recv(&mut buf, 0).unwrap();
            done = absorb(&buf[..n], seq, &mut replies).unwrap();
        }
        assert!(replies[0].interrupted);

        // A dump whose first datagram does not fit the buffer: a clear
        // error (not a short list), and the dump is left running.
        let mut get = AddressMessage::default();
        get.header.index = d0;
        sb.sock.room = 100;
        let e = sb
            .sock
            .request("listing", M::GetAddress(get.clone()), NLM_F_DUMP)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not fit the 100-byte receive buffer"), "{e}");
        sb.sock.room = RECV_ROOM;
        let listed = sb
            .sock
            .request("listing", M::GetAddress(get), NLM_F_DUMP)
            .unwrap();
        listed.result().expect("a dump after one left running");
        assert!(!listed.interrupted);
        let on_d0 = listed
            .messages
            .iter()
            .filter(|m| matches!(m, M::NewAddress(a) if a.header.index == d0))
            .count();
        assert_eq!(on_d0, 1201);
        // And the socket stays in step.
        assert!(sb.sock.link_by_name("d0").unwrap().is_some());
    }

    /// A batch whose dump a change interrupts (an address added after the
    /// dump's first datagram is read) asks for it again and returns the
    /// whole list; a dump interrupted every time is an error after
    /// [`DUMP_ATTEMPTS`] attempts, not a list.
    #[test]
    fn a_batch_asks_again_for_an_interrupted_dump() {
        use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
        use rtnetlink::packet_route::address::AddressMessage;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        k8snet_testnet::kernel_test!();
        let mut tn = Testnet::new("cniredump").unwrap();
        let ns = tn.add_netns("p").unwrap();
        ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
            .unwrap();
        let mut sb = sync_sandbox(&ns.path()).unwrap();
        let d0 = sb.sock.link_by_name("d0").unwrap().unwrap().header.index;
        let addr = |ip: std::net::Ipv4Addr| {
            let net = ipnet::IpNet::new(ip.into(), 32).unwrap();
            let m = M::NewAddress(crate::linux::address_message(d0, net));
            (m, NLM_F_CREATE | NLM_F_EXCL)
        };
        let adds = (0..1200u32).map(|i| addr(std::net::Ipv4Addr::from(0xc612_0000 + i)));
        let replies = sb.sock.batch("adding", adds.collect()).unwrap();
        assert!(replies.iter().all(|r| r.error.is_none()));

        // Adds one address (in 198.18.`third`.0/24) from another process
        // each time it runs, for the first `changes` times.
        let hook = |third: u8, changes: usize, runs: Arc<AtomicUsize>| {
            let name = ns.name().to_owned();
            Box::new(move || {
                let i = runs.fetch_add(1, Ordering::SeqCst);
                if i < changes {
                    let ip = format!("198.18.{third}.{}/32", i + 1);
                    let st = std::process::Command::new("ip")
                        .args(["-n", &name, "addr", "add", &ip, "dev", "d0"])
                        .status()
                        .unwrap();
                    assert!(st.success());
                }
            }) as Box<dyn FnMut() + Send + Sync>
        };
        let mut get = AddressMessage::default();
        get.header.index = d0;
        let list = |n| (M::GetAddress(get.clone()), n);

        // Interrupted once (behind a request that goes with it).
        let runs = Arc::new(AtomicUsize::new(0));
        sb.sock.between = Some(hook(210, 1, runs.clone()));
        let before = addr(std::net::Ipv4Addr::new(198, 18, 211, 1));
        let replies = sb
            .sock
            .batch("listing", vec![before, list(NLM_F_DUMP)])
            .unwrap();
        assert_eq!(replies.len(), 2);
        replies[0].result().unwrap();
        let listed = &replies[1];
        listed.result().unwrap();
        assert!(!listed.interrupted);
        let on_d0 = listed
            .messages
            .iter()
            .filter(|m| matches!(m, M::NewAddress(a) if a.header.index == d0))
            .count();
        // 1200, the one of the batch, the one added during the first dump.
        assert_eq!(on_d0, 1202);
        // The dump took more than one datagram, twice.
        assert!(runs.load(Ordering::SeqCst) >= 4, "{runs:?}");

        // Interrupted every time.
        let runs = Arc::new(AtomicUsize::new(0));
        sb.sock.between = Some(hook(212, usize::MAX, runs.clone()));
        let e = sb
            .sock
            .batch("listing", vec![list(NLM_F_DUMP)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("listing") && e.contains("4 times in a row"),
            "{e}"
        );
        sb.sock.between = None;
        // The socket is still in step.
        assert!(sb.sock.link_by_name("d0").unwrap().is_some());
    }

    fn get(name: &str) -> (M, u16) {
        let mut l = LinkMessage::default();
        l.attributes.push(LinkAttribute::IfName(name.to_owned()));
        (M::GetLink(l), 0)
    }

    fn up(name: &str) -> (M, u16) {
        let mut l = rtnetlink::LinkUnspec::new_with_name(name).up().build();
        l.header.index = 0;
        (M::SetLink(l), 0)
    }

    fn flags_of(r: &Reply) -> Option<rtnetlink::packet_route::link::LinkFlags> {
        r.messages.iter().find_map(|m| match m {
            M::NewLink(l) => Some(l.header.flags),
            _ => None,
        })
    }

    /// One datagram, one reply per request in order: a refused request in
    /// the middle has its own error, and the requests after it are still
    /// handled, each after the ones before it (the read-back after the
    /// link-up sees the link up).
    #[test]
    fn a_batch_answers_each_request_in_order() {
        k8snet_testnet::kernel_test!();
        let mut tn = Testnet::new("cninl").unwrap();
        let ns = tn.add_netns("p").unwrap();
        ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
            .unwrap();
        let mut sb = sync_sandbox(&ns.path()).unwrap();
        let replies = sb
            .sock
            .batch("test", vec![get("d0"), get("nosuch0"), up("d0"), get("d0")])
            .unwrap();
        assert_eq!(replies.len(), 4);
        let before = flags_of(&replies[0]).expect("d0 read");
        assert!(!before.contains(rtnetlink::packet_route::link::LinkFlags::Up));
        assert!(replies[0].error.is_none());
        let e = replies[1].result().unwrap_err();
        assert_eq!(errno(&e), Some(ENODEV), "{e:?}");
        assert!(replies[1].messages.is_empty());
        replies[2].result().unwrap();
        let after = flags_of(&replies[3]).expect("d0 read again");
        assert!(after.contains(rtnetlink::packet_route::link::LinkFlags::Up));
        // The next batch continues the sequence numbers.
        assert!(sb.sock.link_by_name("d0").unwrap().is_some());
        assert!(sb.sock.link_by_name("nosuch0").unwrap().is_none());
        assert!(sb.sock.batch("test", Vec::new()).unwrap().is_empty());
    }

    /// The wait for a link's state, driven by link events on a blocking
    /// subscription: a veth end whose peer comes up (from another thread,
    /// at any moment) is seen up; one whose peer stays down is reported
    /// as such once the limit has passed; a missing link is an error.
    #[test]
    fn waiting_for_a_link_follows_its_events() {
        k8snet_testnet::kernel_test!();
        let mut tn = Testnet::new("cninlw").unwrap();
        let ns = tn.add_netns("p").unwrap();
        ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
            .unwrap();
        ns.ip(&["link", "set", "d0", "up"]).unwrap();
        let up = |l: &LinkMessage| operstate(l) == Some(State::Up);
        // d1 stays down: d0 is never operationally up.
        let e = ns
            .run(|| {
                let mut sock = sync_host().unwrap();
                wait_for_link(&mut sock, "d0", Duration::from_millis(100), up)
            })
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(e.contains("link d0") && e.contains("still"), "{e}");
        let e = ns
            .run(|| {
                let mut sock = sync_host().unwrap();
                wait_for_link(&mut sock, "nosuch0", Duration::from_secs(3), up)
            })
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(e.contains("disappeared"), "{e}");
        // d1 comes up while (or before) the wait runs.
        let path = ns.path();
        let waiter = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap();
            in_netns(&ns, || {
                let mut sock = sync_host().unwrap();
                wait_for_link(&mut sock, "d0", Duration::from_secs(3), up)
            })
            .unwrap()
        });
        ns.ip(&["link", "set", "d1", "up"]).unwrap();
        let link = waiter.join().unwrap().unwrap();
        assert_eq!(operstate(&link), Some(State::Up));
    }

    /// More requests than one datagram's answers fit the receive buffer
    /// (about 256 acknowledgements; fewer links): all answered, in order,
    /// in datagrams of [`MAX_BATCH`]. A refused request ends the batch
    /// after its datagram, and its reply carries its own error.
    #[test]
    fn a_large_batch_goes_out_in_datagrams_that_fit() {
        k8snet_testnet::kernel_test!();
        let mut tn = Testnet::new("cninlbig").unwrap();
        let ns = tn.add_netns("p").unwrap();
        ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
            .unwrap();
        let mut sb = sync_sandbox(&ns.path()).unwrap();
        let ups: Vec<_> = (0..600).map(|_| up("d0")).collect();
        let replies = sb.sock.batch("test", ups).unwrap();
        assert_eq!(replies.len(), 600);
        assert!(replies.iter().all(|r| r.error.is_none()));
        // Links are the largest answers: a full datagram of them fits too.
        let gets: Vec<_> = (0..300).map(|_| get("d0")).collect();
        let replies = sb.sock.batch("test", gets).unwrap();
        assert_eq!(replies.len(), 300);
        assert!(replies.iter().all(|r| flags_of(r).is_some()));

        let mut mixed: Vec<_> = (0..600).map(|_| up("d0")).collect();
        let refused = MAX_BATCH * 2 + 5;
        mixed[refused] = up("nosuch0");
        let replies = sb.sock.batch("test", mixed).unwrap();
        assert_eq!(replies.len(), MAX_BATCH * 3);
        for (i, r) in replies.iter().enumerate() {
            if i == refused {
                assert_eq!(errno(&r.result().unwrap_err()), Some(ENODEV));
            } else {
                assert!(r.error.is_none(), "{i}: {:?}", r.error);
            }
        }
        // The sequence carries on: the socket is still in step.
        assert!(sb.sock.link_by_name("d0").unwrap().is_some());
    }

    /// A code with no absolute value (`i32::MIN`, never sent by the
    /// kernel) ends a dump with an error, EINVAL, and does not panic.
    #[test]
    fn a_dump_ending_with_code_i32_min_is_einval() {
        use rtnetlink::packet_core::{DoneMessage, NLM_F_MULTIPART, NetlinkPayload};
        let mut d = DoneMessage::default();
        d.code = i32::MIN;
        let datagram = wire_flagged(5, NLM_F_MULTIPART, NetlinkPayload::Done(d));
        let mut replies = vec![Reply::default()];
        assert_eq!(absorb(&datagram, 5, &mut replies).unwrap(), 1);
        let e = replies[0].result().unwrap_err();
        assert_eq!(errno(&e), Some(nix::errno::Errno::EINVAL as i32));
    }

    const EINTR_CHILD: &str = "K8SNET_CNI_EINTR_CHILD";
    const EINTR_TEST: &str = "linux::nl::tests::a_receive_interrupted_by_a_signal_is_retried";

    /// A blocking receive that a signal interrupts (EINTR: here a stop and
    /// continue of the process while the socket has a receive timeout, see
    /// signal(7)) is retried, and returns the answer that comes after. The
    /// receive runs in a child process (see `k8snet_testnet::interrupt`),
    /// with its socket in a namespace of its own.
    #[test]
    fn a_receive_interrupted_by_a_signal_is_retried() {
        k8snet_testnet::kernel_test!();
        if std::env::var_os(EINTR_CHILD).is_some() {
            return eintr_child();
        }
        interrupt::stop_and_continue_child(EINTR_TEST, EINTR_CHILD);
    }

    /// The child's role: a reader blocked in [`SyncSocket::recv`] while the
    /// parent stops and continues this process, then an answer for it.
    fn eintr_child() {
        use std::os::fd::AsFd;
        let mut tn = Testnet::new("cnieintr").unwrap();
        let ns = tn.add_netns("p").unwrap();
        let sb = sync_sandbox(&ns.path()).unwrap();
        // The receive timeout (on the shared socket) is what turns the stop
        // into EINTR.
        let fd = sb.sock.sock.as_fd().try_clone_to_owned().unwrap();
        let timeout = std::os::unix::net::UnixDatagram::from(fd);
        timeout.set_read_timeout(Some(interrupt::PATIENCE)).unwrap();
        let sock = &sb.sock;
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            let reader = s.spawn(move || {
                tx.send(interrupt::thread_id()).unwrap();
                let mut buf = Vec::with_capacity(RECV_ROOM);
                sock.recv(&mut buf, 0).map_err(|e| e.to_string())
            });
            interrupt::reader_blocked(&rx.recv().unwrap());
            // A request whose answer (no such link) wakes the reader.
            sock.sock.send(&del_link_request(999_999), 0).unwrap();
            let got = reader.join().unwrap();
            assert!(got.as_ref().is_ok_and(|n| *n > 0), "{got:?}");
        });
    }
}
