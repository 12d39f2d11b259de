#!/usr/bin/env bash
# Runs one benchmark scenario (ours, then the DPDK peer, in the same run) and regenerates
# BENCHMARKS.md:  scripts/bench.sh io [extra bench args]
# Run scripts/setup.sh first (as root) so DPDK's tools and hugepages are there.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/bench.sh SCENARIO (io) [args]}"; shift
cargo build --release --locked -p bench
./target/release/bench "$name" "$@"
./target/release/bench report >/dev/null
