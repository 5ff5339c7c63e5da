"""The Docker events API as an `EventSource`: one filtered stream, never trusted to end well.

docker-py's iterator ends with a plain StopIteration when the daemon goes away and blocks
forever on a hung connection. This source turns that into an honest contract: `stream()`
yields events until it raises `StreamEnded` (or any DockerError); `close()` from another
thread frees a blocked reader at once. Reconnecting, replaying and de-duplicating is the
listener's job (runtime layer), so it can be tested with a scripted source.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from dockpool._adapters.docker_api import make_client, translated
from dockpool._core.errors import DockerError
from dockpool._core.events import WATCHED_ACTIONS, ContainerEvent


class StreamEnded(DockerError):
    """The event stream ended without being asked to: treat it as a disconnect."""


class EventSource(Protocol):
    """A source of container events for one label filter."""

    def open(self, since: str | None) -> Iterator[ContainerEvent]:
        """Subscribe now (events from `since`, "sec.nanoseconds", inclusive), then iterate.

        The subscription is live when `open` returns; iterating yields events until the
        stream ends, which it signals by raising (`StreamEnded` or another DockerError).
        """
        ...

    def close(self) -> None:
        """Stop an open stream from another thread; later `open` calls yield nothing."""
        ...


class DockerEventSource:
    """Container events carrying all of `labels`, for the watched actions only."""

    def __init__(self, labels: Mapping[str, str], base_url: str | None = None) -> None:
        self.labels = dict(labels)
        self.base_url = base_url
        self._lock = threading.Lock()
        self._current: Any = None
        self._closed = False

    def open(self, since: str | None) -> Iterator[ContainerEvent]:
        filters = {
            "type": ["container"],
            "label": [f"{k}={v}" for k, v in self.labels.items()],
            "event": list(WATCHED_ACTIONS),
        }
        api = make_client(self.base_url, timeout=10)
        try:
            with translated("opening the Docker event stream"):
                raw_stream = api.events(since=since, filters=filters, decode=True)
        except BaseException:
            api.close()
            raise
        with self._lock:
            closed = self._closed
            self._current = None if closed else raw_stream
        if closed:
            raw_stream.close()
            api.close()
            return iter(())
        return self._iterate(api, raw_stream)

    def _iterate(self, api: Any, raw_stream: Any) -> Iterator[ContainerEvent]:
        try:
            with translated("reading the Docker event stream"):
                for raw in raw_stream:
                    event = ContainerEvent.from_docker(raw)
                    if event is not None:
                        yield event
            if not self._closed:
                raise StreamEnded("the Docker event stream ended (daemon stopped or restarted?)")
        finally:
            with self._lock:
                self._current = None
            api.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            current = self._current
        if current is not None:
            # closing a half-dead socket may fail; the reader ends either way
            with contextlib.suppress(Exception):
                current.close()
