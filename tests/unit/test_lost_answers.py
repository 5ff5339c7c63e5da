"""Answers the engine gave but the pool never received (a connection cut after the engine
acted), and claims interrupted by a crash: each resolved from the engine into a lease or a
clean failure, never a container under a session's name that nobody holds."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dockpool import ClaimError, ContainerPool
from dockpool._core.machine import ContainerId
from dockpool._core.spec import OWNER_LABEL, POOL_LABEL, ROLE_LABEL
from tests.fakes import FakeDocker, wait_for
from tests.unit import ownership_help as own
from tests.unit.ownership_help import members, named

docker = own.docker  # the fixtures: pools of one name on one fake engine,
make_pool = own.make_pool  # each with its own event stream (its "process")


def _locks(engine: FakeDocker) -> list[str]:
    return [c.name for c in engine.containers.values() if c.name.endswith("-lock")]


# -- 4. a lost rename answer -------------------------------------------------------------------


def test_a_rename_whose_answer_was_lost_is_handed_over(make_pool: Any, docker: FakeDocker) -> None:
    """The engine renamed the member, the answer was lost: the claim reads it back and hands
    it over (it used to put the member back: the retry collided with the session's own name,
    the caller got NameInUseError, and the container ran on under its name, nobody's)."""
    pool = make_pool(2)
    pool.wait_until_full(timeout=5)
    docker.faults.arm("rename", "lose", match="name=s1")
    lease = pool.claim("s1", timeout=5)
    assert docker.containers[lease.container_id].name == "s1" and lease.from_pool


def test_a_refused_rename_is_a_clean_failure(make_pool: Any, docker: FakeDocker) -> None:
    """A rename the engine never saw puts the member back; the claim is served all the same."""
    pool = make_pool(2)
    pool.wait_until_full(timeout=5)
    docker.faults.arm("rename", "refuse", match="name=s1")
    lease = pool.claim("s1", timeout=5)
    assert [c.name for c in docker.containers.values() if c.name == "s1"] == ["s1"]
    assert docker.containers[lease.container_id].name == "s1"


def test_a_cold_start_whose_rename_answer_was_lost_is_handed_over(
    make_pool: Any, docker: FakeDocker
) -> None:
    """The same for a cold start (it used to retire the member, which ran on as the session's)."""
    pool = make_pool(0)
    docker.faults.arm("rename", "lose", match="name=s1")
    lease = pool.claim("s1", timeout=5)
    assert docker.containers[lease.container_id].name == "s1" and not lease.from_pool


def _unanswerable(docker: FakeDocker, pool: Any) -> ContainerId:
    """Claim s1 while the rename's answer is lost and the engine cannot be asked about it."""
    pool.wait_until_full(timeout=5)
    docker.faults.arm("rename", "lose", match="name=s1")
    ids = [c.id for c in members(docker)]
    for cid in ids:
        docker.faults.arm("inspect", "refuse", count=100, match=cid)
    with pytest.raises(ClaimError, match="did not say"):
        pool.claim("s1", timeout=5)
    docker.faults.clear()
    renamed = named(docker, "s1")
    assert renamed is not None  # the engine did rename it
    return renamed.id


def test_an_unanswerable_rename_is_settled_at_the_next_resync(
    make_pool: Any, docker: FakeDocker
) -> None:
    """If the engine cannot be asked within the resolve time, the claim fails and the container
    is a doubt: the next resync finds it under the session's name and removes it (nobody
    received it); the session's name is free again."""
    pool = make_pool(1, resync_interval=0.2)
    cid = _unanswerable(docker, pool)
    assert wait_for(lambda: cid not in docker.containers, timeout=3)
    assert pool.claim("s1", timeout=5).name == "s1"


def test_a_retried_claim_resumes_an_unanswered_rename(make_pool: Any, docker: FakeDocker) -> None:
    """A retry of the failed claim, before the resync settled it, gets the container its
    rename made (it does not collide with it)."""
    pool = make_pool(1, resync_interval=60)
    cid = _unanswerable(docker, pool)
    lease = pool.claim("s1", timeout=5)
    assert lease.container_id == cid and lease.name == "s1"
    pool._rt.reconciler.request_resync()
    time.sleep(0.2)
    assert docker.containers[cid].name == "s1"  # taken over: not settled away


# -- 5. an interrupted claim ---------------------------------------------------------------------


def test_a_host_takes_over_a_sandbox_whose_claim_was_interrupted(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A process killed between its rename and returning the lease leaves a container under
    the session's name that nobody holds: another process's `lease_for` rebuilds the lease
    from the engine, `release` removes it for the host."""
    a = make_pool(1)
    a.wait_until_full(timeout=5)
    b = make_pool(1)
    lease = a.claim("s1", timeout=5)  # (its caller never received it: a dies now)
    own.sigkill(make_pool, docker, a)
    again = b.lease_for("s1")
    assert again is not None
    assert (again.container_id, again.name, dict(again.ports), again.spec_fingerprint) == (
        lease.container_id, "s1", dict(lease.ports), lease.spec_fingerprint,
    )  # fmt: skip
    assert b.lease_for("s-unknown") is None
    docker._new("s-other", {POOL_LABEL: "otherpool"}, False)
    assert b.lease_for("s-other") is None and not b.release("s-other")  # not this pool's
    assert b.release("s1") and lease.container_id not in docker.containers
    assert named(docker, "s-other") is not None


# -- liveness --------------------------------------------------------------------------------------


def test_a_follower_uses_a_member_it_first_saw_between_create_and_start(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A follower's resync that lists a member between its create and its start follows it
    to ready (it used to retire it in its own table, and never claimed it)."""
    a = make_pool(1)
    a.wait_until_full(timeout=5)
    b = make_pool(1, resync_interval=0.05)
    b.wait_until_full(timeout=5)
    leader, follower = (a, b) if a.leader else (b, a)
    docker.faults.arm("start", "delay", seconds=0.5)
    leader.claim("s1", timeout=5)  # the leader refills; its start is slow
    time.sleep(0.3)  # the follower resyncs meanwhile
    assert wait_for(lambda: follower.stats().ready == 1, timeout=3)
    assert follower.try_claim("s2") is not None


def _per_claim(pool: ContainerPool) -> None:
    """Locks taken per claim only: not held ahead after the pool's claims (see ahead.py)."""
    assert pool._rt is not None
    pool._rt.ahead.enabled = False


def test_a_lost_answer_when_taking_a_lock_leaves_no_member_locked(
    make_pool: Any, docker: FakeDocker
) -> None:
    """The engine renamed a hand to a member's lock name, the answer was lost: the claimer
    reads the hand back and holds the lock (it used to believe it failed, and the member
    stayed locked until that hand was used again)."""
    a = make_pool(1)
    a.wait_until_full(timeout=5)
    b = make_pool(1)
    b.wait_until_full(timeout=5)
    assert wait_for(lambda: _locks(docker) == [])  # nobody holds locks ahead with two
    _per_claim(b)  # (nor after its claim)
    docker.faults.arm("rename", "lose", match="-lock")
    assert b.claim("s1", timeout=5).from_pool
    assert wait_for(lambda: _locks(docker) == [])


def test_a_lost_answer_when_releasing_a_lock_is_repaired(
    make_pool: Any, docker: FakeDocker
) -> None:
    """The engine renamed a hand home, the answer was lost: the retry at the next resync
    finds it home already (400 from the engine) and reuses it; it used to fail at every
    resync, and the process made a new hand for each claim."""
    a = make_pool(2, resync_interval=0.1)
    a.wait_until_full(timeout=5)
    b = make_pool(2, resync_interval=0.1)
    b.wait_until_full(timeout=5)
    _per_claim(b)  # (a sole claimer would hold the other member's lock ahead with a hand)
    docker.faults.arm("rename", "lose", match="name=dockpool-fake-hand-")
    b.claim("s1", timeout=5)
    assert wait_for(lambda: docker.faults.pending() == 0)
    time.sleep(0.4)  # a resync or two
    b.wait_until_full(timeout=5)
    b.claim("s2", timeout=5)

    def hands_of_b() -> int:
        return sum(
            1 for c in docker.containers.values()
            if c.labels.get(ROLE_LABEL) == "hand" and c.labels.get(OWNER_LABEL) == b.token
        )  # fmt: skip

    assert hands_of_b() == 1


def test_a_lock_whose_release_failed_is_still_ours(make_pool: Any, docker: FakeDocker) -> None:
    """Letting go of a lock failed (the engine refused the hand's rename home), so this
    process's own hand still holds it: its next claim or removal of that member uses that
    hand (it used to see the lock as another's, and the member as locked until a resync)."""
    a = make_pool(1, resync_interval=60)
    a.wait_until_full(timeout=5)
    b = make_pool(1, resync_interval=60)
    b.wait_until_full(timeout=5)
    (member,) = members(docker)
    assert wait_for(lambda: _locks(docker) == [])  # nobody holds locks ahead with two
    assert b._rt is not None
    hand = b._rt.locks.acquire(member.name)
    assert hand is not None
    docker.faults.arm("rename", "refuse", match="name=dockpool-fake-hand-")
    b._rt.locks.release(hand)  # fails: the hand still holds the lock
    assert _locks(docker) == [f"{member.name}-lock"]
    lease = b.claim("s1", timeout=5)
    assert lease.container_id == member.id and lease.from_pool
