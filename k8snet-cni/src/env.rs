//! The `CNI_*` environment a runtime sets for a plugin, parsed and
//! validated as libcni's plugin skeleton does.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The operation a plugin is asked to perform (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach it (best effort; must succeed when things are already gone).
    Del,
    /// Verify that the attachment is as ADD left it.
    Check,
    /// Release everything not in the valid attachments (1.1.0).
    Gc,
    /// Report readiness (1.1.0).
    Status,
    /// Report the supported versions.
    Version,
}

impl Command {
    /// The variable's value (`ADD`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Gc => "GC",
            Self::Status => "STATUS",
            Self::Version => "VERSION",
        }
    }

    /// The variables this command needs, besides `CNI_COMMAND` (the Go
    /// skeleton's table: it also wants `CNI_PATH` for all but VERSION).
    fn required(self) -> &'static [&'static str] {
        match self {
            Self::Add | Self::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
            Self::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
            Self::Gc | Self::Status => &["CNI_PATH"],
            Self::Version => &[],
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "GC" => Self::Gc,
            "STATUS" => Self::Status,
            "VERSION" => Self::Version,
            other => {
                return Err(Error::Env {
                    var: "CNI_COMMAND".into(),
                    message: format!("unknown command {other:?}"),
                });
            }
        })
    }
}

/// The parsed environment of one plugin invocation (built by
/// [`Env::from_lookup`] or [`Env::from_process`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for GC, STATUS and VERSION).
    pub container_id: String,
    /// `CNI_NETNS`: the container's network namespace path (optional on DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`: the interface to create inside the container.
    pub ifname: String,
    /// The well-formed `K=V` pairs of `CNI_ARGS`, in order (a malformed
    /// pair is skipped here; see [`Env::strict_arg`]).
    pub args: Vec<(String, String)>,
    /// `CNI_ARGS` as given (empty when unset).
    pub raw_args: String,
    /// `CNI_PATH`: where to find delegated plugins.
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads the process environment.
    ///
    /// # Errors
    ///
    /// As [`Env::from_lookup`].
    pub fn from_process() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `lookup` and validates them: every
    /// variable the command needs is present and not empty, and the
    /// container ID and interface name are well formed. `CNI_ARGS` is not
    /// validated here (see [`Env::args`]).
    ///
    /// # Errors
    ///
    /// [`Error::Env`] (code 4) naming the variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let command: Command = get("CNI_COMMAND")
            .ok_or_else(|| Error::Env {
                var: "CNI_COMMAND".into(),
                message: "required environment variable missing".into(),
            })?
            .parse()?;
        let missing: Vec<&str> = command
            .required()
            .iter()
            .copied()
            .filter(|k| get(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Env {
                var: missing.join(","),
                message: "required environment variables missing".into(),
            });
        }
        let container_id = get("CNI_CONTAINERID").unwrap_or_default();
        if !container_id.is_empty() {
            validate_id(&container_id).map_err(|m| Error::Env {
                var: "CNI_CONTAINERID".into(),
                message: m,
            })?;
        }
        let ifname = get("CNI_IFNAME").unwrap_or_default();
        if !ifname.is_empty() {
            validate_ifname(&ifname).map_err(|m| Error::Env {
                var: "CNI_IFNAME".into(),
                message: m,
            })?;
        }
        // The Go skeleton never checks CNI_ARGS: whether a malformed pair
        // is an error is the plugin's choice (the reference host-local and
        // bridge refuse it with code 999, portmap and loopback never parse
        // it), made with `strict_arg` where it reads an argument.
        let raw_args = get("CNI_ARGS").unwrap_or_default();
        let args = parse_args_lenient(&raw_args);
        let path = get("CNI_PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .filter(|d| !d.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            command,
            container_id,
            netns: get("CNI_NETNS").map(PathBuf::from),
            ifname,
            args,
            raw_args,
            path,
        })
    }

    /// The value of `key` among the well-formed pairs of `CNI_ARGS` (the
    /// first when repeated; malformed pairs are skipped).
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` in `CNI_ARGS` (the last one when repeated),
    /// refusing a malformed `CNI_ARGS` (any pair, not only `key`'s) as the
    /// reference plugins that read their arguments do with Go's
    /// `types.LoadArgs`: every `;`-separated part must be exactly one
    /// `K=V` (so an empty part, as from a trailing `;`, and `K=V=W` are
    /// refused), and `IgnoreUnknown` must be `1`, `0`, `true` or `false`
    /// (any case).
    ///
    /// One difference, on purpose: unknown keys are accepted whether or
    /// not `IgnoreUnknown` is set, where `LoadArgs` refuses them without
    /// it ("ARGS: unknown args"). Kubernetes runtimes, and the node
    /// stack's, always send `IgnoreUnknown=1`, so this matters only to a
    /// runtime that omits it: the reference plugins would refuse its
    /// unknown keys, ours do not.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] with code 999, as the reference's plain error
    /// becomes in the Go skeleton: `ARGS: invalid pair "novalue"`, or
    /// `ARGS: error parsing value of pair "IgnoreUnknown=x": ...`.
    pub fn strict_arg(&self, key: &str) -> Result<Option<&str>> {
        if self.raw_args.is_empty() {
            return Ok(None);
        }
        let mut found = None;
        for pair in self.raw_args.split(';') {
            let mut kv = pair.split('=');
            let (Some(k), Some(v), None) = (kv.next(), kv.next(), kv.next()) else {
                return Err(Error::other(
                    crate::error::code::INTERNAL,
                    format!("ARGS: invalid pair {pair:?}"),
                ));
            };
            if k == "IgnoreUnknown"
                && !matches!(
                    v.to_ascii_lowercase().as_str(),
                    "1" | "0" | "true" | "false"
                )
            {
                return Err(Error::other(
                    crate::error::code::INTERNAL,
                    format!(
                        "ARGS: error parsing value of pair {pair:?}: boolean unmarshal error: invalid input {}",
                        v.to_ascii_lowercase()
                    ),
                ));
            }
            if k == key {
                found = Some(v);
            }
        }
        Ok(found)
    }
}

/// Parses `CNI_ARGS` (`K=V;K2=V2`; empty is none).
///
/// # Errors
///
/// [`Error::Env`] for a pair without `=` or with an empty key.
pub fn parse_args(s: &str) -> Result<Vec<(String, String)>> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(Error::Env {
                var: "CNI_ARGS".into(),
                message: format!("invalid pair {pair:?} (want KEY=VALUE)"),
            }),
        })
        .collect()
}

/// The well-formed pairs of `CNI_ARGS`, skipping the others.
fn parse_args_lenient(s: &str) -> Vec<(String, String)> {
    s.split(';')
        .filter_map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Some((k.to_owned(), v.to_owned())),
            _ => None,
        })
        .collect()
}

/// Formats pairs as `CNI_ARGS`.
pub fn format_args(args: &[(String, String)]) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Checks a container ID or network name: an alphanumeric, then only
/// alphanumerics, `_`, `.` or `-`.
///
/// # Errors
///
/// A message saying what is wrong.
pub fn validate_id(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    match chars.next() {
        None => return Err("must not be empty".into()),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(format!("{s:?} must start with a letter or digit"));
        }
        _ => {}
    }
    match chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        Some(c) => Err(format!(
            "{s:?} has invalid character {c:?} (allowed: letters, digits, '_', '.', '-')"
        )),
        None => Ok(()),
    }
}

/// Checks an interface name as libcni does: 1 to 15 bytes, not `.` or
/// `..`, no `/`, `:` or whitespace.
///
/// # Errors
///
/// A message saying what is wrong.
pub fn validate_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 15 {
        return Err(format!("{s:?} is longer than 15 bytes"));
    }
    if s == "." || s == ".." {
        return Err(format!("{s:?} is not a valid interface name"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '/' | ':') || c.is_whitespace())
    {
        return Err(format!("{s:?} has invalid character {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Env> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn requires_per_command() {
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_PATH", "/x")]).unwrap_err();
        assert_eq!(e.code(), 4);
        assert_eq!(
            e.to_string(),
            "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME: required environment variables missing"
        );
        let del = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/a:/b"),
            ("CNI_ARGS", "IP=198.18.0.9;K8S_POD_NAME=web"),
        ])
        .unwrap();
        assert_eq!(del.netns, None);
        assert_eq!(del.path, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(del.arg("IP"), Some("198.18.0.9"));
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
        assert!(
            env(&[("CNI_COMMAND", "FROB")])
                .unwrap_err()
                .to_string()
                .contains("CNI_COMMAND")
        );
    }

    #[test]
    fn validates_ids_and_names() {
        assert!(validate_id("a1_b.c-d").is_ok());
        assert!(validate_id("-a").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("").is_err());
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("a:b").is_err());
        assert!(validate_ifname("0123456789abcdef").is_err());
        assert!(validate_ifname("..").is_err());
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "bad id"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/x"),
        ])
        .unwrap_err();
        assert!(e.to_string().starts_with("CNI_CONTAINERID: "), "{e}");
        assert!(parse_args("novalue").is_err());
    }
}
