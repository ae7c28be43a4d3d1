//! Connections to endpoints: connected on demand, kept alive and reused.
//!
//! HTTP/1.1 connections are pooled per endpoint: a connection goes back
//! to the pool as soon as its response head is in, and is handed out
//! again once hyper reports it ready (its response body fully read).
//! HTTP/2 connections are shared: one per endpoint carries every request.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::body::ProxyBody;
use crate::error::Error;
use rustc_hash::FxHashMap;

/// How to talk to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Proto {
    /// HTTP/1.1.
    H1,
    /// HTTP/1.1 over TLS.
    H1Tls,
    /// HTTP/2 with prior knowledge.
    H2c,
    /// HTTP/2 over TLS.
    H2Tls,
}

impl Proto {
    pub(crate) fn is_h2(self) -> bool {
        matches!(self, Self::H2c | Self::H2Tls)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) addr: SocketAddr,
    pub(crate) proto: Proto,
}

/// A connection ready for one request.
pub(crate) enum Conn {
    H1(http1::SendRequest<ProxyBody>),
    H2(http2::SendRequest<ProxyBody>),
}

/// Idle HTTP/1.1 connections kept per endpoint (nginx's upstream
/// `keepalive` is per worker; this is per process).
const MAX_H1_PER_ENDPOINT: usize = 256;

pub(crate) struct Pool {
    h1: Mutex<FxHashMap<Key, Vec<http1::SendRequest<ProxyBody>>>>,
    h2: Mutex<FxHashMap<Key, http2::SendRequest<ProxyBody>>>,
    /// Idle plain HTTP/1.1 connections of the raw fast path, per endpoint.
    raw: Mutex<FxHashMap<SocketAddr, Vec<TcpStream>>>,
    tls_h1: TlsConnector,
    tls_h2: TlsConnector,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new() -> Result<Self, Error> {
        Ok(Self {
            h1: Mutex::default(),
            h2: Mutex::default(),
            raw: Mutex::default(),
            tls_h1: TlsConnector::from(super::tls::client_config(b"http/1.1")?),
            tls_h2: TlsConnector::from(super::tls::client_config(b"h2")?),
        })
    }

    /// A pooled connection that is ready, if any.
    pub(crate) fn idle(&self, key: Key) -> Option<Conn> {
        if key.proto.is_h2() {
            let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
            match h2.get(&key) {
                Some(tx) if !tx.is_closed() => return Some(Conn::H2(tx.clone())),
                Some(_) => {
                    h2.remove(&key);
                }
                None => {}
            }
            return None;
        }
        let mut h1 = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        let list = h1.get_mut(&key)?;
        // Oldest first: those have had the longest to finish their
        // response; closed ones met on the way are dropped.
        let mut i = 0;
        while i < list.len() {
            if list[i].is_closed() {
                list.swap_remove(i);
            } else if list[i].is_ready() {
                return Some(Conn::H1(list.remove(i)));
            } else {
                i += 1;
            }
        }
        None
    }

    /// Returns an HTTP/1.1 connection whose request is under way; it is
    /// handed out again once it is ready.
    pub(crate) fn put(&self, key: Key, tx: http1::SendRequest<ProxyBody>) {
        let mut h1 = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        let list = h1.entry(key).or_default();
        if list.len() < MAX_H1_PER_ENDPOINT {
            list.push(tx);
        }
    }

    /// An idle raw connection to `addr` that still looks open (the most
    /// recently used first); those the backend closed meanwhile are dropped.
    pub(crate) fn raw_idle(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut raw = self.raw.lock().unwrap_or_else(|p| p.into_inner());
        let list = raw.get_mut(&addr)?;
        while let Some(c) = list.pop() {
            if still_open(&c) {
                return Some(c);
            }
        }
        None
    }

    /// Keeps a raw connection whose exchange is complete for the next
    /// request to `addr`.
    pub(crate) fn put_raw(&self, addr: SocketAddr, conn: TcpStream) {
        let mut raw = self.raw.lock().unwrap_or_else(|p| p.into_inner());
        let list = raw.entry(addr).or_default();
        if list.len() < MAX_H1_PER_ENDPOINT {
            list.push(conn);
        }
    }

    /// A new connection. Errors are connect errors: nothing of the
    /// request has been sent, so the caller may try another endpoint.
    pub(crate) async fn connect(
        &self,
        key: Key,
        timeout: Duration,
        upgrades: bool,
    ) -> std::io::Result<Conn> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(key.addr))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect timed out after {timeout:?}"),
                )
            })??;
        tcp.set_nodelay(true)?;
        match key.proto {
            Proto::H1 => self.handshake_h1(TokioIo::new(tcp), upgrades).await,
            Proto::H2c => self.handshake_h2(key, TokioIo::new(tcp)).await,
            Proto::H1Tls => {
                let tls = tls_connect(&self.tls_h1, key.addr, tcp, timeout).await?;
                self.handshake_h1(TokioIo::new(tls), upgrades).await
            }
            Proto::H2Tls => {
                let tls = tls_connect(&self.tls_h2, key.addr, tcp, timeout).await?;
                self.handshake_h2(key, TokioIo::new(tls)).await
            }
        }
    }

    async fn handshake_h1<T>(&self, io: T, upgrades: bool) -> std::io::Result<Conn>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (tx, conn) = http1::Builder::new()
            .handshake::<_, ProxyBody>(io)
            .await
            .map_err(std::io::Error::other)?;
        if upgrades {
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!("backend connection: {e}");
                }
            });
        } else {
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("backend connection: {e}");
                }
            });
        }
        Ok(Conn::H1(tx))
    }

    async fn handshake_h2<T>(&self, key: Key, io: T) -> std::io::Result<Conn>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake::<_, ProxyBody>(io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("backend h2 connection: {e}");
            }
        });
        self.h2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, tx.clone());
        Ok(Conn::H2(tx))
    }
}

/// Whether an idle connection is still usable: nothing to read (no
/// end-of-stream, no stray bytes). Readiness is asked of the reactor
/// first, so a connection with no event pending costs no system call.
fn still_open(c: &TcpStream) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if c.poll_read_ready(&mut cx).is_pending() {
        return true;
    }
    let mut probe = [0u8; 1];
    matches!(c.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    tcp: TcpStream,
    timeout: Duration,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}
