# shellcheck shell=bash
# The Docker engines dockpool's scripts know, keyed on DOCKER_HOST. Sourced, not run.
#
#   default  DOCKER_HOST unset or unix:///var/run/docker.sock: Debian's docker.io (Engine 20.10,
#            API 1.41, the oldest API dockpool supports), pid file /var/run/docker.pid.
#   modern   DOCKER_HOST=unix:///var/run/dockpool-docker28.sock: Engine 28.5 (API 1.51) from
#            Debian's unstable suite, run beside the default one by scripts/ensure-modern-docker.sh
#            (own socket, data root, exec root, pid file and bridge).
#
# After `engine_select`: ENGINE (default|modern|other), ENGINE_SOCK, ENGINE_PIDFILE, ENGINE_LOG.

MODERN_SOCK=/var/run/dockpool-docker28.sock
MODERN_HOST="unix://$MODERN_SOCK"

engine_select() {
    local host="${DOCKER_HOST:-}"
    case "$host" in
        "" | unix:///var/run/docker.sock | unix:///run/docker.sock)
            ENGINE=default
            ENGINE_SOCK=/var/run/docker.sock
            ENGINE_PIDFILE=/var/run/docker.pid
            ENGINE_LOG="${DOCKPOOL_DOCKERD_LOG:-/var/log/dockpool-dockerd.log}"
            ;;
        "$MODERN_HOST" | "unix://${MODERN_SOCK#/var}")
            ENGINE=modern
            ENGINE_SOCK="$MODERN_SOCK"
            ENGINE_PIDFILE=/var/run/dockpool-docker28.pid
            ENGINE_LOG=/var/log/dockpool-docker28.log
            ;;
        *)
            ENGINE=other
            ENGINE_SOCK=""
            ENGINE_PIDFILE=""
            ENGINE_LOG=""
            ;;
    esac
}

# Is $1 the pid of a live dockerd?
engine_is_dockerd() {
    [[ "$1" =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "dockerd" ]
}

# The pid of the selected engine's dockerd, from its pid file only (never by process name: with
# two engines on the machine a name finds the wrong one), or nothing.
engine_pid() {
    local pid=""
    [ -n "$ENGINE_PIDFILE" ] && [ -f "$ENGINE_PIDFILE" ] || return 0
    pid="$(tr -dc '0-9' <"$ENGINE_PIDFILE" 2>/dev/null || true)"
    if [ -n "$pid" ] && engine_is_dockerd "$pid"; then
        printf '%s' "$pid"
    fi
    return 0
}

# The selected engine's server version, if it answers within 10 s.
engine_version() {
    command -v docker >/dev/null 2>&1 || return 1
    local v
    v="$(timeout 10 docker info --format '{{.ServerVersion}}' 2>/dev/null)" || return 1
    [ -n "$v" ] || return 1
    printf '%s' "$v"
}

# Before a dockerd of ours starts: drop its managed containerd's pid file
# ($1/containerd/containerd.pid, $1 the exec root) unless that pid is a live containerd. dockerd
# trusts the file: it waits for "its" containerd to answer and, when it does not, sends it
# SIGTERM. After a machine restart /var/run may keep the file while the pid now belongs to
# another process (seen: the other engine's dockerd, terminated that way).
clear_stale_containerd_pid() {
    local file="$1/containerd/containerd.pid" pid
    [ -f "$file" ] || return 0
    pid="$(tr -dc '0-9' <"$file" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "containerd" ]; then
        return 0
    fi
    printf 'engines: removing stale %s (pid %s is not a containerd)\n' "$file" "${pid:-?}"
    rm -f "$file"
}
