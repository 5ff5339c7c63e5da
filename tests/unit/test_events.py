"""Parsing Docker's event JSON and mapping it onto the member state machine."""

from __future__ import annotations

from typing import Any

import pytest

from dockpool._core import machine as m
from dockpool._core.events import ContainerEvent, machine_event


def raw(action: str, **attributes: str) -> dict[str, Any]:
    """A container event shaped as dockerd 20.10 sends it."""
    return {
        "status": action.split(":")[0],
        "id": "abc",
        "Type": "container",
        "Action": action,
        "Actor": {
            "ID": "abc",
            "Attributes": {"name": "dockpool-p-1", "dockpool.pool": "p", **attributes},
        },
        "scope": "local",
        "time": 1700000000,
        "timeNano": 1700000000123456789,
    }


def test_from_docker_reads_the_fields() -> None:
    """Id, action, name, labels, time and exit code are read from the raw event."""
    event = ContainerEvent.from_docker(raw("die", exitCode="3"))
    assert event is not None
    assert event.container_id == "abc"
    assert event.action == "die"
    assert event.name == "dockpool-p-1"
    assert event.labels["dockpool.pool"] == "p"
    assert event.exit_code == 3
    assert event.time_nano == 1700000000123456789
    assert event.dedup_key == ("abc", "die", 1700000000123456789)


def test_rename_keeps_old_name_without_slash() -> None:
    """A rename event carries the new name and the old one, without Docker's slash."""
    event = ContainerEvent.from_docker(raw("rename", name="sess", oldName="/dockpool-p-1"))
    assert event is not None and event.name == "sess" and event.old_name == "dockpool-p-1"


@pytest.mark.parametrize(
    "payload",
    [{"Type": "network", "Action": "connect", "Actor": {"ID": "n"}}, {"Type": "container"}],
)
def test_non_container_or_malformed_events_are_skipped(payload: dict[str, Any]) -> None:
    """Anything that is not a container event with an id and action parses to None."""
    assert ContainerEvent.from_docker(payload) is None


@pytest.mark.parametrize(
    ("action", "attributes", "expected"),
    [
        ("start", {}, m.Started()),
        ("die", {"exitCode": "137"}, m.Died(137)),
        ("oom", {}, m.Oom()),
        ("destroy", {}, m.Destroyed()),
        ("pause", {}, m.Paused()),
        ("rename", {"name": "other", "oldName": "/dockpool-p-1"}, m.Renamed("other")),
        ("health_status: healthy", {}, m.Healthy()),
        ("health_status: unhealthy", {}, m.Unhealthy()),
        ("create", {}, None),
        ("kill", {"signal": "9"}, None),
        ("stop", {}, None),
        ("unpause", {}, None),
        ("exec_create: stub-check", {}, None),
    ],
)
def test_machine_event(action: str, attributes: dict[str, str], expected: m.Event | None) -> None:
    """Each watched Docker action maps to its state-machine event (or to nothing)."""
    event = ContainerEvent.from_docker(raw(action, **attributes))
    assert event is not None
    assert machine_event(event) == expected
