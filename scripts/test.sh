#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, clippy (all targets, all
# features, warnings denied) and every test with all features. Kernel tests
# run for real (as root, in network namespaces they create); with CI=true a
# kernel test that cannot run fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --all-features --no-fail-fast
echo "== benches compile and run once" >&2
cargo test --benches --all-features -q
