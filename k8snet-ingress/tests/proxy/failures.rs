//! 404, 502, 503 and 504 that say why; retries on connect failure.

use crate::support::{Backend, dead_addr, get, ingress, load, proxy, service, simple_rule};
use k8snet_model::{Endpoint, EndpointConditions, Object};

#[test]
fn errors_say_why() {
    let live = Backend::start("live", "127.0.0.1");
    let slow = Backend::start("slow", "127.0.0.1");
    let mut objects = service("web", "live", &[live.addr], None);
    objects.extend(service("web", "slow", &[slow.addr], None));
    objects.extend(service(
        "web",
        "dead",
        &[dead_addr("127.0.0.2"), dead_addr("127.0.0.3")],
        None,
    ));
    objects.extend(service("web", "empty", &[], None));
    // A Service whose only endpoint is not ready.
    let mut unready = service("web", "unready", &[live.addr], None);
    if let Object::EndpointSlice(s) = &mut unready[1] {
        s.endpoints[0] = Endpoint {
            addresses: s.endpoints[0].addresses.clone(),
            conditions: EndpointConditions {
                ready: Some(false),
                ..EndpointConditions::default()
            },
            ..Endpoint::default()
        };
    }
    objects.extend(unready);
    objects.extend(load(&format!(
        "{}{}{}{}{}{}",
        ingress("dead", "", &simple_rule("dead.com", "dead")),
        ingress("empty", "", &simple_rule("empty.com", "empty")),
        ingress("unready", "", &simple_rule("unready.com", "unready")),
        ingress("missing", "", &simple_rule("missing.com", "nosuch")),
        ingress("slow", "nginx.ingress.kubernetes.io/proxy-read-timeout: \"1\"", &simple_rule("slow.com", "slow")),
        ingress(
            "badport",
            "",
            "  rules:\n  - host: port.com\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: live, port: {number: 9999}}}}]}"
        ),
    )));
    let p = proxy(objects, false);
    for (host, path, status, why) in [
        (
            "nowhere.com",
            "/x",
            404,
            "no Ingress rule for host \"nowhere.com",
        ),
        (
            "dead.com",
            "/",
            502,
            "no endpoint of service web/dead:80 could be reached: connect to 127.0.0.",
        ),
        (
            "empty.com",
            "/",
            503,
            "service web/empty:80 has no ready endpoints",
        ),
        (
            "unready.com",
            "/",
            503,
            "service web/unready:80 has no ready endpoints",
        ),
        (
            "missing.com",
            "/",
            503,
            "service web/nosuch:80: Service web/nosuch not found",
        ),
        ("port.com", "/", 503, "Service web/live has no port 9999"),
        ("slow.com", "/sleep/3000", 504, "endpoint 127.0.0.1:"),
    ] {
        let got = get(&p, host, path);
        assert_eq!(got.status, status, "{host}: {got:?}");
        assert!(got.body.contains(why), "{host}: {}", got.body);
    }
    let got = get(&p, "dead.com", "/");
    assert!(
        got.body.contains("127.0.0.2") && got.body.contains("127.0.0.3"),
        "both tried: {}",
        got.body
    );
    assert!(
        get(&p, "slow.com", "/sleep/3000")
            .body
            .contains("proxy-read-timeout")
    );
    assert_eq!(get(&p, "slow.com", "/sleep/10").status, 200);
}

#[test]
fn a_refused_connection_is_retried_on_another_endpoint() {
    let live = Backend::start("live", "127.0.0.4");
    let objects = {
        let mut o = service(
            "web",
            "half",
            &[dead_addr("127.0.0.5"), live.addr, dead_addr("127.0.0.6")],
            None,
        );
        o.extend(load(&ingress("half", "", &simple_rule("half.com", "half"))));
        o
    };
    let p = proxy(objects, false);
    for _ in 0..9 {
        let got = get(&p, "half.com", "/");
        assert_eq!((got.status, got.backend()), (200, "live"));
    }
}
