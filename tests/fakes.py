"""An in-memory Docker engine and a scripted event source, for fast tests of the pool's logic.

`FakeDocker` has the `DockerAdapter` interface and emits the events a real engine would into a
`FakeEventSource`; tests can drop events (a lossy stream), end the stream (a disconnect), make
calls fail, and break containers (die, unhealthy, remove) as a real engine would report them.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from dockpool._adapters.api import ContainerView, EngineApi
from dockpool._adapters.event_stream import StreamEnded
from dockpool._core.errors import (
    ContainerNotFoundError,
    DockerError,
    ImageNotFoundError,
    NameConflictError,
)
from dockpool._core.events import ContainerEvent
from dockpool._core.machine import ContainerId
from dockpool._core.spec import ContainerSpec

_END = object()


class FakeEventSource:
    """Events pushed by FakeDocker, delivered through `open()` like the real stream."""

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self.connected = threading.Event()
        self.opens = 0
        self.sinces: list[str | None] = []
        self.drop = False  # while True, events are lost (a stalled or disconnected reader)
        #: while not None, events wait here, in order, until `release` (a slow stream)
        self.held: list[ContainerEvent] | None = None
        self._hold_lock = threading.Lock()
        self._closed = False

    def push(self, event: ContainerEvent) -> None:
        with self._hold_lock:
            if self.drop:
                return
            if self.held is not None:
                self.held.append(event)
                return
            self._queue.put(event)

    def release(self) -> None:
        """Deliver the held events, in order, and stop holding."""
        with self._hold_lock:
            for event in self.held or []:
                self._queue.put(event)
            self.held = None

    def end_stream(self) -> None:
        """Make the current stream end as docker-py's does when the daemon goes away."""
        self.connected.clear()
        self._queue.put(_END)

    def open(self, since: str | None) -> Iterator[ContainerEvent]:
        if self._closed:
            return iter(())
        self.opens += 1
        self.sinces.append(since)
        self.connected.set()
        return self._iterate()

    def _iterate(self) -> Iterator[ContainerEvent]:
        while True:
            item = self._queue.get()
            if item is _END:
                if self._closed:
                    return
                raise StreamEnded("the fake stream ended")
            assert isinstance(item, ContainerEvent)
            yield item

    def close(self) -> None:
        self._closed = True
        self._queue.put(_END)


@attrs.define
class FakeContainer:
    id: ContainerId
    name: str
    labels: dict[str, str]
    has_health: bool
    status: str = "created"
    health: str | None = None
    ports: dict[int, int] = attrs.Factory(dict)
    env: dict[str, str] = attrs.Factory(dict)


class FakeAttach:
    """The attach connection of a presence: closing it is the process going away."""

    def __init__(self, docker: FakeDocker, cid: ContainerId) -> None:
        self.docker = docker
        self.cid = cid

    def close(self) -> None:
        self.docker.stop_presence(self.cid)


class FakeDocker:
    """Just enough of the Docker engine for the pool, with knobs for failures."""

    def __init__(self, events: FakeEventSource, *, auto_healthy: bool = True) -> None:
        self.events = events
        self.subscribers: list[FakeEventSource] = [events]  # one stream per pool "process"
        self.auto_healthy = auto_healthy
        self.containers: dict[ContainerId, FakeContainer] = {}
        self.images = {"img:1": "sha256:" + "1" * 64}
        self.fail_start: str | None = None
        self.fail_create: str | None = None
        self.create_delay = 0.0
        self.calls: list[tuple[str, str]] = []
        self.concurrent_creates = 0
        self.max_concurrent_creates = 0
        self.max_total = 0
        self._ids = itertools.count(1)
        self._ports: Iterator[int] = itertools.count(40000)
        self._lock = threading.RLock()
        self.version = (1, 41)
        #: called with the container's old name at the start of every rename (tests race here)
        self.on_rename: Callable[[str, str], None] = lambda old, new: None
        #: called at the start of every remove, with what is removed (tests race here)
        self.on_remove: Callable[[str], None] = lambda container: None
        #: called after `list` read the engine, before it returns (tests race here)
        self.on_list: Callable[[], None] = lambda: None
        #: called at the start of every member create, with its name (tests race here)
        self.on_create: Callable[[str], None] = lambda name: None
        #: raise this after a create went through (a create whose response is lost)
        self.lose_create_response: DockerError | None = None
        #: the same for the next create of a hand (a marker named ...-hand-...), of a presence
        self.lose_hand_create: DockerError | None = None
        self.lose_presence_create: DockerError | None = None

    @property
    def api_version(self) -> tuple[int, int]:
        return self.version

    # -- knobs for tests --------------------------------------------------------------------

    def emit(self, c: FakeContainer, action: str, **attributes: str) -> None:
        event = ContainerEvent(
            container_id=c.id,
            action=action,
            name=c.name,
            labels=dict(c.labels),
            time_nano=time.time_ns(),
            exit_code=int(attributes["exitCode"]) if "exitCode" in attributes else None,
        )
        for source in self.subscribers:
            source.push(event)

    def kill(self, cid: ContainerId, code: int = 137) -> None:
        with self._lock:
            c = self.containers[cid]
            c.status, c.health = "exited", c.health and "unhealthy"
        self.emit(c, "die", exitCode=str(code))

    def set_health(self, cid: ContainerId, health: str) -> None:
        with self._lock:
            c = self.containers[cid]
            c.health = health
        self.emit(c, f"health_status: {health}")

    def stop_presence(self, cid: ContainerId) -> None:
        with self._lock:
            c = self.containers.get(cid)
            if c is None or c.status != "running":
                return
            c.status = "exited"
        self.emit(c, "die", exitCode="0")

    def by_label(self, key: str, value: str) -> list[FakeContainer]:
        with self._lock:
            return [c for c in self.containers.values() if c.labels.get(key) == value]

    # -- the DockerAdapter interface ----------------------------------------------------------

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass

    def resolve_image(self, ref: str) -> str:
        if ref not in self.images:
            raise ImageNotFoundError(f"resolving image {ref!r}: no such image")
        return self.images[ref]

    def create(
        self, spec: ContainerSpec, name: str, labels: Mapping[str, str], image: str | None = None
    ) -> ContainerId:
        self.on_create(name)
        with self._lock:
            self.calls.append(("create", name))
            self.concurrent_creates += 1
            self.max_concurrent_creates = max(self.max_concurrent_creates, self.concurrent_creates)
        try:
            if self.create_delay:
                time.sleep(self.create_delay)
            with self._lock:
                if self.fail_create:
                    raise DockerError(self.fail_create)
                if any(c.name == name for c in self.containers.values()):
                    raise NameConflictError(f"name {name!r} is already in use")
                cid = ContainerId(f"{next(self._ids):064x}")
                c = FakeContainer(
                    cid, name, {**spec.labels, **labels}, has_health=spec.healthcheck is not None
                )
                c.ports = {p: next(self._ports) for p in spec.ports}
                c.env = {**spec.environment, **{k: f"secret-{cid[-4:]}" for k in spec.random_env}}
                self.containers[cid] = c
                self.max_total = max(self.max_total, len(self.containers))
        finally:
            with self._lock:
                self.concurrent_creates -= 1
        self.emit(c, "create")
        if self.lose_create_response is not None:
            error, self.lose_create_response = self.lose_create_response, None
            raise error
        return cid

    def create_marker(
        self, name: str, labels: Mapping[str, str], image: str, *, stdin: bool
    ) -> ContainerId:
        with self._lock:
            self.calls.append(("create_marker", name))
            if any(c.name == name for c in self.containers.values()):
                raise NameConflictError(f"name {name!r} is already in use")
            cid = ContainerId(f"{next(self._ids):064x}")
            c = FakeContainer(cid, name, dict(labels), has_health=False)
            self.containers[cid] = c
        self.emit(c, "create")
        if self.lose_hand_create is not None and "-hand-" in name:
            error, self.lose_hand_create = self.lose_hand_create, None
            raise error
        if self.lose_presence_create is not None and "-proc-" in name:
            error, self.lose_presence_create = self.lose_presence_create, None
            raise error
        return cid

    def attach_stdin(self, container_id: ContainerId) -> FakeAttach:
        with self._lock:
            self._get(container_id)
        return FakeAttach(self, container_id)

    def _get(self, ref: str) -> FakeContainer:
        c = self.containers.get(ContainerId(ref))
        if c is None:
            c = next((o for o in self.containers.values() if o.name == ref.lstrip("/")), None)
        if c is None:
            raise ContainerNotFoundError(f"no such container: {ref[:40]}")
        return c

    def start(self, cid: ContainerId) -> None:
        with self._lock:
            self.calls.append(("start", cid))
            c = self._get(cid)
            if self.fail_start and c.labels.get("dockpool.role") != "presence":
                raise DockerError(self.fail_start)
            c.status = "running"
            c.health = "starting" if c.has_health else None
        self.emit(c, "start")
        if c.has_health and self.auto_healthy:
            self.set_health(cid, "healthy")

    def rename(self, container: str, new_name: str) -> None:
        self.on_rename(container, new_name)
        with self._lock:
            self.calls.append(("rename", new_name))
            c = self._get(container)
            if any(o.name == new_name for o in self.containers.values()):
                raise NameConflictError(f"name {new_name!r} is already in use")
            c.name = new_name
        self.emit(c, "rename")

    def remove(self, container: str) -> bool:
        self.on_remove(container)
        with self._lock:
            self.calls.append(("remove", container))
            try:
                cid = self._get(container).id
            except ContainerNotFoundError:
                return False
            c = self.containers.pop(cid, None)
        if c is None:
            return False
        if c.status == "running":
            self.emit(c, "die", exitCode="137")
        self.emit(c, "destroy")
        return True

    def inspect(self, container: str) -> ContainerView:
        with self._lock:
            return self._view(self._get(container))

    def list(self, labels: Mapping[str, str]) -> list[ContainerView]:
        with self._lock:
            rows = [
                self._view(c)
                for c in self.containers.values()
                if all(c.labels.get(k) == v or (not v and k in c.labels) for k, v in labels.items())
            ]
        self.on_list()
        return rows

    def _view(self, c: FakeContainer) -> ContainerView:
        return ContainerView(
            c.id, c.name, c.status, c.health, dict(c.labels), dict(c.ports), dict(c.env)
        )


_: type[EngineApi] = FakeDocker  # the fake must keep the adapter's interface


def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.005) -> bool:
    """Wait until `predicate()` is true; the fake engine answers in microseconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
