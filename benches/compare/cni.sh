#!/usr/bin/env bash
# Side-by-side: k8snet's bridge + host-local CNI plugins against the
# reference ones (Debian's containernetworking-plugins in /usr/lib/cni), in
# the same run, on the same machine. Needs root. Everything runs inside
# network namespaces made here; data dirs live under a temp dir; all of it
# is removed at exit.
#
#   benches/compare/cni.sh [RUNS [ROUNDS]]   (default 40 runs per figure, 3 rounds)
#
# How a call is timed. A container runtime execs the plugin directly, in
# the node's namespace. Here each side gets a "node" namespace of its own,
# and a worker bash started once inside it (`ip netns exec NODE bash`,
# talked to through two FIFOs) times each call: $EPOCHREALTIME, fork and
# exec of the plugin with stdin/stdout redirected to files, wait,
# $EPOCHREALTIME. So a timed interval is exactly "bash forks and execs the
# plugin", the same for both sides. CNI_BENCH_NSENTER=1 times the calls the
# way this script did before: from the main shell, each call entering the
# node namespace with `nsenter` (one more fork and exec per call, on both
# sides, about 0.9 ms here).
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
# Our plugins are measured as they are installed (README): static
# executables (glibc linked in with `crt-static`, built for the host's own
# target triple, given explicitly so that the flag reaches only the
# plugins, not build scripts or proc macros), with the `cni-plugin` profile
# (whole-program optimisation). CNI plugins ship static: upstream's are
# static Go binaries (Debian's build used here as the reference is
# dynamically linked). CNI_BENCH_DYNAMIC=1 measures the default dynamically
# linked release build; CNI_BENCH_OURS=DIR takes our plugins from DIR as
# they are (no build).
if [ -n "${CNI_BENCH_OURS:-}" ]; then
  OURS=$CNI_BENCH_OURS
elif [ -n "${CNI_BENCH_DYNAMIC:-}" ]; then
  OURS=${CARGO_TARGET_DIR:-target}/release/examples
  [ -n "${CNI_BENCH_NO_BUILD:-}" ] || cargo build -q --release --features linux --example k8snet-bridge --example k8snet-host-local
else
  TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
  OURS=${CARGO_TARGET_DIR:-target}/$TRIPLE/cni-plugin/examples
  [ -n "${CNI_BENCH_NO_BUILD:-}" ] || RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build -q --profile cni-plugin --target "$TRIPLE" --features linux --example k8snet-bridge --example k8snet-host-local
fi

TMP=$(mktemp -d)
# Each side's worker: request and answer descriptors, pid.
declare -A WFD=() RFD=() WPID=()
# Namespaces are made inside command substitutions (subshells), so their
# names go to a file rather than a variable.
delns() { if [ -f "$TMP/netns" ]; then while read -r n; do ip netns del "$n" 2>/dev/null || true; done < "$TMP/netns"; : > "$TMP/netns"; fi; }
cleanup() { stop_workers 2>/dev/null || true; delns; rm -rf "$TMP"; }
trap cleanup EXIT
# A signal ends the script through its EXIT trap (so nothing is left behind).
trap 'exit 1' INT TERM HUP
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

# The worker run inside a node namespace: reads "CMD ID POD IN OUT" lines,
# runs the plugin (argument 1; CNI_PATH argument 2) once per line and
# answers "STATUS MICROSECONDS".
# shellcheck disable=SC2016
WORKER='bin=$1 dir=$2
while read -r cmd id pod in out; do
  t0=${EPOCHREALTIME/[.,]/}
  CNI_COMMAND=$cmd CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$pod CNI_IFNAME=eth0 CNI_PATH=$dir "$bin" < "$in" > "$out"
  rc=$?
  t1=${EPOCHREALTIME/[.,]/}
  echo "$rc $((t1 - t0))"
done'
plugin() { if [[ $1 == ours* ]]; then echo "$OURS/k8snet-bridge $OURS"; else echo "$REF/bridge $REF"; fi; }

# start_worker SIDE NODE: the side's worker, inside NODE (not with
# CNI_BENCH_NSENTER).
start_worker() {
  local side=$1 node=$2 bin dir w r s
  [ -z "${CNI_BENCH_NSENTER:-}" ] || return 0
  read -r bin dir <<< "$(plugin "$side")"
  rm -f "$TMP/req.$side" "$TMP/resp.$side"
  mkfifo "$TMP/req.$side" "$TMP/resp.$side"
  (
    # Not the other workers' pipes: each must see the end of its input.
    for s in "${!WFD[@]}"; do w=${WFD[$s]}; r=${RFD[$s]}; exec {w}>&- {r}<&-; done
    exec ip netns exec "$node" bash -c "$WORKER" worker "$bin" "$dir" < "$TMP/req.$side" > "$TMP/resp.$side"
  ) &
  WPID[$side]=$!
  exec {w}> "$TMP/req.$side"
  exec {r}< "$TMP/resp.$side"
  WFD[$side]=$w; RFD[$side]=$r
}
# stop_workers: end of input ends each worker.
stop_workers() {
  local side w r
  for side in "${!WFD[@]}"; do
    w=${WFD[$side]}; r=${RFD[$side]}
    exec {w}>&- {r}<&-
    wait "${WPID[$side]}" 2>/dev/null || true
  done
  WFD=(); RFD=(); WPID=()
}

# call SIDE NODE POD CMD ID CONF  -> prints elapsed µs on stdout; the
# plugin's stdout is left in $TMP/out
call() {
  local side=$1 node=$2 pod=$3 cmd=$4 id=$5 cf=$6 bin dir t0 t1 rc us
  printf '%s' "$cf" > "$TMP/in"
  if [ -n "${CNI_BENCH_NSENTER:-}" ]; then
    read -r bin dir <<< "$(plugin "$side")"
    t0=${EPOCHREALTIME/[.,]/}
    CNI_COMMAND=$cmd CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$pod CNI_IFNAME=eth0 CNI_PATH=$dir \
      nsenter --net=/run/netns/$node "$bin" < "$TMP/in" > "$TMP/out" || { echo "cni.sh: $side $cmd failed: $(cat "$TMP/out")" >&2; exit 1; }
    t1=${EPOCHREALTIME/[.,]/}
    echo $((t1 - t0))
    return
  fi
  echo "$cmd $id $pod $TMP/in $TMP/out" >&"${WFD[$side]}"
  read -r rc us <&"${RFD[$side]}"
  [ "$rc" -eq 0 ] || { echo "cni.sh: $side $cmd failed: $(cat "$TMP/out")" >&2; exit 1; }
  echo "$us"
}

ms() { awk '{printf "%.1f", $1/1000}'; }

# setup SIDE SUBNET MASQ SEED -> prints "node pod conf-file"; seeds SEED
# allocations as either plugin writes them.
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
  local tag=$1 subnet=$2 masq=$3 seed=$4 runs=$5 side i order node pod cf; shift 5
  declare -A env
  for side in "$@"; do
    env[$side]=$(setup "$side" "$subnet" "$masq" "$seed"); : > "$TMP/add.$side.$tag"; : > "$TMP/del.$side.$tag"
    # Warm-up: creates the bridge; ours rebuilds its index once after
    # seeding.
    read -r node pod cf <<< "${env[$side]}"
    start_worker "$side" "$node"
    call "$side" "$node" "$pod" ADD warm "$(cat "$cf")" >/dev/null
    call "$side" "$node" "$pod" DEL warm "$(cat "$cf")" >/dev/null
  done
  for ((i = 0; i < runs; i++)); do
    order=("$@")
    if ((i % 2)); then order=(); for side in "$@"; do order=("$side" "${order[@]}"); done; fi
    for side in "${order[@]}"; do
      read -r node pod cf <<< "${env[$side]}"
      cycle "$side" "$node" "$pod" "$(cat "$cf")" "c$i" "$tag"
    done
  done
  stop_workers
}
med() { median < "$TMP/$1"; }

load() { cut -d' ' -f1-3 /proc/loadavg; }
ratio() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN{printf f, a/b}'; }
mins() { sort -n "$TMP/$1" | head -1 | awk '{printf "%.1f", $1/1000}'; }

# How a binary is linked (static or dynamic), for the header line.
linkage() { if command -v file >/dev/null; then file -b "$1" | grep -o 'static-pie linked\|statically linked\|dynamically linked' || echo "of unknown linkage"; else echo "of unknown linkage"; fi; }
echo "k8snet-cni vs reference CNI plugins, $RUNS runs per figure, $ROUNDS rounds, $(nproc) CPUs, calls timed $([ -n "${CNI_BENCH_NSENTER:-}" ] && echo "with nsenter (the old method)" || echo "by a bash inside the node namespace"), ours $(linkage "$OURS/k8snet-bridge"), reference $(linkage "$REF/bridge")"
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
