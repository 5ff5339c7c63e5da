#!/bin/bash
# Entry point of the stand-in OpenHands app image: the contract of the real one. It must run
# as root; with SANDBOX_USER_ID=0 (the default) it runs the command as root, otherwise as a user
# of that uid that may use the mounted Docker socket.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "entrypoint.sh: must run as root" >&2
    exit 1
fi
: "${SANDBOX_USER_ID:?SANDBOX_USER_ID is not set}"
if [ "$SANDBOX_USER_ID" -eq 0 ]; then
    export RUN_AS_OPENHANDS=false
    exec "$@"
fi
if ! getent passwd "$SANDBOX_USER_ID" >/dev/null; then
    useradd -l -m -u "$SANDBOX_USER_ID" -s /bin/bash enduser
fi
user="$(getent passwd "$SANDBOX_USER_ID" | cut -d: -f1)"
usermod -aG openhands "$user"
if [ -S /var/run/docker.sock ]; then
    gid="$(stat -c %g /var/run/docker.sock)"
    getent group "$gid" >/dev/null || groupadd -g "$gid" docker-host
    usermod -aG "$gid" "$user"
fi
exec setpriv --reuid="$SANDBOX_USER_ID" --regid="$(id -g "$user")" --init-groups -- "$@"
