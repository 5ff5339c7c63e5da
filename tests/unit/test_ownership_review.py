"""The findings of an independent review of the ownership code (each reproduced on the fake
engine, each test failed before its fix): a lock whose let-go answer was lost, a retried claim
while the engine still cannot answer, a refused rename the engine could not be asked about, a
close with claims in flight, a claim's check that found its hand gone after its rename, and a
discard the engine refused."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pytest

from dockpool import ClaimError, DockpoolError, Lease
from tests.fakes import FakeContainer, FakeDocker, wait_for
from tests.unit import ownership_help as own
from tests.unit.ownership_help import members, named

docker = own.docker  # the fixtures: pools of one name on one fake engine,
make_pool = own.make_pool  # each with its own event stream (its "process")


def test_a_lock_let_go_with_a_lost_answer_is_not_used_as_held(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A process alone holds its member's lock ahead; a second process starts; the let-go's
    answer is lost (the engine renamed the hand home). The first process used to keep that
    hand as "still holding" the lock and claim with it while the second held it: both
    renames of the member won, one container went to two sessions."""
    a = make_pool(1, resync_interval=60)
    a.wait_until_full(timeout=5)
    (m,) = members(docker)
    lock = f"{m.name}-lock"
    assert wait_for(lambda: docker.named(lock) is not None)  # held ahead
    docker.faults.arm("rename", "lose", match="name=dockpool-fake-hand-")  # the let-go's answer
    b = make_pool(1, resync_interval=60)
    b.wait_until_full(timeout=5)
    assert wait_for(lambda: docker.named(lock) is None)  # let go, on the engine
    barrier = threading.Barrier(2, timeout=3)

    def both_resolve(c: FakeContainer, new: str) -> None:
        if c.id == m.id and new in ("sa", "sb"):
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()

    docker.on_resolved = both_resolve
    out: dict[str, Any] = {}

    def claim(pool: Any, session: str) -> None:
        try:
            out[session] = pool.claim(session, timeout=3)
        except DockpoolError as exc:
            out[session] = exc

    tb = threading.Thread(target=claim, args=(b, "sb"))
    tb.start()
    assert wait_for(lambda: docker.named(lock) is not None)  # b holds the lock
    ta = threading.Thread(target=claim, args=(a, "sa"))
    ta.start()
    ta.join(10)
    tb.join(10)
    ids = [x.container_id for x in out.values() if isinstance(x, Lease)]
    assert len(ids) == len(set(ids)) == 2, out
    assert all(docker.containers[x.container_id].name == s for s, x in out.items())


def _unanswered(docker: FakeDocker, member: FakeContainer, action: str) -> None:
    docker.faults.arm("rename", action, match="name=s1")
    docker.faults.arm("inspect", "refuse", match=member.id, count=1000)


def test_a_retried_claim_keeps_the_doubt_while_the_engine_cannot_answer(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A retry that still cannot ask the engine fails and keeps the doubt (it used to drop it:
    the container stayed under the session's name, nobody's, for good)."""
    a = make_pool(1, resync_interval=0.2)
    a.wait_until_full(timeout=5)
    (m,) = members(docker)
    _unanswered(docker, m, "lose")
    with pytest.raises(ClaimError, match="did not say"):
        a.claim("s1", timeout=3)
    with pytest.raises(ClaimError, match="still cannot say"):
        a.claim("s1", timeout=3)
    docker.faults.clear()
    assert wait_for(lambda: named(docker, "s1") is None, timeout=3)  # settled: removed


def test_a_refused_rename_the_engine_could_not_be_asked_about_stays_in_the_pool(
    make_pool: Any, docker: FakeDocker
) -> None:
    """The rename never reached the engine and reading the member back failed: the member
    stays this process's (it was marked gone for good, never seen again, and left at close)."""
    a = make_pool(1, resync_interval=0.2)
    a.wait_until_full(timeout=5)
    (m,) = members(docker)
    _unanswered(docker, m, "refuse")
    with pytest.raises(ClaimError, match="did not say"):
        a.claim("s1", timeout=3)
    docker.faults.clear()
    assert docker.containers[m.id].name == m.name
    assert a.claim("s2", timeout=3).container_id == m.id  # still the pool's
    a.wait_until_full(timeout=5)
    a.close(timeout=5)
    assert members(docker) == []


def test_close_lets_claims_in_flight_finish(make_pool: Any, docker: FakeDocker) -> None:
    """close() waits for the claims in flight before it removes the hands (their locks): a
    slow claim used to see its hand gone, fail, and leave its container under the session's
    name, nobody's."""
    a = make_pool(1)
    a.wait_until_full(timeout=5)
    docker.faults.arm("rename", "delay", seconds=0.6, match="name=s1")
    out: dict[str, Any] = {}

    def claim() -> None:
        try:
            out["lease"] = a.claim("s1", timeout=5)
        except DockpoolError as exc:
            out["error"] = exc

    t = threading.Thread(target=claim)
    t.start()
    assert wait_for(lambda: docker.faults.pending() == 0)  # the rename is on its way
    a.close(timeout=5)
    t.join(5)
    assert "lease" in out, out
    assert docker.containers[out["lease"].container_id].name == "s1"


def test_a_hand_pruned_after_the_rename_hands_nothing_to_nobody(
    make_pool: Any, docker: FakeDocker
) -> None:
    """The rename's event is late (a slow stream) and the hand is pruned after the rename: the
    claim waits long enough for the event to tell it held its lock all along, and hands the
    container over (it used to read the hand back, find it gone, and leave the container
    under the session's name, nobody's)."""
    a = make_pool(1, resync_interval=0.2)
    a.wait_until_full(timeout=5)
    (m,) = members(docker)
    src = docker.events

    def slow_stream(old: str, new: str) -> None:
        if new == "s1":
            src.held = []

    docker.on_rename = slow_stream
    docker.faults.arm("inspect", "delay", seconds=0.2, match=m.id)

    def prune_then_release() -> None:
        assert wait_for(lambda: named(docker, "s1") is not None)
        docker.prune()
        time.sleep(0.3)  # late: after the claim's own check, before it gives up on the event
        src.release()

    t = threading.Thread(target=prune_then_release)
    t.start()
    lease = a.claim("s1", timeout=3)
    t.join(3)
    assert lease.container_id == m.id and docker.containers[m.id].name == "s1"


def test_a_discard_the_engine_refused_is_retried(make_pool: Any, docker: FakeDocker) -> None:
    """A member that died under its claim is discarded; the engine refused the removal (twice:
    the discard tries again at once): the claim fails, and the next resync removes it (it used
    to stay, dead, under the session's name, and every later claim of it failed)."""
    a = make_pool(1, resync_interval=0.2)
    a.wait_until_full(timeout=5)
    (m,) = members(docker)

    def die_now(c: FakeContainer, new: str) -> None:
        if c.id == m.id and new == "s1" and docker.faults.pending() == 0:
            docker.kill(m.id)  # its die event comes before the rename's
            docker.faults.arm("remove", "refuse", match=m.id, count=2)

    docker.on_resolved = die_now
    with pytest.raises(ClaimError):
        a.claim("s1", timeout=5)  # its name is held by the dead one until it is removed
    assert wait_for(lambda: m.id not in docker.containers, timeout=3)
    docker.on_resolved = lambda c, new: None
    assert a.claim("s1", timeout=5).name == "s1"
