"""Capped exponential back-off, with an injectable clock so tests need no real sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs


@attrs.define
class Backoff:
    """Delays base, 2*base, 4*base ... up to `cap` after consecutive failures; reset on success."""

    base: float = 0.5
    cap: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    until: float = 0.0

    def fail(self) -> float:
        """Record a failure; return the delay before the next attempt."""
        self.failures += 1
        delay: float = min(self.cap, self.base * 2.0 ** (self.failures - 1))
        self.until = self.clock() + delay
        return delay

    def succeed(self) -> bool:
        """Record a success; True if this ended a run of failures."""
        had = self.failures > 0
        self.failures = 0
        self.until = 0.0
        return had

    def remaining(self) -> float:
        """Seconds until the next attempt is allowed (0 when allowed now)."""
        return max(0.0, self.until - self.clock())
