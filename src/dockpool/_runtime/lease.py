"""What a claim hands back (`Lease`) and what the pool reports about itself (`PoolStats`)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dockpool._core.machine import ContainerId


@attrs.frozen
class Lease:
    """A container handed to a session. It belongs to the session: the pool never touches it again.

    `ports` maps each container port of the spec to its published host port. `from_pool` is
    False when the claim was served by a cold start. `seconds` is how long the claim took.
    """

    container_id: ContainerId
    name: str
    ports: Mapping[int, int]
    from_pool: bool
    seconds: float
    spec_fingerprint: str


@attrs.frozen
class PoolStats:
    """A snapshot of the pool's counters."""

    size: int  # target number of ready members
    ready: int
    warming: int  # creating, starting or waiting for health
    claiming: int
    retiring: int
    hits: int  # claims served from the pool
    misses: int  # claims served by a cold start
    replaced: int  # members lost (died, unhealthy, removed ...) and replaced
    failed_starts: int  # creates or starts that failed, or members that died before ready
    consecutive_failures: int
    degraded: bool
    stream_reconnects: int
    resyncs: int

    @property
    def claimed(self) -> int:
        """Claims served, from the pool or cold."""
        return self.hits + self.misses
