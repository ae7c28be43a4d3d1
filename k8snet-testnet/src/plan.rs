//! The test address plan. Test traffic uses only these ranges, all inside
//! namespaces the test made, so it can never reach a real network:
//!
//! | what | IPv4 | IPv6 |
//! | --- | --- | --- |
//! | pods (node `k` gets a /24 and a /64, `.1`/`::1` is its gateway) | `198.18.0.0/16` | `fd00:18::/48` |
//! | nodes | `198.19.128.0/24` | `fd00:19:1::/64` |
//! | outside clients | `198.19.200.0/24` | `fd00:19:2::/64` |
//!
//! The harness refuses to configure an address outside these ranges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

fn v4(a: [u8; 4], prefix: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(a), prefix))
}

fn v6(segments: [u16; 8], prefix: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(segments), prefix))
}

/// The address plan's ranges; every configured address must be in one.
pub fn allowed_ranges() -> [IpNet; 6] {
    [
        v4([198, 18, 0, 0], 16),
        v4([198, 19, 128, 0], 24),
        v4([198, 19, 200, 0], 24),
        v6([0xfd00, 0x18, 0, 0, 0, 0, 0, 0], 48),
        v6([0xfd00, 0x19, 1, 0, 0, 0, 0, 0], 64),
        v6([0xfd00, 0x19, 2, 0, 0, 0, 0, 0], 64),
    ]
}

/// Whether `ip` belongs to the address plan.
pub fn is_allowed(ip: IpAddr) -> bool {
    allowed_ranges().iter().any(|net| net.contains(&ip))
}

/// Pod `host` of node `node`: `198.18.<node>.<host>/24`.
pub fn pod_v4(node: u8, host: u8) -> IpNet {
    v4([198, 18, node, host], 24)
}

/// Pod `host` of node `node`: `fd00:18:0:<node>::<host>/64`.
pub fn pod_v6(node: u8, host: u16) -> IpNet {
    v6([0xfd00, 0x18, 0, u16::from(node), 0, 0, 0, host], 64)
}

/// The pod gateway of node `node` (IPv4 and IPv6): `198.18.<node>.1/24` and
/// `fd00:18:0:<node>::1/64`.
pub fn gateways(node: u8) -> [IpNet; 2] {
    [pod_v4(node, 1), pod_v6(node, 1)]
}

/// Node `host`'s own address: `198.19.128.<host>/24`.
pub fn node_v4(host: u8) -> IpNet {
    v4([198, 19, 128, host], 24)
}

/// Node `host`'s own address: `fd00:19:1::<host>/64`.
pub fn node_v6(host: u16) -> IpNet {
    v6([0xfd00, 0x19, 1, 0, 0, 0, 0, host], 64)
}

/// Outside client `host`: `198.19.200.<host>/24`.
pub fn client_v4(host: u8) -> IpNet {
    v4([198, 19, 200, host], 24)
}

/// Outside client `host`: `fd00:19:2::<host>/64`.
pub fn client_v6(host: u16) -> IpNet {
    v6([0xfd00, 0x19, 2, 0, 0, 0, 0, host], 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_stay_inside_the_plan() {
        let all = [
            pod_v4(3, 9),
            pod_v6(3, 9),
            node_v4(2),
            node_v6(2),
            client_v4(7),
            client_v6(7),
        ];
        for net in all.into_iter().chain(gateways(0)) {
            assert!(is_allowed(net.addr()), "{net}");
        }
        assert_eq!(pod_v6(0, 1).to_string(), "fd00:18::1/64");
        assert_eq!(pod_v6(1, 2).to_string(), "fd00:18:0:1::2/64");
        assert_eq!(gateways(0)[0].to_string(), "198.18.0.1/24");
    }

    #[test]
    fn other_addresses_are_refused() {
        for ip in [
            "10.0.0.1",
            "192.0.2.2",
            "198.19.0.1",
            "fd00::2",
            "fd00:19:3::1",
            "::1",
        ] {
            assert!(!is_allowed(ip.parse().unwrap()), "{ip}");
        }
    }
}
