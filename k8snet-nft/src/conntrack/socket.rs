//! The ctnetlink socket: a `NETLINK_NETFILTER` socket of the calling
//! thread's network namespace (safe `nix` wrappers), speaking the messages
//! of [`crate::conntrack`].

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};

use super::{AF_INET, AF_INET6, DecodeError, Entry, Reply, decode, delete_request, dump_request};
use crate::error::{Error, Result};

/// ENOENT: the entry is gone already.
const ENOENT: i32 = 2;
/// The receive buffer: a dump datagram is at most a few pages.
const BUF: usize = 1 << 17;

fn io_err(what: &str) -> impl FnOnce(nix::Error) -> Error + '_ {
    move |e| Error::Io {
        what: what.to_owned(),
        source: e.into(),
    }
}

/// A ctnetlink socket in the network namespace of the thread that opened
/// it (it stays there whatever thread uses it later).
pub struct Conntrack {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Conntrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conntrack")
            .field("fd", &self.fd.as_raw_fd())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Conntrack {
    /// Opens a ctnetlink socket in the calling thread's namespace.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be opened or bound.
    pub fn open() -> Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(io_err("opening a ctnetlink socket"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(io_err("binding a ctnetlink socket"))?;
        Ok(Self {
            fd,
            seq: 0,
            buf: vec![0; BUF],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, what: &str, msg: &[u8]) -> Result<()> {
        send(self.fd.as_raw_fd(), msg, MsgFlags::empty()).map_err(io_err(what))?;
        Ok(())
    }

    /// The messages of the next datagram.
    fn recv(&mut self, what: &str) -> Result<Vec<Reply>> {
        // MSG_TRUNC: netlink reports a datagram's real length even when it
        // did not fit.
        let n =
            recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_TRUNC).map_err(io_err(what))?;
        if n > self.buf.len() {
            return Err(Error::Decode {
                what: what.to_owned(),
                source: DecodeError {
                    offset: self.buf.len(),
                    what: "datagram longer than the receive buffer",
                },
            });
        }
        decode(&self.buf[..n]).map_err(|source| Error::Decode {
            what: what.to_owned(),
            source,
        })
    }

    /// Every entry of `family` ([`AF_INET`] or [`AF_INET6`]).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when ctnetlink is unavailable or refuses;
    /// [`Error::Decode`] for a reply that cannot be read.
    pub fn entries(&mut self, family: u8) -> Result<Vec<Entry>> {
        let what = "dumping the conntrack table";
        let seq = self.next_seq();
        self.send(what, &dump_request(family, seq))?;
        let mut out = Vec::new();
        loop {
            for r in self.recv(what)? {
                match r {
                    Reply::Entry(e) => out.push(e),
                    Reply::Done => return Ok(out),
                    Reply::Ack { seq: s, errno } if s == seq && errno != 0 => {
                        return Err(Error::Io {
                            what: what.to_owned(),
                            source: io::Error::from_raw_os_error(errno),
                        });
                    }
                    Reply::Ack { .. } | Reply::Other => {}
                }
            }
        }
    }

    /// Every entry of both families (IPv4 first).
    ///
    /// # Errors
    ///
    /// As [`Conntrack::entries`].
    pub fn list(&mut self) -> Result<Vec<Entry>> {
        let mut out = self.entries(AF_INET)?;
        out.extend(self.entries(AF_INET6)?);
        Ok(out)
    }

    /// Deletes `e` (by its original tuple, in its zone, and only while its
    /// id is `e.id`); returns whether it was still there. An entry gone
    /// already is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the kernel refuses; [`Error::Decode`] for a reply
    /// that cannot be read.
    pub fn delete(&mut self, e: &Entry) -> Result<bool> {
        let what = "deleting a conntrack entry";
        let seq = self.next_seq();
        self.send(what, &delete_request(e, seq))?;
        loop {
            for r in self.recv(what)? {
                match r {
                    Reply::Ack { seq: s, errno } if s == seq => {
                        return match errno {
                            0 => Ok(true),
                            ENOENT => Ok(false),
                            _ => Err(Error::Io {
                                what: what.to_owned(),
                                source: io::Error::from_raw_os_error(errno),
                            }),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// Deletes every entry of `families` that `pred` selects (one dump per
    /// family, then one delete per entry); returns how many it deleted
    /// (entries that expired meanwhile are not counted).
    ///
    /// # Errors
    ///
    /// As [`Conntrack::entries`] and [`Conntrack::delete`].
    pub fn delete_where(
        &mut self,
        families: &[u8],
        mut pred: impl FnMut(&Entry) -> bool,
    ) -> Result<usize> {
        let mut deleted = 0;
        for &family in families {
            let doomed: Vec<Entry> = self
                .entries(family)?
                .into_iter()
                .filter(|e| pred(e))
                .collect();
            for e in &doomed {
                if self.delete(e)? {
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}
