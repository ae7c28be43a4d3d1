#!/usr/bin/env bash
# Side-by-side: k8snet's bridge + host-local CNI plugins against the
# reference ones (Debian's containernetworking-plugins in /usr/lib/cni), in
# the same run, on the same machine. Needs root. Everything runs inside
# network namespaces made here (plugins entered with nsenter into a "node"
# namespace); data dirs live under a temp dir; all of it is removed at exit.
#
#   benches/compare/cni.sh [RUNS [ROUNDS]]   (default 40 runs per figure, 3 rounds)
#
# Each round measures every figure afresh, the two sides interleaved run by
# run with the order alternating (reference first on even runs, ours first
# on odd ones), and prints the load average next to its figures. Times are
# taken with bash's $EPOCHREALTIME (no `date` process inside the interval,
# which would add the same ~1 ms to both sides). Prints per round the
# medians (ms) and the ratios the issue sets, then their spread over the
# rounds:
#   ADD median, ours / reference                      (target <= 0.3)
#   ours: ADD at 60,000 allocations / ADD at none     (target <= 1.5)
#   DEL of a masqueraded network, ours / reference    (target <= 0.1)
# and the masqueraded DEL of ours with "deferDelete": false (the veth pair
# deleted before DEL returns, as the reference does), in the same runs.
set -euo pipefail
RUNS=${1:-40}
ROUNDS=${2:-3}
cd "$(dirname "$0")/../.."
REF=/usr/lib/cni
[ -x $REF/bridge ] || { echo "cni.sh: $REF/bridge missing (scripts/setup.sh installs containernetworking-plugins)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "cni.sh: needs root (network namespaces)" >&2; exit 1; }
[ -n "${CNI_BENCH_NO_BUILD:-}" ] || cargo build -q --release --features linux --example k8snet-bridge --example k8snet-host-local
OURS=${CARGO_TARGET_DIR:-target}/release/examples

TMP=$(mktemp -d)
# Namespaces are made inside command substitutions (subshells), so their
# names go to a file rather than a variable.
delns() { if [ -f "$TMP/netns" ]; then while read -r n; do ip netns del "$n" 2>/dev/null || true; done < "$TMP/netns"; : > "$TMP/netns"; fi; }
cleanup() { delns; rm -rf "$TMP"; }
trap cleanup EXIT
mkns() { echo "$1" >> "$TMP/netns"; ip netns add "$1"; ip -n "$1" link set lo up; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# conf SIDE DATADIR SUBNET MASQ (side "ourssync": ours with "deferDelete":
# false, deleting the veth pair before DEL returns, as the reference does)
conf() {
  local br=bridge ipam=host-local extra=
  [[ $1 == ours* ]] && br=k8snet-bridge ipam=k8snet-host-local
  [[ $1 == ourssync ]] && extra=',"deferDelete":false'
  printf '{"cniVersion":"1.0.0","name":"bench","type":"%s","bridge":"kbr0","isGateway":true,"ipMasq":%s%s,"ipam":{"type":"%s","dataDir":"%s","ranges":[[{"subnet":"%s"}]],"routes":[{"dst":"0.0.0.0/0"}]}}' \
    "$br" "$4" "$extra" "$ipam" "$2" "$3"
}

# call SIDE NODE POD CMD ID CONF  -> prints elapsed µs on stdout (from
# bash's $EPOCHREALTIME: no process is started inside the interval)
call() {
  local side=$1 node=$2 pod=$3 cmd=$4 id=$5 cf=$6 bin dir t0 t1
  if [[ $side == ours* ]]; then bin=$OURS/k8snet-bridge; dir=$OURS; else bin=$REF/bridge; dir=$REF; fi
  printf '%s' "$cf" > "$TMP/in"
  t0=${EPOCHREALTIME/[.,]/}
  CNI_COMMAND=$cmd CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$pod CNI_IFNAME=eth0 CNI_PATH=$dir \
    nsenter --net=/run/netns/$node "$bin" < "$TMP/in" > "$TMP/out" || { echo "cni.sh: $side $cmd failed: $(cat "$TMP/out")" >&2; exit 1; }
  t1=${EPOCHREALTIME/[.,]/}
  echo $((t1 - t0))
}

ms() { awk '{printf "%.1f", $1/1000}'; }

# setup SIDE SUBNET MASQ SEED -> prints "node pod conf-file"; seeds SEED
# allocations as either plugin writes them, then warms up (creates the
# bridge; ours rebuilds its index once after seeding).
setup() {
  local side=$1 subnet=$2 masq=$3 seed=$4 node pod data i n
  [[ $side == *60k ]] || seed=0
  node=b-$side-$RANDOM; pod=$node-p; data=$TMP/data-$node
  mkns "$node"; mkns "$pod"; mkdir -p "$data/bench"
  if [ "$seed" -gt 0 ]; then
    for ((i = 0; i < seed; i++)); do n=$((i + 2)); printf 'seed%d\r\neth0' $i > "$data/bench/198.18.$((n / 256)).$((n % 256))"; done
    n=$((seed + 1)); printf '198.18.%d.%d' $((n / 256)) $((n % 256)) > "$data/bench/last_reserved_ip.0"
  fi
  conf "$side" "$data" "$subnet" "$masq" > "$TMP/conf-$node"
  call "$side" "$node" "$pod" ADD warm "$(cat "$TMP/conf-$node")" >/dev/null
  call "$side" "$node" "$pod" DEL warm "$(cat "$TMP/conf-$node")" >/dev/null
  echo "$node $pod $TMP/conf-$node"
}

# cycle SIDE NODE POD CONF ID -> appends ADD and DEL times (µs) to $TMP/{add,del}.SIDE.TAG
cycle() {
  local side=$1 node=$2 pod=$3 cf=$4 id=$5 tag=$6 prev
  call "$side" "$node" "$pod" ADD "$id" "$cf" >> "$TMP/add.$side.$tag"
  prev=$(tr -d '\n' < "$TMP/out")
  call "$side" "$node" "$pod" DEL "$id" "${cf%\}},\"prevResult\":$prev}" >> "$TMP/del.$side.$tag"
}

# compare TAG SUBNET MASQ SEED RUNS SIDES...: ADD/DEL cycles, the sides
# interleaved run by run so that both see the same machine load, in
# alternating order.
compare() {
  local tag=$1 subnet=$2 masq=$3 seed=$4 runs=$5 side i order; shift 5
  declare -A env
  for side in "$@"; do env[$side]=$(setup "$side" "$subnet" "$masq" "$seed"); : > "$TMP/add.$side.$tag"; : > "$TMP/del.$side.$tag"; done
  for ((i = 0; i < runs; i++)); do
    order=("$@")
    if ((i % 2)); then order=(); for side in "$@"; do order=("$side" "${order[@]}"); done; fi
    for side in "${order[@]}"; do
      read -r node pod cf <<< "${env[$side]}"
      cycle "$side" "$node" "$pod" "$(cat "$cf")" "c$i" "$tag"
    done
  done
}
med() { median < "$TMP/$1"; }

load() { cut -d' ' -f1-3 /proc/loadavg; }
ratio() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN{printf f, a/b}'; }
mins() { sort -n "$TMP/$1" | head -1 | awk '{printf "%.1f", $1/1000}'; }

echo "k8snet-cni vs reference CNI plugins, $RUNS runs per figure, $ROUNDS rounds, $(nproc) CPUs"
: > "$TMP/summary"
for ((round = 1; round <= ROUNDS; round++)); do
  echo
  echo "round $round"
  printf '| figure | load before | reference (ms) | ours (ms) | ratio | target |\n|---|---|---|---|---|---|\n'
  l=$(load); compare plain 198.18.0.0/24 false 0 "$RUNS" ref ours
  ref_add=$(med add.ref.plain); our_add=$(med add.ours.plain); ref_del=$(med del.ref.plain); our_del=$(med del.ours.plain)
  r_add=$(ratio "$our_add" "$ref_add" %.3f)
  printf '| ADD, bridge exists | %s | %s | %s | %s | <= 0.3 |\n' "$l" "$(echo "$ref_add" | ms)" "$(echo "$our_add" | ms)" "$r_add"
  printf '| DEL | %s | %s | %s | %s | |\n' "$l" "$(echo "$ref_del" | ms)" "$(echo "$our_del" | ms)" "$(ratio "$our_del" "$ref_del" %.3f)"
  minimums="minimum ADD: reference $(mins add.ref.plain) ms, ours $(mins add.ours.plain) ms"
  # Ours with 60,000 allocations against ours with none, interleaved; then
  # the reference with 60,000 (a few runs: about 2 s each).
  l=$(load); compare seeded 198.18.0.0/16 false 60000 "$RUNS" ours0 ours60k
  our_add0=$(med add.ours0.seeded); our_add60=$(med add.ours60k.seeded)
  compare seeded 198.18.0.0/16 false 60000 5 ref60k
  ref_add60=$(med add.ref60k.seeded)
  r_60=$(ratio "$our_add60" "$our_add0" %.2f)
  printf '| ADD at 60,000 allocations (reference: 5 runs) | %s | %s | %s | ours 60k/0: %s | <= 1.5 |\n' "$l" "$(echo "$ref_add60" | ms)" "$(echo "$our_add60" | ms)" "$r_60"
  l=$(load); compare masq 198.18.0.0/24 true 0 "$RUNS" ref ours ourssync
  ref_add_m=$(med add.ref.masq); our_add_m=$(med add.ours.masq); ref_del_m=$(med del.ref.masq); our_del_m=$(med del.ours.masq)
  sync_del_m=$(med del.ourssync.masq)
  r_del_m=$(ratio "$our_del_m" "$ref_del_m" %.3f)
  printf '| ADD, ipMasq | %s | %s | %s | %s | |\n' "$l" "$(echo "$ref_add_m" | ms)" "$(echo "$our_add_m" | ms)" "$(ratio "$our_add_m" "$ref_add_m" %.3f)"
  printf '| DEL, ipMasq | %s | %s | %s | %s | <= 0.1 |\n' "$l" "$(echo "$ref_del_m" | ms)" "$(echo "$our_del_m" | ms)" "$r_del_m"
  printf '| DEL, ipMasq, deferDelete false | %s | %s | %s | %s | |\n' "$l" "$(echo "$ref_del_m" | ms)" "$(echo "$sync_del_m" | ms)" "$(ratio "$sync_del_m" "$ref_del_m" %.3f)"
  echo "$minimums; minimum masq DEL: reference $(mins del.ref.masq) ms, ours $(mins del.ours.masq) ms, ours with deferDelete false $(mins del.ourssync.masq) ms; load after: $(load)"
  echo "$r_add $r_60 $r_del_m" >> "$TMP/summary"
  # The next round makes fresh namespaces.
  delns
done
echo
awk '{for (i = 1; i <= 3; i++) {v[i, NR] = $i}} END {
  split("ADD ours/reference (<= 0.3)|ADD ours 60k/0 (<= 1.5)|masq DEL ours/reference (<= 0.1)", name, "|")
  for (i = 1; i <= 3; i++) {
    lo = hi = v[i, 1]; s = ""
    for (r = 1; r <= NR; r++) { if (v[i, r] < lo) lo = v[i, r]; if (v[i, r] > hi) hi = v[i, r]; s = s " " v[i, r] }
    printf "%s over %d rounds:%s (spread %s-%s)\n", name[i], NR, s, lo, hi
  }
}' "$TMP/summary"
