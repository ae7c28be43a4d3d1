//! A server on loopback for the socket tests.

use std::net::SocketAddr;
use std::time::Duration;

use k8snet_dns::forward::Forwarder;
use k8snet_dns::server::{Server, ServerConfig};
use k8snet_dns::{LiveZone, Zone, ZoneConfig};

use super::{FIXTURE, cluster};

/// A server on 127.0.0.1 and ::1 (ephemeral ports), stopped on drop.
pub struct TestServer {
    pub server: Option<Server>,
    pub v4: SocketAddr,
    pub v6: SocketAddr,
}

impl TestServer {
    pub fn start(zone: Zone, forwarder: Option<Forwarder>) -> Self {
        let mut cfg = ServerConfig::new(vec![
            "127.0.0.1:0".parse().unwrap(),
            "[::1]:0".parse().unwrap(),
        ]);
        cfg.udp_workers = 2;
        cfg.tcp_idle_timeout = Duration::from_secs(2);
        let server = Server::start(&cfg, LiveZone::new(zone), forwarder).expect("server starts");
        let (v4, v6) = (server.local_addrs()[0], server.local_addrs()[1]);
        Self {
            server: Some(server),
            v4,
            v6,
        }
    }

    pub fn fixture() -> Self {
        let cfg = ZoneConfig::default().nameservers(["198.19.0.10".parse().unwrap()]);
        Self::start(Zone::build(&cluster(FIXTURE), &cfg).unwrap(), None)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}
