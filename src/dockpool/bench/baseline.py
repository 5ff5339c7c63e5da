"""The engine's own cost of a claim, without dockpool: docker-py inspect + rename, measured raw.

A pooled claim is one inspect and one rename; these figures, on containers of the same image
and health check created with docker-py, say how much of a claim's latency is the engine's.
(During a pooled claim the pool also starts its replacement creates, which this baseline
does not: `with creates` adds two create+start calls in flight, as a refill would.)
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import docker
import docker.errors

from dockpool.bench._harness import BenchRun, Result

_NS = 1_000_000_000


def _create(run: BenchRun, api: Any, name: str, made: list[str]) -> str:
    hc = {
        "test": ["CMD", "stub-check"],
        "interval": int(run.health_interval * _NS),
        "timeout": _NS,
        "retries": 1,
    }
    cid: str = api.create_container(
        "dockpool-stub:latest",
        name=name,
        labels=run.label,
        environment={"STUB_PORT": "8000", "STUB_READY_DELAY": "0"},
        ports=[8000],
        healthcheck=hc,
        host_config=api.create_host_config(port_bindings={8000: ("127.0.0.1", None)}),
    )["Id"]
    made.append(cid)
    api.start(cid)
    return cid


def _claim_like(api: Any, cid: str, name: str) -> float:
    started = time.perf_counter()
    api.inspect_container(cid)
    api.rename(cid, name)
    return time.perf_counter() - started


def engine_baseline(run: BenchRun, n: int, claimers: int, rounds: int) -> Result:
    api = run.client.api
    prefix = f"bench{run.hex}-base"
    res = Result(
        f"Engine baseline: raw docker-py inspect + rename (no dockpool), {claimers} containers"
    )
    made: list[str] = []
    try:
        ids = [_create(run, api, f"{prefix}-{i}", made) for i in range(claimers)]
        time.sleep(1.0)
        seq = [_claim_like(api, ids[0], f"{prefix}-seq{i}") for i in range(n)]
        res.series["1 at a time"] = seq
        for creates in (0, 2):
            label = f"{claimers} at once" + (f", {creates} creates in flight" if creates else "")
            res.series[label] = []
            for rnd in range(rounds):
                got = _round(run, ids, f"{prefix}-c{creates}r{rnd}", creates, made)
                res.series[label] += [x for x in got if x is not None]
                if None in got:
                    res.notes.append(f"{label}, round {rnd}: {got.count(None)} call(s) failed")
                time.sleep(1.0)
    finally:  # the run's final sweep catches what an engine restart leaves here
        with contextlib.suppress(Exception):
            for cid in made:
                run.remove(cid)
    return res


def _round(
    run: BenchRun, ids: list[str], prefix: str, creates: int, made: list[str]
) -> list[float | None]:
    barrier = threading.Barrier(len(ids) + creates)
    out: list[float | None] = [None] * len(ids)

    def claim(i: int) -> None:
        client = docker.from_env().api  # a connection each, like concurrent claimers
        barrier.wait()
        with contextlib.suppress(docker.errors.DockerException):
            out[i] = _claim_like(client, ids[i], f"{prefix}-{i}")
        client.close()

    def create(j: int) -> None:
        client = docker.from_env().api
        barrier.wait()
        time.sleep(0.01)  # a refill starts once the first claims are through
        with contextlib.suppress(docker.errors.DockerException):
            _create(run, client, f"{prefix}-x{j}", made)
        client.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(ids))]
    threads += [threading.Thread(target=create, args=(j,)) for j in range(creates)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
