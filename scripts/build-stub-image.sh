#!/usr/bin/env bash
# Build the stand-in runtime image dockpool-stub:latest from images/stub/, without any
# registry:
#   1. dockpool-busybox:latest  = `docker import` of a rootfs holding the host's static
#                                 busybox (Debian package busybox-static) and its applet links
#   2. dockpool-stub:latest     = `docker build` FROM it, adding the stub server (images/stub)
#
# Idempotent: each image carries a hash of its inputs in a label (dockpool.busybox.inputs,
# dockpool.stub.inputs); an image whose label matches is kept as it is.
#
# Environment:
#   DOCKPOOL_STUB_IMAGE     tag of the stub image      (default dockpool-stub:latest)
#   DOCKPOOL_BUSYBOX_IMAGE  tag of the base image      (default dockpool-busybox:latest)
#   DOCKPOOL_BUSYBOX        static busybox binary to use (default: /bin/busybox, /usr/bin/busybox)
#   DOCKPOOL_STUB_REBUILD=1 rebuild both images even when up to date
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SRC="$ROOT/images/stub"
STUB_IMAGE="${DOCKPOOL_STUB_IMAGE:-dockpool-stub:latest}"
BASE_IMAGE="${DOCKPOOL_BUSYBOX_IMAGE:-dockpool-busybox:latest}"
REBUILD="${DOCKPOOL_STUB_REBUILD:-0}"

say() { printf 'build-stub-image: %s\n' "$*"; }
die() { printf 'build-stub-image: %s\n' "$*" >&2; exit 1; }

t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }

# --- the engine -----------------------------------------------------------------------------
if ! timeout 10 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; then
    die "no Docker engine answers 'docker info'; run scripts/ensure-docker.sh first"
fi

# --- a static busybox -------------------------------------------------------------------------
is_static() {
    [ -f "$1" ] && [ -x "$1" ] || return 1
    local out
    out="$(LC_ALL=C ldd "$1" 2>&1 || true)"
    [[ "$out" == *"not a dynamic executable"* || "$out" == *"statically linked"* ]]
}

find_busybox() {
    local c
    for c in ${DOCKPOOL_BUSYBOX:-} /bin/busybox /usr/bin/busybox; do
        if is_static "$c"; then
            readlink -f "$c"
            return 0
        fi
    done
    return 1
}

if ! BUSYBOX="$(find_busybox)"; then
    if [ -n "${DOCKPOOL_BUSYBOX:-}" ]; then
        die "DOCKPOOL_BUSYBOX=$DOCKPOOL_BUSYBOX is not a static executable"
    fi
    if [ "$(id -u)" -eq 0 ] && [ -f /etc/debian_version ]; then
        say "no static busybox found; installing busybox-static with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq busybox-static >/dev/null
        BUSYBOX="$(find_busybox)" || die "busybox-static installed, but no static /bin/busybox found"
    else
        die "need a statically linked busybox: install busybox-static (Debian/Ubuntu), or set DOCKPOOL_BUSYBOX=/path/to/static/busybox"
    fi
fi

# --- input hashes ---------------------------------------------------------------------------
[ -f "$SRC/Dockerfile" ] || die "missing $SRC/Dockerfile"
busybox_sum="$(sha256sum "$BUSYBOX" | cut -d' ' -f1)"
script_sum="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
# The base depends on busybox and on this script (which lays out the rootfs).
base_hash="$(printf 'busybox %s\nscript %s\n' "$busybox_sum" "$script_sum" | sha256sum | cut -c1-32)"
# The stub depends on the base's inputs and on every file under images/stub.
stub_hash="$(
    {
        printf 'base %s\n' "$base_hash"
        (cd "$SRC" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-32
)"

label_of() { # image label
    docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

if [ "$REBUILD" != 1 ] && [ "$(label_of "$STUB_IMAGE" dockpool.stub.inputs)" = "$stub_hash" ]; then
    say "$STUB_IMAGE is up to date (inputs $stub_hash); nothing to do ($(elapsed))"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# --- 1. base image: docker import of a busybox rootfs ------------------------------------------
if [ "$REBUILD" != 1 ] && [ "$(label_of "$BASE_IMAGE" dockpool.busybox.inputs)" = "$base_hash" ]; then
    say "$BASE_IMAGE is up to date (inputs $base_hash)"
else
    say "importing $BASE_IMAGE from $BUSYBOX"
    rootfs="$tmp/rootfs"
    mkdir -p "$rootfs"/{bin,dev,etc,proc,root,run,sys,tmp,usr/lib,var/tmp}
    chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
    chmod 700 "$rootfs/root"
    cp "$BUSYBOX" "$rootfs/bin/busybox"
    chmod 755 "$rootfs/bin/busybox"
    n=0
    while IFS= read -r applet; do
        case "$applet" in '' | busybox | */*) continue ;; esac
        ln -s busybox "$rootfs/bin/$applet"
        n=$((n + 1))
    done < <("$BUSYBOX" --list)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/sh"]' \
            --change "LABEL dockpool.busybox.inputs=$base_hash" \
            --message "dockpool: busybox $("$BUSYBOX" 2>&1 | head -n1 | cut -d' ' -f2) rootfs" \
            - "$BASE_IMAGE" >/dev/null
    say "imported $BASE_IMAGE ($n applets, $(docker image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes)"
fi

# --- 2. stub image: docker build FROM the base -------------------------------------------------
say "building $STUB_IMAGE"
ctx="$tmp/context"
mkdir -p "$ctx"
cp -R "$SRC/." "$ctx/"
chmod 755 "$ctx"/stub-server "$ctx"/stub-ctl "$ctx"/stub-check "$ctx"/cgi-bin/*
# The legacy builder works with every engine and client here (dockerd 20.10 and a newer
# CLI without buildx); the Dockerfile needs nothing else.
if ! out="$(DOCKER_BUILDKIT=0 docker build -q \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --label "dockpool.stub.inputs=$stub_hash" \
    -t "$STUB_IMAGE" "$ctx" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "docker build of $STUB_IMAGE failed"
fi
# Drop older builds left untagged (only those no container uses).
docker image prune -f --filter "label=dockpool.stub.inputs" >/dev/null 2>&1 || true
docker image prune -f --filter "label=dockpool.busybox.inputs" >/dev/null 2>&1 || true
say "built $STUB_IMAGE (inputs $stub_hash, $(docker image inspect --format '{{.Size}}' "$STUB_IMAGE") bytes) in $(elapsed)"
