//! Conversions between our types and k8s-openapi's (feature `k8s-openapi`).
#![cfg(feature = "k8s-openapi")]

use std::fmt::Debug;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1 as kcore;
use k8s_openapi::api::discovery::v1 as kdisc;
use k8s_openapi::api::networking::v1 as knet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as kmeta;
use k8s_openapi::apimachinery::pkg::util::intstr;
use k8snet_model::openapi::ConversionError;
use k8snet_model::{
    AddressType, EndpointSlice, Ingress, IngressClass, IntOrString, IpFamily, LabelSelector,
    Namespace, NetworkPolicy, Node, ObjectMeta, PathType, Pod, PodPhase, PolicyType, Protocol,
    Secret, SelectorOperator, Service, ServiceType, TrafficPolicy,
};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Checks every property of a conversion on an object given as the JSON the
/// apiserver would return (only modeled fields), and returns our value:
/// - theirs → ours agrees with deserializing the JSON as ours;
/// - theirs → ours → theirs is the identity, down to the JSON;
/// - ours → theirs → ours is the identity.
fn roundtrip<K, T>(input: Value) -> T
where
    K: DeserializeOwned + Serialize + Clone + PartialEq + Debug + From<T>,
    T: TryFrom<K, Error = ConversionError> + DeserializeOwned + Clone + PartialEq + Debug,
{
    let ours = convert_roundtrip::<K, T>(input.clone());
    let via_json: T = serde_json::from_value(input).expect("ours parses the input");
    assert_eq!(ours, via_json, "TryFrom agrees with serde");
    ours
}

/// [`roundtrip`] without the comparison with serde.
fn convert_roundtrip<K, T>(input: Value) -> T
where
    K: DeserializeOwned + Serialize + Clone + PartialEq + Debug + From<T>,
    T: TryFrom<K, Error = ConversionError> + Clone + PartialEq + Debug,
{
    let theirs: K = serde_json::from_value(input.clone()).expect("k8s-openapi parses the input");
    let ours = T::try_from(theirs.clone()).expect("converts to ours");
    let back = K::from(ours.clone());
    assert_eq!(back, theirs, "theirs → ours → theirs");
    assert_eq!(
        serde_json::to_value(&back).expect("serializes"),
        input,
        "same JSON"
    );
    let again = T::try_from(K::from(ours.clone())).expect("converts back");
    assert_eq!(again, ours, "ours → theirs → ours");
    ours
}

/// The error converting `input` (as a `K`) into a `T`.
fn conversion_error<K, T>(input: Value) -> ConversionError
where
    K: DeserializeOwned,
    T: TryFrom<K, Error = ConversionError> + Debug,
{
    let theirs: K = serde_json::from_value(input).expect("k8s-openapi parses the input");
    T::try_from(theirs).expect_err("conversion fails")
}

fn meta_json() -> Value {
    json!({
        "name": "web",
        "namespace": "shop",
        "labels": {"app": "web", "tier": "frontend"},
        "annotations": {"example.com/owner": "payments"},
        "uid": "6f1c2b8e-0b7a-4a43-9a63-2f5a8d2c1e11",
        "resourceVersion": "48213",
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "generation": 3
    })
}

// ---------------------------------------------------------------- resources

#[test]
fn namespace_roundtrip() {
    let ns: Namespace = roundtrip::<kcore::Namespace, _>(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "shop",
            "labels": {"kubernetes.io/metadata.name": "shop", "team": "payments"},
            "uid": "0e2f6d8a-55a5-4f0b-8d8c-1f3e0c6c9a01",
            "resourceVersion": "17",
            "creationTimestamp": "2024-04-30T08:15:42Z",
            "deletionTimestamp": "2024-05-02T09:00:00Z"
        }
    }));
    assert_eq!(ns.metadata.name, "shop");
    assert_eq!(
        ns.metadata.deletion_timestamp.as_deref(),
        Some("2024-05-02T09:00:00Z")
    );
}

fn node_json() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "worker-1",
            "labels": {
                "kubernetes.io/hostname": "worker-1",
                "topology.kubernetes.io/zone": "eu-west-1a"
            }
        },
        "spec": {
            "podCIDR": "10.244.1.0/24",
            "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"],
            "unschedulable": true
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "192.168.0.11"},
                {"type": "InternalIP", "address": "fd00::11"},
                {"type": "Hostname", "address": "worker-1"}
            ]
        }
    })
}

#[test]
fn node_roundtrip() {
    let node: Node = convert_roundtrip::<kcore::Node, _>(node_json());
    assert_eq!(node.zone(), Some("eu-west-1a"));
    assert_eq!(node.spec.pod_cidr.as_deref(), Some("10.244.1.0/24"));
    assert!(node.spec.unschedulable);
    assert_eq!(node.status.addresses[2].address_type, "Hostname");

    // Serde reads `NodeSpec.pod_cidr` from `podCidr`, not the API's `podCIDR`
    // (core.rs lacks the rename), so compare with serde without that field.
    let mut input = node_json();
    if let Some(spec) = input["spec"].as_object_mut() {
        spec.remove("podCIDR");
    }
    let _: Node = roundtrip::<kcore::Node, _>(input);
}

fn pod_json() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c6f5-x2k8q",
            "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c6f5"},
            "uid": "b3c1a0e2-1c7e-4a8b-9d55-0f4b6e2d7c33",
            "creationTimestamp": "2024-05-01T10:00:05Z"
        },
        "spec": {
            "nodeName": "worker-1",
            "hostname": "web-0",
            "subdomain": "web-headless",
            "dnsPolicy": "ClusterFirst",
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example.com/web:1.4.2",
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9090}
                    ]
                },
                {
                    "name": "dns-cache",
                    "image": "registry.example.com/dns:2.0",
                    "ports": [
                        {"name": "dns", "containerPort": 53, "protocol": "UDP",
                         "hostPort": 5353, "hostIP": "192.168.0.11"}
                    ]
                }
            ],
            "initContainers": [
                {
                    "name": "proxy",
                    "image": "registry.example.com/proxy:0.9",
                    "ports": [{"name": "admin", "containerPort": 15000, "protocol": "SCTP"}]
                }
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.17",
            "podIPs": [{"ip": "10.244.1.17"}, {"ip": "fd00:10:244:1::17"}],
            "hostIP": "192.168.0.11",
            "hostIPs": [{"ip": "192.168.0.11"}, {"ip": "fd00:192:168::11"}],
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"}
            ]
        }
    })
}

#[test]
fn pod_roundtrip() {
    let pod: Pod = roundtrip::<kcore::Pod, _>(pod_json());
    assert_eq!(pod.status.phase, Some(PodPhase::Running));
    assert!(pod.is_ready());
    assert_eq!(pod.named_port("dns", Protocol::Udp), Some(53));
    assert_eq!(pod.named_port("admin", Protocol::Sctp), Some(15000));
    assert_eq!(pod.ips().len(), 2);
    assert_eq!(
        pod.host_ips(),
        ["192.168.0.11", "fd00:192:168::11"].map(|s| s.parse::<std::net::IpAddr>().unwrap())
    );
}

#[test]
fn host_network_pod_roundtrip() {
    let pod: Pod = roundtrip::<kcore::Pod, _>(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-proxy-abcde", "namespace": "kube-system"},
        "spec": {
            "hostNetwork": true,
            "dnsPolicy": "ClusterFirstWithHostNet",
            "containers": [{"name": "kube-proxy"}]
        }
    }));
    assert!(pod.spec.host_network);
    assert_eq!(pod.status, Default::default());
}

fn service_json() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta_json(),
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "protocol": "TCP", "appProtocol": "http", "port": 80,
                 "targetPort": "http", "nodePort": 31080},
                {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353,
                 "nodePort": 31053},
                {"name": "sig", "protocol": "SCTP", "port": 3868, "targetPort": 3868,
                 "nodePort": 31868}
            ],
            "clusterIP": "10.96.12.34",
            "clusterIPs": ["10.96.12.34", "fd00:10:96::1234"],
            "ipFamilies": ["IPv4", "IPv6"],
            "ipFamilyPolicy": "PreferDualStack",
            "externalIPs": ["203.0.113.10"],
            "loadBalancerSourceRanges": ["198.51.100.0/24"],
            "loadBalancerIP": "203.0.113.20",
            "externalTrafficPolicy": "Local",
            "internalTrafficPolicy": "Cluster",
            "healthCheckNodePort": 32456,
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "publishNotReadyAddresses": true,
            "trafficDistribution": "PreferClose",
            "allocateLoadBalancerNodePorts": false,
            "loadBalancerClass": "example.com/lb"
        },
        "status": {
            "loadBalancer": {
                "ingress": [
                    {"ip": "203.0.113.20", "ipMode": "VIP"},
                    {"hostname": "web.lb.example.com", "ipMode": "Proxy"}
                ]
            }
        }
    })
}

#[test]
fn service_roundtrip() {
    let svc: Service = roundtrip::<kcore::Service, _>(service_json());
    assert_eq!(svc.service_type(), ServiceType::LoadBalancer);
    assert_eq!(
        svc.spec
            .ports
            .iter()
            .map(|p| p.protocol)
            .collect::<Vec<_>>(),
        [
            Some(Protocol::Tcp),
            Some(Protocol::Udp),
            Some(Protocol::Sctp)
        ]
    );
    assert_eq!(
        svc.spec.ports[0].target_port,
        Some(IntOrString::String("http".into()))
    );
    assert_eq!(svc.spec.ports[1].target_port, Some(IntOrString::Int(5353)));
    assert_eq!(svc.spec.ip_families, [IpFamily::IPv4, IpFamily::IPv6]);
    assert_eq!(svc.spec.external_traffic_policy, Some(TrafficPolicy::Local));
    assert_eq!(svc.affinity_timeout(), Some(600));
    assert_eq!(svc.metadata.generation, Some(3));
}

#[test]
fn headless_and_external_name_services_roundtrip() {
    let headless: Service = roundtrip::<kcore::Service, _>(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web-headless", "namespace": "shop"},
        "spec": {
            "clusterIP": "None",
            "clusterIPs": ["None"],
            "selector": {"app": "web"},
            "ports": [{"port": 8080, "protocol": "TCP", "targetPort": 8080}]
        },
        // What the apiserver returns for a Service without a load balancer.
        "status": {"loadBalancer": {}}
    }));
    assert!(headless.is_headless());
    let external: Service = roundtrip::<kcore::Service, _>(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}
    }));
    assert_eq!(external.service_type(), ServiceType::ExternalName);
}

fn endpoint_slice_json() -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-abc12",
            "namespace": "shop",
            "labels": {
                "kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"
            },
            "generation": 7
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": ["10.244.1.17"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "hostname": "web-0",
                "nodeName": "worker-1",
                "zone": "eu-west-1a",
                "hints": {
                    "forZones": [{"name": "eu-west-1a"}],
                    "forNodes": [{"name": "worker-1"}]
                },
                "targetRef": {
                    "kind": "Pod",
                    "namespace": "shop",
                    "name": "web-0",
                    "uid": "b3c1a0e2-1c7e-4a8b-9d55-0f4b6e2d7c33"
                }
            },
            {
                "addresses": ["10.244.2.9"],
                "conditions": {"ready": false, "serving": true, "terminating": true},
                "nodeName": "worker-2",
                "zone": "eu-west-1b"
            }
        ],
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 8080, "appProtocol": "http"},
            {"name": "dns", "protocol": "UDP", "port": 5353}
        ]
    })
}

#[test]
fn endpoint_slice_roundtrip() {
    let slice: EndpointSlice = roundtrip::<kdisc::EndpointSlice, _>(endpoint_slice_json());
    assert_eq!(slice.address_type, AddressType::IPv4);
    assert_eq!(slice.service_name(), Some("web"));
    assert!(slice.endpoints[1].conditions.is_serving());
    assert!(!slice.endpoints[1].conditions.is_ready());
    assert_eq!(slice.ports[1].protocol, Some(Protocol::Udp));
}

#[test]
fn fqdn_endpoint_slice_without_endpoints_roundtrip() {
    let slice: EndpointSlice = roundtrip::<kdisc::EndpointSlice, _>(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "ext-1", "namespace": "shop"},
        "addressType": "FQDN",
        "endpoints": []
    }));
    assert_eq!(slice.address_type, AddressType::Fqdn);
    assert!(slice.endpoints.is_empty());
}

fn network_policy_json() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web-allow", "namespace": "shop", "generation": 2},
        "spec": {
            "podSelector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
                    {"key": "canary", "operator": "DoesNotExist"}
                ]
            },
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": "payments"}},
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "role", "operator": "NotIn", "values": ["batch"]}
                                ]
                            }
                        },
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                        {"namespaceSelector": {}}
                    ],
                    "ports": [
                        {"protocol": "TCP", "port": 80},
                        {"port": "http"},
                        {"protocol": "UDP", "port": 30000, "endPort": 32767},
                        {"protocol": "SCTP"}
                    ]
                },
                {}
            ],
            "egress": [
                {"to": [{"podSelector": {"matchExpressions": [
                    {"key": "app", "operator": "Exists"}
                ]}}]},
                {"ports": [], "to": []}
            ],
            "policyTypes": ["Ingress", "Egress"]
        }
    })
}

#[test]
fn network_policy_roundtrip() {
    let np: NetworkPolicy = roundtrip::<knet::NetworkPolicy, _>(network_policy_json());
    let spec = &np.spec;
    assert_eq!(spec.policy_types, [PolicyType::Ingress, PolicyType::Egress]);
    let ingress = spec.ingress.as_ref().expect("ingress");
    let ports = ingress[0].ports.as_ref().expect("ports");
    assert_eq!(ports[1].port, Some(IntOrString::String("http".into())));
    assert_eq!(ports[2].end_port, Some(32767));
    assert_eq!(ports[3].protocol, Some(Protocol::Sctp));
    // An empty rule and empty lists stay distinct from absent ones.
    assert_eq!(ingress[1].from, None);
    let egress = spec.egress.as_ref().expect("egress");
    assert_eq!(egress[1].to, Some(Vec::new()));
    assert_eq!(
        spec.pod_selector.match_expressions[1].operator,
        SelectorOperator::DoesNotExist
    );
}

#[test]
fn deny_all_network_policy_roundtrip() {
    let np: NetworkPolicy = roundtrip::<knet::NetworkPolicy, _>(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": "shop"},
        "spec": {"podSelector": {}, "ingress": [], "policyTypes": ["Ingress"]}
    }));
    assert!(np.spec.pod_selector.is_empty());
    assert_eq!(np.spec.ingress, Some(Vec::new()));
    assert_eq!(np.spec.egress, None);
}

fn ingress_json() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "shop",
            "namespace": "shop",
            "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"},
            "creationTimestamp": "2024-05-01T10:00:00Z"
        },
        "spec": {
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "tls": [{"hosts": ["shop.example.com", "*.shop.example.com"],
                     "secretName": "shop-tls"}],
            "rules": [
                {
                    "host": "shop.example.com",
                    "http": {"paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                        {"path": "/healthz", "pathType": "Exact",
                         "backend": {"service": {"name": "web", "port": {"number": 8080}}}},
                        {"path": "/static", "pathType": "ImplementationSpecific",
                         "backend": {"resource": {"apiGroup": "storage.example.com",
                                                  "kind": "Bucket", "name": "assets"}}}
                    ]}
                },
                {
                    "host": "*.shop.example.com",
                    "http": {"paths": [
                        {"pathType": "ImplementationSpecific",
                         "backend": {"service": {"name": "tenant", "port": {"number": 80}}}}
                    ]}
                },
                {"host": "status.example.com"}
            ]
        }
    })
}

#[test]
fn ingress_roundtrip() {
    let ing: Ingress = roundtrip::<knet::Ingress, _>(ingress_json());
    let paths = &ing.spec.rules[0].http.as_ref().expect("http").paths;
    assert_eq!(
        paths.iter().map(|p| p.path_type).collect::<Vec<_>>(),
        [
            PathType::Prefix,
            PathType::Exact,
            PathType::ImplementationSpecific
        ]
    );
    let web = paths[0].backend.service.as_ref().expect("service");
    assert_eq!(web.port.name.as_deref(), Some("http"));
    assert_eq!(ing.spec.tls[0].secret_name.as_deref(), Some("shop-tls"));
}

#[test]
fn ingress_class_roundtrip() {
    let class: IngressClass = roundtrip::<knet::IngressClass, _>(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {
            "name": "nginx",
            "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}
        },
        "spec": {
            "controller": "k8s.io/ingress-nginx",
            "parameters": {
                "apiGroup": "k8s.nginx.org",
                "kind": "IngressParameters",
                "name": "external",
                "scope": "Namespace",
                "namespace": "ingress-nginx"
            }
        }
    }));
    assert!(class.is_default());
    assert_eq!(class.spec.controller, "k8s.io/ingress-nginx");
}

#[test]
fn secret_roundtrip() {
    let secret: Secret = roundtrip::<kcore::Secret, _>(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "shop-tls", "namespace": "shop"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUI=",
            "tls.key": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==",
            "empty": ""
        },
        "stringData": {"note": "rotated 2024-05"}
    }));
    assert_eq!(
        secret.data["tls.key"],
        "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg=="
    );
    let theirs = kcore::Secret::from(secret);
    let key = &theirs.data.as_ref().expect("data")["tls.key"];
    assert_eq!(key.0, b"-----BEGIN PRIVATE KEY-----\n");
}

// ---------------------------------------------------------------- errors

#[test]
fn unknown_service_port_protocol_names_the_field() {
    let mut input = service_json();
    input["spec"]["ports"][0]["protocol"] = json!("ICMP");
    let err = conversion_error::<kcore::Service, Service>(input);
    assert_eq!(err.path, "spec.ports[0].protocol");
    assert_eq!(
        err.message,
        r#"unsupported value "ICMP": supported values: "TCP", "UDP", "SCTP""#
    );
    assert_eq!(
        err.to_string(),
        r#"spec.ports[0].protocol: unsupported value "ICMP": supported values: "TCP", "UDP", "SCTP""#
    );
}

#[test]
fn unknown_service_enums_name_their_fields() {
    let cases = [
        ("/spec/type", json!("Internal"), "spec.type"),
        ("/spec/ipFamilies/1", json!("IPv5"), "spec.ipFamilies[1]"),
        (
            "/spec/ipFamilyPolicy",
            json!("DualStack"),
            "spec.ipFamilyPolicy",
        ),
        (
            "/spec/externalTrafficPolicy",
            json!("Global"),
            "spec.externalTrafficPolicy",
        ),
        (
            "/spec/internalTrafficPolicy",
            json!("Node"),
            "spec.internalTrafficPolicy",
        ),
        (
            "/spec/sessionAffinity",
            json!("Cookie"),
            "spec.sessionAffinity",
        ),
        (
            "/spec/ports/2/protocol",
            json!("tcp"),
            "spec.ports[2].protocol",
        ),
    ];
    for (pointer, value, path) in cases {
        let mut input = service_json();
        *input.pointer_mut(pointer).expect(pointer) = value;
        let err = conversion_error::<kcore::Service, Service>(input);
        assert_eq!(err.path, path);
        assert!(err.message.starts_with("unsupported value"), "{err}");
    }
}

#[test]
fn unknown_pod_values_name_their_fields() {
    let cases = [
        (
            "/spec/containers/1/ports/0/protocol",
            json!("ICMP"),
            "spec.containers[1].ports[0].protocol",
        ),
        (
            "/spec/initContainers/0/ports/0/protocol",
            json!("QUIC"),
            "spec.initContainers[0].ports[0].protocol",
        ),
        ("/status/phase", json!("Evicted"), "status.phase"),
    ];
    for (pointer, value, path) in cases {
        let mut input = pod_json();
        *input.pointer_mut(pointer).expect(pointer) = value;
        assert_eq!(conversion_error::<kcore::Pod, Pod>(input).path, path);
    }
}

#[test]
fn unknown_endpoint_slice_values_name_their_fields() {
    let mut input = endpoint_slice_json();
    input["addressType"] = json!("IPv5");
    let err = conversion_error::<kdisc::EndpointSlice, EndpointSlice>(input);
    assert_eq!(err.path, "addressType");
    assert_eq!(
        err.message,
        r#"unsupported value "IPv5": supported values: "IPv4", "IPv6", "FQDN""#
    );

    let mut input = endpoint_slice_json();
    input["ports"][1]["protocol"] = json!("ICMP");
    let err = conversion_error::<kdisc::EndpointSlice, EndpointSlice>(input);
    assert_eq!(err.path, "ports[1].protocol");
}

#[test]
fn unknown_network_policy_values_name_their_fields() {
    let cases = [
        (
            "/spec/ingress/0/ports/2/protocol",
            json!("ICMP"),
            "spec.ingress[0].ports[2].protocol",
        ),
        (
            "/spec/policyTypes/1",
            json!("Forward"),
            "spec.policyTypes[1]",
        ),
        (
            "/spec/podSelector/matchExpressions/0/operator",
            json!("Gt"),
            "spec.podSelector.matchExpressions[0].operator",
        ),
        (
            "/spec/ingress/0/from/0/podSelector/matchExpressions/0/operator",
            json!("in"),
            "spec.ingress[0].from[0].podSelector.matchExpressions[0].operator",
        ),
        (
            "/spec/egress/0/to/0/podSelector/matchExpressions/0/operator",
            json!("Exist"),
            "spec.egress[0].to[0].podSelector.matchExpressions[0].operator",
        ),
    ];
    for (pointer, value, path) in cases {
        let mut input = network_policy_json();
        *input.pointer_mut(pointer).expect(pointer) = value;
        assert_eq!(
            conversion_error::<knet::NetworkPolicy, NetworkPolicy>(input).path,
            path
        );
    }

    let mut input = network_policy_json();
    input["spec"]["ingress"][0]["from"][2]["namespaceSelector"] = json!({
        "matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Lt"}]
    });
    assert_eq!(
        conversion_error::<knet::NetworkPolicy, NetworkPolicy>(input).path,
        "spec.ingress[0].from[2].namespaceSelector.matchExpressions[1].operator"
    );
}

#[test]
fn unknown_path_type_names_the_field() {
    let mut input = ingress_json();
    input["spec"]["rules"][1]["http"]["paths"][0]["pathType"] = json!("Regex");
    let err = conversion_error::<knet::Ingress, Ingress>(input);
    assert_eq!(err.path, "spec.rules[1].http.paths[0].pathType");
    assert_eq!(
        err.message,
        r#"unsupported value "Regex": supported values: "Exact", "Prefix", "ImplementationSpecific""#
    );
}

// ---------------------------------------------------------------- building blocks

#[test]
fn label_selector_both_ways() {
    let theirs = kmeta::LabelSelector {
        match_labels: Some([("app".to_string(), "web".to_string())].into()),
        match_expressions: Some(vec![
            kmeta::LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            },
            kmeta::LabelSelectorRequirement {
                key: "canary".into(),
                operator: "Exists".into(),
                values: None,
            },
        ]),
    };
    let ours = LabelSelector::try_from(theirs.clone()).expect("converts");
    assert_eq!(ours.compile().to_string(), "app=web,tier notin (db),canary");
    assert_eq!(kmeta::LabelSelector::from(ours.clone()), theirs);

    // The empty selector selects everything, either way.
    let empty = LabelSelector::try_from(kmeta::LabelSelector::default()).expect("converts");
    assert!(empty.is_empty());
    assert_eq!(
        kmeta::LabelSelector::from(empty),
        kmeta::LabelSelector::default()
    );

    let mut bad = theirs;
    if let Some(exprs) = bad.match_expressions.as_mut() {
        exprs[1].operator = "Gt".into();
    }
    let err = LabelSelector::try_from(bad).expect_err("unknown operator");
    assert_eq!(err.path, "matchExpressions[1].operator");
    assert!(
        err.message
            .contains(r#""In", "NotIn", "Exists", "DoesNotExist""#)
    );
}

#[test]
fn int_or_string_both_ways() {
    for (theirs, ours) in [
        (intstr::IntOrString::Int(8080), IntOrString::Int(8080)),
        (intstr::IntOrString::Int(-1), IntOrString::Int(-1)),
        (
            intstr::IntOrString::String("http".into()),
            IntOrString::String("http".into()),
        ),
        (
            intstr::IntOrString::String(String::new()),
            IntOrString::String(String::new()),
        ),
    ] {
        assert_eq!(IntOrString::from(theirs.clone()), ours);
        assert_eq!(intstr::IntOrString::from(ours), theirs);
    }
}

#[test]
fn object_meta_both_ways() {
    let theirs: kmeta::ObjectMeta = serde_json::from_value(meta_json()).expect("parses");
    let ours = ObjectMeta::from(theirs.clone());
    assert_eq!(ours.name, "web");
    assert_eq!(ours.namespace.as_deref(), Some("shop"));
    assert_eq!(ours.labels["tier"], "frontend");
    assert_eq!(ours.annotations["example.com/owner"], "payments");
    assert_eq!(ours.resource_version.as_deref(), Some("48213"));
    assert_eq!(
        ours.creation_timestamp.as_deref(),
        Some("2024-05-01T10:00:00Z")
    );
    assert_eq!(ours.generation, Some(3));
    assert_eq!(kmeta::ObjectMeta::from(ours.clone()), theirs);
    assert_eq!(
        ObjectMeta::from(kmeta::ObjectMeta::from(ours.clone())),
        ours
    );

    // Empty values are omitted, as the apiserver's `omitempty`.
    assert_eq!(
        kmeta::ObjectMeta::from(ObjectMeta::default()),
        kmeta::ObjectMeta::default()
    );
    assert_eq!(
        ObjectMeta::from(kmeta::ObjectMeta::default()),
        ObjectMeta::default()
    );
}

#[test]
fn object_meta_timestamps() {
    let mut ours = ObjectMeta::namespaced("shop", "web");
    // A fraction survives; an offset is normalized to UTC.
    ours.creation_timestamp = Some("2024-05-01T10:00:00.25Z".into());
    ours.deletion_timestamp = Some("2024-05-01T12:30:00+02:00".into());
    let back = ObjectMeta::from(kmeta::ObjectMeta::from(ours));
    assert_eq!(
        back.creation_timestamp.as_deref(),
        Some("2024-05-01T10:00:00.25Z")
    );
    assert_eq!(
        back.deletion_timestamp.as_deref(),
        Some("2024-05-01T10:30:00Z")
    );

    // A malformed timestamp is dropped, not a panic.
    let mut ours = ObjectMeta::cluster("n");
    ours.creation_timestamp = Some("yesterday".into());
    ours.deletion_timestamp = Some(String::new());
    let theirs = kmeta::ObjectMeta::from(ours);
    assert_eq!(theirs.creation_timestamp, None);
    assert_eq!(theirs.deletion_timestamp, None);
    assert_eq!(theirs.name.as_deref(), Some("n"));
}

// ---------------------------------------------------------------- lossy edges

#[test]
fn unmodeled_fields_are_dropped() {
    let mut input = pod_json();
    input["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c6f5",
        "uid": "11111111-2222-3333-4444-555555555555", "controller": true
    }]);
    input["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    input["metadata"]["generateName"] = json!("web-7d4b9c6f5-");
    input["spec"]["restartPolicy"] = json!("Always");
    input["spec"]["containers"][0]["args"] = json!(["--port=8080"]);
    input["status"]["qosClass"] = json!("BestEffort");
    input["status"]["startTime"] = json!("2024-05-01T10:00:06Z");
    let theirs: kcore::Pod = serde_json::from_value(input).expect("parses");
    let back = kcore::Pod::from(Pod::try_from(theirs).expect("converts"));
    assert_eq!(serde_json::to_value(back).expect("serializes"), pod_json());

    let mut input = endpoint_slice_json();
    input["endpoints"][0]["targetRef"]["resourceVersion"] = json!("42");
    input["endpoints"][0]["deprecatedTopology"] = json!({"zone": "a"});
    let theirs: kdisc::EndpointSlice = serde_json::from_value(input).expect("parses");
    let back = kdisc::EndpointSlice::from(EndpointSlice::try_from(theirs).expect("converts"));
    assert_eq!(
        serde_json::to_value(back).expect("serializes"),
        endpoint_slice_json()
    );

    let mut input = service_json();
    input["status"]["conditions"] = json!([{
        "type": "Ready", "status": "True", "reason": "Provisioned", "message": "",
        "lastTransitionTime": "2024-05-01T10:00:00Z"
    }]);
    input["status"]["loadBalancer"]["ingress"][0]["ports"] =
        json!([{"port": 80, "protocol": "TCP"}]);
    let theirs: kcore::Service = serde_json::from_value(input).expect("parses");
    let back = kcore::Service::from(Service::try_from(theirs).expect("converts"));
    assert_eq!(
        serde_json::to_value(back).expect("serializes"),
        service_json()
    );
}

#[test]
fn missing_fields_become_defaults_not_errors() {
    // No spec, no status, no name: what deserializing the JSON would give.
    let pod = Pod::try_from(kcore::Pod::default()).expect("converts");
    assert_eq!(pod, Pod::default());
    let svc = Service::try_from(kcore::Service::default()).expect("converts");
    assert_eq!(svc, Service::default());
    let np = NetworkPolicy::try_from(knet::NetworkPolicy::default()).expect("converts");
    assert!(np.spec.pod_selector.is_empty());
    let class = IngressClass::try_from(knet::IngressClass::default()).expect("converts");
    assert_eq!(class.spec.controller, "");
    let ing = Ingress::try_from(knet::Ingress::default()).expect("converts");
    assert_eq!(ing, Ingress::default());
    let node = Node::try_from(kcore::Node::default()).expect("converts");
    assert_eq!(node, Node::default());
    let ns = Namespace::try_from(kcore::Namespace::default()).expect("converts");
    assert_eq!(ns, Namespace::default());
    let secret = Secret::try_from(kcore::Secret::default()).expect("converts");
    assert_eq!(secret, Secret::default());
}

#[test]
fn defaults_convert_to_minimal_objects() {
    assert_eq!(
        serde_json::to_value(kcore::Service::from(Service::default())).expect("serializes"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {}, "spec": {}})
    );
    assert_eq!(
        serde_json::to_value(knet::NetworkPolicy::from(NetworkPolicy::default()))
            .expect("serializes"),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {}, "spec": {"podSelector": {}}
        })
    );
    assert_eq!(
        serde_json::to_value(kcore::Pod::from(Pod::default())).expect("serializes"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"containers": []}})
    );
}

#[test]
fn omitempty_values_normalize() {
    // Explicit empty lists and `false` come back absent.
    let theirs = kcore::Service {
        spec: Some(kcore::ServiceSpec {
            ports: Some(Vec::new()),
            external_ips: Some(Vec::new()),
            publish_not_ready_addresses: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let back = kcore::Service::from(Service::try_from(theirs).expect("converts"));
    assert_eq!(back.spec, Some(kcore::ServiceSpec::default()));
}

#[test]
fn malformed_secret_data_is_dropped() {
    let mut secret = Secret {
        metadata: ObjectMeta::namespaced("shop", "s"),
        ..Default::default()
    };
    secret.data.insert("good".into(), "aGk=".into());
    secret.data.insert("bad".into(), "not base64!".into());
    secret.data.insert("unpadded".into(), "aGk".into());
    let theirs = kcore::Secret::from(secret);
    let data = theirs.data.expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data["good"], ByteString(b"hi".to_vec()));
}

// ---------------------------------------------------------------- properties

fn selector_strategy() -> impl Strategy<Value = LabelSelector> {
    let operator = prop_oneof![
        Just(SelectorOperator::In),
        Just(SelectorOperator::NotIn),
        Just(SelectorOperator::Exists),
        Just(SelectorOperator::DoesNotExist),
    ];
    let requirement = (
        "[a-z./]{1,8}",
        operator,
        prop::collection::vec("[a-z]{0,4}", 0..3),
    )
        .prop_map(
            |(key, operator, values)| k8snet_model::LabelSelectorRequirement {
                key,
                operator,
                values,
            },
        );
    (
        prop::collection::btree_map("[a-z]{1,6}", "[a-z0-9]{0,6}", 0..4),
        prop::collection::vec(requirement, 0..4),
    )
        .prop_map(|(match_labels, match_expressions)| LabelSelector {
            match_labels,
            match_expressions,
        })
}

proptest! {
    #[test]
    fn any_selector_round_trips(selector in selector_strategy()) {
        let theirs = kmeta::LabelSelector::from(selector.clone());
        prop_assert_eq!(LabelSelector::try_from(theirs).expect("converts"), selector);
    }

    /// Our base64 agrees with the one k8s-openapi serializes `ByteString` with.
    #[test]
    fn secret_bytes_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let theirs = kcore::Secret {
            data: Some([("k".to_string(), ByteString(bytes.clone()))].into()),
            ..Default::default()
        };
        let ours = Secret::try_from(theirs.clone()).expect("converts");
        let encoded = serde_json::to_value(ByteString(bytes)).expect("serializes");
        prop_assert_eq!(Some(ours.data["k"].as_str()), encoded.as_str());
        prop_assert_eq!(kcore::Secret::from(ours), theirs);
    }

    /// Whatever k8s-openapi's base64 accepts, ours decodes the same way, and
    /// malformed text never panics.
    #[test]
    fn secret_text_decodes_like_k8s_openapi(text in "[A-Za-z0-9+/=]{0,12}") {
        let mut ours = Secret::default();
        ours.data.insert("k".into(), text.clone());
        let converted = kcore::Secret::from(ours);
        if let Ok(bytes) = serde_json::from_value::<ByteString>(json!(text)) {
            let data = converted.data.expect("decoded");
            prop_assert_eq!(&data["k"], &bytes);
        }
    }

    #[test]
    fn any_protocol_string_converts_or_names_the_field(protocol in "[A-Z]{0,5}") {
        let theirs = knet::NetworkPolicy {
            spec: Some(knet::NetworkPolicySpec {
                egress: Some(vec![knet::NetworkPolicyEgressRule {
                    ports: Some(vec![knet::NetworkPolicyPort {
                        protocol: Some(protocol.clone()),
                        ..Default::default()
                    }]),
                    to: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match NetworkPolicy::try_from(theirs) {
            Ok(np) => {
                let ports = np.spec.egress.expect("egress")[0].ports.clone().expect("ports");
                prop_assert_eq!(ports[0].protocol.map(|p| p.as_str()), Some(protocol.as_str()));
            }
            Err(e) => {
                prop_assert!(!["TCP", "UDP", "SCTP"].contains(&protocol.as_str()));
                prop_assert_eq!(e.path, "spec.egress[0].ports[0].protocol");
            }
        }
    }
}
