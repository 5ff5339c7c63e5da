"""What can happen to a pool member: the events the state machine consumes, as frozen data.

They come from Docker (through `dockpool._core.events.machine_event`), from the pool's own
calls (create, start, rename and remove results), from claims, and from resyncs.
"""

from __future__ import annotations

from typing import NewType, TypeAlias

import attrs

ContainerId = NewType("ContainerId", str)


@attrs.frozen
class Created:
    """The create call returned the container's id."""

    container_id: ContainerId


@attrs.frozen
class CreateFailed:
    """The create call failed (e.g. missing image); `capped`: not attempted, because the pool
    has `max_containers` containers on the engine (not the member's fault: no back-off)."""

    reason: str
    capped: bool = False


@attrs.frozen
class Started:
    """The start call returned, or Docker reported `start`."""


@attrs.frozen
class StartFailed:
    """The start call failed; Docker emits no event for this."""

    reason: str


@attrs.frozen
class Healthy:
    """Docker reported `health_status: healthy`."""


@attrs.frozen
class Answered:
    """dockpool's readiness probe got a 2xx answer from the member's server."""


@attrs.frozen
class WarmUpFailed:
    """A request of the member's warm-up (spec.Readiness.warmup) failed or took too long."""

    reason: str


@attrs.frozen
class Unhealthy:
    """Docker reported `health_status: unhealthy`."""


@attrs.frozen
class Died:
    """Docker reported `die` (exit code when known)."""

    exit_code: int | None = None


@attrs.frozen
class Oom:
    """Docker reported `oom`: the kernel killed a process of the container."""


@attrs.frozen
class Destroyed:
    """The container no longer exists (`destroy` event, a completed remove, or absent at resync)."""


@attrs.frozen
class Renamed:
    """Someone else renamed the container: it now belongs to them."""

    new_name: str


@attrs.frozen
class Paused:
    """Someone paused the container: it cannot serve a claim."""


@attrs.frozen
class ClaimRequested:
    """A claimer picked this member and asks to rename it to `session_name`."""

    session_name: str


@attrs.frozen
class ClaimSucceeded:
    """The claim's rename went through; `alive` is what reading the container back showed."""

    alive: bool = True


@attrs.frozen
class ClaimFailed:
    """The claim did not rename the member.

    `alive`: the member can go back to the pool (e.g. another process holds its lock, or the
    claim was cancelled before its rename). `gone`: no container answers to the member's name
    any more (claimed by another process, or removed): forget it, remove nothing.
    """

    reason: str
    alive: bool = True
    gone: bool = False


@attrs.frozen
class RetireRequested:
    """The pool wants this member gone (shrink, max age, spec change, shutdown)."""

    reason: str
    replace: bool = False


@attrs.frozen
class Observed:
    """A resync's view of the container: the truth that events only hint at."""

    status: str  # Docker's State.Status: created, running, paused, restarting, exited, dead
    health: str | None  # None (no health check), "starting", "healthy" or "unhealthy"
    name: str


Event: TypeAlias = (
    Created | CreateFailed | Started | StartFailed | Healthy | Answered | WarmUpFailed
    | Unhealthy | Died | Oom | Destroyed
    | Renamed | Paused | ClaimRequested | ClaimSucceeded | ClaimFailed | RetireRequested | Observed
)  # fmt: skip
EVENT_TYPES: tuple[type, ...] = Event.__args__
