#!/usr/bin/env bash
# The main job on the embedded default: builds roomgraph (installing build prerequisites if missing) and
# runs `roomgraph demo`, which ingests the sample room shipped in datasets/ into a RocksDB store and
# prints the outcomes, forward extremities and current state. Extra arguments go to `roomgraph demo`.
#
# The binary is built as scripts/test.sh builds it, with the test suite (`--no-run`): a plain
# `cargo build -p roomgraph-cli` resolves dependency features without the test-only crates (pprof's nix
# turns on libc's `extra_traits`, ruma regex's `perf`), which changes RocksDB's and bindgen's builds
# and costs a second 15-minute compile. Built this way, the demo and the test suite share one build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --workspace --locked --no-run -q
exec "${CARGO_TARGET_DIR:-target}/debug/roomgraph" demo "$@"
