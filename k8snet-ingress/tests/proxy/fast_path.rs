//! The raw HTTP/1.1 fast path against the hyper path: the same requests,
//! on raw sockets, through a proxy with the fast path on and one with it
//! off, to the same scripted backend; status lines, headers (but `Date`)
//! and bodies must agree.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8snet_ingress::proxy::Proxy;

use crate::support::{curl, dead_addr, ingress, load, proxy_with, service, simple_rule, url};

/// A backend on raw sockets whose answers are scripted by path (see
/// [`respond`]); it keeps the request heads it got, byte for byte.
struct RawBackend {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    /// Connections the backend has closed.
    closed: Arc<AtomicUsize>,
}

impl RawBackend {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (h, c, d) = (heads.clone(), connections.clone(), closed.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (h, d) = (h.clone(), d.clone());
                std::thread::spawn(move || {
                    serve_raw(s, &h);
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            heads,
            connections,
            closed,
        }
    }

    /// Waits until the backend has closed more than `before` connections.
    fn wait_closed(&self, before: usize) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while self.closed.load(Ordering::SeqCst) <= before {
            assert!(
                std::time::Instant::now() < until,
                "the backend never closed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The head that carried `marker` (an `X-Case` value).
    fn head_with(&self, marker: &str) -> String {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .find(|h| h.contains(marker))
            .cloned()
            .unwrap_or_default()
    }
}

fn serve_raw(s: TcpStream, heads: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        heads.lock().unwrap().push(head.clone());
        let mut lines = head.lines();
        let start: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
        let (method, path) = (start[0].to_string(), start[1].to_string());
        let mut fields: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            match try_read_chunked(&mut r) {
                Some(b) => b,
                None => return,
            }
        } else {
            let n: usize = get("content-length").map_or(0, |v| v.parse().unwrap());
            let mut b = vec![0; n];
            if r.read_exact(&mut b).is_err() {
                return;
            }
            b
        };
        // What the backend saw, comparable between the paths: names
        // lowercased and sorted, the proxy's own port left out.
        fields.sort();
        let mut echo = format!(
            "method={method}\npath={path}\nbody={}:{}\n",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(16)])
        );
        for (k, v) in &fields {
            let v = if k == "x-forwarded-port" { "<port>" } else { v };
            echo.push_str(&format!("{k}: {v}\n"));
        }
        if !respond(&mut w, &path, &echo) {
            return;
        }
    }
}

/// Answers by path; false when the connection is to be closed.
fn respond(w: &mut TcpStream, path: &str, echo: &str) -> bool {
    let plain = |extra: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nX-Backend: Raw\r\n{extra}Content-Length: {}\r\n\r\n{echo}",
            echo.len()
        )
    };
    let (text, keep) = match path.split('?').next().unwrap_or("") {
        "/chunked" => {
            let (a, b) = echo.split_at(echo.len() / 2);
            (
                format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nX-T: 1\r\n\r\n",
                    a.len(),
                    b.len()
                ),
                true,
            )
        }
        "/until-close" => (format!("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n{echo}"), false),
        // A transfer coding before chunked (the proxy passes the coded
        // body on as it is), and one delimited by the close.
        "/gzip-chunked" => (
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{:x}\r\n{echo}\r\n0\r\n\r\n",
                echo.len()
            ),
            true,
        ),
        "/gzip-close" => (
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{echo}"),
            false,
        ),
        // Bodiless answers naming a coding (no body to misread).
        "/gzip-204" => (
            "HTTP/1.1 204 No Content\r\nTransfer-Encoding: gzip\r\n\r\n".to_string(),
            true,
        ),
        "/gzip-304" => (
            "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip, chunked\r\nETag: \"v1\"\r\n\r\n"
                .to_string(),
            true,
        ),
        "/204" => (
            "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n".to_string(),
            true,
        ),
        "/304" => (
            "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=5\r\n\r\n"
                .to_string(),
            true,
        ),
        "/conn-close" => (plain("Connection: close\r\n"), false),
        "/then-close" => (plain(""), false),
        "/hop" => (
            plain(
                "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\nUpgrade: y\r\n",
            ),
            true,
        ),
        "/early" => (
            format!(
                "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n{}",
                plain("")
            ),
            true,
        ),
        "/big" => {
            // 300 KiB after the echo: several reads and writes.
            let big = format!("{echo}{}", "x".repeat(300 * 1024));
            (
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big}",
                    big.len()
                ),
                true,
            )
        }
        "/big-chunked" => {
            let mut text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
            text.push_str(&format!("{:x}\r\n{echo}\r\n", echo.len()));
            for _ in 0..30 {
                text.push_str(&format!("2800\r\n{}\r\n", "y".repeat(0x2800)));
            }
            text.push_str("0\r\n\r\n");
            (text, true)
        }
        "/garbage" => ("NOT HTTP AT ALL\r\n\r\n".to_string(), false),
        "/silent" => (String::new(), false),
        "/sleep" => {
            std::thread::sleep(Duration::from_millis(1500));
            (plain(""), true)
        }
        _ => (plain(""), true),
    };
    if w.write_all(text.as_bytes()).is_err() {
        return false;
    }
    keep
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    try_read_chunked(r).expect("a complete chunked body")
}

/// A chunked body; `None` when the stream ends or breaks inside it (the
/// backend's side, when a proxy gives up on a body).
fn try_read_chunked(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let size = line.trim().split(';').next()?;
        let n = usize::from_str_radix(size, 16).ok()?;
        if n == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t).ok()? == 0 {
                    return None;
                }
                if t == "\r\n" {
                    return Some(body);
                }
            }
        }
        let mut chunk = vec![0; n + 2];
        r.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..n]);
    }
}

/// A response as a client reads it.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status_line: String,
    /// Lowercased names, sorted, `Date` left out.
    headers: Vec<(String, String)>,
    body: String,
    /// Whether the proxy closed the connection after it.
    closed: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A client connection to one proxy.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(p: &Proxy) -> Self {
        let s = TcpStream::connect(p.local_addrs()[0]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    fn send(&mut self, req: &[u8]) {
        self.w.write_all(req).unwrap();
    }

    /// Reads one response (`head`: to a HEAD request).
    fn read(&mut self, head: bool) -> Answer {
        let mut status_line = String::new();
        self.r.read_line(&mut status_line).unwrap();
        let mut headers = Vec::new();
        let mut date = false;
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            let k = k.trim().to_ascii_lowercase();
            if k == "date" {
                date = true;
                continue;
            }
            headers.push((k, v.trim().to_string()));
        }
        let code: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        if code < 200 {
            // An interim answer (100 Continue): the final one follows.
            return self.read(head);
        }
        assert!(date, "every answer has a Date: {status_line}");
        headers.sort();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if !(head || code == 204 || code == 304 || code < 200) {
            if get("transfer-encoding").is_some() {
                body = read_chunked(&mut self.r);
            } else if let Some(n) = get("content-length") {
                body = vec![0; n.parse().unwrap()];
                self.r.read_exact(&mut body).unwrap();
            } else {
                self.r.read_to_end(&mut body).unwrap();
            }
        }
        let closed = if get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            let mut rest = Vec::new();
            self.r.read_to_end(&mut rest).is_ok() && rest.is_empty()
        } else {
            false
        };
        Answer {
            status_line: status_line.trim_end().to_string(),
            headers,
            body: String::from_utf8(body).unwrap(),
            closed,
        }
    }

    fn exchange(&mut self, req: &str) -> Answer {
        self.send(req.as_bytes());
        self.read(req.starts_with("HEAD "))
    }
}

struct Pair {
    backend: RawBackend,
    fast: Proxy,
    slow: Proxy,
}

fn pair() -> Pair {
    let backend = RawBackend::start();
    let dead = dead_addr("127.0.0.1");
    let mut objects = service("web", "raw", &[backend.addr], None);
    objects.extend(service("web", "dead", &[dead], None));
    objects.extend(load(&ingress(
        "raw",
        "nginx.ingress.kubernetes.io/proxy-read-timeout: \"1\"",
        &simple_rule("shop.com", "raw"),
    )));
    objects.extend(load(&ingress("dead", "", &simple_rule("dead.com", "dead"))));
    let fast = proxy_with(objects.clone(), false, |_| {});
    let slow = proxy_with(objects, false, |c| c.fast_path = false);
    Pair {
        backend,
        fast,
        slow,
    }
}

/// The request with `{m}` replaced by a marker naming the path taken.
fn both(_p: &Pair, fast: &mut Client, slow: &mut Client, req: &str) -> (Answer, Answer) {
    let mut a = fast.exchange(&req.replace("{m}", "fast"));
    let mut b = slow.exchange(&req.replace("{m}", "slow"));
    // The marker is echoed: put the placeholder back.
    a.body = a.body.replace("fast", "{m}");
    b.body = b.body.replace("slow", "{m}");
    (a, b)
}

fn assert_same(p: &Pair, req: &str, n: usize) {
    let mut fast = Client::connect(&p.fast);
    let mut slow = Client::connect(&p.slow);
    for i in 0..n {
        let req = req.replace("{i}", &i.to_string());
        let (a, b) = both(p, &mut fast, &mut slow, &req);
        assert_eq!(a, b, "{req}");
        if a.closed {
            break;
        }
    }
}

const GET: &str = "GET /echo?q={i} HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}-{i}\r\nX-Forwarded-For: 10.0.0.1\r\nX-Real-IP: 6.6.6.6\r\n\r\n";

#[test]
fn plain_requests_take_the_fast_path_and_answer_as_the_hyper_path() {
    let p = pair();
    assert_same(&p, GET, 3);
    // The fast path forwarded the head as the client wrote it (names
    // unchanged); hyper's client wrote it again (lowercase).
    let fast = p.backend.head_with("fast-0");
    let slow = p.backend.head_with("slow-0");
    assert!(fast.contains("\r\nX-Case: fast-0\r\n"), "{fast}");
    assert!(slow.contains("\r\nx-case: slow-0\r\n"), "{slow}");
    // The forwarding headers, as the hyper path sets them.
    for h in [
        "x-forwarded-for: 127.0.0.1\r\n",
        "x-original-forwarded-for: 10.0.0.1\r\n",
        "x-real-ip: 127.0.0.1\r\n",
        "x-forwarded-proto: http\r\n",
        "x-forwarded-host: shop.com\r\n",
    ] {
        assert!(fast.contains(h), "{h} in {fast}");
    }
    assert!(
        !fast.contains("6.6.6.6"),
        "the client's X-Real-IP is replaced"
    );
    // Kept alive on both sides: one backend connection per proxy served
    // the three requests (and the two proxies' connections are all).
    assert_eq!(p.backend.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn heads_and_bodies_agree_between_the_paths() {
    let p = pair();
    for req in [
        "HEAD /echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\nContent-Length: 11\r\n\r\nhello world",
        "POST /echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n",
        "GET /chunked HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "HEAD /chunked HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "GET /204 HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "GET /304 HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\nIf-None-Match: \"v1\"\r\n\r\n",
        "GET /hop HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: secret\r\n\r\n",
        "GET /early HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "GET /until-close HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "GET /gzip-chunked HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "GET /gzip-close HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "GET /conn-close HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "GET /big HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
        "GET /big-chunked HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n",
    ] {
        assert_same(&p, req, 2);
        // Each took the fast path on the fast proxy.
        assert!(
            p.backend
                .heads
                .lock()
                .unwrap()
                .iter()
                .any(|h| h.contains("\r\nX-Case: fast\r\n")),
            "{req}: {:?}",
            p.backend.heads.lock().unwrap()
        );
        p.backend.heads.lock().unwrap().clear();
    }
}

#[test]
fn large_heads_and_client_closes_agree() {
    let p = pair();
    let big = "a".repeat(20 * 1024);
    assert_same(
        &p,
        &format!("GET /echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {{m}}\r\nX-Big: {big}\r\n\r\n"),
        2,
    );
    // Over the limit: hyper's 431 on both.
    let huge = "a".repeat(40 * 1024);
    let mut fast = Client::connect(&p.fast);
    let mut slow = Client::connect(&p.slow);
    let req = format!("GET /echo HTTP/1.1\r\nHost: shop.com\r\nX-Big: {huge}\r\n\r\n");
    let (a, b) = both(&p, &mut fast, &mut slow, &req);
    assert_eq!(
        a.status_line,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(a, b);
    // The client says close: answered, then closed.
    let mut fast = Client::connect(&p.fast);
    let mut slow = Client::connect(&p.slow);
    let (a, b) = both(
        &p,
        &mut fast,
        &mut slow,
        "GET /echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\nConnection: close\r\n\r\n",
    );
    assert!(a.closed && a.status_line.ends_with("200 OK"), "{a:?}");
    assert_eq!(a, b);
    // Pipelined requests are answered in order.
    let mut fast = Client::connect(&p.fast);
    fast.send(b"GET /echo?n=1 HTTP/1.1\r\nHost: shop.com\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: shop.com\r\n\r\n");
    let one = fast.read(false);
    let two = fast.read(false);
    assert!(one.body.contains("path=/echo?n=1"));
    assert!(two.body.contains("path=/echo?n=2"));
}

#[test]
fn a_pooled_connection_the_backend_closed_is_replaced() {
    let p = pair();
    for proxy in [&p.fast, &p.slow] {
        let before = p.backend.connections.load(Ordering::SeqCst);
        let mut c = Client::connect(proxy);
        // The backend answers, then closes the kept-alive connection.
        let a = c.exchange("GET /then-close HTTP/1.1\r\nHost: shop.com\r\n\r\n");
        assert!(a.status_line.ends_with("200 OK"));
        std::thread::sleep(Duration::from_millis(100));
        for i in 0..2 {
            let a = c.exchange(&format!(
                "GET /echo?again={i} HTTP/1.1\r\nHost: shop.com\r\n\r\n"
            ));
            assert!(a.status_line.ends_with("200 OK"), "{a:?}");
        }
        assert_eq!(p.backend.connections.load(Ordering::SeqCst), before + 2);
    }
}

#[test]
fn backend_failures_agree() {
    let p = pair();
    // Nothing listens: 502 after the tries, naming why.
    let mut fast = Client::connect(&p.fast);
    let mut slow = Client::connect(&p.slow);
    let (a, b) = both(
        &p,
        &mut fast,
        &mut slow,
        "GET / HTTP/1.1\r\nHost: dead.com\r\n\r\n",
    );
    assert!(a.status_line.ends_with("502 Bad Gateway"), "{a:?}");
    assert!(a.body.contains("could be reached: connect to"), "{a:?}");
    assert_eq!(a, b);
    // Too slow: 504 after proxy-read-timeout, the same words.
    let (a, b) = both(
        &p,
        &mut fast,
        &mut slow,
        "GET /sleep HTTP/1.1\r\nHost: shop.com\r\n\r\n",
    );
    assert!(a.status_line.ends_with("504 Gateway Timeout"), "{a:?}");
    assert_eq!(a, b);
    // Not HTTP, or closed without a word: 502 (the reasons come from
    // different parsers, the start of the message is the same).
    for path in ["/garbage", "/silent"] {
        let mut fast = Client::connect(&p.fast);
        let mut slow = Client::connect(&p.slow);
        let (a, b) = both(
            &p,
            &mut fast,
            &mut slow,
            &format!("GET {path} HTTP/1.1\r\nHost: shop.com\r\n\r\n"),
        );
        assert_eq!(a.status_line, "HTTP/1.1 502 Bad Gateway", "{path}");
        assert_eq!(a.status_line, b.status_line, "{path}");
        assert_eq!(
            a.header("x-k8snet-ingress"),
            b.header("x-k8snet-ingress"),
            "{path}"
        );
        for ans in [&a, &b] {
            let body = &ans.body;
            assert!(
                body.starts_with("502 Bad Gateway: ")
                    && body.contains("web/raw")
                    && body.contains(" failed: "),
                "{path}: {body}"
            );
        }
        // The client connection is still good.
        let (a, b) = both(
            &p,
            &mut fast,
            &mut slow,
            "GET /echo HTTP/1.1\r\nHost: shop.com\r\n\r\n",
        );
        assert_eq!(a, b);
        assert!(a.status_line.ends_with("200 OK"));
    }
    // No rule: the hyper path's 404 on both.
    let (a, b) = both(
        &p,
        &mut fast,
        &mut slow,
        "GET / HTTP/1.1\r\nHost: nowhere.com\r\n\r\n",
    );
    assert!(a.status_line.ends_with("404 Not Found"));
    assert_eq!(a, b);
}

#[test]
fn bodies_that_come_in_pieces_agree() {
    let p = pair();
    let mut fast = Client::connect(&p.fast);
    let mut slow = Client::connect(&p.slow);
    // The head first, the body later and in parts: streamed to the
    // backend as it comes (Content-Length, then chunked).
    let big = "z".repeat(200 * 1024);
    let mut answers = Vec::new();
    for (c, m) in [(&mut fast, "fast"), (&mut slow, "slow")] {
        c.send(
            format!(
                "POST /echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\nContent-Length: {}\r\n\r\n",
                big.len() + 5
            )
            .as_bytes(),
        );
        std::thread::sleep(Duration::from_millis(50));
        c.send(big.as_bytes());
        std::thread::sleep(Duration::from_millis(50));
        c.send(b"tail!");
        let mut a = c.read(false);
        a.body = a.body.replace(m, "{m}");
        c.send(
            format!(
                "POST /echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
            )
            .as_bytes(),
        );
        std::thread::sleep(Duration::from_millis(50));
        c.send(b"4\r\ndefg\r");
        std::thread::sleep(Duration::from_millis(50));
        c.send(b"\n0\r\n\r\n");
        let mut b = c.read(false);
        b.body = b.body.replace(m, "{m}");
        answers.push((a, b));
    }
    assert!(
        answers[0].0.body.contains("body=204805:zzzz"),
        "{:?}",
        answers[0].0
    );
    assert!(
        answers[0].1.body.contains("body=7:abcdefg"),
        "{:?}",
        answers[0].1
    );
    assert_eq!(answers[0], answers[1]);
    assert!(
        !p.backend.head_with("X-Case: fast").is_empty(),
        "taken by the fast path"
    );
}

#[test]
fn what_the_fast_path_leaves_to_hyper_is_answered_alike() {
    let p = pair();
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    for req in [
        // HTTP/1.0, Expect, too many header lines, an absolute target.
        "GET /echo HTTP/1.0\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n".to_string(),
        "POST /echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi".to_string(),
        format!("GET /echo HTTP/1.1\r\nHost: shop.com\r\n{many}\r\n"),
        "GET http://shop.com/echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\n\r\n".to_string(),
    ] {
        let mut fast = Client::connect(&p.fast);
        let mut slow = Client::connect(&p.slow);
        let (a, b) = both(&p, &mut fast, &mut slow, &req);
        assert_eq!(a, b, "{req}");
    }
    // None of them reached the backend by the fast path.
    assert!(p.backend.head_with("X-Case: fast").is_empty());
    // A chunked body over proxy-body-size (1 MiB by default), streamed:
    // 413 on both, with the same reason.
    let chunk = format!("10000\r\n{}\r\n", "q".repeat(0x10000));
    for proxy in [&p.fast, &p.slow] {
        let mut c = Client::connect(proxy);
        c.send(b"POST /echo HTTP/1.1\r\nHost: shop.com\r\nTransfer-Encoding: chunked\r\n\r\n");
        // 1 MiB and 64 KiB: the proxy stops reading past the limit.
        for _ in 0..17 {
            if c.w.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
        let a = c.read(false);
        assert_eq!(a.status_line, "HTTP/1.1 413 Payload Too Large");
        assert!(a.body.contains("proxy-body-size"), "{a:?}");
    }
}

#[test]
fn a_repeated_content_length_reaches_the_backend_once() {
    let p = pair();
    // Identical repeated lines (which the framing rules accept): both
    // paths answer alike, and the fast path sends the header once, as
    // hyper does, for backends that refuse duplicates (nginx: 400).
    let req = "POST /echo HTTP/1.1\r\nHost: shop.com\r\nX-Case: {m}\r\nContent-Length: 05\r\nContent-Length: 05\r\n\r\nhello";
    assert_same(&p, req, 1);
    let fast = p.backend.head_with("X-Case: fast");
    let lengths = fast
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("content-length:"))
        .collect::<Vec<_>>();
    assert_eq!(lengths, ["Content-Length: 05"], "{fast}");
}

/// A request whose body is still coming meets a pooled connection the
/// backend closed while it was idle: both paths answer it on a fresh
/// connection (review finding: the fast path answered 502).
#[test]
fn a_streamed_body_on_a_stale_pooled_connection_is_sent_on_a_fresh_one() {
    let p = pair();
    for (proxy, m) in [(&p.fast, "fast"), (&p.slow, "slow")] {
        for (i, (head, first, rest, want)) in [
            (
                "Content-Length: 10\r\n",
                "abc",
                "defghij",
                "body=10:abcdefghij",
            ),
            (
                "Transfer-Encoding: chunked\r\n",
                "3\r\nabc\r\n",
                "7\r\ndefghij\r\n0\r\n\r\n",
                "body=10:abcdefghij",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let mut c = Client::connect(proxy);
            // The backend answers, then closes the kept-alive connection.
            let a = c.exchange("GET /then-close HTTP/1.1\r\nHost: shop.com\r\n\r\n");
            assert!(a.status_line.ends_with("200 OK"), "{m}: {a:?}");
            std::thread::sleep(Duration::from_millis(100));
            c.send(
                format!("POST /echo?case={m}{i} HTTP/1.1\r\nHost: shop.com\r\n{head}\r\n{first}")
                    .as_bytes(),
            );
            std::thread::sleep(Duration::from_millis(100));
            c.send(rest.as_bytes());
            let a = c.read(false);
            assert!(a.status_line.ends_with("200 OK"), "{m} {i}: {a:?}");
            assert!(a.body.contains(want), "{m} {i}: {a:?}");
        }
    }
}

/// The same, with no pause for the proxy to notice the close: the next
/// request is pipelined behind the one after which the backend closes,
/// so the connection goes back to the pool and out again at once, often
/// before its end of stream arrives. Without the fix the fast path
/// answered 502 in 8 of 20 such requests. (The hyper path loses the same
/// race: 4 of 20 on the same machine, "connection closed before message
/// completed"; hyper's client cannot give back a request it began to
/// write, so that is left as it is.) Only an idempotent method goes
/// again (a PUT here): a POST whose head the backend already read gets
/// 502 then, as from nginx.
#[test]
fn a_streamed_body_racing_the_backends_close_is_sent_on_a_fresh_connection() {
    let p = pair();
    for i in 0..10 {
        for (head, first, rest) in [
            ("Content-Length: 10\r\n", "abc", "defghij"),
            (
                "Transfer-Encoding: chunked\r\n",
                "3\r\nabc\r\n",
                "7\r\ndefghij\r\n0\r\n\r\n",
            ),
        ] {
            let mut c = Client::connect(&p.fast);
            let closed = p.backend.closed.load(Ordering::SeqCst);
            c.send(
                format!(
                    "GET /then-close HTTP/1.1\r\nHost: shop.com\r\n\r\n\
                     PUT /echo?i={i} HTTP/1.1\r\nHost: shop.com\r\n{head}\r\n{first}"
                )
                .as_bytes(),
            );
            let a = c.read(false);
            assert!(a.status_line.ends_with("200 OK"), "{a:?}");
            // The rest of the body only once the backend has closed (a
            // fixed pause lost the race on a loaded machine: the backend
            // closed after the proxy had read the rest, and nothing can
            // be sent again then).
            p.backend.wait_closed(closed);
            std::thread::sleep(Duration::from_millis(5));
            c.send(rest.as_bytes());
            let a = c.read(false);
            assert!(a.status_line.ends_with("200 OK"), "{i} {head}: {a:?}");
            assert!(a.body.contains("body=10:abcdefghij"), "{a:?}");
        }
    }
}

/// An error answer sent while the client is still sending its body is
/// read in full by that client on both paths: the proxy closes its
/// sending side and discards the rest of the body for a while (a
/// lingering close, as nginx does) instead of closing at once, which
/// makes the client's kernel drop the answer on the reset that follows.
#[test]
fn an_error_answer_to_a_client_still_sending_is_read_in_full() {
    let p = pair();
    // Bodies sent in 64 KiB writes by a thread while the answer is read:
    // 502 for 1,000,000 bytes (under proxy-body-size's 1 MiB; nothing
    // listens for dead.com), 413 for a chunked body past proxy-body-size
    // (up to 32 MiB is sent).
    let cases = [
        (
            "POST /upload HTTP/1.1\r\nHost: dead.com\r\nContent-Length: 1000000\r\n\r\n",
            false,
            "HTTP/1.1 502 Bad Gateway",
            "could be reached",
        ),
        (
            "POST /upload HTTP/1.1\r\nHost: shop.com\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
            "HTTP/1.1 413 Payload Too Large",
            "proxy-body-size",
        ),
    ];
    for (proxy, m) in [(&p.fast, "fast"), (&p.slow, "slow")] {
        for (head, chunked, status, why) in cases {
            for round in 0..3 {
                let mut c = Client::connect(proxy);
                c.send(head.as_bytes());
                let mut w = c.w.try_clone().unwrap();
                let sender = std::thread::spawn(move || {
                    let block = if chunked {
                        format!("10000\r\n{}\r\n", "q".repeat(0x10000)).into_bytes()
                    } else {
                        vec![b'q'; 0x10000]
                    };
                    let total = if chunked { 32 << 20 } else { 1_000_000 };
                    let mut sent = 0usize;
                    while sent < total {
                        let n = block.len().min(total - sent);
                        if let Err(e) = w.write_all(&block[..n]) {
                            return Err(format!("after {sent} bytes: {e}"));
                        }
                        sent += n;
                    }
                    Ok(())
                });
                let a = c.read(false);
                assert_eq!(a.status_line, status, "{m} round {round}: {a:?}");
                assert!(a.body.contains(why), "{m} round {round}: {a:?}");
                // Sending the body never failed: the proxy did not reset
                // the connection under the client (on which clients such
                // as curl give up without reading the answer).
                let sent = sender.join().unwrap();
                assert_eq!(sent, Ok(()), "{m} round {round}: {status}");
                // The client stops; the proxy then closes.
                let mut rest = Vec::new();
                c.w.shutdown(std::net::Shutdown::Write).unwrap();
                assert_eq!(c.r.read_to_end(&mut rest).unwrap(), 0, "{m}");
            }
        }
    }
}

/// A response's transfer codings besides chunked still describe its body,
/// which the proxy passes on coded: both paths keep them, chunked last
/// (dropping them would hand the client gzip bytes it takes for text).
#[test]
fn transfer_codings_before_chunked_are_kept() {
    let p = pair();
    for proxy in [&p.fast, &p.slow] {
        for path in ["/gzip-chunked", "/gzip-close"] {
            let mut c = Client::connect(proxy);
            let a = c.exchange(&format!(
                "GET {path} HTTP/1.1\r\nHost: shop.com\r\nX-Case: te\r\n\r\n"
            ));
            assert!(
                a.headers
                    .contains(&("transfer-encoding".into(), "gzip, chunked".into())),
                "{path}: {a:?}"
            );
            assert!(a.body.contains("x-case: te"), "{path}: {a:?}");
        }
    }
}

/// A coding other than chunked cannot be passed on to an HTTP/1.0 client
/// (RFC 9112 §6.1: no Transfer-Encoding to one) nor an HTTP/2 one (no
/// transfer codings at all): it would take the gzip bytes for the body,
/// so both get 502, as nginx answers a coding it does not know. A plain
/// chunked answer still reaches them.
#[test]
fn transfer_codings_an_http10_or_http2_client_cannot_receive_are_a_502() {
    let p = pair();
    for proxy in [&p.fast, &p.slow] {
        for (path, want) in [
            ("/gzip-chunked", "502"),
            ("/gzip-close", "502"),
            ("/chunked", "200"),
        ] {
            let mut s = TcpStream::connect(proxy.local_addrs()[0]).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.0\r\nHost: shop.com\r\nX-Case: te10\r\n\r\n").as_bytes(),
            )
            .unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let got = String::from_utf8_lossy(&got);
            assert!(
                got.starts_with(&format!("HTTP/1.0 {want} ")),
                "{path}: {got}"
            );
            let head = got.split("\r\n\r\n").next().unwrap_or_default();
            assert!(
                !head.to_ascii_lowercase().contains("transfer-encoding"),
                "{path}: {got}"
            );
            if want == "502" {
                assert!(got.contains("gzip"), "{path}: {got}");
            }

            let (resolve, u) = url(proxy, "shop.com", path);
            let got = curl(&["--http2-prior-knowledge", "--resolve", &resolve, &u]);
            assert_eq!(
                (got.status.to_string(), got.version.as_str()),
                (want.to_string(), "2"),
                "{path}: {got:?}"
            );
        }
    }
}

/// A response without a body (to HEAD, a 204, a 304) that names a coding
/// besides chunked has nothing an HTTP/1.0 or HTTP/2 client could misread:
/// it is passed on (without Transfer-Encoding, which such a client may
/// not be sent), not answered 502.
#[test]
fn bodiless_answers_with_transfer_codings_reach_http10_and_http2_clients() {
    let p = pair();
    let mut bad = Vec::new();
    for (name, proxy) in [("fast", &p.fast), ("slow", &p.slow)] {
        for (method, path, want) in [
            ("HEAD", "/gzip-close", "200"),
            ("GET", "/gzip-204", "204"),
            ("GET", "/gzip-304", "304"),
        ] {
            let mut s = TcpStream::connect(proxy.local_addrs()[0]).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(
                format!("{method} {path} HTTP/1.0\r\nHost: shop.com\r\nX-Case: te-none\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let got = String::from_utf8_lossy(&got);
            let head = got.split("\r\n\r\n").next().unwrap_or_default();
            if !got.starts_with(&format!("HTTP/1.0 {want} "))
                || head.to_ascii_lowercase().contains("transfer-encoding")
            {
                bad.push(format!("{name} HTTP/1.0 {method} {path}: {got}"));
            }

            let (resolve, u) = url(proxy, "shop.com", path);
            let mut args = vec!["--http2-prior-knowledge", "--resolve", &resolve, &u];
            if method == "HEAD" {
                args.push("-I");
            }
            let got = curl(&args);
            if (got.status.to_string(), got.version.as_str()) != (want.to_string(), "2") {
                bad.push(format!("{name} HTTP/2 {method} {path}: {got:?}"));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
