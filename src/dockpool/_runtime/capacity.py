"""`max_containers` as a property of the pool on the engine, not of each process.

Several processes create members of one pool: the upkeep leader refills, every claimer may
cold-start. Each sees the others' creates only when their events arrive, so counting from a
process's own table lets N processes overshoot the cap together. So every create of a member
happens under the pool's capacity lock (a member-style lock on the name `<pool>-cap`, see
locks.py), after counting the pool's unclaimed members on the engine itself, in one list
request. Creates in flight elsewhere are finished (and listed) by the time the lock is free.
A hand removed by someone while it holds this lock (a prune in that moment) lets one more
create through; the cap is then exceeded by one until a member leaves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from dockpool._adapters.api import EngineApi
from dockpool._core.errors import DockerError
from dockpool._core.spec import NAME_PREFIX, POOL_LABEL, ROLE_LABEL, is_member_name
from dockpool._runtime.locks import Locks

#: How long a create waits for the capacity lock before it fails (and is retried later).
LOCK_WAIT = 10.0


class Capacity:
    """Count the pool's containers on the engine, holding the pool's capacity lock."""

    def __init__(self, api: EngineApi, locks: Locks, pool: str) -> None:
        self._api = api
        self._locks = locks
        self._pool = pool
        self._lock_of = f"{NAME_PREFIX}{pool}-cap"

    @contextmanager
    def held(self) -> Iterator[int]:
        """Hold the capacity lock and yield how many unclaimed members the engine has now.

        Raises DockerError if the lock cannot be had within LOCK_WAIT or the list fails.
        """
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.002
        while True:
            hand = self._locks.acquire(self._lock_of)
            if hand is not None:
                break
            if time.monotonic() >= deadline:
                raise DockerError(f"pool {self._pool}: the capacity lock is held for too long")
            time.sleep(pause)
            pause = min(0.05, pause * 2)
        try:
            views = self._api.list({POOL_LABEL: self._pool, ROLE_LABEL: "member"})
            yield sum(1 for v in views if is_member_name(self._pool, v.name))
        finally:
            self._locks.release(hand)
