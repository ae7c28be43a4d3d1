//! `k8snet-loopback`: the loopback CNI plugin (a runtime finds it on
//! `CNI_PATH` as `"type": "k8snet-loopback"`). See the `k8snet-cni` crate.

fn main() -> std::process::ExitCode {
    k8snet::cni::run(&k8snet_cni::linux::Loopback)
}
