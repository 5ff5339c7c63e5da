"""Capped exponential back-off with jitter, and an injectable clock so tests need no real sleeps.

The jitter matters when several processes share an engine: after a dockerd restart they all lose
their event streams at the same instant, and without it they would reconnect (and resync) in
lock step at every attempt. Each delay gets a random extra in [0, jitter) (by default up to one
`base`), and the sum is capped, so the cap still bounds every wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import attrs


@attrs.define
class Backoff:
    """Delays base, 2*base, 4*base ... (each plus up to `jitter`) up to `cap` after consecutive
    failures; reset on success. `jitter` None means one `base`; 0 turns it off."""

    base: float = 0.5
    cap: float = 30.0
    clock: Callable[[], float] = time.monotonic
    jitter: float | None = None
    #: a random number in [0, 1): the seam for deterministic tests
    draw: Callable[[], float] = random.random
    failures: int = 0
    until: float = 0.0

    def fail(self) -> float:
        """Record a failure; return the delay before the next attempt."""
        self.failures += 1
        spread = self.base if self.jitter is None else self.jitter
        exponential = self.base * 2.0 ** min(self.failures - 1, 64)
        delay: float = min(self.cap, exponential + spread * self.draw())
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
