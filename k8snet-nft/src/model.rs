//! The desired state of one nftables table as plain data: chains with
//! their rules, and named sets and maps with their elements.
//!
//! Chains and sets are kept in name order (`BTreeMap`) and elements in key
//! order, so two tables with the same content compare equal however they
//! were built (or read back from the kernel).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::expr::{Expr, Verdict};
use crate::types::{DataType, Key};

/// A table's address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Family {
    /// `inet`: IPv4 and IPv6.
    Inet,
    /// `ip`: IPv4 only.
    Ip,
    /// `ip6`: IPv6 only.
    Ip6,
}

impl Family {
    /// The nft name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Inet => "inet",
            Self::Ip => "ip",
            Self::Ip6 => "ip6",
        }
    }

    /// The kernel's `NFPROTO_*` number.
    #[cfg_attr(not(all(feature = "linux", target_os = "linux")), allow(dead_code))]
    pub(crate) fn nfproto(self) -> u8 {
        match self {
            Self::Inet => 1,
            Self::Ip => 2,
            Self::Ip6 => 10,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One table: the unit a component owns, diffs and applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// The table name (the crate only touches tables named `k8snet*` when
    /// applying; see [`crate::OWNED_PREFIX`]).
    pub name: String,
    /// The family.
    pub family: Family,
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// Named sets and maps by name (a map is a set with data, as in the
    /// kernel; they share one namespace).
    pub sets: BTreeMap<String, Set>,
}

impl Table {
    /// An empty table.
    pub fn new(family: Family, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            family,
            chains: BTreeMap::new(),
            sets: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a chain; returns `self` for chaining.
    pub fn with_chain(mut self, name: &str, chain: Chain) -> Self {
        self.chains.insert(name.to_owned(), chain);
        self
    }

    /// Adds (or replaces) a set or map; returns `self` for chaining.
    pub fn with_set(mut self, name: &str, set: Set) -> Self {
        self.sets.insert(name.to_owned(), set);
        self
    }

    /// The number of rules in all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }
}

/// A chain: a base chain attached to a hook, or a regular chain reached by
/// `jump`/`goto`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// The hook, for base chains.
    pub base: Option<BaseChain>,
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

impl Chain {
    /// An empty regular chain.
    pub fn regular() -> Self {
        Self::default()
    }

    /// An empty base chain.
    pub fn base(kind: ChainType, hook: Hook, priority: i32, policy: Policy) -> Self {
        Self {
            base: Some(BaseChain {
                kind,
                hook,
                priority,
                policy,
            }),
            rules: Vec::new(),
        }
    }

    /// Appends a rule; returns `self` for chaining.
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }
}

/// Where a base chain is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// The chain type.
    pub kind: ChainType,
    /// The hook.
    pub hook: Hook,
    /// The priority (lower runs first; dstnat is -100, srcnat 100).
    pub priority: i32,
    /// What happens to packets no rule decided on.
    pub policy: Policy,
}

/// A base chain's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChainType {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
    /// `route`.
    Route,
}

impl ChainType {
    /// The nft name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::Nat => "nat",
            Self::Route => "route",
        }
    }
}

/// A netfilter hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// `prerouting`.
    Prerouting,
    /// `input`.
    Input,
    /// `forward`.
    Forward,
    /// `output`.
    Output,
    /// `postrouting`.
    Postrouting,
}

impl Hook {
    /// The nft name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prerouting => "prerouting",
            Self::Input => "input",
            Self::Forward => "forward",
            Self::Output => "output",
            Self::Postrouting => "postrouting",
        }
    }

    /// The kernel's hook number (`NF_INET_*`).
    pub(crate) fn number(self) -> u32 {
        match self {
            Self::Prerouting => 0,
            Self::Input => 1,
            Self::Forward => 2,
            Self::Output => 3,
            Self::Postrouting => 4,
        }
    }

    pub(crate) fn from_number(n: u32) -> Option<Self> {
        [
            Self::Prerouting,
            Self::Input,
            Self::Forward,
            Self::Output,
            Self::Postrouting,
        ]
        .into_iter()
        .find(|h| h.number() == n)
    }
}

/// A base chain's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
}

impl Policy {
    /// The nft name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Drop => "drop",
        }
    }
}

/// A rule: items evaluated left to right, and an optional comment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Matches and statements; a verdict, if any, comes last.
    pub exprs: Vec<Expr>,
    /// A comment (at most 127 bytes, no `"`), shown by `nft list`.
    pub comment: Option<String>,
}

impl Rule {
    /// A rule of these items.
    pub fn new(exprs: Vec<Expr>) -> Self {
        Self {
            exprs,
            comment: None,
        }
    }

    /// Sets the comment; returns `self` for chaining.
    pub fn with_comment(mut self, comment: &str) -> Self {
        self.comment = Some(comment.to_owned());
        self
    }
}

impl FromIterator<Expr> for Rule {
    fn from_iter<I: IntoIterator<Item = Expr>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

/// Set flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SetFlags {
    /// `interval`: elements may be ranges (`a-b`, prefixes).
    pub interval: bool,
    /// `timeout`: elements may expire.
    pub timeout: bool,
    /// `dynamic`: the packet path adds elements (`add`/`update @set`).
    pub dynamic: bool,
    /// `constant`: contents never change after creation.
    pub constant: bool,
}

/// What a map maps to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MapData {
    /// `verdict`: a verdict map.
    Verdict,
    /// Data of these (concatenated) types.
    Data(Vec<DataType>),
}

/// A named set, or a map when `data` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    /// The key type (several fields for a concatenation).
    pub key: Vec<DataType>,
    /// The data type, for maps.
    pub data: Option<MapData>,
    /// Flags.
    pub flags: SetFlags,
    /// The default element timeout (needs the `timeout` flag).
    pub timeout: Option<Duration>,
    /// The maximum number of elements.
    pub size: Option<u32>,
    /// Elements by key (for intervals: by the start of the range). Elements
    /// of a `dynamic` set that the packet path added are not part of the
    /// desired state: [`crate::diff`] never deletes them.
    pub elements: BTreeMap<Key, Element>,
}

impl Set {
    /// An empty set with this key type.
    pub fn new(key: Vec<DataType>) -> Self {
        Self {
            key,
            data: None,
            flags: SetFlags::default(),
            timeout: None,
            size: None,
            elements: BTreeMap::new(),
        }
    }

    /// An empty map from `key` to `data`.
    pub fn map(key: Vec<DataType>, data: Vec<DataType>) -> Self {
        Self {
            data: Some(MapData::Data(data)),
            ..Self::new(key)
        }
    }

    /// An empty verdict map.
    pub fn verdict_map(key: Vec<DataType>) -> Self {
        Self {
            data: Some(MapData::Verdict),
            ..Self::new(key)
        }
    }

    /// Whether this is a map.
    pub fn is_map(&self) -> bool {
        self.data.is_some()
    }

    /// Sets the flags; returns `self` for chaining.
    pub fn with_flags(mut self, flags: SetFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Sets the default timeout (and the `timeout` flag).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.flags.timeout = true;
        self.timeout = Some(timeout);
        self
    }

    /// Adds a set element; returns `self` for chaining.
    pub fn with_element(mut self, key: Key) -> Self {
        self.elements.insert(key, Element::default());
        self
    }

    /// Adds a range element `from-to` (needs the `interval` flag).
    pub fn with_range(mut self, from: Key, to: Key) -> Self {
        self.elements.insert(
            from,
            Element {
                end: Some(to),
                ..Element::default()
            },
        );
        self
    }

    /// Adds a map element; returns `self` for chaining.
    pub fn with_mapping(mut self, key: Key, value: MapValue) -> Self {
        self.elements.insert(
            key,
            Element {
                value: Some(value),
                ..Element::default()
            },
        );
        self
    }

    /// The definition without the elements, for comparing definitions.
    pub(crate) fn spec(&self) -> Self {
        Self {
            elements: BTreeMap::new(),
            ..self.clone()
        }
    }
}

/// The rest of a set element besides its key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Element {
    /// The inclusive end of a range (`interval` sets).
    pub end: Option<Key>,
    /// The value, in maps.
    pub value: Option<MapValue>,
    /// A timeout of its own (`timeout` sets); whole milliseconds.
    pub timeout: Option<Duration>,
}

/// The value of a map element.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MapValue {
    /// In a verdict map.
    Verdict(Verdict),
    /// In a data map.
    Data(Key),
}
