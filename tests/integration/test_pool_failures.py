"""`ContainerPool` on the real engine when members break: replacement, back-off, degraded mode.

Every disturbance is done from outside, as another user of the engine would (docker-py), and
every claim about the engine is checked on the engine by label.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

import docker.errors
import pytest

from dockpool import Backoff, ClaimError
from tests.engine_help import action_of, wait_until
from tests.pool_help import PoolFactory, SignalRecorder

pytestmark = pytest.mark.docker

FILL = 60.0


def _exec(container: Any, *cmd: str) -> None:
    # (`crash` may take the exec down with the container)
    with contextlib.suppress(docker.errors.APIError):
        container.exec_run(list(cmd))


# Each disturbance returns the member_lost reasons it may legitimately cause. The pool reports
# the first fact it learns: a health probe racing a kill or crash makes Docker emit
# `health_status: unhealthy` just before `die` (seen on this engine), so "unhealthy" is a valid
# first reason for those too.
def _kill(c: Any) -> tuple[str, ...]:
    c.kill()
    return ("died (exit code 137)", "unhealthy")


def _remove(c: Any) -> tuple[str, ...]:
    c.remove(force=True)
    return ("died (exit code 137)", "removed by someone else", "unhealthy")


def _unhealthy(c: Any) -> tuple[str, ...]:
    _exec(c, "stub-ctl", "unhealthy")
    return ("unhealthy",)


def _crash(c: Any) -> tuple[str, ...]:
    _exec(c, "stub-ctl", "crash", "3")
    return ("died (exit code 3)", "unhealthy")


def _pause(c: Any) -> tuple[str, ...]:
    c.pause()
    return ("paused by someone else",)


def _rename(c: Any) -> tuple[str, ...]:
    new = f"someone-else-{uuid.uuid4().hex[:8]}"
    c.rename(new)
    return (f"renamed to {new} by someone else",)


DISTURBANCES: dict[str, Callable[[Any], tuple[str, ...]]] = {
    "docker-kill": _kill,
    "docker-rm-f": _remove,
    "stub-ctl-unhealthy": _unhealthy,
    "stub-ctl-crash-3": _crash,
    "docker-pause": _pause,
    "docker-rename": _rename,
}


@pytest.mark.parametrize("how", list(DISTURBANCES))
def test_member_replaced_after(
    how: str, pool_factory: PoolFactory, signal_recorder: SignalRecorder, docker_client: Any
) -> None:
    """A member broken from outside is reported lost and replaced; a renamed one is left alone."""
    pool = pool_factory(2, resync_interval=0.5)
    signal_recorder.listen("member_lost", "resynced", sender=pool)
    pool.wait_until_full(timeout=FILL)
    members = pool_factory.members(healthy=True)
    assert len(members) == 2
    victim_id, victim = sorted(members.items())[0]
    replaced_before = pool.stats().replaced

    expected = DISTURBANCES[how](victim)

    lost = signal_recorder.wait_for(
        "member_lost", lambda p: p["member"].container_id == victim_id, timeout=30
    )
    assert lost["reason"] in expected, (lost["reason"], expected)

    def back_to_size() -> dict[str, Any] | None:
        healthy = pool_factory.members(healthy=True)
        ok = len(healthy) == 2 and victim_id not in healthy and pool.stats().ready == 2
        return healthy if ok else None

    healthy = wait_until(back_to_size, 30, "the pool back at 2 healthy members")
    assert len(set(healthy) - set(members)) == 1  # exactly one new member
    assert pool.stats().replaced >= replaced_before + 1

    if how == "docker-rename":
        # The renamed container now belongs to whoever renamed it: it survives resyncs.
        seen = len(signal_recorder.of("resynced"))
        wait_until(lambda: len(signal_recorder.of("resynced")) >= seen + 2, 30, "two resyncs")
        renamed = docker_client.containers.get(victim_id)
        assert renamed.status == "running" and renamed.name == expected[0].split()[2]
        assert victim_id not in pool_factory.members()
    else:
        # A broken member is removed by the pool (or already gone).
        def gone() -> bool:
            try:
                docker_client.containers.get(victim_id)
            except docker.errors.NotFound:
                return True
            return False

        wait_until(gone, 30, f"the broken member {victim_id[:12]} removed")
    assert len(pool_factory.containers()) == 2 + (how == "docker-rename")


def test_member_dying_before_ready_backs_off(
    pool_factory: PoolFactory,
    signal_recorder: SignalRecorder,
    docker_events: Callable[..., Any],
    docker_client: Any,
) -> None:
    """Members that die before ready degrade the pool under back-off; a claim's cold start fails clearly."""
    spec = pool_factory.spec(
        # Dies 0.1 s after start, long before /ready could answer: never ready.
        env={"STUB_EXIT_AFTER": "0.1", "STUB_READY_DELAY": "30"},
        healthcheck=pool_factory.healthcheck(start_period=60),
    )
    creates = docker_events(
        {
            "type": "container",
            "event": ["create"],
            "label": [f"dockpool.pool={pool_factory.name}", "dockpool.role=member"],
        }
    )
    backoff = Backoff(base=0.5, cap=2.0)
    pool = pool_factory(1, spec=spec, backoff=backoff, start=False)
    signal_recorder.listen("pool_degraded", "member_creating", "member_lost", sender=pool)
    t0 = time.monotonic()
    pool.start()

    degraded = signal_recorder.wait_for("pool_degraded", lambda p: True, timeout=30)
    assert degraded["failures"] >= 2
    assert "died" in degraded["reason"]

    def recreated() -> int:  # failures followed by the next create (after its back-off)
        marks = signal_recorder.timed("member_creating", "member_lost")
        return sum(a[0] == "member_lost" and b[0] == "member_creating"
                   for a, b in itertools.pairwise(marks))  # fmt: skip

    # at least 3 s of failing members, and two re-creates (on a loaded machine the second
    # back-off can end after 3 s)
    wait_until(lambda: time.monotonic() - t0 >= 3.0 and recreated() >= 2, 20,
               "3 s of failing members and two re-creates")  # fmt: skip
    stats = pool.stats()
    assert stats.degraded and stats.ready == 0
    assert stats.failed_starts >= 2 and stats.consecutive_failures >= 2

    # With delays of 0.5, 1, 2, 2 ... s between a failure and the next create, no more than
    # 1 + number of delays fitting into the window can have been created, however fast a
    # container dies. A crash loop (no back-off) would create one per die, ~every 0.5 s.
    created = [e for e in creates.events if action_of(e) == "create"]
    window = time.monotonic() - t0  # (taken after the snapshot: every create seen is within it)
    bound, spent, k = 1, 0.0, 0
    while True:
        spent += min(2.0, 0.5 * 2**k)
        if spent > window:
            break
        bound, k = bound + 1, k + 1
    assert 2 <= len(created) <= bound, (len(created), bound, window)

    # Each re-create waited out the back-off of the failure before it (k-th consecutive failure:
    # min(2, 0.5 * 2**(k-1)) s); half of it is the slack allowed for the signals' own latency.
    marks = signal_recorder.timed("member_creating", "member_lost")
    assert marks[0][0] == "member_creating"
    failures = 0
    for (before, _, t_before), (after, _, t_after) in itertools.pairwise(marks):
        if before == "member_lost":
            failures += 1
            assert after == "member_creating", [m[0] for m in marks]
            delay = min(2.0, 0.5 * 2 ** (failures - 1))
            assert t_after - t_before >= delay / 2, (failures, t_after - t_before)
    assert failures >= 2

    # The claim falls back to a cold start, which fails the same way and says so.
    name = f"sess-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClaimError, match=r"cold start.*exited") as info:
        pool.claim(name, timeout=30)
    assert name in str(info.value)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)  # the failed cold start was removed
    assert pool.stats().misses == 0
