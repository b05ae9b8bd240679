#!/usr/bin/env bash
# Configures and builds into build/ (executables in build/bin/). Extra arguments go to CMake's
# configure step, e.g. scripts/build.sh -DHYMBA_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$(nproc)"
