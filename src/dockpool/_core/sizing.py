"""A pool that sizes itself: the target follows the claim rate x the warm-up time, as pure logic.

A pool stays warm only while its size exceeds (claims per second) x (seconds to warm a
member): every claim takes a member out for one warm-up time. So the target is
`ceil(rate x warm-up x headroom)`, within [floor, ceiling] (the floor is `container_pool_size`,
the ceiling `max_pool_size`, both within `max_containers`). It rises at once: on every cold
fallback by one (at least), and to what the rate asks as soon as it asks; it decays slowly: one
member every `decay_every` seconds without a cold fallback, while the rate asks for fewer.

The rate is the larger of two exponentially weighted claim counts (a claim adds one to each,
a sum decays by e every its window; rate = sum / window): over `window` seconds (60), which
holds the target up while claims keep coming, and over `rise_window` seconds (10), which
follows a rising rate within seconds (the long one alone reaches only 40 % of a new rate after
30 s). The warm-up time is an exponentially weighted mean of measured ones. No threads, no
clock of its own: the caller passes `now`.
"""

from __future__ import annotations

import math

import attrs


@attrs.frozen
class SizingPolicy:
    """The bounds and pace of self-sizing. `ceiling` None: a fixed size (= floor)."""

    floor: int
    ceiling: int | None = None
    cap: int = 16  # max_containers
    window: float = 60.0
    rise_window: float = 10.0
    decay_every: float = 30.0
    headroom: float = 1.5

    @property
    def upper(self) -> int:
        if self.ceiling is None:
            return self.floor
        return max(self.floor, min(self.ceiling, self.cap))


@attrs.frozen
class Retarget:
    """The target changed from `old` to `new` for `reason`."""

    old: int
    new: int
    reason: str


class Sizer:
    """The self-sizing target of one pool (see the module's docstring)."""

    def __init__(self, policy: SizingPolicy, now: float, warmup: float = 1.0) -> None:
        self.policy = policy
        self.target = policy.floor
        self.warmup = warmup  # a guess until the first measured warm-up replaces it
        self._warmed = False
        self._sum = 0.0  # over policy.window
        self._rise = 0.0  # over policy.rise_window
        self._at = now
        self._quiet_since = now  # the last cold fallback or rise

    def rate(self, now: float) -> float:
        """Claims per second, recently: the faster of the two estimates."""
        long, short = self._decayed(now)
        # the short sum jumps by one at each claim: count it from the middle of that step
        return max(long / self.policy.window, max(0.0, short - 0.5) / self.policy.rise_window)

    def wanted(self, now: float) -> int:
        """What the claim rate asks for, within the policy's bounds."""
        # a quarter of a member of slack: the rate wobbles between claims, the target should not
        need = math.ceil(self.rate(now) * self.warmup * self.policy.headroom - 0.25)
        return self._bounded(need)

    def claimed(self, now: float, *, hit: bool) -> Retarget | None:
        """A claim was served (`hit`: from the pool; else by a cold start)."""
        long, short = self._decayed(now)
        self._sum, self._rise, self._at = long + 1.0, short + 1.0, now
        want = self.wanted(now)
        if not hit:
            return self._set(max(self.target + 1, want), "cold fallback", now)
        if want > self.target:
            return self._set(want, "claim rate", now)
        return None

    def warmed(self, seconds: float) -> None:
        """A member took `seconds` from its create to ready."""
        if seconds > 0 and math.isfinite(seconds):
            first = not self._warmed
            self.warmup = seconds if first else 0.7 * self.warmup + 0.3 * seconds
            self._warmed = True

    def tick(self, now: float) -> Retarget | None:
        """Decay one step if it is due (see `next_tick`)."""
        due = self.next_tick()
        if due is None or now < due:
            return None
        if self.wanted(now) >= self.target:
            self._quiet_since = now  # still wanted: look again one period later
            return None
        return self._set(self.target - 1, "idle", now)

    def next_tick(self) -> float | None:
        """When the next decay step may happen; None when at the floor (nothing to decay)."""
        if self.target <= self.policy.floor:
            return None
        return self._quiet_since + self.policy.decay_every

    def set_policy(self, policy: SizingPolicy, now: float) -> Retarget | None:
        """New bounds (a config reload or resize): the target moves into them."""
        self.policy = policy
        return self._set(self.target, "bounds", now)

    def _set(self, target: int, reason: str, now: float) -> Retarget | None:
        new = self._bounded(target)
        old = self.target
        if reason != "idle" and new >= old:
            self._quiet_since = now
        if new == old:
            return None
        self.target = new
        if reason == "idle":
            self._quiet_since = now
        return Retarget(old, new, reason)

    def _bounded(self, n: int) -> int:
        return max(self.policy.floor, min(n, self.policy.upper))

    def _decayed(self, now: float) -> tuple[float, float]:
        """Both sums, decayed to `now`."""
        age = max(0.0, now - self._at)
        return (self._sum * math.exp(-age / self.policy.window),
                self._rise * math.exp(-age / self.policy.rise_window))  # fmt: skip
