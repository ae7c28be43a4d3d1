//! A detached process for work the bridge plugin need not wait for:
//! deleting the veth pair on DEL (`RTM_DELLINK` waits out an RCU barrier,
//! about 20 ms, in the caller's context), and on ADD and DEL the last close
//! of the netfilter socket that changed the masquerade rules (it waits for
//! the rest of an RCU grace period, up to about 10 ms).
//!
//! The plugin forks and goes on without waiting: the child starts a new
//! session (`setsid`), forks again and exits at once. The grandchild,
//! whose parent is gone, points its stdin, stdout and stderr at
//! `/dev/null` (so that the runtime, which waits for the plugin's exit and
//! for the end of its stdout, does not wait for it), sends one prepared
//! netlink request on a socket the plugin opened (the socket belongs to
//! the namespace it was opened in) and exits. Whatever else the plugin had
//! open (its netfilter socket) the grandchild holds until then, so the
//! plugin's exit is not the last close. With no request to send (only a
//! netfilter socket to outlive the plugin), the grandchild first waits for
//! an RCU grace period, so that its own close finds the transaction's
//! destroy work done: the close would otherwise wait for it while holding
//! the namespace's nftables commit mutex, stalling the next plugin's
//! nftables change. If the second fork fails, the child does the work
//! itself.
//!
//! Not waiting matters on a loaded machine: the plugin would sleep until
//! the scheduler runs the child, which at a load average of 5 on two cores
//! takes milliseconds. The child, which exits at once, is reaped the next
//! time this module starts one (the plugin is a short-lived process, and
//! its exit hands any child left to init; a long-lived process, such as a
//! test harness running plugins in process, reaps them here, by pid).
//!
//! The plugin may be one thread of a multithreaded process (the crate's
//! tests run plugins in process), so the two forked processes make only
//! async-signal-safe system calls on memory prepared before the fork: no
//! allocation, no locks. This module is the crate's only unsafe code.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::libc;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// `membarrier(2)`'s command that waits for an RCU grace period.
const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;

/// Children started here that have not been reaped yet.
static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Reaps the children started earlier that have exited (only those: other
/// children of the process are left to their owners).
fn reap_exited() {
    let Ok(mut children) = CHILDREN.lock() else {
        return;
    };
    children.retain(|pid| {
        !matches!(
            waitpid(Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD)
        )
    });
}

/// Starts the detached process, which sends `request` on `socket` (if
/// given) and exits. `Ok` once the first fork succeeded (the process then
/// exists, or the child does the work itself); an error when it could not
/// be started (the caller then does the work itself).
///
/// # Errors
///
/// `fork` failing, or `/dev/null` missing.
pub(crate) fn run_detached(request: Option<(RawFd, &[u8])>) -> io::Result<()> {
    reap_exited();
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let null_fd = null.as_raw_fd();
    let (socket, ptr, len) = match request {
        Some((fd, bytes)) => (fd, bytes.as_ptr(), bytes.len()),
        None => (-1, std::ptr::null(), 0),
    };
    // Taken before the fork: the child must not find it held.
    let mut children = CHILDREN.lock().map_err(|_| io::Error::other("poisoned"))?;
    // SAFETY: the child runs `detach_and_send`, which makes only
    // async-signal-safe calls and never returns.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: in the child of a fork; `null_fd`, `socket` and the
            // request bytes were made before the fork and are valid here.
            unsafe { detach_and_send(null_fd, socket, ptr, len) }
        }
        pid => {
            children.push(pid);
            Ok(())
        }
    }
}

/// The child's part: a new session, a second fork (the child exits at
/// once), and in the grandchild (or the child, if that fork failed) the
/// request.
///
/// # Safety
///
/// Only in the child of `fork`, with `null` and `socket` (when not -1) open
/// and `ptr`/`len` a readable buffer.
unsafe fn detach_and_send(null: RawFd, socket: RawFd, ptr: *const u8, len: usize) -> ! {
    // SAFETY: plain system calls on descriptors and memory valid in this
    // process (see the function's contract); `_exit` skips every handler.
    unsafe {
        libc::setsid();
        match libc::fork() {
            // No grandchild: this process does the work.
            -1 => {}
            0 => {}
            _ => libc::_exit(0),
        }
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if socket >= 0 && len > 0 {
            // The kernel handles an rtnetlink request inside `send`: the
            // link is gone when it returns (and an RCU barrier has passed).
            libc::send(socket, ptr.cast(), len, 0);
        } else {
            // Only a netfilter socket to close: wait for a grace period
            // first (`MEMBARRIER_CMD_GLOBAL` is `synchronize_rcu`), so that
            // the transaction's destroy work is done by the time the close
            // would flush it. That flush holds the namespace's nftables
            // commit mutex while it waits, which would stall every other
            // plugin's nftables change meanwhile.
            libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0);
        }
        libc::_exit(0)
    }
}
