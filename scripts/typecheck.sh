#!/usr/bin/env bash
# mypy --strict over everything typed in this repository, one run per environment:
#   core    src/ (the benchmarks too: src/dockpool/bench/) and tests/ in .venv (root [tool.mypy])
#   oh1     plugins/openhands against openhands-ai 1.11 (.venv-oh1): the package but its V0
#           modules, conftest/oh_common/v1_helpers, tests/test_logging and tests/test_v1_*,
#           bench_sandbox.py
#   oh062   plugins/openhands against openhands-ai 0.62 (.venv-oh062): the shared modules,
#           runtime_v0, v0_volumes, conftest/oh_common, tests/test_logging and tests/test_v0_*
#   sdk     plugins/openhands against openhands-workspace/-sdk (.venv-sdk): the shared modules,
#           sdk_spec, workspace, tests_sdk/
# The plugin runs use .venv's mypy with `--python-executable` of the OpenHands venv, so that
# `openhands` (which ships py.typed) resolves to the generation installed there; their settings
# are plugins/openhands/pyproject.toml's [tool.mypy]. The venvs are made by
# plugins/openhands/run-tests.sh (this script never makes them): a missing one is skipped with
# a note, except in CI (CI=true), where it is an error. Every run goes ahead even if an earlier
# one failed; the exit status is 1 if any failed.
#
# Usage: scripts/typecheck.sh [core|oh1|oh062|sdk ...]   (default: all four)
# Environment:
#   DOCKPOOL_OH_VENV_DIR  where .venv-oh1 and .venv-oh062 live (default: plugins/openhands,
#                         else /var/cache/dockpool/openhands, the cache CI uses)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLUGIN="$ROOT/plugins/openhands"
MYPY="$ROOT/.venv/bin/mypy"

say() { printf 'typecheck: %s\n' "$*"; }

targets=()
for arg in "$@"; do
    case "$arg" in
        core | oh1 | oh062 | sdk) targets+=("$arg") ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) say "unknown argument '$arg' (core, oh1, oh062, sdk)" >&2; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(core oh1 oh062 sdk)

if [ ! -x "$MYPY" ]; then
    say "no $MYPY: run scripts/bootstrap.sh first" >&2
    exit 1
fi

# The files of the 0.62 run (the 1.x run's are `files` in the plugin's pyproject.toml).
OH062_FILES=(
    src/dockpool_openhands/__init__.py
    src/dockpool_openhands/logs.py
    src/dockpool_openhands/pool.py
    src/dockpool_openhands/probes.py
    src/dockpool_openhands/registry.py
    src/dockpool_openhands/runtime_v0.py
    src/dockpool_openhands/v0_volumes.py
    tests/conftest.py
    tests/oh_common.py
    tests/test_logging.py
    tests/test_v0_runtime.py
    tests/test_v0_spec.py
)

# The files of the SDK run (openhands-workspace, no openhands-ai).
SDK_FILES=(
    src/dockpool_openhands/__init__.py
    src/dockpool_openhands/logs.py
    src/dockpool_openhands/pool.py
    src/dockpool_openhands/probes.py
    src/dockpool_openhands/registry.py
    src/dockpool_openhands/sdk_spec.py
    src/dockpool_openhands/workspace.py
    tests_sdk
    ../../benchmarks/sdk_workspace.py
)

venv_python() {  # venv_python <venv name>: its interpreter, or nothing
    local dir
    if [ -n "${DOCKPOOL_OH_VENV_DIR:-}" ]; then
        dir="$DOCKPOOL_OH_VENV_DIR"
        [ -x "$dir/$1/bin/python" ] && echo "$dir/$1/bin/python"
        return 0
    fi
    for dir in "$PLUGIN" /var/cache/dockpool/openhands; do
        if [ -x "$dir/$1/bin/python" ]; then
            echo "$dir/$1/bin/python"
            return 0
        fi
    done
}

# The openhands-ai versions the plugin is tested with (run-tests.sh installs exactly these).
OH1_VERSION="$(sed -n 's/^OH1_VERSION=//p' "$PLUGIN/run-tests.sh")"
OH062_VERSION="$(sed -n 's/^OH062_VERSION=//p' "$PLUGIN/run-tests.sh")"
SDK_VERSION="$(sed -n 's/^SDK_VERSION=//p' "$PLUGIN/run-tests.sh")"

status=0
failed=()
skipped=()

plugin_run() {  # plugin_run <target> <venv name> <distribution> <version> [files...]
    local target="$1" venv="$2" dist="$3" version="$4" python have
    shift 4
    python="$(venv_python "$venv")"
    if [ -z "$python" ]; then
        local where="${DOCKPOOL_OH_VENV_DIR:-$PLUGIN or /var/cache/dockpool/openhands}"
        if [ "${CI:-}" = true ]; then
            say "== $target: no $venv in $where (CI: an error; plugins/openhands/run-tests.sh makes it)" >&2
            failed+=("$target")
            status=1
        else
            say "== $target: SKIPPED: no $venv in $where (make it with plugins/openhands/run-tests.sh $target)"
            skipped+=("$target")
        fi
        return 0
    fi
    have="$("$python" -c "import importlib.metadata as m; print(m.version('$dist'))" 2>/dev/null || true)"
    if [ "$have" != "$version" ]; then
        say "== $target: $python has $dist '${have:-none}', not $version" >&2
        failed+=("$target")
        status=1
        return 0
    fi
    say "== $target: mypy plugins/openhands with $python ($dist $have)"
    (cd "$PLUGIN" && "$MYPY" --python-executable "$python" --cache-dir ".mypy_cache/$target" "$@") \
        || { failed+=("$target"); status=1; }
}

for target in "${targets[@]}"; do
    case "$target" in
        core)
            say "== core: mypy src tests (.venv)"
            (cd "$ROOT" && "$MYPY" src tests) || { failed+=(core); status=1; }
            ;;
        oh1) plugin_run oh1 .venv-oh1 openhands-ai "$OH1_VERSION" ;;
        oh062) plugin_run oh062 .venv-oh062 openhands-ai "$OH062_VERSION" "${OH062_FILES[@]}" ;;
        sdk) plugin_run sdk .venv-sdk openhands-workspace "$SDK_VERSION" "${SDK_FILES[@]}" ;;
    esac
done

summary="ran: ${targets[*]}"
[ ${#skipped[@]} -eq 0 ] || summary+="; skipped: ${skipped[*]}"
[ ${#failed[@]} -eq 0 ] || summary+="; FAILED: ${failed[*]}"
say "$summary"
exit $status
