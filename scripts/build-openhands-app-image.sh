#!/usr/bin/env bash
# Build dockpool-openhands-app:<openhands-ai version>, the local stand-in for OpenHands' own app
# image (see images/openhands-app/Dockerfile), with no container registry:
#   1. the base dockpool-trixie:latest (made by scripts/build-agent-server-image.sh if missing)
#   2. wheels: `pip download` of images/openhands-app/requirements.lock for CPython 3.13 on
#      manylinux x86_64 into a cache outside the repo (sdist-only releases are built into pure
#      Python wheels on the host)
#   3. `docker build` (classic builder, no network) FROM the base
# Idempotent: the image carries a hash of its inputs (label dockpool.openhands-app.inputs); an
# image whose label matches is kept, and the wheel cache is only filled when a pin is missing.
#
# Then plugins/openhands/build-image.sh derives the image with dockpool-openhands from it.
#
# Environment:
#   DOCKPOOL_OH_APP_IMAGE    repository of the image (default dockpool-openhands-app)
#   DOCKPOOL_TRIXIE_IMAGE    the base (default dockpool-trixie:latest)
#   DOCKPOOL_CACHE           cache folder (default /var/cache/dockpool)
#   DOCKPOOL_AGENT_PYTHON    host Python with pip (default: python3.13 on PATH or from pyenv)
#   DOCKPOOL_OH_APP_REBUILD=1  rebuild even when up to date
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SRC="$ROOT/images/openhands-app"
REPO="${DOCKPOOL_OH_APP_IMAGE:-dockpool-openhands-app}"
BASE_IMAGE="${DOCKPOOL_TRIXIE_IMAGE:-dockpool-trixie:latest}"
CACHE="${DOCKPOOL_CACHE:-/var/cache/dockpool}"
WHEELS="$CACHE/openhands-app-wheels"
LOCK="$SRC/requirements.lock"
PY_VERSION=3.13

say() { printf 'build-openhands-app-image: %s\n' "$*"; }
die() { printf 'build-openhands-app-image: %s\n' "$*" >&2; exit 1; }
t0=$SECONDS

for f in Dockerfile entrypoint.sh requirements.lock; do
    [ -f "$SRC/$f" ] || die "missing $SRC/$f"
done
VERSION="$(sed -n 's/^openhands-ai==\([^ ;]*\).*/\1/p' "$LOCK")"
[ -n "$VERSION" ] || die "$LOCK pins no openhands-ai version"
IMAGE="$REPO:$VERSION"
timeout 10 docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/ensure-docker.sh"

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "no $BASE_IMAGE: building it (scripts/build-agent-server-image.sh)"
    bash "$HERE/build-agent-server-image.sh" || die "could not build $BASE_IMAGE"
fi
base_id="$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE")"
inputs="$(
    {
        printf 'base %s\n' "$base_id"
        sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
        (cd "$SRC" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-32
)"
have="$(docker image inspect --format '{{ index .Config.Labels "dockpool.openhands-app.inputs" }}' \
    "$IMAGE" 2>/dev/null || true)"
if [ "${DOCKPOOL_OH_APP_REBUILD:-0}" != 1 ] && [ "$have" = "$inputs" ]; then
    say "$IMAGE is up to date (inputs $inputs); nothing to do"
    exit 0
fi

PY=""
for c in "${DOCKPOOL_AGENT_PYTHON:-}" "python$PY_VERSION" \
    "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/"$PY_VERSION"*/bin/python"$PY_VERSION"; do
    [ -n "$c" ] && "$c" -m pip --version >/dev/null 2>&1 && { PY="$c"; break; }
done
[ -n "$PY" ] || die "need a Python $PY_VERSION with pip on the host (set DOCKPOOL_AGENT_PYTHON)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/dockpool-oh-app.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# pip's target: CPython 3.13 on glibc x86_64 (trixie has glibc 2.41)
target=(--python-version "$PY_VERSION" --implementation cp --platform manylinux2014_x86_64)
for m in $(seq 17 41); do target+=(--platform "manylinux_2_${m}_x86_64"); done
from_cache() {
    [ -d "$WHEELS" ] && "$PY" -m pip download -q --disable-pip-version-check --no-deps \
        --no-index --find-links "$WHEELS" --only-binary=:all: "${target[@]}" \
        -d "$tmp/ctx/wheels" -r "$LOCK" >"$tmp/offline.log" 2>&1
}
mkdir -p "$tmp/ctx/wheels"
if ! from_cache; then
    say "filling the wheel cache $WHEELS from PyPI"
    mkdir -p "$WHEELS"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps "${target[@]}" \
        -d "$WHEELS" -r "$LOCK" >"$tmp/download.log" 2>&1 \
        || { tail -n 30 "$tmp/download.log" >&2; die "pip download failed"; }
    for sd in "$WHEELS"/*.tar.gz "$WHEELS"/*.zip; do  # releases with no wheel: pure Python only
        [ -f "$sd" ] || continue
        "$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$tmp/built" "$sd" \
            >"$tmp/wheel.log" 2>&1 || { tail -n 30 "$tmp/wheel.log" >&2; die "cannot build $sd"; }
    done
    for w in "$tmp"/built/*.whl; do
        [ -f "$w" ] || continue
        case "$w" in
            *-none-any.whl) mv -f "$w" "$WHEELS/" ;;
            *) die "$(basename "$w") is a platform wheel built on the host: not usable" ;;
        esac
    done
    from_cache || { tail -n 30 "$tmp/offline.log" >&2; die "the wheel cache lacks pins of $LOCK"; }
fi
cp "$SRC/Dockerfile" "$SRC/requirements.lock" "$SRC/entrypoint.sh" "$tmp/ctx/"
chmod 0755 "$tmp/ctx/entrypoint.sh"
say "building $IMAGE from $BASE_IMAGE ($(ls "$tmp/ctx/wheels" | wc -l) wheels; minutes)"
DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "dockpool.openhands-app.inputs=$inputs" -t "$IMAGE" "$tmp/ctx" >"$tmp/build.log" 2>&1 \
    || { tail -n 40 "$tmp/build.log" >&2; die "docker build of $IMAGE failed"; }
docker image prune -f --filter "label=dockpool.openhands-app.stage=venv" >/dev/null 2>&1 || true
say "built $IMAGE in $((SECONDS - t0)) s ($(docker image inspect --format '{{.Size}}' "$IMAGE" |
    awk '{ printf "%.0f MB", $1 / 1000000 }'))"
