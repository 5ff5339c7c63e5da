"""The Docker events API as an `EventSource`: one filtered stream, bounded, never trusted to end.

docker-py's iterator ends with a plain StopIteration when the daemon goes away, and it reads
with no timeout at all: with a tcp:// or ssh:// DOCKER_HOST a dead peer leaves a reader
blocked forever. This source bounds every stream twice, as kopf bounds its watches:

- on the server: each stream is opened with Docker's `until` about `rollover` seconds ahead,
  so a healthy but idle stream ends cleanly then. That planned end is a *normal* end of
  iteration; the listener reopens at once from where it was (no resync).
- on the client: every read (the response's headers included) times out on the socket after
  `rollover + grace` seconds without a byte, which raises `StreamTimeout`: a disconnect.

Any other end (a clean end before `until`, as dockerd's shutdown gives, or a cut connection)
raises `StreamEnded`. `close()` from another thread frees a blocked reader at once (a socket
shutdown). Reconnecting, replaying and de-duplicating is the listener's job (runtime layer),
so it can be tested with a scripted source. The request goes through the docker client's own
requests session (docker-py's `events()` cannot take a timeout), so the errors of requests
and urllib3 are translated here too.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import requests
import urllib3.exceptions

from dockpool._adapters.docker_api import make_client, translated
from dockpool._core.errors import DockerError
from dockpool._core.events import WATCHED_ACTIONS, ContainerEvent

_NS = 1_000_000_000
#: An end this close before `until` (or later; at most a quarter of the rollover) is the
#: planned one: clocks are never exact.
_UNTIL_SLACK = 1.0


class StreamEnded(DockerError):
    """The event stream ended without being asked to: treat it as a disconnect."""


class StreamTimeout(StreamEnded):
    """Nothing at all arrived on the event stream for longer than its inactivity bound."""


class EventSource(Protocol):
    """A source of container events for one label filter; it bounds its own streams.

    `open(since)` subscribes now (events from `since`, "sec.nanoseconds", inclusive) and
    returns an iterator; the subscription is live when `open` returns. Iteration ends in one
    of three ways, and a source must keep them apart:

    - a normal end (StopIteration) only when the source ended the stream as planned (its
      server-side bound, Docker's `until`), or after `close()`: the caller reopens at once
      from just before the last event it saw, and nothing was lost;
    - `StreamTimeout` when nothing arrived for the source's inactivity bound (a peer that
      died without closing the connection): a disconnect;
    - `StreamEnded` or another DockerError for any other end: a disconnect.

    No stream may block forever: a source that cannot bound its reads is a bug.
    """

    def open(self, since: str | None) -> Iterator[ContainerEvent]:
        """Subscribe from `since` (inclusive) and iterate, as described on the class."""
        ...

    def close(self) -> None:
        """Stop an open stream from another thread; later `open` calls yield nothing."""
        ...


def timestamp(ns: int) -> str:
    """Nanoseconds since the epoch as Docker's `since`/`until` want them: "sec.nanoseconds"."""
    return f"{ns // _NS}.{ns % _NS:09d}"


class DockerEventSource:
    """Container events carrying all of `labels`, for the watched actions only.

    Each stream ends as planned `rollover` seconds after it opens (Docker's `until`), and is
    abandoned with `StreamTimeout` after `rollover + grace` seconds without any data. The
    daemon's clock and ours must agree to within about `grace` for a planned end to look
    planned; if they do not, streams end early or time out and count as disconnects (a
    resync each time: slower, never stuck).
    """

    def __init__(
        self,
        labels: Mapping[str, str],
        base_url: str | None = None,
        *,
        rollover: float = 60.0,
        grace: float = 15.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.labels = dict(labels)
        self.base_url = base_url
        self.rollover = rollover
        self.grace = grace
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._current: requests.Response | None = None
        self._closed = False

    @property
    def idle_timeout(self) -> float:
        """Seconds without a byte after which a read is abandoned."""
        return self.rollover + self.grace

    def open(self, since: str | None) -> Iterator[ContainerEvent]:
        filters = {
            "type": ["container"],
            "label": [f"{k}={v}" for k, v in self.labels.items()],
            "event": list(WATCHED_ACTIONS),
        }
        until_ns = time.time_ns() + int(self.rollover * _NS)
        params = {"since": since, "until": timestamp(until_ns), "filters": json.dumps(filters)}
        api = make_client(self.base_url, timeout=self.connect_timeout)
        try:
            response = self._request(api, params)
        except BaseException:
            api.close()
            raise
        with self._lock:
            closed = self._closed
            self._current = None if closed else response
        if closed:
            response.close()
            api.close()
            return iter(())
        return self._iterate(api, response, until_ns)

    def _request(self, api: Any, params: Mapping[str, str | None]) -> requests.Response:
        url = f"{api.base_url}/v{api.api_version}/events"
        timeout = (self.connect_timeout, self.idle_timeout)
        with translated("opening the Docker event stream"):
            try:
                response: requests.Response = api.get(
                    url, params=params, stream=True, timeout=timeout
                )
            except requests.exceptions.ReadTimeout as exc:
                raise StreamTimeout(f"{self._silent()} (no answer to the request)") from exc
        if response.status_code != 200:
            message = response.reason
            with contextlib.suppress(Exception):
                message = response.json().get("message") or response.text
            response.close()
            raise DockerError(f"opening the Docker event stream: {response.status_code} {message}")
        return response

    def _silent(self) -> str:
        return f"no data from the Docker event stream for {self.idle_timeout:g} s"

    def _iterate(
        self, api: Any, response: requests.Response, until_ns: int
    ) -> Iterator[ContainerEvent]:
        try:
            for raw in self._lines(response):
                event = ContainerEvent.from_docker(raw)
                if event is not None:
                    yield event
            slack = min(_UNTIL_SLACK, self.rollover / 4)
            if self._closed or time.time_ns() >= until_ns - int(slack * _NS):
                return  # asked for, or the planned end at `until`
            raise StreamEnded("the Docker event stream ended early (daemon stopped or restarted?)")
        finally:
            with self._lock:
                self._current = None
            response.close()
            api.close()

    def _lines(self, response: requests.Response) -> Iterator[dict[str, Any]]:
        """The decoded JSON lines of a chunked response; transport errors become ours."""
        buffer = b""
        try:
            for data in response.raw.stream(65536, decode_content=True):
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    decoded = json.loads(line) if line.strip() else None
                    if isinstance(decoded, dict):
                        yield decoded
        except urllib3.exceptions.ReadTimeoutError as exc:
            if not self._closed:
                raise StreamTimeout(self._silent()) from exc
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._closed:
                raise StreamEnded(f"the Docker event stream broke: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            current = self._current
        if current is not None:
            # shutdown (not close) wakes a recv blocked in another thread; a half-dead
            # socket may refuse it, and the reader then ends by its timeout
            sock: Any = getattr(current.raw.connection, "sock", None)
            with contextlib.suppress(Exception):
                sock.shutdown(socket.SHUT_RDWR)
