//! The data plane in the kernel, in a network namespace made for the run:
//! a full sync of 10,000 Services × 10 endpoints, one Service's endpoint
//! change with 10,000 present, and the connection rate to a ClusterIP with
//! 10 and with 10,000 Services present. Needs root and the `linux`
//! feature; skips (with a message) otherwise.
//!
//! `cargo bench -p k8snet-lb --features linux --bench kernel`

use criterion::{Criterion, criterion_group, criterion_main};

#[cfg(all(feature = "linux", target_os = "linux"))]
mod real {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use criterion::Criterion;
    use k8snet_lb::linux::Proxier;
    use k8snet_lb::{NodeContext, plan, plan_service};
    use k8snet_model::{
        AddressType, Cluster, Endpoint, EndpointConditions, EndpointPort, EndpointSlice, NsName,
        Object, ObjectMeta, Protocol, SERVICE_NAME_LABEL, Service, ServicePort, ServiceSpec,
    };
    use k8snet_testnet::{Testnet, plan as addr};

    const ENDPOINTS: u32 = 10;

    fn service_ip(i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + 1 + i)
    }

    /// Endpoint `e` of Service `i` (addresses repeat across Services past
    /// the /16; they are only ever written into maps).
    fn endpoint_ip(i: u32, e: u32) -> Ipv4Addr {
        let n = (i * ENDPOINTS + e) % 65_000 + 256;
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n)
    }

    fn slice(i: u32, eps: &[Ipv4Addr]) -> Object {
        let mut meta = ObjectMeta::namespaced("bench", format!("svc{i}-1"));
        meta.labels
            .insert(SERVICE_NAME_LABEL.into(), format!("svc{i}"));
        Object::EndpointSlice(EndpointSlice {
            metadata: meta,
            address_type: AddressType::IPv4,
            endpoints: eps
                .iter()
                .map(|ip| Endpoint {
                    addresses: vec![ip.to_string()],
                    conditions: EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    },
                    // Another node: no local endpoints, as for most Services.
                    node_name: Some("node-b".into()),
                    ..Endpoint::default()
                })
                .collect(),
            ports: vec![EndpointPort {
                name: Some("http".into()),
                protocol: Some(Protocol::Tcp),
                port: Some(8080),
                app_protocol: None,
            }],
        })
    }

    /// `n` Services; Service 0 has the one real backend.
    fn cluster(n: u32, real_backend: Ipv4Addr) -> Cluster {
        let mut objects = Vec::new();
        for i in 0..n {
            let spec = ServiceSpec {
                cluster_ip: Some(service_ip(i).to_string()),
                cluster_ips: vec![service_ip(i).to_string()],
                ports: vec![ServicePort {
                    name: Some("http".into()),
                    protocol: Some(Protocol::Tcp),
                    port: 80,
                    ..ServicePort::default()
                }],
                ..ServiceSpec::default()
            };
            objects.push(Object::Service(Service {
                metadata: ObjectMeta::namespaced("bench", format!("svc{i}")),
                spec,
                ..Service::default()
            }));
            let eps: Vec<Ipv4Addr> = if i == 0 {
                vec![real_backend]
            } else {
                (0..ENDPOINTS).map(|e| endpoint_ip(i, e)).collect()
            };
            objects.push(slice(i, &eps));
        }
        Cluster::from_objects(objects)
    }

    fn node() -> NodeContext {
        let mut n = NodeContext::new("node-a");
        n.ips = vec![addr::node_v4(1).addr()];
        n.cluster_cidrs = vec!["198.18.0.0/16".parse().expect("a CIDR")];
        // SLOTS_PER_ENDPOINT=12 measures the balance/sync-time trade-off.
        if let Some(f) = std::env::var("SLOTS_PER_ENDPOINT")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            n.slots_per_endpoint = f;
        }
        n
    }

    pub(crate) fn full_sync(c: &mut Criterion) {
        if let Some(why) = k8snet_testnet::skip_reason() {
            eprintln!("kernel benches skipped: {why}");
            return;
        }
        let tn = Testnet::new("lbsync").expect("a test namespace");
        let backend = Ipv4Addr::new(198, 18, 0, 10);
        // LB_BENCH_SERVICES picks another size (benches/compare/lb.sh).
        let services = std::env::var("LB_BENCH_SERVICES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000);
        let cl = cluster(services, backend);
        let ctx = node();
        let mut g = c.benchmark_group("kernel_sync");
        g.sample_size(10)
            .measurement_time(Duration::from_secs(20))
            .warm_up_time(Duration::from_millis(1));
        g.bench_function("full_10000_services_x_10", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut px = tn.node().run(Proxier::new).expect("enter").expect("proxier");
                    px.delete().expect("delete");
                    let t0 = Instant::now();
                    let table = plan(&cl, &ctx);
                    let planned = t0.elapsed();
                    let st = px.sync(&table).expect("sync");
                    total += t0.elapsed();
                    eprintln!(
                        "full sync: plan {planned:?}, compute {:?}, kernel {:?}, total {:.3}s, {} messages, {} elements",
                        st.compute,
                        st.apply,
                        t0.elapsed().as_secs_f64(),
                        st.messages,
                        st.elements
                    );
                }
                total
            })
        });

        // One Service's endpoints change (one replaced), end to end: the
        // EndpointSlice upsert, replanning that Service, the batch and the
        // kernel transaction.
        let mut cl = cl;
        let mut px = tn
            .node()
            .run(Proxier::new)
            .expect("enter")
            .expect("proxier");
        px.sync(&plan(&cl, &ctx)).expect("sync");
        let key = NsName::new("bench", "svc5000");
        let mut flip = false;
        g.bench_function("one_service_change_with_10000", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    flip = !flip;
                    let mut eps: Vec<Ipv4Addr> =
                        (0..ENDPOINTS).map(|e| endpoint_ip(5000, e)).collect();
                    if flip {
                        eps[3] = Ipv4Addr::new(198, 18, 255, 250);
                    }
                    let t0 = Instant::now();
                    cl.upsert(slice(5000, &eps)).expect("a valid slice");
                    let ports = plan_service(&cl, &ctx, &key);
                    let st = px
                        .update_service("bench", "svc5000", &ports)
                        .expect("update");
                    total += t0.elapsed();
                    assert!(st.elements > 0 && st.elements < 100, "{st:?}");
                }
                total
            })
        });
        g.finish();
    }

    /// A name server for the connection-rate bench.
    struct Server {
        stop: Arc<AtomicBool>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl Server {
        fn start(tn: &k8snet_testnet::Pod, addr: SocketAddr) -> Self {
            let l = tn
                .netns()
                .run(|| TcpListener::bind(addr))
                .expect("enter")
                .expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let handle = std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(600);
                while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match l.accept() {
                        Ok((mut c, _)) => {
                            let _ = c.set_nonblocking(false);
                            let _ = c.write_all(b"b0");
                        }
                        Err(_) => std::thread::yield_now(),
                    }
                }
            });
            Self {
                stop,
                handle: Some(handle),
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    pub(crate) fn connection_rate(c: &mut Criterion) {
        if k8snet_testnet::skip_reason().is_some() {
            return;
        }
        let mut tn = Testnet::new("lbconn").expect("a test namespace");
        tn.enable_forwarding().expect("forwarding");
        let br = tn.add_bridge("br0", &addr::gateways(0)).expect("bridge");
        let client = tn
            .add_bridged_pod(&br, "client", &[addr::pod_v4(0, 2)])
            .expect("client");
        let b0 = tn
            .add_bridged_pod(&br, "b0", &[addr::pod_v4(0, 10)])
            .expect("backend");
        let backend = Ipv4Addr::new(198, 18, 0, 10);
        let _server = Server::start(&b0, SocketAddr::new(IpAddr::V4(backend), 8080));
        let ctx = node();
        let target = SocketAddr::new(IpAddr::V4(service_ip(0)), 80);
        let mut g = c.benchmark_group("kernel_connection_rate");
        g.sample_size(10).measurement_time(Duration::from_secs(5));
        g.throughput(criterion::Throughput::Elements(1));
        for services in [10u32, 10_000] {
            let mut px = tn
                .node()
                .run(Proxier::new)
                .expect("enter")
                .expect("proxier");
            px.delete().expect("delete");
            px.sync(&plan(&cluster(services, backend), &ctx))
                .expect("sync");
            g.bench_function(format!("cluster_ip_with_{services}_services"), |b| {
                b.iter_custom(|iters| {
                    client
                        .netns()
                        .run(|| {
                            let t0 = Instant::now();
                            for _ in 0..iters {
                                let mut s =
                                    TcpStream::connect_timeout(&target, Duration::from_secs(5))
                                        .expect("connect");
                                let mut buf = Vec::new();
                                s.read_to_end(&mut buf).expect("read");
                                assert_eq!(buf, b"b0");
                            }
                            t0.elapsed()
                        })
                        .expect("enter the client")
                })
            });
        }
        g.finish();
    }
}

#[cfg(all(feature = "linux", target_os = "linux"))]
fn full_sync(c: &mut Criterion) {
    real::full_sync(c);
}

#[cfg(all(feature = "linux", target_os = "linux"))]
fn connection_rate(c: &mut Criterion) {
    real::connection_rate(c);
}

#[cfg(not(all(feature = "linux", target_os = "linux")))]
fn full_sync(_: &mut Criterion) {
    eprintln!("kernel benches skipped: build with --features linux");
}

#[cfg(not(all(feature = "linux", target_os = "linux")))]
fn connection_rate(_: &mut Criterion) {}

criterion_group!(benches, full_sync, connection_rate);
criterion_main!(benches);
