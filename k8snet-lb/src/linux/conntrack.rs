//! Conntrack entries over netlink (`NFNL_SUBSYS_CTNETLINK`): list and
//! delete, in the calling thread's network namespace. Safe code only: the
//! messages are built and parsed by hand on a `nix` netlink socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};

use crate::error::{Error, Result};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// One conntrack entry: its original and reply tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The L4 protocol number.
    pub protocol: u8,
    /// Original direction: source.
    pub orig_src: IpAddr,
    /// Original direction: destination (the Service frontend).
    pub orig_dst: IpAddr,
    /// Original source port.
    pub orig_sport: u16,
    /// Original destination port.
    pub orig_dport: u16,
    /// Reply direction: source (the endpoint, after DNAT).
    pub reply_src: IpAddr,
    /// Reply source port.
    pub reply_sport: u16,
}

/// A ctnetlink socket in the calling thread's network namespace.
pub struct Conntrack {
    fd: OwnedFd,
    seq: u32,
}

fn io(what: &str) -> impl FnOnce(nix::Error) -> Error + '_ {
    move |e| Error::Io {
        what: what.to_owned(),
        source: e.into(),
    }
}

fn push_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn nested(ty: u16, f: impl FnOnce(&mut Vec<u8>)) -> (u16, Vec<u8>) {
    let mut inner = Vec::new();
    f(&mut inner);
    (ty | NLA_F_NESTED, inner)
}

/// The attributes in `b`: (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = b.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((ty, payload))
    })
}

/// (src, dst, proto, sport, dport) of a tuple attribute.
fn tuple(b: &[u8]) -> Option<(IpAddr, IpAddr, u8, u16, u16)> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, 0, 0);
    for (ty, p) in attrs(b) {
        match ty {
            CTA_TUPLE_IP => {
                for (t, a) in attrs(p) {
                    let ip = match (t, a.len()) {
                        (CTA_IP_V4_SRC | CTA_IP_V4_DST, 4) => {
                            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(a).ok()?))
                        }
                        (CTA_IP_V6_SRC | CTA_IP_V6_DST, 16) => {
                            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(a).ok()?))
                        }
                        _ => continue,
                    };
                    if matches!(t, CTA_IP_V4_SRC | CTA_IP_V6_SRC) {
                        src = Some(ip);
                    } else {
                        dst = Some(ip);
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (t, a) in attrs(p) {
                    match (t, a) {
                        (CTA_PROTO_NUM, [n, ..]) => proto = Some(*n),
                        (CTA_PROTO_SRC_PORT, [x, y]) => sport = u16::from_be_bytes([*x, *y]),
                        (CTA_PROTO_DST_PORT, [x, y]) => dport = u16::from_be_bytes([*x, *y]),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some((src?, dst?, proto?, sport, dport))
}

fn tuple_attrs(buf: &mut Vec<u8>, src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) {
    let (ip_ty, ip) = nested(CTA_TUPLE_IP, |b| match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            push_attr(b, CTA_IP_V4_SRC, &s.octets());
            push_attr(b, CTA_IP_V4_DST, &d.octets());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(x) => x.octets(),
                IpAddr::V4(x) => x.to_ipv6_mapped().octets(),
            };
            push_attr(b, CTA_IP_V6_SRC, &v6(s));
            push_attr(b, CTA_IP_V6_DST, &v6(d));
        }
    });
    push_attr(buf, ip_ty, &ip);
    let (p_ty, p) = nested(CTA_TUPLE_PROTO, |b| {
        push_attr(b, CTA_PROTO_NUM, &[proto]);
        push_attr(b, CTA_PROTO_SRC_PORT, &sport.to_be_bytes());
        push_attr(b, CTA_PROTO_DST_PORT, &dport.to_be_bytes());
    });
    push_attr(buf, p_ty, &p);
}

impl Conntrack {
    /// Opens a ctnetlink socket in the calling thread's namespace.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be opened or bound.
    pub fn open() -> Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(io("opening a ctnetlink socket"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(io("binding a ctnetlink socket"))?;
        Ok(Self { fd, seq: 1 })
    }

    fn message(&mut self, ty: u16, flags: u16, family: u8, body: &[u8]) -> (u32, Vec<u8>) {
        self.seq = self.seq.wrapping_add(1);
        let mut m = Vec::with_capacity(20 + body.len());
        let len = 20 + body.len();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | ty).to_ne_bytes());
        m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[family, 0, 0, 0]);
        m.extend_from_slice(body);
        (self.seq, m)
    }

    /// Reads answers to `seq` until the dump ends or the ack arrives;
    /// hands every data message's attributes to `each`.
    fn answers(&mut self, seq: u32, mut each: impl FnMut(&[u8])) -> Result<()> {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                .map_err(io("reading ctnetlink answers"))?;
            let mut b = &buf[..n];
            while b.len() >= 16 {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let ty = u16::from_ne_bytes([b[4], b[5]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if len < 16 || len > b.len() {
                    break;
                }
                let msg = &b[..len];
                b = b.get(len.next_multiple_of(4)..).unwrap_or_default();
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno = msg
                            .get(16..20)
                            .map_or(0, |e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
                        return match -errno {
                            0 | libc_enoent::ENOENT => Ok(()),
                            e => Err(Error::Io {
                                what: "ctnetlink request".into(),
                                source: std::io::Error::from_raw_os_error(e),
                            }),
                        };
                    }
                    _ => each(msg.get(20..).unwrap_or_default()),
                }
            }
        }
    }

    /// Every entry of both families.
    ///
    /// # Errors
    /// [`Error::Io`] on socket errors.
    pub fn list(&mut self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            let (seq, m) = self.message(IPCTNL_MSG_CT_GET, NLM_F_DUMP, family, &[]);
            send(self.fd.as_raw_fd(), &m, MsgFlags::empty())
                .map_err(io("sending a conntrack dump"))?;
            self.answers(seq, |body| {
                let (mut orig, mut reply) = (None, None);
                for (ty, p) in attrs(body) {
                    match ty {
                        CTA_TUPLE_ORIG => orig = tuple(p),
                        CTA_TUPLE_REPLY => reply = tuple(p),
                        _ => {}
                    }
                }
                if let (Some(o), Some(r)) = (orig, reply) {
                    out.push(Entry {
                        protocol: o.2,
                        orig_src: o.0,
                        orig_dst: o.1,
                        orig_sport: o.3,
                        orig_dport: o.4,
                        reply_src: r.0,
                        reply_sport: r.3,
                    });
                }
            })?;
        }
        Ok(out)
    }

    /// Deletes one entry (by its original tuple); a vanished entry is fine.
    ///
    /// # Errors
    /// [`Error::Io`] if the kernel refuses.
    pub fn delete(&mut self, e: &Entry) -> Result<()> {
        let family = if e.orig_src.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        };
        let (ty, tuple) = nested(CTA_TUPLE_ORIG, |b| {
            tuple_attrs(
                b,
                e.orig_src,
                e.orig_dst,
                e.protocol,
                e.orig_sport,
                e.orig_dport,
            );
        });
        let mut body = Vec::new();
        push_attr(&mut body, ty, &tuple);
        let (seq, m) = self.message(IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family, &body);
        send(self.fd.as_raw_fd(), &m, MsgFlags::empty())
            .map_err(io("sending a conntrack delete"))?;
        self.answers(seq, |_| {})
    }

    /// Deletes every entry `pred` selects; returns how many.
    ///
    /// # Errors
    /// [`Error::Io`] on socket errors.
    pub fn delete_where(&mut self, pred: impl Fn(&Entry) -> bool) -> Result<usize> {
        let doomed: Vec<Entry> = self.list()?.into_iter().filter(|e| pred(e)).collect();
        for e in &doomed {
            self.delete(e)?;
        }
        Ok(doomed.len())
    }
}

/// The one errno this module names.
mod libc_enoent {
    pub(super) const ENOENT: i32 = 2;
}
