//! Test backends on 127.0.0.x, clusters pointing at them, the proxy, curl.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use k8snet_ingress::proxy::{Proxy, ProxyConfig, Upstreams};
use k8snet_ingress::{ClassSelector, Router};
use k8snet_model::{
    AddressType, Cluster, Endpoint, EndpointPort, EndpointSlice, Manifests, Object, ObjectMeta,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test backend: answers every request with a description of it (see
/// [`Seen`]), and:
/// - `/sleep/<ms>…` waits that long first;
/// - `/big…` answers 1 MiB;
/// - an `Upgrade` request is switched and then echoed byte for byte;
/// - `content-type: application/grpc` is answered with trailers.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

impl Backend {
    pub fn start(name: &str, ip: &str) -> Self {
        Self::start_with(name, ip, None)
    }

    /// A backend speaking TLS with a certificate for `ip`.
    pub fn start_tls(name: &str, ip: &str) -> Self {
        let ca = TestCa::new();
        let (crt, key) = ca.leaf(ip);
        let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(crt.as_bytes())
            .collect::<Result<Vec<rustls::pki_types::CertificateDer<'static>>, _>>()
            .unwrap();
        let key = rustls::pki_types::pem::PemObject::from_pem_slice(key.as_bytes()).unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::start_with(
            name,
            ip,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))),
        )
    }

    fn start_with(name: &str, ip: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind((
                ip.parse::<IpAddr>().unwrap(),
                0,
            )))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (n, c, r) = (
            Arc::<str>::from(name),
            connections.clone(),
            requests.clone(),
        );
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (n, r, tls) = (n.clone(), r.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| answer(n.clone(), r.clone(), req));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection_with_upgrades(TokioIo::new(s), svc)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            name: name.to_string(),
            addr,
            connections,
            requests,
            _rt: rt,
        }
    }

    /// The request targets seen so far.
    pub fn seen(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn answer(
    name: Arc<str>,
    seen: Arc<Mutex<Vec<String>>>,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    seen.lock().unwrap().push(req.uri().to_string());
    let path = req.uri().path().to_string();
    if let Some(ms) = path
        .strip_prefix("/sleep/")
        .and_then(|s| s.split('/').next()?.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if req.headers().contains_key(hyper::header::UPGRADE) {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(up) = upgrade.await else { return };
            let mut io = TokioIo::new(up);
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "upgrade")
            .body(TestBody::new(Bytes::new(), None))
            .unwrap();
        return Ok(resp);
    }
    let mut text = format!(
        "backend={name}\nmethod={}\nuri={}\nversion={:?}\n",
        req.method(),
        req.uri(),
        req.version()
    );
    for (k, v) in req.headers() {
        text.push_str(&format!("h:{k}={}\n", v.to_str().unwrap_or("?")));
    }
    let grpc = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    text.push_str(&format!("body={}\n", body.len()));
    let bytes = if path.starts_with("/big") {
        Bytes::from(vec![b'x'; 1 << 20])
    } else {
        Bytes::from(text)
    };
    let trailers = grpc.then(|| {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", "0".parse().unwrap());
        t.insert("grpc-message", format!("from-{name}").parse().unwrap());
        t
    });
    let mut resp = Response::new(TestBody::new(bytes, trailers));
    if grpc {
        resp.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
    }
    Ok(resp)
}

/// A body of one data frame and, optionally, trailers.
pub struct TestBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl TestBody {
    pub fn new(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            data: Some(data).filter(|d| !d.is_empty()),
            trailers,
        }
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

/// A CA for test certificates (rcgen).
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "k8snet test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        Self { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// (certificate PEM, key PEM) for a name (or an IP).
    pub fn leaf(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA certificate to a file for `curl --cacert`.
    pub fn write(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let p = dir.join(format!("ca-{}.pem", unique()));
        std::fs::write(&p, self.pem()).unwrap();
        p
    }
}

pub fn unique() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::process::id() as usize * 1000 + N.fetch_add(1, Ordering::SeqCst)
}

/// A Service `name` in `ns` with one port `http` (80 → `port` named
/// http) and one EndpointSlice listing `backends` — loopback addresses,
/// which validation would refuse; `Cluster::from_objects` takes them.
pub fn service(
    ns: &str,
    name: &str,
    backends: &[SocketAddr],
    app_protocol: Option<&str>,
) -> Vec<Object> {
    let app = app_protocol.map_or(String::new(), |a| format!(", appProtocol: {a}"));
    let mut objects = load(&format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{ports: [{{name: http, port: 80, targetPort: http{app}}}]}}\n"
    ));
    // Test backends listen on ports of their own, so each gets a slice.
    for (i, addr) in backends.iter().enumerate() {
        let mut meta = ObjectMeta::namespaced(ns, format!("{name}-{i}"));
        meta.labels
            .insert("kubernetes.io/service-name".into(), name.into());
        objects.push(Object::EndpointSlice(EndpointSlice {
            metadata: meta,
            address_type: AddressType::IPv4,
            endpoints: vec![Endpoint {
                addresses: vec![addr.ip().to_string()],
                ..Endpoint::default()
            }],
            ports: vec![EndpointPort {
                name: Some("http".into()),
                port: Some(i32::from(addr.port())),
                app_protocol: app_protocol.map(String::from),
                ..EndpointPort::default()
            }],
        }));
    }
    objects
}

/// Valid objects from YAML.
pub fn load(yaml: &str) -> Vec<Object> {
    let mut m = Manifests::new();
    m.load_str("test.yaml", yaml);
    assert!(m.errors().is_empty(), "{:#?}", m.errors());
    m.into_objects()
}

pub fn tables(objects: Vec<Object>) -> (Router, Upstreams) {
    let cluster = Cluster::from_objects(objects);
    let router = Router::compile(&cluster, &ClassSelector::default_class());
    let upstreams = Upstreams::build(&cluster, &router);
    (router, upstreams)
}

/// The proxy on 127.0.0.1 (ports chosen by the OS), TLS too if `tls`.
pub fn proxy(objects: Vec<Object>, tls: bool) -> Proxy {
    proxy_with(objects, tls, |_| {})
}

/// [`proxy`], with the configuration changed by `adjust` last.
pub fn proxy_with(objects: Vec<Object>, tls: bool, adjust: impl FnOnce(&mut ProxyConfig)) -> Proxy {
    let (router, upstreams) = tables(objects);
    let mut cfg = ProxyConfig::new(vec!["127.0.0.1:0".parse().unwrap()]);
    if tls {
        cfg = cfg.tls_listen(vec!["127.0.0.1:0".parse().unwrap()]);
    }
    cfg.workers = 2;
    cfg.header_read_timeout = Duration::from_secs(2);
    adjust(&mut cfg);
    Proxy::start(cfg, router, upstreams).unwrap()
}

/// What curl got.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub version: String,
    pub headers: String,
    pub body: String,
}

impl Got {
    /// A `key=value` line of a backend's answer.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }

    pub fn backend(&self) -> &str {
        self.field("backend").unwrap_or("-")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Runs curl with `args` (the URL among them) and parses what it got.
pub fn curl(args: &[&str]) -> Got {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (status, version) = tail.split_once(' ').unwrap_or((tail, ""));
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    Got {
        status: status.parse().unwrap_or(0),
        version: version.to_string(),
        headers: headers.to_string(),
        body: body.to_string(),
    }
}

/// `http://host:port/path` to the proxy's plain listener, with
/// `--resolve` so curl sends the Host (and SNI) it would for that name.
pub fn url(proxy: &Proxy, host: &str, path: &str) -> (String, String) {
    let port = proxy.local_addrs()[0].port();
    (
        format!("{host}:{port}:127.0.0.1"),
        format!("http://{host}:{port}{path}"),
    )
}

pub fn get(proxy: &Proxy, host: &str, path: &str) -> Got {
    let (resolve, url) = url(proxy, host, path);
    curl(&["--resolve", &resolve, &url])
}

/// An address nothing listens on (connections are refused).
pub fn dead_addr(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

/// An Ingress document; `annotations` is a YAML flow mapping body.
pub fn ingress(name: &str, annotations: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: web, annotations: {{{annotations}}}}}\nspec:\n{spec}\n"
    )
}

/// A rule for `host` sending `/` (Prefix) to Service `svc` port 80.
pub fn simple_rule(host: &str, svc: &str) -> String {
    format!(
        "  rules:\n  - host: {host}\n    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: {svc}, port: {{number: 80}}}}}}}}]}}"
    )
}

/// A TLS client's certificate verifier for tests: accepts any server
/// certificate (handshake signatures are still checked) and records the
/// end-entity certificate it was shown in `seen`.
#[derive(Debug)]
pub struct AcceptAnyCert {
    /// The last end-entity certificate (DER).
    pub seen: Arc<Mutex<Vec<u8>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl AcceptAnyCert {
    pub fn new(provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        Self {
            seen: Arc::default(),
            provider,
        }
    }
}

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = end_entity.to_vec();
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(m, c, d, algs)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(m, c, d, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
