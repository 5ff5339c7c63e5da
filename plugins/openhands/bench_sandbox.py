"""Time from `start_sandbox` until the sandbox is RUNNING and its agent server answers an
authenticated API call: OpenHands' stock DockerSandboxService against the pooled service.

Run with the 1.x venv, next to the engine (published ports on localhost):

    plugins/openhands/.venv-oh1/bin/python plugins/openhands/bench_sandbox.py \
        [--runs 5] [--pool 2] [--burst 4]

Sequential: one start at a time (the pooled run waits until its pool is full again before each
start, so every start is a warm claim). Burst: `--burst` starts at once against a full pool of
`--pool` (2 x the pool by default: half of them are cold fallbacks). Prints p50 and max per
scenario, the time to the last start of the burst, and how many starts OpenHands itself would
have failed: a sandbox whose agent server does not answer within the service's startup grace
(`startup_grace_seconds`, 15 s by default, counted from the container's start) is reported
ERROR by `get_sandbox`, and the conversation's start task gives up on it. Every container it
makes is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENHANDS_SUPPRESS_BANNER", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import docker
import httpx
from dockpool_openhands.registry import PoolRegistry, PoolSettings
from dockpool_openhands.sandbox_service import PooledDockerSandboxService
from openhands.app_server.sandbox.sandbox_models import SandboxStatus
from openhands.app_server.utils import docker_utils

from dockpool import POOL_LABEL, Lease, signals

sys.path.insert(0, str(Path(__file__).parent / "tests"))
from v1_helpers import answers, make_service

RUN = secrets.token_hex(3)
PREFIX = f"oh-bench{RUN}-"
CLAIMS: list[float] = []


def on_claimed(sender: Any, lease: Lease, **_: Any) -> None:
    CLAIMS.append(lease.seconds)


async def until_answering(service: PooledDockerSandboxService, sandbox_id: str) -> bool:
    """Wait until the sandbox runs and its agent server answers; True if OpenHands reported it
    ERROR on the way (its server missed the startup grace: the start task would have failed)."""
    deadline = time.monotonic() + 300
    errored = False
    while time.monotonic() < deadline:
        info = await service.get_sandbox(sandbox_id)
        errored = errored or (info is not None and info.status == SandboxStatus.ERROR)
        running = info is not None and info.status == SandboxStatus.RUNNING
        if running and info is not None and await answers(service.httpx_client, info):
            return errored
        await asyncio.sleep(0.05)
    raise TimeoutError(sandbox_id)


async def timed_start(service: PooledDockerSandboxService) -> tuple[float, str, bool]:
    started = time.perf_counter()
    info = await service.start_sandbox()
    errored = await until_answering(service, info.id)
    return time.perf_counter() - started, info.id, errored


async def scenario(service: PooledDockerSandboxService, runs: int, burst: int) -> dict[str, Any]:
    pool = await service.prepare_pool()
    sequential: list[float] = []
    for _ in range(runs):
        if pool is not None:
            await asyncio.to_thread(pool.wait_until_full, 300)
        seconds, sandbox_id, _ = await timed_start(service)
        sequential.append(seconds)
        await service.delete_sandbox(sandbox_id)
    if pool is not None:
        await asyncio.to_thread(pool.wait_until_full, 300)
    results = await asyncio.gather(*(timed_start(service) for _ in range(burst)))
    for _, sandbox_id, _ in results:
        await service.delete_sandbox(sandbox_id)
    hits = pool.stats().hits if pool is not None else 0
    errored = sum(e for _, _, e in results)
    return {"sequential": sequential, "burst": [s for s, _, _ in results], "hits": hits,
            "errored": errored}  # fmt: skip


def line(name: str, values: list[float]) -> str:
    p50, top = statistics.median(values), max(values)
    return f"{name:28} n={len(values):2}  p50 {p50:6.2f} s  max {top:6.2f} s"


def cleanup() -> None:
    """Remove this run's containers (waiting up to a minute for the engine if it is away)."""
    for _ in range(60):
        try:
            client = docker.from_env()
            break
        except docker.errors.DockerException:
            time.sleep(1)
    else:
        print(f"engine unreachable: remove containers named {PREFIX}* by hand", file=sys.stderr)
        return
    for row in client.api.containers(all=True):
        names = [str(n).lstrip("/") for n in row.get("Names") or []]
        pool = (row.get("Labels") or {}).get(POOL_LABEL, "")
        if pool.startswith(f"bench{RUN}") or any(n.startswith(PREFIX) for n in names):
            client.api.remove_container(row["Id"], force=True)
    client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pool", type=int, default=2, help="pool size (pooled run)")
    parser.add_argument("--burst", type=int, default=4, help="starts at once")
    args = parser.parse_args()
    # Published ports are on localhost here; OpenHands would rewrite localhost to
    # host.docker.internal when it believes it runs in a container (/.dockerenv). The name
    # docker_utils looks up is its import of an lru_cache'd function: replace that global.
    vars(docker_utils)["is_running_in_docker"] = lambda: False
    logging.getLogger("openhands").setLevel(logging.ERROR)
    signals.member_claimed.connect(on_claimed, weak=False)
    registry = PoolRegistry()
    try:
        async with httpx.AsyncClient(timeout=15.0) as http:
            stock = make_service(http, registry, None, max_num_sandboxes=50, prefix=PREFIX)
            pooled_settings = PoolSettings(size=args.pool, name=f"bench{RUN}")
            pooled = make_service(
                http, registry, pooled_settings, max_num_sandboxes=50, prefix=PREFIX
            )
            print(f"stock  ({args.runs} sequential, burst of {args.burst}) ...", flush=True)
            cold = await scenario(stock, args.runs, args.burst)
            print(f"pooled ({args.runs} sequential, burst of {args.burst} against a pool of "
                  f"{args.pool}) ...", flush=True)  # fmt: skip
            warm = await scenario(pooled, args.runs, args.burst)
    finally:
        registry.close_all()
        cleanup()
    print("\nstart_sandbox -> RUNNING and the agent server answering (authenticated GET):")
    print(line("stock, sequential", cold["sequential"]))
    print(line("pooled, sequential", warm["sequential"]))
    print(line(f"stock, burst of {args.burst}", cold["burst"]))
    print(line(f"pooled, burst of {args.burst}", warm["burst"]))
    grace = stock.startup_grace_seconds
    for name, got in (("stock", cold), ("pooled", warm)):
        print(
            f"{name} burst: last start answered after {max(got['burst']):.2f} s; "
            f"{got['errored']} of {args.burst} reported ERROR by OpenHands (server not "
            f"answering {grace} s after its container started: the start would fail)"
        )
    print(f"pooled claims served warm: {warm['hits']} of {args.runs + args.burst}")
    print(f"load average at the end: {os.getloadavg()}")
    if CLAIMS:
        print(line("  of which the claim (rename)", CLAIMS))


if __name__ == "__main__":
    asyncio.run(main())
