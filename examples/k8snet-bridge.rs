//! `k8snet-bridge`: the bridge CNI plugin (a runtime finds it on
//! `CNI_PATH` as `"type": "k8snet-bridge"`). See the `k8snet-cni` crate.
//!
//! It takes the reference bridge plugin's keys, plus `portIsolation` and
//! `deferDelete` (default `true`: DEL sets the container interface down,
//! removes its addresses, frees its name and leaves deleting the veth pair
//! to a detached process, so DEL does not wait for the kernel's RCU
//! barrier; `false`: DEL deletes the pair before returning, as the
//! reference does). See `k8snet_cni::bridge::BridgeConf`.

fn main() -> std::process::ExitCode {
    k8snet::cni::run(&k8snet_cni::linux::Bridge)
}
