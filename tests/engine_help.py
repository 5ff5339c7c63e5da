"""What the Docker-backed tests share about the engine: this run's label, removing and dumping
its containers, a reader of the events API, health, HTTP and polling helpers."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_LABEL_KEY = "dockpool.test.run"
STUB_IMAGE = os.environ.get("DOCKPOOL_STUB_IMAGE", "dockpool-stub:latest")
ENSURE_HINT = (
    "run `bash scripts/ensure-docker.sh` (as root on Debian it installs and starts dockerd)"
)

#: One id per pytest process; containers of this run carry it in RUN_LABEL_KEY.
RUN_ID = uuid.uuid4().hex


def engine_socket_path() -> str:
    """The unix socket of the engine DOCKER_HOST names (the suite runs once per engine)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        raise RuntimeError(f"the engine must be on a unix socket for this test, not {host}")
    return host[len("unix://") :]


def run_filter() -> dict[str, Any]:
    return {"label": f"{RUN_LABEL_KEY}={RUN_ID}"}


def engine_errors() -> tuple[type[BaseException], ...]:
    # With the engine down, docker-py raises requests' ConnectionError, not a DockerException.
    import docker.errors
    import requests.exceptions

    return (docker.errors.DockerException, requests.exceptions.RequestException)


def remove_container(container: Any) -> None:
    import docker.errors

    for attempt in range(5):
        try:
            container.remove(force=True, v=True)
            return
        except docker.errors.NotFound:
            return
        except engine_errors() as exc:
            # e.g. 409 "removal of container ... is already in progress"
            if attempt == 4:
                print(f"[cleanup] could not remove {container.short_id}: {exc}")
                return
            time.sleep(0.5)


def remove_run_containers(client: Any, *, dump: bool) -> int:
    try:
        containers = client.containers.list(all=True, filters=run_filter())
    except engine_errors() as exc:  # engine gone (e.g. a restart test failed)
        print(f"[cleanup] cannot list containers of run {RUN_ID}: {exc}")
        return 0
    for c in containers:
        if dump:
            dump_container(c)
        remove_container(c)
    return len(containers)


def dump_container(container: Any) -> None:
    try:
        container.reload()
        state = container.attrs.get("State", {})
        logs = container.logs(timestamps=True, tail=200).decode("utf-8", "replace")
    except engine_errors() as exc:
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
