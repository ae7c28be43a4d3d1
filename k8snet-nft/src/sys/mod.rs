//! nf_tables over a plain netlink socket, in safe Rust: building the
//! transaction's messages (`build`), parsing the kernel's dump messages
//! (`parse`), both over a small attribute writer and reader (`nla`), and
//! the `NETLINK_NETFILTER` socket itself (safe `nix` wrappers).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};
// nix's macro calls itself and its helper by their bare names.
use nix::{setsockopt_impl, sockopt_impl};

mod build;
mod nla;
mod parse;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub(crate) use build::{Request, batch_marker, build, request};
pub(crate) use parse::{parse_chain, parse_elems, parse_rule, parse_set};

/// How long a blocking receive (a list) waits for the kernel.
const RECV_TIMEOUT_SECS: i64 = 30;

// The two netlink-level options (`linux/netlink.h`), which nix does not
// name: its own macro defines them, with its checked `setsockopt` inside.
sockopt_impl!(
    /// `NETLINK_CAP_ACK`: error messages carry only the request's header.
    CapAck,
    SetOnly,
    libc::SOL_NETLINK,
    libc::NETLINK_CAP_ACK,
    bool
);
sockopt_impl!(
    /// `NETLINK_EXT_ACK`: error messages carry the kernel's reason text.
    ExtAck,
    SetOnly,
    libc::SOL_NETLINK,
    libc::NETLINK_EXT_ACK,
    bool
);

/// A netlink socket on the netfilter bus, in the network namespace of the
/// thread that opened it (for its whole life).
pub(crate) struct Socket {
    fd: OwnedFd,
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Socket {
    /// Opens and binds the socket and asks for capped, extended acks.
    pub(crate) fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        setsockopt(&fd, CapAck, &true)?;
        // Extended acks are a bonus (a reason text); older kernels lack them.
        let _ = setsockopt(&fd, ExtAck, &true);
        // A list that never ends must not hang the caller.
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::seconds(RECV_TIMEOUT_SECS),
        )?;
        Ok(Self { fd })
    }

    /// Makes room for a whole transaction in one send, and for its acks.
    pub(crate) fn set_buffers(&self, send: usize, recv: usize) -> io::Result<()> {
        // The kernel takes an int (and doubles it).
        let clamp = |n: usize| n.min(i32::MAX as usize / 2);
        setsockopt(&self.fd, sockopt::SndBufForce, &clamp(send))?;
        setsockopt(&self.fd, sockopt::RcvBufForce, &clamp(recv))?;
        Ok(())
    }

    /// Sends the bytes as one datagram (one transaction). A send
    /// interrupted by a signal (EINTR) is retried.
    pub(crate) fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let sent = retry_eintr(|| send(self.fd.as_raw_fd(), bytes, MsgFlags::empty()))?;
        if sent == bytes.len() {
            Ok(())
        } else {
            Err(io::Error::other("netlink send was cut short"))
        }
    }

    /// Receives one datagram into `buf`; `Ok(None)` if `wait` is false and
    /// nothing is queued. A receive interrupted by a signal (EINTR) is
    /// retried.
    ///
    /// # Errors
    ///
    /// The socket's error; a datagram longer than `buf` is an error of kind
    /// [`io::ErrorKind::InvalidData`] carrying a [`Truncated`] (the
    /// datagram is gone: it is never handed out cut short).
    pub(crate) fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<usize>> {
        // MSG_TRUNC: netlink returns the datagram's real length, also when
        // it did not fit.
        let flags = if wait {
            MsgFlags::MSG_TRUNC
        } else {
            MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT
        };
        match retry_eintr(|| recv(self.fd.as_raw_fd(), buf, flags)) {
            Ok(n) if n > buf.len() => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Truncated {
                    len: n,
                    room: buf.len(),
                },
            )),
            Ok(n) => Ok(Some(n)),
            Err(nix::errno::Errno::EAGAIN) if !wait => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A socket over an existing descriptor (a datagram socket pair in
    /// tests).
    #[cfg(test)]
    pub(crate) fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }
}

/// Runs `op` again for as long as a signal interrupts it (EINTR, only).
fn retry_eintr<T>(mut op: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match op() {
            Err(nix::errno::Errno::EINTR) => {}
            done => return done,
        }
    }
}

/// A datagram that did not fit the receive buffer (and was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated {
    /// The datagram's length.
    pub(crate) len: usize,
    /// The buffer's.
    pub(crate) room: usize,
}

impl std::fmt::Display for Truncated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a netlink datagram of {} bytes did not fit the {}-byte receive buffer",
            self.len, self.room
        )
    }
}

impl std::error::Error for Truncated {}

impl Truncated {
    /// The truncation behind an error of [`Socket::recv`], if that is what
    /// it is.
    pub(crate) fn of(e: &io::Error) -> Option<Self> {
        e.get_ref()?.downcast_ref::<Self>().copied()
    }
}
