//! A pod's `/etc/resolv.conf`, written the way kubelet writes it.

use std::fmt;
use std::net::IpAddr;

use k8snet_model::Pod;

/// kubelet's limit on nameservers (glibc's `MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// kubelet's limit on search domains (ExpandedDNSConfig, GA in 1.28).
pub const MAX_SEARCH_DOMAINS: usize = 32;
/// kubelet's limit on the search line, in characters.
pub const MAX_SEARCH_CHARS: usize = 2048;

/// The contents of a pod's `resolv.conf`. `Display` writes the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// `search` domains, in order.
    pub search: Vec<String>,
    /// `nameserver` addresses.
    pub nameservers: Vec<IpAddr>,
    /// `options`.
    pub options: Vec<String>,
}

impl fmt::Display for ResolvConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.search.is_empty() {
            writeln!(f, "search {}", self.search.join(" "))?;
        }
        for ns in &self.nameservers {
            writeln!(f, "nameserver {ns}")?;
        }
        if !self.options.is_empty() {
            writeln!(f, "options {}", self.options.join(" "))?;
        }
        Ok(())
    }
}

/// The `resolv.conf` kubelet gives `pod` when it resolves through the
/// cluster DNS: `dnsPolicy` ClusterFirst (the default) on the pod network,
/// or ClusterFirstWithHostNet. Search `<ns>.svc.<zone> svc.<zone> <zone>`,
/// at most 3 nameservers, `options ndots:5`.
///
/// `None` when kubelet would not use the cluster DNS: policy `Default`
/// (the node's own file), `None` (only the pod's `dnsConfig`), and
/// ClusterFirst on the host network (which falls back to `Default`).
///
/// ```
/// use k8snet_dns::resolv_conf;
/// use k8snet_model::Pod;
/// let mut pod = Pod::default();
/// pod.metadata.namespace = Some("shop".into());
/// let conf = resolv_conf(&pod, "cluster.local", &["198.19.0.10".parse()?]).unwrap();
/// assert_eq!(conf.to_string(), "search shop.svc.cluster.local svc.cluster.local cluster.local\n\
///     nameserver 198.19.0.10\noptions ndots:5\n");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn resolv_conf(pod: &Pod, cluster_domain: &str, nameservers: &[IpAddr]) -> Option<ResolvConf> {
    let policy = pod.spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !pod.spec.host_network,
        _ => false,
    };
    if !cluster {
        return None;
    }
    let zone = cluster_domain.trim_end_matches('.');
    let ns = pod.metadata.namespace_or_default();
    let mut search = vec![
        format!("{ns}.svc.{zone}"),
        format!("svc.{zone}"),
        zone.to_string(),
    ];
    search.truncate(MAX_SEARCH_DOMAINS);
    while search.join(" ").len() > MAX_SEARCH_CHARS {
        search.pop();
    }
    Some(ResolvConf {
        search,
        nameservers: nameservers.iter().copied().take(MAX_NAMESERVERS).collect(),
        options: vec!["ndots:5".to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, policy: Option<&str>, host: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.namespace = Some(ns.into());
        p.spec.dns_policy = policy.map(str::to_string);
        p.spec.host_network = host;
        p
    }

    #[test]
    fn policies() {
        let ns: Vec<IpAddr> = ["198.19.0.10", "fd00:19::a", "198.19.0.11", "198.19.0.12"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let c = resolv_conf(&pod("web", None, false), "example.test.", &ns).unwrap();
        assert_eq!(
            c.search,
            ["web.svc.example.test", "svc.example.test", "example.test"]
        );
        assert_eq!(c.nameservers.len(), 3, "kubelet keeps three");
        assert!(resolv_conf(&pod("web", None, true), "cluster.local", &ns).is_none());
        assert!(
            resolv_conf(
                &pod("web", Some("ClusterFirstWithHostNet"), true),
                "cluster.local",
                &ns
            )
            .is_some()
        );
        assert!(resolv_conf(&pod("web", Some("Default"), false), "cluster.local", &ns).is_none());
        assert!(resolv_conf(&pod("web", Some("None"), false), "cluster.local", &ns).is_none());
    }
}
