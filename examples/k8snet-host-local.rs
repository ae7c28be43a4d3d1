//! `k8snet-host-local`: the host-local IPAM CNI plugin (a runtime finds it on
//! `CNI_PATH` as `"type": "k8snet-host-local"`). See the `k8snet-cni` crate.

fn main() -> std::process::ExitCode {
    k8snet::cni::run(&k8snet_cni::hostlocal::HostLocal)
}
