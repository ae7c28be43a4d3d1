#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, clippy (all targets, all
# features, warnings denied), the benchmarks run once as tests, and every
# test with all features. Kernel tests run for real (as root, in network
# namespaces they create); with CI=true a kernel test that cannot run fails
# instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never
# A CI run builds everything once, from cold, on a disk it may share. With
# the dev profile's defaults the target directory reached 15 GB and a run
# failed writing doctest executables: no space left. Incremental caches are
# never reused by a one-shot build, and line tables keep file:line in
# backtraces at a fraction of full debug info.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
target_dir="${CARGO_TARGET_DIR:-target}"
echo "== disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free" >&2

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== benchmarks, each run once as a test" >&2
cargo test --workspace --benches --all-features -q
echo "== CNI plugins as static executables: build, then one short run of benches/compare/cni.sh" >&2
# Built the way the README installs them (static, crt-static; the debug
# profile here, to keep CI short). The short bench run drives them (ADD,
# DEL, masquerade, 60,000 allocations) beside the reference plugins and
# fails if any call fails; its figures are not used.
host_triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --features linux --target "$host_triple" \
  --example k8snet-bridge --example k8snet-host-local
static_dir="$target_dir/$host_triple/debug/examples"
for p in k8snet-bridge k8snet-host-local; do
  # No program interpreter and no shared library: nothing to load at exec.
  if readelf -lW "$static_dir/$p" | grep -q 'program interpreter' || readelf -dW "$static_dir/$p" | grep -q NEEDED; then
    echo "$p is not a static executable" >&2; exit 1
  fi
done
CNI_BENCH_OURS="$static_dir" bash benches/compare/cni.sh 2 1 >/dev/null
echo "== cargo test" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line that counts every test of every binary and doctest run,
# printed whether or not the run passed.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
echo "== disk: target directory $(du -sh "$target_dir" | cut -f1), $(df -h --output=avail . | tail -1 | tr -d ' ') free" >&2
exit "$status"
