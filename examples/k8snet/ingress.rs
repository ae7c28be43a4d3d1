//! `k8snet ingress route -f … --host H --path P [--class C] [--sni S]` and
//! `k8snet ingress serve -f … --listen ADDR:PORT [--tls-listen ADDR:PORT]
//! [--default-ssl-certificate NS/NAME | --no-default-certificate]
//! [--max-connections N] [--max-connections-per-client N]`.

use std::net::SocketAddr;
use std::process::ExitCode;

use k8snet::ingress::{Backend, ClassSelector, PortRef, Router};
use k8snet::model::{Cluster, LoadOptions, LocalEndpoints, Manifests};
use serde_json::{Value, json};

use crate::Inputs;

/// Arguments of `ingress`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The route a request takes, as JSON.
    Route(RouteArgs),
    /// Serve the Ingresses: an HTTP(S) proxy until SIGINT/SIGTERM (SIGHUP reloads).
    Serve(ServeArgs),
}

/// Which Ingresses are served.
#[derive(Debug, clap::Args)]
struct ClassArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// The IngressClass to serve (default: the cluster's default class, or
    /// the Ingresses without a class when there is none).
    #[arg(long)]
    class: Option<String>,
}

impl ClassArgs {
    fn selector(&self) -> ClassSelector {
        self.class
            .as_deref()
            .map_or_else(ClassSelector::default_class, ClassSelector::named)
    }
}

#[derive(Debug, clap::Args)]
struct RouteArgs {
    #[command(flatten)]
    class: ClassArgs,
    /// The request's Host header (a port is ignored).
    #[arg(long)]
    host: String,
    /// The request's path (a query is ignored).
    #[arg(long)]
    path: String,
    /// The TLS server name: also print the certificate it selects.
    #[arg(long)]
    sni: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    class: ClassArgs,
    /// Address for plain HTTP (HTTP/1.1 and h2c); repeatable.
    #[arg(long, required = true)]
    listen: Vec<SocketAddr>,
    /// Address for HTTPS (certificates from the Ingresses' TLS Secrets); repeatable.
    #[arg(long)]
    tls_listen: Vec<SocketAddr>,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// The certificate for HTTPS clients whose SNI name matches no
    /// Ingress's Secret (or who send none): a `kubernetes.io/tls` Secret of
    /// the manifests, as ingress-nginx's `--default-ssl-certificate`. Read
    /// at start. Without it, a self-signed certificate is generated.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    default_ssl_certificate: Option<String>,
    /// No default certificate: a handshake that matches no Secret fails.
    #[arg(long, conflicts_with = "default_ssl_certificate")]
    no_default_certificate: bool,
    /// Connections open at once from one client address; the ones beyond
    /// it get 503 (default: no per-client limit).
    #[arg(long, value_name = "N")]
    max_connections_per_client: Option<std::num::NonZeroUsize>,
    /// Connections open at once in all (default: 16384).
    #[arg(long, value_name = "N")]
    max_connections: Option<std::num::NonZeroUsize>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Route(r) => route(r),
        Command::Serve(s) => serve(s),
    }
}

fn route(args: &RouteArgs) -> anyhow::Result<ExitCode> {
    let router = Router::compile(&serving_cluster(&args.class.inputs), &args.class.selector());
    report_router(&router);
    let path = args.path.split(['?', '#']).next().unwrap_or("/");
    // As the proxy does: normalized, and as spelled for rules written
    // with an encoded separator.
    let mut out = match router.route_request(&args.host, path) {
        Some(r) => json!({ "backend": backend_json(r.backend()) }),
        None => json!({ "backend": null, "status": 404 }),
    };
    if let Some(sni) = &args.sni {
        out["certificate"] = router
            .certificate(sni)
            .map_or(Value::Null, |c| c.secret().to_string().into());
    }
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn backend_json(b: &Backend) -> Value {
    match b {
        Backend::Service(s) => {
            let port = match &s.port {
                PortRef::Number(n) => json!(n),
                PortRef::Name(n) => json!(n),
                other => json!(other.to_string()),
            };
            json!({ "namespace": s.namespace, "service": s.name, "port": port })
        }
        Backend::Resource(r) => {
            let mut res = json!({ "namespace": r.namespace, "kind": r.kind, "name": r.name });
            if let Some(g) = &r.api_group {
                res["apiGroup"] = json!(g);
            }
            json!({ "resource": res })
        }
        other => json!({ "unknown": other.to_string() }),
    }
}

/// Manifest problems go to stderr; invalid objects are left out.
fn report_manifests(m: &Manifests) {
    for w in m.warnings() {
        eprintln!("warning: {w}");
    }
    for e in m.errors() {
        eprintln!("error: {e} (left out)");
    }
}

fn report_router(router: &Router) {
    for r in router.reports() {
        eprintln!("warning: {r}");
    }
}

/// The cluster to serve, or to look a route up in (`route` shows what
/// `serve` would do): the valid objects, with loopback and link-local
/// endpoint addresses accepted and reported as warnings, since that is how
/// a first local run points at local backends (design.md §3); `validate`
/// still reports them as errors.
fn serving_cluster(inputs: &Inputs) -> Cluster {
    let m = serving_manifests(inputs);
    report_manifests(&m);
    Cluster::from_manifests(&m)
}

/// The manifests as `serve` and `route` load them (see [`serving_cluster`]).
fn serving_manifests(inputs: &Inputs) -> Manifests {
    let mut m = Manifests::with_options(LoadOptions::new().local_endpoints(LocalEndpoints::Warn));
    for f in &inputs.files {
        m.load_path(f);
    }
    m
}

/// `serve`'s load, at start and at each reload (SIGHUP): the files are
/// read again and applied onto what is served ([`Served::reload`]). An
/// object that an edit made invalid keeps its previous version, as the
/// apiserver would refuse the update and keep the stored object; objects
/// gone from the files are deleted. Warnings and errors go to stderr.
#[cfg(feature = "linux")]
fn reload(served: &mut k8snet::ingress::Served, inputs: &Inputs) -> Cluster {
    let m = serving_manifests(inputs);
    for w in m.warnings() {
        eprintln!("warning: {w}");
    }
    for e in served.reload(&m) {
        eprintln!("error: {e}");
    }
    served.cluster()
}

#[cfg(feature = "linux")]
fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    use k8snet::dns::server::{SignalKind, Signals};
    use k8snet::ingress::proxy::{Proxy, ProxyConfig, Upstreams};

    // Before any thread starts, so that every thread inherits the mask.
    let signals = Signals::block()?;
    let mut served = k8snet::ingress::Served::new();
    let mut build = || {
        let cluster = reload(&mut served, &args.class.inputs);
        let router = Router::compile(&cluster, &args.class.selector());
        report_router(&router);
        let upstreams = Upstreams::build(&cluster, &router);
        for w in upstreams.warnings() {
            eprintln!("warning: {w}");
        }
        let s = router.stats();
        eprintln!(
            "routes: {} Ingresses, {} hosts, {} rules, {} certificates",
            s.ingresses, s.hosts, s.rules, s.certificates
        );
        (router, upstreams)
    };
    let default_certificate = default_certificate(args)?;
    let (router, upstreams) = build();
    let mut cfg = ProxyConfig::new(args.listen.clone())
        .tls_listen(args.tls_listen.clone())
        .default_certificate(default_certificate)
        .max_connections_per_client(args.max_connections_per_client);
    if let Some(w) = args.workers {
        cfg.workers = w;
    }
    if let Some(max) = args.max_connections {
        cfg.max_connections = Some(max);
    }
    let proxy = Proxy::start(cfg, router, upstreams)?;
    for a in proxy.local_addrs() {
        eprintln!("listening on {a} (http)");
    }
    for a in proxy.tls_local_addrs() {
        eprintln!("listening on {a} (https)");
    }
    // SIGHUP reloads; SIGTERM and SIGINT stop.
    while signals.wait()? == SignalKind::Hangup {
        let (router, upstreams) = build();
        proxy.update(router, upstreams);
        eprintln!("reloaded");
    }
    eprintln!("shutting down");
    proxy.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// The `--default-ssl-certificate` Secret, `--no-default-certificate`, or
/// the generated certificate.
#[cfg(feature = "linux")]
fn default_certificate(
    args: &ServeArgs,
) -> anyhow::Result<k8snet::ingress::proxy::DefaultCertificate> {
    use k8snet::ingress::Certificate;
    use k8snet::ingress::proxy::DefaultCertificate;
    use k8snet::model::NsName;

    if args.no_default_certificate {
        return Ok(DefaultCertificate::Disabled);
    }
    let Some(given) = &args.default_ssl_certificate else {
        return Ok(DefaultCertificate::Generated);
    };
    let Some((namespace, name)) = given
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
    else {
        anyhow::bail!("--default-ssl-certificate {given:?}: expected NAMESPACE/NAME");
    };
    let key = NsName::new(namespace, name);
    let cluster = serving_cluster(&args.class.inputs);
    let secret = cluster.secret(&key).ok_or_else(|| {
        anyhow::anyhow!("--default-ssl-certificate: Secret {given} is not in the manifests")
    })?;
    let cert = Certificate::from_secret(secret)
        .map_err(|e| anyhow::anyhow!("--default-ssl-certificate: Secret {given}: {e}"))?;
    Ok(DefaultCertificate::Given(cert))
}

#[cfg(not(feature = "linux"))]
fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    // Still load, so that manifest problems are reported.
    let _ = (
        serving_cluster(&args.class.inputs),
        &args.listen,
        &args.tls_listen,
        &args.workers,
        &args.default_ssl_certificate,
        &args.no_default_certificate,
        &args.max_connections_per_client,
        &args.max_connections,
    );
    anyhow::bail!("`ingress serve` needs the `linux` feature (cargo run --features linux …)")
}
