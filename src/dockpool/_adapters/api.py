"""The engine as the runtime sees it: `EngineApi`, a Protocol, and `ContainerView`.

`DockerAdapter` implements it against a real engine; the fakes in tests implement it in
memory, and type-check against it, so a fake cannot drift from what the runtime calls. Every
method raises only dockpool's own errors (`dockpool._core.errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs

from dockpool._core.machine import ContainerId
from dockpool._core.spec import ContainerSpec


@attrs.frozen
class ContainerView:
    """What dockpool needs to know about one container, from `list` or `inspect`."""

    id: ContainerId
    name: str  # without the leading slash
    status: str  # created, running, paused, restarting, removing, exited, dead
    health: str | None  # None (no health check), starting, healthy, unhealthy
    labels: Mapping[str, str]
    ports: Mapping[int, int] = attrs.field(factory=dict)  # container port -> host port (tcp)
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)  # from inspect only
    created: float = 0.0  # Unix time of its creation (from list only)

    @property
    def running(self) -> bool:
        return self.status == "running"


class Closeable(Protocol):
    def close(self) -> None: ...


class EngineApi(Protocol):
    """The calls the pool makes to one Docker engine."""

    @property
    def api_version(self) -> tuple[int, int]: ...

    def ping(self) -> None:
        """Raise DaemonUnavailableError unless the engine answers."""

    def resolve_image(self, ref: str) -> str:
        """The image ID `ref` names; ImageNotFoundError if there is none."""
        ...

    def create(
        self, spec: ContainerSpec, name: str, labels: Mapping[str, str], image: str | None = None
    ) -> ContainerId:
        """Create (not start) a member from `spec`; NameConflictError if `name` is taken."""
        ...

    def create_marker(
        self, name: str, labels: Mapping[str, str], image: str, *, stdin: bool
    ) -> ContainerId:
        """Create a small bookkeeping container of `image` (a presence with `stdin`, else a
        hand). A presence runs `cat` on a stdin that `attach_stdin` holds open; a hand is
        never started. NameConflictError if `name` is taken."""
        ...

    def attach_stdin(self, container_id: ContainerId) -> Closeable:
        """Attach to the container's stdin; the container sees EOF when this process ends."""
        ...

    def start(self, container_id: ContainerId) -> None: ...

    def rename(self, container: str, new_name: str) -> None:
        """Rename `container` (an id or a current name); NameConflictError if `new_name` is
        taken, ContainerNotFoundError if no container answers to `container`."""

    def remove(self, container: str) -> bool:
        """Force-remove `container` (an id or a current name); True if removed now, False if
        it was already gone."""
        ...

    def inspect(self, container: str) -> ContainerView:
        """The container's view; ContainerNotFoundError if it is gone."""
        ...

    def list(self, labels: Mapping[str, str]) -> list[ContainerView]:
        """Every container (running or not) carrying all of `labels` (a value of "": the label
        with any value), in one request."""
        ...

    def close(self) -> None: ...
