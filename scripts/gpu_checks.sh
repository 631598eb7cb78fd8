#!/usr/bin/env bash
# The prepared GPU run (flanjax/perf/gpu_checks.py; README "GPU checks"): installs
# flanjax with its `gpu` (pinned jax CUDA 12 wheels) and `convert` (torch, transformers)
# extras into a virtualenv, then runs every check, each under its own time cap.
#
#   scripts/gpu_checks.sh --wheels .whl      # a GPU machine without internet
#   scripts/gpu_checks.sh                    # a GPU machine that reaches a package index
#   scripts/gpu_checks.sh --cpu              # dry run: every part, tiny shapes, CPU, .venv
#
# Options (the rest go to `python -m flanjax.perf.gpu_checks`: --out DIR, --only PART,
# --budget_s S):
#   --wheels DIR    install only from DIR (pip --no-index --find-links DIR); default
#                   $FLANJAX_WHEELS, else .whl/ when it exists, else the package index
#   --venv DIR      the virtualenv (default .venv-gpu; with --cpu, .venv as it is)
#   --no_install    use the virtualenv as it is
#   --python PY     the interpreter that creates the virtualenv (default python3)
# Exit status: 0 when every part passed, 1 when any failed, 2 when installing failed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

CPU=0 INSTALL=1 PY=python3 VENV="" WHEELS="${FLANJAX_WHEELS:-}" ARGS=()
while (($#)); do
  case "$1" in
    --cpu) CPU=1 INSTALL=0; ARGS+=(--cpu) ;;
    --wheels) WHEELS="$2"; shift ;;
    --wheels=*) WHEELS="${1#*=}" ;;
    --venv) VENV="$2"; shift ;;
    --no_install) INSTALL=0 ;;
    --python) PY="$2"; shift ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
if ((CPU)); then VENV="${VENV:-.venv}"; else VENV="${VENV:-.venv-gpu}"; fi
if [[ -z "$WHEELS" && -d .whl ]]; then WHEELS=.whl; fi

if ((INSTALL)); then
  t0=$SECONDS
  PIP=(-m pip install --quiet --disable-pip-version-check)
  [[ -n "$WHEELS" ]] && PIP+=(--no-index --find-links "$WHEELS")
  echo "installing into $VENV from ${WHEELS:-the package index}" >&2
  {
    if [[ ! -x "$VENV/bin/python" ]]; then
      # without ensurepip (Debian's python3-venv missing): bootstrap pip from its wheel
      "$PY" -m venv "$VENV" || {
        rm -rf "$VENV" && "$PY" -m venv --without-pip "$VENV" &&
          "$VENV/bin/python" "$(ls "${WHEELS:?no wheel folder to bootstrap pip from}"/pip-*.whl | head -1)/pip" \
            install --quiet --no-index --find-links "$WHEELS" pip
      }
    fi
    "$VENV/bin/python" "${PIP[@]}" setuptools wheel
    "$VENV/bin/python" "${PIP[@]}" --no-build-isolation -e ".[gpu,convert]"
  } || { echo "gpu_checks.sh: installing failed (see README, GPU checks)" >&2; exit 2; }
  echo "installed in $((SECONDS - t0)) s" >&2
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "gpu_checks.sh: no virtualenv at $VENV (--cpu uses .venv: source scripts/setup_env.sh all)" >&2
  exit 2
fi
export FLANJAX_GPU_CHECKS_COMMAND="scripts/gpu_checks.sh ${ARGS[*]:-}"
exec "$VENV/bin/python" -m flanjax.perf.gpu_checks "${ARGS[@]}"
