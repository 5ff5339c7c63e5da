"""Locks held ahead while a process is alone on its pool: a claim is then one rename, and the
moment another process appears, every lock held ahead is let go (it can claim them all)."""

from __future__ import annotations

from typing import Any

from dockpool import ContainerPool
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
