#!/usr/bin/env bash
# Runs roomgraph's whole test suite (dev profile). On a fresh Debian machine it first installs what the
# build needs: clang and libclang-dev for rust-rocksdb's bindgen, and a C++ compiler for RocksDB itself.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null || compgen -G "/usr/lib/*/libclang*.so*" >/dev/null || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
if ((${#need[@]})); then
    echo "scripts/test.sh: installing ${need[*]}" >&2
    if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Parallel C++ compilation of RocksDB; the machine has 2 cores.
export NUM_JOBS="${NUM_JOBS:-$(nproc)}"

# Unit, integration and CLI tests of every crate (the crates have no doc tests). The output is kept to
# print one closing total over all test binaries.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --tests "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
