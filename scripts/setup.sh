#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build roomgraph: clang and libclang-dev (rust-rocksdb's
# bindgen), a C++ compiler (RocksDB) and python3
# (the socket client's tests). Does nothing when they are present. Sourced by the other scripts.
set -euo pipefail

need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null || compgen -G "/usr/lib/*/libclang*.so*" >/dev/null || need+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need+=(g++)
# The Python socket client's tests (ffi/python/, run by engine/cli/tests/cli/serve.rs).
command -v python3 >/dev/null 2>&1 || need+=(python3)
# The Synapse drop-in's tests (ffi/python/native/tests/synapse.rs) make a virtualenv with pip.
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
# The C API test (ffi/cdylib/tests/c_api.rs): a C compiler, and Valgrind to run it under.
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
if ((${#need[@]})); then
    echo "scripts/setup.sh: installing ${need[*]}" >&2
    if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Parallel C++ compilation of RocksDB.
export NUM_JOBS="${NUM_JOBS:-$(nproc)}"
