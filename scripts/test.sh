#!/usr/bin/env bash
# The one test command: formatting, lints, every test of the workspace, the fixture check.
# `.ci/run` calls exactly this. Needs only a Rust toolchain; tests that need the shared corpus
# (../shared/corpus, or DATAPLANE_CORPUS) skip with a printed reason when it is absent.
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
