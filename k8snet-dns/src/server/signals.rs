//! Waiting for SIGTERM, SIGINT and SIGHUP.

use nix::sys::signal::{SigSet, Signal};

use crate::Error;

/// A signal the server reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalKind {
    /// SIGTERM: shut down gracefully.
    Terminate,
    /// SIGINT: shut down gracefully.
    Interrupt,
    /// SIGHUP: reload.
    Hangup,
}

/// SIGTERM, SIGINT and SIGHUP, blocked so that a thread can wait for
/// them instead of the process dying.
///
/// Call [`Signals::block`] in the main thread *before* starting any other
/// thread (threads inherit the mask), then [`Signals::wait`].
#[derive(Debug)]
pub struct Signals {
    set: SigSet,
}

impl Signals {
    /// Blocks the three signals in the calling thread (and the threads it
    /// starts afterwards).
    ///
    /// # Errors
    /// [`Error::Io`] if the mask cannot be changed.
    pub fn block() -> Result<Self, Error> {
        let mut set = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            set.add(s);
        }
        set.thread_block()
            .map_err(|e| Error::io("block signals", e.into()))?;
        Ok(Self { set })
    }

    /// Waits for the next of the three signals.
    ///
    /// # Errors
    /// [`Error::Io`] if waiting fails.
    pub fn wait(&self) -> Result<SignalKind, Error> {
        loop {
            match self.set.wait() {
                Ok(Signal::SIGTERM) => return Ok(SignalKind::Terminate),
                Ok(Signal::SIGINT) => return Ok(SignalKind::Interrupt),
                Ok(Signal::SIGHUP) => return Ok(SignalKind::Hangup),
                Ok(_) => {}
                Err(e) => return Err(Error::io("wait for a signal", e.into())),
            }
        }
    }
}
