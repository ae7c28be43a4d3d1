//! End-to-end tests of `k8snet node` (issue #9), as root: the demo shop
//! brought up in namespaces, probed with ordinary clients (curl, dig, nc)
//! inside pod namespaces and from the outside-client namespace, changed
//! under `--watch`, and taken down. All traffic stays between the
//! namespaces the stack made (address plan of design.md §5).
//!
//! The stack's namespace names are fixed (`k8snet-…`), so the tests of
//! this file run one at a time, each with its own state directory, and
//! refuse to start when a stack is already up on the machine.
#![cfg(feature = "linux")]

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8snet_testnet::Netns;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A stack brought up by a test; taken down on drop, also on failure.
struct Stack {
    state_dir: PathBuf,
    manifests: PathBuf,
}

impl Stack {
    fn up(manifests: &Path, extra: &[&str]) -> Self {
        let state_dir = PathBuf::from(format!("/run/k8snet-node-test-{}", std::process::id()));
        assert!(
            !Path::new("/run/netns/k8snet-fabric").exists(),
            "a k8snet node stack is already up on this machine; `k8snet node down` it first"
        );
        let stack = Self {
            state_dir,
            manifests: manifests.to_owned(),
        };
        let t = Instant::now();
        let out = stack.k8snet(&[&["node", "up", "-f", path(manifests)], extra].concat());
        assert!(out.status.success(), "node up failed:\n{}", text(&out));
        eprintln!("node up in {:.1?}", t.elapsed());
        stack
    }

    fn k8snet(&self, args: &[&str]) -> Output {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--state-dir", path(&self.state_dir)]);
        common::k8snet().args(&full).output().unwrap()
    }

    fn down(&self) -> Output {
        self.k8snet(&["node", "down"])
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.down();
        let _ = &self.manifests;
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command inside a namespace the stack made; (success, stdout).
fn exec(ns: &str, argv: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

fn curl(ns: &str, url: &str) -> Option<String> {
    curl_within(ns, url, "2")
}

/// Denials are timeouts: probing for one waits this long at most.
fn denied(ns: &str, url: &str) -> bool {
    curl_within(ns, url, "0.5").is_none()
}

fn curl_within(ns: &str, url: &str, seconds: &str) -> Option<String> {
    match exec(ns, &["curl", "-s", "-m", seconds, url]) {
        (true, body) => Some(body),
        _ => None,
    }
}

fn dig(ns: &str, args: &[&str]) -> String {
    let mut argv = vec!["dig", "+short", "+time=2", "+tries=1"];
    argv.extend_from_slice(args);
    exec(ns, &argv).1
}

/// Sends one UDP datagram from inside `ns` and returns the answer, if any.
fn udp(ns: &str, host: &str, port: u16) -> Option<String> {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("echo ping | ip netns exec {ns} nc -u -w1 {host} {port}"),
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo")
}

#[test]
fn the_demo_shop_works_end_to_end() {
    k8snet_testnet::kernel_test!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::up(&demo(), &[]);

    // Every component healthy on both nodes.
    let st = stack.k8snet(&["node", "status"]);
    let status = text(&st);
    assert!(st.status.success(), "{status}");
    assert!(
        status.contains(
            "node node-1: namespace ok, load balancer ok (healthz ok), network policy ok, DNS ok, ingress ok"
        ),
        "{status}"
    );
    assert!(
        status.contains(
            "node node-2: namespace ok, load balancer ok (healthz ok), network policy ok, DNS ok, ingress ok"
        ),
        "{status}"
    );
    assert!(
        status.contains("pods: 5 of 5 sandboxes present"),
        "{status}"
    );

    // resolv.conf as kubelet writes it.
    let resolv = std::fs::read_to_string("/etc/netns/k8snet-client-curl/resolv.conf").unwrap();
    assert_eq!(
        resolv,
        "search client.svc.cluster.local svc.cluster.local cluster.local\nnameserver 198.19.0.10\noptions ndots:5\n"
    );

    // A Service name resolves (search path) and reaches both backends,
    // one on each node, over 20 requests.
    let client = "k8snet-client-curl";
    assert_eq!(dig(client, &["+search", "web.shop"]), "198.19.0.20");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20 {
        let body = curl(client, "http://web.shop/").expect("web.shop answers");
        *seen.entry(body).or_default() += 1;
    }
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["web-0", "web-1"],
        "{seen:?}"
    );

    // Headless and SRV records.
    assert_eq!(dig(client, &["db.shop.svc.cluster.local"]), "198.18.0.3");
    assert_eq!(
        dig(client, &["db-0.db.shop.svc.cluster.local"]),
        "198.18.0.3"
    );
    assert_eq!(
        dig(client, &["SRV", "_http._tcp.web.shop.svc.cluster.local"]),
        "0 100 80 web.shop.svc.cluster.local."
    );
    let srv = dig(client, &["SRV", "_sql._tcp.db.shop.svc.cluster.local"]);
    assert!(
        srv.lines().count() >= 1
            && srv.lines().all(
                |l| l.starts_with("0 ") && l.ends_with(" 5432 db-0.db.shop.svc.cluster.local.")
            ),
        "{srv}"
    );

    // Policy: client may reach web only; web reaches api (TCP and UDP);
    // api reaches db; nothing else.
    assert_eq!(
        curl(client, "http://api.shop/"),
        None,
        "client -> api must be denied"
    );
    assert_eq!(
        udp(client, "198.19.0.30", 9001),
        None,
        "client -> api UDP must be denied"
    );
    assert_eq!(
        curl(client, "http://198.18.0.3:5432/"),
        None,
        "client -> db must be denied"
    );
    // web-1 is on node-2, api's only endpoint on node-1: cross-node Service.
    assert_eq!(
        curl("k8snet-shop-web-1", "http://api.shop/").as_deref(),
        Some("api-0")
    );
    assert_eq!(
        udp("k8snet-shop-web-0", "api.shop", 9001).as_deref(),
        Some("api-0")
    );
    assert_eq!(
        curl("k8snet-shop-api-0", "http://db.shop:5432/").as_deref(),
        Some("db-0")
    );
    assert_eq!(
        curl("k8snet-shop-web-0", "http://db.shop:5432/"),
        None,
        "web -> db must be denied"
    );
    // IPv6 between pods, allowed and denied alike.
    assert_eq!(
        curl("k8snet-shop-web-1", "http://[fd00:18::2]:9000/").as_deref(),
        Some("api-0")
    );
    assert_eq!(curl(client, "http://[fd00:18::2]:9000/"), None);

    // From outside: NodePort on either node, and the ingress by host and path.
    let outside = "k8snet-client";
    for node in ["198.19.128.1", "198.19.128.2"] {
        let body = curl(outside, &format!("http://{node}:30080/")).expect("NodePort answers");
        assert!(body == "web-0" || body == "web-1", "{body}");
    }
    let ingress = |node: &str, path: &str| {
        exec(
            outside,
            &[
                "curl",
                "-s",
                "-m",
                "2",
                "-H",
                "Host: shop.example",
                &format!("http://{node}{path}"),
            ],
        )
        .1
    };
    assert!(["web-0", "web-1"].contains(&ingress("198.19.128.2", "/").as_str()));
    // api-0 is on node-1: through node-2's proxy it crosses nodes, admitted
    // by the api policy's node-address ipBlock.
    assert_eq!(ingress("198.19.128.1", "/api/orders"), "api-0");
    assert_eq!(ingress("198.19.128.2", "/api/orders"), "api-0");
    // healthCheckNodePort of api-public (externalTrafficPolicy: Local):
    // 200 on the node with api's endpoint, 503 on the other; /healthz.
    let code = |url: &str| {
        exec(
            outside,
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-m",
                "2",
                url,
            ],
        )
        .1
    };
    assert_eq!(code("http://198.19.128.1:30490/"), "200");
    assert_eq!(code("http://198.19.128.2:30490/"), "503");
    assert!(
        exec(
            outside,
            &["curl", "-s", "-m", "2", "http://198.19.128.1:30490/"]
        )
        .1
        .contains("\"localEndpoints\": 1")
    );
    assert_eq!(code("http://198.19.128.2:10256/healthz"), "200");
    let not_found = exec(
        outside,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "2",
            "-H",
            "Host: other.example",
            "http://198.19.128.1/",
        ],
    );
    assert_eq!(not_found.1, "404");

    // Down leaves nothing behind, and a second down is fine.
    let out = stack.down();
    assert!(out.status.success(), "{}", text(&out));
    for ns in [
        "k8snet-fabric",
        "k8snet-client",
        "k8snet-node-1",
        "k8snet-node-2",
        "k8snet-shop-web-0",
        "k8snet-client-curl",
    ] {
        assert!(!Path::new("/run/netns").join(ns).exists(), "{ns} is left");
    }
    assert!(!Path::new("/etc/netns/k8snet-client-curl").exists());
    assert!(!stack.state_dir.exists());
    let again = stack.down();
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("nothing is up"));
}

/// Copies the demo into a fresh directory the test can change.
fn demo_copy(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("k8snet-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(demo().join("shop.yaml"), dir.join("shop.yaml")).unwrap();
    dir
}

/// Polls `f` until it is true or 2 s have passed; returns the time taken.
fn within_2s(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{what}: not applied within 2 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

#[test]
fn watch_applies_changes_and_keeps_allowed_connections() {
    k8snet_testnet::kernel_test!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = demo_copy("watch");
    let stack = Stack::up(&dir, &["--watch"]);
    let client = "k8snet-client-curl";

    // An established connection from the client to web-0 (allowed), on
    // which requests keep going across the changes below.
    let mut conn = Netns::named(client)
        .run(|| TcpStream::connect("198.18.0.4:8080"))
        .unwrap()
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let ask = |conn: &mut TcpStream| -> String {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(ask(&mut conn).ends_with("web-0\n"));

    // A new Service and its pod: in DNS and the load balancer within 2 s.
    std::fs::write(
        dir.join("cart.yaml"),
        "apiVersion: v1
kind: Pod
metadata: {name: cart-0, namespace: shop, labels: {app: cart}}
spec:
  nodeName: node-2
  containers: [{name: cart, ports: [{containerPort: 7000}]}]
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  clusterIP: 198.19.0.40
  ports: [{port: 80, targetPort: 7000}]
",
    )
    .unwrap();
    // (The client's own egress policy admits only web: ask from web-1.)
    let took = within_2s("new Service in DNS and reachable", || {
        dig(client, &["cart.shop.svc.cluster.local"]) == "198.19.0.40"
            && curl("k8snet-shop-web-1", "http://cart.shop/").as_deref() == Some("cart-0")
    });
    assert_eq!(
        curl(client, "http://198.19.0.40/"),
        None,
        "client egress admits only web"
    );
    eprintln!("new Service + pod applied and reachable in {took:.1?}");

    // A changed policy is enforced: web now admits nobody.
    let shop = std::fs::read_to_string(dir.join("shop.yaml")).unwrap();
    let closed = shop.replace(
        "    - namespaceSelector:\n        matchLabels: {kubernetes.io/metadata.name: client}\n    - ipBlock: {cidr: 198.19.0.0/16}\n",
        "    - ipBlock: {cidr: 198.19.0.0/16}\n",
    );
    assert_ne!(closed, shop, "the demo's web policy changed shape");
    std::fs::write(dir.join("shop.yaml"), &closed).unwrap();
    let took = within_2s("changed policy denies new connections", || {
        denied(client, "http://198.18.1.3:8080/")
    });
    eprintln!("policy change enforced in {took:.1?}");
    // The connection opened while it was allowed survives (conntrack).
    assert!(ask(&mut conn).ends_with("web-0\n"));

    // A removed pod is torn down, and its Service loses its endpoint.
    std::fs::remove_file(dir.join("cart.yaml")).unwrap();
    within_2s("removed pod torn down", || {
        !Path::new("/run/netns/k8snet-shop-cart-0").exists()
            && dig(client, &["cart.shop.svc.cluster.local"]).is_empty()
    });

    // Broken manifests change nothing.
    std::fs::write(dir.join("bad.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: shop}\nspec: {ports: [{port: 70000}]}\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        curl("k8snet-shop-web-0", "http://api.shop/").as_deref(),
        Some("api-0")
    );
    assert!(ask(&mut conn).ends_with("web-0\n"));

    let out = stack.down();
    assert!(out.status.success(), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dry_run_changes_nothing_and_serves_on_loopback() {
    // Needs no root: the plan is pure, the servers bind loopback ports.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let out = common::k8snet()
        .args(["node", "up", "--dry-run", "--no-serve", "-f", path(&demo())])
        .output()
        .unwrap();
    let plan = text(&out);
    assert!(out.status.success(), "{plan}");
    for want in [
        "node node-1 (namespace k8snet-node-1): eth0 198.19.128.1/24 fd00:19:1::1/64",
        "route 198.18.1.0/24 via 198.19.128.2 dev eth0",
        "pod shop/web-1 (namespace k8snet-shop-web-1): 198.18.1.3 fd00:18:0:1::3 serving 8080/tcp",
        "table inet k8snet-lb {",
        "198.19.0.20 . tcp . 80 : goto svc4-",
        "table inet k8snet-policy {",
        "## DNS zone cluster.local:",
        "## ingress: 1 Ingresses, 1 hosts",
    ] {
        assert!(plan.contains(want), "missing {want:?} in\n{plan}");
    }
    let after: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        before.iter().filter(|n| n.starts_with("k8snet-")).count(),
        after.iter().filter(|n| n.starts_with("k8snet-")).count(),
        "a dry run made namespaces"
    );

    // Without root, `up` is that same dry run, whatever the flags say.
    let exe = common::k8snet().get_program().to_owned();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args(args)
            .output()
    };
    let runnable = nix::unistd::geteuid().is_root()
        && as_nobody(&["--version"]).is_ok_and(|o| o.status.success());
    if !runnable {
        eprintln!(
            "skipping the non-root run: needs root to drop privileges, and {} executable by nobody",
            exe.to_string_lossy()
        );
    } else {
        let out = as_nobody(&["node", "up", "--no-serve", "-f", path(&demo())]).unwrap();
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert!(t.contains("not root: a dry run (no kernel changes)"), "{t}");
        assert!(t.contains("table inet k8snet-policy {"), "{t}");
    }

    // Served on loopback: DNS answers from the plan's zone.
    let mut child = common::k8snet()
        .args([
            "node",
            "up",
            "--dry-run",
            "-f",
            path(&demo()),
            "--dns-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut dns_addr = None;
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0 {
        if let Some(rest) = line.strip_prefix("serving DNS on ") {
            dns_addr = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
        line.clear();
    }
    let addr: std::net::SocketAddr = dns_addr
        .expect("the DNS address is printed")
        .parse()
        .unwrap();
    let answer = Command::new("dig")
        .args([
            "+short",
            "+time=2",
            "+tries=1",
            "-p",
            &addr.port().to_string(),
            "@127.0.0.1",
            "web.shop.svc.cluster.local",
        ])
        .output()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&answer.stdout).trim(),
        "198.19.0.20"
    );
    assert!(status.success());
}

#[test]
fn down_cleans_up_after_a_crashed_stack() {
    k8snet_testnet::kernel_test!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::up(&demo(), &[]);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stack.state_dir.join("state.json")).unwrap())
            .unwrap();
    let pid = i32::try_from(state["pid"].as_u64().unwrap()).unwrap();
    // The stack's process dies without cleaning up.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        Path::new("/run/netns/k8snet-node-1").exists(),
        "the crash left the namespaces"
    );
    let st = stack.k8snet(&["node", "status"]);
    assert_eq!(st.status.code(), Some(1), "{}", text(&st));
    assert!(text(&st).contains("NOT running"), "{}", text(&st));

    let out = stack.down();
    assert!(out.status.success(), "{}", text(&out));
    let left: Vec<String> = state["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .filter(|n| Path::new("/run/netns").join(n).exists())
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!Path::new("/etc/netns/k8snet-shop-web-0").exists());
    assert!(!stack.state_dir.exists());
}
