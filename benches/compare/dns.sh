#!/usr/bin/env bash
# k8snet-dns against NSD, side by side, on loopback.
#
# Builds the release binaries, writes the benchmark cluster (Services with
# EndpointSlices) and the equivalent zone file for NSD, starts both on
# 127.0.0.1 with the same number of workers, and runs dnsperf against each
# for a fixed time with the same query file (60 % A, 10 % AAAA, 10 % SRV,
# 20 % NXDOMAIN), alternating which server goes first. Prints the load
# (uptime) and both servers' figures for every round, each server's mean
# queries per second and the ratio, then stops both servers (also on error
# or Ctrl-C).
#
#   benches/compare/dns.sh [SERVICES=1000] [WORKERS=1] [SECONDS=15] [ROUNDS=4]
#
# Same work on both sides: NSD runs `server-count` = WORKERS serving
# processes (plus its main and xfrd processes, which do not serve
# queries); k8snet runs WORKERS UDP worker threads (plus a TCP acceptor
# and the main thread, idle here). Both get 4 MiB socket buffers, and NSD
# gives minimal responses, as k8snet does (no NS records in the authority
# section of positive answers). The script prints both layouts.
# PIN=1 pins both servers to CPU 1 and dnsperf to CPU 0 (taskset);
# CLIENT_THREADS=N (default 1) and OUTSTANDING=N (default 200) set
# dnsperf's -T and -q.
#
# Each server's CPU use (qps / queries per CPU-second) is printed too:
# below one CPU per worker, the server waited for queries, so its qps is
# the load generator's pace, not the server's capacity.
#
# Needs: nsd and dnsperf (Debian packages; scripts/setup.sh installs them).
# Only 127.0.0.1 is used, on ports 15301 (k8snet) and 15302 (NSD).
set -euo pipefail

SERVICES=${1:-1000}
WORKERS=${2:-1}
SECONDS_RUN=${3:-15}
ROUNDS=${4:-4}
CLIENT_THREADS=${CLIENT_THREADS:-1}
OUTSTANDING=${OUTSTANDING:-200}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/k8snet-dns-compare.XXXXXX)
K8SNET_PORT=15301
NSD_PORT=15302
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill -- "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

for tool in nsd dnsperf dig; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run scripts/setup.sh)" >&2; exit 1; }
done

cd "$ROOT"
# SKIP_BUILD=1 reuses the binary already built (e.g. while another crate
# of the workspace does not compile).
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --features linux --example k8snet
cargo run --release --quiet -p k8snet-dns --example fixture -- "$WORK" "$SERVICES"

# NSD: same zone, same worker count, response rate limiting off (its
# default limit would cap it near 550 qps).
cat > "$WORK/nsd.conf" <<EOF
server:
  ip-address: 127.0.0.1
  port: $NSD_PORT
  username: ""
  chroot: ""
  zonesdir: "$WORK"
  pidfile: "$WORK/nsd.pid"
  database: ""
  xfrdfile: "$WORK/xfrd.state"
  zonelistfile: "$WORK/zone.list"
  logfile: "$WORK/nsd.log"
  server-count: $WORKERS
  reuseport: yes
  send-buffer-size: 4194304
  receive-buffer-size: 4194304
  minimal-responses: yes
  rrl-ratelimit: 0
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: "cluster.local"
  zonefile: "cluster.local.zone"
EOF
# In a session of its own: NSD forks and re-parents its processes, and
# the session is how to find (CPU time) and stop all of them.
SERVER_CPU=(); CLIENT_CPU=()
if [ -n "${PIN:-}" ]; then SERVER_CPU=(taskset -c 1); CLIENT_CPU=(taskset -c 0); fi
setsid "${SERVER_CPU[@]}" nsd -d -c "$WORK/nsd.conf" &
NSD_PID=$!
PIDS+=("-$NSD_PID")

if [ -n "${SERVE_EXAMPLE:-}" ]; then
  # The library's own example server (same code path, without the CLI).
  cargo build --release --quiet -p k8snet-dns --features linux --example serve
  setsid "${SERVER_CPU[@]}" "$TARGET/release/examples/serve" "$WORK/cluster.json" "127.0.0.1:$K8SNET_PORT" "$WORKERS" \
    2>"$WORK/k8snet.log" &
else
  setsid "${SERVER_CPU[@]}" "$TARGET/release/examples/k8snet" dns serve -f "$WORK/cluster.json" \
    --listen "127.0.0.1:$K8SNET_PORT" --workers "$WORKERS" 2>"$WORK/k8snet.log" &
fi
K8SNET_PID=$!
PIDS+=("-$K8SNET_PID")

wait_up() { # port
  for _ in $(seq 100); do
    if dig @127.0.0.1 -p "$1" +tries=1 +time=1 cluster.local SOA 2>/dev/null | grep -q 'status: NOERROR'; then
      return 0
    fi
    sleep 0.2
  done
  echo "server on port $1 did not come up" >&2
  cat "$WORK"/*.log >&2
  exit 1
}
wait_up "$K8SNET_PORT"
wait_up "$NSD_PORT"

# Both must give the same answers before they are timed.
for q in "svc-1.ns-1.svc.cluster.local A" "svc-1.ns-1.svc.cluster.local AAAA" \
         "_http._tcp.svc-4.ns-4.svc.cluster.local SRV" "nosuch-1.ns-1.svc.cluster.local A"; do
  # shellcheck disable=SC2086
  a=$(dig @127.0.0.1 -p "$K8SNET_PORT" +short $q | sort)
  # shellcheck disable=SC2086
  b=$(dig @127.0.0.1 -p "$NSD_PORT" +short $q | sort)
  [ "$a" = "$b" ] || { echo "answers differ for $q: k8snet [$a] nsd [$b]" >&2; exit 1; }
done

# CPU ticks (user + system) of every process of a session (threads
# included): NSD serves from forked processes, k8snet from threads.
ticks() { # session id (the pid we started)
  local t=0 p
  for p in $(ps -o pid= -s "$1"); do
    # Fields after "pid (comm) ": utime is the 12th, stime the 13th.
    t=$((t + $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)))
  done
  echo "$t"
}

# One dnsperf run: prints "qps queries-per-server-CPU-second".
perf() { # port pid
  local before after out
  before=$(ticks "$2")
  out=$("${CLIENT_CPU[@]}" dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries.txt" -l "$SECONDS_RUN" -c 8 -T "$CLIENT_THREADS" -q "$OUTSTANDING" 2>&1)
  after=$(ticks "$2")
  echo "$out" | awk -v cpu="$(( after - before ))" -v hz="$(getconf CLK_TCK)" '
    /Queries completed/ { n = $3 }
    /Queries per second/ { q = $4 }
    END { printf "%.0f %.0f", q, (cpu > 0 ? n / (cpu / hz) : 0) }'
}
echo "services=$SERVICES workers=$WORKERS seconds=$SECONDS_RUN rounds=$ROUNDS (dnsperf -c 8 -T $CLIENT_THREADS -q $OUTSTANDING)${PIN:+ pinned}"
echo "nsd processes and threads (pid lwp name):"; ps -L -o pid=,lwp=,comm= -s "$NSD_PID"
echo "k8snet processes and threads (pid lwp name):"; ps -L -o pid=,lwp=,comm= -s "$K8SNET_PID"
# Rounds alternate between the servers, so that load from other processes
# on a shared machine weighs on both alike.
NSD_ALL=(); K8SNET_ALL=()
for r in $(seq "$ROUNDS"); do
  load=$(uptime | sed 's/.*load average: //')
  if [ $((r % 2)) -eq 1 ]; then
    first=nsd
    NSD_ALL+=("$(perf "$NSD_PORT" "$NSD_PID")"); K8SNET_ALL+=("$(perf "$K8SNET_PORT" "$K8SNET_PID")")
  else
    first=k8snet
    K8SNET_ALL+=("$(perf "$K8SNET_PORT" "$K8SNET_PID")"); NSD_ALL+=("$(perf "$NSD_PORT" "$NSD_PID")")
  fi
  echo "round $r (first: $first, load average before: $load): nsd ${NSD_ALL[-1]} k8snet ${K8SNET_ALL[-1]}" |
    awk '{ q = ($(NF-4) > 0) ? $(NF-1) / $(NF-4) : 0; c = ($(NF-3) > 0) ? $NF / $(NF-3) : 0
           printf "%s  ratio qps %.2f, per CPU-second %.2f\n", $0, q, c }'
done
echo "load average after: $(uptime | sed 's/.*load average: //')"
# Mean of field $1 over the rounds.
mean() { local f=$1; shift; printf '%s\n' "$@" | awk -v f="$f" '{ s += $f } END { printf "%.0f", s / NR }'; }
NSD_QPS=$(mean 1 "${NSD_ALL[@]}"); NSD_EFF=$(mean 2 "${NSD_ALL[@]}")
K8SNET_QPS=$(mean 1 "${K8SNET_ALL[@]}"); K8SNET_EFF=$(mean 2 "${K8SNET_ALL[@]}")
echo "rounds (qps, queries per server CPU-second): nsd [${NSD_ALL[*]}] k8snet [${K8SNET_ALL[*]}]"
echo "nsd     qps: $NSD_QPS   per CPU-second: $NSD_EFF"
echo "k8snet  qps: $K8SNET_QPS   per CPU-second: $K8SNET_EFF"
awk -v a="$K8SNET_QPS" -v b="$NSD_QPS" -v c="$K8SNET_EFF" -v d="$NSD_EFF" \
  'BEGIN { printf "ratio k8snet/nsd: qps %.2f, per CPU-second %.2f\n", a / b, c / d
          printf "server CPU use (qps / per CPU-second): nsd %.2f, k8snet %.2f CPUs\n", b / d, a / c }'
