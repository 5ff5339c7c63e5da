"""The reconciler thread: the one consumer of the pool's queue.

It receives Docker events from the listener, resync requests (on every (re)connect of the
stream, and when this process takes over the upkeep) and wake-ups, and turns them into
state-machine events, in arrival order, so the events of one container are never processed
concurrently. It also owns the pool's only periodic work: a slow resync against the engine's
list (events are hints, the list is the truth), the end of a back-off, max age and the
warm-up deadline. Between deadlines it sleeps on its queue.

A resync lists without holding the lock (a list is a round trip), so by the time it looks at
a row the table may know better: a member that changed after the list began is left alone,
and a container that left the table (claimed, removed) is never discovered again from it.
"""

from __future__ import annotations

import queue
import threading

from loguru import logger

from dockpool import signals
from dockpool._adapters.api import ContainerView, EngineApi
from dockpool._core import machine as m
from dockpool._core.errors import DockerError
from dockpool._core.events import ContainerEvent, machine_event
from dockpool._core.spec import (
    LOCK_SUFFIX,
    OWNER_LABEL,
    POOL_LABEL,
    WANT_SUFFIX,
    is_member_name,
    role_of,
)
from dockpool._runtime.ahead import Ahead
from dockpool._runtime.executor import Executor
from dockpool._runtime.locks import Locks
from dockpool._runtime.peers import Peers
from dockpool._runtime.state import PoolState
from dockpool._runtime.upkeep import Upkeep

_STOP = "stop"
_RESYNC = "resync"
_WAKE = "wake"


class Reconciler:
    """Feeds events to the machine in order; resyncs; keeps the timers."""

    def __init__(
        self,
        state: PoolState,
        api: EngineApi,
        executor: Executor,
        upkeep: Upkeep,
        peers: Peers,
        locks: Locks,
    ) -> None:
        self.state = state
        self.api = api
        self.executor = executor
        self.upkeep = upkeep
        self.peers = peers
        self.locks = locks
        self.ahead: Ahead | None = None  # set by the runtime: locks held ahead (ahead.py)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name=f"dockpool-{state.name}-reconciler", daemon=True
        )
        self._last_resync = float("-inf")
        self._pending_lock = threading.Lock()
        self._resync_pending = False

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
        """Ask for a resync; requests made before it runs are served by that one resync."""
        with self._pending_lock:
            if self._resync_pending:
                return
            self._resync_pending = True
        self._queue.put(_RESYNC)

    def wake(self) -> None:
        self._queue.put(_WAKE)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
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
            except Exception:  # the reconciler must outlive any single bad event
                logger.opt(exception=True).error("reconciler failed on {!r}", item)

    def _next_resync(self) -> float:
        interval = self.state.config.resync_interval  # read each time: a reload applies at once
        periodic = self._last_resync + interval if interval > 0 else float("inf")
        return min(periodic, self.state.resync_due)

    def _sleep_time(self) -> float | None:
        """Seconds until the next deadline; None (sleep until woken) when there is none."""
        deadlines = [self._next_resync()]
        upkeep = self.upkeep.next_deadline()
        if upkeep is not None:
            deadlines.append(upkeep)
        nearest = min(deadlines)
        return None if nearest == float("inf") else max(0.01, nearest - self.state.clock())

    def _timers(self) -> None:
        if self.state.clock() >= self._next_resync():
            self.resync()
        self.upkeep.timers()
        self.upkeep.shrink()
        self.upkeep.top_up()

    def _on_event(self, event: ContainerEvent) -> None:
        state = self.state
        signals.send("docker_event", self.executor.sender, event=event)
        role = role_of(event.labels)
        if role == "presence":
            if self.ahead is not None:
                self.ahead.presence_event(self.peers.presence_id, event.container_id, event.action)
            self.peers.on_event(event.container_id, event.action, event.name, event.old_name)
            return
        if role == "hand":
            mine = event.labels.get(OWNER_LABEL) == self.peers.token
            wants = event.action == "rename" and event.name.endswith(WANT_SUFFIX)
            if wants and not mine and self.ahead is not None:  # it may want a lock we hold
                self.ahead.contended("another process wants a lock")
            if event.action != "destroy":
                return
            if mine:
                self.locks.lost(event.container_id, event=True)  # its lock is free: unused
            if event.name.endswith(LOCK_SUFFIX):  # a lock broken: its holder may still rename
                self.locks.broke(event.name)
            return
        if role != "member":
            return
        if event.action == "rename":
            self.executor.renames.seen(event.container_id, event.name, event.old_name)
        with state.lock:
            key = state.table.key_of(event.container_id)
        if key is not None:
            change = machine_event(event)
            if change is not None:
                self.executor.apply(key, change)
            if event.action == "rename":  # after every earlier event: a claim may go on
                self.executor.renames.applied(event.container_id, event.name, event.old_name)
            return
        # another process's member: its start and health tell this process about it
        if is_member_name(state.name, event.name) and event.action in (
            "start",
            "health_status: healthy",
        ):
            healthy = event.action != "start" or not state.needs_health
            view = ContainerView(
                id=event.container_id,
                name=event.name,
                status="running",
                health=("healthy" if healthy else "starting") if state.needs_health else None,
                labels=event.labels,
            )
            self.executor.discover(view)

    # -- resync: list + compare ---------------------------------------------------------------

    def resync(self) -> None:
        """Compare the table with the engine's list of the pool's containers and act on it."""
        state = self.state
        self._last_resync = state.clock()
        with self._pending_lock:
            self._resync_pending = False
        with state.lock:
            began = state.table.version
            state.resync_due = float("inf")
        epoch = self.executor.renames.epoch
        hands = self.locks.ids()  # (before the list: a hand made after it is not missing)
        try:
            views = self.api.list({POOL_LABEL: state.name})
        except DockerError as exc:
            logger.warning("resync of pool {} failed: {}", state.name, exc)
            return
        changed = 0
        listed = set()
        for view in views:
            if role_of(view.labels) == "member":
                listed.add(view.id)
                changed += self._reconcile_one(view, began)
        with state.lock:
            missing = [
                mem.key
                for mem in state.table
                if mem.container_id is not None
                and mem.container_id not in listed
                and state.table.version_of(mem.key) <= began
            ]
        for key in missing:  # gone without an event reaching us
            self.executor.apply(key, m.Destroyed())
            changed += 1
        self._peers(views, hands)
        self.executor.doubts.resolve()
        self.executor.renames.synced(epoch)
        with state.lock:
            state.counters.resyncs += 1
        signals.send("resynced", self.executor.sender, seen=len(views), changed=changed)

    def _reconcile_one(self, view: ContainerView, began: int) -> int:
        state = self.state
        with state.lock:
            key = state.table.key_of(view.id)
            if key is not None and state.table.version_of(key) > began:
                return 0  # changed since the list began: the row is older than the table
            before = state.table.get(key) if key is not None else None
        if key is None:
            if not is_member_name(state.name, view.name):
                return 0  # claimed (a session's name): never touched
            return int(self.executor.discover(view))
        seen = m.Observed(status=view.status, health=view.health, name=view.name)
        self.executor.apply(key, seen)
        return int(state.table.get(key) != before)

    def _peers(self, views: list[ContainerView], hands: set[m.ContainerId]) -> None:
        """Rejoin if the engine lost this process's presence; lead exactly when the engine
        says so; forget hands the list lacks; free the locks of processes gone for good."""
        peers = self.peers
        try:
            peers.sync(views)
        except DockerError as exc:
            logger.warning("pool {}: presence: {}", self.state.name, exc)
        if self.ahead is not None:
            others = [v for v in views if role_of(v.labels) == "presence"
                      and v.running and v.id != peers.presence_id]  # fmt: skip
            self.ahead.set_alone(peers.present and not others)
        mine = {v.id for v in views if role_of(v.labels) == "hand"
                and v.labels.get(OWNER_LABEL) == peers.token}  # fmt: skip
        self.locks.reconcile(hands, mine)
        self.upkeep.housekeep(self.api, views, peers.departures.gone(views))
        wait = peers.departures.grace_left(views)
        if wait > 0:  # a process seen gone: look again when its grace is over
            self.state.resync_soon(wait + 0.1)
        self.locks.repair()
