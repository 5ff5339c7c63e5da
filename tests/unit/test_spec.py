"""ContainerSpec and HealthCheck: frozen, validated, and fingerprinted stably."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from dockpool._core.spec import ContainerSpec, HealthCheck, is_member_name, member_name

HC = HealthCheck(test=["CMD", "stub-check"], interval=0.2, timeout=1, retries=1)


def test_lists_and_dicts_are_frozen() -> None:
    """Lists become tuples and dicts refuse changes, so a spec cannot drift."""
    spec = ContainerSpec(image="i", command=["a", "b"], environment={"K": "V"}, ports=[8001, 8000])
    assert spec.command == ("a", "b")
    assert spec.ports == (8000, 8001)
    with pytest.raises(TypeError):
        spec.environment["K"] = "W"  # type: ignore[index]
    assert hash(spec) == hash(
        ContainerSpec(image="i", command=("a", "b"), environment={"K": "V"}, ports=[8000, 8001])
    )


def test_fingerprint_is_stable_and_order_independent() -> None:
    """Equal specs have equal fingerprints whatever the order of their dicts and ports."""
    a = ContainerSpec(image="i", environment={"A": "1", "B": "2"}, ports=[1, 2], healthcheck=HC)
    b = ContainerSpec(image="i", environment={"B": "2", "A": "1"}, ports=[2, 1], healthcheck=HC)
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"image": "j"},
        {"command": ["x"]},
        {"entrypoint": ["sh"]},
        {"environment": {"A": "2"}},
        {"labels": {"x": "y"}},
        {"ports": [9]},
        {"volumes": {"/a": "/b"}},
        {"working_dir": "/w"},
        {"healthcheck": attrs.evolve(HC, interval=0.3)},
        {"init": True},
        {"extra_hosts": {"h": "1.2.3.4"}},
        {"mem_limit": "64m"},
        {"cpus": 0.5},
        {"random_env": ["KEY"]},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_creation_field_changes_the_fingerprint(change: dict[str, Any]) -> None:
    """Anything fixed at creation is part of the fingerprint."""
    base = ContainerSpec(image="i", environment={"A": "1"}, healthcheck=HC)
    assert attrs.evolve(base, **change).fingerprint() != base.fingerprint()


def test_fingerprint_uses_the_resolved_image_id() -> None:
    """Two tags of one image ID are one spec; one tag moved to another ID is another spec."""
    a, b = ContainerSpec(image="img:1"), ContainerSpec(image="img:latest")
    assert a.fingerprint("sha256:aa") == b.fingerprint("sha256:aa")
    assert a.fingerprint("sha256:aa") != a.fingerprint("sha256:bb")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": " "}, "image must not be empty"),
        ({"image": "i", "ports": [70000]}, "port 70000"),
        ({"image": "i", "labels": {"dockpool.pool": "x"}}, "reserved"),
        ({"image": "i", "cpus": 0}, "cpus"),
    ],
)
def test_spec_validation(kwargs: dict[str, object], message: str) -> None:
    """Invalid specs are refused at construction."""
    with pytest.raises(ValueError, match=message):
        ContainerSpec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test": []}, "empty"),
        ({"test": ["curl"]}, "must start with"),
        ({"test": ["CMD", "x"], "interval": 0}, "interval"),
        ({"test": ["CMD", "x"], "retries": 0}, "retries"),
        ({"test": ["CMD", "x"], "start_interval": -1}, "start_interval"),
    ],
)
def test_healthcheck_validation(kwargs: dict[str, object], message: str) -> None:
    """Invalid health checks are refused at construction."""
    with pytest.raises(ValueError, match=message):
        HealthCheck(**kwargs)  # type: ignore[arg-type]


def test_member_names() -> None:
    """Unclaimed members carry the pool's own prefix, never a session name pattern."""
    name = member_name("demo", "abc")
    assert name == "dockpool-demo-abc"
    assert is_member_name("demo", "/" + name)
    assert not is_member_name("demo", "oh-agent-server-abc")
    assert not is_member_name("demo2", name)
