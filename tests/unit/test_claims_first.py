"""Claims before upkeep: refill creates wait while this process has claims in flight, and
`refill_hold` seconds after one, for a bounded time (so a burst is served first, and the
refill always runs after it)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dockpool import ContainerPool, ContainerSpec, HealthCheck
from dockpool._core.machine import ClaimRequested
from dockpool._runtime.backoff import Backoff
from tests.fakes import FakeDocker, FakeEventSource, wait_for

SPEC = ContainerSpec(
    image="img:1", ports=[8000], healthcheck=HealthCheck(test=["CMD", "true"], interval=30)
)


class Timeline:
    """When each create call and each session rename happened (time.monotonic)."""

    def __init__(self, docker: FakeDocker, slow: dict[str, float]) -> None:
        self.creates: list[float] = []
        self.renamed: dict[str, float] = {}
        real_create, real_rename = docker.create, docker.rename

        def create(*args: Any, **kwargs: Any) -> Any:
            self.creates.append(time.monotonic())
            return real_create(*args, **kwargs)

        def rename(container: str, new_name: str) -> None:
            time.sleep(slow.get(new_name, 0.0))  # a slow claim, mid-flight
            real_rename(container, new_name)
            self.renamed[new_name] = time.monotonic()

        docker.create = create  # type: ignore[method-assign]
        docker.rename = rename  # type: ignore[method-assign]


@pytest.fixture
def docker() -> FakeDocker:
    return FakeDocker(FakeEventSource())


@pytest.fixture
def pool(docker: FakeDocker) -> Iterator[ContainerPool]:
    p = ContainerPool(SPEC, size=2, name="fake", adapter=docker, event_source=docker.events,
                      backoff=Backoff(base=0.01, cap=0.05))  # fmt: skip
    p.start()
    p.wait_until_full(timeout=5)
    yield p
    p.close(timeout=5)


def _claims(pool: ContainerPool, slow_one: str, fast_one: str) -> None:
    slow = threading.Thread(target=pool.claim, args=(slow_one,), kwargs={"timeout": 10})
    slow.start()
    assert wait_for(lambda: pool.stats().claiming == 1)  # the slow claim holds its member
    pool.claim(fast_one, timeout=10)  # the other member: its refill is due now
    slow.join(10)


def test_the_refill_waits_for_the_claims_in_flight(pool: ContainerPool,
                                                   docker: FakeDocker) -> None:  # fmt: skip
    timeline = Timeline(docker, {"slow": 0.6})
    before = len(timeline.creates)
    _claims(pool, "slow", "fast")
    assert wait_for(lambda: pool.stats().ready == 2)
    refills = timeline.creates[before:]
    assert len(refills) == 2
    assert min(refills) >= timeline.renamed["slow"]  # not while the slow claim was in flight
    assert timeline.renamed["fast"] < timeline.renamed["slow"]


def test_the_refill_is_never_starved(pool: ContainerPool, docker: FakeDocker) -> None:
    pool._rt.state.refill_yield = 0.2  # type: ignore[union-attr]
    timeline = Timeline(docker, {"slow": 1.5})
    before = len(timeline.creates)
    _claims(pool, "slow", "fast")
    first = timeline.creates[before]
    assert first < timeline.renamed["slow"]  # the refill went ahead after 0.2 s
    assert first - timeline.renamed["fast"] < 1.0


def test_concurrent_claimers_pick_apart(
    pool: ContainerPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two claimers at once never pick the same member: the pick and the claim's request are
    one step. (With the request a step after the pick, both picked the member ready longest,
    one lost it and picked again: in a burst of 16, up to 120 lost picks, serialised.)"""
    rt = pool._rt
    assert rt is not None
    real_pick, real_transition = rt.state.table.pick_for_claim, rt.executor.transition
    both_picked = threading.Barrier(2)
    first: dict[str, str] = {}

    def pick(*args: Any, **kwargs: Any) -> Any:
        member = real_pick(*args, **kwargs)
        if member is not None:
            first.setdefault(threading.current_thread().name, member.key)
        return member

    def transition(key: Any, event: Any) -> Any:
        if isinstance(event, ClaimRequested):
            # let the other claimer pick, if it can, before this one's request
            with contextlib.suppress(threading.BrokenBarrierError):
                both_picked.wait(timeout=0.5)
        return real_transition(key, event)

    monkeypatch.setattr(rt.state.table, "pick_for_claim", pick)
    monkeypatch.setattr(rt.executor, "transition", transition)
    threads = [threading.Thread(target=pool.claim, args=(f"s-{i}",), kwargs={"timeout": 10},
                                name=f"claimer-{i}") for i in range(2)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(first) == 2 and len(set(first.values())) == 2, first
    assert pool.stats().hits == 2


def test_the_refill_waits_longer_for_images_that_warm_slowly(
    pool: ContainerPool, docker: FakeDocker
) -> None:
    """With warm-ups of 2 s, the refill yields to a claim in flight for up to 3 s (1.5 x), not
    only `refill_yield`: a cold start's boot gets the machine before the refill's boots."""
    state = pool._rt.state  # type: ignore[union-attr]
    state.refill_yield, state.warmup = 0.2, 2.0
    timeline = Timeline(docker, {"slow": 1.0})
    before = len(timeline.creates)
    _claims(pool, "slow", "fast")
    assert wait_for(lambda: len(timeline.creates) > before)
    assert timeline.creates[before] >= timeline.renamed["slow"]  # waited past 0.2 s


def _held_pool(docker: FakeDocker, hold: float) -> ContainerPool:
    p = ContainerPool(SPEC, size=2, name="fake", adapter=docker, event_source=docker.events,
                      backoff=Backoff(base=0.01, cap=0.05), refill_hold=hold)  # fmt: skip
    p.start()
    p.wait_until_full(timeout=5)
    return p


@pytest.mark.parametrize("hold", [0.0, 0.6])
def test_the_refill_waits_refill_hold_after_a_claim(docker: FakeDocker, hold: float) -> None:
    """After a claim the session starts using its container: the refill's create waits
    `refill_hold` s (0: it goes at once), so that start is not slowed by a new boot."""
    p = _held_pool(docker, hold)
    try:
        timeline = Timeline(docker, {})
        p.claim("s-1", timeout=10)
        claimed = timeline.renamed["s-1"]
        assert wait_for(lambda: len(timeline.creates) == 1)
        waited = timeline.creates[0] - claimed
        assert (hold - 0.05 <= waited < hold + 0.5) if hold else waited < 0.3, waited
        assert wait_for(lambda: p.stats().ready == 2)
    finally:
        p.close(timeout=5)


def test_no_refill_slips_in_between_a_claims_end_and_its_hold(docker: FakeDocker) -> None:
    """The hold starts while the claim still counts as in flight: however late the claim's
    thread gets to set it (here 0.3 s late), a refill create never goes in between. (It did:
    the claim stopped counting, then set the hold; a create woken in between went at once.)"""
    p = _held_pool(docker, 0.6)
    try:
        state = p._rt.state  # type: ignore[union-attr]
        real_hold = state.hold_refills

        def late_hold() -> None:
            time.sleep(0.3)
            real_hold()

        state.hold_refills = late_hold  # type: ignore[method-assign]
        timeline = Timeline(docker, {})
        p.claim("s-1", timeout=10)
        assert wait_for(lambda: len(timeline.creates) == 1)
        assert timeline.creates[0] - timeline.renamed["s-1"] >= 0.3 + 0.6 - 0.05
    finally:
        p.close(timeout=5)


def test_every_claim_extends_the_hold(docker: FakeDocker) -> None:
    """A second claim during the hold restarts it: a burst is refilled after its last claim."""
    p = _held_pool(docker, 0.5)
    try:
        timeline = Timeline(docker, {})
        p.claim("s-1", timeout=10)
        time.sleep(0.3)
        p.claim("s-2", timeout=10)
        assert wait_for(lambda: len(timeline.creates) == 2)
        assert min(timeline.creates) - timeline.renamed["s-2"] >= 0.45
    finally:
        p.close(timeout=5)


def test_the_refill_hold_is_bounded(docker: FakeDocker) -> None:
    """A hold longer than the yield bound (refill_yield, or 1.5 x the warm-up) is cut to it:
    the refill is never starved."""
    p = _held_pool(docker, 30.0)
    try:
        p._rt.state.refill_yield = 0.3  # type: ignore[union-attr]
        timeline = Timeline(docker, {})
        p.claim("s-1", timeout=10)
        assert wait_for(lambda: len(timeline.creates) == 1, timeout=5)
        assert timeline.creates[0] - timeline.renamed["s-1"] < 1.5
    finally:
        p.close(timeout=5)
