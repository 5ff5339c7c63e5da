"""Readiness that costs almost nothing, on the real engine (run on 20.10 and on 28.5).

The spec is config.toml's: Docker's health check every 30 s (start_interval 0.1 s, honoured
from API 1.44) plus `[dockpool.readiness]`, dockpool's own warm-up probe. On either engine a member must be ready within
seconds of its server answering, never one 30 s interval later; and with `check_at_claim`, a
member whose server stopped answering (which a 30 s health check has not noticed yet) is never
handed out.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from dockpool import HealthCheck, Readiness
from dockpool._core.spec import readiness_mode
from tests.engine_help import container_health, http_status, wait_until
from tests.pool_help import POOL_PORT, PoolFactory, SignalRecorder

pytestmark = pytest.mark.docker

DELAY = 1.0  # the stand-in's /ready answers this long after start


def _spec(pool_factory: PoolFactory, check_at_claim: bool = False) -> Any:
    return pool_factory.spec(
        env={"STUB_READY_DELAY": str(DELAY)},
        healthcheck=HealthCheck(
            test=["CMD", "stub-check"],
            interval=30,
            timeout=1,
            retries=3,
            start_period=30,
            start_interval=0.1,
        ),
        readiness=Readiness(port=POOL_PORT, path="/ready", check_at_claim=check_at_claim),
    )


def _api(docker_client: Any) -> tuple[int, int]:
    major, minor = docker_client.version()["ApiVersion"].split(".")[:2]
    return int(major), int(minor)


def test_ready_soon_after_the_server_answers_on_every_engine(
    pool_factory: PoolFactory, docker_client: Any, signal_recorder: SignalRecorder
) -> None:
    spec = _spec(pool_factory)
    assert readiness_mode(spec) == "probe"
    old_engine = _api(docker_client) < (1, 44)  # no start_interval: Docker's first probe at 30 s
    signal_recorder.listen("member_ready")
    t0 = time.monotonic()
    pool = pool_factory(2, spec=spec)
    pool.wait_until_full(timeout=25)  # well before Docker's first 30 s probe on 20.10
    took = time.monotonic() - t0
    assert took >= DELAY  # not before the server answered
    for member in pool_factory.members().values():
        health = container_health(member)  # (reloads the container's attributes)
        assert http_status(int(member.ports[f"{POOL_PORT}/tcp"][0]["HostPort"])) == 200
        if old_engine:  # Docker's own check has not run yet: it says "starting"
            assert health == "starting"
    reasons = [r["reason"] for r in signal_recorder.of("member_ready")]
    assert len(reasons) == 2
    if old_engine:  # only dockpool's probe can have made them ready
        assert reasons == ["answered", "answered"]


def test_a_silent_server_is_not_handed_out(pool_factory: PoolFactory, docker_client: Any) -> None:
    pool = pool_factory(1, spec=_spec(pool_factory, check_at_claim=True))
    pool.wait_until_full(timeout=25)
    (silent,) = pool_factory.members().values()
    silent.exec_run(["stub-ctl", "unhealthy"])  # /ready now 503; the 30 s check has not seen it
    assert container_health(silent) != "unhealthy"
    lease = pool.claim("readiness-silent", timeout=60)
    assert lease.container_id != silent.id  # a cold start (or the refill), not the silent one
    assert http_status(lease.ports[POOL_PORT]) == 200
    assert wait_until(
        lambda: silent.id not in {c.id for c in pool_factory.containers()},
        10,
        "the silent member removed",
    )
    assert [c.id for c in pool_factory.containers() if c.name == "readiness-silent"] == [
        lease.container_id
    ]


def test_a_member_paused_just_before_a_claim_is_not_handed_out(
    pool_factory: PoolFactory, docker_client: Any
) -> None:
    """Without `check_at_claim` the claim makes no request: it waits for its rename's event,
    and the engine logs a member's events in order, so a `pause` logged before the rename
    reaches the machine first (or the member is out of the pool already): never handed out."""
    pool = pool_factory(2, spec=_spec(pool_factory))
    pool.wait_until_full(timeout=25)
    members = list(pool_factory.members().values())
    for member in members:
        member.pause()  # returns once the engine has logged the event; the claim comes at once
    lease = pool.claim("readiness-paused", timeout=60)
    assert lease.container_id not in {member.id for member in members}
    assert http_status(lease.ports[POOL_PORT]) == 200
