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
static_dir="${CARGO_TARGET_DIR:-target}/$host_triple/debug/examples"
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
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee "$log"
# One closing line that counts every test of every binary and doctest run.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
