#!/usr/bin/env bash
# Installs what building and testing k8snet needs on a Debian machine, as
# root: system packages (only those missing) and, if no cargo is on PATH,
# a stable Rust toolchain through rustup. Safe to run again.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config git curl ca-certificates
  libnftnl-dev libmnl-dev   # k8snet-nft's tests only: libnftnl is the reference its netlink encoder is checked against
  nftables                  # `nft -j` to cross-check what we program
  iproute2                  # `ip netns`, veth, bridges in kernel tests
  bind9-dnsutils            # dig, for the DNS server tests
  nsd                       # a real upstream for the DNS forwarding tests; the DNS peer in benches/compare/dns.sh
  dnsperf                   # the load generator of benches/compare/dns.sh
  netcat-openbsd            # nc, for UDP/TCP probes in namespaces
  containernetworking-plugins   # reference CNI plugins (/usr/lib/cni) for k8snet-cni's differential tests and bench
  iptables                  # the reference bridge's ipMasq (inside test namespaces only)
  nginx-light wrk           # the Ingress peer and load generator of benches/compare/ingress.sh
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "setup: installing the stable Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
  }
fi
