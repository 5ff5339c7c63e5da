"""POST -> READY through the real OpenHands app server: stock against pooled, phase by phase.

Run with the 1.x venv, next to the engine:

    plugins/openhands/.venv-oh1/bin/python plugins/openhands/bench_app.py \
        [--runs 5] [--pool 2] [--burst 4] [--workers 1]

For each of stock (OpenHands' own Docker sandbox service) and pooled (the plugin, selected by
environment variables, with its lifespan service), it starts `uvicorn
openhands.app_server.app:app` as a subprocess, sets a dummy LLM, then starts conversations over
HTTP as the web front end does and reads their start tasks until READY:
- sequentially (`--runs`; the pooled run waits for a full pool before each), deleting each
  conversation's sandbox after it;
- in a burst of `--burst` at once (default 2 x the pool).

It prints when each phase was first seen (median, seconds from the POST), the totals, the
ratio, the burst's outcome, the time to its last READY and the warm members left after SIGTERM.
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
from pathlib import Path
from typing import Any

import docker
import httpx

from dockpool import POOL_LABEL

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
    wait_warm,
    warm,
)

RUN = secrets.token_hex(3)
PREFIX = f"ohbench{RUN}-"
POOL = f"bapp{RUN}"


#: What `--prewarm` asks each warm member before a pooled conversation: the first uses of a
#: fresh agent server that a conversation's start task makes (a bash command, the skills).
PREWARM = (("/api/bash/execute_bash_command", {"command": "true"}), ("/api/skills", {}))


def prewarm(api: Any) -> None:
    """Emulate a warm-up step: each warm member, through its own API, with its own key."""
    for row in warm(api, POOL):
        info = api.inspect_container(row["Id"])
        env = dict(item.split("=", 1) for item in info["Config"]["Env"])
        key = env.get("OH_SESSION_API_KEYS_0", "")
        bindings = info["NetworkSettings"]["Ports"].get("8000/tcp") or []
        if not bindings:
            continue
        base = f"http://127.0.0.1:{bindings[0]['HostPort']}"
        for path, body in PREWARM:
            httpx.post(base + path, json=body, headers={"X-Session-API-Key": key}, timeout=60)


def scenario(api: Any, mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = free_port()
    pooled = mode == "pooled"
    env = app_env(tmp / mode, port, PREFIX, pool=POOL if pooled else None, size=args.pool)
    server = AppServer(env, port, tmp / f"{mode}.log", workers=args.workers)
    result: dict[str, Any] = {"mode": mode}
    try:
        result["up"] = server.wait_up()
        with httpx.Client(base_url=server.url, timeout=120) as http:
            configure_llm(http)
            sequential: list[Tasks] = []
            for _ in range(args.runs):
                if pooled:
                    wait_warm(api, POOL, args.pool)
                    if args.prewarm:
                        prewarm(api)
                sequential.append(follow(http, [start_conversation(http)]))
                for got in sequential[-1].values():
                    print(f"  {got['status']} after {max(got['seen'].values()):.2f} s", flush=True)
                for got in sequential[-1].values():
                    if got.get("sandbox_id"):
                        delete_sandbox(http, got["sandbox_id"])
            if pooled:
                wait_warm(api, POOL, args.pool)
            burst = follow(http, [start_conversation(http) for _ in range(args.burst)])
            result.update(sequential=sequential, burst=burst, load=os.getloadavg())
            for got in burst.values():
                if got.get("sandbox_id"):
                    delete_sandbox(http, got["sandbox_id"])
        result["exit"] = server.stop(signal.SIGTERM)
        result["warm_left"] = len(warm(api, POOL))
    finally:
        server.kill()
    return result


def ready_times(tasks: list[Tasks]) -> list[float]:
    return [t["seen"]["READY"] for group in tasks for t in group.values() if "READY" in t["seen"]]


def phase_table(stock: dict[str, Any], pooled: dict[str, Any]) -> None:
    print(f"{'phase first seen (s after POST, p50)':40} {'stock':>8} {'pooled':>8}")
    for phase in PHASES:
        row = []
        for got in (stock, pooled):
            seen = [t["seen"][phase] for g in got["sequential"] for t in g.values()
                    if phase in t["seen"]]  # fmt: skip
            row.append(f"{statistics.median(seen):8.2f}" if seen else f"{'-':>8}")
        print(f"{phase:40} {row[0]} {row[1]}")


def report(stock: dict[str, Any], pooled: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"\napp server up (GET /health): stock {stock['up']:.1f} s, pooled {pooled['up']:.1f} s")
    phase_table(stock, pooled)
    s, p = ready_times(stock["sequential"]), ready_times(pooled["sequential"])
    print(f"\nsequential POST -> READY ({args.runs} each, workers {args.workers}):")
    for name, values in (("stock", s), ("pooled", p)):
        if values:
            print(f"  {name:7} n={len(values)} p50 {statistics.median(values):6.2f} s"
                  f"  max {max(values):6.2f} s")  # fmt: skip
    if s and p:
        print(f"  pooled is {statistics.median(s) / statistics.median(p):.1f} x faster at p50")
    print(f"\nburst of {args.burst} at once (pool {args.pool}):")
    for got in (stock, pooled):
        tasks = list(got["burst"].values())
        ready = [t["seen"]["READY"] for t in tasks if "READY" in t["seen"]]
        failed = [t.get("detail") or t["status"] for t in tasks if "READY" not in t["seen"]]
        last = f"last READY after {max(ready):.2f} s" if ready else "none READY"
        p50 = f"p50 {statistics.median(ready):.2f} s, " if ready else ""
        load = tuple(round(x, 2) for x in got["load"])
        print(f"  {got['mode']:7} {len(ready)}/{len(tasks)} READY ({p50}{last}); "
              f"failed: {failed or 'none'}; load {load}")  # fmt: skip
    print(f"\nafter SIGTERM: pooled exit status {pooled['exit']}, "
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
    parser.add_argument(
        "--prewarm", action="store_true", help="first, run PREWARM on the warm members"
    )
    parser.add_argument("--only", choices=("stock", "pooled"), default=None)
    args = parser.parse_args()
    args.burst = args.burst or 2 * args.pool
    client = docker.from_env()
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="dockpool-bench-app-") as tmp:
            results = []
            for mode in [args.only] if args.only else ["stock", "pooled"]:
                print(f"{mode}: {args.runs} sequential, then a burst of {args.burst} ...",
                      flush=True)  # fmt: skip
                results.append(scenario(client.api, mode, args, Path(tmp)))
    finally:
        cleanup(client.api)
        client.close()
    if len(results) == 2:
        report(results[0], results[1], args)
    else:  # one mode: its figures, twice (the second column repeats the first)
        print(f"only {results[0]['mode']}: both columns below are its figures")
        report(results[0], results[0], args)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
