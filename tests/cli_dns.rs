//! `k8snet dns query` and `k8snet dns serve`: the command-line contract of
//! design.md §3, including loopback endpoints, which `validate` reports as
//! the apiserver would while the DNS commands accept them with a warning.
//!
//! The served tests talk to the server on 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::k8snet;

/// A fresh directory holding `files` (name, text).
fn manifests(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("k8snet-cli-dns-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

/// A ClusterIP Service with a named port, and a headless Service with two
/// ready endpoints (with hostnames) and one that is not ready.
const SHOP: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 198.19.0.20
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [198.18.0.2]}]
ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
endpoints:
- {addresses: [198.18.0.5], hostname: db-0}
- {addresses: [198.18.0.6], hostname: db-1}
- {addresses: [198.18.0.7], hostname: db-2, conditions: {ready: false}}
ports: [{name: pg, port: 5432, protocol: TCP}]
";

/// A headless Service whose endpoint is on loopback (a first local run),
/// starting on line 1, its slice on line 8; and one whose slice has a
/// loopback address *and* an invalid port (line 22), which stays refused.
const LOCAL: &str = "apiVersion: v1
kind: Service
metadata: {name: local, namespace: dev}
spec:
  clusterIP: None
  ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: local-1, namespace: dev, labels: {kubernetes.io/service-name: local}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.1]}]
ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: dev}
spec:
  clusterIP: None
  ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: broken-1, namespace: dev, labels: {kubernetes.io/service-name: broken}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.2]}]
ports: [{name: http, port: 99999, protocol: TCP}]
";

/// The warning `dns` prints for the loopback endpoint of [`LOCAL`].
fn local_warning(dir: &Path) -> String {
    format!(
        "warning: {}:8: EndpointSlice dev/local-1: endpoints[0].addresses[0]: 127.0.0.1 is a loopback address (accepted for local serving)",
        dir.join("local.yaml").display()
    )
}

/// What `dns query` printed: the status, and the records of each section.
#[derive(Debug, Default)]
struct Answer {
    status: String,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

fn parse(stdout: &str) -> Answer {
    let mut a = Answer::default();
    let mut section: Option<&mut Vec<String>> = None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix(";; ->>HEADER<<- ") {
            a.status = rest
                .split(", ")
                .find_map(|f| f.strip_prefix("status: "))
                .unwrap_or_default()
                .to_string();
            continue;
        }
        section = match line {
            ";; ANSWER SECTION:" => Some(&mut a.answer),
            ";; AUTHORITY SECTION:" => Some(&mut a.authority),
            ";; ADDITIONAL SECTION:" => Some(&mut a.additional),
            "" => None,
            _ => {
                if let Some(s) = section.as_deref_mut()
                    && !line.starts_with(';')
                {
                    s.push(line.to_string());
                }
                section
            }
        };
    }
    a
}

fn query(dir: &Path, args: &[&str]) -> (Output, Answer) {
    let out = k8snet()
        .args(["dns", "query", "-f"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    let answer = parse(&String::from_utf8_lossy(&out.stdout));
    (out, answer)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn query_answers_a_srv_headless_and_nxdomain_like_dig() {
    let dir = manifests("query", &[("shop.yaml", SHOP)]);
    let rec = |owner: &str, ty: &str, data: &str| format!("{owner}.\t5\tIN\t{ty}\t{data}");

    // A ClusterIP Service: its ClusterIP.
    let (out, a) = query(&dir, &["web.shop.svc.cluster.local"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(a.status, "NOERROR");
    assert_eq!(
        a.answer,
        [rec("web.shop.svc.cluster.local", "A", "198.19.0.20")]
    );

    // SRV of a named port: the Service port, the target's A as additional.
    let (out, a) = query(&dir, &["_http._tcp.web.shop.svc.cluster.local", "SRV"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(a.status, "NOERROR");
    assert_eq!(
        a.answer,
        [rec(
            "_http._tcp.web.shop.svc.cluster.local",
            "SRV",
            "0 100 80 web.shop.svc.cluster.local."
        )]
    );
    assert_eq!(
        a.additional,
        [rec("web.shop.svc.cluster.local", "A", "198.19.0.20")]
    );

    // A headless Service: one A per ready endpoint (not 198.18.0.7).
    let (out, a) = query(&dir, &["db.shop.svc.cluster.local", "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(a.status, "NOERROR");
    assert_eq!(
        a.answer,
        [
            rec("db.shop.svc.cluster.local", "A", "198.18.0.5"),
            rec("db.shop.svc.cluster.local", "A", "198.18.0.6"),
        ]
    );
    // ... its SRV targets the endpoints' hostnames, on the endpoint port.
    let (_, a) = query(&dir, &["_pg._tcp.db.shop.svc.cluster.local", "SRV"]);
    assert_eq!(
        a.answer,
        [
            rec(
                "_pg._tcp.db.shop.svc.cluster.local",
                "SRV",
                "0 50 5432 db-0.db.shop.svc.cluster.local."
            ),
            rec(
                "_pg._tcp.db.shop.svc.cluster.local",
                "SRV",
                "0 50 5432 db-1.db.shop.svc.cluster.local."
            ),
        ]
    );
    // ... and each hostname has its own record.
    let (_, a) = query(&dir, &["db-1.db.shop.svc.cluster.local"]);
    assert_eq!(
        a.answer,
        [rec("db-1.db.shop.svc.cluster.local", "A", "198.18.0.6")]
    );

    // An unknown name: NXDOMAIN with the zone's SOA, still exit 0.
    let (out, a) = query(&dir, &["nope.shop.svc.cluster.local"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(a.status, "NXDOMAIN");
    assert!(a.answer.is_empty(), "{a:?}");
    assert_eq!(a.authority.len(), 1, "{a:?}");
    assert!(
        a.authority[0].starts_with(
            "cluster.local.\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. "
        ),
        "{a:?}"
    );

    // --zone and --ttl reach the zone.
    let (out, a) = query(
        &dir,
        &[
            "--zone",
            "corp.internal",
            "--ttl",
            "30",
            "web.shop.svc.corp.internal",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        a.answer,
        ["web.shop.svc.corp.internal.\t30\tIN\tA\t198.19.0.20"]
    );
    let (_, a) = query(
        &dir,
        &["--zone", "corp.internal", "web.shop.svc.cluster.local"],
    );
    assert_ne!(a.status, "NOERROR", "{a:?}");

    // A bad record type is an error on stderr with a non-zero exit.
    let (out, _) = query(&dir, &["web.shop.svc.cluster.local", "BOGUS"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("\"BOGUS\""), "{}", stderr(&out));

    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn query_accepts_loopback_endpoints_with_a_warning_that_validate_reports_as_an_error() {
    let dir = manifests("loopback", &[("local.yaml", LOCAL)]);
    let file = dir.join("local.yaml");

    let (out, a) = query(&dir, &["local.dev.svc.cluster.local"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(a.status, "NOERROR");
    assert_eq!(
        a.answer,
        ["local.dev.svc.cluster.local.\t5\tIN\tA\t127.0.0.1"]
    );
    // One warning for the accepted address, one error for the slice that
    // also has a bad port: that one is left out, so its headless Service
    // has no endpoints and no records.
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(lines[0], local_warning(&dir));
    assert!(
        lines[1].starts_with(&format!(
            "error: {}:22: EndpointSlice dev/broken-1: ports[0].port: 99999",
            file.display()
        )) && lines[1].ends_with("(left out)"),
        "{err}"
    );
    let (_, a) = query(&dir, &["broken.dev.svc.cluster.local"]);
    assert_eq!(a.status, "NXDOMAIN", "{a:?}");

    // `validate` reports what the apiserver would refuse: both addresses.
    let out = k8snet()
        .args(["validate", "-f"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}:8: EndpointSlice dev/local-1: endpoints[0].addresses[0]: \"127.0.0.1\": may not be in the loopback range",
            file.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}:22: EndpointSlice dev/broken-1: endpoints[0].addresses[0]: \"127.0.0.2\": may not be in the loopback range",
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("accepted for local serving"), "{err}");

    std::fs::remove_dir_all(dir).ok();
}

#[cfg(feature = "linux")]
mod serve {
    use std::io::{BufRead, BufReader};
    use std::net::SocketAddr;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    /// The server process; killed (by its PID) if the test ends early.
    struct Server {
        child: Child,
        lines: mpsc::Receiver<String>,
        log: String,
    }

    impl Server {
        fn start(dir: &Path) -> Self {
            let mut child = k8snet()
                .args(["dns", "serve", "-f"])
                .arg(dir)
                .args(["--listen", "127.0.0.1:0", "--workers", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (tx, lines) = mpsc::channel::<String>();
            let stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            Self {
                child,
                lines,
                log: String::new(),
            }
        }

        /// The next stderr line starting with `prefix`, or a note that it
        /// never came (the assertions then show the whole log).
        fn wait_for(&mut self, prefix: &str) -> String {
            loop {
                match self.lines.recv_timeout(Duration::from_secs(20)) {
                    Ok(line) => {
                        self.log.push_str(&line);
                        self.log.push('\n');
                        if line.starts_with(prefix) {
                            return line;
                        }
                    }
                    Err(_) => return format!("(no {prefix:?} line)"),
                }
            }
        }

        fn signal(&self, name: &str) {
            let status = Command::new("kill")
                .args([name, &self.child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "kill {name}");
        }

        /// Waits for the process to exit; `None` if it has not after a
        /// generous while (it is then killed by the drop).
        fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    /// `dig @server NAME TYPE +short` (or with `extra` options), one record a line.
    fn dig(server: SocketAddr, name: &str, qtype: &str, extra: &[&str]) -> String {
        assert!(server.ip().is_loopback(), "{server}");
        let out = Command::new("dig")
            .arg(format!("@{}", server.ip()))
            .args(["-p", &server.port().to_string()])
            .args(["+time=2", "+tries=1", name, qtype])
            .args(extra)
            .output()
            .expect("dig runs (bind9-dnsutils, installed by scripts/setup.sh)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn serve_answers_udp_and_tcp_on_loopback_reloads_and_exits_cleanly_on_sigterm() {
        let dir = manifests("serve", &[("shop.yaml", SHOP), ("local.yaml", LOCAL)]);
        let mut server = Server::start(&dir);
        let listening = server.wait_for("listening on ");
        let addr: SocketAddr = listening
            .strip_prefix("listening on ")
            .and_then(|r| r.split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{listening}\n{}", server.log));
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        assert_eq!(listening, format!("listening on {addr} (udp, tcp)"));
        // The loopback endpoint was accepted with a warning before serving.
        assert!(server.log.contains(&local_warning(&dir)), "{}", server.log);
        assert!(
            server
                .log
                .contains("EndpointSlice dev/broken-1: ports[0].port: 99999"),
            "{}",
            server.log
        );

        let short = ["+short"];
        let udp_web = dig(addr, "web.shop.svc.cluster.local", "A", &short);
        let tcp_web = dig(addr, "web.shop.svc.cluster.local", "A", &["+short", "+tcp"]);
        let headless = dig(addr, "db.shop.svc.cluster.local", "A", &short);
        let local = dig(addr, "local.dev.svc.cluster.local", "A", &short);
        let srv = dig(addr, "_http._tcp.web.shop.svc.cluster.local", "SRV", &short);
        let nxdomain = dig(
            addr,
            "nope.shop.svc.cluster.local",
            "A",
            &["+noall", "+comments"],
        );

        // Add a Service, then SIGHUP: the new name is served.
        std::fs::write(
            dir.join("api.yaml"),
            "apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {clusterIP: 198.19.0.21, ports: [{port: 80}]}
",
        )
        .unwrap();
        let before_reload = dig(addr, "api.shop.svc.cluster.local", "A", &short);
        server.signal("-HUP");
        let reloaded = server.wait_for("reloaded: ");
        let after_reload = dig(addr, "api.shop.svc.cluster.local", "A", &short);

        server.signal("-TERM");
        let stopped = server.wait_for("shutting down");
        let status = server.exit_status();
        let log = server.log.clone();
        drop(server);
        std::fs::remove_dir_all(&dir).ok();

        assert_eq!(udp_web, "198.19.0.20", "{log}");
        assert_eq!(tcp_web, "198.19.0.20", "{log}");
        assert_eq!(headless, "198.18.0.5\n198.18.0.6", "{log}");
        assert_eq!(local, "127.0.0.1", "{log}");
        assert_eq!(srv, "0 100 80 web.shop.svc.cluster.local.", "{log}");
        assert!(nxdomain.contains("status: NXDOMAIN"), "{nxdomain}\n{log}");
        assert_eq!(before_reload, "", "{log}");
        assert!(reloaded.starts_with("reloaded: "), "{log}");
        assert_eq!(after_reload, "198.19.0.21", "{log}");
        // The reload loads leniently too: the warning is printed again.
        assert_eq!(log.matches(&local_warning(&dir)).count(), 2, "{log}");
        assert_eq!(stopped, "shutting down", "{log}");
        let status = status.unwrap_or_else(|| panic!("still running after SIGTERM\n{log}"));
        assert!(status.success(), "{status}\n{log}");
    }
}
