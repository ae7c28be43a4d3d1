//! The bridge plugin's configuration (the reference plugin's keys) and the
//! pure part of its ADD: turning the IPAM result into the plugin's result
//! (interface indexes, gateways, default routes), as the reference does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::config::NetConf;
use crate::env::{Env, validate_ifname};
use crate::error::{Error, Result};
use crate::result::{CniResult, Dns, Route};

/// The reference's default bridge name.
pub const DEFAULT_BRIDGE: &str = "cni0";

fn default_bridge() -> String {
    DEFAULT_BRIDGE.into()
}

fn yes() -> bool {
    true
}

/// The bridge plugin's keys (the reference's names). `vlan`, `vlanTrunk`,
/// `macspoofchk` and `disableContainerInterface` are read and refused with
/// code 2 when set: this plugin does not implement them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BridgeConf {
    /// `bridge`: the bridge's name (default `cni0`).
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// `isGateway`: put the gateway addresses on the bridge, enable forwarding.
    #[serde(default)]
    pub is_gateway: bool,
    /// `isDefaultGateway`: also route by default via the gateway (implies
    /// `isGateway`).
    #[serde(default)]
    pub is_default_gateway: bool,
    /// `forceAddress`: replace a different address of the same family on the bridge.
    #[serde(default)]
    pub force_address: bool,
    /// `ipMasq`: masquerade traffic leaving the pod network (nftables).
    #[serde(default)]
    pub ip_masq: bool,
    /// `ipMasqBackend`: accepted for compatibility; masquerading is always
    /// done with nftables here.
    #[serde(default)]
    pub ip_masq_backend: Option<String>,
    /// `mtu` of the bridge and both veth ends (0: the kernel's default).
    #[serde(default)]
    pub mtu: u32,
    /// `hairpinMode` on the bridge port.
    #[serde(default)]
    pub hairpin_mode: bool,
    /// `promiscMode` on the bridge.
    #[serde(default)]
    pub promisc_mode: bool,
    /// `enabledad`: keep IPv6 DAD on the container interface (off by
    /// default, which saves seconds per pod).
    #[serde(default)]
    pub enabledad: bool,
    /// `portIsolation`: set the bridge-port flag "isolated" on the host end
    /// of the veth (netlink `IFLA_BRPORT_ISOLATED`). The bridge forwards no
    /// frame between two isolated ports, so pods on isolated ports reach
    /// each other only through the node (the bridge device itself, which is
    /// not isolated): with `proxy_arp_pvlan` on the bridge, same-node pod
    /// traffic is routed by the node and passes its forward hook.
    #[serde(default)]
    pub port_isolation: bool,
    /// `deferDelete` (k8snet's own key; default `true`): DEL releases the
    /// addresses (IPAM), removes the masquerade rules, sets the container
    /// interface down, removes its addresses and renames it out of the way
    /// (`k8sdel` + its index in hex, so the name is free for the next ADD
    /// at once), and leaves deleting the veth pair to a detached process;
    /// DEL then returns without waiting for the kernel's RCU barrier that
    /// deleting a veth pair costs (about 20 ms). The host end stays on the
    /// bridge, down and without carrier, until that process is done (it
    /// keeps its alias, so GC would remove it too). If the process cannot
    /// be started, or any of those steps fails, DEL deletes the pair itself.
    /// `false`: DEL deletes the pair before returning, as the reference does.
    #[serde(default = "yes")]
    pub defer_delete: bool,
    #[serde(default)]
    vlan: i64,
    #[serde(default)]
    vlan_trunk: Option<Value>,
    #[serde(default)]
    preserve_default_vlan: Option<bool>,
    #[serde(default)]
    macspoofchk: bool,
    #[serde(default)]
    disable_container_interface: bool,
}

impl BridgeConf {
    /// Reads and checks the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field; [`Error::UnsupportedField`]
    /// (code 2) for options this plugin does not implement.
    pub fn from_conf(conf: &NetConf) -> Result<Self> {
        let mut c: Self = conf.parse_as()?;
        if c.is_default_gateway {
            c.is_gateway = true;
        }
        validate_ifname(&c.bridge).map_err(|m| Error::config("bridge", m))?;
        if c.hairpin_mode && c.promisc_mode {
            return Err(Error::config(
                "hairpinMode",
                "cannot set hairpin mode and promiscuous mode at the same time",
            ));
        }
        let unsupported = [
            ("vlan", c.vlan != 0, c.vlan.to_string()),
            (
                "vlanTrunk",
                c.vlan_trunk.as_ref().is_some_and(|v| !v.is_null()),
                String::new(),
            ),
            ("macspoofchk", c.macspoofchk, "true".into()),
            (
                "disableContainerInterface",
                c.disable_container_interface,
                "true".into(),
            ),
        ];
        if let Some((field, _, value)) = unsupported.into_iter().find(|(_, set, _)| *set) {
            let value = if value.is_empty() {
                conf.raw
                    .get(field)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            } else {
                value
            };
            return Err(Error::UnsupportedField {
                field: field.into(),
                value,
            });
        }
        let _ = c.preserve_default_vlan;
        if c.mtu > 65535 {
            return Err(Error::config(
                "mtu",
                format!("{} is larger than 65535", c.mtu),
            ));
        }
        Ok(c)
    }
}

/// The MAC asked for: `CNI_ARGS` `MAC`, `args.cni.mac` or the `mac`
/// capability (the last wins, as in the reference).
///
/// # Errors
///
/// [`Error::Other`] (code 999, as the reference's loadNetConf, whose
/// `types.LoadArgs` error the Go skeleton reports as internal) for a
/// malformed `CNI_ARGS` (see [`Env::strict_arg`]); [`Error::Config`] (code 7) naming the
/// field it came from when the MAC is not `aa:bb:cc:dd:ee:ff`, or is a
/// multicast or the all-zero address (which no Ethernet interface may
/// have).
pub fn requested_mac(conf: &NetConf, env: &Env) -> Result<Option<[u8; 6]>> {
    let mut found: Option<(String, &str)> = env
        .strict_arg("MAC")?
        .map(|m| (m.to_owned(), "CNI_ARGS.MAC"));
    if let Some(m) = conf.cni_arg("mac").and_then(Value::as_str) {
        found = Some((m.to_owned(), "args.cni.mac"));
    }
    if let Some(m) = conf.runtime_config.get("mac").and_then(Value::as_str) {
        found = Some((m.to_owned(), "runtimeConfig.mac"));
    }
    let Some((text, field)) = found else {
        return Ok(None);
    };
    let mac = parse_mac(&text)
        .ok_or_else(|| Error::config(field, format!("{text:?} is not a MAC address")))?;
    // The kernel refuses both for an Ethernet device (EADDRNOTAVAIL), and
    // only once the veth pair is being created.
    if mac[0] & 1 == 1 {
        return Err(Error::config(
            field,
            format!("{text:?} is a multicast MAC address, not a unicast one"),
        ));
    }
    if mac == [0; 6] {
        return Err(Error::config(
            field,
            format!("{text:?} is the all-zero MAC address, not a usable one"),
        ));
    }
    Ok(Some(mac))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// A MAC from 6 random bytes as the kernel makes a random one
/// (`eth_random_addr`): the multicast bit cleared, the locally administered
/// bit set; missing bytes are 0.
pub fn local_unicast_mac(random: &[u8]) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, b) in out.iter_mut().zip(random) {
        *o = *b;
    }
    out[0] = (out[0] & 0xfe) | 0x02;
    out
}

/// The interface group (`IFLA_GROUP`) the bridge plugin creates the host
/// end of a veth pair of network `network` in: nonzero, derived from the
/// network's name (FNV-1a, folded to 31 bits, lowest bit set; at most
/// `i32::MAX`, which `ip link ... group` accepts). The request
/// that puts the host end on the bridge and labels it with its alias sets
/// the group back to 0 (the default), so only a pair whose ADD has not got
/// that far, or was killed before, is in it: GC of the network removes
/// such a leftover, and GC of another network (another name, another
/// group) or a veth of the reference plugin (group 0) is never taken for
/// one.
pub fn veth_group(network: &str) -> u32 {
    let h = crate::masq::fnv(network);
    (((h ^ (h >> 32)) as u32) & 0x7fff_ffff) | 1
}

/// Formats a MAC as Go does (`aa:bb:cc:dd:ee:ff`).
pub fn format_mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The first address after the network address of `net` (the gateway the
/// reference assumes when IPAM gives none).
pub fn first_host(net: &IpNet) -> IpAddr {
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1))),
    }
}

/// The configuration's `dns` when it replaces what IPAM returned: when any
/// of `nameservers`, `search` or `options` is present and not `null` (an
/// empty list counts), or `domain` is not empty, as the reference's
/// dnsConfSet tests Go's nil slices and empty string. `None` when IPAM's
/// DNS stays.
pub fn configured_dns(conf: &NetConf) -> Option<Dns> {
    let raw = conf.raw.get("dns")?.as_object()?;
    let list_set = ["nameservers", "search", "options"]
        .iter()
        .any(|k| raw.get(*k).is_some_and(|v| !v.is_null()));
    let domain_set = raw
        .get("domain")
        .and_then(Value::as_str)
        .is_some_and(|d| !d.is_empty());
    (list_set || domain_set).then(|| conf.dns.clone().unwrap_or_default())
}

/// Completes the IPAM result as the reference's `calcGateways`: every
/// address belongs to interface 2 (the container's); with `isGateway` a
/// missing gateway is the subnet's first address; with `isDefaultGateway`
/// a default route per family via that gateway is appended unless the IPAM
/// routes already have one with a gateway. Returns the bridge addresses
/// (gateway/prefix) to ensure.
pub fn complete_result(result: &mut CniResult, conf: &BridgeConf) -> Vec<IpNet> {
    let mut bridge_addrs = Vec::new();
    let mut default_done = [false, false];
    for i in 0..result.ips.len() {
        let ip = &mut result.ips[i];
        ip.interface = Some(2);
        if ip.gateway.is_none() && conf.is_gateway {
            ip.gateway = Some(first_host(&ip.address));
        }
        let v4 = ip.address.addr().is_ipv4();
        let gw = ip.gateway;
        let prefix = ip.address.prefix_len();
        let any: IpNet = if v4 {
            IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
        } else {
            IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
        }
        .unwrap_or_default();
        let fam = usize::from(!v4);
        if conf.is_default_gateway && !default_done[fam] {
            let found = result.routes.iter().any(|r| r.gw.is_some() && r.dst == any);
            if !found {
                result.routes.push(Route::new(any, gw));
            }
            default_done[fam] = true;
        }
        if conf.is_gateway
            && let Some(gw) = gw
            && let Ok(net) = IpNet::new(gw, prefix)
        {
            bridge_addrs.push(net);
        }
    }
    bridge_addrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::IpConfig;
    use crate::version::Version;

    fn conf(extra: &str) -> Result<BridgeConf> {
        let c = NetConf::from_slice(
            format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"bridge"{extra}}}"#).as_bytes(),
        )?;
        BridgeConf::from_conf(&c)
    }

    /// dnsConfSet: a list present and not null (empty included) or a
    /// non-empty domain makes the configured DNS replace IPAM's; `null`
    /// lists, an empty domain, `{}` or no `dns` leave IPAM's.
    #[test]
    fn configured_dns_is_set_as_dns_conf_set_decides() {
        let dns = |d: &str| {
            let c = NetConf::from_slice(
                format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"bridge","dns":{d}}}"#)
                    .as_bytes(),
            )
            .unwrap();
            configured_dns(&c)
        };
        for set in [
            r#"{"nameservers":[]}"#,
            r#"{"search":[]}"#,
            r#"{"options":[]}"#,
            r#"{"domain":"cluster.test"}"#,
        ] {
            let got = dns(set).unwrap_or_else(|| panic!("{set} is set"));
            assert_eq!(got.nameservers, Vec::<String>::new(), "{set}");
        }
        assert_eq!(
            dns(r#"{"nameservers":["198.19.0.10"],"search":null}"#).map(|d| d.nameservers),
            Some(vec!["198.19.0.10".to_owned()])
        );
        for unset in [
            "{}",
            "null",
            r#"{"nameservers":null,"search":null,"options":null}"#,
            r#"{"domain":""}"#,
        ] {
            assert_eq!(dns(unset), None, "{unset}");
        }
    }

    #[test]
    fn reads_the_reference_keys() {
        let c = conf(r#","bridge":"br9","isDefaultGateway":true,"ipMasq":true,"mtu":1400,"hairpinMode":true"#).unwrap();
        assert_eq!(c.bridge, "br9");
        assert!(c.is_gateway && c.ip_masq && c.hairpin_mode);
        assert_eq!(c.mtu, 1400);
        assert_eq!(conf("").unwrap().bridge, "cni0");
        let e = conf(r#","hairpinMode":true,"promiscMode":true"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hairpinMode: cannot set hairpin mode and promiscuous mode at the same time"
        );
        let e = conf(r#","vlan":5"#).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string()),
            (2, "vlan: unsupported value 5".into())
        );
        let e = conf(r#","mtu":"big""#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mtu: invalid type: string \"big\", expected u32"
        );
        let e = conf(r#","bridge":"a/b""#).unwrap_err();
        assert!(e.to_string().starts_with("bridge: "), "{e}");
    }

    #[test]
    fn port_isolation_is_read_not_refused() {
        assert!(!conf("").unwrap().port_isolation);
        let c = conf(r#","portIsolation":true,"hairpinMode":true"#).unwrap();
        assert!(c.port_isolation && c.hairpin_mode);
        assert!(!conf(r#","portIsolation":false"#).unwrap().port_isolation);
        // A string is not a boolean (the reference's Go struct refuses it too).
        let e = conf(r#","portIsolation":"true""#).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string()),
            (
                7,
                "portIsolation: invalid type: string \"true\", expected a boolean".into()
            )
        );
    }

    #[test]
    fn link_deletion_is_deferred_unless_turned_off() {
        assert!(conf("").unwrap().defer_delete);
        assert!(conf(r#","deferDelete":true"#).unwrap().defer_delete);
        assert!(!conf(r#","deferDelete":false"#).unwrap().defer_delete);
        let e = conf(r#","deferDelete":"no""#).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string()),
            (
                7,
                "deferDelete: invalid type: string \"no\", expected a boolean".into()
            )
        );
    }

    #[test]
    fn completes_like_calc_gateways() {
        let c = conf(r#","isDefaultGateway":true"#).unwrap();
        let mut r = CniResult::new(Version::V1_0_0);
        r.ips.push(IpConfig {
            address: "198.18.0.5/24".parse().unwrap(),
            gateway: None,
            interface: None,
        });
        r.ips.push(IpConfig {
            address: "fd00:18::5/64".parse().unwrap(),
            gateway: Some("fd00:18::1".parse().unwrap()),
            interface: None,
        });
        r.routes.push(Route::new(
            "::/0".parse().unwrap(),
            Some("fd00:18::1".parse().unwrap()),
        ));
        let addrs = complete_result(&mut r, &c);
        assert_eq!(r.ips[0].gateway, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(r.ips[0].interface, Some(2));
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.routes[1].dst.to_string(), "0.0.0.0/0");
        let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["198.18.0.1/24", "fd00:18::1/64"]);
        assert_eq!(
            parse_mac("0a:58:c6:12:00:05"),
            Some([10, 0x58, 198, 18, 0, 5])
        );
        assert_eq!(format_mac(&[10, 0x58, 198, 18, 0, 5]), "0a:58:c6:12:00:05");
    }

    /// The creation group is never the default group 0, fits `ip`'s
    /// signed group numbers, is the same for
    /// the same network name, and differs between names.
    #[test]
    fn each_network_creates_its_veths_in_its_own_nonzero_group() {
        let names = ["kt", "other", "rv", "", "a", "b", "cbr0", "k8s-pod-network"];
        let groups: Vec<u32> = names.iter().map(|n| veth_group(n)).collect();
        for (n, g) in names.iter().zip(&groups) {
            assert_ne!(*g, 0, "{n:?}");
            assert!(i32::try_from(*g).is_ok(), "{n:?}: {g}");
            assert_eq!(veth_group(n), *g, "{n:?}");
        }
        let distinct: std::collections::BTreeSet<u32> = groups.iter().copied().collect();
        assert_eq!(distinct.len(), names.len(), "{groups:?}");
        for i in 0..1000 {
            assert_ne!(veth_group(&format!("net{i}")), 0);
        }
    }

    /// A requested MAC from each of its three sources: a unicast one is
    /// taken; a malformed, multicast or all-zero one is refused up front
    /// (code 7) naming the field it came from, not by the kernel later.
    #[test]
    fn a_requested_mac_must_be_unicast_and_not_zero() {
        let ask = |source: &str, mac: &str| {
            let (args, extra) = match source {
                "CNI_ARGS.MAC" => (format!("IgnoreUnknown=1;MAC={mac}"), String::new()),
                "args.cni.mac" => (
                    String::new(),
                    format!(r#","args":{{"cni":{{"mac":"{mac}"}}}}"#),
                ),
                _ => (
                    String::new(),
                    format!(r#","runtimeConfig":{{"mac":"{mac}"}}"#),
                ),
            };
            let env = Env::from_lookup(|k| match k {
                "CNI_COMMAND" => Some("ADD".to_owned()),
                "CNI_CONTAINERID" => Some("c1".to_owned()),
                "CNI_NETNS" => Some("/var/run/netns/x".to_owned()),
                "CNI_IFNAME" => Some("eth0".to_owned()),
                "CNI_PATH" => Some("/opt/cni/bin".to_owned()),
                "CNI_ARGS" => Some(args.clone()),
                _ => None,
            })
            .unwrap();
            let conf = NetConf::from_slice(
                format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"bridge"{extra}}}"#).as_bytes(),
            )
            .unwrap();
            requested_mac(&conf, &env)
        };
        for source in ["CNI_ARGS.MAC", "args.cni.mac", "runtimeConfig.mac"] {
            assert_eq!(
                ask(source, "0a:58:c6:12:00:05").unwrap(),
                Some([10, 0x58, 198, 18, 0, 5]),
                "{source}"
            );
            // Globally administered unicast is fine too.
            assert_eq!(
                ask(source, "00:16:3e:00:00:01").unwrap(),
                Some([0, 0x16, 0x3e, 0, 0, 1]),
                "{source}"
            );
            for (bad, why) in [
                ("01:00:5e:00:00:01", "multicast"),
                ("ff:ff:ff:ff:ff:ff", "multicast"),
                ("03:00:00:00:00:00", "multicast"),
                ("00:00:00:00:00:00", "all-zero"),
                ("0a:58:c6:12:00", "not a MAC address"),
            ] {
                let e = ask(source, bad).unwrap_err();
                assert_eq!(
                    e.code(),
                    crate::error::code::INVALID_CONFIG,
                    "{source} {bad}"
                );
                let text = e.to_string();
                assert!(text.starts_with(&format!("{source}: ")), "{text}");
                assert!(text.contains(bad) && text.contains(why), "{text}");
            }
        }
    }

    #[test]
    fn random_bytes_make_a_locally_administered_unicast_mac() {
        // The multicast bit cleared, the local bit set, the rest kept.
        assert_eq!(
            local_unicast_mac(&[0xff, 1, 2, 3, 4, 5]),
            [0xfe, 1, 2, 3, 4, 5]
        );
        assert_eq!(
            local_unicast_mac(&[0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]),
            [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]
        );
        assert_eq!(local_unicast_mac(&[0x13, 9]), [0x12, 9, 0, 0, 0, 0]);
        for b in 0..=255u8 {
            let m = local_unicast_mac(&[b, 0, 0, 0, 0, 1]);
            assert_eq!(m[0] & 0x03, 0x02, "{b:#x}");
            assert_eq!(m[0] & 0xfc, b & 0xfc, "{b:#x}");
        }
    }
}
