//! The crate's only `unsafe` code: copying lowered messages into libnftnl
//! objects and serialising them, parsing the kernel's dump messages back
//! through libnftnl, and the netlink socket options libmnl does not wrap.
//!
//! Every libnftnl object is allocated, used and freed inside one function
//! through the `Owned` guard, so nothing here outlives a call; every
//! message is built into a buffer whose size was checked first.

use std::ffi::{CString, c_void};
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

mod build;
mod parse;

pub(crate) use build::Request;
pub(crate) use parse::{parse_chain, parse_elems, parse_rule, parse_set};

/// How long a blocking receive (a list) waits for the kernel.
const RECV_TIMEOUT_SECS: libc::time_t = 30;
/// Bytes of the scratch buffer one message is built in.
const SCRATCH: usize = 512 * 1024;
/// Netlink socket options (`linux/netlink.h`).
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const SOL_NETLINK: libc::c_int = 270;
/// `nfnetlink` message types (`NFT_MSG_*`).
const NEWTABLE: u16 = 0;
const GETTABLE: u16 = 1;
const DELTABLE: u16 = 2;
const NEWCHAIN: u16 = 3;
const GETCHAIN: u16 = 4;
const DELCHAIN: u16 = 5;
const NEWRULE: u16 = 6;
const GETRULE: u16 = 7;
const DELRULE: u16 = 8;
const NEWSET: u16 = 9;
const GETSET: u16 = 10;
const DELSET: u16 = 11;
const NEWSETELEM: u16 = 12;
const GETSETELEM: u16 = 13;
const DELSETELEM: u16 = 14;
const F_ACK: u16 = 0x4;
const F_DUMP: u16 = 0x300;
const F_CREATE: u16 = 0x400;
const F_APPEND: u16 = 0x800;

/// A buffer aligned for `struct nlmsghdr` (libnftnl writes and reads
/// headers in place).
pub(crate) struct Aligned(Vec<u64>);

impl Aligned {
    pub(crate) fn new(bytes: usize) -> Self {
        Self(vec![0; bytes.div_ceil(8)])
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: a Vec<u64> is valid, initialised memory of len * 8 bytes;
        // u8 has no alignment or validity requirements.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), self.0.len() * 8) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and the borrow of self is exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), self.0.len() * 8)
        }
    }
}

/// A libnftnl object freed on drop.
struct Owned<T> {
    ptr: NonNull<T>,
    free: unsafe extern "C" fn(*const T),
}

impl<T> Owned<T> {
    fn new(ptr: *mut T, free: unsafe extern "C" fn(*const T)) -> io::Result<Self> {
        NonNull::new(ptr)
            .map(|ptr| Self { ptr, free })
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Gives up ownership (to a parent object that frees it).
    fn release(self) -> *mut T {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: ptr came from the matching libnftnl alloc function and is
        // freed exactly once (release() forgets self instead).
        unsafe { (self.free)(self.ptr.as_ptr()) }
    }
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "message larger than the build buffer",
    )
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A netlink socket on the netfilter bus, in the network namespace of the
/// thread that opened it (for its whole life).
pub(crate) struct Socket {
    inner: mnl::Socket,
    scratch: Aligned,
}

impl std::os::fd::AsFd for Socket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor is libmnl's socket, open for as long as
        // `self.inner` lives, which the borrow of `self` bounds.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.inner.as_raw_fd()) }
    }
}

// SAFETY: the socket is an fd plus libmnl's small struct around it, owned
// by this value alone; netlink sockets may be used from any thread (they stay
// in the namespace they were opened in). `Aligned` is plain memory.
unsafe impl Send for Socket {}

impl Socket {
    /// Opens and binds the socket and asks for capped, extended acks.
    pub(crate) fn open() -> io::Result<Self> {
        let inner = mnl::Socket::new(mnl::Bus::Netfilter)?;
        let s = Self {
            inner,
            scratch: Aligned::new(SCRATCH),
        };
        s.setopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)?;
        // Extended acks are a bonus (a reason text); older kernels lack them.
        let _ = s.setopt(SOL_NETLINK, NETLINK_EXT_ACK, 1);
        // A list that never ends must not hang the caller.
        let timeout = libc::timeval {
            tv_sec: RECV_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: the fd is the open socket owned by s; timeout is a live
        // timeval and the length given is its size.
        let rc = unsafe {
            libc::setsockopt(
                s.inner.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast::<c_void>(),
                len_u32(size_of::<libc::timeval>()),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(s)
    }

    fn setopt(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: the fd is the open socket owned by self; value points to a
        // live c_int and the length given is its size.
        let rc = unsafe {
            libc::setsockopt(
                self.inner.as_raw_fd(),
                level,
                name,
                (&raw const value).cast::<c_void>(),
                len_u32(size_of::<libc::c_int>()),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Makes room for a whole transaction in one send, and for its acks.
    pub(crate) fn set_buffers(&self, send: usize, recv: usize) -> io::Result<()> {
        let clamp = |n: usize| libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX / 2);
        self.setopt(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, clamp(send))?;
        self.setopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, clamp(recv))
    }

    /// Sends the bytes as one datagram (one transaction).
    pub(crate) fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let sent = self.inner.send(bytes)?;
        if sent == bytes.len() {
            Ok(())
        } else {
            Err(io::Error::other("netlink send was cut short"))
        }
    }

    /// Receives one datagram; `Ok(None)` if `wait` is false and nothing is
    /// queued.
    pub(crate) fn recv(&self, buf: &mut Aligned, wait: bool) -> io::Result<Option<usize>> {
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        let bytes = buf.bytes_mut();
        // SAFETY: the fd is open; bytes is a writable buffer of the given
        // length that outlives the call.
        let n = unsafe {
            libc::recv(
                self.inner.as_raw_fd(),
                bytes.as_mut_ptr().cast::<c_void>(),
                bytes.len(),
                flags,
            )
        };
        if n >= 0 {
            return Ok(Some(usize::try_from(n).unwrap_or(0)));
        }
        let e = io::Error::last_os_error();
        if !wait && e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        }
    }

    /// Appends the message built by `f` (which returns the header pointer
    /// after filling it) to `out`.
    fn emit(
        &mut self,
        out: &mut Vec<u8>,
        estimate: usize,
        f: impl FnOnce(*mut libc::c_char) -> io::Result<*mut libc::nlmsghdr>,
    ) -> io::Result<()> {
        if estimate + 4096 > SCRATCH {
            return Err(too_big());
        }
        let buf = self.scratch.bytes_mut();
        buf[..estimate + 4096].fill(0);
        let nlh = f(buf.as_mut_ptr().cast())?;
        // SAFETY: nlh points into the scratch buffer, where libnftnl just
        // wrote a complete header.
        let len = unsafe { (*nlh).nlmsg_len } as usize;
        let len = len.next_multiple_of(4);
        if len > SCRATCH {
            return Err(too_big());
        }
        out.extend_from_slice(&self.scratch.bytes()[..len]);
        Ok(())
    }
}
