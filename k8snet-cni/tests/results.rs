//! Results as Go runtimes and plugins write them (libcni's create.Create,
//! skel's ParsePrevResult, the types' converters): what must be read, and
//! what the conversions to the old versions keep or refuse.

use k8snet_cni::{CniResult, Version};
use serde_json::json;

/// Go's encoding/json takes `null` for a slice as empty and for a struct as
/// absent, and net.IP takes "" as no address, so Go runtimes and plugins
/// accept all of these; so must we, printing them without the empty parts.
#[test]
fn results_with_null_lists_dns_and_empty_gateway_are_read() {
    let cases = [
        json!({"cniVersion": "1.0.0", "interfaces": null, "ips": [{"address": "198.18.0.2/24"}]}),
        json!({"cniVersion": "1.0.0", "ips": null}),
        json!({"cniVersion": null, "ips": [{"address": "198.18.0.2/24"}]}),
        json!({"cniVersion": "1.0.0", "ips": [{"address": "198.18.0.2/24"}], "routes": null}),
        json!({"cniVersion": "1.0.0", "ips": [{"address": "198.18.0.2/24"}], "dns": null}),
        json!({"cniVersion": "1.0.0", "dns": {"nameservers": null, "search": null, "options": null}}),
        json!({"cniVersion": "0.2.0", "ip4": {"ip": "198.18.0.2/24", "routes": null}, "dns": null}),
        json!({"cniVersion": "1.0.0", "ips": [{"address": "198.18.0.2/24", "gateway": ""}],
               "routes": [{"dst": "0.0.0.0/0", "gw": ""}]}),
    ];
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            CniResult::from_json(c, Version::V1_0_0)
                .err()
                .map(|e| format!("{c}: {e}"))
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // What was null or empty is absent when written back.
    let r = CniResult::from_json(&cases[7], Version::V1_0_0).unwrap();
    assert_eq!(
        r.to_json(Version::V1_0_0),
        json!({"cniVersion": "1.0.0", "ips": [{"address": "198.18.0.2/24"}],
               "routes": [{"dst": "0.0.0.0/0"}]})
    );
    let r = CniResult::from_json(&cases[5], Version::V1_0_0).unwrap();
    assert!(r.dns.is_empty());
    assert_eq!(r.to_json(Version::V1_0_0), json!({"cniVersion": "1.0.0"}));
}

/// Go never checks `ips[].interface` against `interfaces` (IPAM plugins
/// exist that print `"interface": 0` with no interfaces); libcni and the
/// reference plugins take such a result, and the index is kept.
#[test]
fn a_dangling_interface_index_is_not_a_decode_error() {
    let v = json!({"cniVersion": "0.3.1",
        "ips": [{"version": "4", "interface": 0, "address": "198.18.0.2/24", "gateway": "198.18.0.1"}]});
    let r = CniResult::from_json(&v, Version::V0_3_1).unwrap();
    assert_eq!(r.ips[0].interface, Some(0));
    assert_eq!(r.to_json(Version::V0_3_1), v);
}

/// A bad address is still an error naming the field.
#[test]
fn a_bad_gateway_is_still_an_error_naming_the_field() {
    let e = CniResult::from_json(
        &json!({"cniVersion": "1.0.0", "ips": [{"address": "198.18.0.2/24", "gateway": "nope"}]}),
        Version::V1_0_0,
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("ips[0].gateway: "), "{e}");
}

/// To 0.2.0 the reference (types/040 convertTo02x) copies only `dst` and
/// `gw` of each route; `mtu`, `advmss`, `priority`, `table`, `scope` are
/// not part of a 0.2.0 route.
#[test]
fn routes_at_020_carry_only_dst_and_gw() {
    let r = CniResult::from_json(
        &json!({"cniVersion": "1.1.0",
                "ips": [{"address": "198.18.0.2/24", "gateway": "198.18.0.1"}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "198.18.0.1", "mtu": 1400,
                            "advmss": 1360, "priority": 10, "table": 100, "scope": 0}]}),
        Version::V1_1_0,
    )
    .unwrap();
    for v in [Version::V0_2_0, Version::V0_1_0] {
        assert_eq!(
            r.to_json(v)["ip4"]["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "198.18.0.1"}]),
            "{v}"
        );
    }
}

/// convertTo02x fails with "cannot convert: no valid IP addresses" when
/// there is no address for `ip4` or `ip6`; a plugin at 0.2.0 printing such
/// a result fails the same way (code 999, as skel makes of a plain error).
#[test]
fn a_result_without_addresses_cannot_be_written_at_020_or_010() {
    let r = CniResult::from_json(
        &json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
                "routes": [{"dst": "0.0.0.0/0"}]}),
        Version::V1_0_0,
    )
    .unwrap();
    for v in [Version::V0_2_0, Version::V0_1_0] {
        let e = r.try_to_json(v).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (999, "cannot convert: no valid IP addresses"),
            "{v}"
        );
        assert!(r.try_to_json_string(v).is_err());
    }
    for v in [Version::V0_3_1, Version::V0_4_0, Version::V1_0_0] {
        assert_eq!(r.try_to_json(v).unwrap(), r.to_json(v));
    }

    // A plugin building its result in the richest shape (as Go's use
    // current.ImplementedSpecVersion), so that printing it converts it.
    struct Empty;
    impl k8snet_cni::Plugin for Empty {
        fn add(&self, _: &k8snet_cni::Request) -> k8snet_cni::Result<CniResult> {
            Ok(CniResult::new(Version::LATEST))
        }
        fn del(&self, _: &k8snet_cni::Request) -> k8snet_cni::Result<()> {
            Ok(())
        }
        fn check(&self, _: &k8snet_cni::Request) -> k8snet_cni::Result<()> {
            Ok(())
        }
    }
    let env = |k: &str| match k {
        "CNI_COMMAND" => Some("ADD".to_owned()),
        "CNI_CONTAINERID" => Some("c1".to_owned()),
        "CNI_NETNS" => Some("/run/netns/p".to_owned()),
        "CNI_IFNAME" => Some("eth0".to_owned()),
        "CNI_PATH" => Some("/nonexistent".to_owned()),
        _ => None,
    };
    let out = k8snet_cni::run_with(
        &Empty,
        env,
        br#"{"cniVersion":"0.2.0","name":"n","type":"empty"}"#,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (out.status, v),
        (
            1,
            json!({"cniVersion": "0.2.0", "code": 999, "msg": "cannot convert: no valid IP addresses"})
        )
    );
    let out = k8snet_cni::run_with(
        &Empty,
        env,
        br#"{"cniVersion":"0.3.1","name":"n","type":"empty"}"#,
    );
    assert_eq!(
        (out.status, out.stdout),
        (0, b"{\"cniVersion\":\"0.3.1\"}\n".to_vec())
    );
}

/// Go's Convert returns a result unchanged when it is already at the
/// requested version: a 0.2.0 result without addresses writes at 0.2.0
/// (and 0.1.0, the same shape), and its routes keep the fields they came
/// with. A result built at the richest version is converted (and fails).
#[test]
fn a_legacy_result_is_written_at_its_own_version_unchanged() {
    let bare = json!({"cniVersion": "0.2.0", "dns": {"nameservers": ["198.19.0.10"]}});
    let r = CniResult::from_json(&bare, Version::V0_2_0).unwrap();
    assert_eq!(r.try_to_json(Version::V0_2_0).unwrap(), bare);
    assert_eq!(
        r.try_to_json_string(Version::V0_1_0).unwrap(),
        r#"{"cniVersion":"0.1.0","dns":{"nameservers":["198.19.0.10"]}}"#
    );
    let routed = json!({"cniVersion": "0.2.0", "ip4": {"ip": "198.18.0.2/24",
        "routes": [{"dst": "0.0.0.0/0", "gw": "198.18.0.1", "mtu": 1400, "priority": 10}]}});
    let r = CniResult::from_json(&routed, Version::V0_2_0).unwrap();
    assert_eq!(r.to_json(Version::V0_2_0), routed);
    assert!(
        CniResult::new(Version::LATEST)
            .try_to_json(Version::V0_2_0)
            .is_err()
    );
}

/// `""` for an interface's `mac`, `sandbox`, `socketPath` or `pciID` is
/// absent (Go's omitempty never prints it), and is not printed back.
#[test]
fn empty_interface_strings_read_as_absent() {
    let r = CniResult::from_json(
        &json!({"cniVersion": "1.1.0",
            "interfaces": [{"name": "cni0", "mac": "", "sandbox": "", "socketPath": "", "pciID": ""}]}),
        Version::V1_1_0,
    )
    .unwrap();
    assert_eq!(
        r.interfaces[0],
        k8snet_cni::Interface {
            name: "cni0".into(),
            ..Default::default()
        }
    );
    assert_eq!(
        r.to_json(Version::V1_1_0)["interfaces"][0],
        json!({"name": "cni0"})
    );
}

/// A conversion that fails (a 1.x result without addresses to 0.2.0) must
/// not come out as an empty 0.2.0 result that then writes at 0.2.0 without
/// complaint: converting fails, as Go's GetAsVersion does.
#[test]
fn converted_does_not_launder_a_failed_conversion() {
    let empty = CniResult::new(Version::LATEST);
    assert!(empty.try_to_json(Version::V0_2_0).is_err());
    let e = empty.try_converted(Version::V0_2_0).unwrap_err();
    assert_eq!(
        (e.code(), e.to_string()),
        (999, "cannot convert: no valid IP addresses".to_owned())
    );
    // What can be converted is, and is marked with the new version.
    let mut one = CniResult::new(Version::LATEST);
    one.ips.push(k8snet_cni::IpConfig {
        address: "198.18.0.2/24".parse().unwrap(),
        gateway: None,
        interface: Some(0),
    });
    let old = one.try_converted(Version::V0_2_0).unwrap();
    assert_eq!(old.cni_version, Version::V0_2_0);
    assert_eq!(old.ips[0].interface, None, "0.2.0 has no interface index");
    // Within the 0.1.0/0.2.0 shape nothing is converted, so nothing fails.
    assert!(
        CniResult::new(Version::V0_1_0)
            .try_converted(Version::V0_2_0)
            .is_ok()
    );
}
