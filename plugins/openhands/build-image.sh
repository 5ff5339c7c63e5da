#!/usr/bin/env bash
# Build plugins/openhands/Dockerfile: an OpenHands app image with dockpool-openhands added.
#   build-image.sh [--from IMAGE] [--tag TAG]
#     --from  the OpenHands app image to derive from (default: OpenHands' 1.11 image; here,
#             with no registry, the local stand-in dockpool-openhands-app:1.11.0)
#     --tag   the image to build (default: <from's repository>-dockpool:<from's tag>)
# The wheels of dockpool and the plugin are built from this checkout; those of dockpool's
# dependencies are downloaded for the Python of the image's /app/.venv (a host pip cache or
# PyPI); docker build then runs offline (classic builder). PYTHON: the host Python (>= 3.12).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
FROM="docker.openhands.dev/openhands/openhands:1.11"
TAG=""
while [ $# -gt 0 ]; do
    case "$1" in
        --from) FROM="$2"; shift ;;
        --tag) TAG="$2"; shift ;;
        *) echo "build-image: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
say() { printf 'build-image: %s\n' "$*"; }
die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }
docker image inspect "$FROM" >/dev/null 2>&1 || die "no image $FROM (pull it, or build the stand-in)"
[ -n "$TAG" ] || TAG="${FROM%:*}-dockpool:${FROM##*:}"

pyver="$(docker run --rm --entrypoint /app/.venv/bin/python "$FROM" -c \
    'import sys; print("%d.%d" % sys.version_info[:2])')" || die "$FROM has no /app/.venv/bin/python"
say "$FROM: Python $pyver in /app/.venv"
ctx="$(mktemp -d "${TMPDIR:-/tmp}/dockpool-oh-image.XXXXXX")"
log="$ctx.build.log"
trap 'rm -rf "$ctx" "$log"' EXIT
mkdir -p "$ctx/wheels"
cp "$HERE/Dockerfile" "$ctx/"
py="${PYTHON:-}"  # a Python >= 3.12 with pip: the plugin's wheel needs one
if [ -z "$py" ]; then
    pyenv_root="$(pyenv root 2>/dev/null || echo /nonexistent)"
    for c in python3.13 python3.12 python3 "$pyenv_root"/versions/3.1[23]*/bin/python3; do
        "$c" -c 'import sys, pip; assert sys.version_info >= (3, 12)' 2>/dev/null \
            && { py="$c"; break; }
    done
fi
[ -n "$py" ] || die "need a Python >= 3.12 with pip (set PYTHON)"
"$py" -m pip wheel -q --disable-pip-version-check --no-deps -w "$ctx/wheels" "$ROOT" "$HERE" \
    >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "could not build the wheels of dockpool and dockpool-openhands"; }
target=(--python-version "$pyver" --implementation cp --only-binary=:all:
    --platform manylinux2014_x86_64)
for m in $(seq 17 41); do target+=(--platform "manylinux_2_${m}_x86_64"); done
"$py" -m pip download -q --disable-pip-version-check "${target[@]}" -d "$ctx/wheels" \
    "$ctx"/wheels/dockpool-*.whl >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; die "could not download dockpool's dependencies"; }
say "context: $(ls "$ctx/wheels" | wc -l) wheels"
DOCKER_BUILDKIT=0 docker build -q --build-arg "OPENHANDS_IMAGE=$FROM" -t "$TAG" "$ctx" \
    >"$log" 2>&1 || { tail -n 40 "$log" >&2; die "docker build of $TAG failed"; }
say "built $TAG"
