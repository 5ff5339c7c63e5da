"""Measure a dockpool pool on the real engine with the stand-in image; print the figures.

    python -m dockpool.bench.pool_metrics [--quick] [--json PATH]

Figures, not assertions: nothing here passes or fails on timing. Every container the run
creates carries the label dockpool.bench.run=<run id> and is removed at the end, even on
an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import dockpool
from dockpool.bench import baseline, claims, replacement, resources
from dockpool.bench._activity import Activity
from dockpool.bench._harness import IMAGE, RUN_LABEL, BenchRun, Result, machine_info, percentile
from dockpool.bench.report import render, render_header, to_json


@dataclass(frozen=True)
class Sizes:
    claims: int
    claimers: int
    rounds: int
    kills: int
    cold: int
    idle_seconds: float


FULL = Sizes(claims=30, claimers=16, rounds=3, kills=20, cold=10, idle_seconds=60.0)
QUICK = Sizes(claims=5, claimers=4, rounds=1, kills=3, cold=3, idle_seconds=10.0)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m dockpool.bench.pool_metrics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="tiny N, for a CI smoke run (< 60 s)")
    p.add_argument("--json", metavar="PATH", help="also write every raw sample to PATH")
    p.add_argument("--claims", type=int, help="sequential claims (default 30; quick 5)")
    p.add_argument("--claimers", type=int, help="concurrent claimers = pool size (16; quick 4)")
    p.add_argument("--rounds", type=int, help="concurrent rounds (3; quick 1)")
    p.add_argument("--kills", type=int, help="members killed for replacement (20; quick 3)")
    p.add_argument("--cold", type=int, help="cold-start claims (10; quick 3)")
    p.add_argument("--idle-seconds", type=float, help="idle window (60; quick 10)")
    p.add_argument(
        "--health-interval", type=float, default=0.2, help="health check interval, s (0.2)"
    )
    return p.parse_args(argv)


def sizes(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else FULL
    pick = {k: getattr(args, k) for k in base.__dataclass_fields__}
    return Sizes(**{k: getattr(base, k) if v is None else v for k, v in pick.items()})


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    n = sizes(args)
    out = sys.stdout
    results: dict[str, list[Result]] = {}
    started = time.monotonic()
    run = BenchRun(health_interval=args.health_interval)
    meta: dict[str, object] = {}
    failed, interrupted = 0, False
    try:
        with run:
            meta |= {
                **run.engine_info(),
                **machine_info(),
                "python": platform.python_version(),
                "dockpool": dockpool.__version__,
                "image": IMAGE,
                "health check": f"stub-check every {args.health_interval} s, timeout 1 s, "
                "retries 1, start_interval 0.1 s (honoured from API 1.44)",
                "mode": "quick" if args.quick else "full",
                "sizes": ", ".join(f"{k}={v}" for k, v in vars(n).items()),
                "run label": f"{RUN_LABEL}={run.hex}",
            }
            render_header(meta, out)
            failed = _run_steps(run, n, results, out)
    except KeyboardInterrupt:
        interrupted = True
        out.write("\ninterrupted\n")
    meta["elapsed"] = f"{time.monotonic() - started:.1f} s"
    meta["left behind"] = run.leftover
    out.write(f"elapsed {meta['elapsed']}; containers left behind: {run.leftover or 'none'}\n")
    if args.json:
        to_json(meta, [r for got in results.values() for r in got], args.json)
        out.write(f"raw samples written to {args.json}\n")
    if interrupted:
        return 130
    return 1 if failed or run.leftover else 0


def _run_steps(run: BenchRun, n: Sizes, results: dict[str, list[Result]], out: TextIO) -> int:
    """Run each benchmark in turn, printing as it goes; the number that failed."""
    steps: list[tuple[str, Callable[[], list[Result]]]] = [
        ("idle", lambda: list(resources.idle_and_rss(run, n.idle_seconds))),
        ("sequential", lambda: [claims.sequential(run, n.claims)]),
        ("concurrent", lambda: [claims.concurrent(run, n.claimers, n.rounds)]),
        ("replacement", lambda: [replacement.run_kills(run, n.kills)]),
        ("cold", lambda: [claims.cold(run, n.cold)]),
        ("baseline", lambda: [baseline.engine_baseline(run, n.claims, n.claimers, n.rounds)]),
    ]
    failed = 0
    activity: Activity | None = None
    try:
        for name, step in steps:
            if not run.wait_engine():
                out.write(f"== {name}: skipped, the engine does not answer\n\n")
                failed += 1
                continue
            t0 = time.time_ns()
            try:
                got = step()
            except Exception as exc:
                failed += 1
                why = f"{type(exc).__name__}: {exc}"[:300]
                got = [
                    Result(
                        f"{name}: FAILED", notes=[why], raw={"traceback": traceback.format_exc()}
                    )
                ]
            note = activity.note(t0, time.time_ns()) if activity else ""
            for result in got:
                result.notes += [note] if note else []
                render(result, out)
            results[name] = got
            if activity is None:  # only after the idle window: its reader costs our CPU
                activity = Activity(run.hex).start()
    finally:
        if activity is not None:
            activity.stop()
    comparison = _comparison(results)
    if comparison is not None:
        render(comparison, out)
        results["comparison"] = [comparison]
    return failed


def _comparison(results: dict[str, list[Result]]) -> Result | None:
    """Pooled claim (one claimer, full pool) against a cold start, on wall time."""
    if "sequential" not in results or "cold" not in results:
        return None
    p = results["sequential"][0].series.get("claim wall", [])
    c = results["cold"][0].series.get("claim wall", [])
    if not p or not c:
        return None
    res = Result("Pooled vs cold (claim wall time, 1 claimer)")
    for q in (50, 99):
        pq, cq = percentile(p, q), percentile(c, q)
        res.values[f"p{q}"] = (
            f"pooled {1e3 * pq:.1f} ms, cold {1e3 * cq:.1f} ms: ratio pooled/cold {pq / cq:.3f}"
            f" (cold is {cq / pq:.0f}x slower)"
        )
    return res


if __name__ == "__main__":
    sys.exit(main())
