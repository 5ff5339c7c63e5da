"""Locks held ahead while a process is alone on its pool, or the only one that claims: a claim
is then one rename; the moment another process appears, claims or wants a lock, every lock
held ahead is let go (it can claim them all)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dockpool import ContainerPool
from dockpool._runtime import ahead
from tests.fakes import FakeDocker, wait_for
from tests.unit import ownership_help as own
from tests.unit.ownership_help import members, named

docker = own.docker  # the fixtures: pools of one name on one fake engine,
make_pool = own.make_pool  # each with its own event stream (its "process")


def _held(pool: ContainerPool) -> frozenset[str]:
    rt = pool._rt
    assert rt is not None
    return rt.locks.held()


def _lock_holders(engine: FakeDocker) -> list[str]:
    return [c.name for c in engine.containers.values() if c.name.endswith("-lock")]


def test_alone_a_claim_is_one_rename(make_pool: Any, docker: FakeDocker) -> None:
    pool = make_pool(2)
    pool.wait_until_full(timeout=5)
    assert wait_for(lambda: len(_held(pool)) == 2)
    before = len(docker.calls)
    lease = pool.claim("s1", timeout=5)
    renames = [c for c in docker.calls[before:] if c[0] == "rename"]
    assert renames[0] == ("rename", "s1")  # no lock rename on the claim's path
    assert docker.containers[lease.container_id].name == "s1" and lease.from_pool
    assert lease.container_id not in {c.id for c in members(docker)}


def test_another_process_makes_it_let_go(make_pool: Any, docker: FakeDocker) -> None:
    a = make_pool(3)
    a.wait_until_full(timeout=5)
    assert wait_for(lambda: len(_held(a)) == 3)
    b = make_pool(3)  # its presence starts: a lets go of everything it held ahead
    assert wait_for(lambda: not _held(a) and _lock_holders(docker) == [])
    b.wait_until_full(timeout=5)
    leases = [b.claim(f"b{i}", timeout=5) for i in range(3)]
    assert all(lease.from_pool for lease in leases)  # none turned away by a's locks
    assert len({lease.container_id for lease in leases}) == 3


def test_a_held_member_is_removed_on_shrink(make_pool: Any, docker: FakeDocker) -> None:
    pool = make_pool(2)
    pool.wait_until_full(timeout=5)
    assert wait_for(lambda: len(_held(pool)) == 2)
    pool.resize(0)
    assert wait_for(lambda: members(docker) == [] and not _held(pool))
    assert _lock_holders(docker) == []  # every hand went home


def test_a_held_member_removed_by_someone_else_frees_its_hand(
    make_pool: Any, docker: FakeDocker
) -> None:
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    assert wait_for(lambda: len(_held(pool)) == 1)
    (member,) = members(docker)
    docker.remove(member.id)  # docker rm by hand
    assert wait_for(lambda: member.name not in _held(pool))
    assert wait_for(lambda: _lock_holders(docker) == [f"{m.name}-lock" for m in members(docker)]
                    or _lock_holders(docker) == [])  # fmt: skip
    assert named(docker, f"{member.name}-lock") is None


# -- the one claimer among several processes ------------------------------------------------------


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Contention is forgotten after 0.3 s (5 s in production)."""
    monkeypatch.setattr(ahead, "_QUIET", 0.3)


def _three(make_pool: Any) -> list[ContainerPool]:
    pools = [make_pool(3) for _ in range(3)]
    for pool in pools:
        pool.wait_until_full(timeout=5)
    time.sleep(0.4)  # the presences' appearance is forgotten
    return pools


def test_the_one_claimer_of_three_processes_claims_with_one_rename(
    make_pool: Any, docker: FakeDocker, quick: None
) -> None:
    """Three processes, one of them claims: after its first claim (per-claim lock) it holds
    the ready members' locks ahead, and its next claims are one rename each."""
    a, b, c = _three(make_pool)
    assert not _held(a) and _lock_holders(docker) == []
    a.claim("s0", timeout=5)
    a.wait_until_full(timeout=5)
    assert wait_for(lambda: len(_held(a)) == 3)
    assert not _held(b) and not _held(c)
    for i in range(1, 4):
        before = len(docker.calls)
        lease = a.claim(f"s{i}", timeout=5)
        renames = [call for call in docker.calls[before:] if call[0] == "rename"]
        assert renames[0] == ("rename", f"s{i}") and lease.from_pool
        a.wait_until_full(timeout=5)
        assert wait_for(lambda: len(_held(a)) == 3)


def test_a_claimer_whose_claims_are_far_apart_still_holds_the_new_members(
    make_pool: Any, docker: FakeDocker, quick: None
) -> None:
    """The only claimer holds the locks of members that become ready long after its last
    claim too (it used to stop holding `_QUIET` s after a claim: the new members' locks were
    not taken, and half its claims took two renames in the benchmark)."""
    a, _, _ = _three(make_pool)
    a.claim("s0", timeout=5)
    for i in range(1, 4):
        a.wait_until_full(timeout=5)
        assert wait_for(lambda: len(_held(a)) == 3)
        time.sleep(0.5)  # longer than `_QUIET`
        docker.remove(members(docker)[0].id)  # (by someone: a new member is made, later)
        assert wait_for(lambda: len(members(docker)) == 3 and len(_held(a)) == 3)
        before = len(docker.calls)
        a.claim(f"s{i}", timeout=5)
        renames = [call for call in docker.calls[before:] if call[0] == "rename"]
        assert renames[0] == ("rename", f"s{i}")


def test_another_process_that_claims_is_not_turned_away(
    make_pool: Any, docker: FakeDocker, quick: None
) -> None:
    """The claimer holds every ready member's lock; a claim on another process finds them
    locked, says so through the engine (a hand renamed to `-want` and back), and gets a
    member from the pool as soon as the holder lets go; the holder then holds nothing
    while the pool is contended."""
    a, b, _ = _three(make_pool)
    a.claim("s0", timeout=5)
    a.wait_until_full(timeout=5)
    assert wait_for(lambda: len(_held(a)) == 3)
    started = time.monotonic()
    lease = b.claim("b1", timeout=5)
    assert lease.from_pool and time.monotonic() - started < 0.5
    assert any(name.endswith("-want") for kind, name in docker.calls if kind == "rename")
    assert not _held(a)
    assert docker.containers[lease.container_id].name == "b1"


def test_the_leader_removes_members_another_process_holds(
    make_pool: Any, docker: FakeDocker, quick: None
) -> None:
    """A shrink by the leader is not blocked by a claimer's locks held ahead: its removal
    finds the member locked, wants it, and removes it once it is let go."""
    pools = _three(make_pool)
    assert any(p.leader for p in pools)
    claimer = next(p for p in pools if not p.leader)
    claimer.claim("s0", timeout=5)
    claimer.wait_until_full(timeout=5)
    assert wait_for(lambda: len(_held(claimer)) == 3)
    for pool in pools:
        pool.resize(1)
    assert wait_for(lambda: len(members(docker)) == 1, timeout=10)
    assert wait_for(lambda: len(_lock_holders(docker)) == len(_held(claimer)) <= 1)
