//! Conntrack in the calling thread's network namespace, through a
//! `NETLINK_NETFILTER` socket (netlink-sys, as rtnetlink re-exports it);
//! the messages are built and read by [`crate::conntrack`].

use std::io;

use rtnetlink::sys::{Socket, protocols::NETLINK_NETFILTER};

use crate::conntrack::{Entry, Reply, StaleUdp, decode, delete_request, dump_request};
use crate::error::{Error, Result};

/// ENOENT: the entry is gone already.
const ENOENT: i32 = 2;
/// `MSG_TRUNC` (Linux): `recv` reports a datagram's real length even
/// when it did not fit.
const MSG_TRUNC: i32 = 0x20;
/// The receive buffer: a dump datagram is at most a few pages.
const BUF: usize = 1 << 17;

/// A ctnetlink socket of the calling thread's namespace.
struct Ct {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn io_err(what: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::io(what, e)
}

impl Ct {
    fn open() -> Result<Self> {
        let mut sock =
            Socket::new(NETLINK_NETFILTER).map_err(io_err("opening a ctnetlink socket"))?;
        sock.bind_auto()
            .map_err(io_err("binding a ctnetlink socket"))?;
        Ok(Self {
            sock,
            seq: 0,
            buf: Vec::with_capacity(BUF),
        })
    }

    fn send(&mut self, what: &str, msg: &[u8]) -> Result<()> {
        self.sock.send(msg, 0).map_err(io_err(what))?;
        Ok(())
    }

    /// The messages of the next datagram.
    fn recv(&mut self, what: &str) -> Result<Vec<Reply>> {
        self.buf.clear();
        let n = self
            .sock
            .recv(&mut self.buf, MSG_TRUNC)
            .map_err(io_err(what))?;
        if n > self.buf.len() {
            return Err(Error::kernel(
                what,
                format!("a {n}-byte datagram was truncated"),
            ));
        }
        decode(&self.buf).map_err(|e| Error::kernel(what, e))
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Every entry of `family` (`AF_INET` or `AF_INET6`).
    fn dump(&mut self, family: u8) -> Result<Vec<Entry>> {
        let what = "dumping the conntrack table";
        let seq = self.next_seq();
        self.send(what, &dump_request(family, seq))?;
        let mut out = Vec::new();
        loop {
            for r in self.recv(what)? {
                match r {
                    Reply::Entry(e) => out.push(e),
                    Reply::Done => return Ok(out),
                    Reply::Ack { errno, .. } if errno != 0 => {
                        return Err(Error::io(what, io::Error::from_raw_os_error(errno)));
                    }
                    Reply::Ack { .. } | Reply::Other => {}
                }
            }
        }
    }

    /// Deletes `e`; an entry gone already is not an error.
    fn delete(&mut self, e: &Entry) -> Result<bool> {
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
                            _ => Err(Error::io(what, io::Error::from_raw_os_error(errno))),
                        };
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Every conntrack entry of `family` (`AF_INET` or `AF_INET6`) in the
/// calling thread's network namespace.
///
/// # Errors
///
/// [`Error::Io`] when ctnetlink is unavailable or refuses;
/// [`Error::Kernel`] for a reply that cannot be read.
pub fn entries(family: u8) -> Result<Vec<Entry>> {
    Ct::open()?.dump(family)
}

/// Deletes the entries `filters` select in the calling thread's network
/// namespace (one dump per family, then one delete per entry); returns how
/// many it deleted.
///
/// # Errors
///
/// As [`entries`]; a delete the kernel refuses (other than for an entry
/// that expired meanwhile).
pub fn delete_stale(filters: &[StaleUdp]) -> Result<usize> {
    if filters.is_empty() {
        return Ok(0);
    }
    let mut ct = Ct::open()?;
    let mut families: Vec<u8> = filters.iter().map(|f| f.family).collect();
    families.sort_unstable();
    families.dedup();
    let mut deleted = 0;
    for family in families {
        let stale: Vec<Entry> = ct
            .dump(family)?
            .into_iter()
            .filter(|e| filters.iter().any(|f| f.matches(e)))
            .collect();
        for e in &stale {
            if ct.delete(e)? {
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
