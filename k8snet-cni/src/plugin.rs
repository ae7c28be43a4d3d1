//! The plugin side: a [`Plugin`] trait and [`run`], which does what the Go
//! skeleton does: read the environment and stdin, negotiate the version,
//! dispatch the command and print the result, or the error object on
//! **stdout** (where libcni reads it) with exit status 1.

use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::Value;

use crate::config::{Attachment, NetConf, gc_attachments, parse_object};
use crate::env::{Command, Env};
use crate::error::{Error, Result};
use crate::result::CniResult;
use crate::version::Version;

/// One invocation: the environment and the configuration from stdin.
#[derive(Clone, Debug)]
pub struct Request {
    /// The `CNI_*` variables.
    pub env: Env,
    /// The configuration.
    pub conf: NetConf,
    /// Stdin as received (delegating plugins pass it on unchanged).
    pub stdin: Vec<u8>,
}

/// A GC invocation.
#[derive(Clone, Debug)]
pub struct GcRequest {
    /// The request.
    pub request: Request,
    /// The attachments that must be kept; everything else the plugin owns
    /// on this network may be released.
    pub valid: Vec<Attachment>,
}

/// A CNI plugin. [`run`] calls one method per invocation; errors carry
/// their CNI code ([`Error::code`]).
pub trait Plugin {
    /// The versions this plugin accepts (all by default).
    fn supported_versions(&self) -> &[Version] {
        &Version::ALL
    }

    /// ADD: attach and return the result (it is converted to the
    /// configuration's version before printing).
    ///
    /// # Errors
    ///
    /// Anything that stopped the attachment; the plugin has undone its own
    /// partial work.
    fn add(&self, req: &Request) -> Result<CniResult>;

    /// DEL: detach; succeed when things are already gone.
    ///
    /// # Errors
    ///
    /// Failures to release something that does exist.
    fn del(&self, req: &Request) -> Result<()>;

    /// CHECK: verify the attachment against `prevResult`.
    ///
    /// # Errors
    ///
    /// What differs.
    fn check(&self, req: &Request) -> Result<()>;

    /// GC (1.1.0): release what no valid attachment uses. Does nothing by
    /// default.
    ///
    /// # Errors
    ///
    /// Failures; GC continues after each and reports them together.
    fn gc(&self, req: &GcRequest) -> Result<()> {
        let _ = req;
        Ok(())
    }

    /// STATUS (1.1.0): `Ok` when ready for ADD. Ready by default.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] (50) or [`Error::Degraded`] (51).
    fn status(&self, req: &Request) -> Result<()> {
        let _ = req;
        Ok(())
    }
}

/// What one invocation printed and its exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes for stdout.
    pub stdout: Vec<u8>,
    /// 0 on success, 1 on error (as the Go skeleton).
    pub status: u8,
}

/// Runs `plugin` as a process: environment, stdin, stdout, exit status.
pub fn run<P: Plugin + ?Sized>(plugin: &P) -> ExitCode {
    // Room for a typical configuration up front: read_to_end grows an
    // empty buffer from 32 bytes, one read(2) per doubling.
    let mut stdin = Vec::with_capacity(16 * 1024);
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => run_with(plugin, |k| std::env::var(k).ok(), &stdin),
        Err(e) => error_outcome(&Error::io("reading stdin", e), ""),
    };
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done if stdout is gone; the status still tells.
    let _ = out.write_all(&outcome.stdout).and_then(|()| out.flush());
    ExitCode::from(outcome.status)
}

/// Runs one invocation with the environment behind `lookup` and `stdin`,
/// returning what to print: the testable core of [`run`].
pub fn run_with<P: Plugin + ?Sized>(
    plugin: &P,
    lookup: impl Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Outcome {
    // The version to stamp errors with: the configuration's if it says.
    let stamped = parse_object(stdin, "stdin")
        .ok()
        .and_then(|m| {
            m.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    match dispatch(plugin, lookup, stdin) {
        Ok(stdout) => Outcome { stdout, status: 0 },
        Err(e) => error_outcome(&e, &stamped),
    }
}

fn error_outcome(e: &Error, version: &str) -> Outcome {
    let mut stdout = serde_json::to_vec(&e.to_cni(version)).unwrap_or_default();
    stdout.push(b'\n');
    Outcome { stdout, status: 1 }
}

fn dispatch<P: Plugin + ?Sized>(
    plugin: &P,
    lookup: impl Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Result<Vec<u8>> {
    let env = Env::from_lookup(lookup)?;
    let supported = plugin.supported_versions();
    if env.command == Command::Version {
        return Ok(version_info(stdin, supported));
    }
    let conf = NetConf::from_slice(stdin)?;
    // The Go skeleton's validateConfig, for every command but VERSION: a
    // network name is needed (host-local keeps its state under it).
    if conf.name.is_empty() {
        return Err(Error::config("name", "missing network name"));
    }
    if !supported.contains(&conf.cni_version) {
        return Err(Error::IncompatibleVersion {
            config: conf.cni_version.to_string(),
            supported: supported.iter().map(ToString::to_string).collect(),
        });
    }
    let needs = |min: Version, what: &str| -> Result<()> {
        if conf.cni_version < min {
            Err(Error::IncompatibleVersion {
                config: conf.cni_version.to_string(),
                supported: vec![format!("{min} or later for {what}")],
            })
        } else {
            Ok(())
        }
    };
    match env.command {
        Command::Check => needs(Version::V0_4_0, "CHECK")?,
        Command::Gc => needs(Version::V1_1_0, "GC")?,
        Command::Status => needs(Version::V1_1_0, "STATUS")?,
        _ => {}
    }
    let valid = if env.command == Command::Gc {
        gc_attachments(&conf.raw)?.unwrap_or_default()
    } else {
        Vec::new()
    };
    let req = Request {
        env,
        conf,
        stdin: stdin.to_vec(),
    };
    match req.env.command {
        Command::Add => {
            let result = plugin.add(&req)?;
            let mut out = result
                .try_to_json_string(req.conf.cni_version)?
                .into_bytes();
            out.push(b'\n');
            Ok(out)
        }
        Command::Del => plugin.del(&req).map(|()| Vec::new()),
        Command::Check => plugin.check(&req).map(|()| Vec::new()),
        Command::Status => plugin.status(&req).map(|()| Vec::new()),
        Command::Gc => plugin
            .gc(&GcRequest {
                request: req,
                valid,
            })
            .map(|()| Vec::new()),
        Command::Version => Ok(Vec::new()),
    }
}

/// VERSION's answer: the input's `cniVersion` (as the spec says; the
/// latest if absent) and the supported versions.
fn version_info(stdin: &[u8], supported: &[Version]) -> Vec<u8> {
    let asked = parse_object(stdin, "stdin")
        .ok()
        .and_then(|m| {
            m.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| Version::LATEST.to_string());
    let v = serde_json::json!({
        "cniVersion": asked,
        "supportedVersions": supported.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    });
    let mut out = v.to_string().into_bytes();
    out.push(b'\n');
    out
}
