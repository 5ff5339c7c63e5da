"""POST -> READY through the real OpenHands app server: stock against pooled, phase by phase.

Run with the 1.x venv, next to the engine:

    plugins/openhands/.venv-oh1/bin/python plugins/openhands/bench_app.py \
        [--runs 5] [--pool 2] [--burst 4] [--workers 1] [--env KEY=VALUE ...]

For each of stock (OpenHands' own Docker sandbox service) and pooled (the plugin, selected by
environment variables, with its lifespan service), it starts `uvicorn
openhands.app_server.app:app` as a subprocess, sets a dummy LLM, then starts conversations over
HTTP as the web front end does and reads their start tasks until READY:
- sequentially (`--runs`; the pooled run waits for a full pool before each), deleting each
  conversation's sandbox after it;
- in a burst of `--burst` at once (default 2 x the pool).

`--modes stock,pooled,reuse` adds OpenHands' own floor: conversations started in one running
sandbox that served a conversation before (what remains when getting the sandbox costs nothing).
It prints when each phase was first seen (median, seconds from the POST; reads every 0.15 s),
the totals (also as the app server itself timed them: the start task's created_at -> updated_at
at READY), the ratio, the burst's outcome, the time to its last READY and the warm members left
after SIGTERM. `--via stream` starts conversations with `POST .../stream-start` instead, which
sends each change of the start task as it happens (no polling). `--env` sets a variable for
every app server (both modes), e.g.
`--env SSL_CERT_FILE= --env SSL_CERT_DIR=/etc/ssl/certs` (see the plugin's README).
It removes every container it made.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import httpx

from dockpool import POOL_LABEL
from dockpool._core.spec import ORIGIN_LABEL

sys.path.insert(0, str(Path(__file__).parent / "tests"))
from oh_app import (
    PHASES,
    AppServer,
    Tasks,
    app_env,
    configure_llm,
    delete_sandbox,
    follow,
    free_port,
    start_conversation,
    stream_start,
    wait_warm,
    warm,
)

RUN = secrets.token_hex(3)
PREFIX = f"ohbench{RUN}-"
POOL = f"bapp{RUN}"


#: stock: OpenHands' own service; pooled: the plugin; pooled-no-warm-up: the plugin, members
#: ready once they answer /ready (OH_SANDBOX_POOL_WARM_UP=false); pooled-no-hold: the plugin,
#: refilling at once after a claim (OH_SANDBOX_POOL_REFILL_HOLD=0); reuse: OpenHands' own
#: floor, whatever provides the sandbox: every conversation after a first one starts in that
#: first one's sandbox (running, its agent server used before), no sandbox to get (no burst).
MODES = ("stock", "pooled", "pooled-no-warm-up", "pooled-no-hold", "reuse")


def scenario(api: Any, mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = free_port()
    pooled = mode != "stock"
    env = app_env(tmp / mode, port, PREFIX, pool=POOL if pooled else None, size=args.pool)
    env.update(args.env)
    if mode == "pooled-no-warm-up":
        env["OH_SANDBOX_POOL_WARM_UP"] = "false"
    if mode == "pooled-no-hold":
        env["OH_SANDBOX_POOL_REFILL_HOLD"] = "0"
    server = AppServer(env, port, tmp / f"{mode}.log", workers=args.workers)
    result: dict[str, Any] = {"mode": mode}
    try:
        result["up"] = server.wait_up()
        with httpx.Client(base_url=server.url, timeout=120) as http:
            configure_llm(http)
            sequential: list[Tasks] = []
            shared = _open_shared(api, http, args) if mode == "reuse" else None
            for _ in range(args.runs):
                if pooled:
                    wait_warm(api, POOL, args.pool)
                posted = time.monotonic()
                if args.via == "stream":
                    sequential.append(stream_start(http, shared, started=posted))
                else:
                    started = [start_conversation(http, shared)]
                    sequential.append(follow(http, started, started=posted))
                for got in sequential[-1].values():
                    print(f"  {got['status']} after {max(got['seen'].values()):.2f} s", flush=True)
                for got in sequential[-1].values():
                    if got.get("sandbox_id") and shared is None:
                        delete_sandbox(http, got["sandbox_id"])
            burst: Tasks = {}
            if shared is not None:
                delete_sandbox(http, shared)
            else:
                if pooled:
                    wait_warm(api, POOL, args.pool)
                posted = time.monotonic()
                if args.via == "stream":
                    burst = _stream_burst(http, args.burst, posted)
                else:
                    tasks = [start_conversation(http) for _ in range(args.burst)]
                    burst = follow(http, tasks, started=posted)
            result.update(sequential=sequential, burst=burst, load=os.getloadavg())
            for got in burst.values():
                if got.get("sandbox_id"):
                    got["origin"] = _origin(api, got["sandbox_id"])
                    delete_sandbox(http, got["sandbox_id"])
        result["exit"] = server.stop(signal.SIGTERM)
        result["warm_left"] = len(warm(api, POOL))
    finally:
        server.kill()
    return result


def _origin(api: Any, sandbox_id: str) -> str:
    """Where a sandbox came from: a pool hit, dockpool's cold start, or OpenHands' own."""
    labels = api.inspect_container(sandbox_id)["Config"]["Labels"] or {}
    if POOL_LABEL not in labels:
        return "OpenHands cold start"
    return "dockpool cold start" if labels.get(ORIGIN_LABEL) == "cold" else "pool hit"


def _stream_burst(http: httpx.Client, n: int, posted: float) -> Tasks:
    """`n` streamed starts at once, one thread each (httpx.Client is thread-safe)."""
    with ThreadPoolExecutor(n) as pool:
        parts = list(pool.map(lambda _: stream_start(http, started=posted), range(n)))
    return {key: value for part in parts for key, value in part.items()}


def _open_shared(api: Any, http: httpx.Client, args: argparse.Namespace) -> str:
    """The sandbox that every `reuse` conversation starts in: a first conversation's."""
    wait_warm(api, POOL, args.pool)
    (first,) = follow(http, [start_conversation(http)]).values()
    assert first["status"] == "READY" and first.get("sandbox_id"), first
    print(f"  reuse: sandbox {first['sandbox_id']} (its first conversation READY after "
          f"{first['seen']['READY']:.2f} s)", flush=True)  # fmt: skip
    return str(first["sandbox_id"])


def ready_times(tasks: list[Tasks], key: str = "client") -> list[float]:
    """Seconds to READY per task: as the client saw it, or as the server timed it."""
    done = [t for group in tasks for t in group.values() if "READY" in t["seen"]]
    if key == "server":
        return [t["server"] for t in done if t.get("server") is not None]
    return [t["seen"]["READY"] for t in done]


def phase_table(stock: dict[str, Any], pooled: dict[str, Any]) -> None:
    print(f"{'phase first seen (s after POST, p50)':40} {stock['mode']:>18} {pooled['mode']:>18}")
    for phase in PHASES:
        row = []
        for got in (stock, pooled):
            seen = [t["seen"][phase] for g in got["sequential"] for t in g.values()
                    if phase in t["seen"]]  # fmt: skip
            row.append(f"{statistics.median(seen):18.2f}" if seen else f"{'-':>18}")
        print(f"{phase:40} {row[0]} {row[1]}")


def report(stock: dict[str, Any], pooled: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\napp server up (GET /health): {stock['mode']} {stock['up']:.1f} s, "
          f"{pooled['mode']} {pooled['up']:.1f} s")  # fmt: skip
    phase_table(stock, pooled)
    s, p = ready_times(stock["sequential"]), ready_times(pooled["sequential"])
    print(f"\nsequential POST -> READY ({args.runs} each, workers {args.workers}):")
    for got in (stock, pooled):
        values, own = ready_times(got["sequential"]), ready_times(got["sequential"], "server")
        if values:
            print(f"  {got['mode']:18} n={len(values)} p50 {statistics.median(values):6.2f} s"
                  f"  max {max(values):6.2f} s; as the server timed it: p50 "
                  f"{statistics.median(own) if own else float('nan'):6.2f} s")  # fmt: skip
    if s and p:
        ratio = statistics.median(s) / statistics.median(p)
        print(f"  {pooled['mode']} is {ratio:.1f} x faster than {stock['mode']} at p50")
    print(f"\nburst of {args.burst} at once (pool {args.pool}):")
    for got in (stock, pooled):
        tasks = list(got["burst"].values())
        ready = [t["seen"]["READY"] for t in tasks if "READY" in t["seen"]]
        failed = [t.get("detail") or t["status"] for t in tasks if "READY" not in t["seen"]]
        last = f"last READY after {max(ready):.2f} s" if ready else "none READY"
        p50 = f"p50 {statistics.median(ready):.2f} s, " if ready else ""
        load = tuple(round(x, 2) for x in got["load"])
        distinct = len({t.get("sandbox_id") for t in tasks if "READY" in t["seen"]})
        print(f"  {got['mode']:18} {len(ready)}/{len(tasks)} READY ({p50}{last}); "
              f"distinct sandboxes {distinct}; failed: {failed or 'none'}; "
              f"load {load}")  # fmt: skip
        for origin in sorted({t["origin"] for t in tasks if "origin" in t}):
            times = [t["seen"]["READY"] for t in tasks
                     if t.get("origin") == origin and "READY" in t["seen"]]  # fmt: skip
            if times:
                print(f"  {'':18}   {origin}: {len(times)}, READY p50 "
                      f"{statistics.median(times):.2f} s, max {max(times):.2f} s")  # fmt: skip
    print(f"\nafter SIGTERM: {pooled['mode']} exit status {pooled['exit']}, "
          f"warm members left {pooled['warm_left']}")  # fmt: skip


def cleanup(api: Any) -> None:
    for row in api.containers(all=True):
        names = [str(n).lstrip("/") for n in row.get("Names") or []]
        pool = (row.get("Labels") or {}).get(POOL_LABEL, "")
        if pool.startswith(POOL) or any(n.startswith(PREFIX) for n in names):
            api.remove_container(row["Id"], force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pool", type=int, default=2, help="pool size (pooled run)")
    parser.add_argument("--burst", type=int, default=None, help="starts at once (2 x pool)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn --workers")
    help_modes = f"comma-separated, of {', '.join(MODES)}; the first is the baseline"
    parser.add_argument("--modes", default="stock,pooled", help=help_modes)
    parser.add_argument("--via", choices=("poll", "stream"), default="poll",
                        help="poll: POST, then read the start task every 0.15 s (READY is seen "
                        "up to 0.15 s late); stream: POST .../stream-start, each change as the "
                        "server sends it")  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a variable for every app server (repeatable)")  # fmt: skip
    args = parser.parse_args()
    if any("=" not in item for item in args.env):
        parser.error("--env: KEY=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    args.burst = args.burst or 2 * args.pool
    modes = args.modes.split(",")
    if not modes or any(mode not in MODES for mode in modes):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    client = docker.from_env()
    print(f"load average at the start: {os.getloadavg()}; start tasks read by {args.via}",
          flush=True)  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="dockpool-bench-app-") as tmp:
            results = []
            for mode in modes:
                print(f"{mode}: {args.runs} sequential, then a burst of {args.burst} ...",
                      flush=True)  # fmt: skip
                results.append(scenario(client.api, mode, args, Path(tmp)))
    finally:
        cleanup(client.api)
        client.close()
    for other in results[1:] or results:
        print(f"\n== {results[0]['mode']} against {other['mode']}")
        report(results[0], other, args)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
