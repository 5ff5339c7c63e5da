"""The one place where the state machine's decisions are carried out.

`apply(key, event)` feeds the machine, records the new member under the lock and runs the
effects outside it: creates on the create workers (a cold start's in its claimer's thread, so a
claim never queues behind the refill), starts in the thread that saw the create finish,
removals on the remove workers, signals in the calling thread. `Remove` is upkeep: it runs
only in the process that does the upkeep (or in the last process of a pool, as it closes) and
only while holding the member's lock (see locks.py). The claim's `Rename` is carried out by
the claim that asked for it (handover.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from loguru import logger

from dockpool import signals
from dockpool._adapters.api import ContainerView, EngineApi
from dockpool._core import machine as m
from dockpool._core.errors import DockerError
from dockpool._core.spec import NAME_PREFIX, ORIGIN_LABEL, SPEC_LABEL
from dockpool._core.timeouts import Timeouts
from dockpool._runtime import removal
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.capacity import Capacity
from dockpool._runtime.doubts import Doubt, Doubts
from dockpool._runtime.locks import Locks
from dockpool._runtime.prober import Prober
from dockpool._runtime.renames import RenameWatch
from dockpool._runtime.state import PoolState
from dockpool._runtime.workers import Workers

#: Consecutive failures before the pool announces `pool_degraded`.
DEGRADED_AFTER = 2


#: A recorded step of the machine: the member before, after, and the effects to carry out.
Moved = tuple[m.Member, m.Member, m.Effects]


class Executor:
    """Applies member events through the machine and performs the effects."""

    def __init__(
        self,
        state: PoolState,
        api: EngineApi,
        locks: Locks,
        backoff: Backoff,
        may_upkeep: Callable[[], bool],
        timeouts: Timeouts,
        present: Callable[[float], bool],
    ) -> None:
        self.state = state
        self.api = api
        self.locks = locks
        self.backoff = backoff
        self.may_upkeep = may_upkeep
        self.timeouts = timeouts
        #: waits at most N s for this process's presence to run (peers.py)
        self.peers_present = present
        self.capacity = Capacity(api, locks, state.name)
        self.prober = Prober(state, api, self.apply)
        self.renames = RenameWatch()  # claims waiting for their rename's event (renames.py)
        # claims the engine did not answer (doubts.py), told old names by the stream
        self.doubts = Doubts(api, state.name, self.renames.old_name_of)
        #: members whose create was not attempted for want of room (a cold start retries)
        self.capped: set[m.MemberKey] = set()
        self.degraded = False
        self.sender: Any = self  # the object signals are sent from (the public pool)
        self.wake: Callable[[], None] = lambda: None  # nudges the reconciler (back-off timer)
        self.refill: Callable[[], None] = lambda: None  # upkeep's top-up
        self.claim_seen: Callable[[bool], None] = lambda hit: None  # self-sizing: a claim
        self.warmed: Callable[[float], None] = lambda seconds: None  # ...and a warm-up time
        self.moved: Callable[[m.Member, m.Member], None] = lambda old, new: None  # (ahead.py)
        name = state.name
        self.creates = Workers(state.config.create_concurrency, f"dockpool-{name}-create")
        self.removes = Workers(2, f"dockpool-{name}-remove")

    # -- the table, through the machine ----------------------------------------------------

    def apply(self, key: m.MemberKey, event: m.Event, **payload: Any) -> m.Effects:
        """Feed `event` to member `key`, run the effects; return the claim's Rename, if any."""
        return self.follow(self.transition(key, event), event, **payload)

    def transition(self, key: m.MemberKey, event: m.Event) -> Moved | None:
        """The machine's step for `event`, recorded in the table (the first half of `apply`;
        a caller already holding the state's lock makes it atomic with what it read)."""
        state = self.state
        with state.lock:
            member = state.table.get(key)
            if member is None:
                return None
            new, effects = m.transition(member, event)
            if new == member and not effects:
                return None
            state.table.store(new, state.clock())
            if new.reserved_for is not None and new.state in (m.State.GONE, m.State.RETIRING):
                state.counters.note_cause(key, effects)  # (its cold start reports it)
            state.changed.notify_all()
            self._count(effects)
        return member, new, effects

    def follow(self, moved: Moved | None, event: m.Event, **payload: Any) -> m.Effects:
        """Act on a recorded step (the second half of `apply`), outside the state's lock."""
        if moved is None:
            return ()
        member, new, effects = moved
        if isinstance(event, m.Renamed) and member.state is m.State.READY:
            self.claim_seen(True)  # claimed by another process of the pool (or by hand)
        self.moved(member, new)
        return self.run(new, effects, **payload)

    def admit(self, member: m.Member, effects: m.Effects) -> m.Effects:
        """Record a member that the machine just made (provisioned or discovered) and act."""
        self.record(member)
        return self.run(member, effects)

    def record(self, member: m.Member) -> None:
        """Record a member the machine just made, without acting yet (a cold start records
        its member under the lock that checked the cap, then takes its lock, then acts)."""
        with self.state.lock:
            self.state.table.store(member, self.state.clock())
            self.state.changed.notify_all()

    def discover(self, view: ContainerView) -> bool:
        """Make a record of a pool member this process does not know yet; True if it did."""
        state = self.state
        with state.lock:
            if state.table.key_of(view.id) is not None or state.table.departed(view.id):
                return False
            prefix = f"{NAME_PREFIX}{state.name}-"
            key = m.MemberKey(view.name[len(prefix) :] if view.name.startswith(prefix) else view.id)
            if state.table.get(key) is not None:
                return False  # our own create, its id not known yet
            seen = m.Observed(status=view.status, health=view.health, name=view.name)
            member, effects = m.discover(
                key,
                view.id,
                seen,
                needs_health=state.needs_health,
                probed=state.probed,
                warms=state.warms,
                fingerprint=view.labels.get(SPEC_LABEL, ""),
                current=state.fingerprint,
                now=state.clock(),
                upkeep=self.may_upkeep(),
            )
        if view.labels.get(ORIGIN_LABEL) == "cold":
            self.claim_seen(False)  # another process's cold start: a miss there
        self.admit(member, effects)
        return True

    def _count(self, effects: m.Effects) -> None:
        """Update counters and back-off (under the lock, before any top-up looks at them)."""
        counters = self.state.counters
        for effect in effects:
            if isinstance(effect, m.Replace) and effect.reason != "claimed":
                counters.replaced += 1
            elif isinstance(effect, m.Failure):
                counters.failed_starts += 1
                counters.last_failure = effect.reason
                self.backoff.fail()
                self.degraded = self.degraded or self.backoff.failures >= DEGRADED_AFTER

    def run(self, member: m.Member, effects: m.Effects, **payload: Any) -> m.Effects:
        left: list[m.Effect] = []
        short = False
        for effect in effects:
            if isinstance(effect, m.Create):
                job = functools.partial(self._create, member.key)
                if member.reserved_for is not None:
                    job()  # a cold start: in its claimer's thread, ahead of any refill
                else:
                    self.creates.submit(job)
            elif isinstance(effect, m.Start):
                self._start(member)
            elif isinstance(effect, m.Probe):
                self.prober.start(member)
            elif isinstance(effect, m.Remove):
                if self.may_upkeep():
                    self.removes.submit(functools.partial(removal.remove, self, member))
            elif isinstance(effect, m.Discard):
                self._discard(member)
            elif isinstance(effect, m.Failure):
                self._failed(effect.reason)
                short = True
            elif isinstance(effect, m.Replace):
                short = True
            elif isinstance(effect, m.Notify):
                self._notify(member, effect, payload)
            elif isinstance(effect, m.Rename):
                left.append(effect)
        if short:
            self.refill()
        return tuple(left)

    def _notify(self, member: m.Member, effect: m.Notify, payload: dict[str, Any]) -> None:
        logger.debug("{} {}: {} {}", member.name, member.state.value, effect.signal, effect.reason)
        if effect.signal == "member_ready":
            if effect.reason in ("", "answered") and member.reserved_for is None:
                self.warmed(self.state.clock() - member.born)
            with self.state.lock:
                self.backoff.succeed()
                recovered, self.degraded = self.degraded, False
            if recovered:
                signals.send("pool_recovered", self.sender)
        info = m.MemberInfo.of(member)
        signals.send(effect.signal, self.sender, member=info, reason=effect.reason, **payload)

    def _failed(self, reason: str) -> None:
        with self.state.lock:
            delay = self.backoff.remaining()
            failures = self.backoff.failures
        logger.warning("pool {}: member failed ({}); next create in {:.1f} s",
                       self.state.name, reason, delay)  # fmt: skip
        if failures >= DEGRADED_AFTER:
            signals.send(
                "pool_degraded", self.sender, failures=failures, retry_in=delay, reason=reason
            )
        self.wake()

    # -- Docker calls -------------------------------------------------------------------------

    def _create(self, key: m.MemberKey) -> None:
        state = self.state
        member = state.table.get(key)
        if member is None:
            return
        if state.closing or member.state is m.State.RETIRING:
            self.apply(key, m.CreateFailed("retired before its create"))
            return
        if member.reserved_for is None and state.yield_to_claims(hold=True) > 0.001:
            member = state.table.get(key)  # claims first: a burst is served, then refilled
            if member is None or state.closing or member.state is m.State.RETIRING:
                self.apply(key, m.CreateFailed("retired before its create"))
                return
        recipe = state.recipes[member.fingerprint]
        labels = state.labels(
            recipe.fingerprint, "refill" if member.reserved_for is None else "cold"
        )
        try:
            with self.capacity.held() as held:
                cap = state.config.max_containers
                if held >= cap:
                    self.capped.add(key)
                    self.apply(key, m.CreateFailed(f"max_containers ({cap}) reached", capped=True))
                    return
                cid = self.api.create(recipe.spec, member.name, labels, image=recipe.image_id)
        except DockerError as exc:
            self.apply(key, m.CreateFailed(str(exc)))
            self.state.resync_soon()  # the create may have gone through all the same: look
            self.wake()
            return
        self.apply(key, m.Created(cid))

    def _start(self, member: m.Member) -> None:
        assert member.container_id is not None
        try:
            self.api.start(member.container_id)
        except DockerError as exc:
            self.apply(member.key, m.StartFailed(str(exc)))
            return
        self.apply(member.key, m.Started())

    def _discard(self, member: m.Member) -> None:
        """Remove a container a claim renamed but did not hand out (it died under the claim)."""
        if member.container_id is None:
            return
        try:
            try:
                self.api.remove(member.container_id)
            except DockerError:
                self.api.remove(member.container_id)  # once more at once: often a hiccup
        except DockerError as exc:  # nobody received it: the resyncs try again (doubts.py)
            logger.error("discarding {} failed: {}", member.container_id[:12], exc)
            self.doubts.add(Doubt(member.container_id, "", member.name, discard=True))
            self.state.resync_soon()
            self.wake()
            return
        self.apply(member.key, m.Destroyed())
