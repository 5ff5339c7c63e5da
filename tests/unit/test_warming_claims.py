"""A claim that finds no ready member waits for one that is warming (it is further along than a
cold start would be), one claim per warming member; the others cold-start at once."""

from __future__ import annotations

import threading
from typing import Any

from dockpool import ContainerPool, Lease
from dockpool._core.spec import ORIGIN_LABEL
from tests.fakes import FakeDocker, FakeEventSource, wait_for
from tests.unit.ownership_help import FAST, members
from tests.unit.test_pool_logic import SPEC


def _pool(docker: FakeDocker, size: int) -> ContainerPool:
    return ContainerPool(SPEC, size=size, name="fake", adapter=docker,
                         event_source=docker.events, timeouts=FAST).start()  # fmt: skip


def _claim_in_thread(pool: ContainerPool, name: str, out: list[Lease]) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.append(pool.claim(name, timeout=10)))
    thread.start()
    return thread


def test_a_claim_waits_for_the_warming_member_instead_of_a_cold_start() -> None:
    """Pool of 1, its member still warming: the claim gets that member once it is healthy,
    and no cold start is made meanwhile."""
    docker = FakeDocker(FakeEventSource(), auto_healthy=False)
    pool = _pool(docker, 1)
    try:
        assert wait_for(lambda: [c.health for c in members(docker)] == ["starting"])
        (warming,) = members(docker)
        leases: list[Lease] = []
        thread = _claim_in_thread(pool, "s1", leases)
        assert not wait_for(lambda: bool(leases), timeout=0.3)
        assert [c.id for c in members(docker)] == [warming.id]  # no cold start beside it
        docker.set_health(warming.id, "healthy")
        thread.join(5)
        [lease] = leases
        assert lease.container_id == warming.id and lease.from_pool
    finally:
        pool.close(timeout=5)


def test_one_claim_per_warming_member_the_others_cold_start() -> None:
    """Two claims, one warming member: one waits for it, the other cold-starts at once."""
    docker = FakeDocker(FakeEventSource(), auto_healthy=False)
    pool = _pool(docker, 1)
    try:
        assert wait_for(lambda: [c.health for c in members(docker)] == ["starting"])
        (warming,) = members(docker)
        leases: list[Lease] = []
        docker.faults.arm("start", "delay", seconds=0.3)  # the cold start's (as under load)
        threads = [_claim_in_thread(pool, f"s{i}", leases) for i in range(2)]

        def cold() -> list[Any]:
            return [c for c in members(docker) if c.labels.get(ORIGIN_LABEL) == "cold"]

        # the second claim did not wait (and its container started: a health status set
        # before the start would be reset to "starting" by it, and never turn healthy)
        assert wait_for(lambda: [c.status for c in cold()] == ["running"])
        for c in [warming, *cold()]:
            docker.set_health(c.id, "healthy")
        for t in threads:
            t.join(5)
        assert sorted(x.from_pool for x in leases) == [False, True]
        assert next(x for x in leases if x.from_pool).container_id == warming.id
        assert len({x.container_id for x in leases}) == 2
    finally:
        pool.close(timeout=5)
