#!/usr/bin/env bash
# Run dockpool's test suite: the unit tests, and the integration tests against each real Docker
# engine dockpool is tested on: Engine 20.10 (API 1.41, the oldest it supports) and Engine 28.5
# (API 1.51), started here if they are not running (scripts/ensure-docker.sh, by DOCKER_HOST).
#
#   bash scripts/test.sh                        both engines (unit tests once, on the first;
#                                               given pytest arguments, the same on each)
#   DOCKPOOL_ENGINES=default bash scripts/test.sh   one engine (names: scripts/engines.sh)
#   DOCKER_HOST=unix:///... bash scripts/test.sh    just the engine DOCKER_HOST names
#
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k claim -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/engines.sh

if [ -n "${DOCKER_HOST:-}" ]; then
    hosts=("$DOCKER_HOST")
else
    hosts=()
    for engine in ${DOCKPOOL_ENGINES:-default modern}; do
        case "$engine" in
            default) hosts+=("unix:///var/run/docker.sock") ;;
            modern) hosts+=("$MODERN_HOST") ;;
            *) echo "test.sh: unknown engine '$engine' in DOCKPOOL_ENGINES (default, modern)" >&2; exit 2 ;;
        esac
    done
fi

status=0
first=1
for host in "${hosts[@]}"; do
    export DOCKER_HOST="$host"
    if ! bash scripts/bootstrap.sh; then
        echo "test.sh: the engine at $host cannot be started (see above);" \
            "DOCKPOOL_ENGINES=default bash scripts/test.sh tests one engine" >&2
        exit 1
    fi
    version="$(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
    if [ "$first" = 1 ]; then
        echo "== tests: unit + integration, on Engine $version at $host"
        .venv/bin/python -m pytest "$@" || status=$?
    else
        echo "== tests: integration, on Engine $version at $host"
        if [ "$#" -gt 0 ]; then
            .venv/bin/python -m pytest "$@" || status=$?
        else
            .venv/bin/python -m pytest tests/integration || status=$?
        fi
    fi
    first=0
done
exit "$status"
