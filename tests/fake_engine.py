"""What is in the fake engine, and how tests break it: its containers, the event streams it
feeds, and the knobs that make it fail as a real engine would (a container dying, turning
unhealthy, a presence ending, `docker container prune`, a dockerd restart). `FakeDocker`
(tests/fakes.py) adds the engine's API on top."""

from __future__ import annotations

import threading
import time

import attrs

from dockpool._core.events import ContainerEvent
from dockpool._core.machine import ContainerId
from tests.fake_events import FakeEventSource


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
    created: float = attrs.Factory(time.time)


class FakeEngine:
    """The containers and the event streams of an in-memory engine, with the tests' knobs."""

    def __init__(self, events: FakeEventSource) -> None:
        self.events = events
        self.subscribers: list[FakeEventSource] = [events]  # one stream per pool "process"
        self.containers: dict[ContainerId, FakeContainer] = {}
        self._lock = threading.RLock()

    def emit(
        self, c: FakeContainer, action: str, old_name: str | None = None, **attrs_: str
    ) -> None:
        event = ContainerEvent(
            container_id=c.id,
            action=action,
            name=c.name,
            labels=dict(c.labels),
            time_nano=time.time_ns(),
            exit_code=int(attrs_["exitCode"]) if "exitCode" in attrs_ else None,
            old_name=old_name,
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

    def prune(self) -> list[str]:
        """`docker container prune`: remove every container that is not running (hands
        included: they are never started); the names removed."""
        with self._lock:
            gone = [c for c in self.containers.values() if c.status != "running"]
            for c in gone:
                del self.containers[c.id]
        for c in gone:
            self.emit(c, "destroy")
        return [c.name for c in gone]

    def restart_engine(self) -> None:
        """dockerd restarting: it stops every container after closing its API (no event), and
        every event stream ends."""
        with self._lock:
            for c in self.containers.values():
                if c.status == "running":
                    c.status, c.health = "exited", None
        for source in self.subscribers:
            source.end_stream()

    def by_label(self, key: str, value: str) -> list[FakeContainer]:
        with self._lock:
            return [c for c in self.containers.values() if c.labels.get(key) == value]

    def named(self, name: str) -> FakeContainer | None:
        with self._lock:
            return next((c for c in self.containers.values() if c.name == name), None)
