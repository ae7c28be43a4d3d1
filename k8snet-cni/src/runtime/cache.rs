//! The attachment cache in libcni's on-disk format, so that libcni-based
//! runtimes and ours can read each other's: one JSON file per attachment at
//! `<cacheDir>/results/<network>-<containerID>-<ifname>` (directory 0700,
//! file 0600) holding
//! `{kind: "cniCacheV1", containerId, config (base64 of the list's bytes),
//! ifName, networkName, netns, cniArgs: [[k, v]], capabilityArgs, result}`.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The `kind` of a libcni v1 cache entry.
pub const CACHE_KIND: &str = "cniCacheV1";

/// One cached attachment, as libcni writes it (field order as Go's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    /// Always [`CACHE_KIND`].
    pub kind: String,
    /// The container ID.
    pub container_id: String,
    /// The configuration list's bytes (base64 in the file, as Go's `[]byte`).
    #[serde(with = "base64_bytes")]
    pub config: Vec<u8>,
    /// The interface name.
    pub if_name: String,
    /// The network name.
    pub network_name: String,
    /// The netns path, if known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    /// `CNI_ARGS` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<(String, String)>,
    /// The capability arguments of the ADD.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub capability_args: Map<String, Value>,
    /// The final ADD result, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// The cache file of an attachment.
pub fn cache_path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    cache_dir
        .join("results")
        .join(format!("{network}-{container_id}-{ifname}"))
}

/// Writes an entry (atomically: a temporary file renamed into place).
///
/// # Errors
///
/// [`Error::Io`] naming the file.
pub fn write(cache_dir: &Path, entry: &CacheEntry) -> Result<()> {
    let path = cache_path(
        cache_dir,
        &entry.network_name,
        &entry.container_id,
        &entry.if_name,
    );
    let dir = cache_dir.join("results");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let bytes =
        serde_json::to_vec(entry).map_err(|e| Error::io("encoding cache entry", e.into()))?;
    // A name of its own for each write: appended to the whole file name
    // (network names and container IDs may hold dots, which
    // `with_extension` would cut at), with the process ID and a counter
    // for writers in one process.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        fs::rename(&tmp, &path)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("writing {}", path.display()), e)
    })
}

/// Reads an entry; `Ok(None)` if there is none, `Err` if it is unreadable
/// or not a v1 entry.
///
/// # Errors
///
/// [`Error::Io`] or [`Error::Decode`] naming the file.
pub fn read(path: &Path) -> Result<Option<CacheEntry>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let entry: CacheEntry = serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
        field: path.display().to_string(),
        message: e.to_string(),
    })?;
    if entry.kind != CACHE_KIND {
        return Err(Error::Decode {
            field: format!("{}: kind", path.display()),
            message: format!("{:?} is not {CACHE_KIND:?}", entry.kind),
        });
    }
    Ok(Some(entry))
}

/// Removes an entry; a missing one is fine.
///
/// # Errors
///
/// [`Error::Io`].
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Every readable v1 entry (others are skipped, as libcni does), sorted by
/// file name.
///
/// # Errors
///
/// [`Error::Io`] if the directory exists but cannot be listed.
pub fn list(cache_dir: &Path) -> Result<Vec<CacheEntry>> {
    let dir = cache_dir.join("results");
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    Ok(names
        .iter()
        .filter_map(|p| read(p).ok().flatten())
        .filter(|e| !e.if_name.is_empty() && !e.network_name.is_empty())
        .collect())
}

/// Go's `[]byte` JSON form: standard base64 with padding.
mod base64_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(super) fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub(super) fn decode(s: &str) -> Option<Vec<u8>> {
        let s = s.trim_end_matches('=');
        let mut out = Vec::with_capacity(s.len() * 3 / 4);
        let mut acc = 0u32;
        let mut bits = 0;
        for c in s.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c)?;
            acc = (acc << 6) | u32::try_from(v).ok()?;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
            }
        }
        Some(out)
    }

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        // Go writes `null` for a nil slice.
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        decode(&s).ok_or_else(|| serde::de::Error::custom("invalid base64"))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trips() {
            for s in ["", "a", "ab", "abc", "abcd", "{\"cniVersion\":\"1.0.0\"}"] {
                let e = super::encode(s.as_bytes());
                assert_eq!(super::decode(&e).unwrap(), s.as_bytes(), "{e}");
            }
            assert_eq!(super::encode(b"ab"), "YWI=");
            assert_eq!(super::encode(b"abc"), "YWJj");
        }
    }
}
