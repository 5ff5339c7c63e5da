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


# --------------------------------------------------------------------------- pools
#: The health check the pool tests give their members (fast, one failed probe = unhealthy).
POOL_PROBE = {"interval": 0.2, "timeout": 1.0, "retries": 1}
POOL_PORT = 8000
_DEFAULT = object()


class PoolFactory:
    """Builds `ContainerPool`s of the stand-in image for one test (see ``pool_factory``).

    Every pool of a test shares the pool name ``self.name`` unless a test passes another one;
    the spec carries the run label, so ``cleanup_containers`` removes every container a pool
    made, claimed ones included, even when the test fails.
    """

    def __init__(self, client: Any, image: str, run_id: str) -> None:
        self.client = client
        self.image = image
        self.run_id = run_id
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.pools: list[Any] = []

    def healthcheck(self, **changes: Any) -> Any:
        from dockpool import HealthCheck

        return HealthCheck(test=["CMD", "stub-check"], **{**POOL_PROBE, **changes})

    def spec(
        self, *, env: dict[str, str] | None = None, healthcheck: Any = _DEFAULT, **fields: Any
    ) -> Any:
        """The stub image on port 8000 with the fast health check and the run label."""
        from dockpool import ContainerSpec

        return ContainerSpec(
            image=fields.pop("image", self.image),
            ports=fields.pop("ports", [POOL_PORT]),
            environment=env or {},
            labels={RUN_LABEL_KEY: self.run_id, **fields.pop("labels", {})},
            healthcheck=self.healthcheck() if healthcheck is _DEFAULT else healthcheck,
            **fields,
        )

    def __call__(
        self,
        size: int = 0,
        *,
        spec: Any = None,
        name: str | None = None,
        backoff: Any = None,
        start: bool = True,
        **options: Any,
    ) -> Any:
        """A new pool (started unless ``start=False``), closed at teardown."""
        from dockpool import Backoff, ContainerPool

        pool = ContainerPool(
            spec if spec is not None else self.spec(),
            size=size,
            name=name or self.name,
            backoff=backoff if backoff is not None else Backoff(base=0.05, cap=0.5),
            **options,
        )
        self.pools.append(pool)
        return pool.start() if start else pool

    # -- the engine's view, by label -------------------------------------------------------
    def containers(self, name: str | None = None) -> list[Any]:
        """Every sandbox container (any state, unclaimed or claimed) carrying
        ``dockpool.pool=<name>``; not the pool's own bookkeeping (presence and hands)."""
        return [
            c for c in self.labelled(name) if c.labels.get("dockpool.role", "member") == "member"
        ]

    def labelled(self, name: str | None = None) -> list[Any]:
        """Every container carrying ``dockpool.pool=<name>``, bookkeeping included."""
        label = f"dockpool.pool={name or self.name}"
        return list(
            self.client.containers.list(all=True, filters={"label": label}, ignore_removed=True)
        )

    def members(self, name: str | None = None, *, healthy: bool = False) -> dict[str, Any]:
        """Unclaimed members on the engine (member name prefix, member role), by id; optionally
        healthy only. The pool's presence and hand containers are not members."""
        prefix = f"dockpool-{name or self.name}-"
        found = {
            c.id: c
            for c in self.containers(name)
            if c.name.startswith(prefix) and c.labels.get("dockpool.role", "member") == "member"
        }
        if healthy:
            found = {cid: c for cid, c in found.items() if container_health(c) == "healthy"}
        return found

    def close_all(self) -> list[str]:
        problems = []
        for pool in self.pools:
            try:
                pool.close(timeout=30)
            except Exception as exc:  # report, but close the others too
                problems.append(f"closing pool {pool.name}: {exc!r}")
        return problems


def container_health(container: Any) -> str | None:
    """Health status per inspect (None when the container has no health check or is gone)."""
    import docker.errors

    try:
        container.reload()
    except docker.errors.NotFound:
        return None
    health = container.attrs["State"].get("Health")
    return health["Status"] if health else None


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll `predicate` until it returns something truthy (returned); AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what} (last: {value!r})"
            )
        time.sleep(interval)


def dockpool_threads() -> list[str]:
    return [
        t.name for t in threading.enumerate() if t.name.startswith("dockpool-") and t.is_alive()
    ]


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


class SignalRecorder:
    """Records dockpool signals (payloads as dicts) until teardown disconnects every receiver."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any], float]] = []  # (signal, payload, when)
        self._cond = threading.Condition()
        self._connected: list[tuple[Any, Any]] = []

    def listen(self, *names: str, sender: Any = None) -> SignalRecorder:
        from blinker import ANY

        from dockpool import signals

        for name in names:
            signal = getattr(signals, name)

            def receive(_sender: Any, _name: str = name, **payload: Any) -> None:
                with self._cond:
                    self.records.append((_name, payload, time.monotonic()))
                    self._cond.notify_all()

            signal.connect(receive, sender=ANY if sender is None else sender, weak=False)
            self._connected.append((signal, receive))
        return self

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return [payload for n, payload, _ in self.records if n == name]

    def timed(self, *names: str) -> list[tuple[str, dict[str, Any], float]]:
        """The records of the named signals, in order, with their `time.monotonic()`."""
        with self._cond:
            return [r for r in self.records if r[0] in names]

    def wait_for(
        self, name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for n, payload, _ in self.records:
                    if n == name and predicate(payload):
                        return payload
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [
                        (n, {k: repr(v)[:80] for k, v in p.items()}) for n, p, _ in self.records
                    ]
                    raise AssertionError(
                        f"no matching {name} within {timeout} s; seen: {seen[-30:]}"
                    )
                self._cond.wait(left)

    def disconnect(self) -> None:
        for signal, receiver in self._connected:
            signal.disconnect(receiver)
        self._connected.clear()


@pytest.fixture
def signal_recorder() -> Iterator[SignalRecorder]:
    """``signal_recorder.listen("member_lost", ..., sender=pool)``; disconnected at teardown."""
    recorder = SignalRecorder()
    yield recorder
    recorder.disconnect()


def http_status(port: int, path: str = "/ready", timeout: float = 5.0) -> int | None:
    """Status of GET http://127.0.0.1:<port><path>, or None when nothing answers over HTTP."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None
