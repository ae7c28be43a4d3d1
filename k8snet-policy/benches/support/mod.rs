//! The benches' cluster: 100 namespaces × 100 pods and a chosen number of
//! NetworkPolicies, plus three AdminNetworkPolicies and a baseline (shared
//! by `policy.rs` and `kernel.rs`).

#![allow(dead_code)]

use k8snet_model::{
    AdminNetworkPolicy, BaselineAdminNetworkPolicy, Cluster, Namespace, NetworkPolicy, Object, Pod,
};
use serde_json::{Value, json};
use std::net::Ipv4Addr;

pub(crate) const NAMESPACES: usize = 100;
pub(crate) const PODS: usize = 10_000;
pub(crate) const APPS: usize = 20;

/// xorshift64*: a fixed, dependency-free random stream.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub(crate) fn pod_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, (k / 250) as u8, (k % 250 + 1) as u8)
}

/// One NetworkPolicy: selects one app of its namespace, admits a mix of
/// peers (same-namespace app, namespaces of a team, an address block) on
/// a mix of ports (number, range, named); every fourth also isolates
/// egress.
pub(crate) fn network_policy(rng: &mut Rng, i: usize) -> Value {
    let ns = i % NAMESPACES;
    let app = rng.below(APPS);
    let peer = match rng.below(4) {
        0 | 1 => {
            json!({"podSelector": {"matchLabels": {"app": format!("app-{}", rng.below(APPS))}}})
        }
        2 => json!({
            "namespaceSelector": {"matchLabels": {"team": format!("t{}", rng.below(10))}},
            "podSelector": {"matchLabels": {"tier": "fe"}},
        }),
        _ => json!({"ipBlock": {"cidr": "203.0.113.0/24"}}),
    };
    let port = match rng.below(4) {
        0 => json!({"port": 80}),
        1 => json!({"port": "http"}),
        2 => json!({"port": 9000, "endPort": 9100}),
        _ => json!({"port": 8000 + rng.below(100)}),
    };
    let mut spec = json!({
        "podSelector": {"matchLabels": {"app": format!("app-{app}")}},
        "ingress": [{"from": [peer], "ports": [port]}],
    });
    if i.is_multiple_of(4) {
        spec["policyTypes"] = json!(["Ingress", "Egress"]);
        spec["egress"] = json!([{
            "to": [{"namespaceSelector": {}}],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 8080}],
        }]);
    }
    json!({"metadata": {"name": format!("np-{i}"), "namespace": format!("ns-{ns}")}, "spec": spec})
}

pub(crate) fn typed<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("well-formed")
}

pub(crate) fn put(c: &mut Cluster, o: impl Into<Object>) {
    c.upsert(o.into()).expect("valid");
}

/// 100 namespaces of 100 pods (20 apps × 2 tiers), `policies`
/// NetworkPolicies, three AdminNetworkPolicies and a baseline. Built as
/// typed objects (parsing 20,000 YAML documents would dominate the run).
pub(crate) fn cluster(policies: usize) -> Cluster {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut c = Cluster::new();
    for n in 0..NAMESPACES {
        let env = if n % 3 == 0 { "prod" } else { "dev" };
        let ns = json!({"metadata": {"name": format!("ns-{n}"), "labels": {"team": format!("t{}", n % 10), "env": env}}});
        put(&mut c, typed::<Namespace>(ns));
    }
    for k in 0..PODS {
        let tier = if rng.below(2) == 0 { "fe" } else { "be" };
        let pod = json!({
            "metadata": {
                "name": format!("p-{k}"),
                "namespace": format!("ns-{}", k % NAMESPACES),
                "labels": {"app": format!("app-{}", rng.below(APPS)), "tier": tier},
            },
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080 + rng.below(2)},
                {"name": "metrics", "containerPort": 9090},
            ]}]},
            "status": {"podIP": pod_ip(k).to_string()},
        });
        put(&mut c, typed::<Pod>(pod));
    }
    for i in 0..policies {
        put(&mut c, typed::<NetworkPolicy>(network_policy(&mut rng, i)));
    }
    let admin = [
        json!({"metadata": {"name": "imds"}, "spec": {"priority": 1, "subject": {"namespaces": {}},
            "egress": [{"action": "Deny", "to": [{"networks": ["169.254.0.0/16"]}]}]}}),
        json!({"metadata": {"name": "monitoring"}, "spec": {"priority": 2,
            "subject": {"namespaces": {"matchLabels": {"env": "prod"}}},
            "ingress": [{"action": "Allow", "from": [{"namespaces": {"matchLabels": {"team": "t0"}}}],
                         "ports": [{"namedPort": "metrics"}]}]}}),
        json!({"metadata": {"name": "pass-dev"}, "spec": {"priority": 3,
            "subject": {"namespaces": {"matchLabels": {"env": "dev"}}},
            "egress": [{"action": "Pass", "to": [{"namespaces": {"matchLabels": {"env": "dev"}}}]}]}}),
    ];
    for a in admin {
        put(&mut c, typed::<AdminNetworkPolicy>(a));
    }
    let baseline = json!({"metadata": {"name": "default"}, "spec": {"subject": {"namespaces": {}},
        "egress": [{"action": "Deny", "to": [{"networks": ["203.0.113.0/24"]}]}]}});
    put(&mut c, typed::<BaselineAdminNetworkPolicy>(baseline));
    c
}
