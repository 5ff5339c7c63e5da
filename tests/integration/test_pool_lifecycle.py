"""`ContainerPool` on the real engine: warming, claims (pooled, cold, async), shutdown, errors.

Claims about the engine are checked on the engine itself (docker-py, by label); timings are
bounded generously, never tightly (this runs on a loaded 2-core machine).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import docker.errors
import pytest

from dockpool import (
    ClaimError,
    DaemonUnavailableError,
    ImageNotFoundError,
    Lease,
    NameInUseError,
    PoolTimeoutError,
)
from tests.engine_help import RUN_LABEL_KEY, container_health, http_status, wait_until
from tests.pool_help import POOL_PORT, PoolFactory, SignalRecorder, dockpool_threads

pytestmark = pytest.mark.docker

FILL = 60.0  # generous deadline for warming a few members


def session_name() -> str:
    return f"sess-{uuid.uuid4().hex[:10]}"


def assert_reachable(lease: Lease) -> None:
    port = lease.ports[POOL_PORT]
    wait_until(lambda: http_status(port) == 200, 15, f"GET /ready on {lease.name} (:{port})")


def assert_healthy_members(pools: PoolFactory, n: int) -> dict[str, Any]:
    """Wait until the engine holds exactly `n` unclaimed members, all healthy; return them."""

    def check() -> dict[str, Any] | None:
        members = pools.members()
        healthy = pools.members(healthy=True)
        return members if len(members) == n == len(healthy) else None

    return wait_until(check, 30, f"{n} healthy members on the engine")  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- warm, claim, refill
def test_warms_to_size(pool_factory: PoolFactory) -> None:
    """A pool of size 3 warms to exactly 3 healthy, labelled, member-named containers."""
    pool = pool_factory(3)
    pool.wait_until_full(timeout=FILL)

    on_engine = pool_factory.containers()
    assert len(on_engine) == 3, [c.name for c in on_engine]
    for c in on_engine:
        assert c.name.startswith(f"dockpool-{pool.name}-"), c.name
        assert c.labels["dockpool.pool"] == pool.name
        assert c.labels["dockpool.spec"] == pool.fingerprint
        assert c.labels[RUN_LABEL_KEY] == pool_factory.run_id
        assert container_health(c) == "healthy", c.attrs["State"]
    stats = pool.stats()
    assert (stats.size, stats.ready, stats.warming) == (3, 3, 0)


def test_claim_from_pool_then_refill(pool_factory: PoolFactory, docker_client: Any) -> None:
    """A claim renames a ready member to the session's name, and the pool refills to size."""
    pool = pool_factory(3)
    pool.wait_until_full(timeout=FILL)
    before = set(pool_factory.members())
    name = session_name()

    lease = pool.claim(name)

    assert lease.from_pool and lease.name == name
    assert lease.container_id in before
    assert lease.spec_fingerprint == pool.fingerprint
    claimed = docker_client.containers.get(name)
    assert claimed.id == lease.container_id
    started_at = claimed.attrs["State"]["StartedAt"]
    assert_reachable(lease)

    pool.wait_until_full(timeout=FILL)
    members = assert_healthy_members(pool_factory, 3)
    assert lease.container_id not in members
    assert len(set(members) - before) == 1  # one new member replaced the claimed one
    stats = pool.stats()
    assert (stats.ready, stats.hits, stats.misses, stats.replaced) == (3, 1, 0, 0)
    claimed.reload()  # untouched: same name, same run, still serving
    assert claimed.name == name and claimed.status == "running"
    assert claimed.attrs["State"]["StartedAt"] == started_at
    assert http_status(lease.ports[POOL_PORT]) == 200


def test_cold_start_when_pool_is_empty(pool_factory: PoolFactory, docker_client: Any) -> None:
    """With size 0 every claim is a cold start that still hands over a ready container."""
    pool = pool_factory(0)
    lease = pool.claim(session_name())

    assert not lease.from_pool
    assert docker_client.containers.get(lease.name).id == lease.container_id
    assert container_health(docker_client.containers.get(lease.name)) == "healthy"
    assert_reachable(lease)
    stats = pool.stats()
    assert (stats.hits, stats.misses) == (0, 1)
    assert pool_factory.members() == {}


def test_drained_pool_falls_back_to_cold_start(pool_factory: PoolFactory) -> None:
    """Two quick claims on a pool of 1 with a slow-to-ready image: one pooled, one cold."""
    spec = pool_factory.spec(
        env={"STUB_READY_DELAY": "1.5"}, healthcheck=pool_factory.healthcheck(start_period=30)
    )
    pool = pool_factory(1, spec=spec)
    pool.wait_until_full(timeout=FILL)

    first = pool.claim(session_name())
    second = pool.claim(session_name())  # the refill needs >= 1.5 s to be ready: not yet

    assert first.from_pool and not second.from_pool
    assert first.container_id != second.container_id
    for lease in (first, second):
        assert_reachable(lease)
    stats = pool.stats()
    assert (stats.hits, stats.misses) == (1, 1)
    pool.wait_until_full(timeout=FILL)


# --------------------------------------------------------------------------- shutdown
def test_close_removes_unclaimed_and_keeps_claimed(
    pool_factory: PoolFactory, docker_client: Any
) -> None:
    """close() removes every unclaimed member, keeps claimed ones running, ends its threads."""
    pool = pool_factory(3)
    pool.wait_until_full(timeout=FILL)
    lease = pool.claim(session_name())
    assert len(pool_factory.containers()) >= 3

    t0 = time.monotonic()
    pool.close(timeout=30)
    took = time.monotonic() - t0

    assert took < 30, took
    assert not pool.started
    remaining = pool_factory.containers()
    assert [c.id for c in remaining] == [lease.container_id]
    claimed = docker_client.containers.get(lease.name)
    assert claimed.status == "running"
    assert http_status(lease.ports[POOL_PORT]) == 200
    assert dockpool_threads() == []
    pool.close()  # idempotent


def test_context_manager_closes(pool_factory: PoolFactory) -> None:
    """Leaving the `with` block closes the pool and removes its members."""
    with pool_factory(2, start=False) as pool:
        pool.wait_until_full(timeout=FILL)
        assert len(pool_factory.members()) == 2
    assert pool_factory.containers() == []
    assert dockpool_threads() == []


# --------------------------------------------------------------------------- errors
def test_missing_image(pool_factory: PoolFactory) -> None:
    """start() with an image the engine lacks raises ImageNotFoundError naming it; no container."""
    image = f"dockpool-missing-{uuid.uuid4().hex[:8]}:latest"
    pool = pool_factory(2, spec=pool_factory.spec(image=image), start=False)

    with pytest.raises(ImageNotFoundError) as info:
        pool.start()

    assert image in str(info.value)
    assert not pool.started
    assert pool_factory.containers() == []
    assert dockpool_threads() == []


def test_daemon_unreachable(pool_factory: PoolFactory) -> None:
    """start() against a socket nobody serves raises DaemonUnavailableError."""
    pool = pool_factory(1, start=False, docker_url="unix:///nonexistent.sock")

    with pytest.raises(DaemonUnavailableError):
        pool.start()

    assert not pool.started
    assert dockpool_threads() == []


def test_claim_of_a_taken_name(pool_factory: PoolFactory, docker_client: Any) -> None:
    """A claim of a name another container holds raises NameInUseError and touches nothing."""
    pool = pool_factory(1)
    pool.wait_until_full(timeout=FILL)
    [(member_id, member)] = pool_factory.members().items()
    other = docker_client.containers.run(
        pool_factory.image,
        name=session_name(),
        labels={RUN_LABEL_KEY: pool_factory.run_id},
        detach=True,
    )
    other.reload()
    other_started = other.attrs["State"]["StartedAt"]

    with pytest.raises(NameInUseError) as info:
        pool.claim(other.name)

    assert other.name in str(info.value)
    stats = pool.stats()
    assert (stats.ready, stats.hits, stats.misses, stats.replaced) == (1, 0, 0, 0)
    assert set(pool_factory.members()) == {member_id}
    member.reload()
    assert member.name.startswith(f"dockpool-{pool.name}-") and member.status == "running"
    other.reload()
    assert other.status == "running"
    assert other.attrs["State"]["StartedAt"] == other_started
    assert docker_client.containers.get(other.name).id == other.id

    # The member is still claimable, by a free name.
    lease = pool.claim(session_name())
    assert lease.from_pool and lease.container_id == member_id


def test_cold_claim_of_a_taken_name(pool_factory: PoolFactory, docker_client: Any) -> None:
    """A cold start onto a taken name raises NameInUseError and creates no container."""
    pool = pool_factory(0)
    other = docker_client.containers.create(
        pool_factory.image, name=session_name(), labels={RUN_LABEL_KEY: pool_factory.run_id}
    )

    with pytest.raises(NameInUseError):
        pool.claim(other.name)

    assert pool_factory.containers() == []
    assert docker_client.containers.get(other.name).id == other.id
    assert pool.stats().misses == 0


def test_invalid_session_name(pool_factory: PoolFactory) -> None:
    """A claim with a name Docker would refuse is a ClaimError before anything is touched."""
    pool = pool_factory(0)
    with pytest.raises(ClaimError):
        pool.claim("not a name!")
    assert pool_factory.containers() == []


def test_wait_until_full_times_out(pool_factory: PoolFactory) -> None:
    """wait_until_full raises PoolTimeoutError when members cannot become ready in time."""
    spec = pool_factory.spec(
        env={"STUB_READY_DELAY": "60"}, healthcheck=pool_factory.healthcheck(start_period=120)
    )
    pool = pool_factory(1, spec=spec)
    with pytest.raises(PoolTimeoutError, match="0 of 1 members ready"):
        pool.wait_until_full(timeout=1.5)


# --------------------------------------------------------------------------- asyncio
def test_aclaim_from_asyncio(pool_factory: PoolFactory) -> None:
    """aclaim works inside asyncio.run, concurrently, without blocking the event loop."""
    pool = pool_factory(2)
    pool.wait_until_full(timeout=FILL)
    names = [session_name(), session_name()]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> list[Lease]:
        tick = asyncio.create_task(ticker())
        try:
            return list(await asyncio.gather(*(pool.aclaim(n) for n in names)))
        finally:
            tick.cancel()

    leases = asyncio.run(main())

    assert [lease.name for lease in leases] == names
    assert all(lease.from_pool for lease in leases)
    assert len({lease.container_id for lease in leases}) == 2
    assert ticks >= 1  # the loop kept running while the claims were served
    for lease in leases:
        assert_reachable(lease)


# --------------------------------------------------------------------------- max age
def test_max_age_replaces_member(
    pool_factory: PoolFactory, signal_recorder: SignalRecorder
) -> None:
    """With max_age=2 the only member is retired and replaced after about 2 s."""
    pool = pool_factory(1, max_age=2)
    signal_recorder.listen("member_retiring", sender=pool)
    pool.wait_until_full(timeout=FILL)
    [first] = pool_factory.members()

    def replaced() -> str | None:
        ids = set(pool_factory.members(healthy=True))
        return next(iter(ids)) if ids and first not in ids else None

    second = wait_until(replaced, 30, "a new member replacing the aged one")
    assert second != first
    with pytest.raises(docker.errors.NotFound):
        pool_factory.client.containers.get(first)
    retiring = signal_recorder.wait_for(
        "member_retiring", lambda p: p["member"].container_id == first, timeout=5
    )
    assert retiring["reason"] == "max age"
    pool.wait_until_full(timeout=FILL)
    assert pool.stats().replaced >= 1
