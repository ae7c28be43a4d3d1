//! Finding and running plugin binaries.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::env::{Command, format_args};
use crate::error::{CniError, Error, Result};
use crate::runtime::RuntimeConf;

/// ETXTBSY: the binary is still open for writing (e.g. just installed).
const TEXT_FILE_BUSY: i32 = 26;

/// The first `dir/plugin_type` in `path` that is a file.
///
/// # Errors
///
/// [`Error::Exec`] if there is none, or the type is not a plain name.
pub fn find_plugin(plugin_type: &str, path: &[PathBuf]) -> Result<PathBuf> {
    if plugin_type.is_empty() || plugin_type.contains('/') {
        return Err(Error::Exec {
            plugin: plugin_type.to_owned(),
            message: "a plugin type is a file name, without '/'".into(),
        });
    }
    path.iter()
        .map(|d| d.join(plugin_type))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Exec {
            plugin: plugin_type.to_owned(),
            message: format!(
                "failed to find plugin {plugin_type:?} in path {:?}",
                path.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
            ),
        })
}

/// Runs a plugin once: `CNI_*` set from `rt` (inherited `CNI_*` removed so
/// nothing leaks between commands), `stdin` written, stdout returned on
/// success; on failure the error object it printed on stdout, as libcni
/// reads it.
pub(crate) fn run(
    bin: &Path,
    plugin_type: &str,
    command: Command,
    stdin: &[u8],
    rt: &RuntimeConf,
    path: &[PathBuf],
) -> Result<Vec<u8>> {
    let exec_err = |message: String| Error::Exec {
        plugin: plugin_type.to_owned(),
        message,
    };
    let mut proc = Process::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CNI_") {
            proc.env_remove(k);
        }
    }
    proc.env("CNI_COMMAND", command.as_str());
    let mut set = |k: &str, v: String| {
        if !v.is_empty() {
            proc.env(k, v);
        }
    };
    set("CNI_CONTAINERID", rt.container_id.clone());
    set(
        "CNI_NETNS",
        rt.netns
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    set("CNI_IFNAME", rt.ifname.clone());
    set("CNI_ARGS", format_args(&rt.args));
    set(
        "CNI_PATH",
        std::env::join_paths(path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    proc.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // libcni retries "text file busy" (a binary being installed) 5 times.
    let mut child = None;
    for attempt in 0..5 {
        match proc.spawn() {
            Ok(c) => {
                child = Some(c);
                break;
            }
            Err(e) if e.raw_os_error() == Some(TEXT_FILE_BUSY) && attempt < 4 => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(exec_err(format!("cannot run {}: {e}", bin.display()))),
        }
    }
    let mut child = child.ok_or_else(|| exec_err("text file busy".into()))?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading stdin is judged by its status.
        let _ = input.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| exec_err(format!("waiting for {}: {e}", bin.display())))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    match serde_json::from_slice::<CniError>(&out.stdout) {
        Ok(error) if error.code != 0 || !error.msg.is_empty() => Err(Error::Plugin {
            plugin: plugin_type.to_owned(),
            error,
        }),
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            Err(exec_err(format!(
                "netplugin failed ({}): {}",
                out.status,
                if stderr.trim().is_empty() {
                    stdout.trim()
                } else {
                    stderr.trim()
                }
            )))
        }
    }
}
