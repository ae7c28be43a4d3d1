//! Defaulting and validation cases where this crate once disagreed with the
//! apiserver. Each test states what the apiserver does, with the upstream
//! function that does it, and loads manifests as `k8snet validate` does.

use k8snet_model::{IpFamily, IpFamilyPolicy, Kind, Manifests, Object, Service, SessionAffinity};

fn load(text: &str) -> Manifests {
    let mut m = Manifests::new();
    m.load_str("t.yaml", text);
    m
}

fn errors(m: &Manifests) -> Vec<String> {
    m.errors().iter().map(|e| e.to_string()).collect()
}

fn service(m: &Manifests) -> &Service {
    assert!(m.errors().is_empty(), "{:?}", errors(m));
    match &m.objects()[0].object {
        Object::Service(svc) => svc,
        other => panic!("not a Service: {other:?}"),
    }
}

// Port 10250 on LoadBalancer Services: refused until kubernetes/kubernetes
// PR #129174 ("Remove the limitation on exposing port 10250 externally",
// merged December 2024, v1.33) dropped the check; ValidateService no longer
// has it, so any Service type may expose the port.
#[test]
fn load_balancer_may_expose_port_10250() {
    for ty in ["LoadBalancer", "NodePort", "ClusterIP"] {
        let m = load(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  type: {ty}\n  ports: [{{name: a, port: 80}}, {{name: k, port: 10250}}]\n"
        ));
        assert!(m.errors().is_empty(), "{ty}: {:?}", errors(&m));
        assert_eq!(m.objects().len(), 1, "{ty}");
    }
}

// initIPFamilyFields: with no ipFamilyPolicy the allocator defaults
// SingleStack (RequireDualStack only for headless selectorless Services),
// then refuses two families or two cluster IPs under SingleStack.
#[test]
fn two_families_without_a_policy_are_refused() {
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ipFamilies: [IPv4, IPv6]\n  ports: [{port: 80}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.ipFamilyPolicy: ")
            && errs[0].contains("when multiple IP families are specified"),
        "{errs:#?}"
    );
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  clusterIP: 198.19.0.5\n  clusterIPs: [198.19.0.5, \"fd00:19::5\"]\n  ports: [{port: 80}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.ipFamilyPolicy: ")
            && errs[0].contains("when multiple cluster IPs are specified"),
        "{errs:#?}"
    );
}

#[test]
fn dual_stack_with_an_explicit_policy_is_accepted_and_families_inferred() {
    for policy in ["PreferDualStack", "RequireDualStack"] {
        let m = load(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  ipFamilyPolicy: {policy}\n  clusterIP: 198.19.0.5\n  clusterIPs: [198.19.0.5, \"fd00:19::5\"]\n  ports: [{{port: 80}}]\n"
        ));
        let svc = service(&m);
        assert_eq!(svc.spec.ip_families, [IpFamily::IPv4, IpFamily::IPv6]);
    }
    // A family given for the first IP only: the second is inferred.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv6]\n  clusterIP: \"fd00:19::5\"\n  clusterIPs: [\"fd00:19::5\", 198.19.0.5]\n  ports: [{port: 80}]\n",
    );
    assert_eq!(
        service(&m).spec.ip_families,
        [IpFamily::IPv6, IpFamily::IPv4]
    );
}

// A single-family Service with no policy is SingleStack, and its family
// is inferred from its cluster IP.
#[test]
fn one_family_without_a_policy_is_single_stack() {
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 198.19.0.5\n  ports: [{port: 80}]\n",
    );
    let svc = service(&m);
    assert_eq!(svc.spec.ip_family_policy, Some(IpFamilyPolicy::SingleStack));
    assert_eq!(svc.spec.cluster_ips, ["198.19.0.5"]);
    assert_eq!(svc.spec.ip_families, [IpFamily::IPv4]);
    // Without any IP the policy is still SingleStack; the family is the
    // cluster's default, which a manifest does not tell.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    );
    let svc = service(&m);
    assert_eq!(svc.spec.ip_family_policy, Some(IpFamilyPolicy::SingleStack));
    assert!(svc.spec.ip_families.is_empty());
    assert!(svc.spec.cluster_ips.is_empty());
}

// initIPFamilyFields' special case: a headless Service without a selector
// defaults to RequireDualStack and gets the other family of the one it
// names; with a selector it is SingleStack like any other.
#[test]
fn headless_selectorless_service_defaults_to_require_dual_stack() {
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: None\n  ipFamilies: [IPv6]\n  ports: [{port: 5432}]\n",
    );
    let svc = service(&m);
    assert_eq!(
        svc.spec.ip_family_policy,
        Some(IpFamilyPolicy::RequireDualStack)
    );
    assert_eq!(svc.spec.ip_families, [IpFamily::IPv6, IpFamily::IPv4]);
    // Two families are then fine without a policy.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: None\n  ipFamilies: [IPv4, IPv6]\n  ports: [{port: 5432}]\n",
    );
    assert_eq!(service(&m).spec.ip_families.len(), 2);
    // An explicit SingleStack keeps one family.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: None\n  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv4]\n  ports: [{port: 5432}]\n",
    );
    assert_eq!(service(&m).spec.ip_families, [IpFamily::IPv4]);
    // With a selector: SingleStack, and two families are refused.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: None\n  selector: {app: db}\n  ipFamilies: [IPv4]\n  ports: [{port: 5432}]\n",
    );
    let svc = service(&m);
    assert_eq!(svc.spec.ip_family_policy, Some(IpFamilyPolicy::SingleStack));
    assert_eq!(svc.spec.ip_families, [IpFamily::IPv4]);
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: None\n  selector: {app: db}\n  ipFamilies: [IPv4, IPv6]\n  ports: [{port: 5432}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(": spec.ipFamilyPolicy: "), "{errs:#?}");
}

// NormalizeClusterIPs never fills clusterIP from clusterIPs; then
// ValidateServiceClusterIPsRelatedFields refuses clusterIPs without clusterIP.
#[test]
fn cluster_ips_without_cluster_ip_are_refused() {
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIPs: [198.19.0.5]\n  ports: [{port: 80}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.clusterIPs: ")
            && errs[0].contains("must be empty when `clusterIP` is not specified"),
        "{errs:#?}"
    );
}

// ValidateNetworkPolicySpec only caps policyTypes at two and checks each
// value; [Ingress, Ingress] is stored. Refusing it would drop a deny-all
// policy (failing open), so it is kept, with a warning.
#[test]
fn repeated_policy_type_is_accepted_with_a_warning() {
    let m = load(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: a}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Ingress]\n",
    );
    assert!(m.errors().is_empty(), "{:?}", errors(&m));
    assert_eq!(m.objects().len(), 1);
    assert_eq!(m.objects()[0].object.kind(), Kind::NetworkPolicy);
    let warnings: Vec<String> = m.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains(
            "NetworkPolicy a/deny: spec.policyTypes[1]: Ingress duplicates spec.policyTypes[0]"
        ),
        "{warnings:#?}"
    );
}

// ValidateIPBlock checks `cidr` and each `except` with
// IsValidCIDRForLegacyField: bits set beyond the prefix length are refused
// only under the StrictIPCIDRValidation gate (alpha, off by default), and
// newer apiservers warn (GetWarningsForCIDR). Refusing the policy would drop
// its isolation (failing open), so it is kept, with a warning per value.
#[test]
fn ip_block_with_host_bits_is_accepted_with_a_warning() {
    let m = load(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: a}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.1/24, except: [10.0.0.130/25]}}]}]\n  egress: [{to: [{ipBlock: {cidr: 'fd00::1/64'}}]}]\n",
    );
    assert!(m.errors().is_empty(), "{:?}", errors(&m));
    assert_eq!(m.objects().len(), 1);
    let warnings: Vec<String> = m.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    for (w, (path, value, network, one)) in warnings.iter().zip([
        (
            "spec.ingress[0].from[0].ipBlock.cidr",
            "10.0.0.1/24",
            "10.0.0.0/24",
            "10.0.0.1/32",
        ),
        (
            "spec.ingress[0].from[0].ipBlock.except[0]",
            "10.0.0.130/25",
            "10.0.0.128/25",
            "10.0.0.130/32",
        ),
        (
            "spec.egress[0].to[0].ipBlock.cidr",
            "fd00::1/64",
            "fd00::/64",
            "fd00::1/128",
        ),
    ]) {
        let want = format!(
            "NetworkPolicy a/p: {path}: \"{value}\": has bits set beyond the prefix length; \
             read as the network \"{network}\" (accepted, as the apiserver does; \
             for the one address write \"{one}\")"
        );
        assert!(w.contains(&want), "{w}\nwant: {want}");
    }
}

// validateInitContainers checks host ports one init container at a time
// (they run one by one); validateContainers checks the regular ones together.
#[test]
fn init_container_may_reuse_a_regular_container_host_port() {
    let m = load(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, ports: [{containerPort: 80, hostPort: 8080}]}]\n  initContainers: [{name: b, ports: [{containerPort: 80, hostPort: 8080}]}, {name: c, ports: [{containerPort: 81, hostPort: 8080}]}]\n",
    );
    assert!(m.errors().is_empty(), "{:?}", errors(&m));
    // Two regular containers still conflict.
    let m = load(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, ports: [{containerPort: 80, hostPort: 8080}]}, {name: b, ports: [{containerPort: 81, hostPort: 8080}]}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.containers[1].ports[0].hostPort: "),
        "{errs:#?}"
    );
    // So do two ports of one init container.
    let m = load(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a}]\n  initContainers: [{name: b, ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 81, hostPort: 8080}]}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.initContainers[0].ports[1].hostPort: "),
        "{errs:#?}"
    );
}

// ValidateIngressSpec checks ingressClassName whenever it is set, so ""
// is refused (as real clusters report: `spec.ingressClassName: Invalid
// value: "": a lowercase RFC 1123 subdomain ...`).
#[test]
fn empty_ingress_class_name_is_refused() {
    let m = load(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  ingressClassName: \"\"\n  defaultBackend: {service: {name: web, port: {number: 80}}}\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(": spec.ingressClassName: "), "{errs:#?}");
}

// validateIngressRules uses netutils.ParseIPSloppy, which reads 010.1.1.1
// as an IP, so the apiserver refuses it as a host; so does
// ValidateLoadBalancerStatus for a hostname.
#[test]
fn sloppy_ip_is_not_a_host_name() {
    let m = load(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules: [{host: 010.1.1.1, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.rules[0].host: ")
            && errs[0].contains("must be a DNS name, not an IP address"),
        "{errs:#?}"
    );
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\nstatus:\n  loadBalancer: {ingress: [{hostname: 010.1.1.1}]}\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": status.loadBalancer.ingress[0].hostname: ")
            && errs[0].contains("must be a DNS name, not an IP address"),
        "{errs:#?}"
    );
}

// ValidateService: with spec.loadBalancerSourceRanges empty, the
// service.beta.kubernetes.io/load-balancer-source-ranges annotation is
// checked: Forbidden unless the type is LoadBalancer, and each
// comma-separated, trimmed value must be a CIDR.
#[test]
fn source_ranges_annotation_is_validated() {
    const PATH: &str =
        ": metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]: ";
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {service.beta.kubernetes.io/load-balancer-source-ranges: \"10.0.0.0/8, bad\"}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(PATH) && errs[0].contains("\"bad\""),
        "{errs:#?}"
    );
    // On a non-LoadBalancer Service the annotation is Forbidden.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {service.beta.kubernetes.io/load-balancer-source-ranges: \"10.0.0.0/8\"}\nspec:\n  ports: [{port: 80}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(PATH) && errs[0].contains("LoadBalancer"),
        "{errs:#?}"
    );
    // When the field is set, the annotation is not looked at.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {service.beta.kubernetes.io/load-balancer-source-ranges: \"bad\"}\nspec:\n  type: LoadBalancer\n  loadBalancerSourceRanges: [198.19.200.0/24]\n  ports: [{port: 80}]\n",
    );
    assert!(m.errors().is_empty(), "{:?}", errors(&m));
    // A blank annotation holds no ranges.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {service.beta.kubernetes.io/load-balancer-source-ranges: \" \"}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n",
    );
    assert!(service(&m).load_balancer_source_ranges().is_empty());
}

// cloud-provider's GetLoadBalancerSourceRanges: the field when non-empty,
// otherwise the annotation.
#[test]
fn effective_source_ranges_prefer_the_field_then_the_annotation() {
    let text = |field: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {{service.beta.kubernetes.io/load-balancer-source-ranges: \" 10.0.0.0/8 ,fd00::/8\"}}\nspec:\n  type: LoadBalancer\n{field}  ports: [{{port: 80}}]\n"
        )
    };
    let ranges = |m: &Manifests| -> Vec<String> {
        service(m)
            .load_balancer_source_ranges()
            .iter()
            .map(|n| n.to_string())
            .collect()
    };
    assert_eq!(ranges(&load(&text(""))), ["10.0.0.0/8", "fd00::/8"]);
    assert_eq!(
        ranges(&load(&text(
            "  loadBalancerSourceRanges: [' 198.19.200.7/24']\n"
        ))),
        ["198.19.200.0/24"]
    );
}

// SetDefaults_Service sets sessionAffinity None for every type,
// ExternalName included.
#[test]
fn external_name_gets_session_affinity_default() {
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: ExternalName\n  externalName: foo.example.com\n",
    );
    let svc = service(&m);
    assert_eq!(svc.spec.session_affinity, Some(SessionAffinity::None));
    // Nothing IP-related is defaulted for ExternalName (it would be refused).
    assert_eq!(svc.spec.ip_family_policy, None);
    assert!(svc.spec.ip_families.is_empty());
}

// ValidateService refuses any non-empty clusterIPs on an ExternalName
// Service (`len(service.Spec.ClusterIPs) > 0`), a list holding only an
// empty string included; an empty list, or none, is fine.
#[test]
fn external_name_refuses_any_cluster_ips_list() {
    let text = |extra: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  type: ExternalName\n  externalName: foo.example.com\n{extra}"
        )
    };
    for list in ["[\"\"]", "[\"\", \"\"]", "[198.19.0.9]"] {
        let m = load(&text(&format!("  clusterIPs: {list}\n")));
        let errs = errors(&m);
        assert_eq!(errs.len(), 1, "{list}: {errs:#?}");
        assert!(
            errs[0].contains(": spec.clusterIPs: ")
                && errs[0].contains("may not be set for ExternalName Services"),
            "{list}: {errs:#?}"
        );
        assert!(m.objects().is_empty(), "{list}");
    }
    for ok in ["  clusterIPs: []\n", "  clusterIP: \"\"\n", ""] {
        let m = load(&text(ok));
        assert!(m.errors().is_empty(), "{ok}: {:?}", errors(&m));
    }
}

// ValidateService forbids nodePort only for type ClusterIP; the allocator
// leaves an ExternalName Service's nodePort alone, so it is stored.
#[test]
fn node_port_is_refused_only_for_cluster_ip_services() {
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: ExternalName\n  externalName: foo.example.com\n  ports: [{port: 80, nodePort: 30080}]\n",
    );
    assert!(m.errors().is_empty(), "{:?}", errors(&m));
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80, nodePort: 30080}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.ports[0].nodePort: ")
            && errs[0].contains("may not be used when `type` is ClusterIP"),
        "{errs:#?}"
    );
}

// validatePodIPs reports each bad or repeated address at status.podIPs[i].
#[test]
fn pod_ip_error_path_is_the_list_entry() {
    let m = load(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a}]\nstatus:\n  podIPs: [{ip: nope}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(": status.podIPs[0]: "), "{errs:#?}");
    let m = load(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a}]\nstatus:\n  podIPs: [{ip: 198.18.0.2}, {ip: 198.18.0.2}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(": status.podIPs[1]: "), "{errs:#?}");
}

// validateIngressBackend reports "cannot set both port name & port number"
// and "port name or number is required" at the backend itself.
#[test]
fn ingress_backend_port_errors_are_reported_at_the_backend() {
    let m = load(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  defaultBackend: {service: {name: web, port: {name: http, number: 80}}}\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.defaultBackend: ")
            && errs[0].contains("cannot set both port name & port number"),
        "{errs:#?}"
    );
    let m = load(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\nspec:\n  rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {}}}}]}}]\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.rules[0].http.paths[0].backend: ")
            && errs[0].contains("port name or number is required"),
        "{errs:#?}"
    );
}

// ValidateIngressCreate: the kubernetes.io/ingress.class annotation must
// match ingressClassName; the error names the annotation.
#[test]
fn ingress_class_annotation_mismatch_names_the_annotation() {
    let m = load(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: i\n  annotations: {kubernetes.io/ingress.class: other}\nspec:\n  ingressClassName: k8snet\n  defaultBackend: {service: {name: web, port: {number: 80}}}\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": metadata.annotations[kubernetes.io/ingress.class]: \"other\""),
        "{errs:#?}"
    );
}

// ValidateIPBlock checks `cidr` and each `except` with
// IsValidCIDRForLegacyField and reads them with netutils.ParseCIDRSloppy:
// without StrictIPCIDRValidation (alpha, off by default) the apiserver
// stores IPv4 parts with leading zeros (read as decimal: `010` is 10), a
// prefix length with leading zeros (`/08`, as Go's net.ParseCIDR reads it)
// and IPv4-mapped IPv6 (`::ffff:10.0.0.0/104` is IPv4 10.0.0.0/8), and warns
// (GetWarningsForCIDR) naming what it read. Refusing these would drop the
// policy and its isolation. The strict-subset check compares the written
// mask sizes as Go counts them (a mapped prefix out of 128).
#[test]
fn ip_block_legacy_spellings_are_accepted_with_a_warning() {
    let policy = |cidr: &str, except: &str| {
        load(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: a}}\nspec:\n  podSelector: {{}}\n  ingress: [{{from: [{{ipBlock: {{cidr: '{cidr}', except: [{except}]}}}}]}}]\n"
        ))
    };
    for (cidr, except, read_as) in [
        ("010.0.0.0/8", "'010.002.0.0/16'", "10.0.0.0/8"),
        ("10.0.0.0/08", "'10.2.0.0/016'", "10.0.0.0/8"),
        ("fd00::/064", "'fd00::/0112'", "fd00::/64"),
        ("::ffff:10.0.0.0/104", "'::ffff:10.2.0.0/112'", "10.0.0.0/8"),
        ("10.0.0.0/8", "'::ffff:10.2.0.0/112'", "10.2.0.0/16"),
    ] {
        let m = policy(cidr, except);
        assert!(m.errors().is_empty(), "{cidr} {except}: {:?}", errors(&m));
        assert_eq!(m.objects().len(), 1, "{cidr} {except}");
        let warnings: Vec<String> = m.warnings().iter().map(|w| w.to_string()).collect();
        assert!(
            warnings.iter().any(|w| w.contains(read_as)),
            "{cidr} {except}: {warnings:#?}"
        );
    }
    // Mask sizes as Go counts them: 104 >= 16, not a strict subset.
    let m = policy("::ffff:10.0.0.0/104", "10.2.0.0/16");
    assert_eq!(errors(&m).len(), 1, "{:?}", errors(&m));
    assert!(errors(&m)[0].contains("except[0]"), "{:?}", errors(&m));
}

fn warnings(m: &Manifests) -> Vec<String> {
    m.warnings().iter().map(|w| w.to_string()).collect()
}

/// Asserts one warning names `path`, the value as written and what was read.
fn warned(m: &Manifests, path: &str, value: &str, read_as: &str) {
    let w = warnings(m);
    assert!(
        w.iter()
            .any(|w| w.contains(&format!(": {path}: \"{value}\": "))
                && (w.contains(&format!("read as \"{read_as}\""))
                    || w.contains(&format!("read as the network \"{read_as}\"")))),
        "{path} {value} -> {read_as}: {w:#?}"
    );
}

// ValidateService checks `externalIPs` with IsValidIPForLegacyField and
// `loadBalancerSourceRanges` (and the legacy annotation) with
// IsValidCIDRForLegacyField; ValidateLoadBalancerStatus checks
// `status.loadBalancer.ingress[].ip` with IsValidIPForLegacyField; the
// deprecated `loadBalancerIP` is not validated at all (GetWarningsForService
// only warns, GetWarningsForIP). Without StrictIPCIDRValidation (alpha, off
// by default) they accept IPv4 parts with leading zeros (read as decimal by
// netutils.ParseIPSloppy) and IPv4-mapped IPv6 (an IPv4 address to Go's
// `To4`, so to kube-proxy), and warn naming what was read. Refusing them
// would drop the Service (not proxied at all).
#[test]
fn service_legacy_ip_spellings_are_accepted_with_a_warning() {
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: a}\nspec:\n  type: LoadBalancer\n  loadBalancerSourceRanges: ['010.0.0.0/8', '::ffff:198.19.200.0/120', ' 198.19.201.0/024 ']\n  externalIPs: ['010.1.1.1', '::ffff:198.19.200.50']\n  loadBalancerIP: '198.019.200.60'\n  ports: [{port: 80}]\nstatus:\n  loadBalancer:\n    ingress: [{ip: '198.019.200.61'}, {ip: '::ffff:198.19.200.62'}]\n",
    );
    let svc = service(&m);
    warned(
        &m,
        "spec.loadBalancerSourceRanges[0]",
        "010.0.0.0/8",
        "10.0.0.0/8",
    );
    warned(
        &m,
        "spec.loadBalancerSourceRanges[1]",
        "::ffff:198.19.200.0/120",
        "198.19.200.0/24",
    );
    warned(
        &m,
        "spec.loadBalancerSourceRanges[2]",
        "198.19.201.0/024",
        "198.19.201.0/24",
    );
    warned(&m, "spec.externalIPs[0]", "010.1.1.1", "10.1.1.1");
    warned(
        &m,
        "spec.externalIPs[1]",
        "::ffff:198.19.200.50",
        "198.19.200.50",
    );
    warned(&m, "spec.loadBalancerIP", "198.019.200.60", "198.19.200.60");
    warned(
        &m,
        "status.loadBalancer.ingress[0].ip",
        "198.019.200.61",
        "198.19.200.61",
    );
    warned(
        &m,
        "status.loadBalancer.ingress[1].ip",
        "::ffff:198.19.200.62",
        "198.19.200.62",
    );
    let strings = |v: Vec<String>| v;
    assert_eq!(
        strings(
            svc.load_balancer_source_ranges()
                .iter()
                .map(|n| n.to_string())
                .collect()
        ),
        ["10.0.0.0/8", "198.19.200.0/24", "198.19.201.0/24"]
    );
    let ips =
        |v: Vec<std::net::IpAddr>| -> Vec<String> { v.iter().map(|i| i.to_string()).collect() };
    assert_eq!(ips(svc.external_ips()), ["10.1.1.1", "198.19.200.50"]);
    assert_eq!(
        ips(svc.load_balancer_ingress_ips()),
        ["198.19.200.61", "198.19.200.62"]
    );
    // The annotation is read alike.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {service.beta.kubernetes.io/load-balancer-source-ranges: \"010.0.0.0/8, fd00::/064\"}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n",
    );
    let ranges: Vec<String> = service(&m)
        .load_balancer_source_ranges()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(ranges, ["10.0.0.0/8", "fd00::/64"]);
    assert!(
        warnings(&m)
            .iter()
            .any(|w| w.contains("\"010.0.0.0/8\"") && w.contains("read as \"10.0.0.0/8\"")),
        "{:#?}",
        warnings(&m)
    );
}

// What the legacy validators refuse is still refused, at the field's path;
// a legacy spelling of a special address is that address
// (ValidateNonSpecialIP on what ParseIPSloppy read: `::ffff:127.0.0.1` is
// loopback to Go's IsLoopback).
#[test]
fn service_legacy_ip_fields_still_refuse_what_the_apiserver_refuses() {
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: a}\nspec:\n  type: LoadBalancer\n  loadBalancerSourceRanges: ['10.0.0.0/33', '1.2.3/8']\n  externalIPs: ['10.1.1.256', '0127.0.0.1', '::ffff:127.0.0.1']\n  loadBalancerIP: '010.1.1'\n  ports: [{port: 80}]\nstatus:\n  loadBalancer:\n    ingress: [{ip: nope}]\n",
    );
    let errs = errors(&m);
    for (path, value) in [
        ("spec.loadBalancerSourceRanges[0]", "10.0.0.0/33"),
        ("spec.loadBalancerSourceRanges[1]", "1.2.3/8"),
        ("spec.externalIPs[0]", "10.1.1.256"),
        ("spec.externalIPs[1]", "0127.0.0.1"),
        ("spec.externalIPs[2]", "::ffff:127.0.0.1"),
        ("spec.loadBalancerIP", "010.1.1"),
        ("status.loadBalancer.ingress[0].ip", "nope"),
    ] {
        assert!(
            errs.iter()
                .any(|e| e.contains(&format!(": {path}: \"{value}\""))),
            "{path}: {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 7, "{errs:#?}");
    assert!(
        errs.iter()
            .filter(|e| e.contains("spec.externalIPs[1]") || e.contains("spec.externalIPs[2]"))
            .all(|e| e.contains("loopback")),
        "{errs:#?}"
    );
}

// validateNodeSpec checks `podCIDRs` (and `podCIDR`) with
// IsValidCIDRForLegacyField, and the dual-stack check counts families as
// ParseCIDRSloppy reads them. Node::pod_cidrs reads the networks alike.
#[test]
fn node_pod_cidr_legacy_spellings_are_accepted_with_a_warning() {
    let node = |spec: &str| {
        load(&format!(
            "apiVersion: v1\nkind: Node\nmetadata: {{name: node-1}}\nspec: {spec}\n"
        ))
    };
    let m = node("{podCIDR: '010.244.0.0/24', podCIDRs: ['010.244.0.0/24', 'fd00::1/064']}");
    assert!(m.errors().is_empty(), "{:?}", errors(&m));
    warned(&m, "spec.podCIDRs[0]", "010.244.0.0/24", "10.244.0.0/24");
    warned(&m, "spec.podCIDRs[1]", "fd00::1/064", "fd00::/64");
    let Object::Node(n) = &m.objects()[0].object else {
        panic!("not a Node")
    };
    let cidrs: Vec<String> = n.pod_cidrs().iter().map(|c| c.to_string()).collect();
    assert_eq!(cidrs, ["10.244.0.0/24", "fd00::/64"]);
    // The single-stack field alone is read too.
    let m = node("{podCIDR: '::ffff:10.244.1.0/120'}");
    assert!(m.errors().is_empty(), "{:?}", errors(&m));
    warned(&m, "spec.podCIDR", "::ffff:10.244.1.0/120", "10.244.1.0/24");
    let Object::Node(n) = &m.objects()[0].object else {
        panic!("not a Node")
    };
    assert_eq!(
        n.pod_cidrs(),
        ["10.244.1.0/24".parse::<ipnet::IpNet>().unwrap()]
    );
    // Two of one family once read are refused, and so is what no parser reads.
    let m = node("{podCIDRs: ['010.244.0.0/24', '::ffff:10.245.0.0/120']}");
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(": spec.podCIDRs: "), "{errs:#?}");
    let m = node("{podCIDRs: ['10.244.0.0/33']}");
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": spec.podCIDRs[0]: \"10.244.0.0/33\""),
        "{errs:#?}"
    );
}

// clusterIP/clusterIPs are legacy fields: without StrictIPCIDRValidation
// (alpha, off by default) ValidateServiceClusterIPsRelatedFields checks
// them with IsValidIPForLegacyField, GetWarningsForService warns on each
// clusterIPs entry (GetWarningsForIP), the family checks read them with
// ParseIPSloppy (IsIPv6String, IsDualStackIPStrings: an IPv4-mapped
// address is IPv4), and kube-proxy reads them with ParseIPSloppy.
#[test]
fn cluster_ip_in_a_legacy_spelling_is_stored_by_a_default_apiserver() {
    let mut m = k8snet_model::Manifests::new();
    m.load_str(
        "t.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 010.096.0.10\n  clusterIPs: [010.096.0.10]\n  ports: [{port: 80}]\n",
    );
    let errs: Vec<String> = m.errors().iter().map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{errs:?}");
    warned(&m, "spec.clusterIPs[0]", "010.096.0.10", "10.96.0.10");
    assert_eq!(warnings(&m).len(), 1, "{:#?}", warnings(&m));
    let svc = service(&m);
    assert_eq!(
        svc.cluster_ips(),
        ["10.96.0.10".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(svc.spec.ip_families, [IpFamily::IPv4]);
    // A lone clusterIP is copied into clusterIPs and read the same way.
    let m = load(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: '::ffff:10.96.0.10'\n  ports: [{port: 80}]\n",
    );
    warned(&m, "spec.clusterIPs[0]", "::ffff:10.96.0.10", "10.96.0.10");
    let svc = service(&m);
    assert_eq!(
        svc.cluster_ips(),
        ["10.96.0.10".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(svc.spec.ip_families, [IpFamily::IPv4]);
}

#[test]
fn legacy_cluster_ips_are_checked_as_read() {
    let svc = |spec: &str| {
        load(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {spec}\n"
        ))
    };
    // Dual stack: one address of each family as read.
    let m = svc(
        "{clusterIP: '010.096.0.10', clusterIPs: ['010.096.0.10', 'fd00::000a'], ipFamilyPolicy: PreferDualStack, ports: [{port: 80}]}",
    );
    assert!(m.errors().is_empty(), "{:?}", errors(&m));
    warned(&m, "spec.clusterIPs[1]", "fd00::000a", "fd00::a");
    let ips: Vec<String> = service(&m)
        .cluster_ips()
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(ips, ["10.96.0.10", "fd00::a"]);
    assert_eq!(
        service(&m).spec.ip_families,
        [IpFamily::IPv4, IpFamily::IPv6]
    );
    // An IPv4-mapped address is IPv4: two of one family.
    let m = svc(
        "{clusterIP: '010.096.0.10', clusterIPs: ['010.096.0.10', '::ffff:10.96.0.11'], ipFamilyPolicy: PreferDualStack, ports: [{port: 80}]}",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(": spec.clusterIPs: "), "{errs:#?}");
    // ... and not an IPv6 value.
    let m = svc("{clusterIP: '::ffff:10.96.0.10', ipFamilies: [IPv6], ports: [{port: 80}]}");
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(": spec.clusterIPs[0]: "), "{errs:#?}");
    // clusterIPs[0] must be clusterIP as written (a string compare).
    let m = svc("{clusterIP: '010.096.0.10', clusterIPs: ['10.96.0.10'], ports: [{port: 80}]}");
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(": spec.clusterIPs[0]: "), "{errs:#?}");
    // What no parser reads is refused.
    let m = svc("{clusterIP: '10.96.0.0256', ports: [{port: 80}]}");
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains(": spec.clusterIP: "), "{errs:#?}");
}

// Node status.addresses: ValidateNode does not check the address strings
// at all; kube-proxy (GetNodeHostIPs) and the node IP consumers read
// InternalIP/ExternalIP with ParseIPSloppy. This crate refuses what no
// parser reads there and accepts a legacy spelling with a warning, read as
// kube-proxy reads it.
#[test]
fn node_addresses_in_legacy_spellings_are_read_as_kube_proxy_reads_them() {
    let m = load(
        "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nstatus:\n  addresses:\n  - {type: Hostname, address: node-1}\n  - {type: InternalIP, address: 198.019.128.002}\n  - {type: ExternalIP, address: '::ffff:203.0.113.7'}\n  - {type: InternalIP, address: 198.19.128.2}\n",
    );
    assert!(m.errors().is_empty(), "{:?}", errors(&m));
    warned(
        &m,
        "status.addresses[1].address",
        "198.019.128.002",
        "198.19.128.2",
    );
    warned(
        &m,
        "status.addresses[2].address",
        "::ffff:203.0.113.7",
        "203.0.113.7",
    );
    assert_eq!(warnings(&m).len(), 2, "{:#?}", warnings(&m));
    let Object::Node(n) = &m.objects()[0].object else {
        panic!("not a Node")
    };
    let ips: Vec<String> = n
        .addresses_of(&["InternalIP", "ExternalIP"])
        .iter()
        .map(|i| i.to_string())
        .collect();
    // In list order, each address once.
    assert_eq!(ips, ["198.19.128.2", "203.0.113.7"]);
    let external: Vec<String> = n
        .addresses_of(&["ExternalIP"])
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(external, ["203.0.113.7"]);
    // What no parser reads is still refused.
    let m = load(
        "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nstatus: {addresses: [{type: InternalIP, address: 198.19.128.0256}]}\n",
    );
    let errs = errors(&m);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(": status.addresses[0].address: "),
        "{errs:#?}"
    );
}
