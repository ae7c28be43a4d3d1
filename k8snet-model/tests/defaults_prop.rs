//! Defaulting is idempotent: defaulting twice equals defaulting once, a
//! defaulted Service validates the same after defaulting again, and what
//! `Cluster::objects()` hands out (serialized) loads back the same.

use k8snet_model::{Object, Service, apply_defaults, validate};
use proptest::prelude::*;

fn opt<T: Clone + std::fmt::Debug + 'static>(v: Vec<T>) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(proptest::sample::select(v))
}

fn service() -> impl Strategy<Value = serde_json::Value> {
    (
        opt(vec!["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]),
        opt(vec!["", "None", "198.19.0.1", "fd00:19::1", "bogus"]),
        proptest::option::of(proptest::collection::vec(proptest::sample::select(vec!["", "None", "198.19.0.1", "198.19.0.2", "fd00:19::1", "bogus"]), 0..4)),
        proptest::option::of(proptest::collection::vec(proptest::sample::select(vec!["IPv4", "IPv6"]), 0..3)),
        opt(vec!["SingleStack", "PreferDualStack", "RequireDualStack"]),
        (any::<bool>(), any::<bool>()),
        opt(vec!["None", "ClientIP"]),
        any::<bool>(),
        opt(vec!["10.0.0.0/8", " 10.0.0.0/8 , 192.168.1.1/24", "", "x"]),
    )
        .prop_map(|(ty, cip, cips, fams, pol, (sel, empty_sel), aff, ext_ips, ann)| {
            let mut spec = serde_json::json!({"ports": [{"port": 80, "nodePort": 30080}]});
            if let Some(t) = ty { spec["type"] = t.into(); if t == "ExternalName" { spec["externalName"] = "example.com".into(); } }
            if let Some(c) = cip { spec["clusterIP"] = c.into(); }
            if let Some(c) = cips { spec["clusterIPs"] = c.into(); }
            if let Some(f) = fams { spec["ipFamilies"] = f.into(); }
            if let Some(p) = pol { spec["ipFamilyPolicy"] = p.into(); }
            if sel { spec["selector"] = if empty_sel { serde_json::json!({}) } else { serde_json::json!({"app": "x"}) }; }
            if let Some(a) = aff { spec["sessionAffinity"] = a.into(); spec["sessionAffinityConfig"] = serde_json::json!({"clientIP": {}}); }
            if ext_ips { spec["externalIPs"] = serde_json::json!(["203.0.113.1"]); }
            let mut meta = serde_json::json!({"name": "s", "namespace": "a"});
            if let Some(v) = ann { meta["annotations"] = serde_json::json!({"service.beta.kubernetes.io/load-balancer-source-ranges": v}); }
            serde_json::json!({"metadata": meta, "spec": spec})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    #[test]
    fn service_defaulting_is_idempotent(v in service()) {
        let svc: Service = serde_json::from_value(v.clone()).unwrap();
        let mut once = Object::Service(svc);
        apply_defaults(&mut once);
        let mut twice = once.clone();
        apply_defaults(&mut twice);
        prop_assert_eq!(&once, &twice, "input {}", v);
        let e1: Vec<String> = validate(&once).iter().map(|e| e.to_string()).collect();
        let e2: Vec<String> = validate(&twice).iter().map(|e| e.to_string()).collect();
        prop_assert_eq!(e1, e2);
        // Through serde too: what `Cluster::objects()` hands out loads back the same.
        let json = match &once { Object::Service(s) => serde_json::to_value(s).unwrap(), _ => unreachable!() };
        let mut back = Object::Service(serde_json::from_value(json).unwrap());
        apply_defaults(&mut back);
        prop_assert_eq!(&once, &back);
    }
}
