"""Claim latency: from a full pool (one claimer, then many at once) and cold (pool size 0).

Every claimed container is the session's, i.e. ours: it is removed after its round.
Figures are wall time around `pool.claim` and the pool's own `lease.seconds`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from dockpool import ContainerPool, ContainerSpec, signals
from dockpool.bench._harness import BenchRun, Result, outliers

FULL_TIMEOUT = 180.0


@dataclass
class ClaimSample:
    round: int
    index: int
    wall: float  # seconds around pool.claim, measured here
    lease: float  # lease.seconds, measured by the pool
    from_pool: bool
    start_skew: float = 0.0  # seconds after the first claimer of the round started
    waited_full: float = 0.0  # seconds the pool took to be full again before this claim
    error: str = ""
    at_ns: int = 0  # wall clock (time.time_ns) when the claim began, to line up with engine logs


def _claim(pool: ContainerPool, name: str, rnd: int, index: int) -> tuple[ClaimSample, str]:
    """One claim; the sample and the claimed container's id ("" on error)."""
    at, started = time.time_ns(), time.perf_counter()
    try:
        lease = pool.claim(name, timeout=FULL_TIMEOUT)
    except Exception as exc:
        wall = time.perf_counter() - started
        return ClaimSample(rnd, index, wall, float("nan"), False, error=repr(exc), at_ns=at), ""
    wall = time.perf_counter() - started
    sample = ClaimSample(rnd, index, wall, lease.seconds, lease.from_pool, at_ns=at)
    return sample, lease.container_id


def _wait_full(pool: ContainerPool) -> float:
    started = time.perf_counter()
    pool.wait_until_full(timeout=FULL_TIMEOUT)
    return time.perf_counter() - started


def _result(title: str, samples: list[ClaimSample], **values: object) -> Result:
    ok = [s for s in samples if not s.error]
    hits = sum(s.from_pool for s in ok)
    res = Result(title)
    res.series["claim wall"] = [s.wall for s in ok]
    res.series["lease.seconds"] = [s.lease for s in ok]
    res.values.update(values)
    res.values["claims"] = len(samples)
    res.values["hit rate"] = f"{hits}/{len(samples)} ({100.0 * hits / max(1, len(samples)):.0f}%)"
    res.raw["samples"] = [asdict(s) for s in samples]
    for s in samples:
        if s.error:
            res.notes.append(f"round {s.round} claim {s.index} failed: {s.error}")
    for i in outliers(res.series["claim wall"]):
        s = ok[i]
        res.notes.append(
            f"slow claim: round {s.round} #{s.index}: wall {1e3 * s.wall:.1f} ms, lease "
            f"{1e3 * s.lease:.1f} ms, skew {1e3 * s.start_skew:.1f} ms, from_pool={s.from_pool}"
        )
    return res


def sequential(
    run: BenchRun, n: int, size: int = 5, spec: ContainerSpec | None = None, **options: Any
) -> Result:
    """N claims one after another, each from a full pool (we wait for the refill first)."""
    samples: list[ClaimSample] = []
    with run.session("seq", size, spec=spec, **options) as pool:
        for i in range(n):
            waited = _wait_full(pool)
            sample, cid = _claim(pool, f"{pool.name}-s{i}", 0, i)
            sample.waited_full = waited
            samples.append(sample)
            if cid:
                run.remove(cid)  # each claim is its own round
        stats = pool.stats()
    res = _result("Claim latency, 1 claimer, full pool", samples, **{"pool size": size})
    res.values["pool hits/misses"] = f"{stats.hits}/{stats.misses}"
    res.values["refill wait p50"] = f"{1e3 * sorted(s.waited_full for s in samples)[n // 2]:.0f} ms"
    return res


def concurrent(
    run: BenchRun,
    claimers: int,
    rounds: int,
    spec: ContainerSpec | None = None,
    **options: Any,
) -> Result:
    """`claimers` threads released together by a barrier against a full pool of that size."""
    samples: list[ClaimSample] = []
    overlap: list[int] = []  # per round: replacement creates begun before the last claim ended
    creating: list[float] = []

    def count(sender: object, **payload: object) -> None:
        creating.append(time.perf_counter())

    opts = {"max_containers": 2 * claimers + 2} | options
    with run.session("conc", claimers, spec=spec, **opts) as pool:
        signals.member_creating.connect(count, sender=pool, weak=False)
        try:
            for rnd in range(rounds):
                waited = _wait_full(pool)
                began = time.perf_counter()
                got = _round(pool, claimers, rnd)
                ended = time.perf_counter()
                overlap.append(sum(began <= t <= ended for t in creating))
                for sample, _ in got:
                    sample.waited_full = waited
                samples.extend(s for s, _ in got)
                for _, cid in got:
                    if cid:
                        run.remove(cid)
        finally:
            signals.member_creating.disconnect(count, sender=pool)
        stats = pool.stats()
    res = _result(
        f"Claim latency, {claimers} concurrent claimers, full pool of {claimers}",
        samples,
        **{"rounds": rounds, "pool size": claimers},
    )
    res.values["pool hits/misses"] = f"{stats.hits}/{stats.misses}"
    skews = [s.start_skew for s in samples if not s.error]
    res.values["start skew max"] = f"{1e3 * max(skews, default=0.0):.1f} ms"
    res.values["refill creates begun during the claims, per round"] = overlap
    return res


def _round(pool: ContainerPool, claimers: int, rnd: int) -> list[tuple[ClaimSample, str]]:
    barrier = threading.Barrier(claimers)
    out: list[tuple[ClaimSample, str] | None] = [None] * claimers
    starts = [0.0] * claimers

    def work(i: int) -> None:
        barrier.wait()
        starts[i] = time.perf_counter()
        out[i] = _claim(pool, f"{pool.name}-r{rnd}c{i}", rnd, i)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = min(starts)
    got = [x for x in out if x is not None]
    for sample, _ in got:
        sample.start_skew = starts[sample.index] - first
    return got


def cold(run: BenchRun, n: int) -> Result:
    """N claims at pool size 0: each one creates, starts and waits for a healthy container."""
    samples: list[ClaimSample] = []
    with run.session("cold", 0) as pool:
        for i in range(n):
            sample, cid = _claim(pool, f"{pool.name}-s{i}", 0, i)
            samples.append(sample)
            if cid:
                run.remove(cid)
    res = _result("Cold start (claim at pool size 0: create + start + healthy)", samples)
    res.values["hit rate"] += " (all misses expected)"
    return res
