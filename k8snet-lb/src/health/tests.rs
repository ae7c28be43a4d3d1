//! The health rules and answers, with injected times (no waiting).

use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn times_print_as_go_prints_a_utc_time() {
    assert_eq!(go_time(None), "0001-01-01 00:00:00 +0000 UTC");
    assert_eq!(go_time(Some(UNIX_EPOCH)), "1970-01-01 00:00:00 +0000 UTC");
    assert_eq!(
        go_time(Some(at(1_700_000_000) + Duration::from_millis(500))),
        "2023-11-14 22:13:20.5 +0000 UTC"
    );
    // A leap day, and a fraction that keeps its leading zeros.
    assert_eq!(
        go_time(Some(at(1_709_208_000) + Duration::from_nanos(1))),
        "2024-02-29 12:00:00.000000001 +0000 UTC"
    );
    assert_eq!(
        go_time(Some(at(951_868_799))),
        "2000-02-29 23:59:59 +0000 UTC"
    );
    assert_eq!(
        go_time(Some(at(4_107_542_400))),
        "2100-03-01 00:00:00 +0000 UTC"
    );
}

#[test]
fn the_service_body_is_laid_out_as_kube_proxy_writes_it() {
    assert_eq!(
        service_body("shop", "web", 2, true),
        "{\n\t\"service\": {\n\t\t\"namespace\": \"shop\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
    );
}

#[test]
fn the_proxy_is_healthy_while_starting_up() {
    let h = ProxyHealth::new(Duration::from_secs(60));
    h.queued_update_at(at(1000));
    let st = h.status_at(at(5000));
    assert!(st.healthy && st.node_eligible && st.last_updated.is_none());
    let (status, _, body) = h.healthz_at(at(5000));
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "{\"lastUpdated\": \"1970-01-01 01:23:20 +0000 UTC\",\"currentTime\": \"1970-01-01 01:23:20 +0000 UTC\", \"nodeEligible\": true}"
    );
}

#[test]
fn a_queued_update_older_than_the_timeout_makes_the_proxy_unhealthy() {
    let h = ProxyHealth::new(Duration::from_secs(60));
    h.updated_at(at(1000));
    h.queued_update_at(at(2000));
    // A later queued update does not restart the clock.
    h.queued_update_at(at(2050));
    assert!(h.status_at(at(2059)).healthy);
    let st = h.status_at(at(2060));
    assert!(!st.healthy);
    assert_eq!(st.last_updated, Some(at(1000)));
    let (status, headers, body) = h.healthz_at(at(2060));
    assert_eq!(status, 503);
    assert_eq!(headers, json_headers());
    assert_eq!(
        body,
        "{\"lastUpdated\": \"1970-01-01 00:16:40 +0000 UTC\",\"currentTime\": \"1970-01-01 00:34:20 +0000 UTC\", \"nodeEligible\": true}"
    );
    assert_eq!(h.livez_at(at(2060)).0, 503);
    // Applying it heals.
    h.updated_at(at(2070));
    assert!(h.status_at(at(9999)).healthy);
    assert_eq!(h.healthz_at(at(9999)).0, 200);
}

#[test]
fn a_node_being_deleted_fails_healthz_but_not_livez_or_services() {
    let h = ProxyHealth::default();
    h.updated_at(at(1000));
    let mut node = k8snet_model::Node::default();
    node.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());
    h.sync_node(&node);
    let (status, _, body) = h.healthz_at(at(1001));
    assert_eq!(status, 503);
    assert!(body.ends_with("\"nodeEligible\": false}"), "{body}");
    assert!(
        body.starts_with("{\"lastUpdated\": \"1970-01-01 00:16:40 +0000 UTC\""),
        "{body}"
    );
    assert_eq!(h.livez_at(at(1001)).0, 200);
    assert!(h.status_at(at(1001)).healthy, "Service health ignores it");
    node.metadata.deletion_timestamp = None;
    h.sync_node(&node);
    assert_eq!(h.healthz_at(at(1001)).0, 200);
}

#[test]
fn the_service_answer_depends_on_endpoints_and_proxy_health() {
    let c = crate::plan::HealthCheck {
        namespace: "shop".into(),
        name: "web".into(),
        node_port: 32000,
        local_endpoints: 0,
    };
    let (status, headers, body) = c.response(true);
    assert_eq!(status, 503);
    assert_eq!(
        headers,
        [
            ("Content-Type", "application/json"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Load-Balancing-Endpoint-Weight", "0"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(body, service_body("shop", "web", 0, true));
    let c = crate::plan::HealthCheck {
        local_endpoints: 3,
        ..c
    };
    assert_eq!(c.response(true).0, 200);
    assert_eq!(c.response(false).0, 503);
    assert!(
        c.response(false)
            .2
            .contains("\"serviceProxyHealthy\": false")
    );
}
