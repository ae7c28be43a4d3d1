//! Request heads: checked once, routed, and rewritten into the upstream
//! head (or left to the hyper path).

use super::*;

/// Whether `b` may appear in a target the fast path forwards as it is
/// (a conservative set; anything else is left to the hyper path).
pub(super) fn target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%?".contains(&b)
}

/// Visible ASCII or tab: what `HeaderValue::to_str` accepts.
pub(super) fn visible(v: &[u8]) -> bool {
    v.iter().all(|&b| (32..127).contains(&b) || b == b'\t')
}

/// Request headers the fast path treats specially.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    Host,
    Connection,
    /// Hop-by-hop, dropped.
    Hop,
    /// Refused on the fast path (`TE`, `Expect`).
    Slow,
    /// Set by the proxy; the client's are dropped.
    Forwarded,
    Xff,
    /// `Content-Length`: written once (repeated identical lines, which
    /// the guard accepts, do not reach the backend).
    Length,
    Other,
}

pub(super) fn special(name: &str) -> Special {
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    match name.len() {
        4 if is("host") => Special::Host,
        10 if is("connection") => Special::Connection,
        10 if is("keep-alive") => Special::Hop,
        16 if is("proxy-connection") => Special::Hop,
        18 if is("proxy-authenticate") => Special::Hop,
        19 if is("proxy-authorization") => Special::Hop,
        2 if is("te") => Special::Slow,
        6 if is("expect") => Special::Slow,
        7 if is("trailer") => Special::Hop,
        17 if is("transfer-encoding") => Special::Hop,
        7 if is("upgrade") => Special::Slow,
        15 if is("x-forwarded-for") => Special::Xff,
        14 if is("content-length") => Special::Length,
        9 if is("x-real-ip") => Special::Forwarded,
        17 if is("x-forwarded-proto") => Special::Forwarded,
        16 if is("x-forwarded-port") => Special::Forwarded,
        16 if is("x-forwarded-host") => Special::Forwarded,
        24 if is("x-original-forwarded-for") => Special::Forwarded,
        _ => Special::Other,
    }
}

/// Parses the head at the start of `inb` and decides whether the fast
/// path takes it; if so, writes the upstream head into `s.out`.
pub(super) fn plan(inb: &[u8], ctx: &ConnCtx, s: &mut Scratch, logging: bool) -> Step {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(inb, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Step::Partial,
        Err(_) => return Step::Fallback,
    };
    // HTTP/1.1 only; more header lines than hyper takes is its 431.
    if req.version != Some(1) || req.headers.len() > HYPER_MAX_HEADERS {
        return Step::Fallback;
    }
    let body = match guard::framing(&req) {
        Framing::Length(n) => BodyKind::Length(n),
        Framing::Chunked => BodyKind::Chunked,
        Framing::Refuse(_) | Framing::Aside => return Step::Fallback,
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Step::Fallback;
    };
    if method == "CONNECT" || !target.starts_with('/') || !target.bytes().all(target_byte) {
        return Step::Fallback;
    }
    let path = target.split('?').next().unwrap_or(target);
    let out = &mut s.out;
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host: Option<&str> = None;
    let mut client_close = false;
    let mut length_written = false;
    s.xff.clear();
    for h in req.headers.iter() {
        match special(h.name) {
            Special::Other => {}
            Special::Host => {
                if host.is_some() || h.value.is_empty() || !visible(h.value) {
                    return Step::Fallback;
                }
                // Visible ASCII is UTF-8.
                host = std::str::from_utf8(h.value).ok();
            }
            Special::Connection => {
                for t in h.value.split(|&b| b == b',') {
                    let t = t.trim_ascii();
                    if t.eq_ignore_ascii_case(b"close") {
                        client_close = true;
                    } else if !(t.is_empty()
                        || t.eq_ignore_ascii_case(b"keep-alive")
                        || t.eq_ignore_ascii_case(b"upgrade"))
                    {
                        // It names headers to drop: the hyper path does that.
                        return Step::Fallback;
                    }
                }
                continue;
            }
            Special::Hop | Special::Forwarded => continue,
            // The first line only (the framing checked that any others
            // repeat it), as hyper forwards it.
            Special::Length if length_written => continue,
            Special::Length => length_written = true,
            Special::Slow => return Step::Fallback,
            Special::Xff => {
                if visible(h.value)
                    && let Ok(v) = std::str::from_utf8(h.value)
                    && !v.trim().is_empty()
                {
                    if !s.xff.is_empty() {
                        s.xff.push_str(", ");
                    }
                    s.xff.push_str(v.trim());
                }
                continue;
            }
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    let Some(host) = host else {
        return Step::Fallback;
    };
    if matches!(
        crate::path::normalize_path(path),
        std::borrow::Cow::Owned(_)
    ) {
        return Step::Fallback;
    }
    let state = ctx.shared.state.load();
    let Some(route) = state.router.route(host, path) else {
        return Step::Fallback;
    };
    let settings = route.settings();
    let Backend::Service(backend) = route.backend() else {
        return Step::Fallback;
    };
    if settings.affinity.is_some()
        || settings.rewrite_target.is_some()
        || settings.backend_protocol != BackendProtocol::Http
        || settings.force_ssl_redirect
        || (settings.ssl_redirect && state.router.has_tls(host))
        || !settings.allows(ctx.client.ip())
    {
        return Step::Fallback;
    }
    // A declared length over the limit is the hyper path's 413; a chunked
    // body is counted as it comes.
    if let (Some(max), BodyKind::Length(n)) = (settings.max_body_size, body)
        && n > max
    {
        return Step::Fallback;
    }
    let Ok(upstream) = state.upstreams.get(backend) else {
        return Step::Fallback;
    };
    if upstream.h2c() {
        return Step::Fallback;
    }
    // Taken: the headers the proxy sets, as the hyper path does
    // (`forward::request_headers`): the client's X-Forwarded-For is passed
    // on as X-Original-Forwarded-For and replaced.
    if !s.xff.is_empty() {
        out.extend_from_slice(b"x-original-forwarded-for: ");
        out.extend_from_slice(s.xff.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    let client = ctx.client_value.as_bytes();
    out.extend_from_slice(client);
    out.extend_from_slice(b"\r\nx-real-ip: ");
    out.extend_from_slice(client);
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\nx-forwarded-port: ");
    out.extend_from_slice(ctx.local_port.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-host: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    if body == BodyKind::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    s.path.clear();
    s.path.push_str(path);
    if logging {
        s.method.clear();
        s.method.push_str(method);
        s.host.clear();
        s.host.push_str(host);
        s.log_path.clear();
        s.log_path.push_str(path);
        s.ingress.clear();
        let _ = write!(s.ingress, "{}", route.ingress());
    }
    Step::Go(Plan {
        head_len,
        body,
        head: method == "HEAD",
        idempotent: matches!(method, "GET" | "HEAD" | "OPTIONS"),
        resend_unfinished: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        client_close,
        upstream: upstream.clone(),
        read_timeout: settings.read_timeout,
        send_timeout: settings.send_timeout,
        connect_timeout: settings.connect_timeout,
        max_body: settings.max_body_size,
    })
}
