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

import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_LABEL_KEY = "dockpool.test.run"
STUB_IMAGE = os.environ.get("DOCKPOOL_STUB_IMAGE", "dockpool-stub:latest")
ENSURE_HINT = (
    "run `bash scripts/ensure-docker.sh` (as root on Debian it installs and starts dockerd)"
)

# One id per pytest process; containers of this run carry it in RUN_LABEL_KEY.
_RUN_ID = uuid.uuid4().hex


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


# --------------------------------------------------------------------------- docker helpers
def _run_filter() -> dict[str, Any]:
    return {"label": f"{RUN_LABEL_KEY}={_RUN_ID}"}


def _engine_errors() -> tuple[type[BaseException], ...]:
    # With the engine down, docker-py raises requests' ConnectionError, not a DockerException.
    import docker.errors
    import requests.exceptions

    return (docker.errors.DockerException, requests.exceptions.RequestException)


def _remove_container(container: Any) -> None:
    import docker.errors

    for attempt in range(5):
        try:
            container.remove(force=True, v=True)
            return
        except docker.errors.NotFound:
            return
        except _engine_errors() as exc:
            # e.g. 409 "removal of container ... is already in progress"
            if attempt == 4:
                print(f"[cleanup] could not remove {container.short_id}: {exc}")
                return
            time.sleep(0.5)


def _remove_run_containers(client: Any, *, dump: bool) -> int:
    try:
        containers = client.containers.list(all=True, filters=_run_filter())
    except _engine_errors() as exc:  # engine gone (e.g. a restart test failed)
        print(f"[cleanup] cannot list containers of run {_RUN_ID}: {exc}")
        return 0
    for c in containers:
        if dump:
            _dump_container(c)
        _remove_container(c)
    return len(containers)


def _dump_container(container: Any) -> None:
    try:
        container.reload()
        state = container.attrs.get("State", {})
        logs = container.logs(timestamps=True, tail=200).decode("utf-8", "replace")
    except _engine_errors() as exc:
        print(f"[post-mortem] {container.short_id}: cannot inspect: {exc}")
        return
    print(
        f"\n[post-mortem] container {container.name} ({container.short_id}) "
        f"image={container.attrs.get('Config', {}).get('Image')}"
    )
    print("[post-mortem] State:")
    print(json.dumps(state, indent=2, sort_keys=True))
    print("[post-mortem] logs (last 200 lines):")
    print(logs.rstrip() or "(none)")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def run_id() -> str:
    """This run's id (uuid hex), the value of the ``dockpool.test.run`` label."""
    return _RUN_ID


@pytest.fixture(scope="session")
def run_label() -> dict[str, str]:
    """The label every container created by this test run must carry."""
    return {RUN_LABEL_KEY: _RUN_ID}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker-py client for the local engine; fails clearly if the engine does not answer."""
    import docker

    problem = None
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except _engine_errors() as exc:
        problem = f"no Docker engine answers ({exc}); {ENSURE_HINT}"
    if problem is not None:  # (outside `except`: no chained traceback in the report)
        pytest.fail(problem, pytrace=False)

    yield client

    # Session-end sweep: nothing of this run may survive it.
    n = _remove_run_containers(client, dump=False)
    if n:
        print(f"\n[cleanup] session end: removed {n} leftover container(s) of run {_RUN_ID}")
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
    _remove_run_containers(client, dump=_test_failed(request.node))


# --------------------------------------------------------------------------- events
class EventWatcher:
    """Reads ``client.events(decode=True, ...)`` on a background thread.

    ``wait_for(pred, timeout)`` returns the first event (in arrival order, after the previous
    ``wait_for`` match) for which ``pred`` is true, or raises ``AssertionError`` with the events
    seen so far. ``close()`` closes the stream (``CancellableStream.close``) and joins the thread.
    """

    def __init__(self, client: Any, filters: dict[str, Any], since: int | None = None) -> None:
        self.filters = filters
        self.events: list[dict[str, Any]] = []
        self._cursor = 0
        self._cond = threading.Condition()
        self._closing = False
        self._ended = False
        self._error: BaseException | None = None
        # The request is made here, so events from now on (and since `since`) are captured.
        self._stream = client.events(decode=True, filters=filters, since=since)
        self._thread = threading.Thread(target=self._read, name="docker-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
        except BaseException as exc:  # a closed socket may surface as any error
            if not self._closing:
                self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float, what: str = "event"
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._cursor < len(self.events):
                    event = self.events[self._cursor]
                    self._cursor += 1
                    if pred(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._ended:
                    seen = [f"{e.get('Action') or e.get('status')}" for e in self.events]
                    reason = "stream ended" if self._ended else f"no match within {timeout}s"
                    raise AssertionError(
                        f"{what}: {reason}; error={self._error!r}; events seen: {seen}"
                    )
                self._cond.wait(remaining)

    def wait_action(self, action: str, timeout: float) -> dict[str, Any]:
        return self.wait_for(lambda e: action_of(e) == action, timeout, what=repr(action))

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(Exception):
            self._stream.close()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "docker events reader thread did not stop"


def action_of(event: dict[str, Any]) -> str:
    return str(event.get("Action") or event.get("status") or "")


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
