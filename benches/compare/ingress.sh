#!/usr/bin/env bash
# k8snet-ingress against nginx, side by side, on loopback.
#
# One backend (an nginx serving a small response and a 1 MiB file) and two
# proxies in front of it, configured alike: `k8snet ingress serve` and an
# nginx reverse proxy with a keep-alive upstream, access log off, the same
# number of workers. wrk measures each proxy in turn, alternating, for the
# small response and for the 1 MiB body; the script prints requests per
# second and p99 latency per proxy and the ratios (medians of ROUNDS runs).
#
#   benches/compare/ingress.sh [SECONDS=10] [CONNECTIONS=50] [WORKERS=1] [ROUNDS=3]
#   benches/compare/ingress.sh callgrind [SECONDS=10] [CONNECTIONS=50]
#
# The second form counts instructions instead (load-independent): each
# proxy in turn runs under valgrind's callgrind (1 worker; nginx with
# master_process off), is warmed up, then counts user-space instructions
# while wrk drives it; it prints instructions per request for each proxy.
# Kernel work (syscalls, TCP) is not in these counts. Needs valgrind.
#
#   benches/compare/ingress.sh cpu [SECONDS=10] [CONNECTIONS=50]
#
# The third form shows where the CPU goes, for the small response: for
# each proxy in turn, the busy share of each CPU (/proc/stat), the CPU
# time per request of the proxy, the backend and wrk (/proc/PID/stat,
# time(1)) and the TCP segments sent per request (/proc/net/snmp), then,
# in a second run, the proxy's system calls per request
# by name and those that returned EAGAIN (perf tracepoints; needs perf).
#
# K8SNET_BIN=path runs that k8snet binary instead of building the example.
#
# Needs: nginx (nginx-light) and wrk (Debian packages; scripts/setup.sh
# installs them). Only 127.0.0.1 is used: ports 18081 (backend), 18080
# (k8snet), 18082 (nginx proxy). With taskset available the proxies and
# the backend share CPU 0 and wrk has CPU 1 to itself: then CPU 0, where
# the proxy under test runs, bounds the rate, not the load generator (on
# loopback a send also does the receiver's TCP work, so wrk and the
# backend together needed as much CPU per request as a proxy; see `cpu`
# and BENCHMARKS.md). BACKEND_ON=client puts the backend on wrk's CPU
# instead, the layout before this change.
set -euo pipefail

MODE=wrk
if [ "${1:-}" = callgrind ] || [ "${1:-}" = cpu ]; then MODE=$1; shift; fi
SECONDS_RUN=${1:-10}
CONNS=${2:-50}
WORKERS=${3:-1}
ROUNDS=${4:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d /tmp/k8snet-ingress-compare.XXXXXX)
BACKEND=18081 K8SNET=18080 NGINX=18082
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

TOOLS="nginx wrk curl"
[ "$MODE" = callgrind ] && TOOLS="$TOOLS valgrind callgrind_control"
for tool in $TOOLS; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run scripts/setup.sh)" >&2; exit 1; }
done
PROXY_CPU="" CLIENT_CPU="" BACKEND_CPU=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PROXY_CPU="taskset -c 0" CLIENT_CPU="taskset -c 1"
  # BACKEND_ON=client puts the backend with wrk (the earlier layout).
  if [ "${BACKEND_ON:-proxy}" = client ]; then BACKEND_CPU=$CLIENT_CPU; else BACKEND_CPU=$PROXY_CPU; fi
fi

cd "$ROOT"
# K8SNET_BIN=path skips the build and runs that binary instead.
K8SNET_BIN=${K8SNET_BIN:-}
if [ -z "$K8SNET_BIN" ]; then
  cargo build --release --quiet --features linux --example k8snet
  K8SNET_BIN="$TARGET/release/examples/k8snet"
fi

# The backend: small and 1 MiB answers, keep-alive without limit. The
# small answer comes from memory (`return`), the big file through nginx's
# open-file cache: the less the backend spends per request, the more of
# CPU 1 is left to wrk, so that the proxy under test, not the load
# generator's CPU, bounds the rate (see `cpu` above and BENCHMARKS.md).
mkdir -p "$WORK/www" "$WORK/tmp"
# nginx workers drop root for an unprivileged user, who must read these.
chmod 755 "$WORK" "$WORK/www"; chmod 1777 "$WORK/tmp"
printf 'hello from the backend\n' > "$WORK/www/small"
head -c 1048576 /dev/zero | tr '\0' 'x' > "$WORK/www/big"
common_http="access_log off; error_log $WORK/error.log warn;
  client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
  uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
  keepalive_requests 1000000;"
cat > "$WORK/backend.conf" <<CONF
daemon off; worker_processes 1; pid $WORK/backend.pid; error_log $WORK/error.log warn;
events { worker_connections 4096; }
http { $common_http
  server { listen 127.0.0.1:$BACKEND; root $WORK/www; open_file_cache max=16;
    location = /small { default_type text/plain; return 200 "hello from the backend\n"; }
    location / { default_type text/plain; } }
}
CONF
# The nginx proxy: what ingress-nginx renders for one Ingress rule, minus
# Lua: an upstream with keep-alive, HTTP/1.1 to it, Host passed on.
cat > "$WORK/proxy.conf" <<CONF
daemon off; worker_processes $WORKERS; pid $WORK/proxy.pid; error_log $WORK/error.log warn;
events { worker_connections 4096; }
http { $common_http
  upstream backend { server 127.0.0.1:$BACKEND; keepalive 320; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$NGINX;
    server_name bench.local;
    client_max_body_size 1m;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_buffering off;  # ingress-nginx's default, and what k8snet does: stream
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      # The headers k8snet adds, so that both send the backend the same.
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Forwarded-Port \$server_port;
    }
  }
}
CONF
# The same rule as an Ingress; the endpoint is on loopback, which
# `ingress serve` accepts with a warning.
cat > "$WORK/cluster.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: bench}
spec: {ports: [{name: http, port: 80, targetPort: $BACKEND}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-1, namespace: bench, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.1]}]
ports: [{name: http, port: $BACKEND}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: bench}
spec:
  rules:
  - host: bench.local
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: backend, port: {number: 80}}}}]}
YAML

# wrk's latency is in us/ms/s units; normalize to microseconds.
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else {sub(/s/,"",v); print v*1000000}}'; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

wait_for() { # port tries
  for _ in $(seq "$2"); do
    curl -fs -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$1/small" && return 0
    sleep 0.1
  done
  echo "port $1 does not answer" >&2; cat "$WORK/k8snet.log" "$WORK/error.log" >&2; exit 1
}

$BACKEND_CPU nginx -c "$WORK/backend.conf" -e "$WORK/error.log" & PIDS+=($!)
wait_for $BACKEND 50

if [ "$MODE" = callgrind ]; then
  # One proxy at a time under callgrind, instrumentation off until warm.
  sed 's/^daemon off;/daemon off; master_process off;/' "$WORK/proxy.conf" > "$WORK/proxy-cg.conf"
  echo "instructions per request (callgrind, user space), wrk -t1 -c$CONNS ${SECONDS_RUN}s under valgrind, load $(load)"
  for path in /small /big; do
    for name in k8snet nginx; do
      if [ "$name" = k8snet ]; then
        port=$K8SNET
        $PROXY_CPU valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.out" \
          "$K8SNET_BIN" ingress serve -f "$WORK/cluster.yaml" \
          --listen 127.0.0.1:$K8SNET --workers 1 2>"$WORK/k8snet.log" & pid=$!
      else
        port=$NGINX
        $PROXY_CPU valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.out" \
          nginx -c "$WORK/proxy-cg.conf" -e "$WORK/error.log" 2>"$WORK/valgrind.log" & pid=$!
      fi
      PIDS+=($pid)
      wait_for $port 600
      $CLIENT_CPU wrk -t1 -c"$CONNS" -d2s -H 'Host: bench.local' "http://127.0.0.1:$port$path" >/dev/null
      callgrind_control -i on $pid >/dev/null 2>&1
      callgrind_control -z $pid >/dev/null 2>&1
      out=$($CLIENT_CPU wrk -t1 -c"$CONNS" -d"${SECONDS_RUN}s" -H 'Host: bench.local' "http://127.0.0.1:$port$path")
      callgrind_control -d $pid >/dev/null 2>&1
      requests=$(awk '/requests in/ {print $1}' <<<"$out")
      kill $pid; wait $pid 2>/dev/null || true
      # The first dump (cg.out.1) holds the counts since the zeroing; cg.out
      # is what ran after it, until the kill.
      ir=$(awk '/^(summary|totals):/ {print $2}' "$WORK/cg.out.1" | tail -1)
      rm -f "$WORK"/cg.out*
      awk -v p="$path" -v n="$name" -v ir="$ir" -v r="$requests" 'BEGIN {
        printf "%-6s %-6s %12d instructions / %7d requests = %7.0f per request\n", p, n, ir, r, ir / r }'
    done
  done
  exit 0
fi

$PROXY_CPU nginx -c "$WORK/proxy.conf" -e "$WORK/error.log" & PIDS+=($!)
$PROXY_CPU "$K8SNET_BIN" ingress serve -f "$WORK/cluster.yaml" \
  --listen 127.0.0.1:$K8SNET --workers "$WORKERS" 2>"$WORK/k8snet.log" & PIDS+=($!)
wait_for $NGINX 50
wait_for $K8SNET 50

if [ "$MODE" = cpu ]; then
  # The worker processes: the proxies' and the backend's nginx masters
  # have one worker each (found by parent PID).
  NGINX_MASTER=${PIDS[1]} K8SNET_PID=${PIDS[2]}
  BACKEND_WORKER=$(pgrep -P "${PIDS[0]}" | head -1)
  NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -1)
  # Busy and total jiffies of one CPU; user and system jiffies of a PID.
  cpu_ticks() { awk -v c="cpu$1" '$1 == c {b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6}' /proc/stat; }
  pid_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
  # TCP segments sent and delayed ACKs, all loopback sockets together
  # (this network namespace; the machine's other traffic counts too).
  tcp_counts() {
    awk '$1 == "Tcp:" && $2 ~ /^[0-9]+$/ {o = $12} END {printf "%s ", o}' /proc/net/snmp
    awk '$1 == "TcpExt:" {if (!h) {for (i = 2; i <= NF; i++) f[$i] = i; h = 1} else print $f["DelayedACKs"], $f["TCPPureAcks"]}' /proc/net/netstat
  }
  HZ=$(getconf CLK_TCK)
  echo "CPU use, /small, wrk -t1 -c$CONNS ${SECONDS_RUN}s; proxies on CPU 0, wrk on CPU 1, backend with ${BACKEND_ON:-proxy}"
  echo "start: $(uptime)"
  for name in k8snet nginx k8snet nginx; do
    if [ "$name" = k8snet ]; then port=$K8SNET pid=$K8SNET_PID; else port=$NGINX pid=$NGINX_WORKER; fi
    $CLIENT_CPU wrk -t1 -c"$CONNS" -d2s -H 'Host: bench.local' "http://127.0.0.1:$port/small" >/dev/null
    read -r a0b a0t <<<"$(cpu_ticks 0)"; read -r a1b a1t <<<"$(cpu_ticks 1)"
    read -r apu aps <<<"$(pid_ticks "$pid")"; read -r abu abs <<<"$(pid_ticks "$BACKEND_WORKER")"
    read -r aseg adack apure <<<"$(tcp_counts)"
    out=$(/usr/bin/time -f '%U %S' -o "$WORK/wrk.time" $CLIENT_CPU wrk -t1 -c"$CONNS" -d"${SECONDS_RUN}s" \
      -H 'Host: bench.local' "http://127.0.0.1:$port/small")
    read -r b0b b0t <<<"$(cpu_ticks 0)"; read -r b1b b1t <<<"$(cpu_ticks 1)"
    read -r bpu bps <<<"$(pid_ticks "$pid")"; read -r bbu bbs <<<"$(pid_ticks "$BACKEND_WORKER")"
    read -r bseg bdack bpure <<<"$(tcp_counts)"
    read -r wu ws < "$WORK/wrk.time"
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    awk -v n="$n" -v name="$name" -v hz="$HZ" -v s="$SECONDS_RUN" \
      -v c0="$((b0b - a0b)) $((b0t - a0t))" -v c1="$((b1b - a1b)) $((b1t - a1t))" \
      -v p="$((bpu - apu)) $((bps - aps))" -v b="$((bbu - abu)) $((bbs - abs))" -v w="$wu $ws" \
      -v t="$((bseg - aseg)) $((bdack - adack)) $((bpure - apure))" 'BEGIN {
      split(c0, x); split(c1, y); split(p, q); split(b, k); split(w, v); us = 1e6 / hz / n
      printf "%-6s %7.0f req/s | CPU 0 %3.0f%% busy, CPU 1 %3.0f%% busy | us per request (user+sys): proxy %.2f+%.2f, backend %.2f+%.2f, wrk %.2f+%.2f\n",
        name, n / s, 100 * x[1] / x[2], 100 * y[1] / y[2], q[1] * us, q[2] * us, k[1] * us, k[2] * us,
        v[1] * 1e6 / n, v[2] * 1e6 / n
      split(t, g); printf "       TCP per request: %.2f segments sent, %.3f delayed ACKs, %.3f pure ACKs received\n", g[1] / n, g[2] / n, g[3] / n }'
  done
  if command -v perf >/dev/null; then
    echo "system calls per request (perf, wrk -t1 -c$CONNS 5s):"
    for name in k8snet nginx; do
      if [ "$name" = k8snet ]; then port=$K8SNET pid=$K8SNET_PID; else port=$NGINX pid=$NGINX_WORKER; fi
      perf stat -x, -o "$WORK/perf.txt" -e 'syscalls:sys_enter_*' -e raw_syscalls:sys_exit --filter 'ret == -11' \
        -p "$pid" -- $CLIENT_CPU wrk -t1 -c"$CONNS" -d5s -H 'Host: bench.local' "http://127.0.0.1:$port/small" > "$WORK/wrk.out"
      n=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
      awk -F, -v n="$n" -v name="$name" '$1 ~ /^[0-9]+$/ && $1 > 0 {
          e = $3; sub(/^syscalls:sys_enter_/, "", e); sub(/^raw_syscalls:sys_exit/, "EAGAIN", e)
          if (e != "EAGAIN") total += $1; line = line sprintf(" %s %.3f", e, $1 / n) }
        END { printf "%-6s %.2f calls/request:%s\n", name, total / n, line }' "$WORK/perf.txt"
    done
  fi
  echo "end: $(uptime)"
  exit 0
fi

measure() { # port path → "rps p99_us"
  local out rps p99
  out=$($CLIENT_CPU wrk -t1 -c"$CONNS" -d"${SECONDS_RUN}s" --latency -H 'Host: bench.local' "http://127.0.0.1:$1$2")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out" | to_us)
  echo "$rps $p99"
}

echo "k8snet-ingress vs nginx $(nginx -v 2>&1 | sed 's/.*\///'): wrk -t1 -c$CONNS ${SECONDS_RUN}s, $WORKERS worker(s), median of $ROUNDS rounds"
echo "start: $(uptime)"
trap 'echo "end: $(uptime)"; cleanup' EXIT
for path in /small /big; do
  : > "$WORK/k.rps"; : > "$WORK/k.p99"; : > "$WORK/n.rps"; : > "$WORK/n.p99"
  for r in $(seq "$ROUNDS"); do
    # Alternate which proxy goes first, so drift in the shared machine's
    # load does not favour either.
    if [ $((r % 2)) -eq 1 ]; then order="$K8SNET $NGINX"; else order="$NGINX $K8SNET"; fi
    for port in $order; do
      read -r rps p99 <<<"$(measure "$port" "$path")"
      if [ "$port" = "$K8SNET" ]; then who=k; name=k8snet; else who=n; name=nginx; fi
      echo "$rps" >> "$WORK/$who.rps"; echo "$p99" >> "$WORK/$who.p99"
      echo "  round $r $path $name: $rps req/s, p99 ${p99} us (load $(load))"
    done
  done
  k=$(median < "$WORK/k.rps") pk=$(median < "$WORK/k.p99")
  n=$(median < "$WORK/n.rps") pn=$(median < "$WORK/n.p99")
  awk -v p="$path" -v k="$k" -v n="$n" -v pk="$pk" -v pn="$pn" 'BEGIN {
    printf "%-6s k8snet %8.0f req/s p99 %8.0f us | nginx %8.0f req/s p99 %8.0f us | rps ratio %.2f, p99 ratio %.2f\n",
      p, k, pk, n, pn, (n > 0 ? k / n : 0), (pn > 0 ? pk / pn : 0) }'
  # The spread of the per-round ratios (rounds pair up the two proxies).
  paste "$WORK/k.rps" "$WORK/n.rps" "$WORK/k.p99" "$WORK/n.p99" | awk -v p="$path" '
    { r = ($2 > 0) ? $1 / $2 : 0; q = ($4 > 0) ? $3 / $4 : 0
      if (NR == 1 || r < rmin) rmin = r; if (NR == 1 || r > rmax) rmax = r
      if (NR == 1 || q < qmin) qmin = q; if (NR == 1 || q > qmax) qmax = q }
    END { printf "%-6s per-round rps ratio %.2f-%.2f, p99 ratio %.2f-%.2f\n", p, rmin, rmax, qmin, qmax }'
done
