"""The pool's engine room: the member table under one lock, and the one place effects are executed.

Every change to a member goes through `apply(key, event)`: the pure state machine decides,
the table records, and the effects run here: Docker calls on worker threads (a create and
its start on one create worker, removals on remove workers), signals in the calling thread,
outside the lock. After any change that may leave the pool short, `top_up()` creates what
is missing, counting creates in flight so the pool never overshoots, within `max_containers`
and the back-off that repeated failures impose.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
from loguru import logger

from dockpool import signals
from dockpool._adapters.docker_api import DockerAdapter
from dockpool._core import machine as m
from dockpool._core.config import PoolConfig
from dockpool._core.errors import DockerError
from dockpool._core.spec import POOL_LABEL, SPEC_LABEL, ContainerSpec, is_member_name, member_name
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.lease import PoolStats
from dockpool._runtime.members import MemberTable
from dockpool._runtime.workers import Workers

#: Consecutive failures before the pool announces `pool_degraded`.
DEGRADED_AFTER = 2


class Counters:
    """Monotonic counters reported by `stats()`."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.replaced = 0
        self.failed_starts = 0
        self.resyncs = 0
        self.last_failure = ""


@attrs.frozen
class Recipe:
    """What new members are made of: the spec, its image resolved, and their fingerprint."""

    spec: ContainerSpec
    image_id: str
    fingerprint: str


class Engine:
    """State and effect execution shared by the pool's threads and its claimers."""

    def __init__(
        self,
        config: PoolConfig,
        adapter: DockerAdapter,
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.adapter = adapter
        self.backoff = backoff
        self.clock = clock
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.table = MemberTable()
        self.counters = Counters()
        self.target = config.size
        self.recipe = Recipe(config.spec, "", "")  # set by the pool once the image is resolved
        self._recipes: dict[str, Recipe] = {}
        self.cold_in_flight = 0
        self.closing = False
        self.degraded = False
        self.sender: Any = self  # the object signals are sent from (the public pool)
        self.wake: Callable[[], None] = lambda: None  # nudges the reconciler (back-off timer)
        self.creates = Workers(config.create_concurrency, f"dockpool-{config.name}-create")
        self.removes = Workers(2, f"dockpool-{config.name}-remove")

    def use(self, recipe: Recipe) -> None:
        """Make `recipe` the one new members (and cold starts) are made of."""
        with self.lock:
            self.recipe = recipe
            self._recipes[recipe.fingerprint] = recipe

    @property
    def fingerprint(self) -> str:
        return self.recipe.fingerprint

    def labels(self, fingerprint: str) -> dict[str, str]:
        return {POOL_LABEL: self.config.name, SPEC_LABEL: fingerprint}

    @property
    def needs_health(self) -> bool:
        return self.recipe.spec.healthcheck is not None

    # -- applying events ---------------------------------------------------------------------

    def apply(self, key: m.MemberKey, event: m.Event, **payload: Any) -> tuple[m.Effect, ...]:
        """Feed `event` to member `key` and run the effects; return those left to the caller."""
        with self.lock:
            member = self.table.get(key)
            if member is None:
                return ()
            new, effects = m.transition(member, event)
            if new == member and not effects:
                return ()
            self.table.store(new, self.clock())
            self.changed.notify_all()
            self._count(effects)
            more = self._top_up_locked() if _may_leave_short(effects) else []
        left = self.run(new, effects, **payload)
        for member, created in more:
            self.run(member, created)
        return left

    def _count(self, effects: tuple[m.Effect, ...]) -> None:
        """Update counters and back-off (under the lock, before any top-up looks at them)."""
        for effect in effects:
            if isinstance(effect, m.Replace) and effect.reason != "claimed":
                self.counters.replaced += 1
            elif isinstance(effect, m.Failure):
                self.counters.failed_starts += 1
                self.counters.last_failure = effect.reason
                self.backoff.fail()
                self.degraded = self.degraded or self.backoff.failures >= DEGRADED_AFTER

    def run(self, member: m.Member, effects: m.Effects, **payload: Any) -> m.Effects:
        """Execute the effects of `member`; return those left to the caller (a claim's Rename)."""
        left: list[m.Effect] = []
        for effect in effects:
            if isinstance(effect, m.Create):
                self.creates.submit(functools.partial(self._create, member.key))
            elif isinstance(effect, m.Start):
                self._start(member)
            elif isinstance(effect, m.Remove):
                self.removes.submit(functools.partial(self._remove, member))
            elif isinstance(effect, m.Failure):
                self._failed(effect.reason)
            elif isinstance(effect, m.Notify):
                self._notify(member, effect, payload)
            elif isinstance(effect, m.Rename):
                left.append(effect)
        return tuple(left)

    def _notify(self, member: m.Member, effect: m.Notify, payload: dict[str, Any]) -> None:
        logger.debug("{} {}: {} {}", member.name, member.state.value, effect.signal, effect.reason)
        if effect.signal == "member_ready":
            with self.lock:
                self.backoff.succeed()
                recovered, self.degraded = self.degraded, False
            if recovered:
                signals.send("pool_recovered", self.sender)
        signals.send(effect.signal, self.sender, member=member, reason=effect.reason, **payload)

    def _failed(self, reason: str) -> None:
        with self.lock:
            delay = self.backoff.remaining()
            failures = self.backoff.failures
            degraded = failures >= DEGRADED_AFTER
        logger.warning(
            "pool {}: member failed ({}); next create in {:.1f} s", self.config.name, reason, delay
        )
        if degraded:
            signals.send(
                "pool_degraded", self.sender, failures=failures, retry_in=delay, reason=reason
            )
        self.wake()

    # -- Docker calls, on worker threads ------------------------------------------------------

    def _create(self, key: m.MemberKey) -> None:
        member = self.table.get(key)
        if member is None:
            return
        if self.closing or member.state is m.State.RETIRING:
            self.apply(key, m.CreateFailed("retired before its create"))
            return
        recipe = self._recipes[member.fingerprint]
        labels = self.labels(recipe.fingerprint)
        try:
            cid = self.adapter.create(recipe.spec, member.name, labels, image=recipe.image_id)
        except DockerError as exc:
            self.apply(key, m.CreateFailed(str(exc)))
            return
        self.apply(key, m.Created(cid))

    def _start(self, member: m.Member) -> None:
        assert member.container_id is not None
        try:
            self.adapter.start(member.container_id)
        except DockerError as exc:
            self.apply(member.key, m.StartFailed(str(exc)))
            return
        self.apply(member.key, m.Started())

    def _remove(self, member: m.Member) -> None:
        if member.container_id is None:
            return
        try:
            self.adapter.remove(member.container_id)
        except DockerError as exc:
            logger.warning("removing {} failed: {} (retried at the next resync)", member.name, exc)
            return
        self.apply(member.key, m.Destroyed())

    # -- keeping the pool full -------------------------------------------------------------------

    def top_up(self) -> None:
        """Create the members the pool lacks (within the cap and the back-off)."""
        with self.lock:
            created = self._top_up_locked()
        for member, effects in created:
            self.run(member, effects)

    def _top_up_locked(self) -> list[tuple[m.Member, m.Effects]]:
        if self.closing or not self.fingerprint:
            return []
        n = self.table.to_create(self.target, self.config.max_containers, self.cold_in_flight)
        if n <= 0 or self.backoff.remaining() > 0:
            return []  # after a back-off the reconciler wakes up and calls top_up again
        created = []
        now = self.clock()
        for _ in range(n):
            key = m.MemberKey(secrets.token_hex(6))
            name = member_name(self.config.name, key)
            member, effects = m.provision(
                key, name, needs_health=self.needs_health, now=now, fingerprint=self.fingerprint
            )
            self.table.store(member, now)
            created.append((member, effects))
        self.changed.notify_all()
        return created

    def stats(self, reconnects: int) -> PoolStats:
        S = m.State
        with self.lock:
            table, c = self.table, self.counters
            return PoolStats(
                size=self.target,
                ready=table.count(S.READY),
                warming=table.count(S.CREATING, S.STARTING, S.WARMING),
                claiming=table.count(S.CLAIMING),
                retiring=table.count(S.RETIRING),
                hits=c.hits,
                misses=c.misses,
                replaced=c.replaced,
                failed_starts=c.failed_starts,
                consecutive_failures=self.backoff.failures,
                degraded=self.degraded,
                stream_reconnects=reconnects,
                resyncs=c.resyncs,
            )

    def sweep_unclaimed(self) -> None:
        """Remove any unclaimed member left on the engine (e.g. a create that raced a close)."""
        name = self.config.name
        with self.lock:  # a member still retiring here had its remove fail: sweep it too
            claiming = {mem.container_id for mem in self.table if mem.state is m.State.CLAIMING}
        try:
            for view in self.adapter.list({POOL_LABEL: name}):
                if is_member_name(name, view.name) and view.id not in claiming:
                    self.adapter.remove(view.id)
        except DockerError as exc:
            logger.warning("pool {}: final sweep failed: {}", name, exc)

    def retire(self, members: list[m.Member], reason: str, replace: bool = False) -> None:
        """Ask each member to go (shrink, max age, spec change, close)."""
        for member in members:
            self.apply(member.key, m.RetireRequested(reason, replace=replace))


def _may_leave_short(effects: m.Effects) -> bool:
    return any(isinstance(e, m.Replace | m.Failure) for e in effects)
