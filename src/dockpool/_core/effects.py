"""What the state machine asks for: effects as frozen data, carried out by the runtime."""

from __future__ import annotations

from typing import TypeAlias

import attrs


@attrs.frozen
class Create:
    """Create the container (named `member.name`, labelled with the pool and spec)."""


@attrs.frozen
class Start:
    """Start the created container."""


@attrs.frozen
class Probe:
    """Probe the warming member's readiness endpoint until it answers (or leaves WARMING)."""


@attrs.frozen
class Rename:
    """The claim itself: holding the member's lock, rename it (by its member name, never by
    id) to the session's name, then read it back. Run in the claimer's thread."""

    new_name: str


@attrs.frozen
class Remove:
    """Upkeep: remove the unclaimed container, holding its lock (the upkeep leader only)."""


@attrs.frozen
class Discard:
    """Remove a container this process renamed for a claim but never handed out (it died)."""


@attrs.frozen
class Replace:
    """The member left the pool for `reason`; the pool should make a new one."""

    reason: str


@attrs.frozen
class Failure:
    """The member failed before becoming ready: counts toward back-off and `pool_degraded`."""

    reason: str


@attrs.frozen
class Notify:
    """Announce a fact about the member through the named signal."""

    signal: str
    reason: str = ""


Effect: TypeAlias = Create | Start | Probe | Rename | Remove | Discard | Replace | Failure | Notify
Effects: TypeAlias = tuple[Effect, ...]
NOTHING: Effects = ()
