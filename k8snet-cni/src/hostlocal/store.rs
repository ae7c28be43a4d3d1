//! host-local's on-disk state, byte-compatible with the reference plugin so
//! a node can switch between the two: in `dataDir/<network>/`, one file per
//! allocated address named by the address and holding `containerID\r\nifname`
//! (older files: the ID alone), `last_reserved_ip.<rangeSetIndex>` holding
//! the last address handed out, and `lock`, flocked around every operation.
//!
//! **What we add, and why.** The reference finds a container's addresses by
//! reading every file (2 s per ADD at 60,000 allocations). We keep an index
//! beside the files: `k8snet-index/<containerID>%<ifname>` lists that
//! attachment's addresses, so ADD, DEL and CHECK touch a few files whatever
//! the count. The reference ignores the index (its content never equals a
//! container ID, and it never parses it as an address). To notice changes
//! made by the reference (or a crash between a file and its index entry),
//! `k8snet-index/stamp` records the directory's mtime, ctime and size as
//! they were after our last change, under the lock; if they differ, the index
//! is rebuilt from the address files once (one full read, as the reference
//! does on every call).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The prefix of the reference's round-robin cursor files.
pub const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// The lock file (flocked exclusively, as the reference does).
pub const LOCK_FILE: &str = "lock";
/// The index directory (ours).
pub const INDEX_DIR: &str = "k8snet-index";
const STAMP: &str = "stamp";
/// The first line of every index file, so that no index file's content can
/// equal a container ID (which the reference's DEL would match).
const INDEX_HEADER: &str = "k8snet host-local index v1";
const LINE_BREAK: &str = "\r\n";

/// One network's directory, locked for the lifetime of this value.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    // Held for its flock (the reference's too, through go-filemutex);
    // released when dropped or when the process dies.
    _lock: File,
}

/// Who holds an address: the content of its file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holder {
    /// The container ID.
    pub container_id: String,
    /// The interface; `None` in files written before the reference recorded it.
    pub ifname: Option<String>,
}

impl Holder {
    fn parse(content: &str) -> Self {
        let t = content.trim();
        match t.split_once(LINE_BREAK) {
            Some((id, ifname)) => Self {
                container_id: id.trim().to_owned(),
                ifname: Some(ifname.to_owned()),
            },
            None => Self {
                container_id: t.to_owned(),
                ifname: None,
            },
        }
    }

    fn index_name(&self) -> String {
        format!(
            "{}%{}",
            self.container_id,
            self.ifname.as_deref().unwrap_or_default()
        )
    }
}

/// Replaces the content of the small file at `path` (creating it) without
/// `O_TRUNC`: the new bytes are written over the old and the file is then
/// cut to their length. Truncating a file to zero frees its data block,
/// which on a filesystem mounted with `discard` (ext4 here) waits for the
/// device to discard it: 0.2–0.5 ms per write, twice per ADD (the cursor and
/// the stamp). Cutting to a non-zero length inside the same block frees
/// nothing. Readers take the same lock as writers, so nobody sees the
/// moment between the write and the cut.
fn overwrite(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    f.write_all(bytes)?;
    f.set_len(bytes.len() as u64)
}

fn io_at(what: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let what = format!("{what} {}", path.display());
    move |e| Error::io(what, e)
}

impl Store {
    /// Opens (creating) `dir` and takes its lock, blocking while another
    /// process (ours or the reference) holds it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io_at("creating", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_at("opening", &lock_path))?;
        lock.lock().map_err(io_at("locking", &lock_path))?;
        let store = Self {
            dir: dir.to_owned(),
            _lock: lock,
        };
        if !store.stamp_matches() {
            store.rebuild_index()?;
        }
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn dir_stamp(&self) -> io::Result<String> {
        let m = fs::metadata(&self.dir)?;
        Ok(format!(
            "{}.{:09} {}.{:09} {}",
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.size()
        ))
    }

    fn stamp_matches(&self) -> bool {
        let saved = fs::read_to_string(self.dir.join(INDEX_DIR).join(STAMP));
        matches!((saved, self.dir_stamp()), (Ok(s), Ok(d)) if s == d)
    }

    /// Records the directory's state after our change (call last).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn seal(&self) -> Result<()> {
        let stamp = self.dir_stamp().map_err(io_at("reading", &self.dir))?;
        let path = self.dir.join(INDEX_DIR).join(STAMP);
        overwrite(&path, stamp.as_bytes()).map_err(io_at("writing", &path))
    }

    /// Every allocated address and its holder: reads every file (GC, STATUS
    /// and index rebuilds only).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory cannot be listed.
    pub fn all(&self) -> Result<BTreeMap<IpAddr, Holder>> {
        let mut out = BTreeMap::new();
        for ip in self.allocated_addresses()? {
            if let Ok(content) = fs::read_to_string(self.dir.join(ip.to_string())) {
                out.insert(ip, Holder::parse(&content));
            }
        }
        Ok(out)
    }

    /// The allocated addresses, from file names only (no file is read).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn allocated_addresses(&self) -> Result<Vec<IpAddr>> {
        let rd = fs::read_dir(&self.dir).map_err(io_at("listing", &self.dir))?;
        Ok(rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<IpAddr>().ok())
            .collect())
    }

    fn rebuild_index(&self) -> Result<()> {
        let index = self.dir.join(INDEX_DIR);
        if index.exists() {
            fs::remove_dir_all(&index).map_err(io_at("clearing", &index))?;
        }
        fs::create_dir_all(&index).map_err(io_at("creating", &index))?;
        let mut by_holder: BTreeMap<Holder, Vec<IpAddr>> = BTreeMap::new();
        for (ip, holder) in self.all()? {
            by_holder.entry(holder).or_default().push(ip);
        }
        for (holder, ips) in by_holder {
            self.write_index(&holder, &ips)?;
        }
        self.seal()
    }

    fn index_path(&self, holder: &Holder) -> PathBuf {
        self.dir.join(INDEX_DIR).join(holder.index_name())
    }

    fn read_index(&self, holder: &Holder) -> Vec<IpAddr> {
        fs::read_to_string(self.index_path(holder))
            .map(|s| s.lines().skip(1).filter_map(|l| l.parse().ok()).collect())
            .unwrap_or_default()
    }

    fn write_index(&self, holder: &Holder, ips: &[IpAddr]) -> Result<()> {
        let path = self.index_path(holder);
        if ips.is_empty() {
            return match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_at("removing", &path)(e)),
                _ => Ok(()),
            };
        }
        let mut text = String::from(INDEX_HEADER);
        for ip in ips {
            text.push('\n');
            text.push_str(&ip.to_string());
        }
        text.push('\n');
        fs::write(&path, text).map_err(io_at("writing", &path))
    }

    /// The addresses held by `container_id` on `ifname`: exact matches, or
    /// else those of files that record only the container ID (as the
    /// reference matches them).
    pub fn by_id(&self, container_id: &str, ifname: &str) -> Vec<IpAddr> {
        let exact = Holder {
            container_id: container_id.to_owned(),
            ifname: Some(ifname.to_owned()),
        };
        let found = self.read_index(&exact);
        if !found.is_empty() {
            return found;
        }
        self.read_index(&Holder {
            container_id: container_id.to_owned(),
            ifname: None,
        })
    }

    /// Creates the address's file for the holder (`O_EXCL`); `false` if it
    /// is taken. Also moves the range set's round-robin cursor.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn reserve(
        &self,
        container_id: &str,
        ifname: &str,
        ip: IpAddr,
        set: usize,
    ) -> Result<bool> {
        let path = self.dir.join(ip.to_string());
        let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_at("creating", &path)(e)),
        };
        let content = format!("{}{LINE_BREAK}{ifname}", container_id.trim());
        if let Err(e) = f.write_all(content.as_bytes()) {
            let _ = fs::remove_file(&path);
            return Err(io_at("writing", &path)(e));
        }
        let cursor = self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"));
        overwrite(&cursor, ip.to_string().as_bytes()).map_err(io_at("writing", &cursor))?;
        Ok(true)
    }

    /// The last address reserved from range set `set`, if recorded.
    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        fs::read_to_string(self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Records the holder's addresses in the index (replacing the entry).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn record(&self, container_id: &str, ifname: &str, ips: &[IpAddr]) -> Result<()> {
        self.write_index(
            &Holder {
                container_id: container_id.to_owned(),
                ifname: Some(ifname.to_owned()),
            },
            ips,
        )
    }

    /// Removes the address's file if (and only if) `holder_matches` accepts
    /// its content. Returns whether it was removed.
    fn release_if(&self, ip: IpAddr, holder_matches: impl Fn(&Holder) -> bool) -> Result<bool> {
        let path = self.dir.join(ip.to_string());
        let content = match fs::read_to_string(&path) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_at("reading", &path)(e)),
        };
        if !holder_matches(&Holder::parse(&content)) {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_at("removing", &path)(e)),
            _ => Ok(true),
        }
    }

    /// Releases everything the attachment holds (exact matches, else files
    /// with only its container ID, as the reference does); returns what was
    /// released. Touches only the attachment's own files.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn release_by_id(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
        let exact = Holder {
            container_id: container_id.to_owned(),
            ifname: Some(ifname.to_owned()),
        };
        let legacy = Holder {
            container_id: container_id.to_owned(),
            ifname: None,
        };
        let mut released = Vec::new();
        for holder in [&exact, &legacy] {
            for ip in self.read_index(holder) {
                if self.release_if(ip, |h| h == holder)? {
                    released.push(ip);
                }
            }
            self.write_index(holder, &[])?;
            if !released.is_empty() {
                break;
            }
        }
        Ok(released)
    }

    /// Releases one address if `keep` rejects its holder (GC).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn release_unless(&self, ip: IpAddr, keep: impl Fn(&Holder) -> bool) -> Result<bool> {
        self.release_if(ip, |h| !keep(h))
    }

    /// Rebuilds the index from the files (after GC changed many).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn reindex(&self) -> Result<()> {
        self.rebuild_index()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_replaces_longer_and_shorter_content_exactly() {
        let dir = std::env::temp_dir().join(format!("k8snet-cni-overwrite-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("last_reserved_ip.0");
        overwrite(&path, b"fd00:18::1234:5678").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"fd00:18::1234:5678");
        // Shorter: no stale tail of the old content remains.
        overwrite(&path, b"198.18.0.9").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"198.18.0.9");
        overwrite(&path, b"198.18.0.10").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"198.18.0.10");
        fs::remove_dir_all(&dir).unwrap();
    }
}
