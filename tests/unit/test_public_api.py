"""The public surface of `dockpool`: pinned, so a change to it is a deliberate one."""

from __future__ import annotations

import subprocess
import sys

import dockpool


def test_all_is_pinned() -> None:
    """`dockpool.__all__` lists exactly the public names."""
    assert sorted(dockpool.__all__) == sorted(
        [
            "POOL_LABEL", "SPEC_LABEL", "Backoff", "ClaimError", "ConfigChange", "ConfigError", "ContainerEvent",
            "ContainerPool", "Lease", "PoolStats",
            "ContainerNotFoundError", "ContainerSpec", "DaemonUnavailableError", "DockerError",
            "DockpoolError", "HealthCheck", "ImageNotFoundError", "NameConflictError", "Readiness",
            "NameInUseError", "PoolClosedError", "PoolConfig", "PoolError", "PoolTimeoutError",
            "State", "WarmUpRequest", "Endpoint", "__version__", "signals", "Timeouts",
            "AlreadyNamedError", "MemberInfo",
        ]
    )  # fmt: skip
    for name in dockpool.__all__:
        assert hasattr(dockpool, name), name


def test_errors_form_one_tree() -> None:
    """Every dockpool error is a DockpoolError, so callers can catch one base class."""
    for name in dockpool.__all__:
        obj = getattr(dockpool, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, dockpool.DockpoolError), name


def test_library_is_silent_by_default() -> None:
    """Importing dockpool configures no logging; its loguru messages are disabled."""
    code = (
        "import sys; from loguru import logger; import dockpool; "
        "from dockpool import signals; "
        "signals.member_ready.connect(lambda s, **k: 1 / 0, weak=False); "
        "signals.send('member_ready', None, member=None)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stderr == ""


def test_failing_receiver_is_isolated() -> None:
    """A receiver that raises does not stop the next one from running."""
    seen: list[str] = []

    def bad(sender: object, **payload: object) -> None:
        raise RuntimeError("boom")

    def good(sender: object, **payload: object) -> None:
        seen.append(str(payload["reason"]))

    dockpool.signals.member_lost.connect(bad)
    dockpool.signals.member_lost.connect(good)
    try:
        dockpool.signals.send("member_lost", None, member=None, reason="died")
    finally:
        dockpool.signals.member_lost.disconnect(bad)
        dockpool.signals.member_lost.disconnect(good)
    assert seen == ["died"]
