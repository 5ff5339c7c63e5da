"""The claim's check from the event stream (renames.py): a member is handed over once its
rename's own event was applied, so a death the engine logged before the rename turns the claim
down; where the stream cannot vouch (a gap, a lost event), the claim asks the server instead.

Members' published ports lead to real loopback HTTP servers (test_readiness.Server), so the
fallback GET is the real HTTP code.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from dockpool import ContainerPool
from dockpool._core.machine import ContainerId
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.renames import RenameWatch
from tests.fakes import FakeDocker, FakeEventSource, wait_for
from tests.unit.test_readiness import SPEC, Server


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made = [Server(), Server()]
    for server in made:
        server.up = True
    yield made
    for server in made:
        server.close()


@pytest.fixture
def docker(servers: list[Server]) -> FakeDocker:
    fake = FakeDocker(FakeEventSource(), auto_healthy=False)
    fake._ports = itertools.cycle([s.port for s in servers])  # member i -> server i % 2
    return fake


@pytest.fixture
def pool2(docker: FakeDocker) -> Iterator[ContainerPool]:
    pool = ContainerPool(
        SPEC, size=2, name="fake", adapter=docker, event_source=docker.events,
        backoff=Backoff(base=0.01, cap=0.05),
    ).start()  # fmt: skip
    assert wait_for(lambda: pool.stats().ready == 2)
    yield pool
    pool.close(timeout=5)


def _member_on(docker: FakeDocker, server: Server) -> ContainerId:
    (cid,) = [c.id for c in docker.containers.values()
              if c.ports.get(8000) == server.port and c.status == "running"
              and c.labels.get("dockpool.role") == "member"]  # fmt: skip
    return cid


def test_a_member_that_died_before_its_rename_is_never_handed_out(
    pool2: ContainerPool, docker: FakeDocker, servers: list[Server]
) -> None:
    """The member dies just before its rename, and the stream is slow: both events reach the
    pool 0.3 s later, the death first. The claim waits for its rename's event, so the machine
    knows of the death when it decides. (A claim that trusted its GET, which the server
    answered, handed the dead member over.)"""
    victims: list[ContainerId] = []

    def on_rename(old: str, new: str) -> None:
        if new == "session-1" and not victims:
            docker.events.held = []
            victims.extend(c.id for c in docker.containers.values() if c.name == old)
            docker.kill(victims[0])
            threading.Timer(0.3, docker.events.release).start()

    docker.on_rename = on_rename
    lease = pool2.claim("session-1", timeout=10)
    assert len(victims) == 1 and lease.container_id != victims[0]
    assert lease.name == "session-1" and docker.containers[lease.container_id].status == "running"
    assert wait_for(lambda: victims[0] not in docker.containers)  # discarded


def test_when_the_rename_event_is_lost_the_claim_asks_the_server(
    pool2: ContainerPool, docker: FakeDocker, servers: list[Server]
) -> None:
    """No event comes (a lossy stream): after the wait, the claim GETs the server, and a
    member whose server went silent is not handed over; the other one is."""
    silent = _member_on(docker, servers[0])
    servers[0].up = False
    docker.events.drop = True
    started = time.monotonic()
    lease = pool2.claim("session-1", timeout=10)
    assert lease.container_id != silent and lease.ports[8000] == servers[1].port
    assert time.monotonic() - started >= 0.5 or servers[0].gets == 0  # waited, then asked


def test_a_claim_trusts_no_stream_between_a_reconnect_and_its_resync() -> None:
    watch = RenameWatch()
    assert watch.expect(ContainerId("c1"), "s") is None  # never connected
    watch.connected()
    before = watch.epoch
    assert watch.expect(ContainerId("c1"), "s") is None  # connected, the gap not closed yet
    watch.synced(before)
    waiter = watch.expect(ContainerId("c1"), "s")
    assert waiter is not None
    watch.applied(ContainerId("c1"), "/s")
    assert waiter.wait(0)
    stale = watch.epoch
    watch.lost()
    watch.connected()
    watch.synced(stale)  # a resync that began before the loss closes no gap
    assert watch.expect(ContainerId("c2"), "s") is None


def test_a_loss_releases_every_waiting_claim_unanswered() -> None:
    watch = RenameWatch()
    watch.connected()
    watch.synced(watch.epoch)
    waiters: list[Any] = [watch.expect(ContainerId(f"c{i}"), f"s{i}") for i in range(3)]
    watch.applied(ContainerId("c0"), "s0")
    watch.lost()
    assert [w.wait(0) for w in waiters] == [True, False, False]
    watch.applied(ContainerId("c1"), "s1")  # too late: the claim has fallen back already
    assert not waiters[1].wait(0)
    other = watch.expect(ContainerId("c9"), "s9")
    assert other is None


def test_check_at_claim_reloads_live_and_keeps_the_members(
    pool2: ContainerPool, docker: FakeDocker, servers: list[Server]
) -> None:
    """Turned on by a reload, the claim asks the server (a silent one is not handed out), and
    no member was replaced for it: nothing a member is made of changed."""
    assert SPEC.readiness is not None
    before = {c.id for c in docker.containers.values() if c.labels.get("dockpool.role") == "member"}
    on = attrs.evolve(SPEC, readiness=attrs.evolve(SPEC.readiness, check_at_claim=True))
    pool2.apply_config(attrs.evolve(pool2.config, spec=on))
    silent = _member_on(docker, servers[0])
    servers[0].up = False
    gets = servers[1].gets
    lease = pool2.claim("session-1", timeout=10)
    assert lease.container_id != silent and lease.container_id in before
    assert servers[1].gets > gets  # asked (the silent one, if picked first, was discarded)
