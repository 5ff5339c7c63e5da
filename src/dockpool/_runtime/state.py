"""The pool's shared state: one lock, the member table, and the few facts every part reads.

The parts of the runtime (executor, upkeep, reconciler, claims, peers) each own one job; this
is what they share, and nothing here acts. Who may change what:
- the member table: only `Executor.apply` (through the state machine) and `Executor.discover`;
- `target` and `config`: the pool facade (resize, config reload);
- `counters`: the executor and the claims, under the lock.
"""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Callable, Iterator

import attrs

from dockpool._core import machine as m
from dockpool._core.config import PoolConfig
from dockpool._core.spec import (
    ORIGIN_LABEL,
    POOL_LABEL,
    ROLE_LABEL,
    SPEC_LABEL,
    ContainerSpec,
    readiness_mode,
)
from dockpool._runtime.members import MemberTable

#: Seconds a refill create waits at most for this process's claims in flight to end; longer
#: (1.5 x the measured warm-up, within ready_timeout) for images that take longer to warm, so
#: that a cold start's boot gets the machine before the refill's boots do.
REFILL_YIELD = 2.0
WARMUP_YIELD = 1.5


class Lifecycle(enum.Enum):
    """Where the pool object is in its life; the one place that says so."""

    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class Counters:
    """Monotonic counters reported by `stats()`."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.replaced = 0
        self.failed_starts = 0
        self.resyncs = 0
        self.lost_races = 0  # claims that found a member locked or taken by another process
        self.last_failure = ""
        #: why a cold start's member left before it was ready (read once by its claim)
        self.causes: dict[m.MemberKey, str] = {}

    def note_cause(self, key: m.MemberKey, effects: m.Effects) -> None:
        """Keep the reason a reserved (cold-start) member is leaving, for its claim's error."""
        reasons = [e.reason for e in effects if isinstance(e, m.Failure | m.Notify) and e.reason]
        if reasons and key not in self.causes:
            if len(self.causes) >= 256:  # (claims that gave up early never read theirs)
                self.causes.pop(next(iter(self.causes)))
            self.causes[key] = reasons[0]


@attrs.frozen
class Recipe:
    """What new members are made of: the spec, its image resolved, and their fingerprint."""

    spec: ContainerSpec
    image_id: str
    fingerprint: str
    probed: bool = False  # readiness by dockpool's own probe (spec.readiness_mode)
    warms: bool = False  # the probe is followed by a warm-up (spec.Readiness.warmup)

    @classmethod
    def of(cls, spec: ContainerSpec, image_id: str) -> Recipe:
        probed = readiness_mode(spec) == "probe"
        warms = spec.readiness is not None and bool(spec.readiness.warmup)
        return cls(spec, image_id, spec.fingerprint(image_id), probed, warms)


class PoolState:
    """The state that the pool's threads and its claimers share, under `lock`."""

    def __init__(self, config: PoolConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.table = MemberTable()
        self.counters = Counters()
        self.target = config.size
        self.lifecycle = Lifecycle.NEW
        self.recipe = Recipe(config.spec, "", "")
        self.recipes: dict[str, Recipe] = {}
        #: an early resync is due at this clock time (inf: none): after a create whose answer
        #: was lost, or a remove that found the member's lock held elsewhere
        self.resync_due = float("inf")
        #: claims (and their cold starts) running in this process: refill creates wait for
        #: them to end, at most `refill_yield` seconds (claims before upkeep, no starvation)
        self.claims_in_flight = 0
        self.refill_yield = REFILL_YIELD
        #: after a claim, refill creates also wait until this time.monotonic() (refill_hold)
        self.hold_until = 0.0
        self.warmup = 0.0  # seconds from create to ready, recently (AutoSize keeps it)
        #: claims waiting for a warming member rather than cold-starting (warming.py)
        self.warming_waiters = 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def closing(self) -> bool:
        return self.lifecycle in (Lifecycle.CLOSING, Lifecycle.CLOSED)

    @property
    def fingerprint(self) -> str:
        return self.recipe.fingerprint

    @property
    def needs_health(self) -> bool:
        return self.recipe.spec.healthcheck is not None

    @property
    def probed(self) -> bool:
        return self.recipe.probed

    @property
    def warms(self) -> bool:
        return self.recipe.warms

    def use(self, recipe: Recipe) -> None:
        """Make `recipe` the one new members (and cold starts) are made of."""
        with self.lock:
            self.recipe = recipe
            self.recipes[recipe.fingerprint] = recipe

    def labels(self, fingerprint: str, origin: str = "refill") -> dict[str, str]:
        """A member's labels: its pool, its spec, its role, and how it was made."""
        return {
            POOL_LABEL: self.config.name,
            SPEC_LABEL: fingerprint,
            ROLE_LABEL: "member",
            ORIGIN_LABEL: origin,
        }

    def resync_soon(self, delay: float = 1.0) -> None:
        """Ask for a resync within `delay` seconds (the reconciler is woken by the caller)."""
        with self.lock:
            self.resync_due = min(self.resync_due, self.clock() + delay)

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """Count a claim in flight for its duration (see `claims_in_flight`); one that ends
        without an error starts the refill hold before it stops counting, so that no refill
        create slips in between the two (the hold is set while the claim still holds refills
        back)."""
        with self.lock:
            self.claims_in_flight += 1
        try:
            yield
            self.hold_refills()
        finally:
            with self.lock:
                self.claims_in_flight -= 1
                self.changed.notify_all()

    @property
    def yield_bound(self) -> float:
        """How long a refill create waits at most for the claims in flight: refill_yield, or
        1.5 x the recent warm-up if that is longer (within ready_timeout). Bounded, and short:
        a refill member waiting here holds a place under max_containers, which a cold start
        in flight may be waiting for."""
        longer = min(WARMUP_YIELD * self.warmup, self.config.ready_timeout)
        return max(self.refill_yield, longer)

    def hold_refills(self) -> None:
        """A claim was served: refills wait `refill_hold` s more (its session starts first)."""
        with self.lock:
            self.hold_until = max(self.hold_until, time.monotonic() + self.config.refill_hold)

    def yield_to_claims(self, bound: float | None = None, *, hold: bool = False) -> float:
        """Wait until no claim of this process is in flight (and, with `hold`, until the
        refill hold after the last claim is over), at most `refill_yield` s or WARMUP_YIELD x
        the recent warm-up (within ready_timeout), whichever is longer; the seconds waited."""
        t0 = time.monotonic()
        deadline = t0 + (self.yield_bound if bound is None else bound)
        with self.lock:
            while not self.closing:
                now = time.monotonic()
                held = self.hold_until - now if hold else 0.0
                if (self.claims_in_flight == 0 and held <= 0) or now >= deadline:
                    break
                wait = deadline - now if self.claims_in_flight else min(held, deadline - now)
                self.changed.wait(wait)
        return time.monotonic() - t0

    def notify(self) -> None:
        with self.lock:
            self.changed.notify_all()
