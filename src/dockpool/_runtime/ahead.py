"""Locks held ahead of claims, while this process is the only one on its pool.

A claim's path is then one rename (the member to the session's name) and the check, instead
of two renames: the member's lock is already this process's (see locks.py). Exactly one owner
still holds: a member is renamed only by a process holding its lock, and no other process can
take a lock this one holds. When another process of the pool appears (its presence's `start`
event, or a resync that lists it), every lock held ahead is let go at once, and claims take
locks one by one again; when this process is alone again (a resync shows no other presence),
it holds its ready members' locks ahead again.
"""

from __future__ import annotations

import functools

from loguru import logger

from dockpool._core import machine as m
from dockpool._core.errors import DockerError
from dockpool._runtime.locks import Locks
from dockpool._runtime.state import PoolState
from dockpool._runtime.workers import Workers


class Ahead:
    """Holds ready members' locks ahead while `alone`; lets them go when not."""

    def __init__(self, state: PoolState, locks: Locks, workers: Workers) -> None:
        self.state = state
        self.locks = locks
        self.workers = workers
        self.alone = False
        self.enabled = True  # (tests of the per-claim lock path turn it off)

    def set_alone(self, alone: bool) -> None:
        """What this process now knows: is it the only process of the pool?"""
        was, self.alone = self.alone, alone and self.enabled
        if was and not self.alone:
            logger.debug("pool {}: another process appeared; letting go of locks held ahead",
                         self.state.name)  # fmt: skip
            self.workers.submit(self.locks.let_go)
        elif alone:
            with self.state.lock:
                ready = [mem.key for mem in self.state.table if self._wanted(mem)]
            held = self.locks.held()
            for key in ready:
                member = self.state.table.get(key)
                if member is not None and member.name not in held:
                    self.workers.submit(functools.partial(self._hold, key))

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

    def _wanted(self, member: m.Member) -> bool:
        return (
            self.alone
            and not self.state.closing
            and member.state is m.State.READY
            and member.reserved_for is None
            and member.fingerprint == self.state.fingerprint
        )

    def _hold(self, key: m.MemberKey) -> None:
        member = self.state.table.get(key)
        if member is None or not self._wanted(member):
            return
        try:
            self.locks.hold(member.name)
        except DockerError as exc:
            logger.debug("holding {}'s lock ahead: {}", member.name, exc)
            return
        now = self.state.table.get(key)
        if now is None or now.state is m.State.GONE or not self.alone:
            hand = self.locks.take(member.name)  # left meanwhile, or we are not alone now
            if hand is not None:
                self.locks.release(hand)
