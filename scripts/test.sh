#!/usr/bin/env bash
# Sets up .venv like the quickstart (with the test and conversion extras), then
# runs the lint and the test suite: the tests marked `heavy` (real SmolLM2 weights or
# their own processes; tests/conftest.py) alone in one process, the others on two
# pytest-xdist workers. Extra arguments go to both pytest runs (a selection that leaves
# one of them empty is fine).
#   scripts/test.sh                 # the whole suite (what CI runs)
#   scripts/test.sh tests/test_t5.py -k packing
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
source scripts/setup_env.sh "all"
ruff check flanjax tasks tests scripts setup.py
ruff format --check flanjax tasks tests scripts setup.py
# One persistent compilation cache for the run (both phases, both workers and the
# processes tests start): a program compiled once (the quickstart's train step, a
# resumed run's) is loaded, not recompiled. Fresh each run, removed at the end.
if [ -z "${JAX_COMPILATION_CACHE_DIR:-}" ]; then
  JAX_COMPILATION_CACHE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/flanjax_test_jax_cache.XXXXXX")"
  trap 'rm -rf "$JAX_COMPILATION_CACHE_DIR"' EXIT
fi
export JAX_COMPILATION_CACHE_DIR
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-0}"
# pytest exits 5 when a selection holds no test: not a failure here
python -m pytest -q -n 2 -m "not heavy" "$@" || [ $? -eq 5 ]
python -m pytest -q -m heavy "$@" || [ $? -eq 5 ]
