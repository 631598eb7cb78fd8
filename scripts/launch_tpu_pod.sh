#!/usr/bin/env bash
# Launch `flanjax train` on every worker of a Cloud TPU VM pod slice.
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b PROJECT=my-project \
#     scripts/launch_tpu_pod.sh [--dry_run] --gin_file=... --gin.MODEL_DIR=\"gs://...\" ...
#
# Every argument after the options goes to `flanjax train` unchanged (quoted for
# the remote shell). Each worker runs one process; jax.distributed finds the
# others through the TPU metadata server (flanjax/distributed.py), so no
# coordinator flags are needed. MODEL_DIR must be shared storage (gs://...).
#
# Environment: TPU_NAME, ZONE, PROJECT (required); FLANJAX_DIR, the repository
# on the workers (default: ~/flanjax, set up with scripts/setup_env.sh);
# FLANJAX_BIN, the command (default: $FLANJAX_DIR/.venv/bin/flanjax).
# --dry_run prints the gcloud command instead of running it.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry_run" ]]; then
  dry_run=1
  shift
fi
: "${TPU_NAME:?set TPU_NAME (the TPU VM name)}"
: "${ZONE:?set ZONE (e.g. us-central2-b)}"
: "${PROJECT:?set PROJECT (the Google Cloud project)}"
FLANJAX_DIR="${FLANJAX_DIR:-~/flanjax}"
FLANJAX_BIN="${FLANJAX_BIN:-$FLANJAX_DIR/.venv/bin/flanjax}"
if [[ $# -eq 0 ]]; then
  echo "usage: scripts/launch_tpu_pod.sh [--dry_run] FLANJAX_TRAIN_ARGS..." >&2
  exit 2
fi

remote="cd $FLANJAX_DIR && $FLANJAX_BIN train"
for arg in "$@"; do
  remote+=" $(printf '%q' "$arg")"
done
cmd=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT"
  --worker=all --command="$remote")

if [[ $dry_run -eq 1 ]]; then
  printf '%q ' "${cmd[@]}"
  echo
else
  exec "${cmd[@]}"
fi
