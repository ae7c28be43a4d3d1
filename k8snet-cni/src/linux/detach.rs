//! A detached process for work the bridge plugin need not wait for:
//! deleting the veth pair on DEL (`RTM_DELLINK` waits out an RCU barrier,
//! about 20 ms, in the caller's context), and on ADD and DEL the last close
//! of the netfilter socket that changed the masquerade rules (it waits for
//! the rest of an RCU grace period, up to about 10 ms).
//!
//! The plugin forks and goes on without waiting: the child points its
//! stdin, stdout and stderr at `/dev/null` (so that the runtime, which
//! waits for the plugin's exit and for the end of its stdout, does not wait
//! for it), closes every other descriptor but the sockets it needs, starts
//! a new session (`setsid`), forks again and exits at once. The
//! grandchild, whose parent is gone, sends one prepared netlink request on
//! a socket the plugin opened (the socket belongs to the namespace it was
//! opened in) and exits. The netfilter socket the plugin used, when given,
//! the grandchild holds until then, so the plugin's exit is not its last
//! close. With no request to send (only a netfilter socket to outlive the
//! plugin), the grandchild first waits for an RCU grace period, so that
//! its own close finds the transaction's destroy work done: the close would
//! otherwise wait for it while holding the namespace's nftables commit
//! mutex, stalling the next plugin's nftables change. If the second fork
//! fails, the child does the work itself.
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
//! allocation, no locks. Right after the first fork the child closes every
//! descriptor it inherited except the ones the work needs (the netlink
//! socket of the request, the netfilter socket it is to outlive, and
//! `/dev/null` as its stdio): an embedding process's pipes, sockets and
//! files must not stay open in a process it does not know about (a pipe's
//! reader would not see end-of-file until the detached process exits).
//! This module is the crate's only unsafe code.

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
/// given) and exits. `keep` is a further descriptor it keeps open (the
/// netfilter socket whose last close it is to make); every other one it
/// inherited it closes at once. `Ok` once the first fork succeeded (the process then
/// exists, or the child does the work itself); an error when it could not
/// be started (the caller then does the work itself).
///
/// # Errors
///
/// `fork` failing, or `/dev/null` missing.
pub(crate) fn run_detached(request: Option<(RawFd, &[u8])>, keep: Option<RawFd>) -> io::Result<()> {
    reap_exited();
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let null_fd = null.as_raw_fd();
    let (socket, ptr, len) = match request {
        Some((fd, bytes)) => (fd, bytes.as_ptr(), bytes.len()),
        None => (-1, std::ptr::null(), 0),
    };
    let keep = keep.unwrap_or(-1);
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
            unsafe { detach_and_send(null_fd, socket, keep, ptr, len) }
        }
        pid => {
            children.push(pid);
            Ok(())
        }
    }
}

/// Moves `fd` (when it is one of 0, 1 and 2, which are about to become
/// `/dev/null`) above them; the descriptor to use from now on.
///
/// # Safety
///
/// Async-signal-safe; `fd` is -1 or open.
unsafe fn above_stdio(fd: RawFd) -> RawFd {
    if (0..3).contains(&fd) {
        // SAFETY: a plain system call; the old number is reused by dup2.
        let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD, 3) };
        if moved >= 0 {
            return moved;
        }
    }
    fd
}

/// Closes every descriptor from 3 up except `a` and `b` (-1 for none),
/// with `close_range`, or where that system call is missing (before Linux
/// 5.9) one by one up to the descriptor limit.
///
/// # Safety
///
/// Async-signal-safe: system calls on stack memory only.
unsafe fn close_all_but(a: RawFd, b: RawFd) {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    // The ranges between the kept descriptors, from 3 on.
    let ranges = [
        (3, lo - 1),
        (lo.max(2) + 1, hi - 1),
        (hi.max(2) + 1, RawFd::MAX),
    ];
    let mut failed = false;
    for (first, last) in ranges {
        if first > last || last < 3 {
            continue;
        }
        // SAFETY: a plain system call; both bounds are non-negative.
        let r = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                last as libc::c_uint,
                0,
            )
        };
        if r != 0 {
            failed = true;
            break;
        }
    }
    if !failed {
        return;
    }
    let keep = |fd: RawFd| fd < 3 || fd == a || fd == b;
    // No `close_range` (before Linux 5.9): one by one up to the limit.
    // Slow with a high limit, but nobody waits for this process.
    // SAFETY: plain system calls on a stack value.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let top = if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0 {
            // Never above fs.nr_open's default ceiling (2^20): an
            // "unlimited" limit must not mean 2^31 calls.
            RawFd::try_from(limit.rlim_cur).map_or(1 << 20, |l| l.min(1 << 20))
        } else {
            1024
        };
        for fd in 3..top {
            if !keep(fd) {
                libc::close(fd);
            }
        }
    }
}

/// The child's part: every inherited descriptor closed but those it needs,
/// stdio on `/dev/null`, a new session, a second fork (the child exits at
/// once), and in the grandchild (or the child, if that fork failed) the
/// request.
///
/// # Safety
///
/// Only in the child of `fork`, with `null`, `socket` and `keep` (when not
/// -1) open and `ptr`/`len` a readable buffer.
unsafe fn detach_and_send(
    null: RawFd,
    socket: RawFd,
    keep: RawFd,
    ptr: *const u8,
    len: usize,
) -> ! {
    // SAFETY: plain system calls on descriptors and memory valid in this
    // process (see the function's contract); `_exit` skips every handler.
    unsafe {
        let socket = above_stdio(socket);
        let keep = above_stdio(keep);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        close_all_but(socket, keep);
        libc::setsid();
        match libc::fork() {
            // No grandchild: this process does the work.
            -1 => {}
            0 => {}
            _ => libc::_exit(0),
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

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// Reads `r` to its end on a thread; whether the end came within
    /// `limit` (a bound on waiting, not a measured time).
    fn eof_within(mut r: std::io::PipeReader, limit: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = tx.send(r.read_to_end(&mut sink).is_ok());
        });
        rx.recv_timeout(limit).unwrap_or(false)
    }

    #[test]
    fn the_detached_process_holds_no_descriptor_but_its_sockets() {
        // The "netlink socket" is one end of a stream pair whose buffer is
        // full: the detached process blocks in `send` until the other end
        // is closed, so it is alive for as long as the test wants.
        let (full, peer) = UnixStream::pair().unwrap();
        full.set_nonblocking(true).unwrap();
        let chunk = [0u8; 4096];
        loop {
            match (&full).write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling the socket: {e}"),
            }
        }
        full.set_nonblocking(false).unwrap();
        // A pipe of the embedding process, open across the start.
        let (reader, writer) = std::io::pipe().unwrap();
        run_detached(Some((full.as_raw_fd(), &chunk)), None).unwrap();
        drop(writer);
        // Our copy is closed: only a forked process could hold the pipe.
        let eof = eof_within(reader, Duration::from_secs(10));
        // Let the detached process go before asserting: drain the buffer
        // so that its `send` completes (closing our end alone would not do
        // if it held a copy of that end too, as it did before the fix).
        peer.set_nonblocking(true).unwrap();
        let mut sink = [0u8; 4096];
        while (&peer).read(&mut sink).is_ok_and(|n| n > 0) {}
        drop(peer);
        drop(full);
        assert!(eof, "a detached process still holds the pipe's write end");
    }
}
