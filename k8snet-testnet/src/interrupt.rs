//! Interrupting a blocking system call on demand, to test that EINTR is
//! retried.
//!
//! A receive on a socket with a receive timeout fails with EINTR when its
//! process is stopped and continued (signal(7)). A stop applies to a whole
//! process, so the receive runs in a child: the test binary again, running
//! only the one test, in the child's role (an environment variable says
//! which role). The two halves:
//!
//! - the parent calls [`stop_and_continue_child`] with the test's full
//!   name; it starts the child, waits for its word, stops and continues it,
//!   tells it to go on and asserts that it passed;
//! - the child starts a reader thread that blocks in `recvfrom`, calls
//!   [`reader_blocked`] with that thread's id from [`thread_id`], then
//!   wakes the reader with a datagram and checks what it got.
//!
//! ```no_run
//! # fn receive_retrying_eintr() {}
//! const ROLE: &str = "MY_CRATE_EINTR_CHILD";
//!
//! #[test]
//! fn a_receive_interrupted_by_a_signal_is_retried() {
//!     if std::env::var_os(ROLE).is_some() {
//!         // The child: start a reader thread that sends its
//!         // `thread_id()` and blocks in the receive under test, call
//!         // `reader_blocked(&tid)`, then wake the reader and check it.
//!         return;
//!     }
//!     k8snet_testnet::interrupt::stop_and_continue_child(
//!         "tests::a_receive_interrupted_by_a_signal_is_retried",
//!         ROLE,
//!     );
//! }
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long the waits here poll for a state before they fail the test (a
/// bound against hanging, not a measurement). Also a fitting receive
/// timeout for the child's socket.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The line the child prints once its reader sleeps in the receive.
const READY: &str = "k8snet-eintr-ready ";

/// Polls `cond` until it holds, or fails the test after [`PATIENCE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The calling thread's id (as `/proc/<pid>/task/<tid>` names it).
pub fn thread_id() -> String {
    let task = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    task.file_name()
        .expect("<pid>/task/<tid>")
        .to_string_lossy()
        .into_owned()
}

/// The child's half: waits until thread `tid` of this process sleeps in
/// `recvfrom` (not merely on its way there), tells the parent, and returns
/// when the parent has stopped and continued this process.
pub fn reader_blocked(tid: &str) {
    let syscall = format!("/proc/self/task/{tid}/syscall");
    let recvfrom = nix::libc::SYS_recvfrom.to_string();
    wait_until("the reader to block in recvfrom", || {
        std::fs::read_to_string(&syscall)
            .is_ok_and(|s| s.split(' ').next() == Some(recvfrom.as_str()))
    });
    println!("{READY}{tid}");
    std::io::stdout().flush().expect("stdout");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    assert_eq!(line, "go\n", "the parent's word");
}

/// The parent's half: runs `test` (its full name in this test binary) in a
/// child process with the environment variable `role` set, waits until the
/// child's reader sleeps in its receive, stops the child and waits until
/// the reader is stopped, continues it, lets the child go on, and asserts
/// that the child's test passed.
pub fn stop_and_continue_child(test: &str, role: &str) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(role, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child");
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut seen = String::new();
    let tid = loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).expect("the child's output");
        assert!(n > 0, "the child ended early:\n{seen}");
        // The harness writes the test's name before it, on the same line.
        if let Some((_, t)) = line.trim().split_once(READY) {
            break t.to_owned();
        }
        seen.push_str(&line);
    };
    let target = Pid::from_raw(i32::try_from(pid).expect("a pid"));
    let reader = format!("/proc/{pid}/task/{tid}/stat");
    kill(target, Signal::SIGSTOP).expect("SIGSTOP the child");
    wait_until("the reader to stop", || task_state(&reader) == Some('T'));
    kill(target, Signal::SIGCONT).expect("SIGCONT the child");
    wait_until("the reader to go on", || task_state(&reader) != Some('T'));
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"go\n")
        .expect("tell the child");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("the child's output");
    let status = child.wait().expect("the child's status");
    assert!(status.success(), "the child failed:\n{seen}{rest}");
}

/// The state letter of a task (`R`, `S`, `T`, ...), from its `stat` file.
fn task_state(stat: &str) -> Option<char> {
    let text = std::fs::read_to_string(stat).ok()?;
    text.rsplit_once(") ")?.1.chars().next()
}
