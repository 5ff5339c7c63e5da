"""A scripted event source for the fake engine: the events `FakeDocker` emits, delivered
through `open()` like the real stream, with knobs for a lossy, slow or broken stream."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from dockpool._adapters.event_stream import StreamEnded
from dockpool._core.events import ContainerEvent

_END = object()


class FakeEventSource:
    """Events pushed by FakeDocker, delivered through `open()` like the real stream."""

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self.connected = threading.Event()
        self.opens = 0
        self.sinces: list[str | None] = []
        self.drop = False  # while True, events are lost (a stalled or disconnected reader)
        #: while not None, events wait here, in order, until `release` (a slow stream)
        self.held: list[ContainerEvent] | None = None
        self._hold_lock = threading.Lock()
        self._closed = False

    def push(self, event: ContainerEvent) -> None:
        with self._hold_lock:
            if self.drop:
                return
            if self.held is not None:
                self.held.append(event)
                return
            self._queue.put(event)

    def release(self) -> None:
        """Deliver the held events, in order, and stop holding."""
        with self._hold_lock:
            for event in self.held or []:
                self._queue.put(event)
            self.held = None

    def end_stream(self) -> None:
        """Make the current stream end as docker-py's does when the daemon goes away."""
        self.connected.clear()
        self._queue.put(_END)

    def open(self, since: str | None) -> Iterator[ContainerEvent]:
        if self._closed:
            return iter(())
        self.opens += 1
        self.sinces.append(since)
        self.connected.set()
        return self._iterate()

    def _iterate(self) -> Iterator[ContainerEvent]:
        while True:
            item = self._queue.get()
            if item is _END:
                if self._closed:
                    return
                raise StreamEnded("the fake stream ended")
            assert isinstance(item, ContainerEvent)
            yield item

    def close(self) -> None:
        self._closed = True
        self._queue.put(_END)
