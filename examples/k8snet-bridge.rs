//! `k8snet-bridge`: the bridge CNI plugin (a runtime finds it on
//! `CNI_PATH` as `"type": "k8snet-bridge"`). See the `k8snet-cni` crate.

fn main() -> std::process::ExitCode {
    k8snet::cni::run(&k8snet_cni::linux::Bridge)
}
