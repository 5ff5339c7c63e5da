#!/usr/bin/env bash
# Make a Docker engine answer `docker info`.
#
#   * Docker already answers            -> print one line, exit 0 (no-op on a laptop).
#   * root on Debian, engine not up      -> install docker.io + busybox-static if missing,
#                                           clear a stale pid file / socket, start dockerd
#                                           detached (log: $DOCKPOOL_DOCKERD_LOG), wait for it.
#   * anything else                      -> say what to do, exit 1.
#
# Environment:
#   DOCKPOOL_DOCKERD_TIMEOUT  seconds to wait for the engine to answer (default 60)
#   DOCKPOOL_DOCKERD_LOG      dockerd's log file (default /var/log/dockpool-dockerd.log)
#   DOCKPOOL_DOCKERD_ARGS     extra dockerd flags, split on spaces (default none)
#
# DOCKER_HOST selects the engine (scripts/engines.sh): the modern one is started by
# scripts/ensure-modern-docker.sh. scripts/dockerd-ctl.sh uses this script as its "start".
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/engines.sh
. "$HERE/engines.sh"
engine_select
if [ "$ENGINE" = modern ]; then
    exec bash "$HERE/ensure-modern-docker.sh" start
fi

TIMEOUT="${DOCKPOOL_DOCKERD_TIMEOUT:-60}"
LOG="$ENGINE_LOG"
PIDFILE="$ENGINE_PIDFILE"
SOCK="$ENGINE_SOCK"

say() { printf 'ensure-docker: %s\n' "$*"; }
err() { printf 'ensure-docker: %s\n' "$*" >&2; }

report_ok() {
    local label="$1" v="$2" api cli
    api="$(timeout 10 docker version --format '{{.Server.APIVersion}}' 2>/dev/null || echo '?')"
    cli="$(timeout 10 docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?')"
    say "$label engine $v (API $api) answers; client $cli at $(command -v docker)"
}

# The end of this start's part of the log (at most 40 lines).
log_tail() {
    [ -f "$LOG" ] || return 0
    local from
    from="$(grep -n 'ensure-docker: starting dockerd' "$LOG" 2>/dev/null | tail -n1 | cut -d: -f1 || true)"
    err "---- tail of $LOG ----"
    tail -n "+${from:-1}" "$LOG" | tail -n 40 >&2 || true
    err "---- end of $LOG ----"
}

# Wait until the engine answers; fail early if the dockerd we watch dies.
wait_for_engine() {
    local watch_pid="${1:-}" deadline v
    deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
        if v="$(engine_version)"; then
            report_ok "started:" "$v"
            return 0
        fi
        if [ -n "$watch_pid" ] && ! kill -0 "$watch_pid" 2>/dev/null; then
            # It may have been replaced (e.g. setsid forked); follow any live dockerd.
            watch_pid="$(engine_pid)"
        fi
        if [ -z "$watch_pid" ]; then
            err "dockerd exited before the engine answered; see $LOG"
            log_tail
            return 1
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            err "timed out after ${TIMEOUT}s waiting for 'docker info' to answer; dockerd log: $LOG"
            log_tail
            return 1
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------
# 1. Already up?
if v="$(engine_version)"; then
    report_ok "ok:" "$v"
    exit 0
fi

# 2. Can we do anything about it?
if [ "$(id -u)" -ne 0 ] || [ ! -f /etc/debian_version ]; then
    err "no Docker engine answers 'docker info'${DOCKER_HOST:+ (DOCKER_HOST=$DOCKER_HOST)}."
    if ! command -v docker >/dev/null 2>&1; then
        err "  - install Docker (https://docs.docker.com/engine/install/), e.g. on Debian:"
        err "      sudo apt-get install docker.io busybox-static"
    fi
    err "  - start the engine, e.g. 'sudo systemctl start docker' (or start Docker Desktop),"
    err "    or run this script as root on Debian to start dockerd in the background;"
    if [ "$(id -u)" -ne 0 ]; then
        err "  - if the engine runs but you lack permission on /var/run/docker.sock:"
        err "      sudo usermod -aG docker \"\$USER\"  (then log in again)"
    fi
    exit 1
fi

if [ "$ENGINE" = other ]; then
    err "DOCKER_HOST=$DOCKER_HOST is not an engine these scripts start, and it does not answer"
    exit 1
fi

# 3. Install what is missing.
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || { [[ " ${missing[*]-} " == *" docker.io "* ]] || missing+=(docker.io); }
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq "${missing[@]}" >/dev/null
    say "installed ${missing[*]}"
    # The package's postinst may have started the service itself.
    if v="$(engine_version)"; then
        report_ok "ok (started by the package):" "$v"
        exit 0
    fi
fi

# 4. A dockerd already running (e.g. still starting, or started by the package)? Wait for it.
pid="$(engine_pid)"
if [ -n "$pid" ]; then
    say "dockerd is already running (pid $pid) but does not answer yet; waiting up to ${TIMEOUT}s"
    wait_for_engine "$pid"
    exit $?
fi

# 5. Clear leftovers of a dead dockerd (machine restart, kill -9).
if [ -e "$PIDFILE" ]; then
    say "removing stale $PIDFILE (pid $(tr -dc '0-9' <"$PIDFILE" 2>/dev/null || true) is not a running dockerd)"
    rm -f "$PIDFILE"
fi
if [ -e "$SOCK" ] || [ -L "$SOCK" ]; then
    say "removing stale $SOCK (no dockerd running)"
    rm -f "$SOCK"
fi
# dockerd starts its own containerd (under /var/run/docker/containerd) when no system
# containerd listens on /run/containerd/containerd.sock; it replaces a leftover one recorded in
# /var/run/docker/containerd/containerd.pid by itself, but a pid file naming a reused pid makes
# it signal that process (see engines.sh). A socket file with nobody behind it would make
# dockerd try (and fail) to use it, so remove that.
clear_stale_containerd_pid /var/run/docker
if [ -S /run/containerd/containerd.sock ] && ! pgrep -x containerd >/dev/null 2>&1; then
    say "removing stale /run/containerd/containerd.sock (no containerd running)"
    rm -f /run/containerd/containerd.sock
fi

# 6. cgroups (the Debian init script does the same; normally already mounted).
if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ -z "$(ls -A /sys/fs/cgroup 2>/dev/null)" ] \
    && command -v cgroupfs-mount >/dev/null 2>&1; then
    cgroupfs-mount || true
fi

# 7. Start dockerd detached: own session, no stdin, output to the log only,
#    so a caller that captures our output does not wait on dockerd.
mkdir -p "$(dirname "$LOG")"
{ printf '\n==== %s ensure-docker: starting dockerd ====\n' "$(date -Is)"; } >>"$LOG"
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# DOCKPOOL_DOCKERD_ARGS: extra dockerd flags, split on spaces (e.g. "--debug").
# shellcheck disable=SC2086
setsid nohup dockerd ${DOCKPOOL_DOCKERD_ARGS:-} </dev/null >>"$LOG" 2>&1 &
dpid=$!
say "started dockerd (pid $dpid, log $LOG); waiting up to ${TIMEOUT}s for it to answer"
wait_for_engine "$dpid"
