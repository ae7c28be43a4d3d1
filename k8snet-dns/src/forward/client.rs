//! The upstream exchange: UDP, then TCP when the reply is truncated.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use super::message::{ReplyOpt, patch_reply, query_key, servfail_with, strip_opt, truncated_with};
use super::{Cache, CacheConfig, Upstreams};
use crate::Error;
use crate::answer::Transport;

/// How the forwarder works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// Upstream servers.
    pub upstreams: Vec<SocketAddr>,
    /// How long to wait for one upstream (CoreDNS: 2 s read timeout).
    pub timeout: Duration,
    /// Consecutive failures that mark an upstream down.
    pub max_fails: u32,
    /// The cache.
    pub cache: CacheConfig,
    /// Largest UDP reply sent to an EDNS client (at least 512 is used),
    /// advertised in the OPT record of our replies.
    pub max_udp_payload: u16,
}

impl ForwardConfig {
    /// Defaults for these upstreams.
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self {
            upstreams,
            timeout: Duration::from_secs(2),
            max_fails: 2,
            cache: CacheConfig::default(),
            max_udp_payload: crate::DEFAULT_UDP_PAYLOAD,
        }
    }
}

/// Forwards queries upstream through a [`Cache`] and [`Upstreams`].
#[derive(Debug)]
pub struct Forwarder {
    config: ForwardConfig,
    upstreams: Upstreams,
    cache: Cache,
    next_id: AtomicU16,
}

impl Forwarder {
    /// A forwarder.
    pub fn new(config: ForwardConfig) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() as u16);
        Self {
            upstreams: Upstreams::new(config.upstreams.clone(), config.max_fails),
            cache: Cache::new(config.cache).with_udp_payload(config.max_udp_payload),
            next_id: AtomicU16::new(seed),
            config,
        }
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The upstreams and their health.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// Our EDNS payload size: `max_udp_payload`, at least 512.
    fn payload(&self) -> u16 {
        self.config.max_udp_payload.max(512)
    }

    /// The size limit of a reply to `query` over `transport`.
    pub fn limit(&self, query: &[u8], transport: Transport, out: usize) -> usize {
        let l = match transport {
            Transport::Tcp => 65_535,
            _ => match query_key(query).and_then(|k| k.edns) {
                Some(e) => e.payload.clamp(512, self.payload()),
                None => 512,
            },
        };
        usize::from(l).min(out)
    }

    /// Answers from the cache only; the reply length on a hit.
    pub fn cached(&self, query: &[u8], transport: Transport, out: &mut [u8]) -> Option<usize> {
        let limit = self.limit(query, transport, out.len());
        let len = self.cache.lookup(query, Instant::now(), out)?;
        Some(if len > limit {
            truncated_with(query, self.payload(), out)
        } else {
            len
        })
    }

    /// Answers `query` from the cache or the upstreams, writing the reply
    /// (with the query's ID and case) into `out`: the upstream's reply, a
    /// TC reply when it is larger than the client may receive, or SERVFAIL
    /// when no upstream answers. The reply has an OPT record (ours, not the
    /// upstream's) exactly when `query` had one. Returns the length.
    pub fn resolve(&self, query: &[u8], transport: Transport, out: &mut [u8]) -> usize {
        if let Some(len) = self.cached(query, transport, out) {
            return len;
        }
        let limit = self.limit(query, transport, out.len());
        let payload = self.payload();
        let Some(k) = query_key(query) else {
            return servfail_with(query, payload, out);
        };
        let reply = match self.exchange(query) {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!("forwarding failed: {e}");
                return servfail_with(query, payload, out);
            }
        };
        // The OPT record is removed once, for the cache and the client.
        let Some((reply, ext_rcode)) = strip_opt(&reply) else {
            tracing::debug!("malformed upstream reply");
            return servfail_with(query, payload, out);
        };
        self.cache
            .insert_stripped(query, &reply, ext_rcode, Instant::now());
        let opt = ReplyOpt::for_query(k.edns, payload, ext_rcode);
        match patch_reply(query, k.question_end, &reply, opt, out) {
            Some(len) if len <= limit => len,
            _ => truncated_with(query, payload, out),
        }
    }

    /// Sends `query` upstream (with a fresh ID) and returns the reply,
    /// trying each upstream in turn: UDP, then TCP on TC.
    ///
    /// The reply is the upstream's, as it came: its ID, its OPT record and
    /// its AD bit. [`Forwarder::resolve`] is what answers a client (the
    /// query's ID and question, an OPT exactly when the query had one, AD
    /// cleared unless the client asked for it).
    ///
    /// # Errors
    /// [`Error::Upstream`] when no upstream gave a matching reply.
    pub fn exchange(&self, query: &[u8]) -> Result<Vec<u8>, Error> {
        let Some(k) = query_key(query) else {
            return Err(Error::Message("not a query".into()));
        };
        let mut msg = query.to_vec();
        let id = self.next_id.fetch_add(0x9E37, Ordering::Relaxed);
        msg[..2].copy_from_slice(&id.to_be_bytes());
        let mut errors = Vec::new();
        for server in self.upstreams.order(Instant::now()) {
            let result = udp(server, &msg, self.config.timeout).and_then(|r| {
                if r.get(2).is_some_and(|f| f & 0x02 != 0) {
                    tcp(server, &msg, self.config.timeout)
                } else {
                    Ok(r)
                }
            });
            match result {
                Ok(r) if matches(&msg, k.question_end, &r) => {
                    self.upstreams.report(server, true, Instant::now());
                    return Ok(r);
                }
                Ok(_) => errors.push(format!("{server}: reply does not match the query")),
                Err(e) => errors.push(format!("{server}: {e}")),
            }
            self.upstreams.report(server, false, Instant::now());
        }
        Err(Error::Upstream(errors.join("; ")))
    }
}

/// Whether `reply` answers `msg`: same ID, QR set, same question
/// (case-insensitively).
fn matches(msg: &[u8], question_end: usize, reply: &[u8]) -> bool {
    reply.len() >= question_end
        && reply[..2] == msg[..2]
        && reply[2] & 0x80 != 0
        && reply[12..question_end].eq_ignore_ascii_case(&msg[12..question_end])
}

fn udp(server: SocketAddr, msg: &[u8], timeout: Duration) -> Result<Vec<u8>, Error> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| Error::Message("bind".into()))?
    } else {
        "[::]:0"
            .parse()
            .map_err(|_| Error::Message("bind".into()))?
    };
    let sock = UdpSocket::bind(bind).map_err(|e| Error::io("bind upstream socket", e))?;
    sock.connect(server).map_err(|e| Error::io("connect", e))?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| Error::io("timeout", e))?;
    sock.send(msg).map_err(|e| Error::io("send", e))?;
    let mut buf = vec![0u8; 65_535];
    let deadline = Instant::now() + timeout;
    loop {
        let n = sock.recv(&mut buf).map_err(|e| Error::io("receive", e))?;
        // Skip stray datagrams with another ID (a late reply).
        if n >= 2 && buf[..2] == msg[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
        if Instant::now() >= deadline {
            return Err(Error::Upstream("timed out".into()));
        }
    }
}

fn tcp(server: SocketAddr, msg: &[u8], timeout: Duration) -> Result<Vec<u8>, Error> {
    let mut s =
        TcpStream::connect_timeout(&server, timeout).map_err(|e| Error::io("connect", e))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| Error::io("timeout", e))?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| Error::io("timeout", e))?;
    let len = u16::try_from(msg.len()).map_err(|_| Error::Message("query too long".into()))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed).map_err(|e| Error::io("send", e))?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)
        .map_err(|e| Error::io("receive", e))?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf)
        .map_err(|e| Error::io("receive", e))?;
    Ok(buf)
}
