//! The health check servers over real HTTP on 127.0.0.1: the
//! `healthCheckNodePort` answers follow the plan as it changes (200 → 503
//! when the local endpoints go, the port closes when the Service goes) and
//! the proxy's `/healthz` and `/livez`.
#![cfg(feature = "health")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8snet_lb::health::{ProxyHealth, ProxyHealthServer, ServiceHealthServer};
use k8snet_lb::plan::HealthCheck;
use k8snet_lb::{NodeContext, ServiceTable, plan, plan_health_check};
use k8snet_model::{Cluster, Manifests, NsName};

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const TIMEOUT: Duration = Duration::from_secs(5);

/// A port free on 127.0.0.1 right now (the OS picks it).
fn free_port() -> u16 {
    TcpListener::bind((LOOPBACK, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP answer: status, headers (names as sent), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends one request on `conn` and reads one answer (by Content-Length).
fn exchange(conn: &mut BufReader<TcpStream>, method: &str, path: &str) -> Answer {
    write!(
        conn.get_mut(),
        "{method} {path} HTTP/1.1\r\nHost: health\r\nUser-Agent: test\r\n\r\n"
    )
    .unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {line:?}"));
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(": ").unwrap();
        headers.insert(k.to_string(), v.to_string());
    }
    let len: usize = if method == "HEAD" {
        0
    } else {
        headers["Content-Length"].parse().unwrap()
    };
    let mut body = vec![0; len];
    conn.read_exact(&mut body).unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn connect(port: u16) -> std::io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect_timeout(&SocketAddr::new(LOOPBACK, port), TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    Ok(BufReader::new(s))
}

fn get(port: u16, path: &str) -> Answer {
    exchange(&mut connect(port).unwrap(), "GET", path)
}

/// A LoadBalancer `shop/web` with `externalTrafficPolicy: Local` and
/// health check port `hc`, with endpoints `(ip, node)`.
fn manifests(hc: u16, eps: &[(&str, &str)]) -> String {
    let eps: Vec<String> = eps
        .iter()
        .map(|(ip, node)| format!("{{addresses: [{ip}], nodeName: {node}}}"))
        .collect();
    format!(
        "apiVersion: v1
kind: Node
metadata: {{name: node-a}}
status: {{addresses: [{{type: InternalIP, address: 198.19.128.1}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec:
  type: LoadBalancer
  clusterIP: 198.19.0.20
  externalTrafficPolicy: Local
  healthCheckNodePort: {hc}
  ports: [{{name: http, port: 80, targetPort: 8080, nodePort: 30080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-a, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
endpoints: [{}]
ports: [{{name: http, port: 8080}}]
",
        eps.join(", ")
    )
}

fn cluster(yaml: &str) -> Cluster {
    let mut m = Manifests::new();
    m.load_str("test.yaml", yaml);
    let errors: Vec<String> = m.errors().iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    Cluster::from_manifests(&m)
}

fn plan_of(yaml: &str) -> ServiceTable {
    plan(&cluster(yaml), &NodeContext::new("node-a"))
}

fn server() -> ServiceHealthServer {
    ServiceHealthServer::new(vec![LOOPBACK], Arc::new(ProxyHealth::default())).unwrap()
}

#[test]
fn the_health_check_port_answers_as_kube_proxy() {
    let hc = free_port();
    let s = server();
    let table = plan_of(&manifests(
        hc,
        &[
            ("198.18.0.2", "node-a"),
            ("198.18.0.3", "node-a"),
            ("198.18.1.2", "node-b"),
        ],
    ));
    assert!(s.sync_table(&table).is_empty());
    assert_eq!(
        s.local_addrs("shop", "web"),
        [SocketAddr::new(LOOPBACK, hc)]
    );
    let a = get(hc, "/");
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["Content-Type"], "application/json");
    assert_eq!(a.headers["X-Content-Type-Options"], "nosniff");
    assert_eq!(a.headers["X-Load-Balancing-Endpoint-Weight"], "2");
    assert_eq!(
        a.body,
        "{\n\t\"service\": {\n\t\t\"namespace\": \"shop\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
    );
    // Any path and method, as kube-proxy's handler.
    let mut c = connect(hc).unwrap();
    assert_eq!(exchange(&mut c, "GET", "/healthz").status, 200);
    let head = exchange(&mut c, "HEAD", "/anything");
    assert_eq!(
        (head.status, head.body.as_str()),
        (200, ""),
        "{:?}",
        head.headers
    );
}

#[test]
fn the_answer_turns_503_when_local_endpoints_go_and_back() {
    let hc = free_port();
    let s = server();
    let with = manifests(hc, &[("198.18.0.2", "node-a"), ("198.18.1.2", "node-b")]);
    assert!(s.sync_table(&plan_of(&with)).is_empty());
    // One kept-alive connection sees every change in place.
    let mut conn = connect(hc).unwrap();
    assert_eq!(exchange(&mut conn, "GET", "/").status, 200);

    let without = manifests(hc, &[("198.18.1.2", "node-b")]);
    assert!(s.sync_table(&plan_of(&without)).is_empty());
    let a = exchange(&mut conn, "GET", "/");
    assert_eq!(a.status, 503);
    assert_eq!(a.headers["X-Load-Balancing-Endpoint-Weight"], "0");
    assert!(a.body.contains("\"localEndpoints\": 0,"), "{}", a.body);
    assert_eq!(s.local_addrs("shop", "web").len(), 1, "the port stays open");

    // Incremental: one Service's check from its own plan.
    let c = cluster(&with);
    let check = plan_health_check(&c, &NodeContext::new("node-a"), &NsName::new("shop", "web"));
    s.update_service("shop", "web", check.as_ref()).unwrap();
    let a = exchange(&mut conn, "GET", "/");
    assert_eq!(
        (
            a.status,
            a.headers["X-Load-Balancing-Endpoint-Weight"].as_str()
        ),
        (200, "1")
    );
}

#[test]
fn an_unhealthy_proxy_answers_503_despite_local_endpoints() {
    let hc = free_port();
    let health = Arc::new(ProxyHealth::new(Duration::from_secs(60)));
    let s = ServiceHealthServer::new(vec![LOOPBACK], health.clone()).unwrap();
    let table = plan_of(&manifests(hc, &[("198.18.0.2", "node-a")]));
    assert!(s.sync_table(&table).is_empty());
    assert_eq!(get(hc, "/").status, 200);
    // Applied an hour ago, and an update has waited since: late.
    let now = SystemTime::now();
    health.updated_at(now - Duration::from_secs(3600));
    health.queued_update_at(now - Duration::from_secs(3000));
    let a = get(hc, "/");
    assert_eq!(a.status, 503);
    assert_eq!(a.headers["X-Load-Balancing-Endpoint-Weight"], "1");
    assert!(
        a.body.ends_with("\"serviceProxyHealthy\": false\n}"),
        "{}",
        a.body
    );
    health.updated();
    assert_eq!(get(hc, "/").status, 200);
}

#[test]
fn the_port_closes_when_the_service_goes_and_moves_with_it() {
    let hc = free_port();
    let s = server();
    let table = plan_of(&manifests(hc, &[("198.18.0.2", "node-a")]));
    assert!(s.sync_table(&table).is_empty());
    let mut open_conn = connect(hc).unwrap();
    assert_eq!(exchange(&mut open_conn, "GET", "/").status, 200);

    // The Service goes: the port and its open connections close.
    assert!(s.sync(&[]).is_empty());
    let e = connect(hc).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    write!(open_conn.get_mut(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok();
    let mut rest = String::new();
    assert_eq!(
        open_conn.read_to_string(&mut rest).unwrap_or(0),
        0,
        "{rest}"
    );
    assert!(s.ports().is_empty());

    // Back on another port: only that one is open.
    let hc2 = free_port();
    let mut check = table.health_checks[0].clone();
    check.node_port = hc2;
    s.update_service("shop", "web", Some(&check)).unwrap();
    assert_eq!(get(hc2, "/").status, 200);
    check.node_port = hc;
    s.update_service("shop", "web", Some(&check)).unwrap();
    assert_eq!(get(hc, "/").status, 200);
    assert_eq!(
        connect(hc2).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    s.update_service("shop", "web", None).unwrap();
    assert_eq!(
        connect(hc).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}

#[test]
fn a_port_in_use_is_reported_with_the_service_and_retried() {
    let blocker = TcpListener::bind((LOOPBACK, 0)).unwrap();
    let hc = blocker.local_addr().unwrap().port();
    let s = server();
    let table = plan_of(&manifests(hc, &[("198.18.0.2", "node-a")]));
    let errors = s.sync_table(&table);
    assert_eq!(errors.len(), 1);
    let e = errors[0].to_string();
    assert!(
        e.starts_with(&format!(
            "Service shop/web: spec.healthCheckNodePort: listen on 127.0.0.1:{hc}: "
        )),
        "{e}"
    );
    assert!(s.ports().is_empty());
    drop(blocker);
    assert!(s.sync_table(&table).is_empty(), "retried at the next sync");
    assert_eq!(get(hc, "/").status, 200);
}

#[test]
fn two_services_with_one_port_keep_the_first() {
    let hc = free_port();
    let s = server();
    let check = |name: &str, n| HealthCheck {
        namespace: "shop".into(),
        name: name.into(),
        node_port: hc,
        local_endpoints: n,
    };
    let errors = s.sync(&[check("web", 1), check("api", 2)]);
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [format!(
            "Service shop/web: spec.healthCheckNodePort: port {hc} is already the health check port of Service shop/api"
        )]
    );
    let a = get(hc, "/");
    assert!(a.body.contains("\"name\": \"api\""), "{}", a.body);
    let e = s
        .update_service("shop", "web", Some(&check("web", 1)))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("already the health check port of Service shop/api"),
        "{e}"
    );
    assert_eq!(s.ports(), [(NsName::new("shop", "api"), hc)]);
}

#[test]
fn healthz_and_livez_answer_as_kube_proxy() {
    let health = Arc::new(ProxyHealth::default());
    let srv = ProxyHealthServer::start(SocketAddr::new(LOOPBACK, 0), health.clone()).unwrap();
    let port = srv.local_addr().unwrap().port();
    let a = get(port, "/healthz");
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["Content-Type"], "application/json");
    assert!(a.body.starts_with("{\"lastUpdated\": \""), "{}", a.body);
    assert!(
        a.body.ends_with("\", \"nodeEligible\": true}"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains(" +0000 UTC\",\"currentTime\": \""),
        "{}",
        a.body
    );
    assert_eq!(get(port, "/livez").status, 200);
    let nf = get(port, "/metrics");
    assert_eq!((nf.status, nf.body.as_str()), (404, "404 page not found\n"));

    health.set_node_eligible(false);
    let a = get(port, "/healthz");
    assert_eq!(a.status, 503);
    assert!(a.body.ends_with("\"nodeEligible\": false}"), "{}", a.body);
    assert_eq!(get(port, "/livez").status, 200, "livez ignores the node");

    drop(srv);
    assert_eq!(
        connect(port).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}
