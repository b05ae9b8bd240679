#!/usr/bin/env bash
# Where the GPU time of a training step goes: ncu's gpu__time_duration of every kernel of a
# one-step bf16 run (step 1 and the one-batch validation forward at its end), summed per kernel
# name and per op class, largest first. Usage:
#   [SEQ_LEN=2048] scripts/profile-step.sh CONFIG ROWS [BUILD_DIR] [OUT_DIR]
# e.g. scripts/profile-step.sh hymba-1.5b 4 build (needs Nsight Compute's ncu and python3).
# The clocks are left free (--clock-control none), as in training; ncu's default locks them to
# base, which stretches every kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1
rows=$2
build=${3:-build}
out=${4:-.}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
  "$build/bin/hymba-train" "configs/$config.yaml" train.device=cuda train.precision=bf16 \
  "train.batch_size=$rows" "train.seq_len=${SEQ_LEN:-2048}" train.grad_accum=1 train.steps=1 train.log_every=1 \
  eval.every=0 eval.batches=1 checkpoint.every=0 "run.dir=$scratch/run" > "$out/ncu-$config-$rows.csv"
python3 scripts/kernel_times.py "$out/ncu-$config-$rows.csv"
