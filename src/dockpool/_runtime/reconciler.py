"""The reconciler thread: the one consumer of the pool's queue.

It receives Docker events from the listener, resync requests (on every (re)connect of the
stream) and wake-ups, and turns them into state-machine events for the engine, in arrival
order, so the events of one container are never processed concurrently. It also owns the
pool's only periodic work: a slow resync against the engine's list (events are hints, the
list is the truth), the end of a back-off, and max-age retirement. There is no polling loop:
between deadlines it sleeps on its queue.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable

from loguru import logger

from dockpool import signals
from dockpool._adapters.docker_api import ContainerView
from dockpool._core import machine as m
from dockpool._core.errors import DockerError
from dockpool._core.events import ContainerEvent, machine_event
from dockpool._core.spec import NAME_PREFIX, SPEC_LABEL
from dockpool._runtime.engine import Engine

_STOP = "stop"
_RESYNC = "resync"
_WAKE = "wake"


class Reconciler:
    """Feeds events to the engine in order; resyncs; keeps the timers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name=f"dockpool-{engine.config.name}-reconciler", daemon=True
        )
        self._next_resync = 0.0
        #: container id -> callback, for cold starts waiting on their own container's events
        self.watchers: dict[m.ContainerId, Callable[[ContainerEvent], None]] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        self._queue.put(_STOP)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- inputs, from any thread ----------------------------------------------------------

    def post_event(self, event: ContainerEvent) -> None:
        self._queue.put(event)

    def request_resync(self) -> None:
        self._queue.put(_RESYNC)

    def wake(self) -> None:
        self._queue.put(_WAKE)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        engine = self.engine
        while True:
            try:
                item = self._queue.get(timeout=self._sleep_time())
            except queue.Empty:
                item = _WAKE
            if item == _STOP:
                return
            try:
                if isinstance(item, ContainerEvent):
                    self._on_event(item)
                elif item == _RESYNC:
                    self.resync()
                self._timers()
                engine.top_up()
            except Exception:  # the reconciler must outlive any single bad event
                logger.opt(exception=True).error("reconciler failed on {!r}", item)

    def _sleep_time(self) -> float | None:
        """Seconds until the next deadline; None (sleep until woken) when there is none."""
        engine = self.engine
        now = engine.clock()
        deadlines = [self._next_resync]
        with engine.lock:
            if engine.backoff.remaining() > 0:
                deadlines.append(engine.backoff.until)
            expiry = engine.table.next_expiry(engine.config.max_age)
        if expiry is not None:
            deadlines.append(expiry)
        nearest = min(deadlines)
        return None if nearest == float("inf") else max(0.01, nearest - now)

    def _timers(self) -> None:
        engine = self.engine
        now = engine.clock()
        if now >= self._next_resync:
            self.resync()
        with engine.lock:
            expired = engine.table.expired(now, engine.config.max_age)
        engine.retire(expired, "max age", replace=True)

    def _on_event(self, event: ContainerEvent) -> None:
        engine = self.engine
        signals.send("docker_event", engine.sender, event=event)
        with engine.lock:
            key = engine.table.key_of(event.container_id)
            watcher = self.watchers.get(event.container_id)
        if watcher is not None:
            watcher(event)
        if key is None:
            return
        change = machine_event(event)
        if change is not None:
            engine.apply(key, change)

    # -- resync: list + compare ---------------------------------------------------------------

    def resync(self) -> None:
        """Compare the table with the engine's list of the pool's containers and act on it."""
        engine = self.engine
        self._next_resync = engine.clock() + (engine.config.resync_interval or float("inf"))
        with engine.lock:
            known = engine.table.ids()
        try:
            views = engine.adapter.list({"dockpool.pool": engine.config.name})
        except DockerError as exc:
            logger.warning("resync of pool {} failed: {}", engine.config.name, exc)
            return
        listed = {v.id for v in views}
        changed = 0
        for view in views:
            changed += self._reconcile_one(view)
        for cid in known - listed:  # gone without an event reaching us
            key = engine.table.key_of(cid)
            if key is not None:
                engine.apply(key, m.Destroyed())
                changed += 1
        engine.counters.resyncs += 1
        signals.send("resynced", engine.sender, seen=len(views), changed=changed)

    def _reconcile_one(self, view: ContainerView) -> int:
        engine = self.engine
        prefix = f"{NAME_PREFIX}{engine.config.name}-"
        with engine.lock:
            key = engine.table.key_of(view.id)
            in_flight = view.name.startswith(prefix) and engine.table.get(
                m.MemberKey(view.name[len(prefix) :])
            )
        if key is not None:
            before = engine.table.get(key)
            engine.apply(key, m.Observed(status=view.status, health=view.health, name=view.name))
            return int(engine.table.get(key) != before)
        if not view.name.startswith(prefix) or in_flight:
            return 0  # claimed (another name): never touched; or our own create in flight
        if self._adoptable(view):
            self._adopt(view, m.MemberKey(view.name[len(prefix) :]))
        else:
            logger.info("removing stale member {} ({}, {})", view.name, view.status, view.health)
            engine.removes.submit(functools.partial(_quiet_remove, engine, view.id))
        return 1

    def _adoptable(self, view: ContainerView) -> bool:
        engine = self.engine
        healthy = view.health == "healthy" or (view.health is None and not engine.needs_health)
        with engine.lock:
            room = engine.table.live < engine.target and not engine.closing
        return (
            room and view.running and healthy and view.labels.get(SPEC_LABEL) == engine.fingerprint
        )

    def _adopt(self, view: ContainerView, key: m.MemberKey) -> None:
        engine = self.engine
        member = m.Member(
            key=key,
            name=view.name,
            state=m.State.READY,
            container_id=view.id,
            needs_health=engine.needs_health,
            fingerprint=engine.fingerprint,
            born=engine.clock(),
        )
        with engine.lock:
            engine.table.store(member, engine.clock())
            engine.changed.notify_all()
        logger.info("adopted member {} from an earlier run", view.name)
        signals.send("member_ready", engine.sender, member=member, reason="adopted")


def _quiet_remove(engine: Engine, cid: m.ContainerId) -> None:
    try:
        engine.adapter.remove(cid)
    except DockerError as exc:
        logger.warning("removing stale container {} failed: {}", cid[:12], exc)
