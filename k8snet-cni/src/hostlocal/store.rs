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
//! the count. The spec bounds no container ID's length, and address files
//! may hold anything, so when that name would be long (over 200 bytes) or
//! no single safe path component (an ID or ifname from a file that is not
//! valid, say with a `/`), the entry is named `h-` and a 128-bit hash of
//! the pair instead, and records the holder itself, which every lookup
//! checks. An entry that exists but cannot be read (or records another
//! holder) is an error, never "no addresses"; it also drops the stamp, so
//! that the retry rebuilds the index. The reference ignores the index (its content never equals a
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
//!
//! **System calls.** An ADD is mostly system calls on small files, so a
//! [`Store`] remembers, under the lock, what it has already learnt: the
//! stamp and the range sets' cursors are opened read-write once, read with
//! one `read` and later rewritten through the same descriptor; the spare
//! directory is listed once per [`Store`], not once per file; whether an
//! index entry exists is known from the lookup that found it (or not); and
//! a rewrite in place cuts the file only when the new content is shorter
//! than what it held, whose length the read (or `statx`) gave. None of this
//! changes a name or a content on disk; every cache is only ever trusted
//! under the lock, which every writer (ours and the reference's) takes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

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
/// The first `read` of a small file asks for this much. Stamps, cursors and
/// address files are shorter, and so is the index entry of an attachment
/// with a few addresses; longer files are read on to their end.
const FIRST_READ: usize = 256;

/// One network's directory, locked for the lifetime of this value.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// The stamp, open read-write since it was checked (or last written),
    /// for [`Store::seal`] to rewrite without opening it again.
    stamp: Mutex<Option<Small>>,
    /// The cursors read by [`Store::last_reserved`], by range set, for
    /// [`Store::reserve`] to rewrite.
    cursors: Mutex<BTreeMap<usize, Cursor>>,
    /// Whether an index entry (by name) exists, as this value last saw or
    /// made it.
    index_exists: Mutex<BTreeMap<String, bool>>,
    /// The spare directory's listing, once opened.
    spares: Mutex<Option<Spares>>,
    /// Set when an index entry could not be read: [`Store::seal`] then
    /// leaves the stamp missing, so that the next call rebuilds.
    distrusted: AtomicBool,
    // Held for its flock (the reference's too, through go-filemutex);
    // released when dropped or when the process dies. The last field, so
    // dropped last: the descriptors above are closed under the lock.
    _lock: File,
}

/// The spare files not yet taken: the rest of one listing of the spare
/// directory, and the names given back.
#[derive(Debug)]
struct Spares {
    /// The listing, read on demand (one `getdents` holds a few hundred
    /// names: the 64 slots all come with the first), dropped at its end.
    listing: Option<fs::ReadDir>,
    /// Taken and given back (the last first).
    given_back: Vec<PathBuf>,
}

impl Spares {
    fn next(&mut self) -> Option<PathBuf> {
        if let Some(path) = self.given_back.pop() {
            return Some(path);
        }
        let next = self.listing.as_mut()?.by_ref().flatten().next();
        if next.is_none() {
            self.listing = None;
        }
        next.map(|entry| entry.path())
    }
}

/// A small file open for rewriting in place, with the length it has.
#[derive(Debug)]
struct Small {
    file: File,
    len: u64,
}

impl Small {
    /// Opens the file at `path` (read-write when `write`) and reads all of
    /// it, in one `read` when it is shorter than [`FIRST_READ`] bytes. A
    /// read of a regular file that returns fewer bytes than asked for has
    /// reached the end of the file (the kernel stops a file read early only
    /// for a fatal signal, and the process then dies before it sees the
    /// result), so the second `read` that would return 0, and the `statx`
    /// that `fs::read` makes to size its buffer, are left out.
    fn open(path: &Path, write: bool) -> io::Result<(Self, Vec<u8>)> {
        let mut file = OpenOptions::new().read(true).write(write).open(path)?;
        let mut buf = vec![0; FIRST_READ];
        let n = loop {
            match file.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r?,
            }
        };
        buf.truncate(n);
        if n == FIRST_READ {
            file.read_to_end(&mut buf)?;
        }
        let len = buf.len() as u64;
        Ok((Self { file, len }, buf))
    }

    /// Replaces the content with `bytes`, as [`overwrite`] does, cutting
    /// the file only when `bytes` is shorter than what it held (a cut to
    /// the length it already has is a call that changes nothing).
    fn rewrite(&mut self, bytes: &[u8]) -> io::Result<()> {
        rewrite_in_place(&self.file, bytes, Some(self.len))?;
        self.len = bytes.len() as u64;
        Ok(())
    }
}

/// A range set's cursor, as [`Store::last_reserved`] found it.
#[derive(Debug)]
enum Cursor {
    /// No such file (the set's first allocation).
    Absent,
    /// Open read-write.
    Open(Small),
}

/// Writes `bytes` at the start of `file` and cuts it to their length,
/// unless `old_len` says it held no more than that (see [`overwrite`] for
/// why this is no `O_TRUNC`). Killed between the write and the cut, the
/// file holds the new bytes followed by the old tail: a stamp that matches
/// nothing (the index is rebuilt) or a cursor that names another address
/// or none (round robin starts elsewhere; every claim stays exclusive).
fn rewrite_in_place(file: &File, bytes: &[u8], old_len: Option<u64>) -> io::Result<()> {
    file.write_all_at(bytes, 0)?;
    let len = bytes.len() as u64;
    if old_len.is_none_or(|old| old > len) {
        file.set_len(len)?;
    }
    Ok(())
}

/// Locks `m`, whose data stays valid when a holder panicked (each update
/// is a single assignment).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// The index entry's name: `<containerID>%<ifname>` (`<containerID>%`
    /// for a holder without an ifname) when that is a short, safe path
    /// component, else a name derived from a hash of the pair (see
    /// [`Holder::plain_name`]).
    fn index_name(&self) -> String {
        self.plain_name().unwrap_or_else(|| self.hashed_name())
    }

    /// `<containerID>%<ifname>` if the ID is a valid CNI container ID (so
    /// it has no `/` and no `%`, and is neither `.` nor `..`), the ifname
    /// (if any) a valid interface name (no `/`, not `.` or `..`) and the
    /// whole at most [`PLAIN_NAME_MAX`] bytes: then the name is one path
    /// component inside the index directory, and names of different
    /// holders differ. IDs from address files are not checked anywhere
    /// else (the reference writes what it is given, and anyone may plant
    /// a file), so this is what keeps a rebuild inside the index.
    fn plain_name(&self) -> Option<String> {
        crate::env::validate_id(&self.container_id).ok()?;
        if let Some(ifname) = &self.ifname {
            crate::env::validate_ifname(ifname).ok()?;
        }
        let name = format!(
            "{}%{}",
            self.container_id,
            self.ifname.as_deref().unwrap_or_default()
        );
        (name.len() <= PLAIN_NAME_MAX).then_some(name)
    }

    /// [`HASHED_PREFIX`] and 32 hex digits of a 128-bit hash of the pair:
    /// no `%`, so never a plain name, and never [`STAMP`]. The entry
    /// records the holder itself ([`Holder::entry_lines`]), checked on every
    /// lookup, so two holders with the same hash can never see each
    /// other's addresses.
    fn hashed_name(&self) -> String {
        let mut key = Vec::with_capacity(self.container_id.len() + 20);
        key.extend_from_slice(self.container_id.as_bytes());
        match &self.ifname {
            Some(ifname) => {
                key.push(0);
                key.extend_from_slice(ifname.as_bytes());
            }
            None => key.push(1),
        }
        format!(
            "{HASHED_PREFIX}{:016x}{:016x}",
            fnv1a(&key, 0xcbf2_9ce4_8422_2325),
            fnv1a(&key, 0x6c62_272e_07bb_0142)
        )
    }

    /// The lines a hashed entry records its holder in, after the header:
    /// hex-encoded (IDs from files may hold line breaks), with a key word
    /// and a space, so that no line parses as an address (older readers
    /// skip them).
    fn entry_lines(&self) -> String {
        let mut out = format!("{HOLDER_ID}{}\n", hex(self.container_id.as_bytes()));
        if let Some(ifname) = &self.ifname {
            out.push_str(&format!("{HOLDER_IFNAME}{}\n", hex(ifname.as_bytes())));
        }
        out
    }
}

/// The longest plain index name (NAME_MAX is 255 bytes on Linux
/// filesystems; a margin for what a future format may append).
const PLAIN_NAME_MAX: usize = 200;
/// The prefix of hashed index names.
const HASHED_PREFIX: &str = "h-";
/// The line of a hashed entry naming its holder's container ID (hex).
const HOLDER_ID: &str = "id ";
/// The line of a hashed entry naming its holder's ifname (hex).
const HOLDER_IFNAME: &str = "ifname ";

/// 64-bit FNV-1a of `bytes` from the offset basis `basis`.
fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
    bytes.iter().fold(basis, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an index entry says: its addresses, and the holder it records
/// (hashed entries only).
#[derive(Debug, Default)]
struct Entry {
    ips: Vec<IpAddr>,
    container_id: Option<String>,
    ifname: Option<String>,
}

impl Entry {
    fn parse(content: &str) -> Self {
        let unhex = |s: &str| -> Option<String> {
            let bytes: Option<Vec<u8>> = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect();
            String::from_utf8(bytes?).ok()
        };
        let mut entry = Self::default();
        for line in content.lines().skip(1) {
            if let Some(id) = line.strip_prefix(HOLDER_ID) {
                entry.container_id = unhex(id);
            } else if let Some(ifname) = line.strip_prefix(HOLDER_IFNAME) {
                entry.ifname = unhex(ifname);
            } else if let Ok(ip) = line.parse() {
                entry.ips.push(ip);
            }
        }
        entry
    }

    /// Whether a hashed entry records `holder` (a plain entry's name says
    /// whose it is).
    fn records(&self, holder: &Holder) -> bool {
        self.container_id.as_deref() == Some(holder.container_id.as_str())
            && self.ifname == holder.ifname
    }
}

/// Checks the container ID and ifname given to a [`Store`] method, as the
/// runtime checks `CNI_CONTAINERID` and `CNI_IFNAME`.
fn validate(container_id: &str, ifname: &str) -> Result<()> {
    crate::env::validate_id(container_id).map_err(|message| Error::Env {
        var: "CNI_CONTAINERID".into(),
        message,
    })?;
    crate::env::validate_ifname(ifname).map_err(|message| Error::Env {
        var: "CNI_IFNAME".into(),
        message,
    })
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
        let lock_path = dir.join(LOCK_FILE);
        let open_lock = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
        };
        // The directory exists on every call but a network's first: the
        // lock is opened in it straight away, and the directory made only
        // when that finds it missing (creating it first cost a `mkdir`
        // failing with EEXIST and a `statx` on every call).
        let lock = match open_lock() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(io_at("creating", dir))?;
                open_lock()
            }
            r => r,
        }
        .map_err(io_at("opening", &lock_path))?;
        lock.lock().map_err(io_at("locking", &lock_path))?;
        let store = Self {
            dir: dir.to_owned(),
            stamp: Mutex::new(None),
            cursors: Mutex::new(BTreeMap::new()),
            index_exists: Mutex::new(BTreeMap::new()),
            spares: Mutex::new(None),
            distrusted: AtomicBool::new(false),
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

    fn stamp_path(&self) -> PathBuf {
        self.dir.join(INDEX_DIR).join(STAMP)
    }

    /// Whether the stamp matches the directory; keeps the stamp open for
    /// [`Store::seal`].
    fn stamp_matches(&self) -> bool {
        let Ok((stamp, saved)) = Small::open(&self.stamp_path(), true) else {
            return false;
        };
        *locked(&self.stamp) = Some(stamp);
        self.dir_stamp().is_ok_and(|d| d.as_bytes() == saved)
    }

    /// Records the directory's state after our change (call last); does
    /// nothing once an index entry could not be read (the next call then
    /// rebuilds the index).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn seal(&self) -> Result<()> {
        if self.distrusted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let stamp = self.dir_stamp().map_err(io_at("reading", &self.dir))?;
        let path = self.stamp_path();
        let mut held = locked(&self.stamp);
        let written = match held.as_mut() {
            // The file the check read: rewritten through its descriptor
            // (no `open`, and the `close` is the one it needed anyway).
            Some(small) => small.rewrite(stamp.as_bytes()),
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .and_then(|file| {
                    rewrite_in_place(&file, stamp.as_bytes(), None)?;
                    *held = Some(Small {
                        file,
                        len: stamp.len() as u64,
                    });
                    Ok(())
                }),
        };
        written.map_err(io_at("writing", &path))
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
        // What was learnt about the index (the stamp's descriptor, which
        // entries exist) dies with it.
        *locked(&self.stamp) = None;
        locked(&self.index_exists).clear();
        self.distrusted.store(false, Ordering::Relaxed);
        if index.exists() {
            fs::remove_dir_all(&index).map_err(io_at("clearing", &index))?;
        }
        fs::create_dir_all(&index).map_err(io_at("creating", &index))?;
        let mut by_holder: BTreeMap<Holder, Vec<IpAddr>> = BTreeMap::new();
        for (ip, holder) in self.all()? {
            by_holder.entry(holder).or_default().push(ip);
        }
        let mut names = BTreeSet::new();
        for (holder, ips) in by_holder {
            // Two holders whose hashed names agree (a 128-bit collision):
            // the first keeps the entry; the other's lookups then fail,
            // naming it, rather than see the first's addresses.
            if names.insert(holder.index_name()) {
                self.write_index(&holder, &ips)?;
            }
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

    /// A spare file and its length, if there is one. The spare directory
    /// is listed once per [`Store`]: under the lock only this value changes
    /// it, and each name is checked with `statx` when it is taken, so a
    /// name that went or changed meanwhile is never trusted. A spare with
    /// more than one link is a leftover of a reservation interrupted
    /// between its `link` and the spare name's removal: it is some
    /// address's live file, so it is unlinked here, never overwritten.
    fn spare(&self) -> Option<(PathBuf, u64)> {
        let mut spares = locked(&self.spares);
        let spares = spares.get_or_insert_with(|| Spares {
            listing: self.spare_dir().and_then(|dir| fs::read_dir(dir).ok()),
            given_back: Vec::new(),
        });
        while let Some(path) = spares.next() {
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() && m.nlink() == 1 => return Some((path, m.len())),
                Ok(_) => {
                    let _ = fs::remove_file(&path);
                }
                Err(_) => {}
            }
        }
        None
    }

    /// Gives back a spare taken by [`Store::spare`] and not used up: the
    /// next call takes it again.
    fn unspare(&self, path: PathBuf) {
        if let Some(spares) = locked(&self.spares).as_mut() {
            spares.given_back.push(path);
        }
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
        let old_len = match fs::symlink_metadata(path) {
            Ok(m) if m.nlink() > 1 => {
                return match fs::remove_file(path) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(e),
                };
            }
            Ok(m) => Some(m.len()),
            Err(_) => None,
        };
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
                // The slot is the file just looked at (under the lock),
                // so its length is known.
                let _ = OpenOptions::new()
                    .write(true)
                    .open(&slot)
                    .and_then(|f| rewrite_in_place(&f, SPARE_CONTENT, old_len));
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
        if let Some((spare, len)) = self.spare()
            && OpenOptions::new()
                .write(true)
                .open(&spare)
                .and_then(|f| rewrite_in_place(&f, bytes, Some(len)))
                .is_ok()
        {
            match fs::hard_link(&spare, path) {
                Ok(()) => {
                    // The file is in place; a leftover name in the spare
                    // directory would only be reused (and overwritten).
                    let _ = fs::remove_file(&spare);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.unspare(spare);
                    return Ok(false);
                }
                // No hard links here: create instead.
                Err(_) => self.unspare(spare),
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

    /// The holder's addresses in the index; none when it has no entry.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the entry when it exists but cannot be read
    /// (EIO, EMFILE, ELOOP, not UTF-8...), or when it is a hashed entry
    /// that records another holder: never "no addresses", which would
    /// make a DEL retire the entry while releasing nothing, or an ADD
    /// skip its duplicate check and drop the attachment's other addresses
    /// from the entry. The index is then distrusted
    /// ([`Store::distrust_index`]): this call fails, and the next one
    /// rebuilds the index from the address files.
    fn read_index(&self, holder: &Holder) -> Result<Vec<IpAddr>> {
        let name = holder.index_name();
        let path = self.dir.join(INDEX_DIR).join(&name);
        let read = Small::open(&path, false).and_then(|(_, content)| {
            let content = String::from_utf8(content)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let entry = Entry::parse(&content);
            if name.starts_with(HASHED_PREFIX) && !entry.records(holder) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the entry does not record container {:?} ifname {:?} (it records {:?} {:?})",
                        holder.container_id, holder.ifname, entry.container_id, entry.ifname
                    ),
                ));
            }
            Ok(entry.ips)
        });
        match read {
            Ok(ips) => {
                locked(&self.index_exists).insert(name, true);
                Ok(ips)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                locked(&self.index_exists).insert(name, false);
                Ok(Vec::new())
            }
            Err(e) => {
                self.distrust_index();
                Err(io_at("reading", &path)(e))
            }
        }
    }

    /// Makes the next [`Store::open`] rebuild the index from the address
    /// files (which, not the index, say who holds what) by removing the
    /// stamp, and keeps this value from writing it again. Called when an
    /// entry cannot be read: the operation fails, and a retry finds the
    /// index rebuilt instead of the same broken entry. Best effort: if the
    /// stamp cannot be removed, it stays, and so does the error.
    fn distrust_index(&self) {
        self.distrusted.store(true, Ordering::Relaxed);
        *locked(&self.stamp) = None;
        let _ = fs::remove_file(self.stamp_path());
    }

    fn write_index(&self, holder: &Holder, ips: &[IpAddr]) -> Result<()> {
        let path = self.index_path(holder);
        let name = holder.index_name();
        let known = locked(&self.index_exists).get(&name).copied();
        if ips.is_empty() {
            if known == Some(false) {
                // Looked up under this lock and missing: nothing to retire.
                return Ok(());
            }
            self.retire(&path, &name)
                .map_err(io_at("removing", &path))?;
            locked(&self.index_exists).insert(name, false);
            return Ok(());
        }
        let mut text = String::from(INDEX_HEADER);
        if name.starts_with(HASHED_PREFIX) {
            text.push('\n');
            text.push_str(holder.entry_lines().trim_end());
        }
        for ip in ips {
            text.push('\n');
            text.push_str(&ip.to_string());
        }
        text.push('\n');
        // In place when the entry exists (an ADD repeated), else a spare.
        // Whether it exists is known when this value looked it up (a fresh
        // ADD's lookup found it missing), which saves a failing `open`.
        let exists = match known {
            Some(known) => Ok(known),
            None => match OpenOptions::new().write(true).open(&path) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
        };
        let written = match exists {
            Ok(true) => overwrite(&path, text.as_bytes()),
            Ok(false) => match self.place_new(&path, text.as_bytes()) {
                Ok(true) => Ok(()),
                // Made meanwhile (we hold the lock: not by a peer).
                Ok(false) => overwrite(&path, text.as_bytes()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        written.map_err(io_at("writing", &path))?;
        locked(&self.index_exists).insert(name, true);
        Ok(())
    }

    /// The addresses held by `container_id` on `ifname`: exact matches, or
    /// else those of files that record only the container ID (as the
    /// reference matches them).
    ///
    /// # Errors
    ///
    /// [`Error::Env`] for an invalid container ID or ifname; [`Error::Io`]
    /// naming the index entry when it exists but cannot be read.
    pub fn by_id(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
        validate(container_id, ifname)?;
        let exact = Holder {
            container_id: container_id.to_owned(),
            ifname: Some(ifname.to_owned()),
        };
        let found = self.read_index(&exact)?;
        if !found.is_empty() {
            return Ok(found);
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
    /// [`Error::Env`] for an invalid container ID or ifname; [`Error::Io`].
    pub fn reserve(
        &self,
        container_id: &str,
        ifname: &str,
        ip: IpAddr,
        set: usize,
    ) -> Result<bool> {
        validate(container_id, ifname)?;
        let path = self.dir.join(ip.to_string());
        let content = format!("{}{LINE_BREAK}{ifname}", container_id.trim());
        if !self
            .place_new(&path, content.as_bytes())
            .map_err(io_at("creating", &path))?
        {
            return Ok(false);
        }
        let cursor = self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"));
        let bytes = ip.to_string();
        let bytes = bytes.as_bytes();
        let written = match locked(&self.cursors).remove(&set) {
            // Read by `last_reserved`: rewritten through its descriptor,
            // which is then closed.
            Some(Cursor::Open(mut small)) => small.rewrite(bytes),
            // Missing when looked up under this lock: created, and being
            // new it needs no cut.
            Some(Cursor::Absent) => match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&cursor)
            {
                Ok(mut f) => f.write_all(bytes),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => overwrite(&cursor, bytes),
                Err(e) => Err(e),
            },
            None => overwrite(&cursor, bytes),
        };
        written.map_err(io_at("writing", &cursor))?;
        Ok(true)
    }

    /// The last address reserved from range set `set`, if recorded.
    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        let path = self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"));
        // Opened read-write so that `reserve` can rewrite it in place.
        let (small, content) = match Small::open(&path, true) {
            Ok(found) => found,
            Err(e) => {
                if e.kind() == io::ErrorKind::NotFound {
                    locked(&self.cursors).insert(set, Cursor::Absent);
                }
                return None;
            }
        };
        locked(&self.cursors).insert(set, Cursor::Open(small));
        std::str::from_utf8(&content).ok()?.trim().parse().ok()
    }

    /// Records the holder's addresses in the index (replacing the entry).
    ///
    /// # Errors
    ///
    /// [`Error::Env`] for an invalid container ID or ifname; [`Error::Io`].
    pub fn record(&self, container_id: &str, ifname: &str, ips: &[IpAddr]) -> Result<()> {
        validate(container_id, ifname)?;
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
        let content = match Small::open(&path, false).and_then(|(_, c)| {
            String::from_utf8(c).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }) {
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
    /// [`Error::Env`] for an invalid container ID or ifname; [`Error::Io`],
    /// also when the attachment's index entry exists but cannot be read:
    /// then nothing is released and the entry stays, for a retry.
    pub fn release_by_id(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
        validate(container_id, ifname)?;
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
            for ip in self.read_index(holder)? {
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
