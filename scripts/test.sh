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
echo "== cargo test" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-features --no-fail-fast 2>&1 | tee "$log"
# One closing line that counts every test of every binary and doctest run.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
