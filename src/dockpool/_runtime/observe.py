"""What a pool process has seen: claims by outcome, their latency, and its recent events.

`Observer` listens to the pool's own signals (sender = the pool) and keeps what the counters of
the state do not: claim outcomes as a client saw them (a cold fallback is never a hit), a
latency histogram per outcome, member creates and reloads, and the last events and failures
for `dockpool status`. Receivers run in the sending threads; one lock guards the records.
"""

from __future__ import annotations

import bisect
import collections
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from dockpool import signals

#: Upper bounds (seconds) of the claim latency buckets: a hit takes milliseconds, a cold start
#: seconds to a minute; Prometheus adds +Inf.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OUTCOMES = ("hit", "cold", "failed")
_EVENTS = 50
_FAILURES = 20
#: Signals worth a line in the recent events (docker_event is the raw stream: too many).
_NOTED = tuple(s.name for s in signals.ALL if s.name != "docker_event")
#: Signals whose `reason` (or `error`) is a failure an operator should read.
_FAILING = {"member_failed", "member_lost", "claim_failed", "config_rejected", "pool_degraded",
            "stream_lost"}  # fmt: skip


@attrs.frozen
class Histogram:
    """Claim latencies of one outcome: count per bucket (not cumulative), the +Inf overflow last."""

    counts: tuple[int, ...] = (0,) * (len(BUCKETS) + 1)
    total: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def add(self, seconds: float) -> Histogram:
        i = bisect.bisect_left(BUCKETS, seconds)
        counts = list(self.counts)
        counts[i] += 1
        return Histogram(tuple(counts), self.total + seconds)

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for n in self.counts:
            running += n
            out.append(running)
        return out

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile `q` (None when empty or in +Inf)."""
        if self.count == 0:
            return None
        rank = q * self.count
        for bound, seen in zip((*BUCKETS, None), self.cumulative(), strict=True):
            if seen >= rank:
                return bound
        return None


@attrs.frozen
class Noted:
    """One recent event: wall-clock time, signal name, the member or session, details."""

    at: float
    signal: str
    who: str
    detail: str


class Observer:
    """Records the signals one pool sends; `snapshot()` for status and metrics."""

    def __init__(self, pool: object, clock: Callable[[], float] = time.time) -> None:
        self._pool = pool
        self._clock = clock
        self._lock = threading.Lock()
        self._receivers: list[tuple[Any, Any]] = []
        self.claims = dict.fromkeys(OUTCOMES, 0)
        self.latency = {"hit": Histogram(), "cold": Histogram()}
        self.counts: collections.Counter[str] = collections.Counter()  # signals, by name
        self.events: collections.deque[Noted] = collections.deque(maxlen=_EVENTS)
        self.failures: collections.deque[Noted] = collections.deque(maxlen=_FAILURES)

    def connect(self) -> Observer:
        for name in _NOTED:

            def receiver(sender: object, _name: str = name, **payload: Any) -> None:
                self._record(_name, payload)

            signals.namespace[name].connect(receiver, sender=self._pool, weak=False)
            self._receivers.append((signals.namespace[name], receiver))
        return self

    def disconnect(self) -> None:
        for sig, receiver in self._receivers:
            sig.disconnect(receiver)
        self._receivers.clear()

    def _record(self, name: str, payload: dict[str, Any]) -> None:
        lease = payload.get("lease")
        member = payload.get("member")
        who = getattr(lease, "name", None) or getattr(member, "name", None) or ""
        if name == "claim_failed":
            who = str(payload.get("session", ""))
        detail = str(payload.get("reason") or payload.get("error") or "")
        if name == "pool_resized":
            detail = f"{payload.get('old')} -> {payload.get('new')} ({detail})"
        elif lease is not None:
            how = "from the pool" if lease.from_pool else "cold"
            detail = f"{lease.seconds * 1000:.1f} ms, {how}"
        noted = Noted(self._clock(), name, who, detail)
        with self._lock:
            self.counts[name] += 1
            self.events.append(noted)
            if name in _FAILING:
                self.failures.append(noted)
            if name == "member_claimed" and lease is not None:
                outcome = "hit" if lease.from_pool else "cold"
                self.claims[outcome] += 1
                self.latency[outcome] = self.latency[outcome].add(lease.seconds)
            elif name == "claim_failed":
                self.claims["failed"] += 1

    def snapshot(self) -> dict[str, Any]:
        """Claims, latency, signal counts, recent events and failures, as plain data."""
        with self._lock:
            claims = dict(self.claims)
            latency = dict(self.latency)
            counts = dict(self.counts)
            events, failures = list(self.events), list(self.failures)
        served = claims["hit"] + claims["cold"]
        return {
            "claims": claims,
            "hit_rate": claims["hit"] / served if served else None,
            "latency": {
                "buckets": list(BUCKETS),
                **{
                    outcome: {
                        "counts": list(h.counts),
                        "count": h.count,
                        "sum": h.total,
                        "p50": h.quantile(0.5),
                        "p99": h.quantile(0.99),
                    }
                    for outcome, h in latency.items()
                },
            },
            "signals": counts,
            "events": [attrs.asdict(e) for e in events],
            "failures": [attrs.asdict(e) for e in failures],
        }
