#!/usr/bin/env bash
# The main job: set the machine up, then show the validated pool configuration of config.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/dockpool config --config "${1:-config.toml}"
