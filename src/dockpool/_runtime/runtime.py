"""The running parts of one pool, built and torn down together.

`Runtime.build` wires the parts, each with one job: `PoolState` (what they share), `Locks`
(member locks on the engine), `Peers` (this process's presence; who does the upkeep),
`Executor` (carries out the machine's effects), `Upkeep` (size, retirement, housekeeping; the
leader's), `Reconciler` (events and resyncs, in order, on one thread) and `Listener` (the event
stream). `close` takes them down in the order that loses nothing.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

import attrs
from loguru import logger

from dockpool import signals
from dockpool._adapters.api import EngineApi
from dockpool._adapters.event_stream import EventSource
from dockpool._core import machine as m
from dockpool._core.config import PoolConfig
from dockpool._core.errors import ClaimError, DockerError, PoolTimeoutError
from dockpool._core.spec import POOL_LABEL, ROLE_LABEL, is_member_name
from dockpool._core.timeouts import Timeouts
from dockpool._runtime import recovery
from dockpool._runtime.ahead import Ahead
from dockpool._runtime.autosize import AutoSize
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.executor import Executor
from dockpool._runtime.lease import Lease, PoolStats
from dockpool._runtime.listener import Listener
from dockpool._runtime.locks import Locks
from dockpool._runtime.peers import Peers
from dockpool._runtime.reconciler import Reconciler
from dockpool._runtime.state import Lifecycle, PoolState, Recipe
from dockpool._runtime.upkeep import Upkeep

#: Seconds between the final sweep's retries of removals that found a lock held.
_SWEEP_RETRY = 2.0


@attrs.define
class Runtime:
    state: PoolState
    api: EngineApi
    locks: Locks
    peers: Peers
    executor: Executor
    upkeep: Upkeep
    reconciler: Reconciler
    listener: Listener
    autosize: AutoSize
    ahead: Ahead
    sweeping: bool = False  # the last process, closing: it removes what is left

    @classmethod
    def build(
        cls,
        config: PoolConfig,
        api: EngineApi,
        source: EventSource,
        backoff: Backoff,
        clock: Callable[[], float],
        token: str,
        image_id: str,
        timeouts: Timeouts,
    ) -> Runtime:
        state = PoolState(config, clock)
        state.use(Recipe.of(config.spec, image_id))

        def image() -> tuple[str, dict[str, str]]:  # what bookkeeping containers are made of:
            return state.recipe.image_id, dict(state.recipe.spec.labels)  # the spec's image, labels

        holder: list[Runtime] = []

        def may_upkeep() -> bool:
            rt = holder[0] if holder else None
            return rt is not None and (rt.sweeping or (rt.peers.leader and not state.closing))

        def on_lead(leading: bool) -> None:  # a takeover: relist, then do the upkeep
            if not holder:
                return
            rt = holder[0]
            signals.send("upkeep_changed", rt.executor.sender, leading=leading)
            if leading and rt.listener.connects > 0:
                rt.reconciler.request_resync()

        peers = Peers(
            api,
            config.name,
            token,
            image,
            clock=clock,
            grace=timeouts.peer_grace,
            on_lead=on_lead,
            resync_in=state.resync_soon,
        )
        locks = Locks(api, config.name, token, image, peers.wait_present, timeouts.rejoin_wait)
        executor = Executor(
            state, api, locks, backoff, may_upkeep, timeouts, present=peers.wait_present
        )
        upkeep = Upkeep(state, executor, may_upkeep)
        executor.refill = upkeep.top_up
        autosize = AutoSize(state, upkeep, lambda: executor.sender)
        upkeep.autosize = autosize
        executor.claim_seen, executor.warmed = autosize.claimed, autosize.warmed
        ahead = Ahead(state, locks, executor.removes)
        executor.moved = ahead.moved
        reconciler = Reconciler(state, api, executor, upkeep, peers, locks)
        reconciler.ahead = ahead
        executor.wake = reconciler.wake
        listener = Listener(
            source,
            on_event=reconciler.post_event,
            on_connect=lambda again: reconciler.request_resync(),
            on_lost=lambda reason, delay: None,
            name=f"dockpool-{config.name}-listener",
        )
        rt = cls(state, api, locks, peers, executor, upkeep, reconciler, listener, autosize, ahead)
        holder.append(rt)
        return rt

    @classmethod
    def open(
        cls,
        config: PoolConfig,
        api: EngineApi,
        source: EventSource,
        backoff: Backoff,
        clock: Callable[[], float],
        token: str,
        sender: object,
        timeouts: Timeouts,
    ) -> Runtime:
        """Check the engine and the image, build the parts and join the pool on the engine
        (no thread started yet: `run`). On a DockerError the engine connection is closed."""
        try:
            api.ping()
            image_id = api.resolve_image(config.spec.image)
            rt = cls.build(config, api, source, backoff, clock, token, image_id, timeouts)
            rt.executor.sender = sender
            rt.peers.join()
        except DockerError:
            api.close()
            raise
        return rt

    def run(self) -> None:
        """Start the reconciler, then the event stream (its first connect asks for a resync)."""
        self.listener.on_connect = self.on_stream_connect
        self.listener.on_lost = self.on_stream_lost
        self.reconciler.start()
        self.listener.start()

    def wait_until_full(self, timeout: float) -> None:
        state = self.state
        with state.lock:
            full = state.changed.wait_for(
                lambda: state.table.count(m.State.READY) >= state.target or state.closing,
                timeout=timeout,
            )
        if not full:
            stats = self.stats()
            last = state.counters.last_failure
            raise PoolTimeoutError(
                f"pool {state.name}: {stats.ready} of {stats.size} members ready after {timeout} s"
                + (f" (last failure: {last})" if last else "")
            )

    def stats(self) -> PoolStats:
        S = m.State
        state = self.state
        with state.lock:
            table, c = state.table, state.counters
            return PoolStats(
                size=state.target,
                ready=table.count(S.READY),
                warming=table.count(S.CREATING, S.STARTING, S.WARMING),
                claiming=table.count(S.CLAIMING),
                retiring=table.count(S.RETIRING),
                hits=c.hits,
                misses=c.misses,
                replaced=c.replaced,
                failed_starts=c.failed_starts,
                consecutive_failures=self.executor.backoff.failures,
                degraded=self.executor.degraded,
                stream_reconnects=max(0, self.listener.connects - 1),
                resyncs=c.resyncs,
            )

    def on_stream_connect(self, again: bool) -> None:
        """The listener (re)connected: a resync follows; after an outage, refill at once."""
        self.executor.renames.connected()  # (before the resync is asked for: it closes the gap)
        if again:
            logger.info("pool {}: event stream restored; resyncing", self.state.name)
            signals.send("stream_restored", self.executor.sender)
            with self.state.lock:  # creates that failed while the engine was away were not
                self.executor.backoff.succeed()  # the members' fault
        self.reconciler.request_resync()

    def on_stream_lost(self, reason: str, retry_in: float) -> None:
        self.executor.renames.lost()
        logger.warning("pool {}: {}; reconnecting in {:.1f} s", self.state.name, reason, retry_in)
        signals.send("stream_lost", self.executor.sender, error=reason, retry_in=retry_in)

    def resume(self, session: str) -> Lease | None:
        """Before a claim: wait for this process's presence if it is rejoining (its locks
        serve no claim meanwhile); then, if an earlier claim of `session` lost its rename's
        answer, the container that rename made, if it is the session's (recovery.py)."""
        if not self.peers.wait_present(self.executor.timeouts.rejoin_wait):
            raise ClaimError(
                f"claim {session!r}: this process has no presence on pool {self.state.name} "
                "(its presence container ended and it could not rejoin yet)"
            )
        doubt = self.executor.doubts.take(session)
        if doubt is None:
            return None
        if not doubt.exclusive:
            self.executor.doubts.add(doubt)  # another's, maybe: left to the resync
            return None
        return recovery.resume(self.api, self.state.name, doubt)

    def take_over(self, session: str) -> Lease | None:
        """`ContainerPool.lease_for` (recovery.py)."""
        self.executor.doubts.take(session)  # the host settles it now
        return recovery.lease_for(self.api, self.state.name, session)

    def release(self, session: str) -> bool:
        """`ContainerPool.release` (recovery.py)."""
        self.executor.doubts.take(session)
        return recovery.release(self.api, self.state.name, session)

    def undelivered(self, lease: Lease) -> None:
        """A claim's caller went away before receiving `lease`: remove it (on a remove worker)."""
        logger.warning("claim {}: its caller went away; removing {} (never handed out)",
                       lease.name, lease.container_id[:12])  # fmt: skip
        self.executor.removes.submit(functools.partial(self.discard_unclaimed_lease, lease))

    def discard_unclaimed_lease(self, lease: Lease) -> None:
        """Remove a container renamed for a claim whose caller went away before receiving it."""
        try:
            self.api.remove(lease.container_id)
        except DockerError as exc:
            logger.error("removing {} failed: {}", lease.name, exc)

    def close(self, timeout: float) -> bool:
        state = self.state
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        phases: list[tuple[str, float]] = []

        def done(phase: str) -> None:
            phases.append((phase, timeout - left()))

        with state.lock:
            state.lifecycle = Lifecycle.CLOSING
            state.changed.notify_all()
        self.listener.stop(timeout=min(5.0, timeout))
        self.reconciler.stop(timeout=min(5.0, timeout))
        self.executor.prober.stop(timeout=min(2.0, timeout))
        done("threads")
        self.ahead.set_alone(False)  # (its let-go runs on the remove workers, joined below)
        # Creates in flight land before this process leaves (queued ones are dropped: closing),
        # so whichever process leaves last sees their members and removes them. Leaving first
        # let another process sweep an engine without them, and their members were nobody's.
        ok = self.executor.creates.stop(left())
        done("creates")
        self.peers.step_down()  # another process (if any) takes over the upkeep now; this
        try:  # one stays present (its locks its own) until its removals are done
            last = not self.peers.others_alive()
        except DockerError as exc:
            logger.warning(
                "pool {}: cannot see other processes ({}); leaving members", state.name, exc
            )
            last = False
        if last:
            self._sweep(left)
            done("sweep")
        ok = self.executor.removes.stop(left()) and ok
        done("removes")
        self.peers.leave()
        self.locks.close()
        self.api.close()
        with state.lock:
            state.lifecycle = Lifecycle.CLOSED
            left_over = len(state.table) if last else 0
        if not ok or left() <= 0 or left_over:
            logger.warning(
                "pool {}: close ran out of its {} s ({} members left; seconds into it: {})",
                state.name, timeout, left_over, ", ".join(f"{p} {s:.1f}" for p, s in phases),
            )  # fmt: skip
        return ok

    def _sweep(self, left: Callable[[], float]) -> None:
        """The last process: free what gone processes left (their hands may hold the locks
        that removals need), then retire every unclaimed member, known or not, and wait for
        them (a removal that found a lock held is tried again)."""
        state = self.state
        self.sweeping = True
        self._final_housekeeping(left)
        try:
            views = self.api.list({POOL_LABEL: state.name, ROLE_LABEL: "member"})
            views += [  # members of runs before roles were labelled
                v for v in self.api.list({POOL_LABEL: state.name})
                if ROLE_LABEL not in v.labels
            ]  # fmt: skip
        except DockerError as exc:
            logger.warning("pool {}: final sweep failed: {}", state.name, exc)
            views = []
        for view in views:
            if is_member_name(state.name, view.name):
                self.executor.discover(view)
        with state.lock:
            members = [mem for mem in state.table if mem.state is not m.State.CLAIMING]
        self.upkeep.retire(members, "close")
        while True:  # removals run on the remove workers, each holding the member's lock
            with state.lock:
                done = state.changed.wait_for(
                    lambda: all(mem.state is m.State.CLAIMING for mem in state.table),
                    timeout=min(_SWEEP_RETRY, left()),
                )
                retiring = [mem for mem in state.table if mem.state is m.State.RETIRING]
            if done or left() <= 0:
                return
            self.locks.repair()  # (a lock of ours that failed to go home holds a member)
            for mem in retiring:  # its removal found the lock held, or failed: again
                seen = m.Observed(status="running", health=None, name=mem.name)
                self.executor.apply(mem.key, seen)

    def _final_housekeeping(self, left: Callable[[], float]) -> None:
        """What gone processes left (their hands, dead presences), before a resync did; a
        process seen gone only just now may be alive, rejoining: its locks wait out the grace
        (peers.py), within close's timeout."""
        state = self.state
        try:
            views = self.api.list({POOL_LABEL: state.name})
            wait = min(self.peers.grace_left(views), left())
            if wait > 0:
                threading.Event().wait(wait)
                views = self.api.list({POOL_LABEL: state.name})
            self.upkeep.housekeep(self.api, views, self.peers.gone_owners(views), final=True)
        except DockerError as exc:
            logger.warning("pool {}: final housekeeping failed: {}", state.name, exc)
