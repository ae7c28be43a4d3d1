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

    /// Sends the bytes as one datagram (one transaction).
    pub(crate) fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let sent = send(self.fd.as_raw_fd(), bytes, MsgFlags::empty())?;
        if sent == bytes.len() {
            Ok(())
        } else {
            Err(io::Error::other("netlink send was cut short"))
        }
    }

    /// Receives one datagram into `buf`; `Ok(None)` if `wait` is false and
    /// nothing is queued.
    pub(crate) fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<usize>> {
        let flags = if wait {
            MsgFlags::empty()
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        match recv(self.fd.as_raw_fd(), buf, flags) {
            Ok(n) => Ok(Some(n)),
            Err(nix::errno::Errno::EAGAIN) if !wait => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
