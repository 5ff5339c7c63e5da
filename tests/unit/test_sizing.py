"""Self-sizing on a fake clock and a scripted claim stream (dockpool._core.sizing)."""

from __future__ import annotations

import itertools

from dockpool._core.sizing import Retarget, Sizer, SizingPolicy

POLICY = SizingPolicy(floor=2, ceiling=20, cap=16, window=60.0, decay_every=30.0)


def _stream(sizer: Sizer, start: float, seconds: float, every: float, hit: bool = True) -> float:
    """Claims every `every` s for `seconds` s from `start`; the clock after the last one."""
    now = start
    while now < start + seconds:
        sizer.claimed(now, hit=hit)
        now += every
    return now


def test_a_fixed_size_pool_never_moves() -> None:
    sizer = Sizer(SizingPolicy(floor=3), now=0.0)
    _stream(sizer, 0.0, 60.0, 0.1, hit=False)
    assert sizer.target == 3 and sizer.next_tick() is None


def test_rises_at_once_on_cold_fallbacks_never_above_the_caps() -> None:
    sizer = Sizer(POLICY, now=0.0)
    assert sizer.claimed(1.0, hit=False) == Retarget(2, 3, "cold fallback")
    assert sizer.claimed(1.1, hit=False) == Retarget(3, 4, "cold fallback")
    _stream(sizer, 2.0, 10.0, 0.2, hit=False)
    assert sizer.target == 16  # the ceiling is 20, but max_containers is 16


def test_follows_the_claim_rate_times_the_warm_up() -> None:
    sizer = Sizer(POLICY, now=0.0, warmup=4.0)
    now = _stream(sizer, 0.0, 600.0, 0.5)  # 2 claims/s for 10 minutes: steady state
    assert abs(sizer.rate(now) - 2.0) < 0.05
    assert sizer.target == 12  # ceil(2/s x 4 s x 1.5)
    sizer.warmed(8.0)  # the first measured warm-up replaces the guess of 4 s
    assert sizer.warmup == 8.0
    sizer.warmed(4.0)  # later ones are averaged: 0.7 x 8 + 0.3 x 4 = 6.8 s
    assert abs(sizer.warmup - 6.8) < 1e-9
    sizer.claimed(now, hit=True)
    assert sizer.target == 16  # ceil(2 x 6.8 x 1.5) = 21, and the cap is 16


def test_decays_slowly_when_idle_never_below_the_floor() -> None:
    sizer = Sizer(POLICY, now=0.0, warmup=4.0)
    now = _stream(sizer, 0.0, 600.0, 0.5)
    assert sizer.target == 12
    steps: list[tuple[float, int]] = []
    t = now
    while t < now + 3600:
        t += 1.0
        change = sizer.tick(t)
        if change is not None:
            assert change.reason == "idle" and change.new == change.old - 1
            steps.append((t, change.new))
    assert steps[-1][1] == POLICY.floor and sizer.target == POLICY.floor
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(steps)]
    assert min(gaps) >= POLICY.decay_every  # one member per 30 s at most
    assert sizer.next_tick() is None  # at the floor: no timer


def test_no_decay_while_the_rate_still_asks_for_it() -> None:
    sizer = Sizer(POLICY, now=0.0, warmup=4.0)
    now = _stream(sizer, 0.0, 600.0, 0.5)
    for _ in range(10):  # the stream goes on: every tick finds the target still wanted
        now = _stream(sizer, now, 30.0, 0.5)
        assert sizer.tick(now) is None
    assert sizer.target == 12


def test_a_miss_holds_off_the_decay() -> None:
    sizer = Sizer(POLICY, now=0.0)
    sizer.claimed(0.0, hit=False)
    sizer.claimed(0.0, hit=False)
    assert sizer.target == 4
    assert sizer.tick(29.0) is None
    sizer.claimed(29.0, hit=False)  # another miss: back up, and the quiet period restarts
    assert sizer.target == 5 and sizer.tick(58.0) is None
    assert sizer.tick(59.5) == Retarget(5, 4, "idle")


def test_new_bounds_move_the_target_into_them() -> None:
    sizer = Sizer(POLICY, now=0.0)
    _stream(sizer, 0.0, 5.0, 0.5, hit=False)
    assert sizer.target == 12
    change = sizer.set_policy(SizingPolicy(floor=2, ceiling=6, cap=16), now=6.0)
    assert change == Retarget(12, 6, "bounds")
    assert sizer.set_policy(SizingPolicy(floor=8, ceiling=10), now=7.0) == Retarget(6, 8, "bounds")
    assert sizer.set_policy(SizingPolicy(floor=3), now=8.0) == Retarget(8, 3, "bounds")


def test_a_rising_rate_is_followed_within_seconds() -> None:
    """From idle to 2 claims/s, every claim a hit: within 25 s the target is what the new rate
    asks for (the 60 s estimate alone says 0.7/s then, and a target of 2)."""
    sizer = Sizer(POLICY, now=0.0, warmup=2.0)
    now = _stream(sizer, 100.0, 25.0, 0.5)
    assert sizer.rate(now) > 1.7
    assert sizer.target == 6  # ceil(2/s x 2 s x 1.5)
