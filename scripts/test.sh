#!/usr/bin/env bash
# Sets up .venv like the quickstart (with the test and conversion extras), then
# runs the lint and the test suite. Extra arguments go to pytest.
#   scripts/test.sh                 # the whole suite (what CI runs)
#   scripts/test.sh tests/test_t5.py -k packing
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source scripts/setup_env.sh "all"
ruff check flanjax tasks tests scripts setup.py
ruff format --check flanjax tasks tests scripts setup.py
python -m pytest -q "$@"
