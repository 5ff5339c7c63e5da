#!/usr/bin/env bash
# Run dockpool's test suite: unit tests and integration tests against the real Docker engine.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k claim -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
