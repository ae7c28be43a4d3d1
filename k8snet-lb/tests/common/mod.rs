//! Shared by the kernel tests: a node with pods and an outside client,
//! name servers in the pods, clients that pick their source port, and the
//! proxier run inside the node namespace.

#![allow(dead_code, unreachable_pub)] // each test binary uses a subset

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use k8snet_lb::linux::Proxier;
use k8snet_lb::{NodeContext, ServiceTable};
use k8snet_model::{Cluster, Manifests};
use k8snet_testnet::{Netns, Pod, Testnet, plan};

pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Backends b0..b3: 198.18.0.10.. and fd00:18::a..
pub const BACKENDS: u8 = 4;

pub fn backend_v4(i: u8) -> IpAddr {
    IpAddr::from([198, 18, 0, 10 + i])
}

pub fn backend_v6(i: u8) -> IpAddr {
    IpAddr::from([0xfd00, 0x18, 0, 0, 0, 0, 0, 10 + u16::from(i)])
}

/// A node (198.19.128.1, fd00:19:1::1) with a pod bridge, a client pod
/// (198.18.0.2, fd00:18::2), backend pods b0..b3 serving their name on TCP
/// and UDP 8080, and an outside client namespace (198.19.200.2 and .9,
/// fd00:19:2::2) routed through the node.
pub struct Node {
    pub tn: Testnet,
    pub client: Pod,
    pub backends: Vec<Pod>,
    pub outside: Pod,
    servers: Vec<NameServer>,
}

impl Node {
    pub fn new(prefix: &str) -> Self {
        let mut tn = Testnet::new(prefix).unwrap();
        tn.enable_forwarding().unwrap();
        let br = tn.add_bridge("br0", &plan::gateways(0)).unwrap();
        let client = tn
            .add_bridged_pod(&br, "client", &[plan::pod_v4(0, 2), plan::pod_v6(0, 2)])
            .unwrap();
        let mut backends = Vec::new();
        let mut servers = Vec::new();
        for i in 0..BACKENDS {
            let host = 10 + i;
            let pod = tn
                .add_bridged_pod(
                    &br,
                    &format!("b{i}"),
                    &[plan::pod_v4(0, host), plan::pod_v6(0, u16::from(host))],
                )
                .unwrap();
            for ip in [backend_v4(i), backend_v6(i)] {
                servers.push(NameServer::start(
                    pod.netns(),
                    SocketAddr::new(ip, 8080),
                    &format!("b{i}"),
                ));
            }
            backends.push(pod);
        }
        let outside = tn
            .add_pod(
                "outside",
                &[plan::client_v4(2), plan::client_v4(9), plan::client_v6(2)],
            )
            .unwrap();
        for a in [
            plan::client_v4(1),
            plan::client_v6(1),
            plan::node_v4(1),
            plan::node_v6(1),
        ] {
            outside.add_node_addr(a).unwrap();
        }
        outside.set_gateway(plan::client_v4(1).addr()).unwrap();
        outside.set_gateway(plan::client_v6(1).addr()).unwrap();
        // Like a real node, route the service ranges somewhere (here: the
        // outside client), so that packets the table does not DNAT reach
        // the filter hooks instead of failing the route lookup.
        tn.node()
            .ip(&["route", "add", "198.19.0.0/17", "via", "198.19.200.2"])
            .unwrap();
        tn.node()
            .ip(&["-6", "route", "add", "fd00:19::/112", "via", "fd00:19:2::2"])
            .unwrap();
        Self {
            tn,
            client,
            backends,
            outside,
            servers,
        }
    }

    /// Runs `f` with a proxier in the node namespace.
    pub fn proxier(&self) -> Proxier {
        self.tn.node().run(|| Proxier::new().unwrap()).unwrap()
    }

    /// Deletes every conntrack entry of the node, so the next packet of a
    /// flow that ran before is decided afresh.
    pub fn forget_connections(&self) {
        self.tn
            .node()
            .run(|| {
                k8snet_lb::linux::Conntrack::open()
                    .unwrap()
                    .delete_where(|_| true)
                    .unwrap()
            })
            .unwrap();
    }
}

/// Loads manifests (panics on errors) and plans node-a.
pub fn plan_yaml(yaml: &str) -> (Cluster, NodeContext, ServiceTable) {
    let mut m = Manifests::new();
    m.load_str("test.yaml", yaml);
    let errors: Vec<String> = m.errors().iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let c = Cluster::from_manifests(&m);
    let ctx = NodeContext::from_cluster(&c, "node-a").unwrap();
    let t = k8snet_lb::plan(&c, &ctx);
    (c, ctx, t)
}

/// As [`plan_yaml`], with the addresses the node's namespace holds in
/// `local_addrs` (read from its kernel), so `predict` knows every source
/// `fib saddr type local` matches there.
pub fn plan_on(node: &Node, yaml: &str) -> (Cluster, NodeContext, ServiceTable) {
    let (c, mut ctx, _) = plan_yaml(yaml);
    ctx.local_addrs = node
        .tn
        .node()
        .run(k8snet_lb::linux::local_addrs)
        .unwrap()
        .unwrap();
    let t = k8snet_lb::plan(&c, &ctx);
    (c, ctx, t)
}

pub const NODE_A: &str = "apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {topology.kubernetes.io/zone: zone-a}}
spec: {podCIDRs: [198.18.0.0/24, 'fd00:18::/64']}
status: {addresses: [{type: InternalIP, address: 198.19.128.1}, {type: InternalIP, address: 'fd00:19:1::1'}]}
";

/// An eTP=Local LoadBalancer Service `name` of one family and its slice
/// of backends `eps` (`(index, node)`): IPv4 ClusterIP 198.19.0.21, LB IP
/// 198.19.1.60, node port 30081; IPv6 fd00:19::21, fd00:19::60, node port
/// 30083. Without a Node: prepend [`NODE_A`].
pub fn local_policy_lb(name: &str, family: &str, eps: &[(u8, &str)]) -> String {
    let (ips, lb_ip, node_port) = if family == "IPv4" {
        ("clusterIP: 198.19.0.21", "198.19.1.60", 30081)
    } else {
        (
            "clusterIP: 'fd00:19::21'\n  clusterIPs: ['fd00:19::21']\n  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv6]",
            "'fd00:19::60'",
            30083,
        )
    };
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  {ips}\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  ports: [{{name: http, port: 80, targetPort: 8080, nodePort: {node_port}}}]\nstatus: {{loadBalancer: {{ingress: [{{ip: {lb_ip}}}]}}}}\n{}",
        slice(name, family, "http", "TCP", eps)
    )
}

/// Node-a and an eTP=Local LoadBalancer `web` (see [`local_policy_lb`])
/// whose endpoints are all on node-b: reachable over the bridge, but not
/// local to node-a.
pub fn remote_only_local_policy() -> String {
    let svc = local_policy_lb("web", "IPv4", &[(1, "node-b"), (2, "node-b")]);
    format!("{NODE_A}{svc}")
}

/// As [`remote_only_local_policy`], IPv6 (LB IP fd00:19::60, node port
/// 30083).
pub fn remote_only_local_policy_v6() -> String {
    let svc = local_policy_lb("web", "IPv6", &[(1, "node-b"), (2, "node-b")]);
    format!("{NODE_A}{svc}")
}

/// An EndpointSlice of `service` with backends `(index, node)`, port 8080
/// named `http` (or unnamed when `port_name` is empty).
pub fn slice(
    service: &str,
    family: &str,
    port_name: &str,
    protocol: &str,
    eps: &[(u8, &str)],
) -> String {
    let eps: Vec<String> = eps
        .iter()
        .map(|(i, node)| {
            let ip = if family == "IPv4" {
                backend_v4(*i)
            } else {
                backend_v6(*i)
            };
            format!("{{addresses: ['{ip}'], nodeName: {node}, conditions: {{ready: true}}}}")
        })
        .collect();
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {service}-{}, namespace: default, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: {family}\nendpoints: [{}]\nports: [{{name: '{port_name}', port: 8080, protocol: {protocol}}}]\n",
        family.to_lowercase(),
        eps.join(", ")
    )
}

/// A TCP server in a test namespace answering every connection with its
/// name, and a UDP server answering every datagram with it, until stopped
/// (bounded: at most 120 s).
pub struct NameServer {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl NameServer {
    pub fn start(ns: &Netns, addr: SocketAddr, name: &str) -> Self {
        let (tcp, udp) = ns
            .run(|| {
                (
                    TcpListener::bind(addr).unwrap(),
                    UdpSocket::bind(addr).unwrap(),
                )
            })
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (f1, f2) = (stop.clone(), stop.clone());
        let (n1, n2) = (name.to_owned(), name.to_owned());
        let deadline = Instant::now() + Duration::from_secs(120);
        let h1 = thread::spawn(move || {
            while !f1.load(Ordering::Relaxed) && Instant::now() < deadline {
                match tcp.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.write_all(n1.as_bytes());
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        let h2 = thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !f2.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok((_, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(n2.as_bytes(), from);
                }
            }
        });
        Self {
            stop,
            handles: vec![h1, h2],
        }
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn bound_socket(
    from: SocketAddr,
    ty: nix::sys::socket::SockType,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockaddrStorage, bind, setsockopt, socket, sockopt,
    };
    let fam = if from.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(fam, ty, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    // Bounds connect() too: Linux waits at most the send timeout.
    let t = nix::sys::time::TimeVal::new(IO_TIMEOUT.as_secs() as i64, 0);
    setsockopt(&fd, sockopt::SendTimeout, &t)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(from))?;
    Ok(fd)
}

/// Connects over TCP from `ns`, from `from` (port 0: any), to `to`, and
/// reads the server's name.
pub fn ask(ns: &Netns, from: SocketAddr, to: SocketAddr) -> std::io::Result<String> {
    ns.run(|| {
        let fd = bound_socket(from, nix::sys::socket::SockType::Stream)?;
        let s = TcpStream::from(fd);
        // connect() on a bound std socket: through nix.
        match nix::sys::socket::connect(s.as_raw_fd(), &nix::sys::socket::SockaddrStorage::from(to))
        {
            Err(nix::errno::Errno::EINPROGRESS) => return Err(ErrorKind::TimedOut.into()),
            r => r?,
        }
        let mut s = s;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .expect("entering the client namespace")
}

/// Sends a UDP datagram from `from` to `to` in `ns`; the answer, if any
/// within `wait`.
pub fn ask_udp(
    ns: &Netns,
    from: SocketAddr,
    to: SocketAddr,
    wait: Duration,
) -> std::io::Result<String> {
    ns.run(|| {
        let s = UdpSocket::from(bound_socket(from, nix::sys::socket::SockType::Datagram)?);
        s.set_read_timeout(Some(wait))?;
        s.send_to(b"who", to)?;
        let mut buf = [0u8; 64];
        match s.recv_from(&mut buf) {
            Ok((n, _)) => Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Err(ErrorKind::TimedOut.into()),
            Err(e) => Err(e),
        }
    })
    .expect("entering the client namespace")
}

/// The backend name a prediction names (`b<i>`), from its address.
pub fn name_of(ip: IpAddr) -> String {
    (0..BACKENDS)
        .find(|i| backend_v4(*i) == ip || backend_v6(*i) == ip)
        .map(|i| format!("b{i}"))
        .unwrap_or_else(|| format!("?{ip}"))
}
