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
cargo test --workspace --locked "$@"
