#!/usr/bin/env bash
# The one test command: formatting, lints, every test of the workspace, the fixture check, and
# the `dpdk` feature (built against the system's DPDK: pmd's DPDK tests and the golden cases
# through net_pcap ports). `.ci/run` calls exactly this.
#
# Needs a Rust toolchain. For the `dpdk` feature it needs libdpdk-dev, libclang-dev and
# pkg-config: run as root it installs them (scripts/setup.sh); otherwise it says what is
# missing and tests everything else. Tests that need the shared corpus (../shared/corpus, or
# DATAPLANE_CORPUS) skip with a printed reason when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== golden fixtures are what the generator makes"
cargo run --quiet --locked -p pcap-fixtures -- --check
echo "== tests"
cargo test --workspace --locked

echo "== the dpdk feature"
# bindgen loads libclang itself (libclang.so from libclang-dev; libclang-cpp does not serve).
have_dpdk() { pkg-config --exists libdpdk 2>/dev/null && [ -n "$(ls /usr/lib/llvm-*/lib/libclang.so /usr/lib/llvm-*/lib/libclang-*.so 2>/dev/null)" ]; }
if ! have_dpdk && [ "$(id -u)" -eq 0 ]; then
  scripts/setup.sh
fi
if have_dpdk; then
  cargo clippy -p pmd -p dataplane --features dpdk --all-targets --locked -- -D warnings
  # pmd's DPDK tests (net_null, net_ring loop, hot-plugged vdevs), every golden case again
  # through DPDK net_pcap ports (the `dpdk-pcap` layout), and two workers on two queues.
  cargo test -p pmd --features dpdk --locked
  cargo test -p dataplane --features dpdk --locked --test golden --test dpdk_queues --test dpdk_cut_through
else
  echo "skipping the dpdk feature: libdpdk-dev, libclang-dev or pkg-config is missing; run scripts/setup.sh as root" >&2
fi
