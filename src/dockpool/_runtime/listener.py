"""The listener thread: keeps one event subscription alive and hands each event to a sink.

An end of the stream that nobody asked for is a disconnect: the listener backs off (capped,
exponential), reopens the stream from a little before the last event it saw (`since` is
inclusive and cross-container timestamps can go backwards by milliseconds), drops the
duplicates that replay brings, and tells the pool to resync against the engine's list, since
the stream is lossy and some failures emit no event at all. The thread only parses and
enqueues: a slow reader would make dockerd drop events.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from loguru import logger

from dockpool._adapters.event_stream import EventSource
from dockpool._core.errors import DockpoolError
from dockpool._core.events import ContainerEvent
from dockpool._runtime.backoff import Backoff

#: How far before the last seen event a reconnect replays from, in nanoseconds.
REPLAY_SLACK_NS = 50_000_000
_DEDUP_WINDOW = 4096


class Listener:
    """Runs `source` in a daemon thread until `stop()`, calling back on events and (dis)connects."""

    def __init__(
        self,
        source: EventSource,
        on_event: Callable[[ContainerEvent], None],
        on_connect: Callable[[bool], None],
        on_lost: Callable[[str, float], None],
        backoff: Backoff | None = None,
        name: str = "dockpool-listener",
    ) -> None:
        self.source = source
        self.on_event = on_event
        self.on_connect = on_connect
        self.on_lost = on_lost
        self.backoff = backoff or Backoff(base=0.1, cap=5.0)
        self._stop = threading.Event()
        self._seen: deque[tuple[str, str, int]] = deque(maxlen=_DEDUP_WINDOW)
        self._seen_set: set[tuple[str, str, int]] = set()
        self._last_ns: int | None = None
        self.connects = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; True if it ended within `timeout`."""
        self._stop.set()
        self.source.close()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def since(self) -> str | None:
        """Where a reconnect replays from, as Docker wants it: "seconds.nanoseconds"."""
        if self._last_ns is None:
            return None
        start = max(0, self._last_ns - REPLAY_SLACK_NS)
        return f"{start // 1_000_000_000}.{start % 1_000_000_000:09d}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                stream = self.source.open(self.since)
                if self._stop.is_set():
                    return
                self.connects += 1
                self.backoff.succeed()
                self.on_connect(self.connects > 1)
                for event in stream:
                    self._accept(event)
                    if self._stop.is_set():
                        return
                reason = "the event stream ended"
            except DockpoolError as exc:
                reason = str(exc)
            except Exception as exc:  # never let the listener die silently
                logger.opt(exception=True).error("event listener failed")
                reason = f"{type(exc).__name__}: {exc}"
            if self._stop.is_set():
                return
            delay = self.backoff.fail()
            self.on_lost(reason, delay)
            self._stop.wait(delay)

    def _accept(self, event: ContainerEvent) -> None:
        key = event.dedup_key
        if key in self._seen_set:
            return
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(key)
        self._seen_set.add(key)
        if self._last_ns is None or event.time_nano > self._last_ns:
            self._last_ns = event.time_nano
        self.on_event(event)
