//! Rule expressions as plain data: matches (`ip saddr 198.18.0.2`,
//! `ct state established`, `ct status dnat`, `@set` lookups) and statements (`counter`,
//! `dnat`, `update @set`, verdicts).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::types::{DataType, Key, Value};

/// A packet (or conntrack, or routing) field that rules match on and that
/// set keys are built from. Fields of IPv4/IPv6 headers and of TCP/UDP
/// imply a protocol check, added when the rule is built (as nft does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `ip saddr`.
    IpSaddr,
    /// `ip daddr`.
    IpDaddr,
    /// `ip6 saddr`.
    Ip6Saddr,
    /// `ip6 daddr`.
    Ip6Daddr,
    /// `tcp sport`.
    TcpSport,
    /// `tcp dport`.
    TcpDport,
    /// `udp sport`.
    UdpSport,
    /// `udp dport`.
    UdpDport,
    /// `th sport`: the source port of any transport header.
    ThSport,
    /// `th dport`: the destination port of any transport header.
    ThDport,
    /// `meta l4proto`.
    MetaL4proto,
    /// `meta nfproto`.
    MetaNfproto,
    /// `meta mark`.
    MetaMark,
    /// `meta iifname`.
    MetaIifname,
    /// `meta oifname`.
    MetaOifname,
    /// `ct mark`.
    CtMark,
    /// `fib daddr type`: the route type of the destination (`local`, ...).
    FibDaddrType,
    /// `fib saddr type`: the route type of the source (`local` when the
    /// node holds the address).
    FibSaddrType,
}

/// Every field, for parsers and tests.
pub(crate) const ALL_FIELDS: [Field; 18] = [
    Field::IpSaddr,
    Field::IpDaddr,
    Field::Ip6Saddr,
    Field::Ip6Daddr,
    Field::TcpSport,
    Field::TcpDport,
    Field::UdpSport,
    Field::UdpDport,
    Field::ThSport,
    Field::ThDport,
    Field::MetaL4proto,
    Field::MetaNfproto,
    Field::MetaMark,
    Field::MetaIifname,
    Field::MetaOifname,
    Field::CtMark,
    Field::FibDaddrType,
    Field::FibSaddrType,
];

impl Field {
    /// The type of the field's value.
    pub fn data_type(self) -> DataType {
        match self {
            Self::IpSaddr | Self::IpDaddr => DataType::Ipv4Addr,
            Self::Ip6Saddr | Self::Ip6Daddr => DataType::Ipv6Addr,
            Self::TcpSport
            | Self::TcpDport
            | Self::UdpSport
            | Self::UdpDport
            | Self::ThSport
            | Self::ThDport => DataType::InetService,
            Self::MetaL4proto => DataType::InetProto,
            Self::MetaNfproto => DataType::NfProto,
            Self::MetaMark | Self::CtMark => DataType::Mark,
            Self::MetaIifname | Self::MetaOifname => DataType::Ifname,
            Self::FibDaddrType | Self::FibSaddrType => DataType::FibAddrType,
        }
    }

    /// The nft words (`ip saddr`).
    pub fn name(self) -> &'static str {
        match self {
            Self::IpSaddr => "ip saddr",
            Self::IpDaddr => "ip daddr",
            Self::Ip6Saddr => "ip6 saddr",
            Self::Ip6Daddr => "ip6 daddr",
            Self::TcpSport => "tcp sport",
            Self::TcpDport => "tcp dport",
            Self::UdpSport => "udp sport",
            Self::UdpDport => "udp dport",
            Self::ThSport => "th sport",
            Self::ThDport => "th dport",
            Self::MetaL4proto => "meta l4proto",
            Self::MetaNfproto => "meta nfproto",
            Self::MetaMark => "meta mark",
            Self::MetaIifname => "meta iifname",
            Self::MetaOifname => "meta oifname",
            Self::CtMark => "ct mark",
            Self::FibDaddrType => "fib daddr type",
            Self::FibSaddrType => "fib saddr type",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a lookup, a verdict map or a NAT map is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyExpr {
    /// A concatenation of fields: `ip daddr . meta l4proto . th dport`.
    Fields(Vec<Field>),
    /// `jhash <fields> mod <modulus> seed <seed> [offset <offset>]`: Linux
    /// jhash of the concatenated fields, scaled to `0..modulus` (see
    /// [`crate::predict_jhash_slot`]), plus `offset`; an `integer(32)`.
    Jhash {
        /// The hashed fields, concatenated.
        fields: Vec<Field>,
        /// The number of slots (at least 1).
        modulus: u32,
        /// The seed; always explicit, so every node computes the same slots.
        seed: u32,
        /// Added to the slot.
        offset: u32,
    },
    /// `numgen random|inc mod <modulus> [offset <offset>]`; an `integer(32)`.
    Numgen {
        /// Random (`true`) or round robin (`false`).
        random: bool,
        /// The number of values (at least 1).
        modulus: u32,
        /// Added to the value.
        offset: u32,
    },
}

impl KeyExpr {
    /// One field.
    pub fn field(f: Field) -> Self {
        Self::Fields(vec![f])
    }

    /// The types of the key this expression produces.
    pub fn types(&self) -> Vec<DataType> {
        match self {
            Self::Fields(fields) => fields.iter().map(|f| f.data_type()).collect(),
            Self::Jhash { .. } | Self::Numgen { .. } => vec![DataType::Integer(32)],
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CmpOp {
    /// Equal (written as nothing: `tcp dport 80`).
    Eq,
    /// `!=`.
    Ne,
    /// `<` (ordered types only).
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl CmpOp {
    /// The nft operator text (empty for `Eq`).
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// A set of conntrack bits written as comma-separated names in `nft` text
/// (`ct state`, `ct status`): the type, its named bits, the kernel mask,
/// `|`, `Display` and parsing back from the names.
macro_rules! ct_bits {
    ($(#[$doc:meta])* $name:ident, $what:literal, [$($(#[$bdoc:meta])* $bit:ident = $value:literal, $text:literal;)+]) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name(u32);

        impl $name {
            $($(#[$bdoc])* pub const $bit: Self = Self($value);)+
            pub(crate) const NAMES: &'static [(Self, &'static str)] = &[$((Self::$bit, $text)),+];

            /// The kernel's bit mask.
            pub fn bits(self) -> u32 {
                self.0
            }

            /// Whether no bit is included.
            pub fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// The set named by comma-separated names, as `nft` prints it.
            pub(crate) fn from_names(text: &str) -> Result<Self, String> {
                text.split(',').try_fold(Self::default(), |acc, name| {
                    Self::NAMES
                        .iter()
                        .find(|(_, n)| *n == name)
                        .map(|(bit, _)| acc | *bit)
                        .ok_or(format!(concat!("unknown ", $what, " {:?}"), name))
                })
            }
        }

        impl std::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                Self(self.0 | rhs.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let names: Vec<&str> = Self::NAMES
                    .iter()
                    .filter(|(s, _)| self.0 & s.0 != 0)
                    .map(|(_, n)| *n)
                    .collect();
                f.write_str(&names.join(","))
            }
        }
    };
}

ct_bits!(
    /// Conntrack states for `ct state`, as a bit set.
    CtStates, "ct state", [
        /// `invalid`.
        INVALID = 1, "invalid";
        /// `established`.
        ESTABLISHED = 2, "established";
        /// `related`.
        RELATED = 4, "related";
        /// `new`.
        NEW = 8, "new";
        /// `untracked`.
        UNTRACKED = 64, "untracked";
    ]
);

ct_bits!(
    /// Conntrack status bits for `ct status`, as a bit set (the kernel's
    /// `IPS_*` flags).
    CtStatus, "ct status", [
        /// `expected`: the connection was expected (a helper's related flow).
        EXPECTED = 1, "expected";
        /// `seen-reply`: traffic was seen in both directions.
        SEEN_REPLY = 2, "seen-reply";
        /// `assured`.
        ASSURED = 4, "assured";
        /// `confirmed`: the entry is in the conntrack table.
        CONFIRMED = 8, "confirmed";
        /// `snat`: the connection is source-NATed.
        SNAT = 0x10, "snat";
        /// `dnat`: the connection is destination-NATed.
        DNAT = 0x20, "dnat";
        /// `dying`.
        DYING = 0x200, "dying";
    ]
);

/// A verdict: the end of a rule, or the value of a verdict map element.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump <chain>`: run the chain, then continue here.
    Jump(String),
    /// `goto <chain>`: run the chain instead of the rest of this one.
    Goto(String),
}

impl Verdict {
    /// The chain a jump or goto targets.
    pub fn target(&self) -> Option<&str> {
        match self {
            Self::Jump(c) | Self::Goto(c) => Some(c),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accept => f.write_str("accept"),
            Self::Drop => f.write_str("drop"),
            Self::Return => f.write_str("return"),
            Self::Jump(c) => write!(f, "jump {c}"),
            Self::Goto(c) => write!(f, "goto {c}"),
        }
    }
}

/// Source or destination NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// `snat`.
    Snat,
    /// `dnat`.
    Dnat,
}

/// IPv4 or IPv6, for NAT statements in `inet` tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// `ip`.
    V4,
    /// `ip6`.
    V6,
}

impl IpFamily {
    /// The type of an address of this family.
    pub fn addr_type(self) -> DataType {
        match self {
            Self::V4 => DataType::Ipv4Addr,
            Self::V6 => DataType::Ipv6Addr,
        }
    }
}

/// Where NAT sends the packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NatTo {
    /// A fixed address and optional port: `dnat ip to 198.18.0.2:8080`.
    Addr {
        /// The new address (of the statement's family).
        addr: IpAddr,
        /// The new port, if any.
        port: Option<u16>,
    },
    /// The address (and port, when the map's data is `addr . inet_service`)
    /// looked up in a named map: `dnat ip to jhash ... map @slots`.
    Map {
        /// The lookup key.
        key: KeyExpr,
        /// The map (data `ipv4_addr`/`ipv6_addr`, optionally `. inet_service`).
        map: String,
        /// A fixed port when the map gives only the address (`: 80`).
        port: Option<u16>,
    },
}

/// A NAT statement.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Nat {
    /// Source or destination NAT.
    pub kind: NatKind,
    /// The address family rewritten.
    pub family: IpFamily,
    /// The new destination or source.
    pub to: NatTo,
}

/// How `reject` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reject {
    /// `reject with tcp reset` (adds a `meta l4proto tcp` check).
    TcpReset,
    /// `reject with icmpx port-unreachable` (nft's default).
    PortUnreachable,
    /// `reject with icmpx host-unreachable`.
    HostUnreachable,
    /// `reject with icmpx admin-prohibited`.
    AdminProhibited,
    /// `reject with icmpx no-route`.
    NoRoute,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TcpReset => "reject with tcp reset",
            Self::PortUnreachable => "reject with icmpx port-unreachable",
            Self::HostUnreachable => "reject with icmpx host-unreachable",
            Self::AdminProhibited => "reject with icmpx admin-prohibited",
            Self::NoRoute => "reject with icmpx no-route",
        })
    }
}

/// `add` or `update` from the packet path (`dynset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DynsetOp {
    /// `add @set { key }`: insert if absent.
    Add,
    /// `update @set { key }`: insert, or refresh the timeout if present.
    Update,
}

/// Which mark `... mark set` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MarkTarget {
    /// `meta mark set`.
    Meta,
    /// `ct mark set`.
    Ct,
}

/// One element of an anonymous set in a rule: a key, or an inclusive range.
pub type AnonElement = (Key, Option<Key>);

/// One item of a rule: a match or a statement.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expr {
    /// `<field> [op] <value>`.
    Cmp {
        /// The field.
        field: Field,
        /// The operator.
        op: CmpOp,
        /// The value (of the field's type).
        value: Value,
    },
    /// `<field> [!=] <from>-<to>` (inclusive; ordered types only).
    Range {
        /// The field.
        field: Field,
        /// `!=`.
        negate: bool,
        /// Low end.
        from: Value,
        /// High end.
        to: Value,
    },
    /// `<field> [!=] <addr>/<len>` on an address field.
    Prefix {
        /// The field (an address).
        field: Field,
        /// `!=`.
        negate: bool,
        /// The network address.
        addr: IpAddr,
        /// The prefix length.
        len: u8,
    },
    /// `ct state <states>`: matches if the state is one of them.
    CtState(CtStates),
    /// `ct status <bits>`: matches if any of the bits is set (`ct status
    /// dnat`: the connection's destination was rewritten).
    CtStatus(CtStatus),
    /// `<key> [!=] @set`: membership in a named set.
    Lookup {
        /// The key.
        key: KeyExpr,
        /// The set.
        set: String,
        /// `!=`: matches when absent.
        negate: bool,
    },
    /// `<key> [!=] { a, b, c-d }`: membership in a small anonymous set.
    AnonLookup {
        /// The key.
        key: KeyExpr,
        /// `!=`.
        negate: bool,
        /// The elements (at most [`crate::MAX_ANON_ELEMENTS`]).
        elements: Vec<AnonElement>,
    },
    /// `<key> vmap @map`: the verdict from a named verdict map.
    Vmap {
        /// The key.
        key: KeyExpr,
        /// The verdict map.
        map: String,
    },
    /// `<key> vmap { k : verdict, ... }`: a small anonymous verdict map.
    AnonVmap {
        /// The key.
        key: KeyExpr,
        /// The elements (at most [`crate::MAX_ANON_ELEMENTS`]).
        elements: Vec<(Key, Verdict)>,
    },
    /// `meta mark set <mark>` / `ct mark set <mark>`.
    SetMark {
        /// Which mark.
        target: MarkTarget,
        /// The new mark.
        value: u32,
    },
    /// `add|update @set { <fields> [timeout <t>] }` from the packet path.
    Dynset {
        /// Add or update.
        op: DynsetOp,
        /// The set (flags `dynamic`, and `timeout` if a timeout is given).
        set: String,
        /// The key fields.
        key: Vec<Field>,
        /// The element's timeout (whole milliseconds).
        timeout: Option<Duration>,
    },
    /// `counter`.
    Counter,
    /// `log [prefix "..."]`.
    Log {
        /// The prefix (at most 127 bytes, no `"`).
        prefix: Option<String>,
    },
    /// `snat`/`dnat`.
    Nat(Nat),
    /// `masquerade [fully-random]`.
    Masquerade {
        /// `fully-random` source ports.
        fully_random: bool,
    },
    /// `reject ...`.
    Reject(Reject),
    /// A verdict; must be the last item.
    Verdict(Verdict),
}

impl Expr {
    /// `<field> <value>`.
    pub fn eq(field: Field, value: Value) -> Self {
        Self::Cmp {
            field,
            op: CmpOp::Eq,
            value,
        }
    }

    /// `<fields> @set`.
    pub fn lookup(key: KeyExpr, set: &str) -> Self {
        Self::Lookup {
            key,
            set: set.to_owned(),
            negate: false,
        }
    }

    /// `jump <chain>`.
    pub fn jump(chain: &str) -> Self {
        Self::Verdict(Verdict::Jump(chain.to_owned()))
    }

    /// `goto <chain>`.
    pub fn goto(chain: &str) -> Self {
        Self::Verdict(Verdict::Goto(chain.to_owned()))
    }

    /// The chains this item jumps or goes to.
    pub(crate) fn chain_refs(&self) -> Vec<&str> {
        match self {
            Self::Verdict(v) => v.target().into_iter().collect(),
            Self::AnonVmap { elements, .. } => {
                elements.iter().filter_map(|(_, v)| v.target()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The named sets and maps this item uses.
    pub(crate) fn set_refs(&self) -> Vec<&str> {
        match self {
            Self::Lookup { set, .. } | Self::Dynset { set, .. } => vec![set],
            Self::Vmap { map, .. } => vec![map],
            Self::Nat(Nat {
                to: NatTo::Map { map, .. },
                ..
            }) => vec![map],
            _ => Vec::new(),
        }
    }
}
