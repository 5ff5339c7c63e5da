#!/usr/bin/env bash
# Test dockpool-openhands against each OpenHands entry point, each in its own Python 3.12 venv:
#   .venv-sdk    openhands-sdk/-workspace 1.58.2 (the SDK's DockerWorkspace) -> pytest tests_sdk,
#                against the real agent server 1.58.2 (dockpool-agent-server:1.58.2)
#   .venv-oh1    openhands-ai 1.11.0 (V1 app server)  -> pytest -m oh1
#   .venv-oh062  openhands-ai 0.62.0 (V0 runtime)     -> pytest -m oh062
# Idempotent: a venv is created and openhands-ai installed only when missing (pip's cache makes
# a re-install quick); dockpool and the plugin are installed editable, again only when the
# stamp says the checkout or its pyproject files changed. Needs root and a Docker engine (it is
# started if needed); builds the stand-in and agent-server images if they are missing.
#
# Usage: plugins/openhands/run-tests.sh [sdk|oh1|oh062 ...] [-- extra pytest args]
# Environment:
#   PYTHON312           a Python 3.12 interpreter (default: python3.12 on PATH, else pyenv's)
#   DOCKPOOL_OH_REPO    a fetched OpenHands git repository for OpenHands' own unit tests
#   DOCKPOOL_SKIP_IMAGES=1  do not build images (tests needing a missing image skip)
#   DOCKPOOL_OH_VENV_DIR    where the two venvs live (default: this folder). CI on a clean
#                       clone can point it at a cache (e.g. /var/cache/dockpool/openhands) to
#                       skip the openhands-ai installs (~3 min for 1.11 with a warm pip cache)
set -euo pipefail
exec </dev/null
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
started=$(date +%s)

OH1_VERSION=1.11.0
OH062_VERSION=0.62.0
SDK_VERSION=1.58.2

say() { printf 'run-tests: %s\n' "$*"; }
die() { printf 'run-tests: %s\n' "$*" >&2; exit 1; }

targets=()
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        sdk | oh1 | oh062) targets+=("$1") ;;
        --) shift; extra=("$@"); break ;;
        *) die "unknown argument '$1' (sdk, oh1, oh062, -- pytest args)" ;;
    esac
    shift
done
[ ${#targets[@]} -gt 0 ] || targets=(sdk oh1 oh062)

find_python() {
    local candidate
    for candidate in "${PYTHON312:-}" "$(command -v python3.12 || true)" /root/.pyenv/versions/3.12*/bin/python3.12; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
PY="$(find_python)" || die "no Python 3.12 found (set PYTHON312)"

pip_quiet=(--quiet --disable-pip-version-check)

VENV_DIR="${DOCKPOOL_OH_VENV_DIR:-$HERE}"
mkdir -p "$VENV_DIR"

ensure_venv() {  # ensure_venv <venv name> <distribution> <version> [more requirements]
    local dir="$VENV_DIR/$1" dist="$2" version="$3" stamp have
    shift 3
    if [ ! -x "$dir/bin/python" ]; then
        say "creating $(basename "$dir") with $("$PY" --version)"
        "$PY" -m venv "$dir"
        "$dir/bin/python" -m pip install "${pip_quiet[@]}" --upgrade pip
    fi
    have="$("$dir/bin/python" -c "import importlib.metadata as m; print(m.version('$dist'))" 2>/dev/null || true)"
    if [ "$have" != "$version" ]; then
        say "installing $dist==$version $* into $(basename "$dir") (minutes when pip's cache is cold)"
        "$dir/bin/python" -m pip install "${pip_quiet[@]}" "$dist==$version" "$@"
    fi
    stamp="$dir/.dockpool-openhands-installed"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$ROOT" ] \
        || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ "$HERE/pyproject.toml" -nt "$stamp" ]; then
        say "installing dockpool and dockpool-openhands[test] (editable) into $(basename "$dir")"
        "$dir/bin/python" -m pip install "${pip_quiet[@]}" -e "$ROOT" -e "$HERE[test]"
        echo "$ROOT" >"$stamp"
    fi
}

say "engine and images"
bash "$ROOT/scripts/ensure-docker.sh" >/dev/null
if [ "${DOCKPOOL_SKIP_IMAGES:-0}" != 1 ]; then
    bash "$ROOT/scripts/build-stub-image.sh" >/dev/null
    if [[ " ${targets[*]} " == *" sdk "* ]]; then
        bash "$ROOT/scripts/build-agent-server-image.sh" --version "$SDK_VERSION" \
            || say "agent-server $SDK_VERSION image not built: the SDK tests will skip"
    fi
    if [[ " ${targets[*]} " == *" oh1 "* ]] && [ -f "$ROOT/scripts/build-agent-server-image.sh" ]; then
        bash "$ROOT/scripts/build-agent-server-image.sh" \
            || say "agent-server image not built: the tests that need it will skip"
        # OpenHands' app image with the plugin (plugins/openhands/Dockerfile), on the stand-in
        if bash "$ROOT/scripts/build-openhands-app-image.sh"; then
            PYTHON="$PY" bash "$HERE/build-image.sh" --from "dockpool-openhands-app:$OH1_VERSION" \
                || say "the derived app image was not built: tests/test_v1_image.py will skip"
        else
            say "the stand-in app image was not built: tests/test_v1_image.py will skip"
        fi
    fi
fi

status=0
for target in "${targets[@]}"; do
    case "$target" in
        sdk)
            ensure_venv .venv-sdk openhands-workspace "$SDK_VERSION" "openhands-sdk==$SDK_VERSION"
            say "== pytest tests_sdk in .venv-sdk (openhands-sdk/-workspace $SDK_VERSION)"
            (cd "$HERE" && DOCKPOOL_AGENT_IMAGE_REF="dockpool-agent-server:$SDK_VERSION" \
                "$VENV_DIR/.venv-sdk/bin/python" -m pytest tests_sdk "${extra[@]}") || status=1
            continue ;;
        oh1) venv=.venv-oh1; version=$OH1_VERSION ;;
        oh062) venv=.venv-oh062; version=$OH062_VERSION ;;
    esac
    ensure_venv "$venv" openhands-ai "$version"
    say "== pytest -m $target in $venv (openhands-ai $version)"
    (cd "$HERE" && "$VENV_DIR/$venv/bin/python" -m pytest -m "$target" tests "${extra[@]}") \
        || status=1
done

say "took $(( $(date +%s) - started )) s"
exit $status
