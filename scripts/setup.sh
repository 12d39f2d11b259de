#!/usr/bin/env bash
# Installs what the project needs beyond a Rust toolchain, on Debian:
#   - dpdk, dpdk-dev, libdpdk-dev: DPDK's own tools (dpdk-testpmd, dpdk-test-fib, dpdk-test-acl),
#     the peers the benchmarks compare against, and the headers the `dpdk` feature builds on
#   - libclang-dev, pkg-config: bindgen for the `dpdk` feature
#   - tcpdump, iproute2: the network-namespace tests
#   - fonts-dejavu-core: text in the benchmark plots
# and reserves 2 MiB hugepages (scripts/setup-hugepages.sh).
# Needs root (or sudo). Safe to run again: it skips what is already there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pkgs=(dpdk dpdk-dev libdpdk-dev libclang-dev pkg-config tcpdump iproute2 fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "setup.sh: missing packages: ${missing[*]}; run this script as root (apt-get install needs it)" >&2
      exit 1
    fi
  else SUDO=; fi
  echo "setup.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
"$here/setup-hugepages.sh" || echo "setup.sh: continuing without hugepages (the dataplane falls back to ordinary pages)" >&2
echo "setup.sh: done"
