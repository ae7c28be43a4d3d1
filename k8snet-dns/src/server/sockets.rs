//! Sockets with the options the server needs, created through `nix` and
//! handed to the standard library types.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt, socket,
    sockopt,
};

use crate::Error;

fn new_socket(addr: SocketAddr, ty: SockType) -> Result<OwnedFd, Error> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, ty, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Error::io(format!("socket for {addr}"), e.into()))?;
    let opt = |r: nix::Result<()>, what: &str| {
        r.map_err(|e| Error::io(format!("{what} on {addr}"), e.into()))
    };
    opt(setsockopt(&fd, sockopt::ReuseAddr, &true), "SO_REUSEADDR")?;
    opt(setsockopt(&fd, sockopt::ReusePort, &true), "SO_REUSEPORT")?;
    if addr.is_ipv6() {
        opt(setsockopt(&fd, sockopt::Ipv6V6Only, &true), "IPV6_V6ONLY")?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))
        .map_err(|e| Error::io(format!("bind {addr}"), e.into()))?;
    Ok(fd)
}

/// A UDP socket bound with SO_REUSEPORT, so that each worker gets its own
/// socket on the same address and the kernel spreads datagrams over them.
pub(crate) fn udp(addr: SocketAddr) -> Result<UdpSocket, Error> {
    let fd = new_socket(addr, SockType::Datagram)?;
    let sock = UdpSocket::from(fd);
    // Large buffers absorb bursts while a worker is busy.
    let _ = setsockopt(&sock, sockopt::RcvBuf, &(4 << 20));
    let _ = setsockopt(&sock, sockopt::SndBuf, &(4 << 20));
    Ok(sock)
}

/// A listening TCP socket (SO_REUSEPORT too, so a restarted server binds at
/// once).
pub(crate) fn tcp(addr: SocketAddr) -> Result<TcpListener, Error> {
    let fd = new_socket(addr, SockType::Stream)?;
    let backlog = Backlog::new(1024).map_err(|e| Error::io("backlog", e.into()))?;
    listen(&fd, backlog).map_err(|e| Error::io(format!("listen on {addr}"), e.into()))?;
    Ok(TcpListener::from(fd))
}
