#!/usr/bin/env bash
# Runs roomgraph's whole test suite (dev profile). On a fresh Debian machine it first installs what the
# build needs (scripts/setup.sh: clang and libclang-dev for rust-rocksdb's bindgen, a C++ compiler).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/setup.sh

# The crates' modules form no loops (ARCHITECTURE.md, "Architecture invariant"); no build needed.
python3 scripts/check-module-cycles.py

# Unit, integration and CLI tests and the doc examples of every crate (the embedder crate's docs show
# its entry points), in one cargo run so that dependencies are built once with one feature set. The
# output is kept to print one closing total over all test binaries.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
