//! Running external commands (mostly `ip`) with errors that say what failed.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Runs `argv` and returns its standard output; on failure the error carries
/// the command line and its standard error.
pub(crate) fn run(argv: &[&str]) -> Result<String> {
    let cmd = argv.join(" ");
    let Some((prog, args)) = argv.split_first() else {
        return Err(Error::InvalidName {
            name: cmd,
            why: "empty command line",
        });
    };
    let out = Command::new(prog)
        .args(args)
        // Never let a test command wait on the terminal.
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            cmd,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Polls `check` every few milliseconds until it says `true`, an error, or
/// the deadline. Used instead of fixed sleeps.
pub(crate) fn wait_for(what: &str, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    const DEADLINE: Duration = Duration::from_secs(10);
    let start = Instant::now();
    loop {
        if check()? {
            return Ok(());
        }
        if start.elapsed() > DEADLINE {
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: DEADLINE,
            });
        }
        thread::sleep(Duration::from_millis(5));
    }
}
