//! Netlink messages and attributes, written and read as bytes: the
//! `nlmsghdr` + `nfgenmsg` header of an nf_tables message, type-length-value
//! attributes padded to 4 bytes, nests (marked `NLA_F_NESTED`, as libmnl
//! marks them), and integers in network byte order where the nf_tables uapi
//! says so. Headers and attribute headers are in host order, as netlink
//! wants.

use std::io;

/// `NLA_F_NESTED`: set on the type of every nest start.
pub(crate) const NLA_F_NESTED: u16 = 1 << 15;
/// The flag bits of an attribute type (`NLA_F_NESTED | NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));
/// `NLM_F_REQUEST`.
const F_REQUEST: u16 = 0x1;
/// `struct nlmsghdr` plus `struct nfgenmsg`.
pub(crate) const HEADER_LEN: usize = 20;
/// `NFNETLINK_V0`.
const NFNETLINK_V0: u8 = 0;

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// One netlink message being appended to a buffer. Attributes are written
/// in the order of the calls; [`Writer::finish`] fills in the length.
pub(crate) struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Writer<'a> {
    /// Starts a message: `nlmsghdr` (type, `NLM_F_REQUEST | flags`, seq,
    /// port 0) and `nfgenmsg` (family, version 0, resource id in network
    /// order).
    pub(crate) fn begin(
        buf: &'a mut Vec<u8>,
        ty: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(F_REQUEST | flags).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.push(family);
        buf.push(NFNETLINK_V0);
        buf.extend_from_slice(&res_id.to_be_bytes());
        Self { buf, start }
    }

    /// Writes the message length; an error if it does not fit 32 bits.
    pub(crate) fn finish(self) -> io::Result<()> {
        let len = u32::try_from(self.buf.len() - self.start)
            .map_err(|_| invalid("netlink message longer than 4 GiB"))?;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_ne_bytes());
        Ok(())
    }

    /// An attribute with `data` as its payload, zero-padded to 4 bytes.
    pub(crate) fn put(&mut self, ty: u16, data: &[u8]) -> io::Result<()> {
        let len = u16::try_from(4 + data.len())
            .map_err(|_| invalid("netlink attribute longer than 64 KiB"))?;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        Ok(())
    }

    fn pad(&mut self) {
        let padded = self.buf.len().next_multiple_of(4);
        self.buf.resize(padded, 0);
    }

    /// A 32-bit attribute in network byte order.
    pub(crate) fn put_u32(&mut self, ty: u16, v: u32) -> io::Result<()> {
        self.put(ty, &v.to_be_bytes())
    }

    /// A 64-bit attribute in network byte order.
    pub(crate) fn put_u64(&mut self, ty: u16, v: u64) -> io::Result<()> {
        self.put(ty, &v.to_be_bytes())
    }

    /// An 8-bit attribute.
    pub(crate) fn put_u8(&mut self, ty: u16, v: u8) -> io::Result<()> {
        self.put(ty, &[v])
    }

    /// A NUL-terminated string attribute; an error if `s` holds a NUL.
    pub(crate) fn put_strz(&mut self, ty: u16, s: &str) -> io::Result<()> {
        if s.as_bytes().contains(&0) {
            return Err(invalid("name contains NUL"));
        }
        let len = u16::try_from(5 + s.len())
            .map_err(|_| invalid("netlink attribute longer than 64 KiB"))?;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
        Ok(())
    }

    /// Opens a nest of type `ty` (with `NLA_F_NESTED`); close it with
    /// [`Writer::end_nest`] and the returned token.
    pub(crate) fn nest(&mut self, ty: u16) -> Nest {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        Nest(at)
    }

    /// Closes a nest: its length covers everything written since it opened.
    pub(crate) fn end_nest(&mut self, nest: Nest) -> io::Result<()> {
        let len = u16::try_from(self.buf.len() - nest.0)
            .map_err(|_| invalid("netlink attribute nest longer than 64 KiB"))?;
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
        Ok(())
    }
}

/// An open nest (its offset in the buffer).
#[must_use]
pub(crate) struct Nest(usize);

/// The attributes in `b`, as (type without flag bits, payload); stops at
/// the first malformed one, as libmnl does.
pub(crate) fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
        let ty = u16::from_ne_bytes([*b.get(2)?, *b.get(3)?]);
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = b.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((ty & NLA_TYPE_MASK, payload))
    })
}

/// The attributes of one nf_tables message (after its 20-byte header,
/// within its `nlmsg_len`); `None` if the message is shorter than its
/// header.
pub(crate) fn message_attrs(msg: &[u8]) -> Option<&[u8]> {
    let len = u32::from_ne_bytes(msg.get(..4)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?.min(msg.len());
    msg.get(HEADER_LEN..len)
}

/// A big-endian 32-bit payload; `None` unless exactly 4 bytes (libmnl's
/// `MNL_TYPE_U32` check).
pub(crate) fn be_u32(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.try_into().ok()?))
}

/// A big-endian 64-bit payload; `None` unless exactly 8 bytes.
pub(crate) fn be_u64(p: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(p.try_into().ok()?))
}

/// A string payload up to its NUL; `None` if empty (libmnl's
/// `MNL_TYPE_STRING` check).
pub(crate) fn string(p: &[u8]) -> Option<String> {
    if p.is_empty() {
        return None;
    }
    let s = p.split(|c| *c == 0).next().unwrap_or_default();
    Some(String::from_utf8_lossy(s).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nests_flagged() {
        let mut buf = Vec::new();
        let mut w = Writer::begin(&mut buf, 0x0a06, 0x4, 7, 2, 0);
        let n = w.nest(4);
        w.put_u8(2, 9).unwrap();
        w.put_strz(1, "abc").unwrap();
        w.end_nest(n).unwrap();
        w.put_u64(3, 0x0102_0304_0506_0708).unwrap();
        w.finish().unwrap();
        assert_eq!(buf.len(), 20 + 4 + 8 + 8 + 12);
        assert_eq!(u32::from_ne_bytes(buf[..4].try_into().unwrap()), 52);
        assert_eq!(u16::from_ne_bytes([buf[6], buf[7]]), 0x5);
        let top: Vec<_> = attrs(message_attrs(&buf).unwrap()).collect();
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].0, 4);
        assert_eq!(u16::from_ne_bytes([buf[22], buf[23]]), 4 | NLA_F_NESTED);
        let inner: Vec<_> = attrs(top[0].1).collect();
        assert_eq!(inner, vec![(2, &[9u8][..]), (1, &b"abc\0"[..])]);
        assert_eq!(buf[29..32], [0, 0, 0]);
        assert_eq!(be_u64(top[1].1), Some(0x0102_0304_0506_0708));
    }

    #[test]
    fn oversized_attributes_and_nul_names_are_errors() {
        let mut buf = Vec::new();
        let mut w = Writer::begin(&mut buf, 0, 0, 0, 0, 0);
        assert!(w.put(1, &vec![0; 70_000]).is_err());
        assert!(w.put_strz(1, "a\0b").is_err());
        let n = w.nest(1);
        w.put(2, &vec![0; 40_000]).unwrap();
        w.put(2, &vec![0; 40_000]).unwrap();
        assert!(w.end_nest(n).is_err());
    }

    #[test]
    fn malformed_attributes_end_the_walk() {
        // A good u32 attribute, then one claiming more bytes than remain.
        let mut b = vec![8, 0, 1, 0, 0, 0, 0, 5];
        b.extend_from_slice(&[200, 0, 2, 0, 1]);
        let got: Vec<_> = attrs(&b).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(be_u32(got[0].1), Some(5));
        assert_eq!(be_u32(&[1, 2, 3]), None);
        assert_eq!(string(b""), None);
        assert_eq!(string(b"ab\0cd").as_deref(), Some("ab"));
    }
}
