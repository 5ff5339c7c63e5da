"""An SDK program's time to its first result: the stock `DockerWorkspace` against
`PooledDockerWorkspace`, same agent-server image, same run.

    /var/cache/dockpool/openhands/.venv-sdk/bin/python benchmarks/sdk_workspace.py \
        [--image dockpool-agent-server:1.58.2] [--runs 10] [--batch 16] [--workers 4] [--pool 4]

(the venv is made by `plugins/openhands/run-tests.sh sdk`: Python 3.12, openhands-workspace
and openhands-sdk 1.58.2, dockpool and the plugin.) What it measures, from constructing the
workspace to the result of its first `execute_command("echo ok")`:
- sequential, `--runs` each: stock (`docker run` + polling `/health`), and pooled from a full
  pool (it waits until the pool is full again before each run: every one is a warm claim),
  the pooled time split into the claim (lease: lock, `POST /api/init`, rename, check), the
  init alone, and the SDK's own steps after it;
- an evaluation batch: `--batch` workspaces from `--workers` worker processes at once (each
  runs its share one after another: construct, one command, cleanup), stock against a pool of
  `--pool` that every worker shares: the batch's wall time, per-workspace p50/p95, and how
  many were warm claims or cold starts;
- memory: a dormant warm member against a workspace in use (after init and one command),
  from `docker stats`.
The load average is printed with every figure. The stock workspace asks for `--ulimit
nofile=65536:65536`, which a host with a lower hard limit refuses (ARCHITECTURE.md): here that
one value is capped at this host's hard limit, nothing else changes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENHANDS_SUPPRESS_BANNER", "1")

import docker
import openhands.workspace.docker.workspace as stock_module
from dockpool_openhands import PooledDockerWorkspace
from dockpool_openhands.workspace import POOLS
from openhands.workspace import DockerWorkspace

POOL_NAME = "bench-sdk"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def capped_ulimit() -> None:
    """Let the stock workspace start on this host: its nofile ulimit capped at the hard limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    real = getattr(stock_module, "execute_command")  # noqa: B009 (not exported: patched)

    def run(cmd: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(cmd, list):
            cmd = [f"nofile={hard}:{hard}" if c == "nofile=65536:65536" else c for c in cmd]
        return real(cmd, *args, **kwargs)

    setattr(stock_module, "execute_command", run)  # noqa: B010


def first_result(kind: str, image: str, pool: int, task: float = 0.0) -> dict[str, Any]:
    """Construct a workspace of `kind`, run `echo ok`, hold it `task` seconds (a task's
    work, `sleep` in the sandbox), clean up: the seconds to the first result."""
    t0 = time.perf_counter()
    if kind == "stock":
        ws: DockerWorkspace = DockerWorkspace(server_image=image, detach_logs=False)
    else:
        ws = PooledDockerWorkspace(
            server_image=image, detach_logs=False, pool_size=pool, pool_name=POOL_NAME
        )
    try:
        result = ws.execute_command("echo ok")
        total = time.perf_counter() - t0
        assert result.stdout.strip() == "ok", result
        if task > 0:
            ws.execute_command(f"sleep {task}", timeout=task + 30)
        lease = getattr(ws, "_lease", None)
        return {
            "total": total,
            "claim": lease.seconds if lease is not None else None,
            "warm": bool(lease is not None and lease.from_pool),
        }
    finally:
        ws.cleanup()


def pooled_pool(image: str, size: int) -> Any:
    """Start the benchmark's pool in this process (a workspace's construction would) and wait
    until it is full; the pool object."""
    probe = PooledDockerWorkspace(
        server_image=image, detach_logs=False, pool_size=size, pool_name=POOL_NAME
    )
    pool = probe._pool
    probe.cleanup()
    assert pool is not None
    pool.wait_until_full(timeout=300)
    return pool


def init_timer(pool: Any) -> list[float]:
    """Time each on-claim request (`POST /api/init`) the pool sends."""
    prober = pool._rt.executor.prober
    real, seconds = prober.send, []

    def send(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            if args[3] == "/api/init":
                seconds.append(time.perf_counter() - t0)

    prober.send = send
    return seconds


def worker(args: tuple[str, str, int, int, float]) -> list[dict[str, Any]]:
    kind, image, pool, count, task = args
    if kind == "stock":
        capped_ulimit()
    out = [first_result(kind, image, pool, task) for _ in range(count)]
    POOLS.close_all()
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def summary(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50):.2f} s, p95 {pct(xs, 95):.2f} s (n={len(xs)})"


def memory(api: Any, image: str, pool: Any) -> dict[str, float]:
    """MiB of a dormant warm member and of a workspace in use (after init and a command)."""

    def mib(cid: str) -> float:
        stats = api.stats(cid, stream=False)
        usage = stats["memory_stats"]
        return float(usage["usage"] - usage.get("stats", {}).get("inactive_file", 0)) / 2**20

    rows = api.containers(filters={"label": [f"dockpool.pool={pool.name}",
                                              "dockpool.role=member"]})  # fmt: skip
    warm = [mib(r["Id"]) for r in rows if r["Names"][0].lstrip("/").startswith("dockpool-")]
    ws = PooledDockerWorkspace(
        server_image=image, detach_logs=False, pool_size=pool.config.size, pool_name=POOL_NAME
    )
    try:
        ws.execute_command("echo ok")
        time.sleep(1)
        used = mib(ws._container_id or "")
    finally:
        ws.cleanup()
    return {"dormant": statistics.median(warm), "in_use": used}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="dockpool-agent-server:1.58.2")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument(
        "--task",
        type=float,
        default=0.0,
        help="seconds each batch workspace is held after its first result",
    )
    parser.add_argument("--only", choices=["sequential", "batch"], default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    client = docker.from_env()
    engine = client.version()["Version"]
    print(f"engine {engine}; image {args.image}; load {load()}", flush=True)
    out: dict[str, Any] = {"engine": engine, "image": args.image}

    capped_ulimit()
    pool = pooled_pool(args.image, args.pool)
    if args.only != "batch":
        sequential(args, pool, out)
        pool.wait_until_full(timeout=300)
        mem = memory(client.api, args.image, pool)
        print(f"memory: dormant warm member {mem['dormant']:.0f} MiB, workspace in use "
              f"{mem['in_use']:.0f} MiB; load {load()}", flush=True)  # fmt: skip
        out["memory"] = mem
    if args.only != "sequential":
        batch(args, pool, out)
    POOLS.close_all()
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def sequential(args: argparse.Namespace, pool: Any, out: dict[str, Any]) -> None:
    stock = [first_result("stock", args.image, 0)["total"] for _ in range(args.runs)]
    print(f"sequential stock: {summary(stock)}; load {load()}", flush=True)
    inits = init_timer(pool)
    runs = []
    for _ in range(args.runs):
        pool.wait_until_full(timeout=300)
        runs.append(first_result("pooled", args.image, args.pool))
    pooled = [r["total"] for r in runs]
    claims = [r["claim"] for r in runs]
    sdk = [r["total"] - r["claim"] for r in runs]
    print(f"sequential pooled: {summary(pooled)} ({sum(r['warm'] for r in runs)} warm); "
          f"claim {summary(claims)}, of it init {summary(inits)}, SDK steps after the claim "
          f"{summary(sdk)}; load {load()}", flush=True)  # fmt: skip
    ratio = pct(stock, 50) / pct(pooled, 50)
    print(f"sequential: pooled p50 is {ratio:.1f} x faster than stock", flush=True)
    out.update(stock=stock, pooled=pooled, claims=claims, inits=inits, sdk=sdk)


def batch(args: argparse.Namespace, pool: Any, out: dict[str, Any]) -> None:
    share = [args.batch // args.workers + (i < args.batch % args.workers)
             for i in range(args.workers)]  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    for kind in ("stock", "pooled"):
        if kind == "pooled":
            pool.wait_until_full(timeout=300)
        t0 = time.perf_counter()
        procs = ctx.Pool(args.workers)
        jobs = [(kind, args.image, args.pool, n, args.task) for n in share]
        results = procs.map(worker, jobs)
        wall = time.perf_counter() - t0
        procs.close()
        procs.join()
        flat = [r for part in results for r in part]
        warm = sum(r["warm"] for r in flat)
        print(f"batch {kind} (tasks of {args.task:.0f} s): {len(flat)} workspaces from "
              f"{args.workers} processes in "
              f"{wall:.1f} s; per workspace {summary([r['total'] for r in flat])}; "
              f"{warm} warm, {len(flat) - warm} cold; load {load()}", flush=True)  # fmt: skip
        out[f"batch_{kind}"] = {"wall": wall, "runs": flat}
    ratio = out["batch_stock"]["wall"] / out["batch_pooled"]["wall"]
    print(f"batch: pooled wall time {ratio:.1f} x better than stock")


if __name__ == "__main__":
    sys.exit(main())
