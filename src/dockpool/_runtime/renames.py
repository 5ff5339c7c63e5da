"""The claim's check from the event stream: a renamed member is handed over once the reconciler
has applied the rename's own event.

The engine logs a container's events in the order they happen, and the reconciler applies them
in the order they arrive. So when a claim's rename event has been applied, every event the
engine logged for the member before it has been applied too: a `die`, an `oom`, an unhealthy
health check, a `destroy`. The machine marks a CLAIMING member that saw one of them dead, and
turns the claim down (the member is discarded, never handed out). The check costs no request
of its own: the event comes anyway, on the connection the listener already holds.

The same order answers a second question at no cost: was the claim's lock still held when
the member was renamed? A hand destroyed before the rename (its `destroy` event comes first)
means another process may have taken the lock and renamed the member too: the waiter records
what its `guard` said at the moment the rename event was applied, and the rename's old name.

It holds only while the stream has no gap: from a (re)connect until the resync that follows
it has run, or after a loss, `expect` answers None and the claim checks the member the slow
way (prober.check: a GET to its server, or an inspect); a waiter whose stream broke, or whose
event did not come within its wait, is released unanswered and falls back the same way.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from dockpool._core import machine as m


class Waiter:
    """One claim waiting for its rename's event (see `RenameWatch.expect`)."""

    def __init__(self, key: tuple[m.ContainerId, str], guard: Callable[[], bool]) -> None:
        self.key = key
        self.seen = False
        self.guard = guard  # asked when the event is applied: was the lock lost before it?
        self.lost_before = False
        self.old_name: str | None = None  # the name the rename took the container from
        self._done = threading.Event()

    def release(self, seen: bool, old_name: str | None = None) -> None:
        if seen:
            self.lost_before, self.old_name = self.guard(), old_name
        self.seen = seen
        self._done.set()

    def wait(self, timeout: float) -> bool:
        """True if the rename's event was applied, with no gap in the stream, within `timeout`."""
        return self._done.wait(timeout) and self.seen


#: How many recent renames of members `RenameWatch` remembers (for doubts: doubts.py).
_RECENT = 1024


class RenameWatch:
    """Claims waiting for their rename's event, and whether the stream can answer them; and
    the old names of the latest renames of members, seen by the stream (`old_name_of`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[tuple[m.ContainerId, str], Waiter] = {}
        self._recent: OrderedDict[tuple[m.ContainerId, str], str] = OrderedDict()
        self._epoch = 0  # bumped by every connect and loss of the stream
        self._connected = False
        self._synced = False  # the resync that follows the latest connect has run

    @property
    def epoch(self) -> int:
        with self._lock:
            return self._epoch

    def expect(
        self, container_id: m.ContainerId, name: str, guard: Callable[[], bool] = lambda: False
    ) -> Waiter | None:
        """Register a claim about to rename `container_id` to `name`; None if the stream
        cannot vouch for the member now (the claim checks it the slow way). `guard` says,
        when the rename's event is applied, whether the claim's lock was lost before it."""
        with self._lock:
            if not (self._connected and self._synced):
                return None
            waiter = Waiter((container_id, name), guard)
            self._waiting[waiter.key] = waiter
            return waiter

    def forget(self, waiter: Waiter | None) -> None:
        if waiter is not None:
            with self._lock:
                if self._waiting.get(waiter.key) is waiter:
                    del self._waiting[waiter.key]

    def seen(self, container_id: m.ContainerId, name: str, old_name: str | None) -> None:
        """The stream brought a member's rename event (late, or of a member this process
        forgot): its old name is kept for a while, for a doubt about that rename."""
        if old_name is None:
            return
        with self._lock:
            self._recent[(container_id, name.lstrip("/"))] = old_name.lstrip("/")
            while len(self._recent) > _RECENT:
                self._recent.popitem(last=False)

    def old_name_of(self, container_id: m.ContainerId, name: str) -> str | None:
        """The name `container_id` had when the engine renamed it to `name`, if the stream
        told (None: no such rename seen, or forgotten)."""
        with self._lock:
            return self._recent.get((container_id, name))

    def applied(self, container_id: m.ContainerId, name: str, old_name: str | None = None) -> None:
        """The reconciler applied a rename event (and so every event before it)."""
        with self._lock:
            waiter = self._waiting.pop((container_id, name.lstrip("/")), None)
        if waiter is not None:
            waiter.release(True, old_name)

    def connected(self) -> None:
        """The stream (re)connected: a gap may lie behind; the resync that follows closes it."""
        self._break(connected=True)

    def lost(self) -> None:
        self._break(connected=False)

    def synced(self, epoch: int) -> None:
        """A resync that began at `epoch` has run: if the stream did not break meanwhile,
        the table now knows what the engine knew when it listed."""
        with self._lock:
            if epoch == self._epoch and self._connected:
                self._synced = True

    def _break(self, connected: bool) -> None:
        with self._lock:
            self._epoch += 1
            self._connected, self._synced = connected, False
            waiting, self._waiting = list(self._waiting.values()), {}
        for waiter in waiting:
            waiter.release(False)
