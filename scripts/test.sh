#!/usr/bin/env bash
# Quickstart 2: set up, build, and run every test (GPU-labelled tests skip without a GPU).
# Extra arguments go to ctest, e.g. scripts/test.sh -L cpu  or  scripts/test.sh -R Attention
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir build -j "$(nproc)" --output-on-failure "$@"
