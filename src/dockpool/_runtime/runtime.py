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
from dockpool._core.timeouts import Timeouts
from dockpool._runtime import closing, recovery
from dockpool._runtime.ahead import Ahead
from dockpool._runtime.autosize import AutoSize
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.claims import claim_from_pool
from dockpool._runtime.cold import cold_start
from dockpool._runtime.executor import Executor
from dockpool._runtime.lease import Lease, PoolStats
from dockpool._runtime.listener import Listener
from dockpool._runtime.locks import Locks
from dockpool._runtime.peers import Peers
from dockpool._runtime.reconciler import Reconciler
from dockpool._runtime.state import PoolState, Recipe
from dockpool._runtime.upkeep import Upkeep
from dockpool._runtime.warming import claim_warming


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
        ahead = Ahead(state, locks, executor.removes)

        def claim_seen(hit: bool) -> None:  # another process's claim (or cold start)
            autosize.claimed(hit)
            ahead.contended("another process claimed")

        executor.claim_seen, executor.warmed = claim_seen, autosize.warmed
        executor.moved, locks.on_locked = ahead.moved, ahead.want
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

    def try_serve(self, session: str, payload: str | None) -> Lease | None:
        """`try_claim`: an earlier claim of `session` resumed, else a ready member; None (and
        nothing created) when none is ready. Refill creates wait while it runs."""
        lease = self.resume(session)
        if lease is not None:
            return lease
        with self.state.claiming():
            lease = claim_from_pool(self.executor, session, time.perf_counter(), payload=payload)
        if lease is not None:
            self.ahead.claimed()
        return lease

    def serve(
        self,
        session: str,
        timeout: float | None,
        cancel: threading.Event | None,
        payload: str | None,
    ) -> Lease:
        """`claim`: an earlier claim of `session` resumed, else a ready member, else one that
        is warming, else a cold start. Refill creates wait while it runs (bounded): claims
        first."""
        started = time.perf_counter()
        lease = self.resume(session)
        if lease is not None:
            return lease
        ex = self.executor
        with self.state.claiming():
            lease = claim_from_pool(ex, session, started, cancel, payload)
            wait = self.state.config.ready_timeout if timeout is None else timeout
            if lease is None:  # a member already warming is ready before a cold start
                lease = claim_warming(ex, session, started, wait, cancel, payload)
            if lease is None:
                if cancel is not None and cancel.is_set():  # no cold start for one that left
                    raise ClaimError(f"claim {session!r}: cancelled")
                left = max(1.0, wait - (time.perf_counter() - started))
                lease = cold_start(ex, session, started, left, cancel, payload)
        self.autosize.claimed(hit=lease.from_pool)
        self.ahead.claimed()
        return lease

    def resume(self, session: str) -> Lease | None:
        """Before a claim: wait for this process's presence if it is rejoining (its locks
        serve no claim meanwhile); then, if an earlier claim of `session` lost its rename's
        answer, the container that rename made, if it is the session's (recovery.py)."""
        if not self.peers.wait_present(self.executor.timeouts.rejoin_wait):
            raise ClaimError(
                f"claim {session!r}: this process has no presence on pool {self.state.name} "
                "(its presence container ended and it could not rejoin yet)"
            )
        return recovery.resume_claim(self.api, self.state.name, self.executor.doubts, session)

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
        self.executor.removes.submit(functools.partial(recovery.discard, self.api, lease))

    def close(self, timeout: float) -> bool:
        """Take the parts down in the order that loses nothing (closing.py); True if every
        thread and call ended within `timeout`."""
        return closing.close(self, timeout)
