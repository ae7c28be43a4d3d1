#!/usr/bin/env bash
# The main job: builds the `k8snet` command and runs it on the example
# manifests. (Until the node stack lands, the demo validates the example
# manifests: the good set passes, the broken set shows every error with
# file, line, object and field path.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --example k8snet
k8snet=target/release/examples/k8snet
echo "== k8snet validate -f examples/manifests/good"
"$k8snet" validate -f examples/manifests/good
echo "== k8snet validate -f examples/manifests/broken (expected to fail, exit 1)"
if "$k8snet" validate -f examples/manifests/broken; then
  echo "the broken manifests validated: that is a bug" >&2
  exit 1
fi
echo "demo done"
