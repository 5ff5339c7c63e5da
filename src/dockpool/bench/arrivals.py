"""`dockpool bench --arrivals`: conversations arriving as users send them, fixed size against
self-sizing, on the stand-in, per engine.

Conversations arrive as a Poisson process (exponential gaps, seeded: both modes see the very
same arrival times) at each rate of RATES for WINDOW seconds, then as one burst of BURST at
once. Each conversation claims, polls GET /ready until 200 (the time to ready, from its
arrival), keeps its container HOLD seconds (the session), then removes it. Each phase gets a
fresh pool, full before the first arrival:

- fixed:       container_pool_size = FLOOR;
- self-sizing: container_pool_size = FLOOR as the floor, max_pool_size = CEILING.

Per phase: hit rate (claims served from the pool), time to ready p50/p95/p99, and the cost:
the unclaimed containers the pool held (ready + warming), time-averaged over the phase, and
the largest target it set. The pool runs config.toml's stand-in profile. Figures, not
assertions; the load average is reported per phase.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from dockpool import ContainerPool
from dockpool.bench._harness import BenchRun, percentile
from dockpool.bench.engine_cost import ENGINES, _has_image
from dockpool.bench.ready import Sample, converse
from dockpool.bench.targets import stub

RATES = (0.25, 0.5, 1.0, 2.0)  # conversations per second
WINDOW = 30.0  # seconds of arrivals per rate
BURST = 8
HOLD = 4.0  # seconds a conversation keeps its container
FLOOR, CEILING, CAP = 2, 8, 14
TICK = 0.1  # seconds between samples of the pool's stats
SEED = 11


@dataclass
class Phase:
    engine: str
    mode: str  # "fixed" or "self-sizing"
    arrivals: str  # "poisson 0.5/s" or "burst of 8"
    samples: list[Sample] = field(default_factory=list)
    held: list[tuple[float, int, int]] = field(default_factory=list)  # (t, unclaimed, target)
    load: float = 0.0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        ok = [s for s in self.samples if not s.error]
        ready = [s.total for s in ok]
        hits = sum(s.from_pool for s in ok)
        unclaimed = [u for _, u, _ in self.held]
        return {
            "engine": self.engine, "mode": self.mode, "arrivals": self.arrivals,
            "conversations": len(self.samples), "failed": len(self.samples) - len(ok),
            "hit_rate": hits / max(1, len(self.samples)),
            "p50": percentile(ready, 50), "p95": percentile(ready, 95),
            "p99": percentile(ready, 99), "max": max(ready, default=float("nan")),
            "held_mean": sum(unclaimed) / max(1, len(unclaimed)),
            "target_max": max((t for _, _, t in self.held), default=0),
            "load": self.load, "seconds": self.seconds,
        }  # fmt: skip


def schedule(rate: float, window: float, seed: int) -> list[float]:
    """Arrival times in [0, window) of a Poisson process of `rate` per second."""
    rnd, at = random.Random(seed), 0.0
    out: list[float] = []
    while True:
        at += rnd.expovariate(rate)
        if at >= window:
            return out
        out.append(at)


def _sampler(pool: ContainerPool, phase: Phase, t0: float, stop: threading.Event) -> None:
    while not stop.is_set():
        st = pool.stats()
        phase.held.append((time.perf_counter() - t0, st.ready + st.warming, st.size))
        stop.wait(TICK)


def run_phase(run: BenchRun, host: str, phase: Phase, times: list[float], size: int,
              ceiling: int | None) -> None:  # fmt: skip
    target = stub()
    opts: dict[str, Any] = {"docker_url": host, "max_containers": CAP, "ready_timeout": 60.0}
    if ceiling is not None:
        opts["max_pool_size"] = ceiling
    tag = f"{phase.mode[:1]}{len(phase.arrivals)}{len(times)}"
    with run.session(f"arr{tag}", size, spec=run.spec(), **opts) as pool:
        pool.wait_until_full(timeout=120)
        time.sleep(1.0)  # the fill's last events settle
        phase.load = os.getloadavg()[0]
        stop, lock = threading.Event(), threading.Lock()
        t0 = time.perf_counter()
        sampler = threading.Thread(target=_sampler, args=(pool, phase, t0, stop), daemon=True)
        sampler.start()

        def conversation(i: int) -> None:
            sample = converse(pool, target, phase.mode, f"{pool.name}-a{i}", i, t0)
            with lock:
                phase.samples.append(sample)
            time.sleep(HOLD)
            if sample.container:
                run.remove(sample.container)

        threads = []
        for i, at in enumerate(times):
            time.sleep(max(0.0, t0 + at - time.perf_counter()))
            th = threading.Thread(target=conversation, args=(i,), daemon=True)
            th.start()
            threads.append(th)
        for th in threads:
            th.join(timeout=target.boot_timeout + HOLD + 30)
        phase.seconds = time.perf_counter() - t0
        stop.set()
        sampler.join(timeout=5)


def engine_phases(engine: str, rates: tuple[float, ...], window: float, burst: int,
                  log: Any) -> list[Phase]:  # fmt: skip
    host, _ = ENGINES[engine]
    phases: list[Phase] = []
    run = BenchRun(base_url=host)
    with run:
        info = run.engine_info()
        version = f"{info['engine']}, API {info['api']}"
        if not _has_image(run, "dockpool-stub:latest", host):
            raise RuntimeError(f"dockpool-stub:latest missing on {host}")
        plan = [(f"poisson {r:g}/s", schedule(r, window, SEED + i)) for i, r in enumerate(rates)]
        plan.append((f"burst of {burst}", [0.0] * burst))
        for arrivals, times in plan:
            for mode, ceiling in (("fixed", None), ("self-sizing", CEILING)):
                phase = Phase(f"{engine} ({version})", mode, arrivals)
                log(f"[{engine}] {mode}, {arrivals}: {len(times)} conversations")
                run_phase(run, host, phase, times, FLOOR, ceiling)
                s = phase.summary()
                log(f"[{engine}] {mode}, {arrivals}: hits {100 * s['hit_rate']:.0f}%, "
                    f"p95 {s['p95']:.2f} s, held {s['held_mean']:.1f}")  # fmt: skip
                phases.append(phase)
    return phases


HEADER = (
    "| engine | arrivals | pool | conversations | hit rate | ready p50 / p95 / p99 (s) "
    "| unclaimed held, mean | target max | load |\n|---|---|---|---|---|---|---|---|---|"
)


def row(s: dict[str, Any]) -> str:
    failed = f", {s['failed']} failed" if s["failed"] else ""
    return (f"| {s['engine']} | {s['arrivals']} | {s['mode']} | {s['conversations']}{failed} "
            f"| {100 * s['hit_rate']:.0f} % | {s['p50']:.3f} / {s['p95']:.3f} / {s['p99']:.3f} "
            f"| {s['held_mean']:.2f} | {s['target_max']} | {s['load']:.2f} |")  # fmt: skip


def main(engines: list[str], smoke: bool, out: str, png: str | None) -> int:
    def log(message: str) -> None:
        sys.stderr.write(f"{message}  (load {os.getloadavg()[0]:.2f})\n")
        sys.stderr.flush()

    rates, window, burst = ((1.0,), 5.0, 3) if smoke else (RATES, WINDOW, BURST)
    phases: list[Phase] = []
    failed: list[str] = []
    for engine in engines[:1] if smoke else engines:
        try:
            phases += engine_phases(engine, rates, window, burst, log)
        except Exception as exc:
            failed.append(f"{engine}: {type(exc).__name__}: {exc}")
    summaries = [p.summary() for p in phases]
    print(f"arrivals: Poisson, {window:.0f} s per rate, sessions of {HOLD:.0f} s; fixed size "
          f"{FLOOR} against self-sizing {FLOOR}..{CEILING}; max_containers {CAP}")  # fmt: skip
    print(HEADER)
    for s in summaries:
        print(row(s))
    for p in phases:
        for smp in p.samples:
            if smp.error:
                print(f"note [{p.engine} {p.mode} {p.arrivals}] #{smp.index}: {smp.error}")
    for problem in failed:
        print(f"not measured: {problem}")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    doc = {"summaries": summaries, "failed": failed, "loadavg": os.getloadavg(),
           "phases": [{**p.summary(), "samples": [asdict(x) for x in p.samples],
                       "held": p.held} for p in phases]}  # fmt: skip
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"every sample: {out}")
    if png and summaries:
        from dockpool.bench.plot import matplotlib_missing

        why = matplotlib_missing()
        if why:
            print(f"plot skipped: {why}")
        else:
            from dockpool.bench.plot_arrivals import write

            write(png, phases)
            print(f"plot: {png}")
    return 1 if failed or any(s["failed"] for s in summaries) else 0
