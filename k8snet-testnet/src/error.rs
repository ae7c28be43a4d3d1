//! The one error type of the harness.

use std::io;
use std::net::IpAddr;
use std::process::ExitStatus;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a harness operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command could not be started at all (for example `ip` is missing).
    #[error("cannot start `{cmd}`: {source}")]
    Spawn {
        /// The command line, space separated.
        cmd: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A command ran but exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line, space separated.
        cmd: String,
        /// How it exited.
        status: ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A thread could not enter a network namespace.
    #[error("cannot enter network namespace {netns}: {source}")]
    Enter {
        /// The namespace name.
        netns: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Some other I/O failed (a sysctl write, reading `/run/netns`, spawning a thread).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// An address is outside the test address plan (see [`crate::plan`]).
    #[error("address {0} is outside the test address plan")]
    OutsidePlan(IpAddr),
    /// A namespace, link or sysctl name was rejected.
    #[error("invalid name {name:?}: {why}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        why: &'static str,
    },
    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        after: Duration,
    },
}
