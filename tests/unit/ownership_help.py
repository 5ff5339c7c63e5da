"""The fake engine and pools of `test_ownership*`: several pools of one name on one fake
engine, each with its own event stream (its "process")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dockpool import Backoff, ContainerPool
from dockpool._core.spec import POOL_LABEL, ROLE_LABEL
from tests.fakes import FakeContainer, FakeDocker, FakeEventSource
from tests.unit.test_pool_logic import SPEC


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
        pool = ContainerPool(
            SPEC, size=size, name="fake", adapter=docker, event_source=source, **options
        )
        pools.append(pool)
        return pool.start()

    yield make
    for pool in pools:
        pool.close(timeout=5)
    left = [t.name for t in threading.enumerate() if t.name.startswith("dockpool-")]
    assert left == [], f"threads left behind: {left}"


def members(docker: FakeDocker) -> list[FakeContainer]:
    return [
        c
        for c in docker.by_label(POOL_LABEL, "fake")
        if c.name.startswith("dockpool-fake-") and c.labels.get(ROLE_LABEL) == "member"
    ]


def named(docker: FakeDocker, name: str) -> FakeContainer | None:
    return next((c for c in docker.containers.values() if c.name == name), None)
