#!/usr/bin/env bash
# Runs one benchmark scenario (ours and, where one exists, the DPDK peer in the same run) and
# regenerates BENCHMARKS.md and the plots:
#
#   scripts/bench.sh io [extra bench args]        forward only, vs dpdk-testpmd io on net_null
#   scripts/bench.sh dpdk-io [args]               the same through our DPDK driver (net_null);
#                                                 --no-cut-through: the stage path (dpdk-io-stage)
#   scripts/bench.sh chain-length [args]          1..8 stages on one core
#   scripts/bench.sh pipeline [args]              two cores, zero-loss rate by binary search
#   scripts/bench.sh gen-cost [args]              the generator's own cycles per packet
#   scripts/bench.sh router [args]                full-table FIB lookups vs dpdk-test-fib, the stage
#   scripts/bench.sh firewall [args]              ClassBench vs dpdk-test-acl, rule updates, the stage
#   scripts/bench.sh nat [args]                   NAT44 at 1M/10M sessions, new sessions per second
#   scripts/bench.sh chain [args]                 firewall -> NAT44 -> router, one core and two
#   scripts/bench.sh memif [args]                 memif between two processes vs a testpmd pair; AF_PACKET
#   scripts/bench.sh report                       only regenerate BENCHMARKS.md and the plots
#
# `./target/release/bench NAME --help` lists a scenario's options. Needs root (hugepages,
# pinning) and, for the peers, DPDK's tools: run scripts/setup.sh first. The plots need a
# TrueType font (fonts-dejavu-core) or BENCH_FONT=/path/to/font.ttf.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/bench.sh SCENARIO (io, dpdk-io, chain-length, pipeline, router, firewall, nat, chain, memif, gen-cost, report) [args]}"; shift
features=()
if [ "$name" = dpdk-io ]; then
  features=(--features dpdk)   # the engine over DPDK ports
fi
cargo build --release --locked -p bench "${features[@]}"
bin="${CARGO_TARGET_DIR:-target}/release/bench"
if [ "$name" = report ]; then
  exec "$bin" report
fi
status=0
"$bin" "$name" "$@" || status=$?
if [ "$status" -eq 0 ]; then
  "$bin" report >/dev/null
fi
exit "$status"
