"""The bind mounts of a 0.62 runtime container, as a dockpool `volumes` mapping.

Read from `DockerRuntime._process_volumes` (openhands-ai 0.62): `[sandbox] volumes` is a comma
list of `host:container[:mode]`; a host part `volume:<name>` or a relative one names a Docker
volume, an absolute one is a bind mount; mode defaults to rw. Without `volumes`, the legacy
`workspace_mount_path` + `workspace_mount_path_in_sandbox` pair is mounted rw. Overlay mounts
(mode containing "overlay") get per-container directories named after the container, which a
member made before its session is known cannot have: they make the config unpoolable.
"""

from __future__ import annotations

import os

from openhands.core.config import OpenHandsConfig


def sandbox_volumes(config: OpenHandsConfig) -> dict[str, str] | None:
    """host path or volume name -> "container path:mode"; None when a mount cannot be pooled."""
    spec = config.sandbox.volumes
    if spec is not None:
        volumes: dict[str, str] = {}
        for item in spec.split(","):
            parts = item.split(":")
            if len(parts) < 2:
                continue
            source, target = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else "rw"
            if "overlay" in mode:
                if os.path.isabs(source) and os.environ.get("SANDBOX_VOLUME_OVERLAYS"):
                    return None
                continue  # the stock runtime skips it too
            if source.startswith("volume:"):
                source = source.removeprefix("volume:")
            elif os.path.isabs(source):
                source = os.path.abspath(source)
            volumes[source] = f"{target}:{mode}"
        return volumes
    if config.workspace_mount_path is not None and config.workspace_mount_path_in_sandbox:
        host = os.path.abspath(config.workspace_mount_path)
        return {host: f"{config.workspace_mount_path_in_sandbox}:rw"}
    return {}
