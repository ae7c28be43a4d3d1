//! # k8snet-cni
//!
//! The Container Network Interface for k8snet: the specification as types,
//! both sides of it (a plugin skeleton and a libcni-compatible runtime),
//! host-local IPAM, and (feature `linux`) the bridge, loopback and portmap
//! plugins on netlink and nftables.
//!
//! - **Spec types**: [`NetConf`] and [`NetConfList`] (unknown keys pass
//!   through; `cniVersions` negotiated), [`CniResult`] for every version
//!   with the conversions between them ([`CniResult::to_json`]),
//!   [`Error`]/[`CniError`] with the well-known [`code`]s (messages name the
//!   field: `ipam.ranges[0][0].subnet: ...`), and [`Env`] for the `CNI_*`
//!   variables.
//! - **Plugin side**: implement [`Plugin`] and call [`run`]: it validates
//!   the environment, negotiates the version, dispatches ADD, DEL, CHECK,
//!   GC (`cni.dev/valid-attachments` or `cni.dev/attachments`), STATUS and
//!   VERSION, and prints the result, or the error object on stdout (where
//!   libcni reads it) with exit status 1.
//! - **Runtime side**: [`Runtime`] runs configuration lists as libcni does
//!   (ADD in order chaining `prevResult`, DEL in reverse with the cached
//!   result, CHECK, GC, STATUS) and keeps its result cache, byte-compatible
//!   ([`runtime::cache`]).
//! - **IPAM**: [`hostlocal`], the reference's configuration and on-disk
//!   format, with allocation and release that read a constant number of
//!   files, plus GC and STATUS.
//! - **Plugins** (feature `linux`): [`linux::Bridge`], [`linux::Loopback`],
//!   [`linux::Portmap`]; the examples `k8snet-bridge`, `k8snet-host-local`,
//!   `k8snet-loopback` and `k8snet-portmap` are these behind [`run`]
//!   (install them as static executables built with the `cni-plugin`
//!   profile: see the repository's README). The pure halves ([`bridge`],
//!   [`masq`], [`portmap`]) build configuration and nftables data that
//!   tests check without root.
//!
//! # DEL of the bridge plugin: deferred veth deletion
//!
//! Deleting a veth pair makes the kernel wait for an RCU barrier in the
//! caller (about 20 ms), longer than everything else DEL does. By default
//! (`"deferDelete": true`, a key of this bridge plugin only) DEL therefore
//! does synchronously what the next ADD or another pod could notice:
//! releases the addresses (IPAM), removes the masquerade rules, sets the
//! container interface down, removes its addresses and renames it
//! (`k8sdel<index in hex>`, freeing `CNI_IFNAME` for the next ADD at once);
//! then it hands the deletion of the pair to a detached process (double
//! fork and `setsid`, stdin/stdout/stderr on `/dev/null`, so a runtime that
//! waits for the plugin and the end of its stdout does not wait for it;
//! every other descriptor it inherited, but the two sockets it uses, is
//! closed at once, so a process embedding the plugin keeps no pipe or file
//! open through it) and returns. Until that process is done (tens of milliseconds) the host end
//! is still on the bridge, down, without carrier; it keeps its alias, so
//! GC would also remove it. An ADD of the same container right after DEL
//! finds its host end's name taken and deletes the lingering pair itself.
//! If the process cannot be started, or a step before it fails, DEL
//! deletes the pair itself before returning. `"deferDelete": false` always
//! does so, as the reference plugin does. See
//! [`bridge::BridgeConf::defer_delete`].
//!
//! Reading a 1.0.0 result (as the bridge plugin prints it) and writing it
//! at 0.2.0:
//!
//! ```
//! use k8snet_cni::{CniResult, Version};
//!
//! let r = CniResult::from_slice(br#"{
//!     "cniVersion": "1.0.0",
//!     "interfaces": [{"name": "cni0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/run/netns/p"}],
//!     "ips": [{"address": "198.18.0.2/24", "gateway": "198.18.0.1", "interface": 2}],
//!     "routes": [{"dst": "0.0.0.0/0"}]
//! }"#, Version::V1_0_0)?;
//! assert_eq!(
//!     r.to_json_string(Version::V0_2_0),
//!     r#"{"cniVersion":"0.2.0","ip4":{"ip":"198.18.0.2/24","gateway":"198.18.0.1","routes":[{"dst":"0.0.0.0/0"}]}}"#
//! );
//! # Ok::<(), k8snet_cni::Error>(())
//! ```
//!
//! A plugin, driven the way a runtime drives it (environment and stdin in,
//! stdout and exit status out):
//!
//! ```
//! use k8snet_cni::{CniResult, Plugin, Request, Result, Version, run_with};
//!
//! struct Noop;
//! impl Plugin for Noop {
//!     fn add(&self, req: &Request) -> Result<CniResult> {
//!         // The richest shape, converted to the configuration's version
//!         // when printed.
//!         Ok(CniResult::new(Version::LATEST))
//!     }
//!     fn del(&self, _: &Request) -> Result<()> { Ok(()) }
//!     fn check(&self, _: &Request) -> Result<()> { Ok(()) }
//! }
//!
//! let env = |k: &str| match k {
//!     "CNI_COMMAND" => Some("ADD".to_owned()),
//!     "CNI_CONTAINERID" => Some("c1".to_owned()),
//!     "CNI_NETNS" => Some("/run/netns/pod".to_owned()),
//!     "CNI_IFNAME" => Some("eth0".to_owned()),
//!     "CNI_PATH" => Some("/opt/cni/bin".to_owned()),
//!     _ => None,
//! };
//! let out = run_with(&Noop, env, br#"{"cniVersion":"1.0.0","name":"n","type":"noop"}"#);
//! assert_eq!((out.status, out.stdout), (0, b"{\"cniVersion\":\"1.0.0\"}\n".to_vec()));
//!
//! // A bad configuration: a JSON error on stdout, status 1, the field named.
//! let out = run_with(&Noop, env, br#"{"cniVersion":"1.0.0","name":"bad name","type":"noop"}"#);
//! assert_eq!(out.status, 1);
//! assert!(String::from_utf8_lossy(&out.stdout).contains(r#""code":7,"msg":"name: "#));
//! ```
//!
//! # Crate features
//!
//! - `linux`: the plugins' kernel side: netlink messages of
//!   netlink-packet-route (the version rtnetlink re-exports), sent by the
//!   bridge plugin's ADD on blocking sockets (one request or a batch per
//!   round trip; a plugin call is one short process, for which an event
//!   loop only adds system calls) and by the other commands through
//!   rtnetlink on a current-thread tokio runtime; k8snet-nft's Linux
//!   backend for masquerading and port mappings.

pub mod bridge;
mod config;
pub mod conntrack;
pub mod delegate;
mod env;
mod error;
pub mod hostlocal;
pub mod masq;
mod plugin;
pub mod portmap;
mod result;
pub mod runtime;
mod version;

/// The plugins' kernel side (feature `linux`).
#[cfg(all(feature = "linux", target_os = "linux"))]
pub mod linux;

pub use config::{Attachment, NetConf, NetConfList, gc_attachments, typed};
pub use env::{Command, Env, format_args, parse_args, validate_id, validate_ifname};
pub use error::{CniError, Error, Result, code};
pub use plugin::{GcRequest, Outcome, Plugin, Request, run, run_with};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use runtime::{Runtime, RuntimeConf};
pub use version::{UnknownVersion, Version, compare_version_strings};
