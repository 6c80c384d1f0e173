#!/usr/bin/env bash
# The test command: set up (idempotent), then lint, type-check, check the import rules, and
# run the whole suite, then the codec, collector and scenario tests again on the pure-Python
# code the C accelerators replace. Extra arguments go to (only) the first pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export SFLOWLAB_REQUIRE_ACCEL=1  # the C accelerators must have been built (tests/test_accel.py)
echo "== ruff"; ruff check sflowlab tests bench ci
echo "== mypy"; mypy
echo "== import rules"; lint-imports; python ci/check_stdlib_only.py
echo "== pytest"; python -m pytest "$@"
if [ $# -eq 0 ]; then  # the whole suite ran: once more without the C accelerators
  echo "== pytest, pure Python (SFLOWLAB_PURE_PYTHON=1): codec, collector, scenarios"
  SFLOWLAB_PURE_PYTHON=1 SFLOWLAB_REQUIRE_ACCEL=0 python -m pytest -q tests/codec tests/collector scenarios
fi
