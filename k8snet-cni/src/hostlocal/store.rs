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
//!
//! **Spare files.** Creating a file costs an inode allocation: 0.3–1.4 ms
//! per file on the ext4 here, the largest single cost of an ADD, which
//! creates two (the address's file and the index entry). Renaming or
//! linking an existing file costs about 20 µs. So a release does not
//! unlink: it moves the file into `<dataDir>/.k8snet-spare/<network>/` (at
//! most [`SPARE_SLOTS`] files, content replaced by a line that matches no
//! container; a dot-name is no valid network name, so no network's
//! directory can be it, and the network's lock covers its spares), and a
//! reservation takes a spare, writes its content and
//! links it under the address's name (`link` fails if the name exists, as
//! `O_EXCL` does, so the claim stays exclusive), falling back to creating a
//! file when there is no spare. Which inode an address's file has is
//! invisible to the reference: names and contents are as before.

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
/// Released files kept for reuse: `<dataDir>/SPARE_DIR/<network>/`.
pub const SPARE_DIR: &str = ".k8snet-spare";
/// How many spare files are kept at most (a release into an occupied slot
/// replaces its file, which the kernel then frees).
pub const SPARE_SLOTS: u64 = 64;
/// The content of a spare file: matches no container ID (it has a space)
/// and is no index (no header).
const SPARE_CONTENT: &[u8] = b"k8snet spare\n";
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

    /// This network's spare directory (none for a directory without a
    /// parent).
    fn spare_dir(&self) -> Option<PathBuf> {
        Some(
            self.dir
                .parent()?
                .join(SPARE_DIR)
                .join(self.dir.file_name()?),
        )
    }

    /// A spare file, if there is one. A spare with more than one link is
    /// a leftover of a reservation interrupted between its `link` and the
    /// spare name's removal: it is some address's live file, so it is
    /// unlinked here, never overwritten.
    fn spare(&self) -> Option<PathBuf> {
        fs::read_dir(self.spare_dir()?).ok()?.find_map(|e| {
            let e = e.ok()?;
            let path = e.path();
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() && m.nlink() == 1 => Some(path),
                Ok(_) => {
                    let _ = fs::remove_file(&path);
                    None
                }
                Err(_) => None,
            }
        })
    }

    /// Moves the file at `path` (named `name`) into a spare slot instead of
    /// unlinking it (unlinks it when that fails); `Ok(false)` when it does
    /// not exist.
    fn retire(&self, path: &Path, name: &str) -> io::Result<bool> {
        // A second name (a spare left linked by a reservation killed
        // before it removed the spare name): a rename onto that very name
        // would do nothing and the blanking would hit the file itself, so
        // the file is only unlinked; the spare name then holds the sole
        // link and is overwritten before any reuse.
        if fs::symlink_metadata(path).is_ok_and(|m| m.nlink() > 1) {
            return match fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            };
        }
        let moved = self.spare_dir().map_or(Err(None), |dir| {
            let slot = dir.join((crate::masq::fnv(name) % SPARE_SLOTS).to_string());
            match fs::rename(path, &slot) {
                // No spare directory yet (or the file is gone: then the
                // retry says so).
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(&dir)
                    .and_then(|()| fs::rename(path, &slot))
                    .map(|()| slot)
                    .map_err(Some),
                r => r.map(|()| slot).map_err(Some),
            }
        });
        match moved {
            Ok(slot) => {
                // Released: what it said no longer matters, but the
                // reference's DEL matches contents, so it must say nothing.
                let _ = overwrite(&slot, SPARE_CONTENT);
                Ok(true)
            }
            Err(Some(e)) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            // No spare directory possible (another filesystem, say).
            Err(_) => match fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// Puts `bytes` at `path`, which must not exist, in a spare file (see
    /// the module's documentation); `Ok(false)` when `path` exists. Falls
    /// back to creating the file (`O_EXCL`).
    fn place_new(&self, path: &Path, bytes: &[u8]) -> io::Result<bool> {
        if let Some(spare) = self.spare()
            && overwrite(&spare, bytes).is_ok()
        {
            match fs::hard_link(&spare, path) {
                Ok(()) => {
                    // The file is in place; a leftover name in the spare
                    // directory would only be reused (and overwritten).
                    let _ = fs::remove_file(&spare);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                // No hard links here: create instead.
                Err(_) => {}
            }
        }
        let mut f = match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        };
        if let Err(e) = f.write_all(bytes) {
            let _ = fs::remove_file(path);
            return Err(e);
        }
        Ok(true)
    }

    fn read_index(&self, holder: &Holder) -> Vec<IpAddr> {
        fs::read_to_string(self.index_path(holder))
            .map(|s| s.lines().skip(1).filter_map(|l| l.parse().ok()).collect())
            .unwrap_or_default()
    }

    fn write_index(&self, holder: &Holder, ips: &[IpAddr]) -> Result<()> {
        let path = self.index_path(holder);
        if ips.is_empty() {
            return self
                .retire(&path, &holder.index_name())
                .map(drop)
                .map_err(io_at("removing", &path));
        }
        let mut text = String::from(INDEX_HEADER);
        for ip in ips {
            text.push('\n');
            text.push_str(&ip.to_string());
        }
        text.push('\n');
        // In place when the entry exists (an ADD repeated), else a spare.
        let written = match OpenOptions::new().write(true).open(&path) {
            Ok(_) => overwrite(&path, text.as_bytes()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match self.place_new(&path, text.as_bytes()) {
                    Ok(true) => Ok(()),
                    // Made meanwhile (we hold the lock: not by a peer).
                    Ok(false) => overwrite(&path, text.as_bytes()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        written.map_err(io_at("writing", &path))
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

    /// Creates the address's file for the holder (exclusively, from a spare
    /// file when there is one); `false` if it is taken. Also moves the range
    /// set's round-robin cursor.
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
        let content = format!("{}{LINE_BREAK}{ifname}", container_id.trim());
        if !self
            .place_new(&path, content.as_bytes())
            .map_err(io_at("creating", &path))?
        {
            return Ok(false);
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
        self.retire(&path, &ip.to_string())
            .map(|_| true)
            .map_err(io_at("removing", &path))
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
