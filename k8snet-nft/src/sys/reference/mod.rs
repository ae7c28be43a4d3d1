//! libnftnl as the reference for the crate's own netlink encoder and
//! parser (tests only): the code the `linux` backend used before, kept so
//! the differential tests can compare bytes and parsed values. The only
//! `unsafe` code of the crate, and only in test builds.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::ptr::NonNull;

mod build;
mod parse;

pub(crate) use parse::{parse_chain, parse_elems, parse_rule, parse_set};

/// Bytes of the scratch buffer one message is built in.
const SCRATCH: usize = 512 * 1024;
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

/// Builds messages through libnftnl in a scratch buffer.
pub(crate) struct Builder {
    scratch: Aligned,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            scratch: Aligned::new(SCRATCH),
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
