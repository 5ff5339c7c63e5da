"""Bursts on the real engine: a burst larger than the pool is served first, every claim of it,
then the pool refills; a self-sizing pool grows on the misses and fills to its new target."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from dockpool import Lease, Readiness, signals
from tests.engine_help import action_of, http_status, wait_until
from tests.pool_help import POOL_PORT, PoolFactory

pytestmark = pytest.mark.docker

SIZE = 3
BURST = 2 * SIZE


def _burst(pool: Any, n: int) -> tuple[list[Lease], list[BaseException]]:
    """`n` claims released at once by a barrier; the leases and the errors."""
    barrier = threading.Barrier(n)
    leases: list[Lease] = []
    errors: list[BaseException] = []

    def claim(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            leases.append(pool.claim(f"burst-{i}-{uuid.uuid4().hex[:6]}", timeout=90))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not any(t.is_alive() for t in threads), "claims still running after 150 s"
    return leases, errors


def _readiness_spec(pool_factory: PoolFactory) -> Any:
    """config.toml's profile: dockpool's readiness probe, Docker's check for liveness only."""
    return pool_factory.spec(
        healthcheck=pool_factory.healthcheck(interval=120.0, retries=2, start_period=30.0),
        readiness=Readiness(port=POOL_PORT, path="/ready", interval=0.05),
    )


def test_a_burst_is_served_before_the_refill_and_the_refill_follows(
    pool_factory: PoolFactory, docker_events: Any, docker_client: Any
) -> None:
    """2 x the pool at once: every claim is served (pool hits and cold starts), no refill create
    begins before the last hit's rename, and the pool is full again afterwards."""
    pool = pool_factory(SIZE, spec=_readiness_spec(pool_factory), max_containers=2 * BURST)
    pool.wait_until_full(timeout=60)
    label = f"dockpool.pool={pool_factory.name}"
    events = docker_events({"type": "container", "event": ["create", "rename"], "label": [label]})
    leases, errors = _burst(pool, BURST)
    assert not errors, errors
    assert len({lease.container_id for lease in leases}) == BURST
    for lease in leases:  # each is its session's, by name, and its server answers
        assert docker_client.containers.get(lease.name).id == lease.container_id
        assert http_status(lease.ports[POOL_PORT]) == 200
    hits = [lease for lease in leases if lease.from_pool]
    assert len(hits) == SIZE, [(lease.name, lease.from_pool) for lease in leases]

    pool.wait_until_full(timeout=60)  # the refill ran afterwards
    assert len(pool_factory.members(healthy=False)) >= SIZE
    hit_ids = {lease.container_id for lease in hits}
    seen = list(events.events)
    renamed = [e["timeNano"] for e in seen
               if action_of(e) == "rename" and e["Actor"]["ID"] in hit_ids
               and e["Actor"]["Attributes"].get("name", "").startswith("burst-")]  # fmt: skip
    refills = [e["timeNano"] for e in seen
               if action_of(e) == "create"
               and e["Actor"]["Attributes"].get("dockpool.origin") == "refill"]  # fmt: skip
    assert len(renamed) == SIZE, seen
    assert refills, "no refill create was seen"
    assert min(refills) > max(renamed), "a refill create began before the burst's hits"
    stats = pool.stats()
    assert (stats.hits, stats.misses) == (SIZE, BURST - SIZE)


def test_a_self_sizing_pool_grows_on_misses_and_fills_to_its_new_target(
    pool_factory: PoolFactory,
) -> None:
    """Floor 1, max_pool_size 4: a burst of 4 drains it; the cold fallbacks raise the target
    (announced with its reason), never above the ceiling, and the pool fills to it."""
    resized: list[tuple[int, int, str]] = []

    def on_resized(sender: object, **payload: Any) -> None:
        resized.append((payload["old"], payload["new"], payload["reason"]))

    pool = pool_factory(1, spec=_readiness_spec(pool_factory), max_pool_size=4, max_containers=10)
    signals.pool_resized.connect(on_resized, sender=pool, weak=False)
    try:
        pool.wait_until_full(timeout=60)
        leases, errors = _burst(pool, 4)
        assert not errors, errors
        assert len({lease.container_id for lease in leases}) == 4
        assert pool.stats().misses >= 1
        grown = pool.stats().size
        assert 1 < grown <= 4, pool.stats()
        assert any(r == "cold fallback" and new > old for old, new, r in resized), resized
        assert all(new <= 4 for _, new, _ in resized), resized
        wait_until(lambda: pool.stats().ready >= min(grown, pool.stats().size), 60,
                   f"the pool filled to its target {grown}")  # fmt: skip
    finally:
        signals.pool_resized.disconnect(on_resized, sender=pool)
