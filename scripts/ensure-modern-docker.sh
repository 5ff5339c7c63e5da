#!/usr/bin/env bash
# Make a modern Docker engine (Debian unstable's docker.io, Engine 28.5, API 1.51) answer on
# unix:///var/run/dockpool-docker28.sock, beside the default engine. Idempotent; root on Debian.
#
# Debian 12 has no newer docker.io, but unstable's binaries run on it with their own loader and
# libraries: the suite is debootstrapped once into $CACHE/root (cached under /var/cache), the
# engine's binaries are copied to $CACHE/bin and patched (patchelf) to load from that root, and
# dockerd runs from that folder with everything of its own: socket, data root, exec root, pid
# file, log and bridge (`dockpool28`, 10.228.0.1/24; --iptables=false so it leaves the default
# engine's rules alone; published ports go through docker-proxy). Never under chroot (a
# `docker exec`, and so every health check, would then run in the host's root filesystem), and
# never with --bridge=none (that deletes the default engine's docker0).
#
# Usage: ensure-modern-docker.sh [start|stop|status]   (default: start; stop uses the pid file)
# Environment: DOCKPOOL_MODERN_CACHE (default /var/cache/dockpool/engine-28),
#              DOCKPOOL_DOCKERD_TIMEOUT (seconds to wait for the engine, default 60),
#              DOCKPOOL_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/engines.sh
. "$HERE/engines.sh"
export DOCKER_HOST="$MODERN_HOST"
engine_select

CACHE="${DOCKPOOL_MODERN_CACHE:-/var/cache/dockpool/engine-28}"
ROOT="$CACHE/root"
BIN="$CACHE/bin"
DATA=/var/lib/dockpool-docker28
EXEC_ROOT=/var/run/dockpool-docker28
BRIDGE=dockpool28
BRIDGE_CIDR=10.228.0.1/24
TIMEOUT="${DOCKPOOL_DOCKERD_TIMEOUT:-60}"
MIRROR="${DOCKPOOL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BINARIES=(dockerd containerd containerd-shim-runc-v2 runc docker-proxy)

say() { printf 'ensure-modern-docker: %s\n' "$*"; }
err() { printf 'ensure-modern-docker: %s\n' "$*" >&2; }

report_ok() {
    local api
    api="$(timeout 10 docker version --format '{{.Server.APIVersion}}' 2>/dev/null || echo '?')"
    say "$1 engine $2 (API $api) answers on $DOCKER_HOST"
}

need_root_debian() {
    if [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ]; then
        err "the modern engine does not answer on $DOCKER_HOST, and only root on Debian can start it"
        exit 1
    fi
}

install_tools() {
    local missing=()
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v patchelf >/dev/null 2>&1 || missing+=(patchelf)
    [ -x /usr/bin/tini-static ] || missing+=(tini)
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The unstable root with docker.io in it, made once (into a temporary folder, then moved).
ensure_root() {
    [ -x "$ROOT/usr/sbin/dockerd" ] && return 0
    local tmp="$ROOT.tmp" t0=$SECONDS
    rm -rf "$tmp"
    mkdir -p "$CACHE"
    say "debootstrapping Debian unstable with docker.io into $ROOT (about a minute, once)"
    if ! debootstrap --variant=minbase --include=docker.io,iptables sid "$tmp" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1; then
        err "debootstrap failed; the end of $CACHE/debootstrap.log:"
        tail -n 20 "$CACHE/debootstrap.log" >&2
        exit 1
    fi
    mv "$tmp" "$ROOT"
    say "root ready in $(( SECONDS - t0 )) s"
}

root_version() {
    awk '/^Package: docker.io$/{p=1} p&&/^Version:/{print $2; exit}' "$ROOT/var/lib/dpkg/status"
}

# Copies of the engine's binaries that load the unstable root's libraries.
ensure_bin() {
    local stamp="$BIN/.from" want
    want="docker.io $(root_version)"
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
    rm -rf "$BIN.tmp"
    mkdir -p "$BIN.tmp"
    local lib="$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu" b src
    for b in "${BINARIES[@]}"; do
        src=""
        for dir in usr/sbin usr/bin usr/libexec/docker sbin; do
            [ -x "$ROOT/$dir/$b" ] && { src="$ROOT/$dir/$b"; break; }
        done
        [ -n "$src" ] || { err "$b not found in $ROOT"; exit 1; }
        cp "$src" "$BIN.tmp/$b"
        if patchelf --print-interpreter "$BIN.tmp/$b" >/dev/null 2>&1; then
            patchelf --set-interpreter "$ROOT/lib64/ld-linux-x86-64.so.2" --set-rpath "$lib" "$BIN.tmp/$b"
        fi
    done
    cp /usr/bin/tini-static "$BIN.tmp/docker-init"
    echo "$want" >"$BIN.tmp/.from"
    rm -rf "$BIN"
    mv "$BIN.tmp" "$BIN"
    say "binaries of $want ready in $BIN"
}

ensure_bridge() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    ip addr show dev "$BRIDGE" | grep -q "inet ${BRIDGE_CIDR%/*}/" || ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    ip link set "$BRIDGE" up
}

wait_for_engine() {
    local pid="$1" deadline v
    deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
        if v="$(engine_version)"; then
            report_ok "started:" "$v"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null && [ -z "$(engine_pid)" ]; then
            err "dockerd exited before the engine answered; the end of $ENGINE_LOG:"
            tail -n 30 "$ENGINE_LOG" >&2 || true
            return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            err "timed out after ${TIMEOUT}s waiting for $DOCKER_HOST; the end of $ENGINE_LOG:"
            tail -n 30 "$ENGINE_LOG" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

cmd_start() {
    local v pid
    if v="$(engine_version)"; then
        report_ok "ok:" "$v"
        return 0
    fi
    need_root_debian
    pid="$(engine_pid)"
    if [ -n "$pid" ]; then
        say "dockerd (pid $pid, from $ENGINE_PIDFILE) runs but does not answer yet; waiting"
        wait_for_engine "$pid"
        return $?
    fi
    install_tools
    ensure_root
    ensure_bin
    ensure_bridge
    rm -f "$ENGINE_PIDFILE" "$ENGINE_SOCK"  # leftovers of a dead one (its pid is not a dockerd)
    clear_stale_containerd_pid "$EXEC_ROOT"
    mkdir -p "$DATA" "$EXEC_ROOT" "$(dirname "$ENGINE_LOG")"
    printf '\n==== %s ensure-modern-docker: starting dockerd ====\n' "$(date -Is)" >>"$ENGINE_LOG"
    ulimit -n 1048576 2>/dev/null || true
    PATH="$BIN:$PATH" setsid nohup "$BIN/dockerd" \
        --host "$DOCKER_HOST" --pidfile "$ENGINE_PIDFILE" \
        --data-root "$DATA" --exec-root "$EXEC_ROOT" \
        --bridge "$BRIDGE" --iptables=false --ip6tables=false --ip-forward=false \
        </dev/null >>"$ENGINE_LOG" 2>&1 &
    pid=$!
    say "started dockerd $(root_version) (pid $pid, log $ENGINE_LOG); waiting up to ${TIMEOUT}s"
    wait_for_engine "$pid"
}

cmd_stop() {
    local pid
    pid="$(engine_pid)"
    if [ -z "$pid" ]; then
        say "the modern dockerd is not running"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$(( $(date +%s) + 60 ))
    while engine_is_dockerd "$pid"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
    say "stopped dockerd (pid $pid)"
}

case "${1:-start}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) if v="$(engine_version)"; then report_ok "ok:" "$v"; else say "not answering"; exit 1; fi ;;
    *) err "usage: $0 [start|stop|status]"; exit 2 ;;
esac
