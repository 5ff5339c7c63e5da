"""`dockpool bench`: time to the first ready conversation, pooled against cold, on the real engine.

    dockpool bench                  the stand-in image (fast, no network)
    dockpool bench --agent-server   the OpenHands agent-server image (minutes)
    dockpool bench --smoke          the stand-in with tiny N (< 60 s; CI: no timing asserted)
    dockpool bench --readiness      readiness and idle cost per engine (--engines default,modern)
    dockpool bench --claims         claim latency against bare renames, per engine (the floor)
    dockpool bench --arrivals       Poisson arrivals and a burst, fixed size against self-sizing

Prints a table on stdout (progress goes to stderr), writes every sample to a JSON file and a
plot to a PNG (needs matplotlib: the `dockpool[bench]` extra; without it the plot is skipped,
and said so), under bench-results/ of the current folder by default. Figures, not assertions.
Every container carries the label dockpool.bench.run=<run id> and is removed at the end, even
on an error or Ctrl-C. The images are built by scripts/ of a dockpool checkout.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import dockpool
from dockpool.bench import (
    burst,
    claim_floor,
    claims,
    engine_cost,
    members,
    ready,
    replacement,
    resources,
    summary,
    targets,
)
from dockpool.bench._activity import Activity
from dockpool.bench._harness import RUN_LABEL, BenchRun, Result, machine_info
from dockpool.bench.report import render, render_header
from dockpool.bench.targets import Target

RESULTS = Path("bench-results")  # below the current folder
Step = Callable[[], dict[str, Result]]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="dockpool bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--stub", action="store_true", help="measure the stand-in image (default)")
    p.add_argument("--agent-server", action="store_true", help="measure the agent-server image")
    p.add_argument("--smoke", action="store_true", help="stand-in only, tiny N, < 60 s (CI)")
    p.add_argument(
        "--agent-image",
        help="agent-server image (default: a checkout lock's version, else :latest)",
    )
    p.add_argument("--json", metavar="PATH", help="JSON file (default bench-results/...json)")
    p.add_argument("--plot", metavar="PATH", help="PNG file (default bench-results/...png)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the PNG")
    p.add_argument("--only", metavar="STEPS", help="comma-separated steps: " + ",".join(STEPS))
    for name in ("pooled", "cold", "docker-run", "pool", "burst", "burst-pool", "kills"):
        p.add_argument(f"--{name}", type=int, metavar="N", help=f"override size '{name}'")
    p.add_argument("--idle-seconds", type=float, metavar="S", help="idle window, seconds")
    p.add_argument(
        "--readiness",
        action="store_true",
        help="warm-up, ready lag and idle cost per engine and readiness profile",
    )
    p.add_argument(
        "--engines",
        default="default,modern",
        help="engines for --readiness, --claims and --arrivals, as scripts/engines.sh names them",
    )
    p.add_argument("--members", type=int, default=8, help="pool size for --readiness")
    p.add_argument(
        "--claims", action="store_true", help="claim latency against the engine's bare renames"
    )
    p.add_argument(
        "--arrivals",
        action="store_true",
        help="Poisson arrivals at several rates and a burst: fixed size against self-sizing",
    )
    args = p.parse_args(argv)
    if args.smoke and args.agent_server and not args.readiness:
        p.error("--smoke measures the stand-in image only")
    if args.only and not set(args.only.split(",")) <= set(STEPS):
        p.error(f"--only takes steps among {','.join(STEPS)}")
    return args


def _targets(args: argparse.Namespace) -> list[Target]:
    chosen = []
    if args.stub or args.smoke or not args.agent_server:
        chosen.append(targets.stub(smoke=args.smoke))
    if args.agent_server:
        chosen.append(targets.agent_server(args.agent_image))
    over = {k: getattr(args, k) for k in ("pooled", "cold", "pool", "burst", "kills")}
    over |= {"docker_run": args.docker_run, "burst_pool": args.burst_pool}
    over["idle_seconds"] = args.idle_seconds
    return [targets.with_overrides(t, **over) for t in chosen]


def _steps(run: BenchRun, t: Target, log: ready.Progress) -> dict[str, Step]:
    n = t.sizes

    def idle() -> dict[str, Result]:
        log(f"idle: a pool of {n.idle_pool}, then {n.idle_seconds:.0f} s left alone")
        cpu, rss = resources.idle_and_rss(
            run, n.idle_seconds, n.idle_pool, t.spec(run), 2 * t.boot_timeout, **t.options
        )
        return {"idle-cpu": cpu, "manager-rss": rss}

    def pooled() -> dict[str, Result]:
        res, pool = ready.pooled(run, t, log)
        log("member memory: waiting for the pool to settle, then docker stats")
        replacement.settle(pool, timeout=2 * t.boot_timeout)
        time.sleep(2.0)
        readings = members.sample(run, pool)
        time.sleep(1.0)
        readings += members.sample(run, pool)
        run.close_pool(pool)
        return {"pooled": res, "member-memory": members.report(readings, n.pool)}

    def claim_1() -> dict[str, Result]:
        log(f"claim latency, 1 claimer: {n.claims_1} claims from a full pool of 5")
        return {"claim-1": claims.sequential(run, n.claims_1, 5, t.spec(run))}

    def claim_many() -> dict[str, Result]:
        log(f"claim latency: {n.claimers} concurrent claimers x {n.rounds} rounds")
        return {"claim-concurrent": claims.concurrent(run, n.claimers, n.rounds, t.spec(run))}

    def kills() -> dict[str, Result]:
        log(f"replacement: {n.kills} kills in a pool of {n.kill_pool}")
        res = replacement.run_kills(run, n.kills, n.kill_pool, t.spec(run), **t.options)
        return {"replacement": res}

    steps: dict[str, tuple[int, Step]] = {
        "idle": (int(n.idle_seconds > 0), idle),
        "pooled": (n.pooled, pooled),
        "cold": (n.cold, lambda: {"cold": ready.cold(run, t, log)}),
        "docker-run": (n.docker_run, lambda: {"docker-run": ready.docker_run(run, t, log)}),
        "burst": (n.burst, lambda: {"burst": burst.burst(run, t, log)}),
        "claim-1": (n.claims_1, claim_1),
        "claim-concurrent": (n.claimers * n.rounds, claim_many),
        "replacement": (n.kills, kills),
    }
    return {name: fn for name, (count, fn) in steps.items() if count > 0}


STEPS: tuple[str, ...] = ("idle", "pooled", "cold", "docker-run", "burst", "claim-1")
STEPS += ("claim-concurrent", "replacement")


class Progress:
    """Line-based progress on stderr: elapsed time, image, what is going on."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, key: str, message: str) -> None:
        load = os.getloadavg()[0]
        elapsed = time.monotonic() - self.t0
        sys.stderr.write(f"{elapsed:7.1f}s [{key}] {message}  (load {load:.2f})\n")
        sys.stderr.flush()

    def to(self, key: str) -> ready.Progress:
        return lambda message: self(key, message)


def _run_image(
    run: BenchRun,
    img: summary.ImageRun,
    only: set[str] | None,
    progress: Progress,
    activity: list[Activity],
) -> None:
    """Every step for one image, printing each result as it comes. `activity` gets the
    reader of other users' engine activity, started after the first step (the idle window)."""
    log = progress.to(img.target.key)
    for name, step in _steps(run, img.target, log).items():
        if only is not None and name not in only:
            continue
        if not run.wait_engine():
            img.failed.append(f"{name}: the engine does not answer")
            continue
        log(f"{name}: starting")
        load0, t0, ns0 = os.getloadavg()[0], time.monotonic(), time.time_ns()
        try:
            got = step()
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"[:300]
            img.failed.append(f"{name}: {why}")
            got = {name: Result(f"{name}: FAILED", notes=[why], raw={"tb": traceback.format_exc()})}
        took = time.monotonic() - t0
        img.elapsed[name] = took
        note = activity[0].note(ns0, time.time_ns()) if activity else ""
        for mode, res in got.items():
            res.title = f"[{img.target.key}] {res.title}"
            res.values["took"] = f"{took:.1f} s (the whole step)"
            res.values["load average (1 min)"] = f"{load0:.2f} -> {os.getloadavg()[0]:.2f}"
            res.notes += [note] if note else []
            img.results[mode] = res
            render(res, sys.stdout)
        log(f"{name}: done in {took:.1f} s")
        if not activity:  # after the idle window: the reader costs our CPU
            activity.append(Activity(run.hex).start())


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    only = set(args.only.split(",")) if args.only else None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(engine_cost.ENGINES)
    if unknown:
        print(f"dockpool bench: unknown engine(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if args.claims:
        out = args.json or str(RESULTS / f"claims-{stamp}.json")
        n, many, rounds = (5, 4, 1) if args.smoke else (30, 16, 5)
        return claim_floor.main(engines, n, many, rounds, out)
    if args.arrivals:
        from dockpool.bench import arrivals

        out = args.json or str(RESULTS / f"arrivals-{stamp}.json")
        png = None if args.no_plot else args.plot or str(RESULTS / f"arrivals-{stamp}.png")
        return arrivals.main(engines, args.smoke, out, png)
    if args.readiness:
        out = args.json or str(RESULTS / f"readiness-{stamp}.json")
        idle = args.idle_seconds or (4.0 if args.smoke else 30.0)
        size = 2 if args.smoke else args.members
        return engine_cost.main(engines, size, idle, args.agent_server, out)
    kind = "smoke" if args.smoke else "bench"
    json_path = args.json or str(RESULTS / f"{kind}-{stamp}.json")
    plot_path = None if args.no_plot else args.plot or str(RESULTS / f"{kind}-{stamp}.png")
    images = [summary.ImageRun(t) for t in _targets(args)]
    progress = Progress()
    try:
        run = BenchRun()
    except Exception as exc:
        print(f"dockpool bench: no Docker engine answers ({exc}); start one first", file=sys.stderr)
        return 2
    missing = [img.target.image for img in images if not _has_image(run, img.target.image)]
    if missing:
        run.client.close()
        print(f"dockpool bench: missing image(s) {', '.join(missing)}: build them with "
              "scripts/build-stub-image.sh / scripts/build-agent-server-image.sh "
              "(or bash scripts/run.sh [--agent-server])", file=sys.stderr)  # fmt: skip
        return 2
    meta: dict[str, object] = {}
    interrupted, activity = False, list[Activity]()
    started = time.monotonic()
    try:
        with run:
            meta |= {**run.engine_info(), **machine_info(), "python": platform.python_version()}
            meta |= {"dockpool": dockpool.__version__, "mode": kind, "run label": f"{RUN_LABEL}={run.hex}"}  # fmt: skip
            for img in images:
                meta[f"{img.target.key} image"] = img.target.image
                meta[f"{img.target.key} health check"] = img.target.health
            render_header(meta, sys.stdout, "dockpool bench: time to the first ready conversation")
            for img in images:
                _run_image(run, img, only, progress, activity)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted", file=sys.stderr)
    finally:
        for reader in activity:
            reader.stop()
    meta["elapsed"] = f"{time.monotonic() - started:.1f} s"
    meta["loadavg at the end"] = os.getloadavg()
    meta["left behind"] = run.leftover
    summary.render_table(images, sys.stdout)
    print(f"elapsed {meta['elapsed']}; containers left behind: {run.leftover or 'none'}")
    summary.save(meta, images, json_path, plot_path)
    if interrupted:
        return 130
    return 1 if run.leftover or any(img.failed for img in images) else 0


def _has_image(run: BenchRun, image: str) -> bool:
    try:
        run.client.api.inspect_image(image)
    except Exception:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
