#!/usr/bin/env bash
# Training throughput on one GPU: a few optimizer steps of each sized config at seq_len 2048
# (16 / 10 / 5 rows for 125m / 350m / 1.5b as the configs ship, no accumulation, no checkpoints), printing each
# run's log. The last progress line (steps 6..10) is the steady state: step 1 includes cuBLAS's
# planning. Usage: scripts/bench-train.sh [fp32|bf16] [BUILD_DIR]
# LAUNCH="mpirun -np 1" runs each through the multi-process path (NCCL, ZeRO-1) on one GPU;
# CONFIGS="hymba-1.5b 2,hymba-1.5b 1 4096,hymba-1.5b 4 2048 train.recompute=all" picks the runs
# (config, rows, optionally the sequence length, default 2048, then optionally config overrides;
# runs separated by commas).
set -euo pipefail
cd "$(dirname "$0")/.."
precision=${1:-bf16}
build=${2:-build}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
IFS=, read -r -a runs <<<"${CONFIGS:-hymba-125m 16,hymba-350m 10,hymba-1.5b 5}"
for i in "${!runs[@]}"; do
  read -r config batch seq overrides <<<"${runs[$i]}"
  seq=${seq:-2048}
  echo "== $config, batch $batch x $seq, $precision ${overrides:+$overrides }${LAUNCH:+($LAUNCH)}"
  # shellcheck disable=SC2086  # the overrides are separate words
  ${LAUNCH:-} "$build/bin/hymba-train" "configs/$config.yaml" train.device=cuda "train.precision=$precision" \
    "train.batch_size=$batch" "train.seq_len=$seq" train.grad_accum=1 train.steps=10 train.log_every=5 \
    eval.every=0 eval.batches=1 checkpoint.every=0 "run.dir=$scratch/$i-$config-$precision-$seq" ${overrides:-}
done
