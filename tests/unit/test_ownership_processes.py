"""Exactly one owner across processes: several pools of one name on one fake engine (each its
own "process"), one upkeep leader, claims that never share, and closes that leak nothing."""

from __future__ import annotations

import threading
import time
from typing import Any

from dockpool import ContainerPool, Lease
from dockpool._core.spec import OWNER_LABEL, POOL_LABEL, ROLE_LABEL
from tests.fakes import FakeContainer, FakeDocker, wait_for
from tests.unit import ownership_help as own
from tests.unit.ownership_help import members, named

docker = own.docker  # the fixtures: pools of one name on one fake engine,
make_pool = own.make_pool  # each with its own event stream (its "process")


def test_processes_closing_at_once_leave_no_member_a_create_made_late(
    make_pool: Any, docker: FakeDocker
) -> None:
    """Two processes close at once while the leader's refill create is in flight (uvicorn
    --workers stopping): the create lands before its process leaves, so the last process to
    leave sees the member and removes it. Before, the leader left first, the other swept an
    engine without it, and the create's member was left behind, nobody's."""
    a = make_pool(1)
    a.wait_until_full(timeout=5)
    b = make_pool(1)
    b.wait_until_full(timeout=5)
    assert a.leader and not b.leader
    in_create, go = threading.Event(), threading.Event()

    def hold(name: str) -> None:
        if name.startswith("dockpool-fake-") and not in_create.is_set():
            in_create.set()
            go.wait(5)

    docker.on_create = hold
    b.claim("s1")  # the leader refills
    assert in_create.wait(5)
    closing = threading.Thread(target=a.close, kwargs={"timeout": 10})
    closing.start()
    time.sleep(0.2)  # a is closing, its create still in flight
    b.close(timeout=5)
    go.set()
    closing.join(10)
    assert members(docker) == [], "a member made during the close was left behind"
    assert named(docker, "s1") is not None  # the claimed one stays


def test_processes_share_one_pool_and_one_leader(make_pool: Any, docker: FakeDocker) -> None:
    """Two processes of one pool: one upkeep leader, size counted once, all members shared."""
    a = make_pool(3)
    a.wait_until_full(timeout=5)
    b = make_pool(3)
    b.wait_until_full(timeout=5)
    assert a.leader != b.leader
    assert len(members(docker)) == 3  # not 6
    leases = [b.claim(f"b{i}") for i in range(3)]
    assert all(lease.from_pool for lease in leases)
    assert wait_for(lambda: a.stats().ready == 3 and len(members(docker)) == 3)


def test_a_stale_view_never_takes_a_claimed_member(make_pool: Any, docker: FakeDocker) -> None:
    """A process that missed a claim's events still cannot take that member: its rename by
    member name finds nothing, and it moves on."""
    a = make_pool(1)
    a.wait_until_full(timeout=5)
    b = make_pool(1)
    b.wait_until_full(timeout=5)
    b_source = docker.subscribers[1]
    b_source.drop = True  # b hears nothing from now on: its table goes stale
    first = a.claim("a1")
    second = b.claim("b1")  # b still believes a1's container is its ready member
    assert second.container_id != first.container_id
    assert docker.containers[first.container_id].name == "a1"
    assert docker.containers[second.container_id].name == "b1"


def test_concurrent_claims_from_two_processes_never_share(
    make_pool: Any, docker: FakeDocker
) -> None:
    """Claimers in two processes racing for the same members each get a different one."""
    a = make_pool(4, max_containers=16)
    a.wait_until_full(timeout=5)
    b = make_pool(4, max_containers=16)
    b.wait_until_full(timeout=5)
    barrier = threading.Barrier(8)
    leases: list[Lease] = []

    def claim(pool: ContainerPool, name: str) -> None:
        barrier.wait(5)
        leases.append(pool.claim(name))

    threads = [threading.Thread(target=claim, args=(a if i % 2 else b, f"s{i}")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(leases) == 8
    assert len({lease.container_id for lease in leases}) == 8
    assert all(docker.containers[lease.container_id].name == lease.name for lease in leases)


def test_leader_gone_another_process_takes_over(make_pool: Any, docker: FakeDocker) -> None:
    """When the leader's presence dies, another process takes the upkeep and refills."""
    a = make_pool(2)
    a.wait_until_full(timeout=5)
    b = make_pool(2)
    leader, follower = (a, b) if a.leader else (b, a)
    own.sigkill(make_pool, docker, leader)
    assert wait_for(lambda: follower.leader)
    follower.claim("s1")
    assert wait_for(lambda: follower.stats().ready == 2 and len(members(docker)) == 2)


def test_last_process_to_close_removes_the_members(make_pool: Any, docker: FakeDocker) -> None:
    """A process that closes while another runs leaves the members; the last removes them."""
    a = make_pool(2)
    a.wait_until_full(timeout=5)
    b = make_pool(2)
    b.wait_until_full(timeout=5)
    kept = a.claim("kept")
    a.close(timeout=5)
    assert wait_for(lambda: b.leader and len(members(docker)) == 2)
    b.close(timeout=5)
    assert members(docker) == []
    assert docker.containers[kept.container_id].name == "kept"
    assert [c.name for c in docker.containers.values()] == ["kept"]  # no presence, no hand


def test_a_member_renamed_by_someone_during_its_removal_is_left_alone(
    make_pool: Any, docker: FakeDocker
) -> None:
    """Someone renames a member just as the upkeep removes it: it is theirs now, not removed."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    [member] = members(docker)

    def rename_first(container: str) -> None:
        docker.on_remove = lambda c: None  # once
        docker.rename(member.id, "theirs")  # lands between the pool's decision and its remove

    docker.on_remove = rename_first
    pool.resize(0)
    assert wait_for(lambda: pool.stats().retiring == 0 and pool.stats().ready == 0)
    assert docker.containers[member.id].name == "theirs"


def hands(docker: FakeDocker) -> list[str]:
    return [c.name for c in docker.containers.values() if c.labels.get(ROLE_LABEL) == "hand"]


def test_a_hand_whose_create_answer_was_lost_is_removed_at_close(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A hand created while the engine restarts (its create went through, the answer was lost)
    is a container this process never learnt the id of. Closing removes it with the others:
    it carries the process's token. (Found by the chaos run: one such hand was left behind.)"""
    docker.faults.arm("create", "lose", match="-hand-")
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    rt = pool._rt
    assert rt is not None
    assert wait_for(lambda: len(rt.locks.held()) == 1)  # held ahead by a second hand
    assert len(hands(docker)) == 2  # the lost one, and the one holding the lock
    pool.close(timeout=5)
    assert hands(docker) == []


def test_the_last_process_removes_the_hands_of_a_process_that_died(
    make_pool: Any, docker: FakeDocker
) -> None:
    """The leader is SIGKILLed holding hands; the other process, now alone, closes before any
    resync cleared them: as the last of the pool it removes them (and the dead presence)."""
    a = make_pool(2)
    a.wait_until_full(timeout=5)
    b = make_pool(2)
    leader, other = (a, b) if a.leader else (b, a)
    leader.claim("s1")  # takes a hand of its own, kept after the claim
    assert wait_for(lambda: any(leader._rt.locks.labels[OWNER_LABEL] in h for h in hands(docker)))
    own.sigkill(make_pool, docker, leader)
    assert wait_for(lambda: other.leader)
    other.close(timeout=5)
    assert hands(docker) == []
    assert named(docker, "s1") is not None  # the claimed one stays


def presences(docker: FakeDocker) -> list[FakeContainer]:
    return [c for c in docker.containers.values() if c.labels.get(ROLE_LABEL) == "presence"]


def test_the_last_process_removes_a_presence_that_never_ran(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A process SIGKILLed between its presence's create and its start leaves a presence that
    never ran (status created, no die event): the last process to close removes it."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    labels = {POOL_LABEL: "fake", ROLE_LABEL: "presence", OWNER_LABEL: "deadbeef"}
    docker.create_marker("dockpool-fake-proc-deadbeef", labels, "img", stdin=True)
    pool.close(timeout=5)
    assert presences(docker) == []


def test_a_presence_whose_create_answer_was_lost_is_replaced_at_the_rejoin(
    make_pool: Any, docker: FakeDocker
) -> None:
    """The engine restarts: the process's presence died, and the create of the new one went
    through but its answer was lost. The next rejoin finds its own name taken by that
    container, removes it and starts a new presence (it used to fail on the name forever);
    at close no presence is left."""
    pool = make_pool(1, resync_interval=0.05)
    pool.wait_until_full(timeout=5)
    rt = pool._rt
    assert rt is not None
    docker.faults.arm("create", "lose", match="-proc-")
    docker.stop_presence(rt.peers.presence_id)
    assert wait_for(lambda: docker.faults.pending() == 0)  # the lost create happened
    assert wait_for(lambda: [c.status for c in presences(docker)] == ["running"])
    assert wait_for(lambda: pool.leader)
    pool.close(timeout=5)
    assert presences(docker) == []


def test_the_last_process_removes_a_member_whose_lock_a_dead_process_held(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A process SIGKILLed while it held a member's lock (mid-claim, or its cold start's): the
    last process's sweep frees the dead process's hands first, then removes the member (it
    used to try the removal once, find the lock held, and leave the member behind)."""
    a = make_pool(1)
    a.wait_until_full(timeout=5)
    b = make_pool(1)
    b.wait_until_full(timeout=5)
    (member,) = members(docker)
    locked = [c.name for c in docker.containers.values() if c.name.endswith("-lock")]
    assert wait_for(lambda: not [c for c in docker.containers.values()
                                 if c.name.endswith("-lock")]), locked  # fmt: skip
    assert b._rt is not None and b._rt.locks.acquire(member.name) is not None
    own.sigkill(make_pool, docker, b)
    a.close(timeout=5)
    assert members(docker) == []
    assert hands(docker) == []
