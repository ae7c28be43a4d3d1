//! Sweeping namespaces left behind by test processes that crashed.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::netns::{self, NETNS_DIR, check_word};
use crate::{Error, Result};

/// Deletes namespaces named `kt-<prefix>-<pid>-...` whose process `<pid>` is
/// gone (leftovers of crashed earlier runs), and returns their names. Other
/// namespaces, including those of live processes, are left alone. The
/// harness's own probe namespaces use the prefix `probe`.
pub fn cleanup_stale(prefix: &str) -> Result<Vec<String>> {
    check_word(prefix)?;
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                what: format!("reading {NETNS_DIR}"),
                source,
            });
        }
    };
    let head = format!("kt-{prefix}-");
    let mut deleted = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&head)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            netns::delete(&name)?;
            deleted.push(name);
        }
    }
    Ok(deleted)
}
