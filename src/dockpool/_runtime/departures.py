"""Which other processes of a pool are gone for sure enough that their locks can be freed.

A presence that ended says "maybe gone" (peers.py): its process may be alive and rejoining, in
the middle of a claim. So a process that has left hands or presences behind without a running
presence counts as gone only once this process has seen it so for `grace` seconds, and its
hands are freed then, by the leader's housekeeping or the last process's final sweep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from dockpool._adapters.api import ContainerView
from dockpool._core.spec import OWNER_LABEL, role_of


class Departures:
    """The other processes of a pool that this process saw without a running presence."""

    def __init__(self, token: str, clock: Callable[[], float], grace: float) -> None:
        self._token = token
        self._clock = clock
        self.grace = grace
        self._mutex = threading.Lock()
        self._since: dict[str, float] = {}  # owner token -> when first seen gone

    def gone(self, views: list[ContainerView]) -> set[str]:
        """Tokens of other processes that left hands or presences behind and have had no
        running presence for `grace` seconds (as this process saw it, in `views` and before)."""
        now = self._clock()
        pending = self._pending(views, now)
        return {o for o, since in pending.items() if now - since >= self.grace}

    def grace_left(self, views: list[ContainerView]) -> float:
        """Seconds until every process `views` show gone counts as gone (0: none pending)."""
        now = self._clock()
        pending = self._pending(views, now)
        return max((since + self.grace - now for since in pending.values()), default=0.0)

    def _pending(self, views: list[ContainerView], now: float) -> dict[str, float]:
        alive = {
            v.labels.get(OWNER_LABEL)
            for v in views
            if role_of(v.labels) == "presence" and v.running
        }
        owners = {
            v.labels.get(OWNER_LABEL, "")
            for v in views
            if role_of(v.labels) in ("hand", "presence")
        }
        gone = {o for o in owners if o and o not in alive and o != self._token}
        with self._mutex:
            for owner in list(self._since):
                if owner not in gone:
                    del self._since[owner]  # it rejoined, or nothing of it is left
            for owner in gone:
                self._since.setdefault(owner, now)
            return dict(self._since)
