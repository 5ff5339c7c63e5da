"""Doubts that may be another session's: settled from the stream's old name, not left forever.

A claim whose lock was lost before its rename, and that could not see its rename's event (a gap
in the stream), recorded a doubt without the rename's old name. Such a doubt was left alone at
the first resync: the container kept the session's name, handed to nobody (the chaos run found
three, seed 2816149642). The stream tells the old name later (a late event, a replay after a
reconnect); the doubt waits for it, and is settled by it.
"""

from __future__ import annotations

import time

from dockpool._core.machine import ContainerId
from dockpool._runtime import doubts as doubts_module
from dockpool._runtime.doubts import Doubt, Doubts
from dockpool._runtime.renames import RenameWatch
from tests.fakes import FakeDocker, FakeEventSource

MEMBER = "dockpool-p-0123456789ab"


def _claimed(docker: FakeDocker, session: str) -> ContainerId:
    """A container a claim renamed from the member name to `session`."""
    cid = docker.create_marker(MEMBER, {"dockpool.pool": "p"}, "img:1", stdin=False)
    docker.rename(cid, session)
    return cid


def test_the_stream_s_old_name_settles_a_doubt_that_may_be_another_s() -> None:
    """The rename took it from the pool (old name: the member's): nobody received it, so it is
    removed; it was left alone before (and stayed under the session's name for good)."""
    docker = FakeDocker(FakeEventSource())
    watch = RenameWatch()
    doubts = Doubts(docker, "p", watch.old_name_of)
    cid = _claimed(docker, "s1")
    doubts.add(Doubt(cid, "s1", MEMBER, None, exclusive=False))
    doubts.resolve()
    assert cid in docker.containers and len(doubts) == 1  # waits for the stream
    watch.seen(cid, "/s1", "/" + MEMBER)  # the event, late or replayed
    doubts.resolve()
    assert cid not in docker.containers and len(doubts) == 0


def test_taken_from_another_session_it_gets_that_name_back() -> None:
    docker = FakeDocker(FakeEventSource())
    watch = RenameWatch()
    doubts = Doubts(docker, "p", watch.old_name_of)
    cid = _claimed(docker, "s2")
    watch.seen(cid, "s2", "someone-else")  # (before the doubt: the event came first)
    doubts.add(Doubt(cid, "s2", MEMBER, None, exclusive=False))
    doubts.resolve()
    assert docker.containers[cid].name == "someone-else" and len(doubts) == 0


def test_without_the_old_name_it_is_left_alone_after_the_patience() -> None:
    """The stream never told: after `_PATIENCE` the doubt is given up (logged), the container
    left alone (it may be another session's: a host takes it over with lease_for)."""
    docker = FakeDocker(FakeEventSource())
    doubts = Doubts(docker, "p")
    cid = _claimed(docker, "s3")
    doubts.add(Doubt(cid, "s3", MEMBER, None, exclusive=False,
                     since=time.monotonic() - doubts_module._PATIENCE - 1))  # fmt: skip
    doubts.resolve()
    assert docker.containers[cid].name == "s3" and len(doubts) == 0


def test_the_watch_remembers_a_bounded_number_of_renames() -> None:
    watch = RenameWatch()
    for i in range(1100):
        watch.seen(ContainerId(f"c{i}"), f"s{i}", f"m{i}")
    watch.seen(ContainerId("x"), "s", None)  # (no old name: nothing to remember)
    assert watch.old_name_of(ContainerId("c0"), "s0") is None
    assert watch.old_name_of(ContainerId("c1099"), "s1099") == "m1099"
    assert watch.old_name_of(ContainerId("x"), "s") is None
