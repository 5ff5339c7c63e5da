"""The pool's logic against an in-memory engine and a scripted event stream (no Docker needed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dockpool import (
    Backoff,
    ClaimError,
    ContainerPool,
    ContainerSpec,
    HealthCheck,
    ImageNotFoundError,
    NameInUseError,
    signals,
)
from dockpool._core.spec import POOL_LABEL, ROLE_LABEL, SPEC_LABEL
from tests.fakes import FakeDocker, FakeEventSource, wait_for

SPEC = ContainerSpec(
    image="img:1",
    ports=[8000],
    healthcheck=HealthCheck(test=["CMD", "true"], interval=0.2, timeout=1, retries=1),
)


@pytest.fixture
def source() -> FakeEventSource:
    return FakeEventSource()


@pytest.fixture
def docker(source: FakeEventSource) -> FakeDocker:
    return FakeDocker(source)


@pytest.fixture
def make_pool(docker: FakeDocker, source: FakeEventSource) -> Iterator[Any]:
    pools: list[ContainerPool] = []

    def make(size: int = 2, **options: Any) -> ContainerPool:
        options.setdefault("backoff", Backoff(base=0.01, cap=0.05))
        pool = ContainerPool(
            options.pop("spec", SPEC),
            size=size,
            name="fake",
            adapter=docker,
            event_source=source,
            **options,
        )
        pools.append(pool)
        return pool.start()

    yield make
    for pool in pools:
        pool.close(timeout=5)
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("dockpool-")]
    assert leftover == [], f"threads left behind: {leftover}"


def ready(pool: ContainerPool, n: int) -> bool:
    return pool.stats().ready == n


def members(docker: FakeDocker) -> list[Any]:
    """Unclaimed members on the fake engine (not the pool's presence and hand containers)."""
    return [
        c
        for c in docker.by_label(POOL_LABEL, "fake")
        if c.name.startswith("dockpool-fake-") and c.labels.get(ROLE_LABEL, "member") == "member"
    ]


class Recorder:
    """Keeps the payloads a signal was sent with."""

    def __init__(self, signal: Any) -> None:
        self.signal = signal
        self.calls: list[dict[str, Any]] = []
        signal.connect(self)

    def __call__(self, sender: Any, **payload: Any) -> None:
        self.calls.append(payload)

    def close(self) -> None:
        self.signal.disconnect(self)


def test_fills_to_size_with_labelled_members(make_pool: Any, docker: FakeDocker) -> None:
    """A started pool creates `size` members carrying the pool and spec labels and prefix names."""
    pool = make_pool(3)
    pool.wait_until_full(timeout=5)
    found = members(docker)
    assert len(found) == 3
    assert {c.labels[SPEC_LABEL] for c in found} == {pool.fingerprint}
    assert pool.fingerprint == SPEC.fingerprint(docker.images["img:1"])


def test_claim_renames_and_refills(make_pool: Any, docker: FakeDocker) -> None:
    """A claim renames a ready member to the session's name, and the pool refills at once."""
    pool = make_pool(2)
    pool.wait_until_full(timeout=5)
    lease = pool.claim("session-1")
    assert lease.from_pool and lease.name == "session-1"
    assert docker.containers[lease.container_id].name == "session-1"
    assert lease.ports == {8000: docker.containers[lease.container_id].ports[8000]}
    pool.wait_until_full(timeout=5)
    assert len(members(docker)) == 2
    assert pool.stats().hits == 1


def test_cold_start_when_empty(make_pool: Any, docker: FakeDocker) -> None:
    """With size 0 a claim creates, starts and waits for its own container."""
    pool = make_pool(0)
    lease = pool.claim("cold-1")
    assert not lease.from_pool
    assert docker.containers[lease.container_id].health == "healthy"
    assert pool.stats().misses == 1 and members(docker) == []


def test_name_in_use_touches_nothing(make_pool: Any, docker: FakeDocker) -> None:
    """Claiming a taken name fails clearly and the member goes back to the pool."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    taken = pool.claim("taken")
    with pytest.raises(NameInUseError, match="taken"):
        pool.claim("taken")
    assert docker.containers[taken.container_id].name == "taken"
    pool.wait_until_full(timeout=5)
    assert pool.stats().ready == 1


def test_died_member_is_replaced(make_pool: Any, docker: FakeDocker) -> None:
    """A `die` event removes the member and creates a replacement."""
    lost = Recorder(signals.member_lost)
    try:
        pool = make_pool(2)
        pool.wait_until_full(timeout=5)
        victim = members(docker)[0].id
        docker.kill(victim, code=3)
        assert wait_for(lambda: victim not in docker.containers and ready(pool, 2))
        assert pool.stats().replaced == 1
        assert lost.calls[0]["reason"] == "died (exit code 3)"
    finally:
        lost.close()


def test_unhealthy_member_is_replaced(make_pool: Any, docker: FakeDocker) -> None:
    """A `health_status: unhealthy` event replaces the member."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    victim = members(docker)[0].id
    docker.set_health(victim, "unhealthy")
    assert wait_for(lambda: victim not in docker.containers and ready(pool, 1))


def test_lost_event_is_caught_by_resync_after_reconnect(
    make_pool: Any, docker: FakeDocker, source: FakeEventSource
) -> None:
    """A death whose event was lost is found by the resync that follows a reconnect."""
    pool = make_pool(2)
    pool.wait_until_full(timeout=5)
    victim = members(docker)[0].id
    source.drop = True
    docker.kill(victim)  # the die event is lost
    source.drop = False
    source.end_stream()  # ... and the stream ends, as when dockerd restarts
    assert wait_for(lambda: victim not in docker.containers and ready(pool, 2))
    assert source.opens >= 2
    assert source.sinces[-1] is not None and "." in source.sinces[-1]
    assert pool.stats().stream_reconnects >= 1


def test_failing_starts_back_off_and_degrade(make_pool: Any, docker: FakeDocker) -> None:
    """Starts that keep failing back off, signal pool_degraded, and recover when fixed."""
    degraded = Recorder(signals.pool_degraded)
    recovered = Recorder(signals.pool_recovered)
    try:
        docker.fail_start = "port is already allocated"
        pool = make_pool(1, backoff=Backoff(base=0.02, cap=0.1))
        assert wait_for(lambda: pool.stats().failed_starts >= 4)
        assert degraded.calls and degraded.calls[-1]["reason"].endswith("port is already allocated")
        starts = sum(1 for call in docker.calls if call[0] == "start")
        assert starts < 40, "back-off must bound the retries"
        docker.fail_start = None
        pool.wait_until_full(timeout=5)
        assert recovered.calls and not pool.stats().degraded
        assert members(docker) and all(c.status == "running" for c in members(docker))
    finally:
        degraded.close()
        recovered.close()


def test_cold_start_failure_is_a_clear_claim_error(make_pool: Any, docker: FakeDocker) -> None:
    """When the pool is empty and the cold start fails too, the claim says why."""
    pool = make_pool(0)
    docker.fail_start = "no space left on device"
    with pytest.raises(ClaimError, match="no space left on device"):
        pool.claim("s1")
    assert wait_for(lambda: members(docker) == [])  # the failed cold container was removed
    assert all(c.name != "s1" for c in docker.containers.values())


def test_missing_image_fails_start(docker: FakeDocker, source: FakeEventSource) -> None:
    """A pool whose image is missing refuses to start with a clear error."""
    pool = ContainerPool(ContainerSpec(image="nope:1"), size=1, adapter=docker, event_source=source)
    with pytest.raises(ImageNotFoundError, match="nope:1"):
        pool.start()
    assert docker.containers == {}


def test_create_concurrency_and_cap(make_pool: Any, docker: FakeDocker) -> None:
    """Creates run at most `create_concurrency` at once; totals stay within max_containers."""
    docker.create_delay = 0.02
    pool = make_pool(6, create_concurrency=2, max_containers=6)
    pool.wait_until_full(timeout=10)
    for i in range(4):
        pool.claim(f"s{i}")
    pool.wait_until_full(timeout=10)
    assert docker.max_concurrent_creates <= 2
    assert len(members(docker)) == 6


def test_concurrent_claims_never_share(make_pool: Any, docker: FakeDocker) -> None:
    """16 threads claiming at once get 16 distinct containers."""
    pool = make_pool(8, max_containers=24)
    pool.wait_until_full(timeout=5)
    barrier = threading.Barrier(16)
    leases: list[Any] = []

    def claim(i: int) -> None:
        barrier.wait()
        leases.append(pool.claim(f"c{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len({lease.container_id for lease in leases}) == 16
    assert sum(lease.from_pool for lease in leases) >= 8  # refills may serve more


def test_shrink_and_grow(make_pool: Any, docker: FakeDocker) -> None:
    """resize() retires the surplus and creates what is missing."""
    pool = make_pool(3)
    pool.wait_until_full(timeout=5)
    pool.resize(1)
    assert wait_for(lambda: len(members(docker)) == 1)
    pool.resize(4)
    pool.wait_until_full(timeout=5)
    assert len(members(docker)) == 4


def test_close_keeps_claimed(make_pool: Any, docker: FakeDocker) -> None:
    """close() removes unclaimed members; a claimed container stays."""
    pool = make_pool(2)
    pool.wait_until_full(timeout=5)
    lease = pool.claim("keep-me")
    pool.close(timeout=5)
    assert list(docker.containers) == [lease.container_id]


def test_adopts_and_removes_an_earlier_runs_members(
    docker: FakeDocker, source: FakeEventSource
) -> None:
    """At start, healthy same-spec members are adopted; stale ones removed; claimed untouched."""
    fingerprint = SPEC.fingerprint(docker.images["img:1"])
    good = docker.create(SPEC, "dockpool-fake-aaa", {POOL_LABEL: "fake", SPEC_LABEL: fingerprint})
    docker.start(good)
    stale = docker.create(SPEC, "dockpool-fake-bbb", {POOL_LABEL: "fake", SPEC_LABEL: "old"})
    docker.start(stale)
    claimed = docker.create(SPEC, "session-x", {POOL_LABEL: "fake", SPEC_LABEL: "old"})
    foreign = docker.create(SPEC, "dockpool-fake-ccc", {})
    pool = ContainerPool(SPEC, size=2, name="fake", adapter=docker, event_source=source)
    try:
        pool.start()
        pool.wait_until_full(timeout=5)
        assert wait_for(lambda: stale not in docker.containers)  # removed by the upkeep
        assert good in docker.containers
        assert claimed in docker.containers and foreign in docker.containers
        assert sum(1 for c in docker.calls if c[0] == "create") == 5  # 4 by hand + 1 new
    finally:
        pool.close(timeout=5)
    assert set(docker.containers) == {claimed, foreign}


def test_resync_interval_zero_means_no_periodic_resync(make_pool: Any, docker: FakeDocker) -> None:
    """resync_interval = 0 turns the periodic resync off; the pool still fills and serves."""
    pool = make_pool(1, resync_interval=0)
    pool.wait_until_full(timeout=5)
    assert pool.claim("s1").from_pool
    pool.wait_until_full(timeout=5)
    assert pool.stats().resyncs == 1  # only the one after connecting


def test_try_claim_never_cold_starts(make_pool: Any, docker: FakeDocker) -> None:
    """try_claim serves from the pool, and returns None instead of cold-starting."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    first = pool.try_claim("s1")
    assert first is not None and first.from_pool
    pool.resize(0)
    assert pool.try_claim("s2") is None
    assert not any(c.name == "s2" for c in docker.containers.values())
