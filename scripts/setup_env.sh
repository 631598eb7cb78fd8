#!/usr/bin/env bash
# Creates .venv (if missing) and installs flanjax into it with the given extras.
# Idempotent and quick when nothing changed: pip runs only when setup.py or the
# requested extras differ from the last successful install.
#   usage: source scripts/setup_env.sh [EXTRAS]     e.g. EXTRAS=all
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"
VENV="${FLANJAX_VENV:-$REPO/.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "flanjax setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.flanjax-install-stamp"
WANT="$(cat "$REPO/setup.py" | sha256sum | cut -c1-16) extras=[$EXTRAS]"
if [ ! -f "$STAMP" ] || ! grep -qxF "$WANT" "$STAMP"; then
  echo "flanjax setup: installing flanjax${EXTRAS:+[$EXTRAS]} (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -e "$REPO${EXTRAS:+[$EXTRAS]}"
  # A superset install (e.g. [all]) also satisfies the smaller one.
  echo "$WANT" >> "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
