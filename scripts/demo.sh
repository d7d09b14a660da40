#!/usr/bin/env bash
# Sets up a virtual environment (default .venv) and runs the main job: the whole
# reproduction in miniature on the embedded default data (python -m bert.demo).
# Extra arguments go to the demo, e.g. --compare or --data_dir=../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3.11 -m venv "$VENV" || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e .
exec "$VENV/bin/python" -m bert.demo "$@"
