"""Shared fixtures for dockpool's tests.

Docker-backed tests (marked ``@pytest.mark.docker``) use:

* ``docker_client`` - a session-wide ``docker.DockerClient``; fails (never skips) with a hint to
  run ``scripts/ensure-docker.sh`` when no engine answers. At session end it removes every
  container carrying this run's label.
* ``run_label`` - ``{"dockpool.test.run": "<uuid hex>"}``; label every container a test creates
  with it.
* ``cleanup_containers`` - autouse; after each docker test it removes (force, with volumes) every
  container carrying the run label. When the test failed it first prints their logs and their
  ``State`` from ``inspect``.
* ``stub_image`` - the tag of the stand-in runtime image, (re)built by
  ``scripts/build-stub-image.sh`` once per session if its inputs changed.
* ``docker_events`` - a factory of :class:`EventWatcher`, a background reader of the Docker
  events API; every watcher is closed (and its thread joined) at test end.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.engine_help import (
    ENSURE_HINT,
    REPO_ROOT,
    RUN_ID,
    RUN_LABEL_KEY,
    STUB_IMAGE,
    EventWatcher,
    engine_errors,
    remove_run_containers,
)
from tests.pool_help import PoolFactory, SignalRecorder, dockpool_threads


# --------------------------------------------------------------------------- report on the item
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Standard pattern: keep each phase's report on the item (item.rep_setup / rep_call /
    # rep_teardown) so fixtures can tell, at teardown, whether the test failed.
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def _test_failed(item: pytest.Item) -> bool:
    for when in ("setup", "call"):
        rep = getattr(item, f"rep_{when}", None)
        if rep is not None and rep.failed:
            return True
    return False


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def run_id() -> str:
    """This run's id (uuid hex), the value of the ``dockpool.test.run`` label."""
    return RUN_ID


@pytest.fixture(scope="session")
def run_label() -> dict[str, str]:
    """The label every container created by this test run must carry."""
    return {RUN_LABEL_KEY: RUN_ID}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker-py client for the local engine; fails clearly if the engine does not answer."""
    import docker

    problem = None
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except engine_errors() as exc:
        problem = f"no Docker engine answers ({exc}); {ENSURE_HINT}"
    if problem is not None:  # (outside `except`: no chained traceback in the report)
        pytest.fail(problem, pytrace=False)

    yield client

    # Session-end sweep: nothing of this run may survive it.
    n = remove_run_containers(client, dump=False)
    if n:
        print(f"\n[cleanup] session end: removed {n} leftover container(s) of run {RUN_ID}")
    client.close()


@pytest.fixture(scope="session")
def stub_image(docker_client: Any) -> str:
    """Tag of the stand-in runtime image, built/refreshed by scripts/build-stub-image.sh."""
    if os.environ.get("DOCKPOOL_TEST_NO_BUILD") != "1":
        proc = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "build-stub-image.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"scripts/build-stub-image.sh failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}",
                pytrace=False,
            )
    import docker.errors

    try:
        docker_client.images.get(STUB_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(
            f"image {STUB_IMAGE} not found; run `bash scripts/build-stub-image.sh`", pytrace=False
        )
    return STUB_IMAGE


@pytest.fixture(autouse=True)
def cleanup_containers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each docker test, remove every container of this run (dumping them on failure)."""
    if request.node.get_closest_marker("docker") is None:
        yield
        return
    client = request.getfixturevalue("docker_client")
    yield
    remove_run_containers(client, dump=_test_failed(request.node))


@pytest.fixture
def docker_events(docker_client: Any) -> Iterator[Callable[..., EventWatcher]]:
    """Factory: ``docker_events(filters, since=None) -> EventWatcher``; all closed at teardown."""
    watchers: list[EventWatcher] = []

    def make(filters: dict[str, Any], since: int | None = None) -> EventWatcher:
        w = EventWatcher(docker_client, filters, since)
        watchers.append(w)
        return w

    yield make
    for w in watchers:
        w.close()


@pytest.fixture
def pool_factory(docker_client: Any, stub_image: str, run_id: str) -> Iterator[PoolFactory]:
    """Factory of `ContainerPool`s of the stub image (unique pool name per test, fast back-off).

    At teardown every pool is closed, then no thread named ``dockpool-*`` may be alive.
    """
    factory = PoolFactory(docker_client, stub_image, run_id)
    yield factory
    problems = factory.close_all()
    # close() joins its threads before returning; a short grace only absorbs a thread that is
    # past its last statement but not yet reaped.
    deadline = time.monotonic() + 2.0
    while dockpool_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not problems, problems
    assert not dockpool_threads(), f"dockpool threads still alive after close: {dockpool_threads()}"


@pytest.fixture
def signal_recorder() -> Iterator[SignalRecorder]:
    """``signal_recorder.listen("member_lost", ..., sender=pool)``; disconnected at teardown."""
    recorder = SignalRecorder()
    yield recorder
    recorder.disconnect()
