//! Pod sandboxes: a namespace per pod, wired through our CNI runtime and
//! plugins (`k8snet-bridge` with `k8snet-host-local`, `k8snet-portmap`,
//! `k8snet-loopback`) run from inside the node namespace, as a container
//! runtime on that node would; and the pod's `resolv.conf` as kubelet
//! writes it.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use k8snet::cni::{CniResult, NetConfList, Runtime, RuntimeConf};
use k8snet::model::{Cluster, Protocol};
use k8snet_testnet::Netns;
use serde_json::json;

use super::kernel::{add_netns, del_netns, ipn, sysctl};
use super::plan::{DNS_V4, NodePlan, POD_BRIDGE, PodPlan, ZONE, proto_name};
use super::state::State;

/// The CNI side of the stack.
pub(crate) struct Cni {
    runtime: Runtime,
    ipam_dir: PathBuf,
    loopback: NetConfList,
}

impl Cni {
    /// Plugins come from the directory of this program (where cargo builds
    /// the `k8snet-*` plugin examples), or `$CNI_PATH`.
    pub(crate) fn new(dir: &Path) -> anyhow::Result<Self> {
        let path = crate::cni::plugin_path(None);
        for plugin in [
            "k8snet-bridge",
            "k8snet-host-local",
            "k8snet-loopback",
            "k8snet-portmap",
        ] {
            k8snet::cni::runtime::find_plugin(plugin, &path).with_context(|| {
                format!(
                    "CNI plugin {plugin} not found (build them: cargo build --release --features linux --examples)"
                )
            })?;
        }
        let loopback = NetConfList::from_slice(
            json!({"cniVersion": "1.1.0", "name": "k8snet-lo", "plugins": [{"type": "k8snet-loopback"}]})
                .to_string()
                .as_bytes(),
        )?;
        Ok(Self {
            runtime: Runtime::new(path, dir.join("cni-cache")),
            ipam_dir: dir.join("ipam"),
            loopback,
        })
    }

    /// The network configuration list of `node`.
    pub(crate) fn conflist(&self, node: &NodePlan) -> anyhow::Result<NetConfList> {
        let gw = node.gateways();
        let conf = json!({
            "cniVersion": "1.1.0",
            "name": format!("k8snet-{}", node.name),
            "plugins": [
                {
                    "type": "k8snet-bridge",
                    "bridge": POD_BRIDGE,
                    "isDefaultGateway": true,
                    "portIsolation": true,
                    "ipam": {
                        "type": "k8snet-host-local",
                        "dataDir": self.ipam_dir,
                        "ranges": [
                            [{"subnet": node.pod_cidrs[0].to_string(), "gateway": gw[0].addr().to_string()}],
                            [{"subnet": node.pod_cidrs[1].to_string(), "gateway": gw[1].addr().to_string()}],
                        ],
                    },
                },
                {"type": "k8snet-portmap", "capabilities": {"portMappings": true}},
            ],
        });
        Ok(NetConfList::from_slice(conf.to_string().as_bytes())?)
    }

    fn runtime_conf(pod: &PodPlan, ifname: &str) -> RuntimeConf {
        // As Kubernetes runtimes do: plugins that read CNI_ARGS with Go's
        // types.LoadArgs refuse keys they do not know without it (the
        // reference bridge does not know `IP`).
        let mut args = vec![("IgnoreUnknown".to_owned(), "1".to_owned())];
        if !pod.requested.is_empty() {
            let ips: Vec<String> = pod.requested.iter().map(ToString::to_string).collect();
            args.push(("IP".to_owned(), ips.join(",")));
        }
        let mut caps = serde_json::Map::new();
        if !pod.host_ports.is_empty() {
            let maps: Vec<_> = pod
                .host_ports
                .iter()
                .map(|(proto, host, container)| {
                    json!({"hostPort": host, "containerPort": container, "protocol": proto_name(*proto)})
                })
                .collect();
            caps.insert("portMappings".into(), maps.into());
        }
        RuntimeConf {
            container_id: pod.netns.clone(),
            netns: Some(Path::new("/run/netns").join(&pod.netns)),
            ifname: ifname.to_owned(),
            args,
            capability_args: caps,
        }
    }

    /// Makes the pod's namespace and attaches it: returns its IPs.
    pub(crate) fn add(
        &self,
        state: &mut State,
        dir: &Path,
        node: &NodePlan,
        pod: &PodPlan,
    ) -> anyhow::Result<Vec<IpAddr>> {
        add_netns(state, dir, &pod.netns)?;
        let list = self.conflist(node)?;
        let rc = Self::runtime_conf(pod, "eth0");
        let lo = Self::runtime_conf(pod, "lo");
        // The plugins run as children of a thread inside the node
        // namespace: the bridge side of the veth is made there.
        let result: anyhow::Result<CniResult> = Netns::named(&node.netns).run(|| {
            let r = self.runtime.add_list(&list, &rc);
            if r.is_err() {
                let _ = self.runtime.del_list(&list, &rc);
            }
            let r = r?;
            self.runtime.add_list(&self.loopback, &lo)?;
            Ok(r)
        })?;
        let result = result.with_context(|| format!("CNI ADD of pod {}", pod.key))?;
        let ips: Vec<IpAddr> = result.ips.iter().map(|c| c.address.addr()).collect();
        if ips.is_empty() {
            bail!("CNI ADD of pod {}: the result has no IP", pod.key);
        }
        // The bridge port is isolated (portIsolation): pod-to-pod traffic
        // goes through the node, which answers ARP for the pods
        // (proxy_arp_pvlan) and, for IPv6, neighbour solicitations (proxy
        // entries).
        for ip in ips.iter().filter(|ip| ip.is_ipv6()) {
            ipn(
                &node.netns,
                &[
                    "-6",
                    "neigh",
                    "add",
                    "proxy",
                    &ip.to_string(),
                    "dev",
                    POD_BRIDGE,
                ],
            )?;
        }
        // The node may redirect IPv6 between ports of its bridge (there is
        // no send_redirects for IPv6); the pod must not follow.
        sysctl(&pod.netns, "net.ipv6.conf.all.accept_redirects", "0")?;
        sysctl(&pod.netns, "net.ipv6.conf.eth0.accept_redirects", "0")?;
        Ok(ips)
    }

    /// Detaches the pod (CNI DEL) and deletes its namespace.
    pub(crate) fn del(&self, node: &NodePlan, pod: &PodPlan) -> anyhow::Result<()> {
        let list = self.conflist(node)?;
        let rc = Self::runtime_conf(pod, "eth0");
        let lo = Self::runtime_conf(pod, "lo");
        let r: anyhow::Result<()> = Netns::named(&node.netns).run(|| {
            self.runtime.del_list(&list, &rc)?;
            let _ = self.runtime.del_list(&self.loopback, &lo);
            Ok(())
        })?;
        del_netns(&pod.netns)?;
        r.with_context(|| format!("CNI DEL of pod {}", pod.key))
    }
}

/// Writes `/etc/netns/<pod>/resolv.conf` (what `ip netns exec` shows the
/// pod's processes), recording it first.
pub(crate) fn write_resolv_conf(
    state: &mut State,
    dir: &Path,
    cluster: &Cluster,
    pod: &PodPlan,
) -> anyhow::Result<()> {
    if pod.host_network {
        return Ok(());
    }
    let Some(p) = cluster.pod(&pod.key) else {
        return Ok(());
    };
    let Some(conf) = k8snet::dns::resolv_conf(p, ZONE, &[IpAddr::V4(DNS_V4)]) else {
        return Ok(());
    };
    let etc = Path::new("/etc/netns").join(&pod.netns);
    if !Path::new("/etc/netns").exists() {
        // Ours to remove again (when empty) at `down`.
        state.files.insert("/etc/netns".into());
    }
    state.files.insert(etc.clone());
    state.save(dir)?;
    fs::create_dir_all(&etc).with_context(|| format!("creating {}", etc.display()))?;
    fs::write(etc.join("resolv.conf"), conf.to_string())
        .with_context(|| format!("writing {}/resolv.conf", etc.display()))?;
    Ok(())
}

/// Protocol of a demo server port, as text.
pub(crate) fn port_text(p: &(Protocol, u16)) -> String {
    format!("{}/{}", p.1, proto_name(p.0))
}
