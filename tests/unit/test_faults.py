"""FaultPlan and the request classifier: the fault vocabulary every injector shares, no Docker."""

from __future__ import annotations

import threading
from typing import Any

import attrs
import pytest

from tests.faults import ACTIONS, ENDPOINTS, Fault, FaultPlan, classify


def test_nothing_armed_passes_everything() -> None:
    """A fresh plan lets every call of every endpoint through and records nothing."""
    plan = FaultPlan()
    assert all(plan.take(endpoint, "/x") is None for endpoint in ENDPOINTS)
    assert plan.applied == []
    assert plan.counts() == {}


def test_count_calls_then_through() -> None:
    """A fault armed for `count` calls hits exactly the next `count` calls of its endpoint."""
    plan = FaultPlan()
    plan.arm("rename", "lose", count=2)
    assert plan.take("rename", "a") == Fault("rename", "lose")
    assert plan.take("rename", "b") == Fault("rename", "lose")
    assert plan.take("rename", "c") is None
    assert plan.applied == [("rename", "lose", "a"), ("rename", "lose", "b")]
    assert plan.counts() == {"rename/lose": 2}


def test_endpoints_are_independent() -> None:
    """A fault armed for one endpoint never hits another."""
    plan = FaultPlan()
    plan.arm("start", "refuse")
    assert plan.take("create") is None
    assert plan.take("start") == Fault("start", "refuse")


def test_faults_of_one_endpoint_apply_in_the_order_armed() -> None:
    """Two faults armed for one endpoint apply first-armed first."""
    plan = FaultPlan()
    plan.arm("inspect", "delay", seconds=0.5)
    plan.arm("inspect", "lose")
    assert plan.take("inspect") == Fault("inspect", "delay", 0.5)
    assert plan.take("inspect") == Fault("inspect", "lose")
    assert plan.counts() == {"inspect/delay": 1, "inspect/lose": 1}


def test_match_picks_calls_by_target() -> None:
    """With `match`, only calls whose target contains it take the fault; others pass it by."""
    plan = FaultPlan()
    plan.arm("rename", "lose", match="claimed-7")
    assert plan.take("rename", "/v1.41/containers/abc/rename?name=warm-1") is None
    assert plan.pending() == 1
    assert plan.take("rename", "/v1.41/containers/abc/rename?name=claimed-7") is not None
    assert plan.pending() == 0


def test_a_matching_fault_does_not_block_a_later_general_one() -> None:
    """A call that a matched fault skips still takes a later fault without `match`."""
    plan = FaultPlan()
    plan.arm("remove", "refuse", match="only-this")
    plan.arm("remove", "lose")
    assert plan.take("remove", "/containers/other") == Fault("remove", "lose")
    assert plan.take("remove", "/containers/only-this") == Fault("remove", "refuse")


def test_clear_disarms_but_keeps_the_record() -> None:
    """`clear` drops the faults not taken yet; what was applied stays on record."""
    plan = FaultPlan()
    plan.arm("list", "refuse", count=3)
    plan.take("list")
    plan.clear()
    assert plan.pending() == 0
    assert plan.take("list") is None
    assert plan.counts() == {"list/refuse": 1}


def test_applied_is_a_copy() -> None:
    """Changing the returned record does not change the plan's."""
    plan = FaultPlan()
    plan.arm("events", "lose")
    plan.take("events")
    plan.applied.clear()
    assert len(plan.applied) == 1


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        pytest.param(("nope", "lose"), {}, id="unknown-endpoint"),
        pytest.param(("rename", "explode"), {}, id="unknown-action"),
        pytest.param(("rename", "lose"), {"count": 0}, id="count-zero"),
        pytest.param(("rename", "lose"), {"count": True}, id="count-bool"),
        pytest.param(("rename", "lose"), {"count": 1.5}, id="count-float"),
        pytest.param(("inspect", "delay"), {}, id="delay-without-seconds"),
        pytest.param(("inspect", "delay"), {"seconds": -1.0}, id="delay-negative"),
        pytest.param(("inspect", "delay"), {"seconds": float("nan")}, id="delay-nan"),
        pytest.param(("inspect", "delay"), {"seconds": float("inf")}, id="delay-inf"),
        pytest.param(("inspect", "lose"), {"seconds": 1.0}, id="seconds-on-lose"),
        pytest.param(("inspect", "refuse"), {"seconds": 1.0}, id="seconds-on-refuse"),
        pytest.param(("inspect", "lose"), {"match": ""}, id="empty-match"),
    ],
)
def test_arm_rejects(args: tuple[str, str], kwargs: dict[str, Any]) -> None:
    """Arming with an unknown name or a value that cannot mean anything raises ValueError."""
    plan = FaultPlan()
    with pytest.raises(ValueError):
        plan.arm(*args, **kwargs)
    assert plan.pending() == 0


def test_take_rejects_an_unknown_endpoint() -> None:
    """An injector asking about an endpoint outside the vocabulary is a bug: ValueError."""
    with pytest.raises(ValueError, match="unknown endpoint"):
        FaultPlan().take("containers")


def test_fault_is_frozen_and_validated() -> None:
    """A Fault cannot change after it is made, nor be made invalid."""
    fault = Fault("create", "refuse")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fault.action = "lose"  # type: ignore[misc]
    with pytest.raises(ValueError):
        Fault("create", "delay")


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_can_be_armed(action: str) -> None:
    """Each action of the vocabulary arms and is taken as armed."""
    plan = FaultPlan()
    seconds = 0.25 if action == "delay" else 0.0
    plan.arm("other", action, seconds=seconds)
    assert plan.take("other") == Fault("other", action, seconds)


def test_takes_from_many_threads_apply_each_fault_once() -> None:
    """Threads taking at once apply exactly the armed number of faults, none twice."""
    plan = FaultPlan()
    plan.arm("inspect", "lose", count=2_000)
    hits: list[int] = []
    start = threading.Barrier(8)

    def taker() -> None:
        start.wait()
        hits.append(sum(plan.take("inspect") is not None for _ in range(500)))

    threads = [threading.Thread(target=taker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(hits) == 2_000
    assert plan.counts() == {"inspect/lose": 2_000}
    assert plan.pending() == 0


@pytest.mark.parametrize(
    ("method", "target", "endpoint"),
    [
        pytest.param("POST", "/v1.41/containers/create?name=x", "create", id="create"),
        pytest.param("POST", "/containers/create", "create", id="create-unversioned"),
        pytest.param("POST", "/v1.51/containers/abc/start", "start", id="start"),
        pytest.param("POST", "/v1.41/containers/abc/rename?name=y", "rename", id="rename"),
        pytest.param("DELETE", "/v1.41/containers/abc?force=True&v=True", "remove", id="remove"),
        pytest.param("GET", "/v1.41/containers/abc/json", "inspect", id="inspect"),
        pytest.param("GET", "/v1.41/containers/json?all=1&filters=%7B%7D", "list", id="list"),
        pytest.param(
            "POST", "/v1.41/containers/abc/attach?stdin=1&stream=1", "attach", id="attach"
        ),
        pytest.param("GET", "/v1.41/events?since=1&filters=%7B%7D", "events", id="events"),
        pytest.param("GET", "/version", "other", id="version"),
        pytest.param("GET", "/v1.41/images/busybox/json", "other", id="image-inspect"),
        pytest.param("POST", "/v1.41/containers/abc/kill", "other", id="kill"),
        pytest.param("GET", "/v1.41/containers/abc/logs", "other", id="logs"),
        pytest.param("POST", "/v1.41/containers/abc/attach/ws", "other", id="attach-ws"),
        pytest.param("POST", "/v1.41/events", "other", id="events-wrong-method"),
        pytest.param("GET", "/", "other", id="root"),
    ],
)
def test_classify(method: str, target: str, endpoint: str) -> None:
    """Each Docker API request maps onto its endpoint, with or without a version prefix."""
    assert classify(method, target) == endpoint
