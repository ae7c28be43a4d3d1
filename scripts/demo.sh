#!/usr/bin/env bash
# The main job: the reference node stack running the demo shop
# (examples/demo) on two nodes, in network namespaces it creates — never in
# the host's. Builds the `k8snet` command and the CNI plugins, brings the
# stack up (as root; without root it prints the plan only), shows that it
# works with ordinary clients inside the pods' namespaces, and leaves it
# running with what to try next. `k8snet node down` removes all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --features linux --examples
k8snet=target/release/examples/k8snet

if [ "$(id -u)" -ne 0 ]; then
  echo "not root: printing the plan of the node stack (a dry run)"
  exec "$k8snet" node up --dry-run --no-serve -f examples/demo
fi

# A stack from an earlier run (even a crashed one) is taken down first.
"$k8snet" node down >/dev/null
"$k8snet" node up --watch -f examples/demo
echo
"$k8snet" node status
run() { echo "\$ $*"; "$@" || true; echo; }
echo
echo "== a few things the stack does (ordinary clients inside the namespaces)"
run ip netns exec k8snet-client-curl dig +search +short web.shop
run ip netns exec k8snet-client-curl curl -s http://web.shop/
run ip netns exec k8snet-client-curl curl -s http://web.shop/
run ip netns exec k8snet-shop-web-1 curl -s http://api.shop/
echo "# denied by NetworkPolicy shop/api (only web may call api): times out"
echo "\$ ip netns exec k8snet-client-curl curl -s -m 1 http://api.shop/"
ip netns exec k8snet-client-curl curl -s -m 1 http://api.shop/ || echo "(no answer: denied)"
echo
run ip netns exec k8snet-client curl -s -H 'Host: shop.example' http://198.19.128.1/api/
run ip netns exec k8snet-client curl -s http://198.19.128.2:30080/
echo "The stack keeps running and follows changes to examples/demo (--watch)."
echo "Try the commands above, edit examples/demo/shop.yaml, then:"
echo "  $k8snet node down"
