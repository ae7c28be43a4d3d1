//! The node stack's pure parts (`examples/k8snet/node/`: the plan, the demo
//! servers' request parsing) have unit tests, which run here: `cargo test`
//! must keep building the `k8snet` example as a plain binary for the
//! command-line tests, and an example built as a test harness is not.
#![cfg(feature = "linux")]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/k8snet/node/plan.rs"]
mod plan;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/k8snet/node/servers.rs"]
mod servers;
