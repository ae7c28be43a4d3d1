//! Dev-only harness for kernel tests of the k8snet crates (nftables,
//! netlink, sockets, real traffic).
//!
//! A [`Testnet`] is a "node" network namespace with pod namespaces joined to
//! it by veth pairs, optionally on a bridge whose addresses are the pods'
//! gateways. Everything lives in namespaces named `kt-<prefix>-<pid>-<n>-*`
//! and is deleted when the `Testnet` is dropped, also while unwinding from a
//! panic. The host's own namespace is never changed: links are created
//! inside the test namespaces, sysctls are written from threads inside
//! them, and Rust code runs in a namespace only on a dedicated thread
//! ([`Netns::run`]). Addresses must come from the [`plan`].
//!
//! Kernel tests need root and CAP_NET_ADMIN; start each with
//! [`kernel_test!`] (skips with a printed reason, but fails under `CI=true`).
//!
//! Checking whether kernel tests can run (works without root):
//!
//! ```
//! match k8snet_testnet::skip_reason() {
//!     None => println!("kernel tests can run"),
//!     Some(reason) => println!("kernel tests would be skipped: {reason}"),
//! }
//! assert!(k8snet_testnet::plan::is_allowed("198.18.0.2".parse().unwrap()));
//! ```
//!
//! Two pods on a bridge talking TCP over IPv4 (needs root):
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use k8snet_testnet::{Testnet, plan};
//!
//! // Skips (returns) without root, except under CI where it fails.
//! k8snet_testnet::kernel_test!(Ok(()));
//! let mut tn = Testnet::new("doc")?;
//! let br = tn.add_bridge("br0", &plan::gateways(0))?;
//! let a = tn.add_bridged_pod(&br, "a", &[plan::pod_v4(0, 2), plan::pod_v6(0, 2)])?;
//! let b = tn.add_bridged_pod(&br, "b", &[plan::pod_v4(0, 3), plan::pod_v6(0, 3)])?;
//!
//! // The listener is made in pod a's namespace and stays there.
//! let listener = a.netns().run(|| TcpListener::bind("198.18.0.2:8080"))??;
//! let server = std::thread::spawn(move || {
//!     let (mut conn, _) = listener.accept().unwrap();
//!     conn.write_all(b"hi").unwrap();
//! });
//! let reply = b.netns().run(|| {
//!     let mut s = TcpStream::connect("198.18.0.2:8080")?;
//!     let mut buf = String::new();
//!     s.read_to_string(&mut buf).map(|_| buf)
//! })??;
//! server.join().unwrap();
//! assert_eq!(reply, "hi");
//! println!("{}", tn.node().cmd(&["ip", "-br", "addr"])?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cleanup;
mod cmd;
mod error;
mod gate;
pub mod interrupt;
mod netns;
pub mod plan;
mod testnet;

pub use cleanup::cleanup_stale;
pub use error::{Error, Result};
pub use gate::{kernel_available, skip_reason, under_ci};
pub use netns::{Netns, in_netns};
pub use testnet::{Bridge, Pod, Testnet};
