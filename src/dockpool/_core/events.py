"""Docker's container events as dockpool sees them: parsed once, then mapped onto the machine.

`ContainerEvent.from_docker` is the filter between the engine's loosely shaped JSON and the
rest of dockpool; `machine_event` says which state-machine event (if any) a Docker event is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from dockpool._core import machine as m

#: The container actions the listener subscribes to.
WATCHED_ACTIONS = (
    "create", "start", "die", "oom", "kill", "stop", "destroy", "rename", "pause", "unpause",
    "health_status",
)  # fmt: skip


@attrs.frozen
class ContainerEvent:
    """One container event from the Docker events API."""

    container_id: m.ContainerId
    action: str  # "die", "health_status: healthy", ...
    name: str  # the container's name when the event happened (no leading slash)
    labels: Mapping[str, str]
    time_nano: int
    exit_code: int | None = None
    old_name: str | None = None

    @classmethod
    def from_docker(cls, raw: Mapping[str, Any]) -> ContainerEvent | None:
        """Parse one decoded event; None for anything that is not a container event."""
        if raw.get("Type", "container") != "container":
            return None
        actor = raw.get("Actor") or {}
        cid = actor.get("ID") or raw.get("id")
        action = raw.get("Action") or raw.get("status")
        if not cid or not action:
            return None
        attrs_ = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
        code = attrs_.get("exitCode")
        time_nano = raw.get("timeNano") or int(raw.get("time", 0)) * 1_000_000_000
        old = attrs_.get("oldName")
        return cls(
            container_id=m.ContainerId(str(cid)),
            action=str(action),
            name=attrs_.pop("name", "").lstrip("/"),
            labels=attrs_,
            time_nano=int(time_nano),
            exit_code=int(code) if code is not None and code.lstrip("-").isdigit() else None,
            old_name=old.lstrip("/") if old else None,
        )

    @property
    def dedup_key(self) -> tuple[str, str, int]:
        """Events replayed after a reconnect are dropped by this key."""
        return (self.container_id, self.action, self.time_nano)


def machine_event(event: ContainerEvent) -> m.Event | None:
    """The state-machine event a Docker event stands for; None when it changes nothing."""
    action = event.action
    if action == "start":
        return m.Started()
    if action == "die":
        return m.Died(event.exit_code)
    if action == "oom":
        return m.Oom()
    if action == "destroy":
        return m.Destroyed()
    if action == "pause":
        return m.Paused()
    if action == "rename":
        return m.Renamed(event.name)
    if action.startswith("health_status"):
        outcome = action.partition(":")[2].strip()
        if outcome == "healthy":
            return m.Healthy()
        if outcome == "unhealthy":
            return m.Unhealthy()
    return None  # create, kill, stop, unpause, exec_*: a following event carries the fact
