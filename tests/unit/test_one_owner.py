"""Exactly one owner, part 2: names the pool could mistake for its own, locks taken from a
live process, and two upkeep leaders, each forced deterministically on the fake engine (which
resolves a rename's old name before it locks the container, as dockerd does)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dockpool import ClaimError, ContainerPool, Lease
from dockpool._core.spec import OWNER_LABEL, ROLE_LABEL
from tests.fakes import FakeContainer, FakeDocker, wait_for
from tests.unit import ownership_help as own
from tests.unit.ownership_help import members, named

docker = own.docker  # the fixtures: pools of one name on one fake engine,
make_pool = own.make_pool  # each with its own event stream (its "process")


def _rt(pool: ContainerPool) -> Any:
    assert pool._rt is not None
    return pool._rt


def _per_claim_locks(pool: ContainerPool) -> None:
    """Locks taken per claim (and per removal), not held ahead, though the process is alone."""
    _rt(pool).ahead.enabled = False
    _rt(pool).ahead.set_alone(False)
    assert wait_for(lambda: not _rt(pool).locks.held())


def _creates(engine: FakeDocker) -> int:
    return sum(1 for kind, _ in engine.calls if kind == "create")


# -- 1. names inside the pool's own range ------------------------------------------------------


@pytest.mark.parametrize("name", ["dockpool-fake-x", "dockpool-fake-leader", "dockpool-other-1"])
def test_a_session_name_the_pool_could_take_for_its_own_is_refused(
    make_pool: Any, docker: FakeDocker, name: str
) -> None:
    """claim, try_claim and lease_for refuse a `dockpool-` name with one clear error, and
    nothing is renamed (a claimed container under such a name looked unclaimed to a process
    that missed its rename: adopted and handed out again)."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    before = len(docker.calls)
    for call in (pool.claim, pool.try_claim, pool.lease_for):
        with pytest.raises(ClaimError, match="dockpool's own"):
            call(name)
    assert [c for c in docker.calls[before:] if c[0] == "rename"] == []


def test_a_foreign_container_holding_the_leader_name_is_never_removed(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A stopped container named like the pool's leader, without the pool's label, is left
    alone (it used to be removed on its name alone); nobody leads while it holds the name,
    and the pool leads once its owner removed it."""
    decoy = docker._new("dockpool-fake-leader", {"owner": "someone"}, False)
    pool = make_pool(1, resync_interval=0.05)
    time.sleep(0.3)
    assert not pool.leader
    assert docker.containers.get(decoy.id) is decoy and decoy.name == "dockpool-fake-leader"
    docker.remove(decoy.id)  # its owner removes it
    assert wait_for(lambda: pool.leader)
    pool.wait_until_full(timeout=5)


def test_a_foreign_container_that_took_a_members_name_is_not_removed(
    make_pool: Any, docker: FakeDocker
) -> None:
    """The upkeep removes a member only once the engine confirmed that its name still
    belongs to that member's container: a member renamed by someone, whose name another
    (unlabelled) container took, is not removed by name, and neither is the other one."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    _per_claim_locks(pool)
    (member,) = members(docker)
    name = member.name
    decoys: list[FakeContainer] = []

    def meanwhile(container: str, new_name: str) -> None:
        if new_name == f"{name}-lock" and not decoys:  # the removal takes its lock
            docker.rename(member.id, "renamed-by-someone")
            decoys.append(docker._new(name, {"owner": "someone"}, False))

    docker.on_rename = meanwhile
    pool.resize(0)
    assert wait_for(lambda: bool(decoys) and pool.stats().retiring == 0)
    assert docker.containers.get(decoys[0].id) is decoys[0]
    assert docker.containers[member.id].name == "renamed-by-someone"


# -- 2. a live process's locks ------------------------------------------------------------------


def test_a_live_process_whose_presence_died_keeps_its_locks(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A follower's presence dies while the follower is mid-claim (between its lock and its
    rename). The leader used to count it dead at once and remove its hands, so its own claim
    took the same member's lock, and with dockerd's rename both renames won: one container,
    two sessions. Now the locks of a process seen gone wait out a grace (it rejoins)."""
    a = make_pool(1)
    a.wait_until_full(timeout=5)
    b = make_pool(1)
    b.wait_until_full(timeout=5)
    leader, follower = (a, b) if a.leader else (b, a)
    leases: dict[str, Lease] = {}

    def mid_claim(c: FakeContainer, new_name: str) -> None:
        if new_name == "s-follower" and "s-leader" not in leases:
            docker.stop_presence(_rt(follower).peers.presence_id)  # dies; its process lives
            time.sleep(0.1)  # the leader hears of it
            leases["s-leader"] = leader.claim("s-leader", timeout=5)

    docker.on_resolved = mid_claim
    leases["s-follower"] = follower.claim("s-follower", timeout=5)
    assert leases["s-leader"].container_id != leases["s-follower"].container_id
    for name, lease in leases.items():
        assert docker.containers[lease.container_id].name == name


def test_a_process_whose_presence_died_rejoins_at_once(make_pool: Any, docker: FakeDocker) -> None:
    """Its own presence's `die` makes a process rejoin at once (it waited for the next
    resync, up to a minute), and its claims wait for the rejoin rather than use its locks."""
    pool = make_pool(1, resync_interval=60)
    pool.wait_until_full(timeout=5)
    rt = _rt(pool)
    old = rt.peers.presence_id
    docker.stop_presence(old)
    assert wait_for(lambda: rt.peers.presence_id not in (None, old), timeout=2)
    assert docker.containers[rt.peers.presence_id].status == "running"
    assert wait_for(lambda: pool.leader, timeout=2)
    assert pool.claim("s1", timeout=5).name == "s1"


def test_pruned_hands_are_never_used(make_pool: Any, docker: FakeDocker) -> None:
    """`docker container prune` removes every hand (never started); a process alone, holding
    its members' locks ahead, used to go on "holding" them, and claimed with them while
    another process took the same locks. Now it forgets them at their destroy events, and a
    claim racing the other process's claim of the same member loses cleanly."""
    a = make_pool(2)
    a.wait_until_full(timeout=5)
    assert wait_for(lambda: len(_rt(a).locks.held()) == 2)
    assert any("-lock" in name for name in docker.prune())
    assert wait_for(lambda: not _rt(a).locks.held())
    b = make_pool(2)
    b.wait_until_full(timeout=5)
    leases: dict[str, Lease] = {}

    def race(c: FakeContainer, new_name: str) -> None:
        if new_name == "sb" and "sa" not in leases:
            leases["sa"] = a.claim("sa", timeout=5)

    docker.on_resolved = race
    leases["sb"] = b.claim("sb", timeout=5)
    assert leases["sa"].container_id != leases["sb"].container_id
    assert all(docker.containers[x.container_id].name == n for n, x in leases.items())


def test_a_lock_lost_before_its_rename_hands_nothing_out(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A prune between a claim's lock and its rename: another process could have taken the
    lock and renamed the member too, so the claim fails and hands nothing out (its hand's
    destroy event came before the rename's: the stream tells at no cost); the container,
    which nobody received, is removed at the next resync."""
    pool = make_pool(1, resync_interval=0.2)
    pool.wait_until_full(timeout=5)
    _per_claim_locks(pool)

    def prune_mid_claim(c: FakeContainer, new_name: str) -> None:
        if new_name == "s1":
            docker.prune()

    docker.on_resolved = prune_mid_claim
    with pytest.raises(ClaimError, match="lost before its rename"):
        pool.claim("s1", timeout=5)
    docker.on_resolved = lambda c, new: None
    assert wait_for(lambda: named(docker, "s1") is None, timeout=3)


def test_a_stale_rename_after_a_broken_lock_leaves_the_handed_member_alone(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A prune destroys claim A's hand while A's rename of the member is in flight (dockerd
    resolved the member's name and waits for the container's lock); B takes the free lock and
    renames the member for its session; A's rename lands right after B's (the chaos run on
    Engine 28.5 found a leased container renamed so). B, which saw the lock broken, reads the
    name back and restores it before it hands the member over; A, whose lock was lost before
    its rename, hands nothing out and gives the name back at once."""
    a = make_pool(1, resync_interval=60)
    a.wait_until_full(timeout=5)
    b = make_pool(1, resync_interval=60)
    b.wait_until_full(timeout=5)
    for pool in (a, b):
        _per_claim_locks(pool)
    leases: dict[str, Lease] = {}
    errors: list[Exception] = []

    def b_claims() -> None:
        leases["s2"] = b.claim("s2", timeout=5)

    def prune_and_race(c: FakeContainer, new_name: str) -> None:
        if new_name != "s1":
            return
        assert any(name.endswith("-lock") for name in docker.prune())
        threading.Thread(target=b_claims).start()
        assert wait_for(lambda: c.name == "s2", timeout=5)  # then A's rename lands

    def a_claims() -> None:
        try:
            leases["s1"] = a.claim("s1", timeout=5)
        except ClaimError as exc:
            errors.append(exc)

    docker.on_resolved = prune_and_race
    claimer = threading.Thread(target=a_claims)
    claimer.start()
    assert wait_for(lambda: "s2" in leases, timeout=10)
    lease = leases["s2"]
    assert docker.containers[lease.container_id].name == "s2"  # when B's host receives it
    claimer.join(timeout=10)
    docker.on_resolved = lambda c, new: None
    assert "s1" not in leases and errors and "lost before its rename" in str(errors[0])
    time.sleep(0.3)
    assert docker.containers[lease.container_id].name == "s2"
    assert named(docker, "s1") is None


# -- 3. one leader --------------------------------------------------------------------------------


def test_one_leader_after_an_engine_restart(make_pool: Any, docker: FakeDocker) -> None:
    """dockerd restarts: it stops every container after closing its API (no `die`), and the
    streams end. Each process rejoins with a new presence; the old leader kept its flag and
    another won the name: two leaders, each shrinking the other's refill (hundreds of creates
    a second). Now the engine says who leads: exactly one, and a claim costs one create."""
    a = make_pool(2)
    a.wait_until_full(timeout=5)
    b = make_pool(2)
    b.wait_until_full(timeout=5)
    docker.restart_engine()
    assert wait_for(lambda: a.leader != b.leader and len(members(docker)) == 2, timeout=5)
    a.wait_until_full(timeout=5)
    time.sleep(0.3)
    assert [a.leader, b.leader].count(True) == 1
    leader = a if a.leader else b
    (holder,) = [c for c in docker.containers.values() if c.name == "dockpool-fake-leader"]
    assert holder.id == _rt(leader).peers.presence_id and holder.status == "running"
    before = _creates(docker)
    b.claim("s1", timeout=5)
    time.sleep(1.0)
    assert _creates(docker) - before <= 2  # the refill (no storm)
    assert named(docker, "s1") is not None


def test_a_leader_steps_down_when_another_presence_holds_the_name(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A leader whose flag outlived its name (another presence of the pool got it) steps
    down at the rename's event."""
    a = make_pool(1)
    a.wait_until_full(timeout=5)
    b = make_pool(1)
    b.wait_until_full(timeout=5)
    leader, other = (a, b) if a.leader else (b, a)
    holder = _rt(leader).peers.presence_id
    docker.rename(holder, "dockpool-fake-proc-moved")  # as an engine restart's rejoin may
    docker.rename(_rt(other).peers.presence_id, "dockpool-fake-leader")
    assert wait_for(lambda: other.leader and not leader.leader)
    own_hands = [
        c for c in docker.containers.values()
        if c.labels.get(ROLE_LABEL) == "hand" and c.labels.get(OWNER_LABEL) == leader.token
    ]  # fmt: skip
    assert all(c.id in docker.containers for c in own_hands)


def test_claims_from_three_processes_never_share_under_lost_answers(
    make_pool: Any, docker: FakeDocker
) -> None:
    """Three processes claim at once while a quarter of the renames lose their answer: every
    session gets its own container, and each container carries its session's name."""
    pools = [make_pool(3) for _ in range(3)]
    for pool in pools:
        pool.wait_until_full(timeout=5)
    docker.faults.arm("rename", "lose", count=6, match="name=s")
    leases: list[Lease] = []
    errors: list[Exception] = []

    def claim(pool: ContainerPool, name: str) -> None:
        try:
            leases.append(pool.claim(name, timeout=5))
        except ClaimError as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=claim, args=(pools[i % 3], f"s{i}")) for i in range(12)
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert len({lease.container_id for lease in leases}) == len(leases) == 12
    assert all(docker.containers[x.container_id].name == x.name for x in leases)
