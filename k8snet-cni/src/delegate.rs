//! Calling the IPAM plugin named by `ipam.type`, as the reference plugins
//! do (same stdin, same `CNI_*`, the plugin found on `CNI_PATH`).
//!
//! `k8snet-host-local` is this crate's own host-local, so it runs in
//! process instead (same code, same files, no fork and exec on the ADD
//! path); any other type, the reference `host-local` included, is executed.

use crate::env::Command;
use crate::error::{Error, Result};
use crate::hostlocal::HostLocal;
use crate::plugin::{GcRequest, Plugin, Request};
use crate::result::CniResult;
use crate::runtime::{RuntimeConf, find_plugin};
use crate::version::Version;

/// The IPAM type that runs in process.
pub const IN_PROCESS_IPAM: &str = "k8snet-host-local";

fn ipam_type(req: &Request) -> Result<&str> {
    req.conf
        .ipam_type()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::config("ipam.type", "missing"))
}

/// Whether the configuration has an IPAM section with a type.
pub fn has_ipam(req: &Request) -> bool {
    req.conf.ipam_type().is_some_and(|t| !t.is_empty())
}

fn exec(req: &Request, command: Command, stdin: &[u8]) -> Result<Vec<u8>> {
    let ty = ipam_type(req)?;
    let bin = find_plugin(ty, &req.env.path)?;
    let rt = RuntimeConf {
        container_id: req.env.container_id.clone(),
        netns: req.env.netns.clone(),
        ifname: req.env.ifname.clone(),
        args: req.env.args.clone(),
        capability_args: serde_json::Map::new(),
    };
    crate::runtime::exec::run(&bin, ty, command, stdin, &rt, &req.env.path)
}

fn with_command(req: &Request, command: Command) -> Request {
    let mut r = req.clone();
    r.env.command = command;
    r
}

/// IPAM ADD: the addresses, routes and DNS for the attachment.
///
/// # Errors
///
/// The IPAM plugin's error (code kept).
pub fn add(req: &Request) -> Result<CniResult> {
    if ipam_type(req)? == IN_PROCESS_IPAM {
        return HostLocal.add(&with_command(req, Command::Add));
    }
    let out = exec(req, Command::Add, &req.stdin)?;
    // As the reference plugins (current.NewResultFromResult): the IPAM
    // result is taken up to the richest shape, never down to the
    // configuration's version, so nothing is lost before the plugin
    // builds its own result from it.
    CniResult::from_slice(&out, req.conf.cni_version)?.try_converted(Version::LATEST)
}

/// IPAM DEL.
///
/// # Errors
///
/// The IPAM plugin's error.
pub fn del(req: &Request) -> Result<()> {
    if ipam_type(req)? == IN_PROCESS_IPAM {
        return HostLocal.del(&with_command(req, Command::Del));
    }
    exec(req, Command::Del, &req.stdin).map(drop)
}

/// IPAM CHECK.
///
/// # Errors
///
/// The IPAM plugin's error.
pub fn check(req: &Request) -> Result<()> {
    if ipam_type(req)? == IN_PROCESS_IPAM {
        return HostLocal.check(&with_command(req, Command::Check));
    }
    exec(req, Command::Check, &req.stdin).map(drop)
}

/// IPAM GC (forwarded with the same valid attachments).
///
/// # Errors
///
/// The IPAM plugin's error.
pub fn gc(req: &GcRequest) -> Result<()> {
    if ipam_type(&req.request)? == IN_PROCESS_IPAM {
        let mut r = req.clone();
        r.request.env.command = Command::Gc;
        return HostLocal.gc(&r);
    }
    exec(&req.request, Command::Gc, &req.request.stdin).map(drop)
}

/// IPAM STATUS.
///
/// # Errors
///
/// The IPAM plugin's error (50/51 kept).
pub fn status(req: &Request) -> Result<()> {
    if ipam_type(req)? == IN_PROCESS_IPAM {
        return HostLocal.status(&with_command(req, Command::Status));
    }
    exec(req, Command::Status, &req.stdin).map(drop)
}
