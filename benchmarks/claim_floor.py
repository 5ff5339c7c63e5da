"""`dockpool bench --claims`: claim latency against the engine's own floor, per engine, one run.

For each engine (`--engines`, as scripts/engines.sh names them), in this order, each step on an
idle engine except for what the pool itself does:

- floor, 1 at a time: one bare `rename` of a running stand-in container (docker-py, no dockpool),
  `n` times;
- floor, 16 at once: 16 threads released by a barrier, each renaming its own running container
  over its own connection, `rounds` times;
- one claim from a full pool of 5, `n` times (the pool is full again before each claim);
- 16 concurrent claims from a full pool of 16, `rounds` times.

The pools run config.toml's stand-in profile (liveness every 120 s, dockpool's readiness probe):
the claim path is the one a user gets. Every figure is wall time around the call, in the
calling thread. Ratios are claim / floor at the same percentile, measured minutes apart on the
same engine, with the load average beside each line. Figures, not assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import docker

from benchmarks import claims
from benchmarks._harness import BenchRun, percentile
from benchmarks.engine_cost import ENGINES, _has_image

Progress = Callable[[str], None]

GOALS = {  # what issue 11 asks, as (p50, p99) bounds of claim / floor
    "one": (1.3, 3.0),
    "many": (1.5, 2.0),
}


def _start_stub(client: Any, run: BenchRun, name: str) -> str:
    api = client.api
    cid: str = api.create_container(
        "dockpool-stub:latest",
        name=name,
        labels=run.label,
        environment={"STUB_PORT": "8000", "STUB_READY_DELAY": "0"},
    )["Id"]
    api.start(cid)
    return cid


def _timed_rename(api: Any, cid: str, name: str) -> float:
    t0 = time.perf_counter()
    api.rename(cid, name)
    return time.perf_counter() - t0


def floor(run: BenchRun, host: str, n: int, many: int, rounds: int) -> dict[str, list[float]]:
    """Bare renames: `n` one at a time, then `rounds` rounds of `many` at once."""
    prefix = f"bench{run.hex}-floor"
    ids = [_start_stub(run.client, run, f"{prefix}-{i}") for i in range(many)]
    time.sleep(1.0)  # the starts' own engine work settles
    api = run.client.api
    one = [_timed_rename(api, ids[0], f"{prefix}-1x{i}") for i in range(n)]
    conc: list[float] = []
    for rnd in range(rounds):
        conc += _bare_round(host, ids, [f"{prefix}-r{rnd}c{i}" for i in range(many)])
        time.sleep(0.5)
    for cid in ids:
        run.remove(cid)
    return {"one": one, "many": conc}


def _bare_round(host: str, ids: list[str], names: list[str]) -> list[float]:
    """Each container renamed by its own thread, over its own open connection, all at once."""
    barrier = threading.Barrier(len(ids))
    out: list[float] = []  # list.append is atomic

    def work(cid: str, name: str) -> None:
        own = docker.APIClient(base_url=host, version="auto", timeout=60)
        with contextlib.closing(own):
            own.ping()  # the connection is open before the barrier, as a pool's is
            barrier.wait()
            out.append(_timed_rename(own, cid, name))

    threads = [threading.Thread(target=work, args=pair) for pair in zip(ids, names, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _stats(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50": percentile(samples, 50), "p99": percentile(samples, 99),
            "max": max(samples, default=float("nan"))}  # fmt: skip


def measure(engine: str, n: int, many: int, rounds: int, log: Progress) -> dict[str, Any]:
    host, _ = ENGINES[engine]
    run = BenchRun(base_url=host)
    out: dict[str, Any] = {"engine": engine}
    with run:
        info = run.engine_info()
        out["version"] = f"{info['engine']}, API {info['api']}"
        if not _has_image(run, "dockpool-stub:latest", host):
            raise RuntimeError(f"dockpool-stub:latest missing on {host}")
        spec = run.spec()
        load: dict[str, float] = {}
        log(f"[{engine}] {out['version']}: floor, {n} bare renames, then {rounds} x {many}")
        load["floor"] = os.getloadavg()[0]
        bare = floor(run, host, n, many, rounds)
        log(f"[{engine}] {n} claims from a full pool of 5")
        load["one"] = os.getloadavg()[0]
        one = claims.sequential(run, n, 5, spec, docker_url=host)
        log(f"[{engine}] {rounds} rounds of {many} concurrent claims, full pool of {many}")
        load["many"] = os.getloadavg()[0]
        conc = claims.concurrent(run, many, rounds, spec, docker_url=host)
    out["load"] = load
    out["floor one"], out["floor many"] = _stats(bare["one"]), _stats(bare["many"])
    out["claim one"] = _stats(one.series["claim wall"])
    out["claim many"] = _stats(conc.series["claim wall"])
    out["hits"] = {"one": one.values["hit rate"], "many": conc.values["hit rate"]}
    out["notes"] = one.notes + conc.notes
    out["samples"] = {"floor": bare, "one": one.series["claim wall"],
                      "many": conc.series["claim wall"]}  # fmt: skip
    return out


def table(results: list[dict[str, Any]], many: int) -> str:
    lines = [
        "| engine | what | p50 | p99 | max | claim / floor, p50 (goal) | p99 (goal) | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for key, what in (("one", "1 claim"), ("many", f"{many} concurrent claims")):
            f, c = r[f"floor {key}"], r[f"claim {key}"]
            g50, g99 = GOALS[key]
            lines.append(
                f"| {r['engine']} ({r['version']}) | bare rename, {what.split(' ')[0]} at once "
                f"| {1e3 * f['p50']:.1f} ms | {1e3 * f['p99']:.1f} ms | {1e3 * f['max']:.1f} ms "
                f"| | | {r['load']['floor']:.2f} |"
            )
            r50, r99 = c["p50"] / f["p50"], c["p99"] / f["p99"]
            lines.append(
                f"| | {what} (hits {r['hits'][key]}) | {1e3 * c['p50']:.1f} ms "
                f"| {1e3 * c['p99']:.1f} ms | {1e3 * c['max']:.1f} ms "
                f"| {r50:.2f} x (<= {g50}) {'ok' if r50 <= g50 else 'MISSED'} "
                f"| {r99:.2f} x (<= {g99}) {'ok' if r99 <= g99 else 'MISSED'} "
                f"| {r['load'][key]:.2f} |"
            )
    return "\n".join(lines)


def main(engines: list[str], n: int, many: int, rounds: int, out: str) -> int:
    def log(message: str) -> None:
        sys.stderr.write(f"{message}  (load {os.getloadavg()[0]:.2f})\n")
        sys.stderr.flush()

    results, failed = [], []
    for engine in engines:
        try:
            results.append(measure(engine, n, many, rounds, log))
        except Exception as exc:
            failed.append(f"{engine}: {type(exc).__name__}: {exc}")
    if results:
        print(table(results, many))
    for r in results:
        for note in r["notes"]:
            print(f"note [{r['engine']}]: {note}")
    for problem in failed:
        print(f"not measured: {problem}")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump({"results": results, "failed": failed, "loadavg": os.getloadavg()}, f, indent=1)
    print(f"every sample: {out}; load average at the end {os.getloadavg()}")
    return 1 if failed else 0
