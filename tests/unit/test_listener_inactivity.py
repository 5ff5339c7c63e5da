"""The listener across bounded streams: a planned rollover is no disconnect, a silent one is.

Each fake here plays one scripted behaviour per `open()` (a self-contained fake, so these tests
do not move with tests/fakes.py): "rollover" ends the stream normally, as the real source does
at its `until`; "silent" yields nothing and raises `StreamTimeout` after its inactivity bound,
as the real source's socket timeout does; "hold" blocks until `close()`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from dockpool._adapters.event_stream import EventSource, StreamTimeout
from dockpool._core import machine as m
from dockpool._core.events import ContainerEvent
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.listener import Listener

_NOW_NS = 1_700_000_000_000_000_000


def ev(cid: str, action: str, t: int) -> ContainerEvent:
    return ContainerEvent(m.ContainerId(cid), action, "n", {}, t)


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


class Scripted:
    """An event source that plays one (behaviour, events) step per `open()`, then holds."""

    def __init__(self, *steps: tuple[str, list[ContainerEvent]], idle: float = 0.2) -> None:
        self.steps = list(steps)
        self.idle = idle
        self.sinces: list[str | None] = []
        self.closed = threading.Event()

    def open(self, since: str | None) -> Iterator[ContainerEvent]:
        self.sinces.append(since)
        kind, events = self.steps.pop(0) if self.steps else ("hold", [])
        return self._play(kind, events)

    def _play(self, kind: str, events: list[ContainerEvent]) -> Iterator[ContainerEvent]:
        yield from events
        if kind == "silent":
            if not self.closed.wait(self.idle):
                raise StreamTimeout(f"no data from the event stream for {self.idle} s")
        elif kind == "hold":
            self.closed.wait()
        # "rollover", or closed: a normal end

    def close(self) -> None:
        self.closed.set()


class Recorder:
    """What the listener reported."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.connects: list[bool] = []
        self.lost: list[str] = []

    def listen(self, source: EventSource) -> Listener:
        listener = Listener(
            source,
            on_event=lambda e: self.events.append((e.container_id, e.action)),
            on_connect=self.connects.append,
            on_lost=lambda reason, delay: self.lost.append(reason),
            backoff=Backoff(base=0.001, cap=0.002),
            name="dockpool-test-listener",
            clock_ns=lambda: _NOW_NS,
        )
        listener.start()
        return listener


def test_a_stream_ending_at_its_until_is_reopened_without_resync() -> None:
    """A normal end (the planned rollover) reopens at once: no on_lost, no on_connect(True)."""
    source = Scripted(
        ("rollover", []),
        ("rollover", [ev("a", "start", _NOW_NS + 5_000_000_000)]),
        ("rollover", [ev("a", "start", _NOW_NS + 5_000_000_000), ev("a", "die", _NOW_NS + 6)]),
    )
    seen = Recorder()
    listener = seen.listen(source)
    try:
        assert wait_for(lambda: len(source.sinces) >= 4)
    finally:
        assert listener.stop(timeout=2)
    assert seen.connects == [False] and seen.lost == []
    assert seen.events == [("a", "start"), ("a", "die")]  # the replayed start is dropped
    # an idle stream resumes from where it was opened, so the gap before the reopen is replayed
    assert source.sinces[:2] == [None, "1699999999.950000000"]
    assert source.sinces[3] == "1700000004.950000000"  # just before the last event seen
    assert listener.connects == 1 and listener.rollovers == 3


def test_a_silent_stream_is_abandoned_as_a_disconnect() -> None:
    """A stream silent past its inactivity bound is lost: on_lost, back-off, on_connect(True)."""
    source = Scripted(("rollover", []), ("silent", []), ("hold", [ev("b", "start", _NOW_NS)]))
    seen = Recorder()
    listener = seen.listen(source)
    started = time.monotonic()
    try:
        assert wait_for(lambda: seen.connects == [False, True])
        assert time.monotonic() - started >= 0.2  # abandoned after the bound, not before
        assert wait_for(lambda: seen.events == [("b", "start")])
    finally:
        assert listener.stop(timeout=2)
    assert len(seen.lost) == 1 and "no data" in seen.lost[0]
    assert len(source.sinces) == 3 and listener.connects == 2
    assert not [t for t in threading.enumerate() if t.name == "dockpool-test-listener"]
