#!/usr/bin/env bash
# The main job on the embedded default: builds roomgraph (installing build prerequisites if missing) and
# runs `roomgraph demo`, which ingests the sample room shipped in datasets/ into a RocksDB store and
# prints the outcomes, forward extremities and current state. Extra arguments go to `roomgraph demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec cargo run --locked -q -p roomgraph-cli -- demo "$@"
