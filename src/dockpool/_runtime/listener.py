"""The listener thread: keeps one event subscription alive and hands each event to a sink.

An end of the stream that nobody asked for is a disconnect: the listener backs off (capped,
exponential), reopens the stream from a little before the last event it saw (`since` is
inclusive and cross-container timestamps can go backwards by milliseconds), drops the
duplicates that replay brings, and tells the pool to resync against the engine's list, since
the stream is lossy and some failures emit no event at all. The thread only parses and
enqueues: a slow reader would make dockerd drop events.

A normal end of iteration is the source's planned rollover (its server-side bound, see
`EventSource`), not a disconnect: the listener reopens at once, with no back-off, no `on_lost`
and no resync. It resumes from just before the last event seen or, if that is older, from
where the ended stream was opened, so events in the gap between two streams are replayed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from loguru import logger

from dockpool._adapters.event_stream import EventSource, timestamp
from dockpool._core.errors import DockpoolError
from dockpool._core.events import ContainerEvent
from dockpool._runtime.backoff import Backoff

#: How far before the last seen event a reconnect replays from, in nanoseconds.
REPLAY_SLACK_NS = 50_000_000
_DEDUP_WINDOW = 4096
#: Planned ends come `rollover` seconds apart; a source that ends sooner is paced to this.
_MIN_STREAM_S = 0.05


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
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.source = source
        self.on_event = on_event
        self.on_connect = on_connect
        self.on_lost = on_lost
        self.backoff = backoff or Backoff(base=0.1, cap=5.0)
        self._stop = threading.Event()
        self._seen: deque[tuple[str, str, int]] = deque(maxlen=_DEDUP_WINDOW)
        self._seen_set: set[tuple[str, str, int]] = set()
        self._resume_ns: int | None = None
        self.clock_ns = clock_ns
        self.connects = 0  # connections after a loss (the first included), not rollovers
        self.rollovers = 0
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
        """Where the next open replays from, as Docker wants it: "seconds.nanoseconds"."""
        if self._resume_ns is None:
            return None
        return timestamp(max(0, self._resume_ns - REPLAY_SLACK_NS))

    def _run(self) -> None:
        connected = False  # False at first and after a loss: the next open resyncs
        while not self._stop.is_set():
            try:
                opened_ns, opened = self.clock_ns(), time.monotonic()
                stream = self.source.open(self.since)
                if self._stop.is_set():
                    return
                if not connected:
                    connected = True
                    self.connects += 1
                    self.backoff.succeed()
                    self.on_connect(self.connects > 1)
                for event in stream:
                    self._accept(event)
                    if self._stop.is_set():
                        return
                if self._stop.is_set():  # ended by close()
                    return
                self.rollovers += 1  # the planned end: the stream was live since opened_ns
                self._resume_ns = max(self._resume_ns or 0, opened_ns)
                self._stop.wait(opened + _MIN_STREAM_S - time.monotonic())
                continue
            except DockpoolError as exc:
                reason = str(exc)
            except Exception as exc:  # never let the listener die silently
                logger.opt(exception=True).error("event listener failed")
                reason = f"{type(exc).__name__}: {exc}"
            if self._stop.is_set():
                return
            connected = False
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
        if self._resume_ns is None or event.time_nano > self._resume_ns:
            self._resume_ns = event.time_nano
        self.on_event(event)
