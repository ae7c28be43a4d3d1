//! `k8snet ingress route` and `k8snet ingress serve`: the command-line
//! contract of design.md §3.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::k8snet;

/// A fresh directory holding `manifest.yaml`.
fn manifests(name: &str, yaml: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("k8snet-cli-ingress-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.yaml"), yaml).unwrap();
    dir
}

const SHOP: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: k8snet, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {controller: k8snet.io/ingress}
---
apiVersion: v1
kind: Secret
metadata: {name: shop-tls, namespace: shop}
type: kubernetes.io/tls
stringData: {tls.crt: "not parsed by route", tls.key: "k"}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: shop
  annotations: {nginx.ingress.kubernetes.io/enable-cors: "true"}
spec:
  tls: [{hosts: [shop.example.com], secretName: shop-tls}]
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
      - {path: /icons, pathType: ImplementationSpecific, backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: icons}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other-class, namespace: shop}
spec:
  ingressClassName: nginx
  rules:
  - host: nginx.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: legacy, port: {number: 8080}}}}]}
"#;

fn route(dir: &Path, args: &[&str]) -> (String, String) {
    let out = k8snet()
        .args(["ingress", "route", "-f"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn route_prints_the_backend_as_json() {
    let dir = manifests("route", SHOP);
    for (host, path, want) in [
        (
            "shop.example.com",
            "/cart?x=1",
            r#"{"backend":{"namespace":"shop","port":80,"service":"web"}}"#,
        ),
        (
            "SHOP.example.com:443",
            "/api/v1",
            r#"{"backend":{"namespace":"shop","port":"http","service":"api"}}"#,
        ),
        (
            "shop.example.com",
            "/icons/a.png",
            r#"{"backend":{"resource":{"apiGroup":"k8s.example.com","kind":"StorageBucket","name":"icons","namespace":"shop"}}}"#,
        ),
        (
            "unknown.example.com",
            "/",
            r#"{"backend":null,"status":404}"#,
        ),
        // Served by another class.
        ("nginx.example.com", "/", r#"{"backend":null,"status":404}"#),
    ] {
        let (stdout, _) = route(&dir, &["--host", host, "--path", path]);
        assert_eq!(stdout, want, "{host}{path}");
    }
    let (stdout, stderr) = route(
        &dir,
        &[
            "--host",
            "nginx.example.com",
            "--path",
            "/",
            "--class",
            "nginx",
        ],
    );
    assert_eq!(
        stdout,
        r#"{"backend":{"namespace":"shop","port":8080,"service":"legacy"}}"#
    );
    assert!(stderr.is_empty(), "{stderr}");
    // --sni adds the certificate it selects.
    let (stdout, stderr) = route(
        &dir,
        &[
            "--host",
            "shop.example.com",
            "--path",
            "/",
            "--sni",
            "shop.example.com",
        ],
    );
    assert_eq!(
        stdout,
        r#"{"backend":{"namespace":"shop","port":80,"service":"web"},"certificate":"shop/shop-tls"}"#
    );
    // The unsupported annotation is reported on stderr.
    assert!(
        stderr.contains("warning: Ingress shop/shop: annotations not supported by k8snet-ingress, ignored: enable-cors"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// A one-answer HTTP backend on 127.0.0.1 that says its name.
#[cfg(feature = "linux")]
fn backend(name: &'static str) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            );
        }
    });
    port
}

#[cfg(feature = "linux")]
fn serve_manifest(ports: &[(&str, u16)], root_service: &str) -> String {
    let mut yaml = String::new();
    for (name, port) in ports {
        yaml.push_str(&format!(
            r#"---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec: {{ports: [{{name: http, port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-local, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1]}}]
ports: [{{name: http, port: {port}}}]
"#
        ));
    }
    yaml.push_str(&format!(
        r#"---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: shop, namespace: shop}}
spec:
  rules:
  - host: shop.local
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: {root_service}, port: {{number: 80}}}}}}}}
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: api, port: {{name: http}}}}}}}}
      - {{path: /api/health, pathType: Exact, backend: {{service: {{name: health, port: {{number: 80}}}}}}}}
  - host: "*.apps.local"
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: wild, port: {{number: 80}}}}}}}}]}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: catch-all, namespace: shop}}
spec:
  defaultBackend: {{service: {{name: fallback, port: {{number: 80}}}}}}
"#
    ));
    yaml
}

#[cfg(feature = "linux")]
#[test]
fn serve_routes_every_rule_to_loopback_endpoints_and_reloads_on_sighup() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let names = ["web", "api", "health", "wild", "fallback"];
    let ports: Vec<(&str, u16)> = names.iter().map(|n| (*n, backend(n))).collect();
    let dir = manifests("serve", &serve_manifest(&ports, "web"));
    let mut child = k8snet()
        .args(["ingress", "serve", "-f"])
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let mut wait_for = |prefix: &str| -> String {
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => {
                    log.push_str(&line);
                    log.push('\n');
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => return format!("(no {prefix:?} line)"),
            }
        }
    };
    let listening = wait_for("listening on ");
    let addr = listening
        .strip_prefix("listening on ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or("127.0.0.1:1")
        .to_string();
    let curl = |host: &str, path: &str| -> String {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "-H", &format!("Host: {host}")])
            .arg(format!("http://{addr}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut got = Vec::new();
    for (host, path) in [
        ("shop.local", "/"),
        ("shop.local", "/api/v1"),
        ("shop.local", "/apix"),
        ("shop.local", "/api/health"),
        ("x.apps.local", "/"),
        ("other.local", "/"),
    ] {
        got.push(curl(host, path));
    }
    // Change a rule, then SIGHUP: the next request follows the new rule.
    std::fs::write(dir.join("manifest.yaml"), serve_manifest(&ports, "api")).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    let reloaded = wait_for("reloaded");
    let after = curl("shop.local", "/");
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let stopped = wait_for("shutting down");
    let status = child.wait().unwrap();
    std::fs::remove_dir_all(dir).ok();

    assert_eq!(
        got,
        ["web", "api", "web", "health", "wild", "fallback"],
        "{log}"
    );
    assert_eq!(
        (reloaded.as_str(), after.as_str()),
        ("reloaded", "api"),
        "{log}"
    );
    assert_eq!(stopped, "shutting down", "{log}");
    assert!(status.success(), "{log}");
    assert!(
        log.contains(
            "EndpointSlice shop/web-local: endpoints[0].addresses[0]: 127.0.0.1 is a loopback address (accepted for local serving)"
        ),
        "{log}"
    );
}

/// `ingress serve` running with some arguments, its stderr read line by line.
#[cfg(feature = "linux")]
struct Serving {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    log: String,
}

#[cfg(feature = "linux")]
impl Serving {
    fn start(dir: &Path, args: &[&str]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = k8snet()
            .args(["ingress", "serve", "-f"])
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel::<String>();
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

    /// The first line (from now) that starts with `prefix`, or `None` when
    /// the process ends or says nothing for 20 s.
    fn wait_for(&mut self, prefix: &str) -> Option<String> {
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(20)) {
            self.log.push_str(&line);
            self.log.push('\n');
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
        None
    }

    /// The HTTPS address it listens on.
    fn https_addr(&mut self) -> String {
        let line = self.wait_for("listening on ").unwrap_or_default();
        let line = if line.ends_with("(https)") {
            line
        } else {
            self.wait_for("listening on ").unwrap_or_default()
        };
        assert!(line.ends_with("(https)"), "{}", self.log);
        line["listening on ".len()..line.len() - " (https)".len()].to_string()
    }
}

#[cfg(feature = "linux")]
impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl over HTTPS without verifying (`-k`), with Host `shop.local` and the
/// SNI name `sni`: (exit success, body, curl's verbose log).
#[cfg(feature = "linux")]
fn curl_tls(addr: &str, sni: &str) -> (bool, String, String) {
    let port = addr.rsplit(':').next().unwrap();
    let out = Command::new("curl")
        .args([
            "-k",
            "-v",
            "-sS",
            "--max-time",
            "5",
            "-H",
            "Host: shop.local",
        ])
        .args(["--resolve", &format!("{sni}:{port}:127.0.0.1")])
        .arg(format!("https://{sni}:{port}/"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(feature = "linux")]
#[test]
fn serve_tls_has_a_default_certificate_generated_given_or_none() {
    let names = ["web", "api", "health", "wild", "fallback"];
    let ports: Vec<(&str, u16)> = names.iter().map(|n| (*n, backend(n))).collect();
    // A Secret for --default-ssl-certificate, with a recognisable name.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["default.k8snet.test".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "k8snet given default");
    let cert = params.self_signed(&key).unwrap();
    let indent = |pem: String| pem.trim_end().replace('\n', "\n    ");
    let secret = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: fallback-cert, namespace: shop}}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    {}\n  tls.key: |\n    {}\n",
        indent(cert.pem()),
        indent(key.serialize_pem())
    );
    let dir = manifests(
        "default-cert",
        &format!("{}{secret}", serve_manifest(&ports, "web")),
    );
    let base = ["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"];

    // No Secret matches `unknown.test`: the generated certificate, and the
    // route still follows Host.
    let mut generated = Serving::start(&dir, &base);
    let addr = generated.https_addr();
    let (ok, body, verbose) = curl_tls(&addr, "unknown.test");
    assert!(ok, "{verbose}\n{}", generated.log);
    assert_eq!(body, "web");
    assert!(
        verbose.contains("Kubernetes Ingress Controller Fake Certificate"),
        "{verbose}"
    );
    drop(generated);

    // The given Secret.
    let mut args = base.to_vec();
    args.extend(["--default-ssl-certificate", "shop/fallback-cert"]);
    let mut given = Serving::start(&dir, &args);
    let addr = given.https_addr();
    let (ok, body, verbose) = curl_tls(&addr, "unknown.test");
    assert!(ok, "{verbose}\n{}", given.log);
    assert_eq!(body, "web");
    assert!(verbose.contains("k8snet given default"), "{verbose}");
    drop(given);

    // None: the handshake fails.
    let mut args = base.to_vec();
    args.push("--no-default-certificate");
    let mut none = Serving::start(&dir, &args);
    let addr = none.https_addr();
    let (ok, body, verbose) = curl_tls(&addr, "unknown.test");
    assert!(!ok, "{verbose}");
    assert_eq!(body, "");
    drop(none);

    // A Secret that is not there: an error that names it, before serving.
    let out = k8snet()
        .args(["ingress", "serve", "-f"])
        .arg(&dir)
        .args(base)
        .args(["--default-ssl-certificate", "shop/missing"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--default-ssl-certificate: Secret shop/missing is not in the manifests"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}
