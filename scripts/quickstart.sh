#!/usr/bin/env bash
# The main job: instruction-tune the tiny T5 on the built-in suite with the
# `comparison` cluster held out, then evaluate that cluster zero-shot on the
# initial (step 0) and later checkpoints and print the comparison table.
# No download. About 5 minutes on a 2-core CPU.
#   MODEL_DIR=runs/quickstart scripts/quickstart.sh [extra --gin.X=Y flags]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source scripts/setup_env.sh ""
MODEL_DIR="${MODEL_DIR:-runs/quickstart}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-}"

flanjax train --gin_file=runs/quickstart.gin --gin.MODEL_DIR="'$MODEL_DIR'" "$@"
flanjax eval --gin_file=runs/quickstart.gin --gin.MODEL_DIR="'$MODEL_DIR'" "$@"
echo
echo "Report:      $MODEL_DIR/eval/builtin.eval_comparison/report.md"
echo "Results:     $MODEL_DIR/eval/builtin.eval_comparison/step_*.json"
echo "Metrics:     $MODEL_DIR/train_metrics.jsonl"
echo "TensorBoard: tensorboard --logdir $MODEL_DIR/tensorboard"
