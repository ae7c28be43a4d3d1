#!/usr/bin/env bash
# Node stack timings (issue #9): `node up` of the demo; `node up` of 2 nodes
# x 100 pods with 200 Services; a manifest change applied in the kernel,
# measured from the moment the file is written until the new Service's
# ClusterIP is in the node's nftables map and its name answers in DNS.
# As root; everything happens in the stack's own namespaces.
#   usage: benches/node.sh [k8snet binary]   (default target/release/examples/k8snet)
set -euo pipefail
cd "$(dirname "$0")/.."
k8snet=${1:-target/release/examples/k8snet}
state=/run/k8snet-node-bench
work=$(mktemp -d)
trap '"$k8snet" node down --state-dir "$state" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

ms() { echo $(( $(date +%s%N) / 1000000 )); }

up() {
  local t0 t1
  t0=$(ms)
  "$k8snet" node up --state-dir "$state" "$@" >/dev/null
  t1=$(ms)
  echo $((t1 - t0))
}

# 1. The demo.
for i in 1 2 3; do
  echo "demo node up: $(up -f examples/demo) ms"
  "$k8snet" node down --state-dir "$state" >/dev/null
done

# 2. 2 nodes x 100 pods, 200 Services (each selecting 2 pods, one per node).
python3 - "$work/scale.yaml" <<'PY'
import sys
out = []
for n in (1, 2):
    out.append(f"apiVersion: v1\nkind: Node\nmetadata: {{name: node-{n}}}\n")
for i in range(100):
    for n in (1, 2):
        out.append(
            f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}-{n}, namespace: scale, labels: {{app: a{i}}}}}\n"
            f"spec: {{nodeName: node-{n}, containers: [{{name: c, ports: [{{containerPort: 8080}}]}}]}}\n")
for s in range(200):
    out.append(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{s}, namespace: scale}}\n"
        f"spec: {{selector: {{app: a{s % 100}}}, clusterIP: 198.19.{1 + s // 250}.{1 + s % 250}, ports: [{{port: 80, targetPort: 8080}}]}}\n")
open(sys.argv[1], "w").write("---\n".join(out))
PY
echo "2 nodes x 100 pods, 200 services node up: $(up -f "$work") ms"
"$k8snet" node down --state-dir "$state" >/dev/null

# 3. A change under --watch: a new Service, timed from the write.
cp examples/demo/shop.yaml "$work/shop.yaml"
rm -f "$work/scale.yaml"
up -f "$work" --watch >/dev/null
for i in 1 2 3 4 5; do
  ip=198.19.0.$((100 + i))
  t0=$(ms)
  cat > "$work/new-$i.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: new-$i, namespace: shop}
spec: {selector: {app: web}, clusterIP: $ip, ports: [{port: 80, targetPort: 8080}]}
YAML
  until ip netns exec k8snet-node-2 nft list map inet k8snet-lb service-ips 2>/dev/null | grep -q "$ip " &&
        [ "$(ip netns exec k8snet-client-curl dig +short +time=1 +tries=1 new-$i.shop.svc.cluster.local)" = "$ip" ]; do
    sleep 0.01
  done
  t1=$(ms)
  echo "change applied (nftables + DNS) after $((t1 - t0)) ms"
done
