"""Reading the engine's events from outside (docker-py, our own connection), across restarts.

`EventReader` follows a filtered event stream in a thread and reconnects when dockerd goes
away, resuming from the last event seen. `Activity` uses one to tell what else happened on
the (shared) engine while we measured: other users' containers, restarts. Our pools'
`stream_lost` signals are recorded too.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import docker

from dockpool import signals
from dockpool.bench._harness import RUN_LABEL

LIFECYCLE = ["create", "start", "die", "destroy", "rename", "kill"]


class EventReader:
    """Calls `on_event(raw)` for each event matching `filters`, until `stop()`."""

    def __init__(
        self,
        filters: dict[str, list[str]],
        on_event: Callable[[dict[str, Any]], None],
        on_outage: Callable[[str], None] = lambda why: None,
        name: str = "bench-events",
    ) -> None:
        self.filters = filters
        self.on_event = on_event
        self.on_outage = on_outage
        self.client: Any = docker.from_env(timeout=60).api
        self._stop = threading.Event()
        self._stream: Any = None
        self._since = time.time()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> EventReader:
        """Start reading; returns once subscribed (or after 10 s)."""
        self._thread.start()
        self._subscribed.wait(10)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._stream = self.client.events(
                    since=f"{self._since:.9f}", filters=self.filters, decode=True
                )
                self._subscribed.set()
                for raw in self._stream:
                    self._since = max(self._since, int(raw.get("timeNano", 0)) / 1e9)
                    self.on_event(raw)
            except Exception as exc:  # the engine went away (restart): note it, reconnect
                if not self._stop.is_set():
                    self.on_outage(f"engine events: {exc!r}"[:160])
            self._stream = None
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            if self._stream is not None:
                self._stream.close()
        self._thread.join(timeout=5)
        self.client.close()


class Activity:
    """Counts foreign container events and engine outages, with wall-clock times."""

    def __init__(self, run_hex: str) -> None:
        self.run_hex = run_hex
        self.lock = threading.Lock()
        self.foreign: list[tuple[int, str]] = []  # (timeNano, action)
        self.outages: list[tuple[int, str]] = []  # (time_ns, what)
        filters = {"type": ["container"], "event": LIFECYCLE}
        self.reader = EventReader(filters, self._seen, self._outage, name="bench-activity")
        signals.stream_lost.connect(self._lost, weak=False)

    def start(self) -> Activity:
        self.reader.start()
        return self

    def _outage(self, what: str) -> None:
        with self.lock:
            self.outages.append((time.time_ns(), what))

    def _lost(self, sender: object, **payload: Any) -> None:
        self._outage(f"pool {getattr(sender, 'name', '?')}: stream lost ({payload['error']})")

    def _seen(self, raw: dict[str, Any]) -> None:
        attrs = (raw.get("Actor") or {}).get("Attributes") or {}
        if attrs.get(RUN_LABEL) != self.run_hex:
            with self.lock:
                self.foreign.append((int(raw.get("timeNano", 0)), str(raw.get("Action"))))

    def note(self, start_ns: int, end_ns: int) -> str:
        """One line on foreign activity between two `time.time_ns()` readings ("" if none)."""
        with self.lock:
            foreign = [a for t, a in self.foreign if start_ns <= t <= end_ns]
            outages = [w for t, w in self.outages if start_ns <= t <= end_ns]
        parts = []
        if foreign:
            counts: dict[str, int] = {}
            for action in foreign:
                counts[action] = counts.get(action, 0) + 1
            listed = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
            parts.append(f"other users' containers were active meanwhile ({listed})")
        if outages:
            parts.append(f"{len(outages)} engine outage report(s), first: {outages[0][:120]}")
        load, cpus = os.getloadavg()[0], len(os.sched_getaffinity(0))
        if load > cpus:
            parts.append(f"load average {load:.1f} on {cpus} CPUs at the end")
        return "; ".join(parts)

    def stop(self) -> None:
        signals.stream_lost.disconnect(self._lost)
        self.reader.stop()
