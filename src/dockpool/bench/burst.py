"""A burst larger than the pool: `burst` conversations ask at once against a full pool.

The first `pool size` claims are renames (hits), the rest fall back to cold starts while the
pool refills. Per conversation: from_pool, claim time and time to /ready 200; for the pool:
a timeline of its ready and warming members (sampled every 50 ms) and the time until it is
full again, counted from the moment the burst began.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import Any

from dockpool import ContainerPool
from dockpool.bench._harness import BenchRun, Result
from dockpool.bench.ready import Progress, Sample, _drop, converse, to_result
from dockpool.bench.replacement import settle
from dockpool.bench.targets import Target

TICK = 0.025


class Timeline:
    """Samples `pool.stats()` every TICK seconds in a thread; keeps the changes only:
    (t, ready, warming, claimed)."""

    def __init__(self, pool: ContainerPool, t0: float) -> None:
        self.pool, self.t0 = pool, t0
        self.points: list[tuple[float, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-timeline", daemon=True)

    def start(self) -> Timeline:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            st = self.pool.stats()
            t = time.perf_counter() - self.t0
            now = (st.ready, st.warming, st.claimed)
            if not self.points or self.points[-1][1:] != now:
                self.points.append((round(t, 4), *now))
            self._stop.wait(TICK)

    def full_again(self, size: int) -> float | None:
        """When `ready` got back to `size` after it first fell below it (None: not seen)."""
        drained = False
        for t, ready, _, _ in self.points:
            drained = drained or ready < size
            if drained and ready >= size:
                return t
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def burst(run: BenchRun, target: Target, progress: Progress) -> Result:
    size, claimers, rounds = target.sizes.burst_pool, target.sizes.burst, target.sizes.burst_rounds
    opts = target.options | {"max_containers": size + claimers + 2}
    samples: list[Sample] = []
    rounds_raw: list[dict[str, Any]] = []
    refills: list[float] = []
    with run.session("burst", size, spec=target.spec(run), **opts) as pool:
        for rnd in range(rounds):
            progress(f"burst {rnd + 1}/{rounds}: waiting for a full pool of {size}")
            settle(pool, timeout=2 * target.boot_timeout)
            progress(f"burst {rnd + 1}/{rounds}: {claimers} conversations at once")
            got, raw = _round(pool, target, claimers, rnd, progress)
            samples += got
            rounds_raw.append(raw)
            if raw["full_again"] is not None:
                refills.append(raw["full_again"])
            for sample in got:
                _drop(run, sample)
    res = to_result(
        f"burst: {claimers} conversations at once against a full pool of {size}", samples
    )
    res.series["hits: ask -> /ready 200"] = [s.total for s in samples if s.from_pool]
    res.series["cold fallbacks: ask -> /ready 200"] = [
        s.total for s in samples if not s.from_pool and not s.error
    ]
    res.series["pool full again after the burst began"] = refills
    res.values["rounds"] = rounds
    for raw in rounds_raw:
        convs = sorted(raw["conversations"], key=lambda c: (not c["from_pool"], c["total"]))
        per = ", ".join(
            f"#{c['index']} {'pool' if c['from_pool'] else 'cold'} {1e3 * c['total']:.0f}"
            if not c["error"]
            else f"#{c['index']} failed"
            for c in convs
        )
        full = raw["full_again"]
        again = f"{full:.2f} s" if full is not None else "not seen"
        res.values[f"round {raw['round'] + 1}, ask -> /ready 200 in ms"] = (
            f"{per}; pool full again {again} after the burst began"
        )
    res.raw["rounds"] = rounds_raw
    return res


def _round(
    pool: ContainerPool, target: Target, claimers: int, rnd: int, progress: Progress
) -> tuple[list[Sample], dict[str, Any]]:
    barrier = threading.Barrier(claimers + 1)
    out: list[Sample | None] = [None] * claimers
    t0 = [0.0]

    def work(i: int) -> None:
        barrier.wait()
        sample = converse(pool, target, "burst", f"{pool.name}-r{rnd}b{i}", i, t0[0])
        sample.round = rnd
        out[i] = sample

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(claimers)]
    for t in threads:
        t.start()
    t0[0] = time.perf_counter()
    timeline = Timeline(pool, t0[0]).start()
    barrier.wait()
    for i, t in enumerate(threads):
        t.join()
        progress(f"burst {rnd + 1}: {i + 1}/{claimers} conversations done")
    last = time.perf_counter() - t0[0]
    deadline = time.monotonic() + 2 * target.boot_timeout
    while time.monotonic() < deadline and pool.stats().ready < pool.stats().size:
        time.sleep(TICK)
    time.sleep(4 * TICK)
    timeline.stop()
    full_again = timeline.full_again(pool.stats().size)
    samples = [s for s in out if s is not None]
    raw = {
        "round": rnd,
        "last_conversation_ready": last,
        "full_again": full_again,
        "timeline": timeline.points,  # (seconds since the burst began, ready, warming, claimed)
        "conversations": [asdict(s) for s in samples],
    }
    hits = sum(s.from_pool for s in samples)
    full = f"{full_again:.2f} s" if full_again is not None else "not within the timeout"
    progress(f"burst {rnd + 1}: {hits} hits, {len(samples) - hits} cold; pool full again at {full}")
    return samples, raw
