#!/usr/bin/env bash
# Quickstart 1: set up, build, and train the tiny model on the bundled Jane Austen corpus
# (each run gets its own folder under runs/, so nothing earlier is overwritten).
# Extra arguments are config overrides, e.g. scripts/train-tiny.sh train.steps=100
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/bin/hymba-train configs/tiny.yaml "run.dir=runs/tiny-$(date +%Y%m%d-%H%M%S)" "$@"
