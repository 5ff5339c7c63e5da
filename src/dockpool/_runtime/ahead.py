"""Locks held ahead of claims, by the one process of the pool that claims.

A claim's path is then one rename (the member to the session's name) and the check, instead
of two renames: the member's lock is already this process's (see locks.py). Exactly one owner
still holds: a member is renamed only by a process holding its lock, and no other process can
take a lock this one holds. So holding ahead is only a question of who waits for whom.

A process holds its ready members' locks ahead while nobody else needs them: while it is alone
on its pool, or while it is the pool's only claimer (it claimed since the pool was last
contended, and that was `_QUIET` seconds ago or more). It lets them all go, and takes locks per
claim again for at least `_QUIET` seconds, when the pool is contended:

- another process of the pool appears while this one is alone (its presence's `start` event,
  or a resync lists it; a process that joins a pool of several says so when it wants a lock);
- another process claims a member (its rename event) or cold-starts one (its member appears);
- another process *wants* a lock this one may hold: a claim or a removal that found a member
  locked says so through the engine, by renaming one of its hands to `<home>-want` and back
  (`want`): every process sees the rename's event, and a holder lets go at once. The claim
  meanwhile retries the locked members for a moment (claims.py), and gets one when it is let go.

A pool with one busy claimer among idle processes (a host serving sessions, others on standby)
gets one-rename claims; a pool whose processes all claim gets per-claim locks, as before.
"""

from __future__ import annotations

import functools
import threading
import time

from loguru import logger

from dockpool._core import machine as m
from dockpool._core.errors import DockerError
from dockpool._runtime.locks import Locks
from dockpool._runtime.state import PoolState
from dockpool._runtime.workers import Workers

#: Seconds after contention during which this process holds nothing ahead.
_QUIET = 5.0
#: A process sends at most one want signal per this many seconds.
_WANT_EVERY = 0.2


class Ahead:
    """Holds ready members' locks ahead while nobody else needs them; lets them go when so."""

    def __init__(self, state: PoolState, locks: Locks, workers: Workers) -> None:
        self.state = state
        self.locks = locks
        self.workers = workers
        self.alone = False
        self.enabled = True  # (tests of the per-claim lock path turn it off)
        self._mutex = threading.Lock()
        self._claimed = float("-inf")  # this process's latest claim
        self._contended = float("-inf")  # the latest sign that another process needs locks
        self._wanted_at = float("-inf")  # this process's latest want signal
        self._holding = False
        self._switch = threading.Lock()  # (one change of `_holding` at a time)

    def holding(self) -> bool:
        """Should this process hold its ready members' locks now?"""
        if not self.enabled or self.state.closing:
            return False
        now = time.monotonic()
        with self._mutex:
            if now - self._contended < _QUIET:
                return False
            return self.alone or self._claimed > self._contended

    def set_alone(self, alone: bool) -> None:
        """What this process now knows: is it the only process of the pool?"""
        was, self.alone = self.alone, alone and self.enabled
        if was and not self.alone:
            self.contended("another process appeared")
        else:
            self._update(rescan=True)  # (at every resync: a hold that failed is tried again)

    def claimed(self) -> None:
        """This process served a claim from the pool."""
        with self._mutex:
            self._claimed = time.monotonic()
        self._update()

    def contended(self, why: str) -> None:
        """Another process needs (or may need) the pool's locks: let go of every one held."""
        with self._mutex:
            self._contended = time.monotonic()
        if self._holding:
            logger.debug("pool {}: {}; letting go of locks held ahead", self.state.name, why)
        self._update()

    def want(self) -> None:
        """A claim or removal of this process found a member locked by another process: tell
        every process (a holder lets go), at most once per `_WANT_EVERY` s."""
        now = time.monotonic()
        with self._mutex:
            if now - self._wanted_at < _WANT_EVERY:
                return
            self._wanted_at = self._contended = now
        self._update()
        self.workers.submit(self.locks.signal_want)

    def presence_event(self, own: m.ContainerId | None, container_id: m.ContainerId,
                       action: str) -> None:  # fmt: skip
        """A presence container's event: another process starting means we are not alone."""
        if action == "start" and container_id != own:
            self.set_alone(False)

    def moved(self, old: m.Member, new: m.Member) -> None:
        """A member's record changed (Executor.apply): hold a new ready one's lock; let go of
        one that left the pool without a claim (a claim took its hand with it)."""
        if new.state is m.State.GONE and old.state is not m.State.GONE:
            hand = self.locks.take(new.name)
            if hand is not None:
                self.workers.submit(functools.partial(self.locks.release, hand))
        elif new.state is m.State.READY and old.state is not m.State.READY and self._wanted(new):
            self.workers.submit(functools.partial(self._hold, new.key))

    def _update(self, rescan: bool = False) -> None:
        """Act on a change of `holding`: hold every ready member's lock, or let them all go.
        (A claim's call costs no look at the whole table unless `holding` changed.)"""
        with self._switch:
            now = self.holding()
            was, self._holding = self._holding, now
        if was and not now:
            self.workers.submit(self.locks.let_go)
        elif now and (rescan or not was):
            with self.state.lock:
                ready = [mem.key for mem in self.state.table if self._wanted(mem)]
            held = self.locks.held()
            for key in ready:
                member = self.state.table.get(key)
                if member is not None and member.name not in held:
                    self.workers.submit(functools.partial(self._hold, key))

    def _wanted(self, member: m.Member) -> bool:
        return (
            self._holding
            and member.state is m.State.READY
            and member.reserved_for is None
            and member.fingerprint == self.state.fingerprint
        )

    def _hold(self, key: m.MemberKey) -> None:
        member = self.state.table.get(key)
        if member is None or not self._wanted(member) or not self.holding():
            return
        try:
            self.locks.hold(member.name)
        except DockerError as exc:
            logger.debug("holding {}'s lock ahead: {}", member.name, exc)
            return
        now = self.state.table.get(key)
        if now is None or now.state is m.State.GONE or not self.holding():
            hand = self.locks.take(member.name)  # left meanwhile, or contended now
            if hand is not None:
                self.locks.release(hand)
