"""Upkeep: keeping the pool at its size, done by one process of the pool (the leader).

Top-up creates what the pool lacks, counting creates in flight so it never overshoots, within
`max_containers` (everything that holds a container: warm, warming, retiring members and cold
starts of every process, all of which every process sees) and the back-off that repeated
failures impose. Retiring (shrink, max age, spec change, members not ready in time) asks the
machine, which decides. Housekeeping removes what dead processes left: their presence and
their hands (which frees the locks those hands held).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from loguru import logger

from dockpool._adapters.api import ContainerView, EngineApi
from dockpool._core import machine as m
from dockpool._core.errors import DockerError
from dockpool._core.spec import OWNER_LABEL, member_name, role_of
from dockpool._runtime.autosize import AutoSize
from dockpool._runtime.executor import Executor
from dockpool._runtime.state import PoolState

#: Seconds after which a presence that never ran counts as a gone process's (see housekeep).
STALE_PRESENCE = 30.0


class Upkeep:
    """Top-up, retirement and housekeeping; every method is a no-op unless `active()`."""

    def __init__(self, state: PoolState, executor: Executor, active: Callable[[], bool]) -> None:
        self.state = state
        self.executor = executor
        self.active = active
        self.autosize: AutoSize | None = None  # set by the runtime (it needs this object)

    def top_up(self) -> None:
        """Create the members the pool lacks (within the cap and the back-off)."""
        state = self.state
        if not self.active():
            return
        created = []
        with state.lock:
            if state.closing or not state.fingerprint:
                return
            n = state.table.to_create(state.target, state.config.max_containers)
            if n <= 0 or self.executor.backoff.remaining() > 0:
                return  # after a back-off the reconciler wakes up and calls top_up again
            now = state.clock()
            for _ in range(n):
                key = m.MemberKey(secrets.token_hex(6))
                member, effects = m.provision(
                    key,
                    member_name(state.name, key),
                    needs_health=state.needs_health,
                    probed=state.probed,
                    warms=state.warms,
                    now=now,
                    fingerprint=state.fingerprint,
                )
                self.executor.record(member)  # in the same critical section as the count
                created.append((member, effects))
        for member, effects in created:
            self.executor.run(member, effects)

    def retire(self, members: list[m.Member], reason: str, replace: bool = False) -> None:
        """Ask each member to go (shrink, max age, spec change, close)."""
        for member in members:
            self.executor.apply(member.key, m.RetireRequested(reason, replace=replace))

    def shrink(self) -> None:
        """Retire the surplus over the target size."""
        if not self.active():
            return
        with self.state.lock:
            surplus = self.state.table.surplus(self.state.target)
        self.retire(surplus, "shrink")

    def timers(self) -> None:
        """Self-sizing's decay; max age, and members that were not ready in time."""
        if self.autosize is not None:
            self.autosize.tick()
        if not self.active():
            return
        state = self.state
        now = state.clock()
        with state.lock:
            expired = state.table.expired(now, state.config.max_age)
            overdue = state.table.overdue(now, state.config.ready_timeout)
        self.retire(expired, "max age", replace=True)
        self.retire(overdue, "not ready in time", replace=True)

    def next_deadline(self) -> float | None:
        state = self.state
        with state.lock:
            deadlines = [state.table.next_expiry(state.config.max_age)]
            if self.autosize is not None:
                deadlines.append(self.autosize.next_deadline())
            if self.executor.backoff.remaining() > 0:
                deadlines.append(self.executor.backoff.until)
            timeout = state.config.ready_timeout
            waiting = [
                mem.born + timeout
                for mem in state.table
                if mem.state in (m.State.CREATING, m.State.STARTING, m.State.WARMING)
            ]
        if timeout > 0 and waiting:
            deadlines.append(min(waiting))
        known = [d for d in deadlines if d is not None]
        return min(known) if known else None

    def housekeep(
        self, api: EngineApi, views: list[ContainerView], dead: set[str], final: bool = False
    ) -> None:
        """Remove the presence and hands of processes that are gone (`dead` owner tokens). A
        presence that never ran (its process died between its create and its start) counts
        once it is `STALE_PRESENCE` s old, or at the last process's `final` sweep: younger,
        it may be a process joining right now."""
        if not self.active():
            return
        now = time.time()
        for view in views:
            role = role_of(view.labels)
            never_ran = (
                view.status == "created"
                and view.labels.get(OWNER_LABEL) in dead
                and (final or now - view.created > STALE_PRESENCE)
            )
            stale_presence = role == "presence" and (view.status in ("exited", "dead") or never_ran)
            orphan_hand = role == "hand" and view.labels.get(OWNER_LABEL) in dead
            if stale_presence or orphan_hand:
                try:
                    api.remove(view.id)
                except DockerError as exc:
                    logger.warning("removing {} of a gone process failed: {}", view.name, exc)
