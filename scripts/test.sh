#!/usr/bin/env bash
# The one test command: formatting, lints, every test of the workspace, the fixture check, and
# the `dpdk` feature of pmd (built against the system's DPDK). `.ci/run` calls exactly this.
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
have_dpdk() { pkg-config --exists libdpdk 2>/dev/null && [ -n "$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)" ]; }
if ! have_dpdk && [ "$(id -u)" -eq 0 ]; then
  scripts/setup.sh
fi
if have_dpdk; then
  cargo clippy -p pmd --features dpdk --all-targets --locked -- -D warnings
  cargo test -p pmd --features dpdk --locked
else
  echo "skipping the dpdk feature: libdpdk-dev, libclang-dev or pkg-config is missing; run scripts/setup.sh as root" >&2
fi
