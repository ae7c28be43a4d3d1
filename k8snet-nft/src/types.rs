//! Data types of set keys, map data and match operands, their values, and
//! how values are laid out in nftables registers (the kernel's byte format).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The type of one field of a set key, of map data, or of a match operand.
/// Names follow nft (`ipv4_addr`, `inet_service`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DataType {
    /// `ipv4_addr`: 4 bytes, network order.
    Ipv4Addr,
    /// `ipv6_addr`: 16 bytes, network order.
    Ipv6Addr,
    /// `inet_proto`: the layer 4 protocol number, 1 byte.
    InetProto,
    /// `inet_service`: a port, 2 bytes, network order.
    InetService,
    /// `mark`: a packet or conntrack mark, 4 bytes, host order.
    Mark,
    /// `ifname`: an interface name, 16 bytes, NUL padded.
    Ifname,
    /// `ether_addr`: a MAC address, 6 bytes.
    EtherAddr,
    /// `nf_proto`: the layer 3 family (`ipv4`, `ipv6`), 1 byte.
    NfProto,
    /// `fib_addrtype`: a route type such as `local`, 4 bytes, host order.
    FibAddrType,
    /// `integer` of the given width in bits (a multiple of 8, at most 64),
    /// host order: what `jhash` and `numgen` produce (32 bits).
    Integer(u8),
}

impl DataType {
    /// Length in bytes of a value of this type.
    #[allow(clippy::len_without_is_empty)] // a type is never empty
    pub fn len(self) -> usize {
        match self {
            Self::Ipv4Addr | Self::Mark | Self::FibAddrType => 4,
            Self::Ipv6Addr | Self::Ifname => 16,
            Self::InetProto | Self::NfProto => 1,
            Self::InetService => 2,
            Self::EtherAddr => 6,
            Self::Integer(bits) => usize::from(bits / 8),
        }
    }

    /// Whether values compare correctly byte by byte (network order), which
    /// ranges, intervals and `<`/`>` comparisons need.
    pub fn is_ordered(self) -> bool {
        matches!(
            self,
            Self::Ipv4Addr | Self::Ipv6Addr | Self::InetProto | Self::InetService | Self::EtherAddr
        )
    }

    /// nft's numeric type id (nftables `datatype.h`), used to describe set
    /// keys and data to the kernel and to `nft list`.
    pub(crate) fn nft_id(self) -> u32 {
        match self {
            Self::Integer(_) => 4,
            Self::NfProto => 2,
            Self::Ipv4Addr => 7,
            Self::Ipv6Addr => 8,
            Self::EtherAddr => 9,
            Self::InetProto => 12,
            Self::InetService => 13,
            Self::Mark => 19,
            Self::FibAddrType => 38,
            Self::Ifname => 41,
        }
    }

    /// The inverse of [`DataType::nft_id`], given the field's length.
    pub(crate) fn from_nft_id(id: u32, len: usize) -> Option<Self> {
        let t = match id {
            4 => Self::Integer(u8::try_from(len * 8).ok()?),
            2 => Self::NfProto,
            7 => Self::Ipv4Addr,
            8 => Self::Ipv6Addr,
            9 => Self::EtherAddr,
            12 => Self::InetProto,
            13 => Self::InetService,
            19 => Self::Mark,
            38 => Self::FibAddrType,
            41 => Self::Ifname,
            _ => return None,
        };
        (t.len() == len).then_some(t)
    }

    /// The nft name (`ipv4_addr`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipv4Addr => "ipv4_addr",
            Self::Ipv6Addr => "ipv6_addr",
            Self::InetProto => "inet_proto",
            Self::InetService => "inet_service",
            Self::Mark => "mark",
            Self::Ifname => "ifname",
            Self::EtherAddr => "ether_addr",
            Self::NfProto => "nf_proto",
            Self::FibAddrType => "fib_addrtype",
            Self::Integer(_) => "integer",
        }
    }

    /// Checks the parameters (an integer's width).
    pub(crate) fn check(self) -> Result<(), String> {
        match self {
            Self::Integer(bits) if bits == 0 || bits % 8 != 0 || bits > 64 => Err(format!(
                "integer width {bits} is not a multiple of 8 between 8 and 64"
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer(bits) => write!(f, "integer({bits})"),
            other => f.write_str(other.name()),
        }
    }
}

/// One value of a [`DataType`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Value {
    /// An `ipv4_addr`.
    Ipv4(Ipv4Addr),
    /// An `ipv6_addr`.
    Ipv6(Ipv6Addr),
    /// An `inet_proto` (6 is tcp, 17 udp).
    Proto(u8),
    /// An `inet_service` (port).
    Port(u16),
    /// A `mark`.
    Mark(u32),
    /// An `ifname` (at most 15 bytes, no NUL).
    Ifname(String),
    /// An `ether_addr`.
    Ether([u8; 6]),
    /// An `nf_proto` (2 is ipv4, 10 ipv6).
    NfProto(u8),
    /// A `fib_addrtype` (2 is local).
    FibAddrType(u32),
    /// An `integer` (of the width its type says).
    Int(u64),
}

/// Layer 4 protocol numbers that nft writes by name.
const PROTOS: [(u8, &str); 6] = [
    (1, "icmp"),
    (6, "tcp"),
    (17, "udp"),
    (58, "ipv6-icmp"),
    (132, "sctp"),
    (136, "udplite"),
];

/// Route types (`fib ... type`) as nft names them.
const ADDR_TYPES: [&str; 12] = [
    "unspec",
    "unicast",
    "local",
    "broadcast",
    "anycast",
    "multicast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "nat",
    "xresolve",
];

impl Value {
    /// Whether this value is of type `t`.
    pub fn fits(&self, t: DataType) -> bool {
        match (self, t) {
            (Self::Ipv4(_), DataType::Ipv4Addr)
            | (Self::Ipv6(_), DataType::Ipv6Addr)
            | (Self::Proto(_), DataType::InetProto)
            | (Self::Port(_), DataType::InetService)
            | (Self::Mark(_), DataType::Mark)
            | (Self::Ether(_), DataType::EtherAddr)
            | (Self::NfProto(_), DataType::NfProto)
            | (Self::FibAddrType(_), DataType::FibAddrType) => true,
            (Self::Ifname(name), DataType::Ifname) => {
                !name.is_empty() && name.len() < 16 && !name.contains('\0')
            }
            (Self::Int(v), DataType::Integer(bits)) => bits >= 64 || *v >> bits == 0,
            _ => false,
        }
    }

    /// The value's bytes as the kernel holds them (`t.len()` long). The
    /// caller has checked [`Value::fits`]; a mismatch gives zeros.
    pub(crate) fn encode(&self, t: DataType) -> Vec<u8> {
        let mut out = match self {
            Self::Ipv4(a) => a.octets().to_vec(),
            Self::Ipv6(a) => a.octets().to_vec(),
            Self::Proto(p) | Self::NfProto(p) => vec![*p],
            Self::Port(p) => p.to_be_bytes().to_vec(),
            Self::Mark(m) | Self::FibAddrType(m) => m.to_ne_bytes().to_vec(),
            Self::Ifname(n) => n.as_bytes().to_vec(),
            Self::Ether(e) => e.to_vec(),
            Self::Int(v) => {
                let n = t.len().min(8);
                if cfg!(target_endian = "little") {
                    v.to_le_bytes()[..n].to_vec()
                } else {
                    v.to_be_bytes()[8 - n..].to_vec()
                }
            }
        };
        out.resize(t.len(), 0);
        out
    }

    /// Reads a value of type `t` from the kernel's bytes (exactly `t.len()`).
    pub(crate) fn decode(t: DataType, b: &[u8]) -> Option<Self> {
        if b.len() != t.len() {
            return None;
        }
        let u32_ne = |b: &[u8]| b.try_into().ok().map(u32::from_ne_bytes);
        Some(match t {
            DataType::Ipv4Addr => Self::Ipv4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?)),
            DataType::Ipv6Addr => Self::Ipv6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?)),
            DataType::InetProto => Self::Proto(b[0]),
            DataType::NfProto => Self::NfProto(b[0]),
            DataType::InetService => Self::Port(u16::from_be_bytes(b.try_into().ok()?)),
            DataType::Mark => Self::Mark(u32_ne(b)?),
            DataType::FibAddrType => Self::FibAddrType(u32_ne(b)?),
            DataType::EtherAddr => Self::Ether(b.try_into().ok()?),
            DataType::Ifname => {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                Self::Ifname(String::from_utf8(b[..end].to_vec()).ok()?)
            }
            DataType::Integer(_) => {
                let mut full = [0u8; 8];
                if cfg!(target_endian = "little") {
                    full[..b.len()].copy_from_slice(b);
                    Self::Int(u64::from_le_bytes(full))
                } else {
                    full[8 - b.len()..].copy_from_slice(b);
                    Self::Int(u64::from_be_bytes(full))
                }
            }
        })
    }

    /// Parses nft's text form of a value of type `t`.
    pub(crate) fn parse(t: DataType, s: &str) -> Option<Self> {
        let num = |s: &str| -> Option<u64> {
            match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        };
        let v = match t {
            DataType::Ipv4Addr => Self::Ipv4(s.parse().ok()?),
            DataType::Ipv6Addr => Self::Ipv6(s.parse().ok()?),
            DataType::InetProto => Self::Proto(match PROTOS.iter().find(|(_, n)| *n == s) {
                Some((p, _)) => *p,
                None => u8::try_from(num(s)?).ok()?,
            }),
            DataType::NfProto => Self::NfProto(match s {
                "ipv4" => 2,
                "ipv6" => 10,
                _ => u8::try_from(num(s)?).ok()?,
            }),
            DataType::InetService => Self::Port(u16::try_from(num(s)?).ok()?),
            DataType::Mark => Self::Mark(u32::try_from(num(s)?).ok()?),
            DataType::FibAddrType => {
                Self::FibAddrType(match ADDR_TYPES.iter().position(|n| *n == s) {
                    Some(i) => u32::try_from(i).ok()?,
                    None => u32::try_from(num(s)?).ok()?,
                })
            }
            DataType::Ifname => Self::Ifname(s.strip_prefix('"')?.strip_suffix('"')?.to_owned()),
            DataType::EtherAddr => {
                let mut out = [0u8; 6];
                let mut parts = s.split(':');
                for byte in &mut out {
                    *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
                }
                if parts.next().is_some() {
                    return None;
                }
                Self::Ether(out)
            }
            DataType::Integer(_) => Self::Int(num(s)?),
        };
        v.fits(t).then_some(v)
    }
}

impl fmt::Display for Value {
    /// nft's text form (`198.18.0.2`, `tcp`, `0x00004000`, `"eth0"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ipv4(a) => write!(f, "{a}"),
            Self::Ipv6(a) => write!(f, "{a}"),
            Self::Proto(p) => match PROTOS.iter().find(|(n, _)| n == p) {
                Some((_, name)) => f.write_str(name),
                None => write!(f, "{p}"),
            },
            Self::NfProto(2) => f.write_str("ipv4"),
            Self::NfProto(10) => f.write_str("ipv6"),
            Self::NfProto(p) => write!(f, "{p}"),
            Self::Port(p) => write!(f, "{p}"),
            Self::Mark(m) => write!(f, "{m:#010x}"),
            Self::Ifname(n) => write!(f, "\"{n}\""),
            Self::Ether(e) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                e[0], e[1], e[2], e[3], e[4], e[5]
            ),
            Self::FibAddrType(t) => {
                match usize::try_from(*t).ok().and_then(|i| ADDR_TYPES.get(i)) {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{t}"),
                }
            }
            Self::Int(v) => write!(f, "{v}"),
        }
    }
}

/// A set key or map value: one value per field of a (possibly
/// concatenated) type, written `a . b . c`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub Vec<Value>);

impl Key {
    /// A key of one field.
    pub fn one(v: Value) -> Self {
        Self(vec![v])
    }

    /// Whether the key has one value of each type in `types`, in order.
    pub fn fits(&self, types: &[DataType]) -> bool {
        self.0.len() == types.len() && self.0.iter().zip(types).all(|(v, t)| v.fits(*t))
    }

    /// The register layout, as nft's: one field as it is, each field of a
    /// concatenation padded to 4 bytes.
    pub(crate) fn encode(&self, types: &[DataType]) -> Vec<u8> {
        let mut out = Vec::with_capacity(reg_len(types));
        for (v, t) in self.0.iter().zip(types) {
            out.extend(v.encode(*t));
            if types.len() > 1 {
                out.resize(out.len().next_multiple_of(4), 0);
            }
        }
        out
    }

    /// The inverse of [`Key::encode`].
    pub(crate) fn decode(types: &[DataType], b: &[u8]) -> Option<Self> {
        if b.len() != reg_len(types) {
            return None;
        }
        let mut values = Vec::with_capacity(types.len());
        let mut at = 0;
        for t in types {
            values.push(Value::decode(*t, b.get(at..at + t.len())?)?);
            at += t.len().next_multiple_of(4);
        }
        Some(Self(values))
    }
}

impl From<Value> for Key {
    fn from(v: Value) -> Self {
        Self::one(v)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" . ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// Bytes a concatenation of `types` takes in registers (each field padded to
/// 4 bytes).
pub(crate) fn padded_len(types: &[DataType]) -> usize {
    types.iter().map(|t| t.len().next_multiple_of(4)).sum()
}

/// Bytes of a key or value of `types` as nft lays it out: one field as it
/// is, a concatenation with each field padded.
pub(crate) fn reg_len(types: &[DataType]) -> usize {
    match types {
        [one] => one.len(),
        many => padded_len(many),
    }
}

/// `bytes + 1` as a big-endian number; `None` when it overflows (all 0xff).
pub(crate) fn increment_be(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    for b in out.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(out);
        }
    }
    None
}

/// `bytes - 1` as a big-endian number; `None` for zero.
pub(crate) fn decrement_be(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    for b in out.iter_mut().rev() {
        if *b == 0 {
            *b = 0xff;
        } else {
            *b -= 1;
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_bytes_and_text() {
        let cases = [
            (
                DataType::Ipv4Addr,
                Value::Ipv4(Ipv4Addr::new(198, 18, 0, 2)),
            ),
            (
                DataType::Ipv6Addr,
                Value::Ipv6("fd00:18::2".parse().unwrap()),
            ),
            (DataType::InetProto, Value::Proto(6)),
            (DataType::InetProto, Value::Proto(99)),
            (DataType::InetService, Value::Port(8080)),
            (DataType::Mark, Value::Mark(0x4000)),
            (DataType::Ifname, Value::Ifname("eth0".into())),
            (DataType::EtherAddr, Value::Ether([2, 0, 0, 0, 0xab, 1])),
            (DataType::NfProto, Value::NfProto(10)),
            (DataType::FibAddrType, Value::FibAddrType(2)),
            (DataType::Integer(32), Value::Int(65536)),
            (DataType::Integer(16), Value::Int(7)),
        ];
        for (t, v) in cases {
            assert!(v.fits(t), "{v:?} {t}");
            let b = v.encode(t);
            assert_eq!(b.len(), t.len());
            assert_eq!(Value::decode(t, &b), Some(v.clone()));
            assert_eq!(Value::parse(t, &v.to_string()), Some(v.clone()), "{v}");
        }
        assert_eq!(Value::Port(80).encode(DataType::InetService), [0, 80]);
        assert!(!Value::Int(1 << 16).fits(DataType::Integer(16)));
    }

    #[test]
    fn concatenations_pad_each_field_to_four_bytes() {
        let types = [
            DataType::Ipv4Addr,
            DataType::InetProto,
            DataType::InetService,
        ];
        let key = Key(vec![
            Value::Ipv4(Ipv4Addr::new(198, 19, 0, 1)),
            Value::Proto(6),
            Value::Port(80),
        ]);
        let b = key.encode(&types);
        assert_eq!(b, [198, 19, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(padded_len(&types), 12);
        assert_eq!(Key::decode(&types, &b), Some(key.clone()));
        assert_eq!(key.to_string(), "198.19.0.1 . tcp . 80");
    }

    #[test]
    fn big_endian_steps() {
        assert_eq!(increment_be(&[0, 0xff]), Some(vec![1, 0]));
        assert_eq!(increment_be(&[0xff, 0xff]), None);
        assert_eq!(decrement_be(&[1, 0]), Some(vec![0, 0xff]));
        assert_eq!(decrement_be(&[0, 0]), None);
    }
}
