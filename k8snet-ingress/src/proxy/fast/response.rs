//! Backend response heads: read, framed by RFC 9112, rewritten for the
//! client.

use super::*;

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RespBody {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the response head says.
pub(super) struct RespHead {
    pub(super) len: usize,
    pub(super) status: u16,
    pub(super) body: RespBody,
    /// Whether the backend keeps the connection open after it.
    pub(super) keep_alive: bool,
}

pub(super) enum HeadError {
    /// Closed before any byte of a response.
    Closed,
    TimedOut,
    Invalid(String),
    Io(io::Error),
}

/// Reads a response head into `buf` (from its start), skipping 1xx.
pub(super) async fn read_head(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    timer: &mut LazyDeadline,
    head_req: bool,
    client_keep: bool,
    down: &mut Vec<u8>,
) -> Result<RespHead, HeadError> {
    loop {
        if !buf.is_empty() {
            match parse_response(buf, head_req, client_keep, down) {
                Ok(Some(h)) if (100..200).contains(&h.status) => {
                    if h.status == 101 {
                        return Err(HeadError::Invalid(
                            "101 Switching Protocols without an upgrade".into(),
                        ));
                    }
                    buf.drain(..h.len);
                    continue;
                }
                Ok(Some(h)) => return Ok(h),
                Ok(None) if buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::Invalid("message head is too large".into()));
                }
                Ok(None) => {}
                Err(e) => return Err(HeadError::Invalid(e)),
            }
        }
        if buf.capacity() - buf.len() < 2048 {
            buf.reserve(8192);
        }
        let was_empty = buf.is_empty();
        match within(timer, conn.read_buf(buf)).await {
            None => return Err(HeadError::TimedOut),
            Some(Ok(0)) if was_empty => return Err(HeadError::Closed),
            Some(Ok(0)) => {
                return Err(HeadError::Invalid(
                    "connection closed before message completed".into(),
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e))
                if was_empty
                    && matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                    ) =>
            {
                return Err(HeadError::Closed);
            }
            Some(Err(e)) => return Err(HeadError::Io(e)),
        }
    }
}

/// A response head at the start of `buf`: `None` while incomplete. The
/// head of a final response is written for the client into `down` (see
/// [`client_head`]) in the same pass.
pub(super) fn parse_response(
    buf: &[u8],
    head_req: bool,
    client_keep: bool,
    down: &mut Vec<u8>,
) -> Result<Option<RespHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid response head: {e}")),
    };
    if resp.headers.len() > HYPER_MAX_HEADERS {
        return Err("too many headers in the response".into());
    }
    let status = resp.code.unwrap_or(0);
    let mut length: Option<u64> = None;
    let mut te: Option<bool> = None;
    let mut close = resp.version != Some(1);
    let mut unusual = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match guard::digits(h.value) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return Err("invalid content-length in the response".into()),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = Some(guard::is_chunked(h.value));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    if resp.version == Some(0) {
                        close = false;
                    }
                } else if !(t.is_empty() || t.eq_ignore_ascii_case(b"upgrade")) {
                    unusual = true;
                }
            }
        }
    }
    let body = if head_req || (100..200).contains(&status) || status == 204 || status == 304 {
        RespBody::None
    } else {
        match (te, length) {
            (Some(true), _) => RespBody::Chunked,
            (Some(false), _) => RespBody::UntilClose,
            (None, Some(n)) => RespBody::Length(n),
            (None, None) => RespBody::UntilClose,
        }
    };
    let head = RespHead {
        len,
        status,
        body,
        // Transfer-Encoding with Content-Length: framed by the former
        // (RFC 9112 §6.3), but a sign of a confused or hostile backend,
        // so the connection is not reused.
        keep_alive: !close && body != RespBody::UntilClose && !(te.is_some() && length.is_some()),
    };
    if !(100..200).contains(&status) {
        client_head(&resp, &head, unusual, client_keep, down);
    }
    Ok(Some(head))
}

/// Response headers dropped on the way to the client (hop-by-hop).
pub(super) fn response_hop(name: &str) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    match name.len() {
        10 => is("connection") || is("keep-alive"),
        16 => is("proxy-connection"),
        18 => is("proxy-authenticate"),
        19 => is("proxy-authorization"),
        2 => is("te"),
        7 => is("trailer") || is("upgrade"),
        17 => is("transfer-encoding"),
        _ => false,
    }
}

/// Writes the client's response head: the backend's, hop-by-hop headers
/// (and those its `Connection` names, when `unusual`) dropped, framing
/// and `Date` as hyper's server sets them.
pub(super) fn client_head(
    resp: &httparse::Response<'_, '_>,
    head: &RespHead,
    unusual: bool,
    client_keep: bool,
    down: &mut Vec<u8>,
) {
    down.clear();
    down.extend_from_slice(b"HTTP/1.1 ");
    let _ = write!(HexWriter(down), "{:03} ", head.status);
    down.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    down.extend_from_slice(b"\r\n");
    // Headers named by Connection (besides the usual tokens).
    let named = |name: &str| {
        resp.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection")
                && h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        })
    };
    let chunked_out = matches!(head.body, RespBody::Chunked | RespBody::UntilClose);
    let mut date = false;
    for h in resp.headers.iter() {
        if response_hop(h.name) || (unusual && named(h.name)) {
            continue;
        }
        if chunked_out && h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if h.name.eq_ignore_ascii_case("date") {
            date = true;
        }
        down.extend_from_slice(h.name.as_bytes());
        down.extend_from_slice(b": ");
        down.extend_from_slice(h.value);
        down.extend_from_slice(b"\r\n");
    }
    if chunked_out {
        // Codings besides chunked (`gzip, chunked`) still apply to the
        // body, which is passed on as it is: they stay, chunked last, as
        // the hyper path (and hyper's server) writes them.
        down.extend_from_slice(b"transfer-encoding: ");
        for h in resp.headers.iter() {
            if !h.name.eq_ignore_ascii_case("transfer-encoding") {
                continue;
            }
            for t in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if !t.is_empty() && !t.eq_ignore_ascii_case(b"chunked") {
                    down.extend_from_slice(t);
                    down.extend_from_slice(b", ");
                }
            }
        }
        down.extend_from_slice(b"chunked\r\n");
    }
    if !date {
        down.extend_from_slice(b"date: ");
        down.extend_from_slice(&http_date());
        down.extend_from_slice(b"\r\n");
    }
    if !client_keep {
        down.extend_from_slice(b"connection: close\r\n");
    }
    down.extend_from_slice(b"\r\n");
}
