"""The member state machine, as a table covering every state x event pair."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from dockpool._core import machine as m
from dockpool._core.machine import State

CID = m.ContainerId("c0ffee")
NAME = "dockpool-demo-abc123"

EVENTS: dict[str, m.Event] = {
    "created": m.Created(CID),
    "create_failed": m.CreateFailed("image not found"),
    "started": m.Started(),
    "start_failed": m.StartFailed("port taken"),
    "healthy": m.Healthy(),
    "answered": m.Answered(),
    "warm_up_failed": m.WarmUpFailed("POST /api/bash: HTTP 500"),
    "unhealthy": m.Unhealthy(),
    "died": m.Died(3),
    "oom": m.Oom(),
    "destroyed": m.Destroyed(),
    "renamed": m.Renamed("someone-elses-name"),
    "paused": m.Paused(),
    "claim_requested": m.ClaimRequested("session-1"),
    "claim_succeeded": m.ClaimSucceeded(),
    "claim_failed": m.ClaimFailed("name in use"),
    "retire_requested": m.RetireRequested("shrink"),
    "observed": m.Observed(status="running", health="starting", name=NAME),
}

IGNORED = None  # the event changes nothing: same record, no effects

# What happens to a member that exists on the engine, before and after it is ready.
LOST_EARLY = (State.RETIRING, [m.Remove, m.Failure, m.Replace, m.Notify])
LOST_LATE = (State.RETIRING, [m.Remove, m.Replace, m.Notify])
VANISHED = (State.GONE, [m.Replace, m.Notify])
PAUSED = (State.RETIRING, [m.Remove, m.Replace, m.Notify])
RETIRED = (State.RETIRING, [m.Remove, m.Notify])

EXPECTED: dict[State, dict[str, tuple[State, list[type]] | None]] = {
    State.CREATING: {
        "created": (State.STARTING, [m.Start]),
        "create_failed": (State.GONE, [m.Failure, m.Notify]),
        "retire_requested": (State.RETIRING, [m.Notify]),
    },
    State.STARTING: {
        "started": (State.WARMING, [m.Notify]),
        "start_failed": (State.RETIRING, [m.Remove, m.Failure, m.Notify]),
        "healthy": (State.READY, [m.Notify]),
        "unhealthy": LOST_EARLY,
        "died": LOST_EARLY,
        "oom": LOST_EARLY,
        "destroyed": VANISHED,
        "renamed": VANISHED,
        "paused": PAUSED,
        "retire_requested": RETIRED,
        "observed": (State.WARMING, [m.Notify]),  # running: the start went through
    },
    State.WARMING: {
        "healthy": (State.READY, [m.Notify]),
        "answered": (State.READY, [m.Notify]),
        "warm_up_failed": LOST_EARLY,
        "unhealthy": LOST_EARLY,
        "died": LOST_EARLY,
        "oom": LOST_EARLY,
        "destroyed": VANISHED,
        "renamed": VANISHED,
        "paused": PAUSED,
        "retire_requested": RETIRED,
    },
    State.READY: {
        "unhealthy": LOST_LATE,
        "died": LOST_LATE,
        "oom": LOST_LATE,
        "destroyed": VANISHED,
        "renamed": VANISHED,
        "paused": PAUSED,
        "claim_requested": (State.CLAIMING, [m.Rename]),
        "retire_requested": RETIRED,
    },
    State.CLAIMING: {
        "claim_succeeded": (State.CLAIMED, [m.Replace, m.Notify]),
        "claim_failed": (State.READY, [m.Notify]),
        "unhealthy": (State.CLAIMING, []),
        "died": (State.CLAIMING, []),
        "oom": (State.CLAIMING, []),
        "destroyed": (State.CLAIMING, []),
        "paused": (State.CLAIMING, []),
    },
    State.CLAIMED: {},
    State.RETIRING: {
        "created": (State.RETIRING, [m.Remove]),
        "create_failed": (State.GONE, [m.Notify]),
        "destroyed": (State.GONE, [m.Notify]),
        "renamed": (State.GONE, [m.Notify]),  # claimed elsewhere before the remove: theirs
        "observed": (State.RETIRING, [m.Remove]),  # still there: the remove is retried
    },
    State.GONE: {},
}


def _member(state: State) -> m.Member:
    cid = None if state is State.CREATING else CID
    return m.Member(key=m.MemberKey("abc123"), name=NAME, state=state, container_id=cid)


def _cases() -> list[Any]:
    cases: list[Any] = []
    for state in State:
        for event_name in EVENTS:
            expected = EXPECTED[state].get(event_name, IGNORED)
            cases.append(
                pytest.param(state, event_name, expected, id=f"{state.value}-{event_name}")
            )
    return cases


def test_every_event_type_is_in_the_table() -> None:
    """The table exercises every event type the machine defines."""
    assert {type(e) for e in EVENTS.values()} == set(m.EVENT_TYPES)


@pytest.mark.parametrize(("state", "event_name", "expected"), _cases())
def test_transition_table(
    state: State, event_name: str, expected: tuple[State, list[type]] | None
) -> None:
    """Each state answers each event with the expected next state and effect kinds."""
    member = _member(state)
    new, effects = m.transition(member, EVENTS[event_name])
    if expected is None:
        assert new == member
        assert effects == ()
    else:
        assert new.state is expected[0]
        assert [type(e) for e in effects] == expected[1]


def test_created_records_the_container_id() -> None:
    """The id returned by create is kept on the record."""
    member = attrs.evolve(_member(State.CREATING), container_id=None)
    new, _ = m.transition(member, m.Created(m.ContainerId("abc")))
    assert new.container_id == "abc"


def test_claim_rename_targets_the_session_name() -> None:
    """A claim asks for a rename to exactly the session's name."""
    _, effects = m.transition(_member(State.READY), m.ClaimRequested("oh-agent-server-x"))
    assert effects == (m.Rename("oh-agent-server-x"),)


def test_member_without_health_check_is_ready_once_started() -> None:
    """Without a health check, running is ready."""
    member = attrs.evolve(_member(State.STARTING), needs_health=False)
    new, effects = m.transition(member, m.Started())
    assert new.state is State.READY
    assert effects == (m.Notify("member_ready"),)


def test_member_that_died_during_claim_is_not_returned_to_the_pool() -> None:
    """A failed claim puts a member back only if it did not die meanwhile."""
    member, _ = m.transition(_member(State.CLAIMING), m.Died(137))
    assert member.dead
    new, effects = m.transition(member, m.ClaimFailed("name in use"))
    assert new.state is State.RETIRING
    assert m.Remove() in effects


def test_claim_failed_on_a_gone_member_removes_it() -> None:
    """A claim that found its member gone drops it and asks for a replacement."""
    new, effects = m.transition(_member(State.CLAIMING), m.ClaimFailed("gone", alive=False))
    assert new.state is State.RETIRING
    assert [type(e) for e in effects] == [m.Remove, m.Replace, m.Notify]


def test_retire_with_replace_asks_for_a_new_member() -> None:
    """Max-age retirement replaces; shrinking does not."""
    _, effects = m.transition(_member(State.READY), m.RetireRequested("max age", replace=True))
    assert m.Replace("max age") in effects


def test_renamed_back_to_own_name_is_ignored() -> None:
    """A rename event carrying the member's own name (e.g. adoption) changes nothing."""
    member = _member(State.READY)
    assert m.transition(member, m.Renamed(NAME)) == (member, ())


def test_provision_creates() -> None:
    """A new member starts in CREATING with a create effect."""
    member, effects = m.provision(m.MemberKey("k"), "n", needs_health=True, now=5.0)
    assert member.state is State.CREATING and member.born == 5.0
    assert effects[0] == m.Create()


OBS = [
    # (state, status, health, name, expected state)
    pytest.param(State.WARMING, "running", "healthy", NAME, State.READY, id="warming-healthy"),
    pytest.param(
        State.WARMING, "running", "unhealthy", NAME, State.RETIRING, id="warming-unhealthy"
    ),
    pytest.param(State.WARMING, "running", "starting", NAME, State.WARMING, id="warming-starting"),
    pytest.param(State.READY, "exited", None, NAME, State.RETIRING, id="ready-exited"),
    pytest.param(State.READY, "dead", None, NAME, State.RETIRING, id="ready-dead"),
    pytest.param(State.READY, "paused", "healthy", NAME, State.RETIRING, id="ready-paused"),
    pytest.param(State.READY, "running", "healthy", "other", State.GONE, id="ready-renamed"),
    pytest.param(State.READY, "running", "healthy", "/" + NAME, State.READY, id="ready-same"),
    pytest.param(State.READY, "created", None, NAME, State.RETIRING, id="ready-never-started"),
    pytest.param(State.STARTING, "created", None, NAME, State.STARTING, id="starting-created"),
    pytest.param(State.CLAIMING, "running", "healthy", "session", State.CLAIMING, id="claiming"),
    pytest.param(State.CLAIMED, "exited", None, "session", State.CLAIMED, id="claimed"),
    pytest.param(State.RETIRING, "exited", None, NAME, State.RETIRING, id="retiring-exited"),
    pytest.param(State.RETIRING, "running", "healthy", NAME, State.RETIRING, id="retiring-running"),
]


@pytest.mark.parametrize(("state", "status", "health", "name", "expected"), OBS)
def test_resync_observation(
    state: State, status: str, health: str | None, name: str, expected: State
) -> None:
    """A resync observation is turned into the event it implies."""
    new, _ = m.transition(_member(state), m.Observed(status=status, health=health, name=name))
    assert new.state is expected


@pytest.mark.parametrize("status", ["running", "exited", "dead", "created", "paused"])
def test_retiring_member_still_listed_is_removed_again(status: str) -> None:
    """A retiring member that a resync still finds (its remove failed) gets another remove."""
    _, effects = m.transition(_member(State.RETIRING), m.Observed(status, None, NAME))
    assert effects == (m.Remove(),)


def test_retiring_member_renamed_by_someone_is_left_alone() -> None:
    """A retiring member found under another name is someone else's now: no remove."""
    new, effects = m.transition(_member(State.RETIRING), m.Observed("running", None, "theirs"))
    assert new.state is State.GONE
    assert not any(isinstance(e, m.Remove) for e in effects)
