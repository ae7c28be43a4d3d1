//! The demo pods' built-in servers: on every container port, HTTP/1.1 for
//! TCP and a datagram answer for UDP, each replying with the pod's name.
//! The sockets are made inside the pod's namespace and served from one
//! runtime in the daemon.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

use anyhow::Context as _;
use k8snet::model::{NsName, Protocol};
use k8snet_testnet::Netns;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

/// Demo servers, per pod.
pub(crate) struct PodServers {
    rt: tokio::runtime::Runtime,
    tasks: HashMap<NsName, Vec<JoinHandle<()>>>,
}

enum Sock {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl PodServers {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pod-servers")
            .enable_io()
            .build()
            .context("starting the pod servers' runtime")?;
        Ok(Self {
            rt,
            tasks: HashMap::new(),
        })
    }

    /// Listens on `ports` inside `netns` (all addresses, both families) and
    /// answers with `name`.
    pub(crate) fn start(
        &mut self,
        netns: &str,
        key: &NsName,
        ports: &[(Protocol, u16)],
    ) -> anyhow::Result<()> {
        self.stop(key);
        let socks: Vec<std::io::Result<Sock>> = Netns::named(netns).run(|| {
            ports
                .iter()
                .filter(|(p, _)| matches!(p, Protocol::Tcp | Protocol::Udp))
                .map(|&(proto, port)| {
                    let addr = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
                    if proto == Protocol::Udp {
                        UdpSocket::bind(addr).map(Sock::Udp)
                    } else {
                        TcpListener::bind(addr).map(Sock::Tcp)
                    }
                })
                .collect()
        })?;
        let name = key.name.clone();
        let mut handles = Vec::new();
        let _guard = self.rt.enter();
        for s in socks {
            match s.with_context(|| format!("pod {key}: binding its demo server in {netns}"))? {
                Sock::Tcp(l) => {
                    l.set_nonblocking(true)?;
                    let l = tokio::net::TcpListener::from_std(l)?;
                    handles.push(self.rt.spawn(serve_tcp(l, name.clone())));
                }
                Sock::Udp(u) => {
                    u.set_nonblocking(true)?;
                    let u = tokio::net::UdpSocket::from_std(u)?;
                    handles.push(self.rt.spawn(serve_udp(u, name.clone())));
                }
            }
        }
        self.tasks.insert(key.clone(), handles);
        Ok(())
    }

    /// Stops a pod's servers (their sockets close).
    pub(crate) fn stop(&mut self, key: &NsName) {
        for h in self.tasks.remove(key).unwrap_or_default() {
            h.abort();
        }
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, name: String) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(answer_http(conn, name.clone()));
    }
}

/// HTTP/1.x with keep-alive: each request (its body skipped by
/// `Content-Length`) gets `200` and the pod's name.
async fn answer_http(mut conn: tokio::net::TcpStream, name: String) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = find_head_end(&buf) else {
            if buf.len() > 64 * 1024 {
                return;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let body_len: usize = header(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let close = header(&head, "connection").is_some_and(|v| v == "close")
            || head.lines().next().is_some_and(|l| l.ends_with("http/1.0"));
        while buf.len() < end + body_len {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + body_len);
        let body = format!("{name}\n");
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if conn.write_all(reply.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim())
    })
}

async fn serve_udp(sock: tokio::net::UdpSocket, name: String) {
    let reply = format!("{name}\n");
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((_, from)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(reply.as_bytes(), from).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parsing() {
        let head = "get / http/1.1\r\nhost: x\r\ncontent-length: 3\r\nconnection: close\r\n\r\n";
        assert_eq!(find_head_end(head.as_bytes()), Some(head.len()));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(header(head, "content-length"), Some("3"));
        assert_eq!(header(head, "connection"), Some("close"));
        assert_eq!(header(head, "get / http/1.1"), None);
    }
}
