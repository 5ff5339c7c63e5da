"""The machine's claim outcomes, cold-start reservations and discovery, as tables."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from dockpool._core import machine as m
from dockpool._core.machine import State

CID = m.ContainerId("c" * 64)
NAME = "dockpool-t-abc123"


def _member(state: State, **changes: Any) -> m.Member:
    member = m.Member(key=m.MemberKey("abc123"), name=NAME, state=state, container_id=CID)
    return attrs.evolve(member, **changes)


@pytest.mark.parametrize(
    ("member", "event", "state", "effects"),
    [
        pytest.param(
            _member(State.CLAIMING), m.ClaimSucceeded(alive=True), State.CLAIMED,
            [m.Replace, m.Notify], id="alive-claimed",
        ),
        pytest.param(
            _member(State.CLAIMING), m.ClaimSucceeded(alive=False), State.RETIRING,
            [m.Discard, m.Replace, m.Notify], id="found-dead-after-rename-discarded",
        ),
        pytest.param(
            _member(State.CLAIMING, dead=True), m.ClaimSucceeded(alive=True), State.RETIRING,
            [m.Discard, m.Replace, m.Notify], id="died-during-rename-discarded",
        ),
        pytest.param(
            _member(State.CLAIMING), m.ClaimFailed("locked by another process"), State.READY,
            [m.Notify], id="lost-the-lock-back-to-ready",
        ),
        pytest.param(
            _member(State.CLAIMING), m.ClaimFailed("gone", alive=False, gone=True), State.GONE,
            [m.Replace, m.Notify], id="taken-elsewhere-forgotten-not-removed",
        ),
        pytest.param(
            _member(State.CLAIMING, dead=True), m.ClaimFailed("cancelled"), State.RETIRING,
            [m.Remove, m.Replace, m.Notify], id="dead-and-not-renamed-removed",
        ),
    ],
)  # fmt: skip
def test_claim_outcomes(
    member: m.Member, event: m.Event, state: State, effects: list[type]
) -> None:
    """A claim hands out only a member that is alive; a dead one is never CLAIMED."""
    new, done = m.transition(member, event)
    assert new.state is state
    assert [type(e) for e in done] == effects


def test_reserved_member_is_claimable_only_by_its_session() -> None:
    """A cold start's member goes to its own session, not to another claim."""
    ready = _member(State.READY, reserved_for="s1")
    other, effects = m.transition(ready, m.ClaimRequested("s2"))
    assert other == ready and effects == ()
    mine, effects = m.transition(ready, m.ClaimRequested("s1"))
    assert mine.state is State.CLAIMING and effects == (m.Rename("s1"),)


@pytest.mark.parametrize(
    ("status", "health", "fingerprint", "state", "effects"),
    [
        pytest.param("running", "healthy", "fp", State.READY, [m.Notify], id="healthy-adopted"),
        pytest.param("running", "starting", "fp", State.WARMING, [m.Notify], id="warming-followed"),
        pytest.param("running", "healthy", "old", State.RETIRING, [m.Remove, m.Notify], id="old-spec"),
        pytest.param("running", "unhealthy", "fp", State.RETIRING, [m.Remove, m.Notify], id="unhealthy"),
        pytest.param("created", None, "fp", State.RETIRING, [m.Remove, m.Notify], id="never-started"),
        pytest.param("exited", None, "fp", State.RETIRING, [m.Remove, m.Notify], id="exited"),
        pytest.param("paused", "healthy", "fp", State.RETIRING, [m.Remove, m.Notify], id="paused"),
    ],
)  # fmt: skip
def test_discover(
    status: str, health: str | None, fingerprint: str, state: State, effects: list[type]
) -> None:
    """A container another process made is adopted, followed or retired, by the machine."""
    member, done = m.discover(
        m.MemberKey("abc123"),
        CID,
        m.Observed(status, health, "/" + NAME),
        needs_health=True,
        fingerprint=fingerprint,
        current="fp",
        now=5.0,
    )
    assert member.state is state and member.name == NAME and member.container_id == CID
    assert [type(e) for e in done] == effects


@pytest.mark.parametrize(
    ("status", "fingerprint", "state"),
    [
        pytest.param("created", "fp", State.STARTING, id="being-started-by-the-leader"),
        pytest.param("created", "old", State.RETIRING, id="created-of-an-old-spec"),
        pytest.param("exited", "fp", State.RETIRING, id="exited"),
    ],
)
def test_discover_without_the_upkeep(status: str, fingerprint: str, state: State) -> None:
    """A follower (which removes nothing) follows a member it lists between its create and
    its start to ready: the leader's refill on its way; it used to retire it for good."""
    member, _ = m.discover(
        m.MemberKey("abc123"),
        CID,
        m.Observed(status, None, "/" + NAME),
        needs_health=True,
        fingerprint=fingerprint,
        current="fp",
        now=5.0,
        upkeep=False,
    )
    assert member.state is state
    if state is State.STARTING:
        moved, _ = m.transition(member, m.Started())
        assert moved.state is State.WARMING
