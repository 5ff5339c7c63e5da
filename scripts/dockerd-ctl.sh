#!/usr/bin/env bash
# Stop / start the engine DOCKER_HOST selects (scripts/engines.sh), for tests that restart the
# engine mid-run. The dockerd is found by that engine's pid file only, never by process name.
#
#   dockerd-ctl.sh stop     SIGTERM the engine's dockerd (its pid file), wait until it is gone
#                           (SIGKILL after $DOCKPOOL_DOCKERD_STOP_TIMEOUT s, default 60)
#   dockerd-ctl.sh kill     SIGKILL dockerd (a crash: leaves a stale pid file and socket)
#   dockerd-ctl.sh start    same as scripts/ensure-docker.sh (which starts the selected engine)
#   dockerd-ctl.sh restart  stop, then start
#   dockerd-ctl.sh status   print whether dockerd runs and answers; exit 0 iff it answers
#
# Needs root (and, for start, Debian) like ensure-docker.sh. Output never stays attached
# to the caller: dockerd logs to its engine's log file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/engines.sh
. "$HERE/engines.sh"
engine_select
if [ "$ENGINE" = other ]; then
    printf 'dockerd-ctl: DOCKER_HOST=%s is not an engine these scripts manage\n' "$DOCKER_HOST" >&2
    exit 2
fi
STOP_TIMEOUT="${DOCKPOOL_DOCKERD_STOP_TIMEOUT:-60}"

say() { printf 'dockerd-ctl: %s\n' "$*"; }
err() { printf 'dockerd-ctl: %s\n' "$*" >&2; }

# Wait until $1 is gone; return 1 after $2 seconds.
wait_gone() {
    local pid="$1" limit="$2" deadline
    deadline=$(( $(date +%s) + limit ))
    while engine_is_dockerd "$pid"; do
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.2
    done
    return 0
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        err "must run as root"
        exit 1
    fi
}

cmd_stop() {
    need_root
    local pid
    pid="$(engine_pid)"
    if [ -z "$pid" ]; then
        say "dockerd is not running"
        return 0
    fi
    local t0=$SECONDS
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
        err "dockerd (pid $pid) still running after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || { err "dockerd (pid $pid) will not die"; exit 1; }
    fi
    say "stopped dockerd (pid $pid) in $(( SECONDS - t0 ))s"
}

cmd_kill() {
    need_root
    local pid
    pid="$(engine_pid)"
    if [ -z "$pid" ]; then
        say "dockerd is not running"
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || { err "dockerd (pid $pid) will not die"; exit 1; }
    say "killed dockerd (pid $pid)"
}

cmd_status() {
    local pid v
    pid="$(engine_pid)"
    if v="$(timeout 10 docker info --format '{{.ServerVersion}}' 2>/dev/null)" && [ -n "$v" ]; then
        say "engine $v answers${pid:+ (dockerd pid $pid)}"
        return 0
    fi
    if [ -n "$pid" ]; then
        say "dockerd runs (pid $pid) but does not answer"
    else
        say "dockerd is not running"
    fi
    return 1
}

case "${1:-}" in
    stop) cmd_stop ;;
    kill) cmd_kill ;;
    start) exec bash "$HERE/ensure-docker.sh" ;;
    restart) cmd_stop; exec bash "$HERE/ensure-docker.sh" ;;
    status) cmd_status ;;
    *)
        err "usage: $0 stop|kill|start|restart|status"
        exit 2
        ;;
esac
