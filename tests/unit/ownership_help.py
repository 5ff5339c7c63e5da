"""The fake engine and pools of `test_ownership*`: several pools of one name on one fake
engine, each with its own event stream (its "process")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dockpool import Backoff, ContainerPool, Timeouts
from dockpool._core.spec import POOL_LABEL, ROLE_LABEL
from dockpool._runtime.state import Lifecycle
from tests.fakes import FakeContainer, FakeDocker, FakeEventSource
from tests.unit.test_pool_logic import SPEC

#: a process seen gone counts as gone after 0.3 s here (the fake engine answers in microseconds)
FAST = Timeouts(peer_grace=0.3, rejoin_wait=2.0, resolve=0.5)


@pytest.fixture
def docker() -> FakeDocker:
    return FakeDocker(FakeEventSource())


@pytest.fixture
def make_pool(docker: FakeDocker) -> Iterator[Any]:
    """Pools of one name on one fake engine, each with its own event stream (its "process")."""
    pools: list[ContainerPool] = []

    def make(size: int = 2, **options: Any) -> ContainerPool:
        source = docker.events if not pools else FakeEventSource()
        if source not in docker.subscribers:
            docker.subscribers.append(source)
        options.setdefault("backoff", Backoff(base=0.01, cap=0.05))
        options.setdefault("timeouts", FAST)
        pool = ContainerPool(
            SPEC, size=size, name="fake", adapter=docker, event_source=source, **options
        )
        pools.append(pool)
        return pool.start()

    make.pools = pools  # type: ignore[attr-defined]  # (sigkill takes a pool out)
    yield make
    for pool in pools:
        pool.close(timeout=5)
    left = [t.name for t in threading.enumerate() if t.name.startswith("dockpool-")]
    assert left == [], f"threads left behind: {left}"


def sigkill(make_pool: Any, docker: FakeDocker, pool: ContainerPool) -> None:
    """The fake's SIGKILL of a pool's process: its threads stop where they are, it hears no
    more events, nothing of it is cleaned up, and its presence dies (the attach connection
    closes with the process)."""
    rt = pool._rt
    assert rt is not None
    make_pool.pools.remove(pool)
    rt.state.lifecycle = Lifecycle.CLOSED  # (what is still running does nothing more)
    for source in docker.subscribers[:]:
        if source is rt.listener.source:
            docker.subscribers.remove(source)
    rt.listener.stop(timeout=2)
    rt.reconciler.stop(timeout=2)
    rt.executor.prober.stop(timeout=2)
    rt.executor.creates.stop(2)
    rt.executor.removes.stop(2)
    presence = rt.peers.presence_id
    assert presence is not None
    docker.stop_presence(presence)


def members(docker: FakeDocker) -> list[FakeContainer]:
    return [
        c
        for c in docker.by_label(POOL_LABEL, "fake")
        if c.name.startswith("dockpool-fake-") and c.labels.get(ROLE_LABEL) == "member"
    ]


def named(docker: FakeDocker, name: str) -> FakeContainer | None:
    return next((c for c in docker.containers.values() if c.name == name), None)
