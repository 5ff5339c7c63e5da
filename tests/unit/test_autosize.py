"""Self-sizing wired into the pool (fake engine): misses raise the target at once, within the
caps, every change is a `pool_resized` signal with its reason, and the bounds reload live."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from dockpool import ContainerPool, ContainerSpec, HealthCheck, PoolConfig, signals
from dockpool._runtime.backoff import Backoff
from tests.fakes import FakeDocker, FakeEventSource, wait_for

SPEC = ContainerSpec(image="img:1", healthcheck=HealthCheck(test=["CMD", "true"], interval=30))


@pytest.fixture
def docker() -> FakeDocker:
    return FakeDocker(FakeEventSource())


@pytest.fixture
def resized() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def receive(sender: object, **payload: Any) -> None:
        seen.append(payload)

    signals.pool_resized.connect(receive, weak=False)
    yield seen
    signals.pool_resized.disconnect(receive)


def _pool(docker: FakeDocker, **config: Any) -> ContainerPool:
    cfg = PoolConfig(spec=SPEC, name="fake", **config)
    pool = ContainerPool.from_config(cfg, adapter=docker, event_source=docker.events,
                                     backoff=Backoff(base=0.01, cap=0.05))  # fmt: skip
    return pool.start()


def test_misses_raise_the_target_within_max_pool_size(docker: FakeDocker,
                                                      resized: list[dict[str, Any]]) -> None:  # fmt: skip
    docker.create_delay = 0.05  # refills lag behind the claims: some claims are cold starts
    pool = _pool(docker, size=1, max_pool_size=3, max_containers=16)
    try:
        pool.wait_until_full(timeout=5)
        for n in itertools.count():
            pool.claim(f"s{n}", timeout=5)
            if pool.stats().size == 3 or n > 20:
                break
        assert pool.stats().size == 3  # never above max_pool_size
        assert {r["reason"] for r in resized} == {"cold fallback"}
        assert [r["new"] for r in resized] == [2, 3]
        assert wait_for(lambda: pool.stats().ready == 3)
        # a reload lowers the ceiling: the target follows at once, surplus retired
        pool.apply_config(PoolConfig(spec=SPEC, name="fake", size=1, max_pool_size=2))
        assert resized[-1] == {"old": 3, "new": 2, "reason": "bounds"}
        assert wait_for(lambda: pool.stats().ready == 2)
    finally:
        pool.close(timeout=5)


def test_without_max_pool_size_misses_change_nothing(docker: FakeDocker,
                                                     resized: list[dict[str, Any]]) -> None:  # fmt: skip
    pool = _pool(docker, size=0)
    try:
        for n in range(3):
            assert not pool.claim(f"s{n}", timeout=5).from_pool
        assert pool.stats().size == 0 and resized == []
        pool.resize(2)
        assert resized == [{"old": 0, "new": 2, "reason": "resize"}]
    finally:
        pool.close(timeout=5)


def test_max_pool_size_below_the_floor_is_one_clear_error() -> None:
    with pytest.raises(Exception, match=r"max_pool_size \(1\) must be >= container_pool_size"):
        attrs.evolve(PoolConfig(spec=SPEC, size=1), size=2, max_pool_size=1)
