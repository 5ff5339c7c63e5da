"""`dockpool bench --claims`: claim latency against the engine's own floor, per engine, one run.

For each engine (`--engines`, as scripts/engines.sh names them), in this order, each step on an
engine busy with nothing but this run:

- `n` times, with the pool full again each time: one bare `rename` of a running stand-in
  container (docker-py, no dockpool: the floor), then one claim from a full pool of 5;
- `rounds` times: 16 threads released by a barrier, each renaming its own running container
  over its own open connection (the floor), then 16 concurrent claims from a full pool of 16.

Floor and claim alternate, so that both see the same engine (its own background work, the
machine's load) and the ratio compares like with like.

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

from dockpool.bench import claims
from dockpool.bench._harness import BenchRun, percentile
from dockpool.bench.engine_cost import ENGINES, _has_image

Progress = Callable[[str], None]

GOALS = {  # what issue 11 asks, as (p50, p99) bounds of claim / floor
    "one": (1.3, 3.0),
    "many": (1.5, 2.0),
}


def _start_stub(client: Any, run: BenchRun, name: str) -> str:
    """A running stand-in shaped like a pool member (its port published, the same health
    check), but no pool's: renaming it is what the engine alone costs."""
    api, hc = client.api, run.spec().healthcheck
    assert hc is not None
    ns = 1_000_000_000
    cid: str = api.create_container(
        "dockpool-stub:latest",
        name=name,
        labels=run.label,
        environment={"STUB_PORT": "8000", "STUB_READY_DELAY": "0"},
        ports=[8000],
        healthcheck={
            "test": hc.test,
            "interval": int(hc.interval * ns),
            "timeout": int(hc.timeout * ns),
            "retries": hc.retries,
            "start_period": int(hc.start_period * ns),
        },
        host_config=api.create_host_config(port_bindings={8000: ("127.0.0.1", None)}),
    )["Id"]
    api.start(cid)
    return cid


def _timed_rename(api: Any, cid: str, name: str) -> float:
    t0 = time.perf_counter()
    api.rename(cid, name)
    return time.perf_counter() - t0


def _floor_ids(run: BenchRun, many: int) -> list[str]:
    ids = [_start_stub(run.client, run, f"bench{run.hex}-floor-{i}") for i in range(many)]
    time.sleep(3.0)  # the starts' own engine work settles
    return ids


def interleaved_one(run: BenchRun, host: str, n: int, spec: Any) -> tuple[list[float], Any]:
    """`n` times: a bare rename, then one claim from a full pool of 5 (same engine state)."""
    ids = _floor_ids(run, 1)
    bare: list[float] = []
    samples = []
    with run.session("one", 5, spec=spec, docker_url=host) as pool:
        for i in range(n):
            pool.wait_until_full(timeout=claims.FULL_TIMEOUT)
            time.sleep(0.3)  # the refill's last events settle
            bare.append(_timed_rename(run.client.api, ids[0], f"bench{run.hex}-floor-1x{i}"))
            time.sleep(0.05)
            sample, cid = claims._claim(pool, f"{pool.name}-s{i}", 0, i)
            samples.append(sample)
            if cid:
                run.remove(cid)
    run.remove(ids[0])
    return bare, claims._result("1 claim", samples)


def interleaved_many(run: BenchRun, host: str, many: int, rounds: int,
                     spec: Any) -> tuple[list[float], Any]:  # fmt: skip
    """`rounds` times: `many` bare renames at once, then `many` claims at once from a full pool
    of `many`."""
    ids = _floor_ids(run, many)
    bare: list[float] = []
    samples = []
    opts = {"max_containers": 2 * many + 2, "docker_url": host}
    with run.session("many", many, spec=spec, **opts) as pool:
        for rnd in range(rounds):
            pool.wait_until_full(timeout=claims.FULL_TIMEOUT)
            time.sleep(1.0)
            bare += _bare_round(
                host, ids, [f"bench{run.hex}-floor-r{rnd}c{i}" for i in range(many)]
            )
            time.sleep(0.3)
            got = claims._round(pool, many, rnd)
            samples += [s for s, _ in got]
            for _, cid in got:
                if cid:
                    run.remove(cid)
    for cid in ids:
        run.remove(cid)
    return bare, claims._result(f"{many} claims", samples)


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
        log(f"[{engine}] {out['version']}: {n} x (bare rename, claim from a full pool of 5)")
        load["one"] = os.getloadavg()[0]
        bare_one, one = interleaved_one(run, host, n, spec)
        log(f"[{engine}] {rounds} x ({many} bare renames at once, {many} claims at once)")
        load["many"] = os.getloadavg()[0]
        bare_many, conc = interleaved_many(run, host, many, rounds, spec)
        bare = {"one": bare_one, "many": bare_many}
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
                f"| | | {r['load'][key]:.2f} |"
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
