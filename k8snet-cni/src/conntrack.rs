//! Conntrack for the portmap plugin. The ctnetlink messages, their decoder
//! and (with the `linux` feature) the socket are k8snet-nft's
//! [`k8snet_nft::conntrack`], re-exported here; this module adds which
//! entries portmap deletes.
//!
//! The portmap plugin deletes entries on ADD, as the reference does after
//! its rules are in place: a UDP client that kept sending to a hostPort
//! before the pod existed has a conntrack entry made while no DNAT existed,
//! and its later datagrams keep matching that entry (and so skip the new
//! DNAT) until it expires, which it never does while the client keeps
//! sending. [`stale_udp`] says which entries to delete: protocol UDP,
//! original destination port = a UDP hostPort, in each family the container
//! has an address of, whatever the addresses (the reference matches no
//! address, and neither the `hostIP`).

use std::net::IpAddr;

pub use k8snet_nft::conntrack::{
    AF_INET, AF_INET6, DecodeError, Entry, Reply, Tuple, UDP, decode, delete_request, dump_request,
};

use crate::portmap::Mapping;

/// Which entries to delete: one address family and one original
/// destination port, protocol UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaleUdp {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// The hostPort.
    pub port: u16,
}

impl StaleUdp {
    /// Whether `e` is one of these entries.
    pub fn matches(&self, e: &Entry) -> bool {
        e.family == self.family && e.orig.proto == UDP && e.orig.dport == self.port
    }
}

/// The entries a portmap ADD deletes: for each family of the container's
/// addresses `ips`, the UDP mappings' host ports (sorted, without
/// duplicates).
pub fn stale_udp(maps: &[Mapping], ips: &[IpAddr]) -> Vec<StaleUdp> {
    let mut out: Vec<StaleUdp> = ips
        .iter()
        .flat_map(|ip| {
            let family = if ip.is_ipv4() { AF_INET } else { AF_INET6 };
            maps.iter()
                .filter(|m| m.proto == UDP)
                .map(move |m| StaleUdp {
                    family,
                    port: m.host_port,
                })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
        Tuple {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: UDP,
            sport,
            dport,
        }
    }

    fn map(proto: u8, host_port: u16) -> Mapping {
        Mapping {
            proto,
            host_port,
            container_port: 80,
            host_ip: None,
        }
    }

    #[test]
    fn stale_udp_takes_udp_host_ports_per_family_of_the_container() {
        let maps = [map(6, 8080), map(UDP, 5353), map(UDP, 53), map(UDP, 53)];
        let v4: IpAddr = "198.18.0.2".parse().unwrap();
        let v6: IpAddr = "fd00:18::2".parse().unwrap();
        assert_eq!(
            stale_udp(&maps, &[v4, v6]),
            vec![
                StaleUdp {
                    family: AF_INET,
                    port: 53
                },
                StaleUdp {
                    family: AF_INET,
                    port: 5353
                },
                StaleUdp {
                    family: AF_INET6,
                    port: 53
                },
                StaleUdp {
                    family: AF_INET6,
                    port: 5353
                },
            ]
        );
        assert_eq!(
            stale_udp(&maps, &[v6]),
            vec![
                StaleUdp {
                    family: AF_INET6,
                    port: 53
                },
                StaleUdp {
                    family: AF_INET6,
                    port: 5353
                },
            ]
        );
        assert!(stale_udp(&[map(6, 53), map(132, 53)], &[v4]).is_empty());
        assert!(stale_udp(&maps, &[]).is_empty());
    }

    #[test]
    fn matches_udp_by_family_and_original_destination_port_only() {
        let f = StaleUdp {
            family: AF_INET,
            port: 8080,
        };
        let e = |t: Tuple, family| Entry {
            family,
            orig: t,
            reply: None,
            id: None,
            zone: None,
        };
        assert!(f.matches(&e(
            udp("198.19.200.2", 40000, "198.19.128.1", 8080),
            AF_INET
        )));
        assert!(f.matches(&e(udp("10.0.0.1", 1, "127.0.0.1", 8080), AF_INET)));
        assert!(!f.matches(&e(udp("198.19.200.2", 8080, "198.19.128.1", 80), AF_INET)));
        let tcp = Tuple {
            proto: 6,
            ..udp("198.19.200.2", 40000, "198.19.128.1", 8080)
        };
        assert!(!f.matches(&e(tcp, AF_INET)));
        assert!(!f.matches(&e(udp("fd00:19:2::2", 1, "fd00:19:1::1", 8080), AF_INET6)));
    }
}
