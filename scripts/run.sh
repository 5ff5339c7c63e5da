#!/usr/bin/env bash
# The main job: set the machine up, then run the benchmark "time to the first ready
# conversation, pooled against cold" (`dockpool bench`) on the stand-in image: a table on
# stdout, every sample in bench-results/*.json and a plot in bench-results/*.png.
# Arguments go to `dockpool bench`, e.g.
#   bash scripts/run.sh --agent-server   the OpenHands agent-server image (built first if missing)
#   bash scripts/run.sh --smoke          tiny N, < 60 s
#   bash scripts/run.sh --help
# (`.venv/bin/dockpool run --config config.toml` runs a pool in the foreground.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

if ! .venv/bin/python -c 'import matplotlib' >/dev/null 2>&1; then
  echo "run: installing dockpool[bench] (matplotlib, for the plot) into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
fi

for arg in "$@"; do
  if [ "$arg" = "--agent-server" ]; then
    lock=images/agent-server/requirements.lock
    version="$(sed -n 's/^openhands-agent-server==\([^ ;]*\).*/\1/p' "$lock")"
    image="${DOCKPOOL_AGENT_IMAGE:-dockpool-agent-server}:${version:-latest}"
    if ! docker image inspect "$image" >/dev/null 2>&1; then
      echo "run: $image is missing; building it (scripts/build-agent-server-image.sh)"
      bash scripts/build-agent-server-image.sh
    fi
  fi
done

exec .venv/bin/dockpool bench "$@"
