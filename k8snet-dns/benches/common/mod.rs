//! The benchmark cluster: `services` Services in 100 namespaces, every
//! fifth headless (half of its endpoints with a hostname), the others
//! dual-stack ClusterIPs with two named ports; `per_service` endpoints
//! each, in one EndpointSlice per Service. Shared by the criterion
//! benches and the `fixture` example that feeds `benches/compare/dns.sh`.
#![allow(dead_code, unreachable_pub)]

use std::net::Ipv4Addr;

use k8snet_model::{
    AddressType, Endpoint, EndpointPort, EndpointSlice, IntOrString, IpFamily, IpFamilyPolicy,
    Object, ObjectMeta, Protocol, Service, ServicePort, ServiceSpec,
};

/// The objects and the names a query mix draws from.
pub struct Fixture {
    pub objects: Vec<Object>,
    /// ClusterIP and headless service names (A).
    pub a: Vec<String>,
    /// Dual-stack ClusterIP names (AAAA).
    pub aaaa: Vec<String>,
    /// `_http._tcp` names (SRV).
    pub srv: Vec<String>,
    /// Names that do not exist (NXDOMAIN).
    pub nx: Vec<String>,
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        protocol: Some(Protocol::Tcp),
        port,
        target_port: Some(IntOrString::Int(port + 8000)),
        ..ServicePort::default()
    }
}

pub fn fixture(services: usize, per_service: usize) -> Fixture {
    let mut f = Fixture {
        objects: Vec::new(),
        a: Vec::new(),
        aaaa: Vec::new(),
        srv: Vec::new(),
        nx: Vec::new(),
    };
    let mut headless_ep = 0u32;
    let mut other_ep = 0u32;
    for i in 0..services {
        let ns = format!("ns-{}", i % 100);
        let name = format!("svc-{i}");
        let fqdn = format!("{name}.{ns}.svc.cluster.local");
        let headless = i % 5 == 4;
        let mut spec = ServiceSpec {
            ports: vec![port("http", 80), port("metrics", 9090)],
            ..ServiceSpec::default()
        };
        if headless {
            spec.cluster_ip = Some("None".into());
            spec.cluster_ips = vec!["None".into()];
        } else {
            let v4 = Ipv4Addr::new(198, 19, (i / 250) as u8, (i % 250 + 1) as u8);
            let v6 = format!("fd00:19::{:x}", i + 1);
            spec.cluster_ip = Some(v4.to_string());
            spec.cluster_ips = vec![v4.to_string(), v6];
            spec.ip_families = vec![IpFamily::IPv4, IpFamily::IPv6];
            spec.ip_family_policy = Some(IpFamilyPolicy::RequireDualStack);
            f.aaaa.push(fqdn.clone());
        }
        f.objects.push(Object::Service(Service {
            metadata: ObjectMeta::namespaced(&ns, &name),
            spec,
            ..Service::default()
        }));
        let mut endpoints = Vec::with_capacity(per_service);
        for e in 0..per_service {
            let ip = if headless {
                headless_ep += 1;
                Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + headless_ep)
            } else {
                other_ep += 1;
                Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + other_ep)
            };
            endpoints.push(Endpoint {
                addresses: vec![ip.to_string()],
                hostname: (headless && e % 2 == 0).then(|| format!("{name}-{e}")),
                ..Endpoint::default()
            });
        }
        let mut meta = ObjectMeta::namespaced(&ns, format!("{name}-abcde"));
        meta.labels
            .insert("kubernetes.io/service-name".into(), name.clone());
        f.objects.push(Object::EndpointSlice(EndpointSlice {
            metadata: meta,
            address_type: AddressType::IPv4,
            endpoints,
            ports: vec![EndpointPort {
                name: Some("http".into()),
                protocol: Some(Protocol::Tcp),
                port: Some(8080),
                app_protocol: None,
            }],
        }));
        f.a.push(fqdn.clone());
        f.srv.push(format!("_http._tcp.{fqdn}"));
        f.nx.push(format!("nosuch-{i}.{ns}.svc.cluster.local"));
    }
    f
}
