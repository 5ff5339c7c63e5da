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
class Rename:
    """Rename the container to the claimer's session name (the claim's atomic lock)."""

    new_name: str


@attrs.frozen
class Remove:
    """Remove the container (forcefully: it is the pool's own and unclaimed)."""


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


Effect: TypeAlias = Create | Start | Rename | Remove | Replace | Failure | Notify
Effects: TypeAlias = tuple[Effect, ...]
NOTHING: Effects = ()
