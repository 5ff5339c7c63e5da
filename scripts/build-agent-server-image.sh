#!/usr/bin/env bash
# Build the OpenHands agent-server image dockpool-agent-server:<version> (+ :latest) from
# images/agent-server/, without any container registry:
#   1. dockpool-trixie:latest  = `docker import` of a Debian trixie rootfs made with
#                                debootstrap (minbase + images/agent-server/packages.txt),
#                                from the Debian mirror this machine's apt uses
#   2. wheels                  = `pip download` of the lock (images/agent-server/
#                                requirements.lock, or locks/V.lock with --version V) for
#                                CPython 3.13 / manylinux x86_64 into a cache outside the repo;
#                                packages published only as sdists are built into (pure
#                                Python) wheels on the host
#   3. dockpool-agent-server   = `docker build` FROM the base: stage 1 installs the wheels with
#                                `pip --no-index` into the venv /opt/agent-server, stage 2 copies
#                                the venv (the wheels stay out of the final image)
#
# Idempotent: each image carries a hash of its inputs in a label (dockpool.trixie.inputs,
# dockpool.agent-server.inputs); an image whose label matches is kept as it is, and the wheel
# cache is only topped up when something in the lock is missing from it.
#
# Usage:
#   build-agent-server-image.sh           build what is missing or out of date, from
#                                         requirements.lock; tags its version and latest
#   build-agent-server-image.sh --relock  re-resolve requirements.in into requirements.lock
#                                         (with uv, installed into the cache), then build
#   build-agent-server-image.sh --version V
#                                         build dockpool-agent-server:V (any released version)
#                                         from images/agent-server/locks/V.lock, made first
#                                         when missing (uv resolves openhands-agent-server==V,
#                                         openhands-sdk==V, openhands-tools==V). The version
#                                         requirements.lock pins has no locks/V.lock: it is
#                                         built from requirements.lock, as without --version.
#                                         :latest always stays requirements.lock's version.
#   build-agent-server-image.sh --version V --relock
#                                         re-resolve V's lock, then build
#   build-agent-server-image.sh --smoke   then start a container from the image, time it to
#                                         /ready and to healthy, probe the API, remove it
#                                         (with --version V: the image of V)
#
# Every version is built from the one Dockerfile, its wheels from the one wheel cache.
#
# Environment:
#   DOCKPOOL_AGENT_IMAGE      repository of the image   (default dockpool-agent-server; tagged
#                             with the openhands-agent-server version of the lock, and
#                             latest when that lock is requirements.lock)
#   DOCKPOOL_TRIXIE_IMAGE     tag of the base image     (default dockpool-trixie:latest)
#   DOCKPOOL_DEBIAN_MIRROR    Debian mirror for debootstrap (default: the one apt uses here,
#                             else http://deb.debian.org/debian)
#   DOCKPOOL_CACHE            cache folder              (default /var/cache/dockpool)
#   DOCKPOOL_AGENT_WHEELS     wheel cache               (default $DOCKPOOL_CACHE/agent-server-wheels)
#   DOCKPOOL_AGENT_PYTHON     host Python with pip for downloading wheels (default: a
#                             python3.13 on PATH or from pyenv, else python3)
#   DOCKPOOL_AGENT_REBUILD=1  rebuild both images even when up to date
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SRC="$ROOT/images/agent-server"
REPO="${DOCKPOOL_AGENT_IMAGE:-dockpool-agent-server}"
BASE_IMAGE="${DOCKPOOL_TRIXIE_IMAGE:-dockpool-trixie:latest}"
CACHE="${DOCKPOOL_CACHE:-/var/cache/dockpool}"
WHEELS="${DOCKPOOL_AGENT_WHEELS:-$CACHE/agent-server-wheels}"
REBUILD="${DOCKPOOL_AGENT_REBUILD:-0}"
SUITE=trixie      # Debian 13: Python 3.13, the interpreter the wheels are chosen for
PY_VERSION=3.13

say() { printf 'build-agent-server-image: %s\n' "$*"; }
die() { printf 'build-agent-server-image: %s\n' "$*" >&2; exit 1; }

RELOCK=0
SMOKE=0
WANTED=""   # --version V; empty: the version requirements.lock pins
while [ $# -gt 0 ]; do
    case "$1" in
        --relock) RELOCK=1 ;;
        --smoke) SMOKE=1 ;;
        --version)
            [ $# -ge 2 ] || die "--version needs a version, e.g. --version 1.58.2"
            WANTED="$2"
            shift
            ;;
        --version=*) WANTED="${1#--version=}" ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
# A release number that is also a valid image tag and file name (no local "+..." part).
if [ -n "$WANTED" ] && ! [[ "$WANTED" =~ ^[0-9]+(\.[0-9]+)*((a|b|rc|\.post|\.dev)[0-9]+)*$ ]]; then
    die "--version '$WANTED' is not a release number like 1.58.2"
fi

t_start=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

tmp=""
cleanup() {
    [ -n "$tmp" ] && [ -d "$tmp" ] || return 0
    # debootstrap mounts /proc, /sys (and maybe more) in the target; never let rm walk into
    # a mount, whatever state a failed run left behind.
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v p="$tmp/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

# --- the engine -----------------------------------------------------------------------------
engine_up() { timeout 10 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }
wait_engine() { # seconds
    local end=$((SECONDS + $1))
    until engine_up; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 2
    done
}
if ! engine_up; then
    die "no Docker engine answers 'docker info'; run scripts/ensure-docker.sh first"
fi
# A docker command that survives an engine restart (other users of a shared engine do that):
# when it fails for want of the engine, wait for the engine and run it once more.
dk() {
    local rc=0 err
    { err="$(docker "$@" 2>&1 1>&3 3>&-)"; } 3>&1 || rc=$?
    [ "$rc" = 0 ] && return 0
    if engine_up && ! grep -q -E \
        'Cannot connect to the Docker daemon|connection refused|unexpected EOF|connection reset' \
        <<<"$err"; then
        [ -n "$err" ] && printf '%s\n' "$err" >&2
        return "$rc"
    fi
    say "the Docker engine is away; waiting for it" >&2
    wait_engine 180 || return 1
    docker "$@"
}

# --- the host's Python (for pip download / pip wheel) ------------------------------------------
host_python() {
    local c root
    local -a cands=()
    [ -n "${DOCKPOOL_AGENT_PYTHON:-}" ] && cands+=("$DOCKPOOL_AGENT_PYTHON")
    cands+=("python$PY_VERSION")
    if command -v pyenv >/dev/null 2>&1 && root="$(pyenv root 2>/dev/null)"; then
        cands+=("$root"/versions/"$PY_VERSION"*/bin/python"$PY_VERSION")
    fi
    cands+=(python3)
    for c in "${cands[@]}"; do
        # pyenv shims exist for versions that are not active; actually running it tells.
        if "$c" -m pip --version >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

# pip's target: CPython 3.13 on glibc x86_64 (trixie has glibc 2.41).
PIP_TARGET=(--python-version "$PY_VERSION" --implementation cp
    --platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
for m in $(seq 5 41); do PIP_TARGET+=(--platform "manylinux_2_${m}_x86_64"); done

# --- the lock -----------------------------------------------------------------------------------
DEFAULT_LOCK="$SRC/requirements.lock"
lock_version() { # lock -> the openhands-agent-server version it pins
    sed -n 's/^openhands-agent-server==\([^ ;]*\).*/\1/p' "$1" 2>/dev/null
}

uv_bin() { # -> path of uv, installed into the cache on first use
    local py uvenv="$CACHE/uv-venv"
    if ! "$uvenv/bin/uv" --version >/dev/null 2>&1; then
        py="$(host_python)" || die "need a Python with pip on the host (set DOCKPOOL_AGENT_PYTHON)"
        say "installing uv into $uvenv (pip's resolver gives up on this dependency tree)" >&2
        mkdir -p "$CACHE"
        "$py" -m venv --clear "$uvenv"
        if ! "$uvenv/bin/python" -m pip install --disable-pip-version-check uv \
            >"$tmp/pip-uv.log" 2>&1; then
            tail -n 30 "$tmp/pip-uv.log" >&2
            die "could not install uv"
        fi
    fi
    printf '%s\n' "$uvenv/bin/uv"
}

# Resolves the requirements input $1 into the lock $2 (for CPython $PY_VERSION / manylinux
# x86_64); the lock's header names the input ($3) and the options that remake it ($4). The
# lock is only rewritten when its pins changed.
relock() { # input lock origin options
    local in="$1" lock="$2" origin="$3" uv out="$tmp/new.lock" n
    uv="$(uv_bin)"
    say "resolving $origin for CPython $PY_VERSION / manylinux x86_64"
    local -a fl=()
    [ -d "$WHEELS" ] && fl=(--find-links "$WHEELS")
    if ! "$uv" pip compile --quiet --no-config --no-header --no-annotate \
        --python-version "$PY_VERSION" --python-platform x86_64-manylinux_2_28 "${fl[@]}" \
        "$in" -o "$tmp/resolved.txt"; then
        die "uv could not resolve $origin (is it a released version?)"
    fi
    {
        printf '# Generated by scripts/build-agent-server-image.sh %s (uv %s) on %s\n' \
            "$4" "$("$uv" --version | cut -d' ' -f2)" "$(date -u +%Y-%m-%d)"
        printf '# from %s, for CPython %s on manylinux x86_64. Do not edit by hand.\n' \
            "$origin" "$PY_VERSION"
        grep -v '^#' "$tmp/resolved.txt"
    } >"$out"
    n="$(grep -c '^[^#].*==' "$out")"
    if cmp -s <(grep -v '^#' "$out") <(grep -v '^#' "$lock" 2>/dev/null); then
        say "${lock#"$ROOT"/} is unchanged ($n packages)"
    else
        mkdir -p "$(dirname "$lock")"
        cp "$out" "$lock"
        say "wrote ${lock#"$ROOT"/} ($n packages)"
    fi
}

tmp="$(mktemp -d "${TMPDIR:-/tmp}/dockpool-agent-image.XXXXXX")"

# Which lock: requirements.lock (from requirements.in) without --version, and for the version
# it pins; else locks/V.lock, resolved from the three packages pinned at V.
if [ -z "$WANTED" ] || [ "$(lock_version "$DEFAULT_LOCK")" = "$WANTED" ]; then
    LOCK="$DEFAULT_LOCK"
    if [ "$RELOCK" = 1 ]; then
        relock "$SRC/requirements.in" "$LOCK" requirements.in --relock
    fi
else
    LOCK="$SRC/locks/$WANTED.lock"
    if [ "$RELOCK" = 1 ] || [ ! -f "$LOCK" ]; then
        [ -f "$LOCK" ] || say "no ${LOCK#"$ROOT"/} yet: making it"
        printf 'openhands-%s==%s\n' agent-server "$WANTED" sdk "$WANTED" tools "$WANTED" \
            >"$tmp/requirements.in"
        relock "$tmp/requirements.in" "$LOCK" "openhands-{agent-server,sdk,tools}==$WANTED" \
            "--version $WANTED --relock"
    fi
fi
for f in Dockerfile agent-server-ready packages.txt; do
    [ -f "$SRC/$f" ] || die "missing $SRC/$f"
done
[ -f "$LOCK" ] || die "missing $LOCK (--relock makes it)"
VERSION="$(lock_version "$LOCK")"
[ -n "$VERSION" ] || die "$LOCK pins no openhands-agent-server version"
[ -z "$WANTED" ] || [ "$VERSION" = "$WANTED" ] ||
    die "$LOCK pins openhands-agent-server $VERSION, not $WANTED"
IMAGE="$REPO:$VERSION"
LATEST="$REPO:latest"
TAGS=("$IMAGE")
[ "$LOCK" != "$DEFAULT_LOCK" ] || TAGS+=("$LATEST")   # latest = requirements.lock's version
mapfile -t PACKAGES < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$SRC/packages.txt" | grep -v '^$')

# --- the Debian mirror apt uses here -------------------------------------------------------
# Prints "URI SUITE" for every deb entry of the one-line (.list) and deb822 (.sources) formats.
apt_entries() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if (i + 1 <= NF) print $i, $(i + 1)
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^#/) continue
                    key = tolower(line); sub(/:.*/, "", key)
                    val = line; sub(/^[^:]*:[ \t]*/, "", val)
                    if (key == "types") types = val
                    else if (key == "uris") uris = val
                    else if (key == "suites") suites = val
                    else if (key == "enabled") enabled = tolower(val)
                }
                if (enabled == "no" || (" " types " ") !~ / deb /) next
                nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
                for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++)
                    if (u[a] != "" && s[b] != "") print u[a], s[b]
            }' "$f"
    done
}
debian_suites='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)'
# The first entry of a Debian suite: "main" archive (suite without -security) and security.
MIRROR="${DOCKPOOL_DEBIAN_MIRROR:-$(apt_entries 2>/dev/null |
    awk -v re="$debian_suites(-updates|-backports|-proposed-updates)?\$" '$2 ~ re { print $1; exit }')}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
MIRROR="${MIRROR%/}"
SECURITY="$(apt_entries 2>/dev/null |
    awk -v re="${debian_suites}[-/]updates\$|-security\$" '$2 ~ re { print $1; exit }')"
SECURITY="${SECURITY:-http://deb.debian.org/debian-security}"
SECURITY="${SECURITY%/}"

# --- 1. base image: debootstrap + docker import ------------------------------------------------
# Lays out the rootfs made by debootstrap for a container: apt sources, slim dpkg config,
# no caches, lists, logs or per-host files.
finish_rootfs() { # rootfs
    local r="$1"
    rm -f "$r/etc/apt/sources.list"
    cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat >"$r/etc/apt/apt.conf.d/90dockpool" <<'EOF'
// dockpool image: no recommends, no package cache kept around.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Keep-Downloaded-Packages "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
    cat >"$r/etc/dpkg/dpkg.cfg.d/90dockpool-slim" <<'EOF'
# dockpool image: leave documentation, manuals and translations out (copyrights stay).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/lintian/*
    find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
        "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old "$r"/tmp/* "$r"/var/tmp/*
    find "$r/var/log" -type f -delete
    : >"$r/etc/hostname"
    : >"$r/etc/resolv.conf"
    [ -f "$r/etc/machine-id" ] && : >"$r/etc/machine-id"
    chmod 1777 "$r/tmp" "$r/var/tmp"
}

build_base() { # hash
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root (to make the Debian $SUITE rootfs)"
    if ! command -v debootstrap >/dev/null 2>&1; then
        [ -f /etc/debian_version ] || die "need debootstrap to make the Debian $SUITE rootfs"
        say "installing debootstrap with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq debootstrap >/dev/null
    fi
    local r="$tmp/rootfs" t0 include
    t0=$(date +%s.%N)
    include="$(IFS=,; echo "${PACKAGES[*]}")"
    say "debootstrap $SUITE (minbase + $include) from $MIRROR"
    if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$r" "$MIRROR" \
        >"$tmp/debootstrap.log" 2>&1; then
        tail -n 30 "$tmp/debootstrap.log" >&2
        [ -f "$r/debootstrap/debootstrap.log" ] && tail -n 30 "$r/debootstrap/debootstrap.log" >&2
        die "debootstrap of $SUITE from $MIRROR failed"
    fi
    finish_rootfs "$r"
    say "rootfs ready in $(since "$t0")s ($(du -sh --one-file-system "$r" | cut -f1)); importing $BASE_IMAGE"
    tar --numeric-owner --one-file-system --exclude='./dev/*' --exclude='./proc/*' \
        --exclude='./sys/*' --exclude='./run/*' -C "$r" -cf - . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' \
            --change "LABEL dockpool.trixie.inputs=$1" \
            --message "dockpool: debootstrap $SUITE minbase + $include from $MIRROR" \
            - "$BASE_IMAGE" >/dev/null
    rm -rf --one-file-system "$r"
}

# --- 2. wheels ---------------------------------------------------------------------------------
# Copies the wheels pinned by the lock from the cache into $1, without the network.
wheels_from_cache() { # dest
    [ -d "$WHEELS" ] || return 1
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-index \
        --find-links "$WHEELS" --only-binary=:all: "${PIP_TARGET[@]}" \
        -d "$1" -r "$LOCK" >"$tmp/pip-offline.log" 2>&1
}

fill_wheel_cache() {
    local t0 sd base norm w
    t0=$(date +%s.%N)
    mkdir -p "$WHEELS"
    say "downloading the wheels of $LOCK into $WHEELS"
    # --no-deps allows sdists next to the platform restriction; pip takes a wheel when the
    # release has a fitting one.
    if ! "$PY" -m pip download -q --disable-pip-version-check --no-deps "${PIP_TARGET[@]}" \
        -d "$WHEELS" -r "$LOCK" >"$tmp/pip-download.log" 2>&1; then
        tail -n 30 "$tmp/pip-download.log" >&2
        die "pip download failed"
    fi
    # Releases without a wheel: build one on the host. Only pure-Python ones can be used.
    for sd in "$WHEELS"/*.tar.gz "$WHEELS"/*.zip; do
        [ -f "$sd" ] || continue
        base="$(basename "$sd")"
        base="${base%.tar.gz}"
        base="${base%.zip}"
        norm="$(printf '%s' "${base%-*}" | tr 'A-Z.-' 'a-z__')-${base##*-}"
        if compgen -G "$WHEELS/$norm-*.whl" >/dev/null; then continue; fi
        say "building a wheel of sdist-only $base"
        if ! "$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$tmp/built" "$sd" \
            >"$tmp/pip-wheel.log" 2>&1; then
            tail -n 30 "$tmp/pip-wheel.log" >&2
            die "could not build a wheel of $base"
        fi
        for w in "$tmp"/built/*.whl; do
            case "$w" in
                *-none-any.whl) mv "$w" "$WHEELS/" ;;
                *) die "$base builds a platform wheel ($(basename "$w")); it would need CPython $PY_VERSION on manylinux to build" ;;
            esac
        done
    done
    say "wheel cache filled in $(since "$t0")s ($(du -sh "$WHEELS" | cut -f1))"
}

# Removes what is left of the first (venv) build stage: its images, and build containers an
# interrupted build left behind (they carry the stage's label; running ones are left alone,
# they may belong to a concurrent build).
drop_build_containers() {
    local c
    for c in $(dk ps -aq --filter label=dockpool.agent-server.stage=venv \
        --filter status=exited --filter status=created --filter status=dead 2>/dev/null); do
        docker rm -f "$c" >/dev/null 2>&1 || true
    done
}
drop_venv_stage() {
    drop_build_containers
    dk image prune -f --filter "label=dockpool.agent-server.stage=venv" >/dev/null 2>&1 || true
}

# --- input hashes -------------------------------------------------------------------------------
script_sum="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
# The base depends on the suite, mirrors, package list and the functions that make it.
base_hash="$(
    {
        printf 'suite %s\nmirror %s\nsecurity %s\npackages %s\n' \
            "$SUITE" "$MIRROR" "$SECURITY" "${PACKAGES[*]}"
        declare -f finish_rootfs build_base
    } | sha256sum | cut -c1-32
)"
# The image depends on the base's inputs, this script, its lock and every other file under
# images/agent-server (not the other versions' locks, nor requirements.in: the lock holds
# what it says).
image_hash="$(
    {
        printf 'base %s\nscript %s\nlock %s\n' "$base_hash" "$script_sum" \
            "$(sha256sum <"$LOCK" | cut -d' ' -f1)"
        (cd "$SRC" && find . -type f ! -path './locks/*' ! -name 'requirements.*' -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-32
)"

label_of() { # image label
    dk image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}
image_id() { dk image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
size_of() {
    dk image inspect --format '{{.Size}}' "$1" |
        awk '{ printf "%d bytes = %.0f MB", $1, $1 / 1000000 }'
}

if [ "$REBUILD" != 1 ] && [ "$(label_of "$IMAGE" dockpool.agent-server.inputs)" = "$image_hash" ]; then
    if [ "${#TAGS[@]}" -gt 1 ] && [ "$(image_id "$LATEST")" != "$(image_id "$IMAGE")" ]; then
        dk tag "$IMAGE" "$LATEST"
        say "tagged $IMAGE as $LATEST"
    fi
    say "$IMAGE is up to date (inputs $image_hash); nothing to do"
    say "done in $(since "$t_start")s; image $IMAGE: $(size_of "$IMAGE")"
    if [ "$SMOKE" = 1 ]; then SMOKE_ONLY=1; else exit 0; fi
fi

if [ "${SMOKE_ONLY:-0}" != 1 ]; then
    PY="$(host_python)" || die "need a Python with pip on the host (set DOCKPOOL_AGENT_PYTHON)"

    # 1. base
    if [ "$REBUILD" != 1 ] && [ "$(label_of "$BASE_IMAGE" dockpool.trixie.inputs)" = "$base_hash" ]; then
        say "$BASE_IMAGE is up to date (inputs $base_hash)"
    else
        build_base "$base_hash"
        say "imported $BASE_IMAGE ($(size_of "$BASE_IMAGE"))"
    fi

    # 2. wheels, into the build context
    ctx="$tmp/context"
    mkdir -p "$ctx/wheels"
    cp "$SRC/Dockerfile" "$SRC/agent-server-ready" "$ctx/"
    cp "$LOCK" "$ctx/requirements.lock"
    chmod 755 "$ctx/agent-server-ready"
    if ! wheels_from_cache "$ctx/wheels"; then
        fill_wheel_cache
        rm -rf "$ctx/wheels" && mkdir -p "$ctx/wheels"
        if ! wheels_from_cache "$ctx/wheels"; then
            cat "$tmp/pip-offline.log" >&2
            die "the wheel cache $WHEELS still lacks wheels the lock pins"
        fi
    fi
    say "build context: $(find "$ctx/wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$ctx" | cut -f1)"

    # 3. the image. The classic builder works with this engine (20.10) and a CLI without buildx.
    t_build=$(date +%s.%N)
    attempt=1
    while :; do
        say "building $IMAGE (docker build, pip install --no-index)"
        if DOCKER_BUILDKIT=0 docker build --rm --force-rm \
            --build-arg "BASE_IMAGE=$BASE_IMAGE" \
            --label "dockpool.agent-server.inputs=$image_hash" \
            --label "dockpool.agent-server.version=$VERSION" \
            "${TAGS[@]/#/--tag=}" "$ctx" >"$tmp/build.log" 2>&1; then
            break
        fi
        # An engine restarted under the build (it happens on a shared engine) is worth
        # another try, which starts from the steps the builder has cached so far; anything
        # else is a real failure.
        if [ "$attempt" -ge 5 ] || { engine_up && ! grep -q -E \
            'unexpected EOF|Cannot connect to the Docker daemon|connection reset by peer' \
            "$tmp/build.log"; }; then
            tail -n 40 "$tmp/build.log" >&2
            drop_venv_stage
            die "docker build of $IMAGE failed"
        fi
        say "the Docker engine went away during the build; waiting for it, then retrying"
        wait_engine 180 || die "the Docker engine did not come back"
        drop_build_containers
        attempt=$((attempt + 1))
    done
    # Drop the venv stage (it holds the wheels) and older builds left untagged (only those no
    # container uses).
    drop_venv_stage
    dk image prune -f --filter "label=dockpool.agent-server.inputs" >/dev/null 2>&1 || true
    dk image prune -f --filter "label=dockpool.trixie.inputs" >/dev/null 2>&1 || true
    say "built ${TAGS[*]} (inputs $image_hash); docker build took $(since "$t_build")s"
    say "done in $(since "$t_start")s; image $IMAGE: $(size_of "$IMAGE")"
fi

[ "$SMOKE" = 1 ] || exit 0

# --- --smoke: run it once ------------------------------------------------------------------------
probe() { # url [header] -> HTTP status
    local -a h=()
    [ -n "${2:-}" ] && h=(-H "$2")
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${h[@]}" "$1" || true
}

key="smoke-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
name="dockpool-agent-smoke-$$"
say "smoke test: docker run $IMAGE (session API key set)"
wait_engine 180 || die "no Docker engine"
t0=$(date +%s.%N)
cid="$(docker run -d --name "$name" --label dockpool.imagebuild=1 \
    -e "OH_SESSION_API_KEYS_0=$key" -p 127.0.0.1::8000 "$IMAGE")" ||
    { dk rm -f "$name" >/dev/null 2>&1; die "smoke test: docker run failed"; }
remove_smoke() {
    docker rm -f "$cid" >/dev/null 2>&1 && return 0
    # The engine may be restarting; wait for it rather than leave the container behind.
    if ! { wait_engine 60 && docker rm -f "$cid" >/dev/null 2>&1; }; then
        say "could not remove smoke-test container $cid (label dockpool.imagebuild=1)" >&2
    fi
}
trap 'remove_smoke; cleanup' EXIT
t_run=$(since "$t0")
port="$(dk port "$cid" 8000/tcp | head -n1 | sed 's/.*://')"
url="http://127.0.0.1:$port"
t_ready=""
t_healthy=""
for _ in $(seq 1 1800); do
    if [ -z "$t_ready" ] && [ "$(probe "$url/ready")" = 200 ]; then t_ready=$(since "$t0"); fi
    if [ -z "$t_healthy" ] &&
        [ "$(docker inspect --format '{{.State.Health.Status}}' "$cid" 2>/dev/null)" = healthy ]; then
        t_healthy=$(since "$t0")
    fi
    [ -n "$t_ready" ] && [ -n "$t_healthy" ] && break
    [ "$(dk inspect --format '{{.State.Running}}' "$cid")" = true ] || break
    sleep 0.1
done
if [ -z "$t_ready" ] || [ -z "$t_healthy" ]; then
    docker logs --tail 40 "$cid" >&2 || true
    die "smoke test: the container did not get ready/healthy (ready=${t_ready:-never}, healthy=${t_healthy:-never})"
fi
say "smoke test: docker run returned after ${t_run}s; /ready 200 after ${t_ready}s; healthy after ${t_healthy}s"
fail=0
check() { # what expected got
    if [ "$2" = "$3" ]; then say "  ok   $1 -> $3"; else say "  FAIL $1 -> $3 (expected $2)"; fail=1; fi
}
api="$url/api/conversations/search"
check "GET /alive" 200 "$(probe "$url/alive")"
check "GET /health" 200 "$(probe "$url/health")"
check "GET /ready" 200 "$(probe "$url/ready")"
check "GET /api/conversations/search without X-Session-API-Key" 401 "$(probe "$api")"
check "GET /api/conversations/search with a wrong key" 401 "$(probe "$api" "X-Session-API-Key: wrong")"
check "GET /api/conversations/search with the key" 200 "$(probe "$api" "X-Session-API-Key: $key")"
sleep 2
say "smoke test: idle memory $(dk stats --no-stream --format '{{.MemUsage}}' "$cid")"
remove_smoke
trap cleanup EXIT
say "smoke test: removed the container"
[ "$fail" = 0 ] || die "smoke test failed"
