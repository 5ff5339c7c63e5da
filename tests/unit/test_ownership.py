"""Exactly one owner: the races that used to hand a container out twice, or leak one, forced
deterministically on the in-memory engine (hooks pause the fake engine at the racy step)."""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dockpool import ClaimError, ContainerPool, Lease
from tests.fakes import FakeDocker, wait_for
from tests.unit import ownership_help as own
from tests.unit.ownership_help import members, named

docker = own.docker  # the fixtures: pools of one name on one fake engine,
make_pool = own.make_pool  # each with its own event stream (its "process")


def test_resync_that_lists_before_a_claim_does_not_bring_the_member_back(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A resync whose list predates a claim neither re-adopts nor removes the claimed one."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    claimed: list[Lease] = []

    def claim_during_the_list() -> None:
        docker.on_list = lambda: None  # once
        docker.events.drop = True  # and its rename event is lost: only the table can tell
        worker = threading.Thread(target=lambda: claimed.append(pool.claim("s1")))
        worker.start()
        worker.join(5)

    docker.on_list = claim_during_the_list
    before = pool.stats().resyncs
    pool._rt.reconciler.request_resync()
    assert wait_for(lambda: pool.stats().resyncs > before)
    [lease] = claimed
    assert pool._rt.state.table.key_of(lease.container_id) is None  # not adopted again
    docker.events.drop = False
    pool._rt.reconciler.request_resync()  # the refill's events were lost too: as on a reconnect
    pool.wait_until_full(timeout=5)
    second = pool.claim("s2")
    assert second.container_id != lease.container_id
    assert docker.containers[lease.container_id].name == "s1"  # still there, still s1's
    assert pool._rt.state.table.key_of(lease.container_id) is None


def test_member_that_dies_at_the_rename_is_not_handed_out(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A member that dies while its claim renames it is discarded; the claim gets another."""
    pool = make_pool(2)
    pool.wait_until_full(timeout=5)
    victims: list[str] = []

    def die_now(old: str, new: str) -> None:
        if new == "s1" and not victims:
            c = named(docker, old)
            assert c is not None
            victims.append(c.id)
            docker.kill(c.id, code=137)  # dies between the pick and the rename

    docker.on_rename = die_now
    lease = pool.claim("s1")
    assert victims and lease.container_id != victims[0]
    assert docker.containers[lease.container_id].status == "running"
    assert wait_for(lambda: victims[0] not in docker.containers)  # discarded, never leaked
    assert named(docker, "s1") is not None and named(docker, "s1").id == lease.container_id  # type: ignore[union-attr]


def test_cold_start_whose_create_response_is_lost_leaves_nothing_behind(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A create that went through but whose answer was lost leaves no container under the
    session's name, and the container it made is removed by the upkeep."""
    pool = make_pool(0)
    assert wait_for(lambda: pool.stats().resyncs >= 1)  # the first resync is behind us
    docker.faults.arm("create", "lose", match="dockpool-fake-")
    with pytest.raises(ClaimError, match="connection reset"):
        pool.claim("s1")
    assert named(docker, "s1") is None
    assert wait_for(lambda: members(docker) == [])
    assert pool.claim("s1").name == "s1"  # the name is free: the next claim gets it


def test_cancelled_aclaim_before_its_rename_returns_the_member(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A cancelled aclaim stops before renaming; the member goes back to the pool. (On the
    per-claim lock path: a process alone holds locks ahead, and its claim has no step before
    the rename to stop at.)"""
    pool = make_pool(1)
    pool._rt.ahead.enabled = False
    pool._rt.ahead.set_alone(False)
    pool.wait_until_full(timeout=5)
    assert wait_for(lambda: not pool._rt.locks.held())
    locked, go = threading.Event(), threading.Event()

    def pause_at_the_lock(old: str, new: str) -> None:
        if new.endswith("-lock") and not locked.is_set():
            locked.set()
            go.wait(5)

    docker.on_rename = pause_at_the_lock

    async def main() -> None:
        task = asyncio.ensure_future(pool.aclaim("s1"))
        await asyncio.to_thread(locked.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go.set()

    [member] = members(docker)
    asyncio.run(main())
    assert wait_for(lambda: pool.stats().ready == 1 and pool.stats().claiming == 0)
    assert ("rename", "s1") not in docker.calls  # it stopped before the rename
    assert members(docker) == [member]  # the same member, back in the pool
    assert [c for c in docker.calls if c[0] == "create"] == [("create", member.name)]  # no cold


def test_cancelled_aclaim_after_its_rename_removes_what_nobody_received(
    make_pool: Any, docker: FakeDocker
) -> None:
    """A container renamed for a cancelled aclaim belongs to nobody: it is removed."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    renaming, go = threading.Event(), threading.Event()

    def pause_at_the_rename(old: str, new: str) -> None:
        if new == "s1":
            renaming.set()
            go.wait(5)

    docker.on_rename = pause_at_the_rename

    async def main() -> None:
        task = asyncio.ensure_future(pool.aclaim("s1"))
        await asyncio.to_thread(renaming.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go.set()
        await asyncio.sleep(0.2)  # the claim's thread finishes; its done-callback runs here

    asyncio.run(main())
    assert wait_for(lambda: named(docker, "s1") is None)


def test_a_burst_of_cold_aclaims_does_not_queue_behind_the_loops_executor(
    make_pool: Any, docker: FakeDocker
) -> None:
    """Cold starts awaited at once all run at once: an aclaim that waits for its cold start
    holds a thread, and the loop's default executor (here 2 threads) would queue the rest."""
    docker.auto_healthy = False  # every cold start waits until the test lets it be healthy
    pool = make_pool(0)

    def creates() -> list[str]:
        return [n for op, n in docker.calls if op == "create" and n.startswith("dockpool-fake-")]

    async def main() -> list[Lease]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
        tasks = [asyncio.ensure_future(pool.aclaim(f"s{i}", timeout=10)) for i in range(4)]
        with ThreadPoolExecutor(1) as own:  # not the default executor: it is what is tested
            waiting = functools.partial(wait_for, lambda: len(creates()) == 4)
            all_created = await asyncio.get_running_loop().run_in_executor(own, waiting)
        for c in members(docker):
            docker.set_health(c.id, "healthy")
        leases = await asyncio.gather(*tasks)
        assert all_created, f"only {len(creates())} of 4 cold starts ran at once"
        return leases

    leases = asyncio.run(main())
    assert sorted(lease.name for lease in leases) == ["s0", "s1", "s2", "s3"]
    assert len({lease.container_id for lease in leases}) == 4


def test_a_claim_that_ends_after_its_loop_closed_is_removed(
    make_pool: Any, docker: FakeDocker
) -> None:
    """The loop of an aclaim closed while its rename ran (asyncio.run returned): the renamed
    container reaches nobody, so it is removed, by the claim's own thread."""
    pool = make_pool(1)
    pool.wait_until_full(timeout=5)
    renaming, go = threading.Event(), threading.Event()

    def pause_at_the_rename(old: str, new: str) -> None:
        if new == "s1":
            renaming.set()
            go.wait(5)

    docker.on_rename = pause_at_the_rename

    async def main() -> None:
        task = asyncio.ensure_future(pool.aclaim("s1"))  # cancelled as the loop ends
        await asyncio.to_thread(renaming.wait, 5)
        assert not task.done()

    asyncio.run(main())
    go.set()
    assert wait_for(lambda: ("rename", "s1") in docker.calls and named(docker, "s1") is None)
    assert wait_for(lambda: not [t for t in threading.enumerate() if t.name.endswith("-claim")])


def test_resync_interval_edit_applies_at_once(make_pool: Any) -> None:
    """Turning the periodic resync on (from 0) takes effect without waiting an old interval."""
    pool = make_pool(1, resync_interval=0)
    pool.wait_until_full(timeout=5)
    before = pool.stats().resyncs
    pool.apply_config(pool.config.__class__(**{**_fields(pool), "resync_interval": 0.05}))
    assert wait_for(lambda: pool.stats().resyncs >= before + 3, timeout=2)


def _fields(pool: ContainerPool) -> dict[str, Any]:
    import attrs

    fields = attrs.asdict(pool.config, recurse=False)
    fields.pop("path")
    return fields


def test_two_claimers_that_picked_the_same_member(
    make_pool: Any, docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Picks are not exclusive (the claim request is): two claimers that picked one member
    both get a container, each its own. The loser's "not claimable" used to reach the
    member's record and put it back to READY under the winner's rename (a container renamed
    for a claim that then claimed another one: a leak, and a claimer told it failed)."""
    from dockpool._runtime import claims

    pool = make_pool(2)
    pool.wait_until_full(timeout=5)
    both_picked, loser_done = threading.Barrier(2), threading.Event()
    real, real_handed_over = claims.claim_member, claims.handed_over
    calls = [0]

    def rendezvous(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= 2:
            both_picked.wait(5)  # both have picked (the same, longest-ready member)
        outcome, ports = real(*args, **kwargs)
        if outcome is None:
            loser_done.set()
        return outcome, ports

    def handed_over(ex: Any, member: Any, outcome: Any, lease: Any) -> bool:
        done = real_handed_over(ex, member, outcome, lease)
        if getattr(outcome, "reason", "") == "not claimable":
            loser_done.set()
        return done

    def winner_waits(old: str, new: str) -> None:
        if new in ("x1", "x2"):
            loser_done.wait(2)  # the winner's rename lands after the loser is done

    monkeypatch.setattr(claims, "claim_member", rendezvous)
    monkeypatch.setattr(claims, "handed_over", handed_over)
    docker.on_rename = winner_waits
    leases: list[Lease] = []
    errors: list[BaseException] = []

    def claim(name: str) -> None:
        try:
            leases.append(pool.claim(name, timeout=5))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(n,)) for n in ("x1", "x2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == [] and len(leases) == 2
    assert len({lease.container_id for lease in leases}) == 2
    assert all(docker.containers[lease.container_id].name == lease.name for lease in leases)
    assert all(lease.from_pool for lease in leases)
