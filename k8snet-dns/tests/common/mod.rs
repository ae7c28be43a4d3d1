//! Helpers of the socket tests: the fixture, a server on loopback, `dig`,
//! and NSD as a real upstream. Every process a test starts is killed by a
//! guard when the test ends, also when it fails.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8snet_model::{Cluster, Manifests};

#[cfg(all(feature = "linux", target_os = "linux"))]
mod server;
#[cfg(all(feature = "linux", target_os = "linux"))]
pub use server::TestServer;

pub const FIXTURE: &str = include_str!("fixture.yaml");

pub fn cluster(yaml: &str) -> Cluster {
    let mut m = Manifests::new();
    m.load_str("fixture.yaml", yaml);
    assert!(m.errors().is_empty(), "{:#?}", m.errors());
    Cluster::from_manifests(&m)
}

/// What dig printed, by section.
#[derive(Debug, Default)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    pub text: String,
}

impl Dig {
    /// The rdata of the answer records (the fields after the type).
    pub fn data(&self) -> Vec<String> {
        self.answer.iter().map(|l| rdata(l)).collect()
    }
}

/// Fields after `IN TYPE`, joined by spaces.
pub fn rdata(line: &str) -> String {
    let f: Vec<&str> = line.split_whitespace().collect();
    f.get(4..).map(|r| r.join(" ")).unwrap_or_default()
}

/// Runs `dig @server NAME TYPE` with `extra` options.
pub fn dig(server: SocketAddr, name: &str, qtype: &str, extra: &[&str]) -> Dig {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+tries=1", "+time=3"])
        .args(extra)
        .args([name, qtype])
        .output()
        .expect("dig runs (bind9-dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut d = Dig {
        text: text.clone(),
        ..Dig::default()
    };
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or_default().to_string();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest
                .split(';')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
        } else if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = "additional";
        } else if line.is_empty() || line.starts_with(';') {
            section = "";
        } else {
            match section {
                "answer" => d.answer.push(line.to_string()),
                "authority" => d.authority.push(line.to_string()),
                "additional" => d.additional.push(line.to_string()),
                _ => {}
            }
        }
    }
    d
}

/// A free port on loopback for both UDP and TCP (best effort).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// NSD serving a zone on 127.0.0.1; killed on drop.
pub struct Nsd {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Nsd {
    /// Starts NSD with `zone_text` as zone `origin`, and waits until it answers.
    pub fn start(origin: &str, zone_text: &str) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("k8snet-dns-nsd-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("zone"), zone_text).unwrap();
        let d = dir.display();
        let conf = format!(
            "server:\n  ip-address: 127.0.0.1\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
             logfile: \"{d}/nsd.log\"\n  server-count: 1\n  rrl-ratelimit: 0\n  verbosity: 1\n\
             remote-control:\n  control-enable: no\nzone:\n  name: \"{origin}\"\n  zonefile: \"zone\"\n"
        );
        std::fs::write(dir.join("nsd.conf"), conf).unwrap();
        let child = Command::new("nsd")
            .args(["-d", "-c"])
            .arg(dir.join("nsd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nsd runs (Debian package nsd)");
        let nsd = Self {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while dig(nsd.addr, origin, "SOA", &["+time=1"]).status != "NOERROR" {
            assert!(
                Instant::now() < deadline,
                "nsd did not come up: {:?}",
                std::fs::read_to_string(nsd.dir.join("nsd.log"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        nsd
    }

    /// Stops NSD now (to prove answers then come from the cache).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
