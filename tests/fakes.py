"""An in-memory Docker engine, for fast tests of the pool's logic and for forcing races.

`FakeDocker` has the `EngineApi` interface and emits the events a real engine would into its
`FakeEventSource`s (one per pool "process"); tests drop events (a lossy stream), end the
stream (a disconnect), make calls fail, and break containers (die, unhealthy, remove, prune)
as a real engine would report them. It models dockerd's quirks, not an idealised engine:

- a rename resolves the old name (or id) to a container *before* it locks that container, so
  two renames of one container by its old name to different names can both succeed (the
  `on_resolved` hook sits between the two steps); a rename to the name a container already
  has is refused (`AlreadyNamedError`, dockerd's 400), and its event carries the old name;
- faults come from a `tests.faults.FaultPlan` (`faults`), with the same vocabulary as the
  socket proxy in front of a real engine: `refuse` (nothing happens), `lose` (it happens, the
  answer is lost), `delay`; a call's target reads like the request path dockerd would see
  (`/containers/<name or id>/rename?name=<new>`), so a `match` works on both.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from dockpool._adapters.api import ContainerView, EngineApi
from dockpool._core.errors import (
    AlreadyNamedError,
    ContainerNotFoundError,
    DaemonUnavailableError,
    DockerError,
    ImageNotFoundError,
    NameConflictError,
)
from dockpool._core.machine import ContainerId
from dockpool._core.spec import ContainerSpec
from tests.fake_engine import FakeContainer, FakeEngine
from tests.fake_events import FakeEventSource
from tests.faults import FaultPlan

__all__ = ["FakeAttach", "FakeContainer", "FakeDocker", "FakeEventSource", "wait_for"]

T = TypeVar("T")


class FakeAttach:
    """The attach connection of a presence: closing it is the process going away."""

    def __init__(self, docker: FakeDocker, cid: ContainerId) -> None:
        self.docker = docker
        self.cid = cid

    def close(self) -> None:
        self.docker.stop_presence(self.cid)


class FakeDocker(FakeEngine):
    """Just enough of the Docker engine for the pool, with knobs for failures."""

    def __init__(self, events: FakeEventSource, *, auto_healthy: bool = True) -> None:
        super().__init__(events)
        self.auto_healthy = auto_healthy
        self.images = {"img:1": "sha256:" + "1" * 64}
        self.faults = FaultPlan()
        self.fail_start: str | None = None
        self.fail_create: str | None = None
        self.create_delay = 0.0
        self.calls: list[tuple[str, str]] = []
        self.concurrent_creates = 0
        self.max_concurrent_creates = 0
        self.max_total = 0
        self._ids = itertools.count(1)
        self._ports: Iterator[int] = itertools.count(40000)
        self.version = (1, 41)
        #: called with the container's old name at the start of every rename (tests race here)
        self.on_rename: Callable[[str, str], None] = lambda old, new: None
        #: called once a rename resolved its container, before it locks it (dockerd's window)
        self.on_resolved: Callable[[FakeContainer, str], None] = lambda c, new: None
        #: called at the start of every remove, with what is removed (tests race here)
        self.on_remove: Callable[[str], None] = lambda container: None
        #: called after `list` read the engine, before it returns (tests race here)
        self.on_list: Callable[[], None] = lambda: None
        #: called at the start of every member create, with its name (tests race here)
        self.on_create: Callable[[str], None] = lambda name: None

    @property
    def api_version(self) -> tuple[int, int]:
        return self.version

    def _call(self, endpoint: str, target: str, act: Callable[[], T]) -> T:
        """Run one engine call under the fault plan."""
        fault = self.faults.take(endpoint, target)
        if fault is not None and fault.action == "refuse":
            raise DaemonUnavailableError(f"{endpoint} {target}: connection refused (fault)")
        if fault is not None and fault.action == "delay":
            time.sleep(fault.seconds)
        result = act()
        if fault is not None and fault.action == "lose":
            raise DaemonUnavailableError(f"{endpoint} {target}: connection reset (fault)")
        return result

    # -- the EngineApi interface --------------------------------------------------------------

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

        def act() -> ContainerId:
            c = self._new(name, {**spec.labels, **labels}, spec.healthcheck is not None, spec)
            return c.id

        return self._call("create", f"/containers/create?name={name}", act)

    def _new(
        self, name: str, labels: dict[str, str], health: bool, spec: ContainerSpec | None = None
    ) -> FakeContainer:
        member = spec is not None  # (bookkeeping containers are not counted as creates)
        with self._lock:
            self.calls.append(("create" if member else "create_marker", name))
            self.concurrent_creates += member
            self.max_concurrent_creates = max(self.max_concurrent_creates, self.concurrent_creates)
        try:
            if spec is not None and self.create_delay:
                time.sleep(self.create_delay)
            with self._lock:
                if spec is not None and self.fail_create:
                    raise DockerError(self.fail_create)
                if any(c.name == name for c in self.containers.values()):
                    raise NameConflictError(f"name {name!r} is already in use")
                cid = ContainerId(f"{next(self._ids):064x}")
                c = FakeContainer(cid, name, labels, has_health=health)
                if spec is not None:
                    c.ports = {p: next(self._ports) for p in spec.ports}
                    secret = {k: f"secret-{cid[-4:]}" for k in spec.random_env}
                    c.env = {**spec.environment, **secret}
                self.containers[cid] = c
                self.max_total = max(self.max_total, len(self.containers))
        finally:
            with self._lock:
                self.concurrent_creates -= member
        self.emit(c, "create")
        return c

    def create_marker(
        self, name: str, labels: Mapping[str, str], image: str, *, stdin: bool
    ) -> ContainerId:
        target = f"/containers/create?name={name}"
        return self._call("create", target, lambda: self._new(name, dict(labels), False).id)

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
        self._call("start", f"/containers/{cid}/start", lambda: self._start(cid))

    def _start(self, cid: ContainerId) -> None:
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
        target = f"/containers/{container}/rename?name={new_name}"
        self._call("rename", target, lambda: self._rename(container, new_name))

    def _rename(self, container: str, new_name: str) -> None:
        with self._lock:  # dockerd resolves the name (or id) first...
            self.calls.append(("rename", new_name))
            c = self._get(container)
        self.on_resolved(c, new_name)
        with self._lock:  # ...then locks that container, and renames whatever it is named now
            if c.id not in self.containers:
                raise ContainerNotFoundError(f"no such container: {container[:40]}")
            old = c.name
            if old == new_name:
                raise AlreadyNamedError(
                    "Renaming a container with the same name as its current name"
                )
            if any(o.name == new_name for o in self.containers.values()):
                raise NameConflictError(f"name {new_name!r} is already in use")
            c.name = new_name
        self.emit(c, "rename", old_name=old)

    def remove(self, container: str) -> bool:
        self.on_remove(container)
        return self._call("remove", f"/containers/{container}", lambda: self._remove(container))

    def _remove(self, container: str) -> bool:
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
        def act() -> ContainerView:
            with self._lock:
                return self._view(self._get(container))

        return self._call("inspect", f"/containers/{container}/json", act)

    def list(self, labels: Mapping[str, str]) -> list[ContainerView]:
        def act() -> list[ContainerView]:
            with self._lock:
                rows = [
                    self._view(c)
                    for c in self.containers.values()
                    if all(
                        c.labels.get(k) == v or (not v and k in c.labels) for k, v in labels.items()
                    )
                ]
            self.on_list()
            return rows

        return self._call("list", "/containers/json", act)

    def _view(self, c: FakeContainer) -> ContainerView:
        return ContainerView(
            c.id, c.name, c.status, c.health, dict(c.labels), dict(c.ports), dict(c.env), c.created
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
