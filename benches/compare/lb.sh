#!/usr/bin/env bash
# k8snet-lb against kube-proxy's nftables shape, in the same run, inside
# network namespaces this script (or the bench) makes; nothing touches the
# host's own namespace. Needs root, nft, and the workspace built with
# --features linux.
#
#   bash benches/compare/lb.sh [SERVICES]      # default 2000
#
# 1. kube-proxy's shape (one transaction through `nft -f`, as knftables
#    does: per Service a chain with an anonymous `numgen random mod 10`
#    vmap, 10 endpoint chains, dispatch through a verdict map) for SERVICES
#    Services x 10 endpoints, timed wall-clock in a fresh namespace;
# 2. k8snet-lb's full sync of the same shape (plan + lowering + one netlink
#    transaction), from the kernel bench in test mode;
# 3. the ratio. (At 10,000 Services kube-proxy's shape took 286 s here, so
#    the default compares at 2,000; pass 10000 to wait for it.)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-2000}
ns="k8snet-lbcmp-$$"
script=$(mktemp)
trap 'ip netns del "$ns" 2>/dev/null || true; rm -f "$script"' EXIT

# --- kube-proxy's shape -------------------------------------------------
{
  echo "table ip k8snet-kpshape {"
  echo "  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }"
  echo "  chain nat-prerouting { type nat hook prerouting priority -100; policy accept; jump services; }"
  echo "  chain nat-output { type nat hook output priority -100; policy accept; jump services; }"
  echo "  chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }"
  echo "  chain mark-for-masquerade { meta mark set meta mark or 0x4000; }"
  awk -v n="$n" 'BEGIN {
    for (i = 0; i < n; i++) {
      s = i + 1; svc = sprintf("198.19.%d.%d", int(s / 256), s % 256)
      printf "  chain svc-%d {\n    ip daddr %s tcp dport 80 ip saddr != 198.18.0.0/16 jump mark-for-masquerade\n    numgen random mod 10 vmap {", i, svc
      for (e = 0; e < 10; e++) printf "%s %d : goto ep-%d-%d", (e ? "," : ""), e, i, e
      print " }\n  }"
      for (e = 0; e < 10; e++) {
        k = (i * 10 + e) % 65000 + 256; ip = sprintf("198.18.%d.%d", int(k / 256), k % 256)
        printf "  chain ep-%d-%d {\n    ip saddr %s jump mark-for-masquerade\n    meta l4proto tcp dnat to %s:8080\n  }\n", i, e, ip, ip
      }
      els = els (i ? ", " : "") sprintf("%s . tcp . 80 : goto svc-%d", svc, i)
    }
    print "  map-elements-placeholder"
    printf "ELEMS %s\n", els
  }'
} > "$script.raw"
# Elements go in with the map, in the same file (one transaction).
elems=$(grep '^ELEMS ' "$script.raw" | cut -c7-)
grep -v '^ELEMS \|map-elements-placeholder' "$script.raw" > "$script"
echo "}" >> "$script"
echo "add element ip k8snet-kpshape service-ips { $elems }" >> "$script"
rm -f "$script.raw"

ip netns add "$ns"
start=$(date +%s.%N)
ip netns exec "$ns" nft -f "$script"
end=$(date +%s.%N)
kp=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
printf 'kube-proxy shape, %d Services x 10 endpoints, nft -f: %.2f s\n' "$n" "$kp"

# --- k8snet-lb ------------------------------------------------------------
line=$(LB_BENCH_SERVICES="$n" cargo bench -q -p k8snet-lb --features linux --bench kernel -- --test full_ 2>&1 | grep '^full sync:' | head -1)
echo "k8snet-lb, $n Services x 10 endpoints: $line"
ours=$(echo "$line" | sed -E 's/.*total ([0-9.]+)s.*/\1/')
awk -v kp="$kp" -v ours="$ours" 'BEGIN { printf "ratio (kube-proxy shape / k8snet-lb): %.1fx\n", kp / ours }'
