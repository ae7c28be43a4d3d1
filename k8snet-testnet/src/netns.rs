//! Handles to named network namespaces (`/run/netns/NAME`) and the two ways
//! to act inside one: a command via `ip netns exec`, or a Rust closure on a
//! dedicated thread that entered it.

use std::fs::{self, File};
use std::io;
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use nix::sched::{CloneFlags, setns};

use crate::{Error, Result, cmd};

/// Where iproute2 keeps named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// `ip netns add` mounts `/run/netns` on first use; two of them racing can
/// stack that mount, so this process creates and deletes one at a time.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

/// Makes names unique among the parallel tests of one process.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique `kt-<prefix>-<pid>-<counter>` stem for namespace names.
pub(crate) fn unique_stem(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("kt-{prefix}-{}-{n}", std::process::id())
}

/// Accepts the short, path-safe names used for prefixes and pods.
pub(crate) fn check_word(name: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() || name.len() > 16 {
        return bad("must be 1 to 16 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        // No '-': it separates the fields that `cleanup_stale` parses.
        return bad("only a-z, 0-9 and '_' are allowed");
    }
    Ok(())
}

/// A handle to a named network namespace. It does not own the namespace:
/// [`crate::Testnet`] deletes the ones it made when it is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A handle to an existing namespace called `name` (as in `ip netns list`).
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file, `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `argv` inside the namespace (`ip netns exec NAME argv...`) and
    /// returns its standard output. The error names the command and carries
    /// its standard error.
    pub fn cmd(&self, argv: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(argv);
        cmd::run(&full)
    }

    /// Runs `ip -n NAME args...`: cheaper than [`Netns::cmd`] for iproute2.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        cmd::run(&full)
    }

    /// Runs `f` on a new thread that first entered this namespace, and
    /// returns its result. The calling thread never changes namespace.
    ///
    /// A panic in `f` is resumed on the caller, so assertions inside work as
    /// usual. Sockets made in `f` stay in this namespace for their whole life:
    /// returning a bound listener and using it from any thread is fine (it
    /// also keeps the namespace alive, unnamed, until it is closed).
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        // A name with '/' could point anywhere, even at the host's namespace.
        if self.name.is_empty() || self.name.contains('/') || self.name.starts_with('.') {
            return Err(Error::InvalidName {
                name: self.name.clone(),
                why: "not a plain /run/netns entry name",
            });
        }
        let file = File::open(self.path()).map_err(|source| self.enter_error(source))?;
        let joined = thread::scope(|s| {
            thread::Builder::new()
                .name(format!("netns {}", self.name))
                .spawn_scoped(s, move || {
                    // Only this fresh thread switches; `f` never runs if it fails.
                    setns(&file, CloneFlags::CLONE_NEWNET)
                        .map_err(|errno| self.enter_error(errno.into()))?;
                    Ok(f())
                })
                .map(|handle| handle.join())
                .map_err(|source| Error::Io {
                    what: format!("spawning a thread for netns {}", self.name),
                    source,
                })
        })?;
        match joined {
            Ok(result) => result,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Sets a `net.*` sysctl (dotted key, e.g. `net.ipv4.ip_forward`) inside
    /// this namespace only, by writing `/proc/sys` from a thread in it.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = sysctl_path(key)?;
        self.run(|| fs::write(&path, value))?
            .map_err(|source| self.sysctl_error(key, source))
    }

    /// Reads a `net.*` sysctl inside this namespace, trimmed.
    pub fn read_sysctl(&self, key: &str) -> Result<String> {
        let path = sysctl_path(key)?;
        let value = self
            .run(|| fs::read_to_string(&path))?
            .map_err(|source| self.sysctl_error(key, source))?;
        Ok(value.trim().to_owned())
    }

    /// Names of the links this namespace has (from `if_nameindex` on a
    /// thread inside it).
    pub fn links(&self) -> Result<Vec<String>> {
        let names = self.run(|| {
            nix::net::if_::if_nameindex().map(|list| {
                list.iter()
                    .map(|i| i.name().to_string_lossy().into_owned())
                    .collect()
            })
        })?;
        names.map_err(|errno| Error::Io {
            what: format!("listing links of netns {}", self.name),
            source: errno.into(),
        })
    }

    fn enter_error(&self, source: io::Error) -> Error {
        Error::Enter {
            netns: self.name.clone(),
            source,
        }
    }

    fn sysctl_error(&self, key: &str, source: io::Error) -> Error {
        Error::Io {
            what: format!("sysctl {key} in netns {}", self.name),
            source,
        }
    }
}

/// Runs `f` inside the namespace called `name`; see [`Netns::run`].
pub fn in_netns<T, F>(name: &str, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    Netns::named(name).run(f)
}

/// Only `net.*` keys: other sysctls are global, so writing them from inside
/// a namespace would change the host.
fn sysctl_path(key: &str) -> Result<PathBuf> {
    let ok = key.starts_with("net.")
        && key
            .split('.')
            .all(|part| !part.is_empty() && !part.contains('/'));
    if !ok {
        return Err(Error::InvalidName {
            name: key.to_owned(),
            why: "only per-namespace net.* sysctls may be set",
        });
    }
    Ok(Path::new("/proc/sys").join(key.replace('.', "/")))
}

/// `ip netns add NAME`.
pub(crate) fn create(name: &str) -> Result<Netns> {
    let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    cmd::run(&["ip", "netns", "add", name])?;
    Ok(Netns::named(name))
}

/// `ip netns del NAME`; a namespace that is already gone is not an error.
pub(crate) fn delete(name: &str) -> Result<()> {
    let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match cmd::run(&["ip", "netns", "del", name]) {
        Err(_) if !Path::new(NETNS_DIR).join(name).exists() => Ok(()),
        other => other.map(drop),
    }
}
