#!/usr/bin/env bash
# The main job: set the machine up, then run the pool of config.toml in the foreground
# (every member change is logged) until Ctrl-C. Pass another config path as $1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/dockpool run --config "${1:-config.toml}"
