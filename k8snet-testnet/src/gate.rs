//! The project rule for kernel tests: they need root and CAP_NET_ADMIN.
//! Under CI (`CI=true`) a kernel test that cannot run fails; elsewhere it
//! is skipped with a printed reason.

use std::sync::OnceLock;

use crate::{Result, netns};

/// Why kernel tests cannot run here, or `None` if they can. Probed once per
/// process: effective uid 0, then a throwaway namespace with a veth pair in
/// it is created and deleted.
pub fn skip_reason() -> Option<&'static str> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON.get_or_init(probe).as_deref()
}

fn probe() -> Option<String> {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Some(format!("kernel tests need root (effective uid is {euid})"));
    }
    try_namespace()
        .err()
        .map(|e| format!("cannot make a network namespace with a veth pair (CAP_NET_ADMIN?): {e}"))
}

fn try_namespace() -> Result<()> {
    let ns = netns::create(&format!("{}-x", netns::unique_stem("probe")))?;
    let made = ns.ip(&["link", "add", "kt0", "type", "veth", "peer", "name", "kt1"]);
    let deleted = netns::delete(ns.name());
    made.and(deleted)
}

/// Whether this run is under CI: `CI` set to anything but empty, `0` or `false`.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// `true` if kernel tests can run. Otherwise prints `skipped: <reason>` and
/// returns `false`, except under CI, where it panics with the reason.
pub fn kernel_available() -> bool {
    let Some(reason) = skip_reason() else {
        return true;
    };
    if under_ci() {
        panic!("kernel test cannot run under CI: {reason}");
    }
    eprintln!("skipped: {reason}");
    false
}

/// Put first in a kernel test: returns early (skips) when
/// [`kernel_available`] says no. `kernel_test!(value)` returns `value`
/// instead, for tests that return a `Result`.
///
/// ```
/// fn my_kernel_test() {
///     k8snet_testnet::kernel_test!();
///     // ... use Testnet here ...
/// }
/// fn my_fallible_test() -> Result<(), k8snet_testnet::Error> {
///     k8snet_testnet::kernel_test!(Ok(()));
///     Ok(())
/// }
/// # let _ = (my_kernel_test, my_fallible_test);
/// ```
#[macro_export]
macro_rules! kernel_test {
    () => {
        if !$crate::kernel_available() {
            return;
        }
    };
    ($skipped:expr) => {
        if !$crate::kernel_available() {
            return $skipped;
        }
    };
}
