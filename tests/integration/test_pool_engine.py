"""`ContainerPool` across engine trouble: dockerd restarted mid-run, and a restart of the pool
itself (crash recovery: adopting an earlier run's members, removing its broken ones).
"""

from __future__ import annotations

import functools
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import docker.errors
import pytest

from tests.engine_help import (
    REPO_ROOT,
    RUN_LABEL_KEY,
    action_of,
    container_health,
    http_status,
    wait_until,
)
from tests.pool_help import POOL_PORT, PoolFactory, SignalRecorder

pytestmark = pytest.mark.docker

FILL = 60.0


# --------------------------------------------------------------------------- dockerd restart
def dockerd_ctl(command: str) -> None:
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "dockerd-ctl.sh"), command],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, f"dockerd-ctl.sh {command}: {proc.stdout}{proc.stderr}"


def test_survives_dockerd_restart(
    pool_factory: PoolFactory, signal_recorder: SignalRecorder, docker_client: Any
) -> None:
    """After dockerd stops and starts again, the pool reconnects, refills, and leaks nothing."""
    pool = pool_factory(2)
    signal_recorder.listen("stream_lost", "stream_restored", sender=pool)
    pool.wait_until_full(timeout=FILL)
    lease = pool.claim(f"sess-{uuid.uuid4().hex[:8]}")
    pool.wait_until_full(timeout=FILL)
    before = set(pool_factory.members())

    try:
        dockerd_ctl("stop")
        signal_recorder.wait_for("stream_lost", lambda p: True, timeout=30)
        time.sleep(1.0)  # let the pool fail at its creates and reconnects for a moment
    finally:
        dockerd_ctl("start")  # whatever happened above, leave an engine running

    signal_recorder.wait_for("stream_restored", lambda p: True, timeout=60)
    # The members died with the engine (no live-restore): the pool must replace both.
    wait_until(
        lambda: (
            len(fresh := pool_factory.members(healthy=True)) == 2
            and not (set(fresh) & before)
            and pool.stats().ready == 2
        ),
        90,
        "2 new healthy members after the restart",
    )
    pool.wait_until_full(timeout=5)
    stats = pool.stats()
    assert stats.stream_reconnects >= 1, stats
    assert stats.replaced >= 2, stats

    pool.close(timeout=30)
    # Nothing leaked: the claimed container is all that is left of the pool on the engine.
    assert [c.id for c in pool_factory.containers()] == [lease.container_id]
    assert docker_client.containers.get(lease.name).id == lease.container_id


# --------------------------------------------------------------------------- crash recovery
class EarlierRun:
    """Containers made by hand the way an earlier, crashed run of the pool left them."""

    def __init__(self, pools: PoolFactory, fingerprint: str) -> None:
        self.pools = pools
        self.fingerprint = fingerprint
        self.client = pools.client

    def make(
        self,
        *,
        name: str | None = None,
        fingerprint: str | None = None,
        pool_label: bool = True,
        start: bool = True,
    ) -> Any:
        labels = {RUN_LABEL_KEY: self.pools.run_id}
        if pool_label:
            labels["dockpool.pool"] = self.pools.name
            labels["dockpool.spec"] = fingerprint or self.fingerprint
        container = self.client.containers.create(
            self.pools.image,
            name=name or f"dockpool-{self.pools.name}-{uuid.uuid4().hex[:12]}",
            labels=labels,
            healthcheck={
                "test": ["CMD", "stub-check"],
                "interval": int(0.2e9),
                "timeout": int(1e9),
                "retries": 1,
            },
            ports={f"{POOL_PORT}/tcp": ("127.0.0.1", None)},
        )
        if start:
            container.start()
        return container


def _snapshot(container: Any) -> tuple[str, str, str]:
    container.reload()
    return container.name, container.status, container.attrs["State"]["StartedAt"]


def test_adopts_an_earlier_run(
    pool_factory: PoolFactory,
    signal_recorder: SignalRecorder,
    docker_events: Callable[..., Any],
    docker_client: Any,
) -> None:
    """A restarted pool adopts healthy matching members, removes broken or stale ones, and
    never touches claimed containers or containers without its label."""
    spec = pool_factory.spec()
    image_id = docker_client.images.get(pool_factory.image).id
    earlier = EarlierRun(pool_factory, spec.fingerprint(image_id))

    adoptable = [earlier.make(), earlier.make()]
    stale_spec = earlier.make(fingerprint="0123456789abcdef")
    unhealthy = earlier.make()
    exited = earlier.make()
    never_started = earlier.make(start=False)
    claimed = earlier.make(name=f"sess-{uuid.uuid4().hex[:8]}")
    foreign = earlier.make(
        name=f"dockpool-{pool_factory.name}-{uuid.uuid4().hex[:12]}", pool_label=False
    )
    for c in (*adoptable, stale_spec, unhealthy, claimed, foreign):
        wait_until(functools.partial(_is_healthy, c), 30, f"{c.name} healthy")
    unhealthy.exec_run(["stub-ctl", "unhealthy"])
    wait_until(lambda: container_health(unhealthy) == "unhealthy", 30, "a member turned unhealthy")
    exited.kill()
    keep = {c.id: _snapshot(c) for c in (claimed, foreign)}
    doomed = {c.id for c in (stale_spec, unhealthy, exited, never_started)}

    creates = docker_events(
        {
            "type": "container",
            "event": ["create"],
            "label": [f"dockpool.pool={pool_factory.name}", "dockpool.role=member"],
        }
    )
    pool = pool_factory(2, spec=spec, start=False)
    signal_recorder.listen("member_ready", "member_creating", sender=pool)
    pool.start()
    assert pool.fingerprint == earlier.fingerprint  # the labels above are what the pool sets
    pool.wait_until_full(timeout=FILL)

    adopted = {p["member"].container_id for p in signal_recorder.of("member_ready")}
    assert adopted == {c.id for c in adoptable}
    assert all(p["reason"] == "adopted" for p in signal_recorder.of("member_ready"))

    def cleaned() -> bool:
        on_engine = {c.id for c in pool_factory.containers()}
        return not (on_engine & doomed)

    wait_until(cleaned, 30, "the stale, unhealthy, exited and never-started members removed")
    assert set(pool_factory.members()) == {c.id for c in adoptable}
    assert signal_recorder.of("member_creating") == []
    assert [e for e in creates.events if action_of(e) == "create"] == []  # no create at all
    stats = pool.stats()
    assert (stats.ready, stats.failed_starts, stats.replaced) == (2, 0, 0)

    # The adopted members serve claims like any other.
    lease = pool.claim(f"sess-{uuid.uuid4().hex[:8]}")
    assert lease.from_pool and lease.container_id in {c.id for c in adoptable}
    wait_until(lambda: http_status(lease.ports[POOL_PORT]) == 200, 15, "the adopted member serving")

    pool.close(timeout=30)
    for c in (claimed, foreign):
        assert _snapshot(c) == keep[c.id], f"{c.name} was touched"
    for c in adoptable:
        if c.id != lease.container_id:
            with pytest.raises(docker.errors.NotFound):
                docker_client.containers.get(c.id)


def _is_healthy(container: Any) -> bool:
    return container_health(container) == "healthy"
