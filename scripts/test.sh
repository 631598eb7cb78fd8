#!/usr/bin/env bash
# Sets up .venv like the quickstart (with the test and conversion extras), then
# runs the lint and the test suite on two pytest-xdist workers (the tests holding the
# real SmolLM2 weights or starting processes run one after another: tests/conftest.py).
# Extra arguments go to pytest.
#   scripts/test.sh                 # the whole suite (what CI runs)
#   scripts/test.sh tests/test_t5.py -k packing
#   scripts/test.sh -n 0            # one process
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source scripts/setup_env.sh "all"
ruff check flanjax tasks tests scripts setup.py
ruff format --check flanjax tasks tests scripts setup.py
python -m pytest -q -n 2 --dist loadgroup "$@"
