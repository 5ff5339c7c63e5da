"""What is said about one member: its signals carry a public `MemberInfo` snapshot, and a cold
start that fails names its own container's cause."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from dockpool import (
    Backoff,
    ClaimError,
    ContainerPool,
    ContainerSpec,
    HealthCheck,
    MemberInfo,
    State,
    signals,
)
from dockpool._core.machine import ContainerId
from dockpool._core.spec import ROLE_LABEL
from tests.fakes import FakeDocker, FakeEventSource, wait_for


def test_member_signals_carry_a_member_info_snapshot() -> None:
    """`member_ready` and `member_claimed` receivers get a `MemberInfo` each, frozen at the
    moment of the signal: the ready one still says ready after the member was claimed."""
    source = FakeEventSource()
    docker = FakeDocker(source)
    got: list[tuple[str, Any]] = []

    def ready(sender: object, **payload: Any) -> None:
        got.append(("ready", payload["member"]))

    def claimed(sender: object, **payload: Any) -> None:
        got.append(("claimed", payload["member"]))

    pool = ContainerPool(ContainerSpec(image="img:1"), size=1, name="info", adapter=docker,
                         event_source=source, backoff=Backoff(base=0.01, cap=0.05))  # fmt: skip
    signals.member_ready.connect(ready, sender=pool)
    signals.member_claimed.connect(claimed, sender=pool)
    try:
        pool.start().wait_until_full(timeout=5)
        lease = pool.claim("session-info")
    finally:
        pool.close(timeout=5)
        signals.member_ready.disconnect(ready)
        signals.member_claimed.disconnect(claimed)
    [handed] = [info for kind, info in got if kind == "claimed"]
    assert all(isinstance(info, MemberInfo) for _, info in got)
    assert handed.container_id == lease.container_id and lease.name == "session-info"
    assert handed.state is State.CLAIMED and handed.reserved_for is None
    same = [info for kind, info in got if kind == "ready" and info.key == handed.key]
    assert same and same[0].state is State.READY and same[0].born == handed.born
    assert handed.name == same[0].name == f"dockpool-info-{handed.key}"


def test_a_cold_start_reports_its_own_container_s_cause() -> None:
    """A cold start whose container leaves before it is ready names that container's cause,
    not the pool's latest failure of another member (it did: an earlier death was reported
    for a container removed by someone)."""
    source = FakeEventSource()
    docker = FakeDocker(source, auto_healthy=False)
    spec = ContainerSpec(
        image="img:1", healthcheck=HealthCheck(test=["CMD", "true"], interval=0.2, retries=1)
    )
    pool = ContainerPool(spec, size=0, name="cause", adapter=docker, event_source=source,
                         backoff=Backoff(base=0.01, cap=0.05)).start()  # fmt: skip
    errors: list[str] = []

    def cold(session: str, damage: Callable[[str], None]) -> None:
        def claim() -> None:
            with pytest.raises(ClaimError) as caught:
                pool.claim(session, timeout=10)
            errors.append(str(caught.value))

        thread = threading.Thread(target=claim)
        thread.start()
        assert wait_for(lambda: len(members()) == 1)
        [victim] = members()
        seen.add(victim.id)
        assert wait_for(lambda: docker.containers[victim.id].status == "running")
        damage(victim.id)
        thread.join(timeout=15)
        assert not thread.is_alive()

    def members() -> list[Any]:  # (the cold start's, once an earlier one's is set aside)
        return [c for c in docker.containers.values() if c.id not in seen
                and c.labels.get(ROLE_LABEL, "member") == "member"]  # fmt: skip

    seen: set[str] = set()

    try:
        cold("first", lambda cid: docker.kill(ContainerId(cid), 137))
        cold("second", lambda cid: docker.rename(cid, "renamed-by-someone"))
    finally:
        pool.close(timeout=5)
    assert "137" in errors[0] or "died" in errors[0], errors
    assert "137" not in errors[1] and "renamed" in errors[1], errors
