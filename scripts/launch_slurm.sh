#!/usr/bin/env bash
# Submit `flanjax train` to a SLURM GPU cluster: sbatch, then srun starts one
# process per GPU (default) or one per node.
#
#   NODES=2 GPUS_PER_NODE=8 scripts/launch_slurm.sh [--dry_run] \
#     --gin_file=models/t5_1_1_base.gin --gin_file=runs/finetune.gin \
#     --gin_file=partitioning/gpu_8.gin --gin.MODEL_DIR=\"/shared/runs/flan_base\" ...
#
# Every argument after the options goes to `flanjax train` unchanged. Inside the
# job, jax.distributed is initialized from SLURM's variables (flanjax/distributed.py:
# SLURM_NTASKS processes, SLURM_PROCID, the coordinator on the first node at port
# JAX_COORDINATOR_PORT, default 12345 + job id % 1000); with one process per GPU each
# process takes the GPU SLURM_LOCALID. MODEL_DIR must be on a shared file system.
#
# Environment: NODES (default 1), GPUS_PER_NODE (8), PER ("gpu" or "node"; default
# gpu), PARTITION, TIME_LIMIT (e.g. 24:00:00), ACCOUNT (optional sbatch options),
# FLANJAX_BIN (default: .venv/bin/flanjax in this repository), LOG_DIR (default
# slurm_logs). --dry_run prints the sbatch command instead of submitting it.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry_run" ]]; then
  dry_run=1
  shift
fi
if [[ $# -eq 0 ]]; then
  echo "usage: scripts/launch_slurm.sh [--dry_run] FLANJAX_TRAIN_ARGS..." >&2
  exit 2
fi
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODES="${NODES:-1}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
PER="${PER:-gpu}"
FLANJAX_BIN="${FLANJAX_BIN:-$repo/.venv/bin/flanjax}"
LOG_DIR="${LOG_DIR:-slurm_logs}"
case "$PER" in
  gpu) tasks_per_node="$GPUS_PER_NODE" ;;
  node) tasks_per_node=1 ;;
  *) echo "PER=$PER: use gpu or node" >&2; exit 2 ;;
esac

train="srun --label --kill-on-bad-exit=1 $(printf '%q' "$FLANJAX_BIN") train"
for arg in "$@"; do
  train+=" $(printf '%q' "$arg")"
done
cmd=(sbatch --job-name=flanjax --nodes="$NODES" --ntasks-per-node="$tasks_per_node"
  --gpus-per-node="$GPUS_PER_NODE" --output="$LOG_DIR/flanjax-%j.log")
[[ -n "${PARTITION:-}" ]] && cmd+=(--partition="$PARTITION")
[[ -n "${TIME_LIMIT:-}" ]] && cmd+=(--time="$TIME_LIMIT")
[[ -n "${ACCOUNT:-}" ]] && cmd+=(--account="$ACCOUNT")
cmd+=(--wrap="$train")

if [[ $dry_run -eq 1 ]]; then
  printf '%q ' "${cmd[@]}"
  echo
else
  mkdir -p "$LOG_DIR"
  exec "${cmd[@]}"
fi
