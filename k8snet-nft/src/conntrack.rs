//! Conntrack over netlink (`NETLINK_NETFILTER`, the ctnetlink subsystem
//! `NFNL_SUBSYS_CTNETLINK`), the one client of the project: both the
//! Service proxy (k8snet-lb, stale UDP entries after a Service change) and
//! the portmap plugin (k8snet-cni, stale UDP entries of a hostPort) use it.
//!
//! The messages are plain bytes, always compiled so they are testable
//! anywhere: the dump request of one address family ([`dump_request`]),
//! the decoding of replies into [`Entry`]s ([`decode`], which never panics
//! and names the byte offset of what it cannot read), and the delete
//! request of one entry ([`delete_request`]: by its original tuple, in its
//! zone, and only while its kernel id is the one dumped, so a delete names
//! exactly one entry and never a newer one with the same tuple).
//!
//! With the `linux` feature, `Conntrack` is the socket: list and delete
//! entries in the network namespace of the thread that opened it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `AF_INET`.
pub const AF_INET: u8 = 2;
/// `AF_INET6`.
pub const AF_INET6: u8 = 10;
/// IP protocol number of UDP.
pub const UDP: u8 = 17;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
/// `NFNL_SUBSYS_CTNETLINK << 8`.
const CTNETLINK: u16 = 1 << 8;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
/// `struct nlmsghdr` and `struct nfgenmsg`.
const NLMSG_HDR: usize = 16;
const NFGENMSG: usize = 4;

/// A malformed netlink message from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ctnetlink message at byte {offset}: {what}")]
pub struct DecodeError {
    /// Where in the datagram.
    pub offset: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// One direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port (0 for protocols without ports).
    pub sport: u16,
    /// Destination port (0 for protocols without ports).
    pub dport: u16,
}

/// One conntrack entry, as a dump gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// The original direction.
    pub orig: Tuple,
    /// The reply direction (its source is where the connection really
    /// goes: the pod once DNATed, the node itself when not).
    pub reply: Option<Tuple>,
    /// The kernel's id of the entry (a delete carrying it removes only
    /// this entry, not a new one with the same tuple).
    pub id: Option<u32>,
    /// The conntrack zone, if not the default one.
    pub zone: Option<u16>,
}

/// A netlink message: header, `nfgenmsg` of `family`, then `attrs`.
fn message(kind: u16, flags: u16, seq: u32, family: u8, attrs: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDR + NFGENMSG + attrs.len();
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    b.extend_from_slice(&(CTNETLINK | kind).to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, version NFNETLINK_V0, resource id 0.
    b.extend_from_slice(&[family, 0, 0, 0]);
    b.extend_from_slice(attrs);
    b
}

/// Appends one attribute (padded to 4 bytes).
fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len() + (4 - len % 4) % 4, 0);
}

/// The request for every entry of `family`.
pub fn dump_request(family: u8, seq: u32) -> Vec<u8> {
    message(IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq, family, &[])
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The request (acknowledged) that deletes `e`: by its original tuple, in
/// its zone, and only if its id is still `e.id`.
pub fn delete_request(e: &Entry, seq: u32) -> Vec<u8> {
    let t = &e.orig;
    let (s, d) = if t.src.is_ipv4() {
        (CTA_IP_V4_SRC, CTA_IP_V4_DST)
    } else {
        (CTA_IP_V6_SRC, CTA_IP_V6_DST)
    };
    let mut ip = Vec::new();
    attr(&mut ip, s, &ip_bytes(t.src));
    attr(&mut ip, d, &ip_bytes(t.dst));
    let mut proto = Vec::new();
    attr(&mut proto, CTA_PROTO_NUM, &[t.proto]);
    attr(&mut proto, CTA_PROTO_SRC_PORT, &t.sport.to_be_bytes());
    attr(&mut proto, CTA_PROTO_DST_PORT, &t.dport.to_be_bytes());
    let mut tuple = Vec::new();
    attr(&mut tuple, NLA_F_NESTED | CTA_TUPLE_IP, &ip);
    attr(&mut tuple, NLA_F_NESTED | CTA_TUPLE_PROTO, &proto);
    let mut attrs = Vec::new();
    attr(&mut attrs, NLA_F_NESTED | CTA_TUPLE_ORIG, &tuple);
    if let Some(z) = e.zone {
        attr(&mut attrs, CTA_ZONE, &z.to_be_bytes());
    }
    if let Some(id) = e.id {
        attr(&mut attrs, CTA_ID, &id.to_be_bytes());
    }
    message(IPCTNL_MSG_CT_DELETE, NLM_F_ACK, seq, e.family, &attrs)
}

/// One message of a reply datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A conntrack entry (of a dump).
    Entry(Entry),
    /// The end of a dump.
    Done,
    /// An acknowledgement (`errno` 0) or an error (`errno` > 0) for the
    /// request with sequence number `seq`.
    Ack {
        /// The request's sequence number.
        seq: u32,
        /// The (positive) error number, 0 for success.
        errno: i32,
    },
    /// Something else (skipped).
    Other,
}

/// One attribute: its type without flags, its payload and the payload's
/// offset in the datagram.
type Attr<'a> = (u16, &'a [u8], usize);

/// The attributes in `b` (at `base` in the datagram).
fn attrs(b: &[u8], base: usize) -> Result<Vec<Attr<'_>>, DecodeError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= b.len() {
        let len = usize::from(u16::from_ne_bytes([b[at], b[at + 1]]));
        let kind = u16::from_ne_bytes([b[at + 2], b[at + 3]]) & NLA_TYPE_MASK;
        if len < 4 || at + len > b.len() {
            return Err(DecodeError {
                offset: base + at,
                what: "attribute length out of bounds",
            });
        }
        out.push((kind, &b[at + 4..at + len], base + at + 4));
        at += (len + 3) & !3;
    }
    Ok(out)
}

fn tuple(b: &[u8], base: usize) -> Result<Option<Tuple>, DecodeError> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, 0, 0);
    let bad = |offset, what| DecodeError { offset, what };
    for (kind, p, off) in attrs(b, base)? {
        match kind {
            CTA_TUPLE_IP => {
                for (k, a, o) in attrs(p, off)? {
                    let ip = match (k, a.len()) {
                        (CTA_IP_V4_SRC | CTA_IP_V4_DST, 4) => {
                            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
                        }
                        (CTA_IP_V6_SRC | CTA_IP_V6_DST, 16) => {
                            let mut o16 = [0; 16];
                            o16.copy_from_slice(a);
                            IpAddr::V6(Ipv6Addr::from(o16))
                        }
                        (CTA_IP_V4_SRC..=CTA_IP_V6_DST, _) => {
                            return Err(bad(o, "address of the wrong length"));
                        }
                        _ => continue,
                    };
                    if matches!(k, CTA_IP_V4_SRC | CTA_IP_V6_SRC) {
                        src = Some(ip);
                    } else {
                        dst = Some(ip);
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (k, a, o) in attrs(p, off)? {
                    match (k, a) {
                        (CTA_PROTO_NUM, [n]) => proto = Some(*n),
                        (CTA_PROTO_SRC_PORT, [h, l]) => sport = u16::from_be_bytes([*h, *l]),
                        (CTA_PROTO_DST_PORT, [h, l]) => dport = u16::from_be_bytes([*h, *l]),
                        (CTA_PROTO_NUM..=CTA_PROTO_DST_PORT, _) => {
                            return Err(bad(o, "protocol attribute of the wrong length"));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(match (src, dst, proto) {
        (Some(src), Some(dst), Some(proto)) => Some(Tuple {
            src,
            dst,
            proto,
            sport,
            dport,
        }),
        _ => None,
    })
}

fn entry(family: u8, b: &[u8], base: usize) -> Result<Option<Entry>, DecodeError> {
    let (mut orig, mut reply, mut id, mut zone) = (None, None, None, None);
    for (kind, p, off) in attrs(b, base)? {
        match (kind, p) {
            (CTA_TUPLE_ORIG, _) => orig = tuple(p, off)?,
            (CTA_TUPLE_REPLY, _) => reply = tuple(p, off)?,
            (CTA_ID, [a, b, c, d]) => id = Some(u32::from_be_bytes([*a, *b, *c, *d])),
            (CTA_ZONE, [h, l]) => zone = Some(u16::from_be_bytes([*h, *l])).filter(|z| *z != 0),
            _ => {}
        }
    }
    Ok(orig.map(|orig| Entry {
        family,
        orig,
        reply,
        id,
        zone,
    }))
}

/// Decodes every message of one datagram.
///
/// # Errors
///
/// [`DecodeError`] for lengths that do not fit.
pub fn decode(buf: &[u8]) -> Result<Vec<Reply>, DecodeError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDR <= buf.len() {
        let h = &buf[at..];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let kind = u16::from_ne_bytes([h[4], h[5]]);
        let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
        if len < NLMSG_HDR || at + len > buf.len() {
            return Err(DecodeError {
                offset: at,
                what: "message length out of bounds",
            });
        }
        let body = &buf[at + NLMSG_HDR..at + len];
        out.push(match kind {
            NLMSG_DONE => Reply::Done,
            NLMSG_ERROR => {
                let [a, b, c, d, ..] = *body else {
                    return Err(DecodeError {
                        offset: at,
                        what: "error message without an error number",
                    });
                };
                Reply::Ack {
                    seq,
                    errno: i32::from_ne_bytes([a, b, c, d]).saturating_abs(),
                }
            }
            k if k == CTNETLINK | IPCTNL_MSG_CT_NEW && body.len() >= NFGENMSG => {
                match entry(body[0], &body[NFGENMSG..], at + NLMSG_HDR + NFGENMSG)? {
                    Some(e) => Reply::Entry(e),
                    None => Reply::Other,
                }
            }
            _ => Reply::Other,
        });
        at += (len + 3) & !3;
    }
    Ok(out)
}

#[cfg(all(feature = "linux", target_os = "linux"))]
mod socket;
#[cfg(all(feature = "linux", target_os = "linux"))]
pub use socket::Conntrack;

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
        Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: UDP,
            sport,
            dport,
        }
    }

    /// A dump reply as the kernel builds one: nested attributes flagged
    /// NLA_F_NESTED, plus attributes this decoder skips.
    fn dumped(e: &Entry) -> Vec<u8> {
        let mut req = delete_request(e, 9);
        // Turn the delete request into a dump reply: type CT_NEW, and a
        // reply tuple, a status and the id after the original tuple.
        req[4..6].copy_from_slice(&(CTNETLINK | IPCTNL_MSG_CT_NEW).to_ne_bytes());
        let mut extra = Vec::new();
        if let Some(r) = &e.reply {
            let tail = delete_request(
                &Entry {
                    orig: *r,
                    zone: None,
                    id: None,
                    ..*e
                },
                0,
            );
            let tuple = &tail[NLMSG_HDR + NFGENMSG + 4..];
            attr(&mut extra, NLA_F_NESTED | CTA_TUPLE_REPLY, tuple);
        }
        attr(&mut extra, 3, &0x18u32.to_be_bytes());
        req.extend_from_slice(&extra);
        let len = u32::try_from(req.len()).unwrap();
        req[0..4].copy_from_slice(&len.to_ne_bytes());
        req
    }

    #[test]
    fn dump_request_bytes() {
        let b = dump_request(AF_INET6, 7);
        assert_eq!(b.len(), 20);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 0x101);
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        assert_eq!(&b[16..], &[AF_INET6, 0, 0, 0]);
    }

    #[test]
    fn delete_request_bytes() {
        let e = Entry {
            family: AF_INET,
            orig: udp("198.19.200.2", 40000, "198.19.128.1", 8080),
            reply: None,
            id: Some(0x0102_0304),
            zone: None,
        };
        let b = delete_request(&e, 3);
        let mut want: Vec<u8> = Vec::new();
        // header: length, CT_DELETE, REQUEST|ACK, seq 3, port 0
        want.extend_from_slice(&80u32.to_ne_bytes());
        want.extend_from_slice(&0x102u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&3u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[AF_INET, 0, 0, 0]);
        let a = |len: u16, kind: u16| [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
        want.extend(a(52, 0x8001)); // CTA_TUPLE_ORIG
        want.extend(a(20, 0x8001)); //   CTA_TUPLE_IP
        want.extend(a(8, 1)); //     CTA_IP_V4_SRC
        want.extend([198, 19, 200, 2]);
        want.extend(a(8, 2)); //     CTA_IP_V4_DST
        want.extend([198, 19, 128, 1]);
        want.extend(a(28, 0x8002)); //   CTA_TUPLE_PROTO
        want.extend(a(5, 1)); //     CTA_PROTO_NUM, padded
        want.extend([17, 0, 0, 0]);
        want.extend(a(6, 2)); //     CTA_PROTO_SRC_PORT (40000), padded
        want.extend([0x9c, 0x40, 0, 0]);
        want.extend(a(6, 3)); //     CTA_PROTO_DST_PORT (8080), padded
        want.extend([0x1f, 0x90, 0, 0]);
        want.extend(a(8, 12)); // CTA_ID
        want.extend([1, 2, 3, 4]);
        assert_eq!(b, want);
    }

    #[test]
    fn decodes_dumped_entries_acks_and_done() {
        let v4 = Entry {
            family: AF_INET,
            orig: udp("198.19.200.2", 40000, "198.19.128.1", 8080),
            reply: Some(udp("198.18.0.2", 80, "198.19.200.2", 40000)),
            id: Some(77),
            zone: Some(5),
        };
        let v6 = Entry {
            family: AF_INET6,
            orig: udp("fd00:19:2::2", 40000, "fd00:19:1::1", 8080),
            reply: Some(udp("fd00:19:1::1", 8080, "fd00:19:2::2", 40000)),
            id: None,
            zone: None,
        };
        let mut buf = dumped(&v4);
        buf.extend(dumped(&v6));
        // NLMSG_ERROR with errno -ENOENT (2) for seq 4, then NLMSG_DONE.
        let mut err = Vec::new();
        err.extend_from_slice(&20u32.to_ne_bytes());
        err.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err.extend_from_slice(&0u16.to_ne_bytes());
        err.extend_from_slice(&4u32.to_ne_bytes());
        err.extend_from_slice(&0u32.to_ne_bytes());
        err.extend_from_slice(&(-2i32).to_ne_bytes());
        buf.extend(&err);
        let mut done = err.clone();
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        buf.extend(&done);
        assert_eq!(
            decode(&buf).unwrap(),
            vec![
                Reply::Entry(v4),
                Reply::Entry(v6),
                Reply::Ack { seq: 4, errno: 2 },
                Reply::Done,
            ]
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        let e = Entry {
            family: AF_INET,
            orig: udp("198.19.200.2", 40000, "198.19.128.1", 8080),
            reply: None,
            id: None,
            zone: None,
        };
        let whole = dumped(&e);
        for cut in 1..whole.len() {
            // A message cut short: its length no longer fits (or, cut
            // inside the header, nothing is decoded).
            match decode(&whole[..cut]) {
                Ok(v) => assert!(v.is_empty() && cut < NLMSG_HDR, "cut at {cut}: {v:?}"),
                Err(err) => assert_eq!(err.offset, 0, "cut at {cut}"),
            }
        }
        // An attribute whose length runs past its message.
        let mut bad = whole.clone();
        bad[NLMSG_HDR + NFGENMSG..NLMSG_HDR + NFGENMSG + 2].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(
            decode(&bad).unwrap_err(),
            DecodeError {
                offset: NLMSG_HDR + NFGENMSG,
                what: "attribute length out of bounds"
            }
        );
        // An IPv4 address attribute of the wrong length.
        let mut short = whole;
        let at = NLMSG_HDR + NFGENMSG + 4 + 4; // the first CTA_IP_V4_SRC
        short[at..at + 2].copy_from_slice(&7u16.to_ne_bytes());
        assert_eq!(
            decode(&short).unwrap_err().what,
            "address of the wrong length"
        );
    }
}
