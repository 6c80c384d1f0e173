#!/usr/bin/env bash
# The test command: set up (idempotent), then lint, type-check, check the import rules, and
# run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export SFLOWLAB_REQUIRE_ACCEL=1  # the C accelerators must have been built (tests/test_accel.py)
echo "== ruff"; ruff check sflowlab tests bench ci
echo "== mypy"; mypy
echo "== import rules"; lint-imports; python ci/check_stdlib_only.py
echo "== pytest"; python -m pytest "$@"
