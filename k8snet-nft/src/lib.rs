//! The safe nftables layer of k8snet: what the load balancer and the network
//! policy program, as plain data, and (with the `linux` feature) the code
//! that applies it to the kernel in one transaction and reads it back.
//! Neither component writes FFI or netlink batches of its own.
//!
//! # The parts
//!
//! - **Model** ([`Table`], [`Chain`], [`Rule`], [`Expr`], [`Set`]): the
//!   desired state of one table as plain data. Chains and sets are kept by
//!   name and elements by key, so equal contents compare equal however they
//!   were built. A map is a [`Set`] with [`MapData`], as in the kernel.
//! - **Render** ([`render`], [`rule_text`]): `nft -f` text, deterministic,
//!   close to what `nft list` prints (the kernel tests check it with
//!   `nft -c -f`). [`parse_rule`] reads a rule's text back.
//! - **Diff** ([`diff`]): (current state, next state) to the smallest
//!   [`Batch`] of operations. Full resync and partial update are the same
//!   call. A [`Batch`] prints as an nft script for dry runs, and
//!   [`Batch::apply_to`] plays it on an in-memory table with the kernel's
//!   rules, for tests without root.
//! - **Linux backend** (feature `linux`): [`Nft`] applies a batch in one
//!   netlink transaction (messages encoded and parsed in safe Rust, byte for
//!   byte what libnftnl would send, with no C library linked), names the
//!   object the kernel refused, and reads a table back
//!   ([`Nft::read_table`]).
//! - **Conntrack** ([`conntrack`]): ctnetlink messages and their decoder
//!   (pure), and with the `linux` feature `conntrack::Conntrack`, the
//!   socket that lists and deletes entries.
//! - [`predict_jhash_slot`]: the slot the kernel's `jhash ... mod M seed S`
//!   picks, so user space can predict where a flow goes.
//!
//! # Choices
//!
//! **Rules are replaced a chain at a time.** A chain whose rules changed is
//! flushed and all its rules added again, in the same transaction, so a
//! packet sees the old chain or the new one, never a mix. Chains whose rules
//! did not change are not touched. (Replacing single rules by handle would
//! make updates smaller, at the price of tracking kernel handles; chains in
//! our layouts are short, while large, frequently changing contents live in
//! set and map elements, which are diffed one by one.)
//!
//! **One change, one transaction.** [`Nft::apply`] sends the whole batch
//! between `NFNL_MSG_BATCH_BEGIN` and `END`, each message with `NLM_F_ACK`;
//! if the kernel refuses any message it aborts the transaction and holds
//! exactly what it held before, and the error names the object (by the
//! message's sequence number), e.g. `rule 3 of chain "svc-web": No such file
//! or directory (os error 2) (jump target "missing" does not exist)`.
//!
//! **How large changes are split.** Set and map contents always travel as
//! elements of *named* sets, in netlink messages bounded to about 32 KiB of
//! elements each (the kernel's attribute length is 16 bits), and all of one
//! change stays in one transaction. Measured on Linux 6.18 (2 vCPU), named
//! map elements cost time linear in the transaction: 10,000 in 23 ms,
//! 100,000 in 0.22 s, 500,000 in 1.39 s; splitting the same 500,000 into
//! transactions of 10,000 took 12.2 s, because every commit costs in
//! proportion to the set's size. So elements are never split into several
//! transactions, and atomicity is kept. The cost that does grow with the
//! square of the transaction is the binding of *anonymous* sets (the 286 s
//! measured for 10,000 Services with anonymous maps each; here 1,000
//! anonymous maps took 0.13 s, 2,000 0.35 s, 4,000 1.38 s). Anonymous sets
//! are therefore limited to [`MAX_ANON_ELEMENTS`] elements each and
//! [`MAX_ANON_SETS_PER_BATCH`] per batch; anything larger belongs in a named
//! set or map, whose elements are cheap.
//!
//! **Readback without decoding expressions.** Each rule carries its own
//! text in its userdata (next to nft's comment, which `nft list` shows), and
//! [`Nft::read_table`] parses that text, so what is read back is exactly the
//! model that was applied. The kernel keeps at most 256 bytes of userdata
//! per rule: a rule whose text and comment are longer is refused before
//! anything is sent. Sets are read from their kernel description (key and
//! data types, flags) and elements. Elements the packet path added to a
//! `dynamic` set are read back too, and [`diff`] never deletes them, so a
//! restarted component can [`Nft::sync`] without flushing established state.
//!
//! **Ownership.** [`Nft`] touches only tables whose names start with
//! [`OWNED_PREFIX`]. It works in the network namespace of the thread that
//! created it.
//!
//! # Example
//!
//! Build a table, render it, change it and diff (no root needed):
//!
//! ```
//! use k8snet_nft::{
//!     Chain, ChainType, DataType, Family, Hook, Key, MapValue, Policy, Rule, Set, Table,
//!     Value, Verdict, diff, render,
//! };
//!
//! let svc = Key(vec![
//!     Value::Ipv4("198.19.0.10".parse().unwrap()),
//!     Value::Proto(17),
//!     Value::Port(53),
//! ]);
//! let services = Set::verdict_map(vec![DataType::Ipv4Addr, DataType::InetProto, DataType::InetService])
//!     .with_mapping(svc.clone(), MapValue::Verdict(Verdict::Goto("svc-dns".into())));
//! let v1 = Table::new(Family::Inet, "k8snet-lb")
//!     .with_set("services", services)
//!     .with_chain(
//!         "prerouting",
//!         Chain::base(ChainType::Nat, Hook::Prerouting, -100, Policy::Accept)
//!             .with_rule("ip daddr . meta l4proto . th dport vmap @services".parse::<Rule>()?),
//!     )
//!     .with_chain(
//!         "svc-dns",
//!         Chain::regular().with_rule("dnat ip to 198.18.0.53".parse::<Rule>()?),
//!     );
//! let text = render(&v1);
//! assert!(text.contains("map services {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n"));
//! assert!(text.contains("\t\tip daddr . meta l4proto . th dport vmap @services\n"));
//!
//! // Create from nothing, then a partial update: one more endpoint.
//! let create = diff(None, &v1)?;
//! assert_eq!(create.apply_to(None)?, Some(v1.clone()));
//! let mut v2 = v1.clone();
//! v2.chains.get_mut("svc-dns").unwrap().rules[0] =
//!     "numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto ep-b }".parse()?;
//! v2.chains.insert("ep-a".into(), Chain::regular().with_rule("dnat ip to 198.18.0.53".parse()?));
//! v2.chains.insert("ep-b".into(), Chain::regular().with_rule("dnat ip to 198.18.0.54".parse()?));
//! let update = diff(Some(&v1), &v2)?;
//! println!("{update}"); // an nft script: the dry run
//! assert_eq!(
//!     update.to_string(),
//!     "flush chain inet k8snet-lb svc-dns\n\
//!      add chain inet k8snet-lb ep-a\n\
//!      add chain inet k8snet-lb ep-b\n\
//!      add rule inet k8snet-lb ep-a dnat ip to 198.18.0.53\n\
//!      add rule inet k8snet-lb ep-b dnat ip to 198.18.0.54\n\
//!      add rule inet k8snet-lb svc-dns numgen random mod 2 vmap { 0 : goto ep-a, 1 : goto ep-b }\n"
//! );
//! assert_eq!(update.apply_to(Some(&v1))?, Some(v2));
//! # Ok::<(), k8snet_nft::Error>(())
//! ```
//!
//! # Crate features
//!
//! - `linux`: the kernel backend ([`Nft`]); pure Rust (no C library to
//!   build or link, so binaries can be fully static), root (CAP_NET_ADMIN)
//!   to run.

#![deny(unsafe_code)]
// Without the backend, the docs' links to `Nft` have nothing to point at.
#![cfg_attr(
    not(all(feature = "linux", target_os = "linux")),
    allow(rustdoc::broken_intra_doc_links)
)]

// The differential tests of `sys` reuse the integration tests' table
// generators, which name the crate.
#[cfg(all(test, feature = "linux", target_os = "linux"))]
extern crate self as k8snet_nft;

pub mod conntrack;
mod diff;
mod error;
mod expr;
mod jhash;
// Lowering and raising run only in the Linux backend (and in unit tests).
#[cfg_attr(not(all(feature = "linux", target_os = "linux")), allow(dead_code))]
mod lower;
#[cfg(test)]
mod lower_tests;
mod model;
mod parse;
#[cfg_attr(not(all(feature = "linux", target_os = "linux")), allow(dead_code))]
mod raise;
mod render;
mod sim;
mod types;
mod validate;

#[cfg(all(feature = "linux", target_os = "linux"))]
mod linux;
// nf_tables netlink messages and the socket, in safe Rust. Its test-only
// `reference` module (libnftnl, for the differential tests) is the crate's
// only `unsafe` code.
#[cfg(all(feature = "linux", target_os = "linux"))]
mod sys;

pub use diff::{Batch, Op, diff};
pub use error::{Error, Object, Result};
pub use expr::{
    AnonElement, CmpOp, CtStates, CtStatus, DynsetOp, Expr, Field, IpFamily, KeyExpr, MarkTarget,
    Nat, NatKind, NatTo, Reject, Verdict,
};
pub use jhash::{jhash, key_bytes, predict_jhash_slot};
pub use lower::MAX_ANON_SETS_PER_BATCH;
pub use model::{
    BaseChain, Chain, ChainType, Element, Family, Hook, MapData, MapValue, Policy, Rule, Set,
    SetFlags, Table,
};
pub use parse::parse_rule;
pub use render::{render, rule_text};
pub use types::{DataType, Key, Value};
pub use validate::{
    DEFAULT_DYNAMIC_SIZE, MAX_ANON_ELEMENTS, MAX_COMMENT_LEN, MAX_NAME_LEN, validate,
};

#[cfg(all(feature = "linux", target_os = "linux"))]
pub use linux::{ApplyStats, Nft};

/// Tables whose names start with this are ours; the Linux backend refuses
/// to touch any other table.
pub const OWNED_PREFIX: &str = "k8snet";
