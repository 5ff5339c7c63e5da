"""Idle cost and memory: a full pool of 5 left alone for a while, measured from /proc.

Our CPU is `time.process_time()` and `getrusage(RUSAGE_SELF)` over the window. The health
checks run inside the containers, so their cost lands on the engine side: dockerd (which
schedules them), containerd, and the containerd shims of the pool's members (a probe's
processes are the shim's children, reaped into its cutime/cstime). Those are context only.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from typing import Any

from dockpool import POOL_LABEL, ContainerPool, ContainerSpec, signals
from dockpool.bench._harness import (
    RUN_LABEL,
    BenchRun,
    Result,
    cmdline,
    pids_named,
    proc_cpu,
    vm_rss_kib,
)

SETTLE = 2.0  # seconds between "full" and the window: the last health events arrive


def _engine_pids(run: BenchRun, pool: ContainerPool) -> dict[str, list[int]]:
    ids = [
        c["Id"] for c in run.client.api.containers(filters={"label": f"{POOL_LABEL}={pool.name}"})
    ]
    shims = [
        pid
        for pid in pids_named("containerd-shim", prefix=True)
        if any(f"-id {cid}" in cmdline(pid) for cid in ids)
    ]
    return {
        "dockerd": pids_named("dockerd"),
        "containerd": pids_named("containerd"),
        "shims": shims,
    }


def _engine_cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    out = {}
    for group, members in pids.items():
        own = [proc_cpu(p) for p in members]
        out[group] = sum(o for o, _ in own)
        out[group + " (reaped children)"] = sum(c for _, c in own)
    return out


def _threads_cpu() -> dict[str, float]:
    """CPU seconds of each of our threads, by name (from /proc/self/task)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for t in threading.enumerate():
        if t.native_id is None:
            continue
        try:
            with open(f"/proc/self/task/{t.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[t.name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def idle_and_rss(
    run: BenchRun,
    seconds: float,
    size: int = 5,
    spec: ContainerSpec | None = None,
    full_timeout: float = 120.0,
    **options: Any,
) -> tuple[Result, Result]:
    rss_base = vm_rss_kib()
    events = [0]

    def count(sender: object, **payload: Any) -> None:
        events[0] += 1

    with run.session("idle", size, spec=spec, **options) as pool:
        signals.docker_event.connect(count, sender=pool, weak=False)
        try:
            pool.wait_until_full(timeout=full_timeout)
            time.sleep(SETTLE)
            window = _window(run, pool, seconds, events)
        finally:
            signals.docker_event.disconnect(count, sender=pool)
        rss_now, maxrss = vm_rss_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        threads = threading.active_count()
    idle, rss = window, Result(f"Manager memory (pool of {size} running)")
    rss.values["VmRSS before any pool"] = f"{rss_base / 1024:.1f} MiB"
    rss.values["VmRSS with the pool running"] = f"{rss_now / 1024:.1f} MiB"
    rss.values["ru_maxrss (peak so far)"] = f"{maxrss / 1024:.1f} MiB"
    rss.values["threads"] = threads
    rss.raw = {"vmrss_before_kib": rss_base, "vmrss_kib": rss_now, "maxrss_kib": maxrss}
    return idle, rss


def _others(run: BenchRun) -> dict[str, str]:
    """Other users' containers and their state (the engine is shared)."""
    every = run.client.api.containers(all=True)
    return {c["Id"]: c["State"] for c in every if (c.get("Labels") or {}).get(RUN_LABEL) != run.hex}


def _window(run: BenchRun, pool: ContainerPool, seconds: float, events: list[int]) -> Result:
    pids, others0 = _engine_pids(run, pool), _others(run)
    eng0, stats0, ev0 = _engine_cpu(pids), pool.stats(), events[0]
    th0 = _threads_cpu()
    ru0, pt0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.monotonic()
    time.sleep(seconds)
    t1, pt1, ru1 = time.monotonic(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
    th1 = _threads_cpu()
    eng1, stats1, ev1 = _engine_cpu(pids), pool.stats(), events[0]
    others1, pids1 = _others(run), _engine_pids(run, pool)
    span = t1 - t0
    ours = pt1 - pt0
    ru = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    res = Result(f"Idle CPU (full pool of {pool.stats().size}, idle {span:.1f} s)")
    v = res.values
    v["our CPU, process_time"] = (
        f"{1e3 * ours:.1f} ms = {60 * ours / span:.4f} s per 60 s (goal <= 0.1 s)"
    )
    v["our CPU, getrusage u+s"] = (
        f"{1e3 * ru:.1f} ms (user {1e3 * (ru1.ru_utime - ru0.ru_utime):.1f}, "
        f"sys {1e3 * (ru1.ru_stime - ru0.ru_stime):.1f})"
    )
    v["voluntary ctx switches"] = ru1.ru_nvcsw - ru0.ru_nvcsw
    v["docker events received by the pool"] = ev1 - ev0
    v["resyncs in the window"] = stats1.resyncs - stats0.resyncs
    busy = {k: th1[k] - th0.get(k, 0.0) for k in th1 if th1[k] - th0.get(k, 0.0) > 0}
    v["our threads with CPU > 0"] = ", ".join(f"{k} {x:.2f} s" for k, x in busy.items()) or "none"
    for group, cpu in eng1.items():
        delta = cpu - eng0[group]
        n = len(pids[group.split(" ")[0]])
        v[f"{group} CPU [{n} pid(s)]"] = f"{delta:.2f} s  ({100 * delta / span:.1f}% of one CPU)"
    total = sum(eng1.values()) - sum(eng0.values())
    v["engine side, all of the above"] = f"{total:.2f} s  ({100 * total / span:.1f}% of one CPU)"
    res.notes.append(
        "dockerd/containerd are shared with anything else using the engine; the shims are "
        "this pool's own members only"
    )
    running = sum(state == "running" for state in others1.values())
    v["other users' containers"] = f"{len(others1)} ({running} running)"
    if others0 != others1:
        changed = len(set(others0.items()) ^ set(others1.items()))
        res.notes.append(f"other users' containers changed during the window ({changed} changes)")
    if ev1 - ev0 or set(pids1["shims"]) != set(pids["shims"]):
        res.notes.append(
            "pool members changed during the window (killed or removed from outside?): "
            "the figures include the pool's reaction; shim CPU is unknown (nan)"
        )
    if pids1["dockerd"] != pids["dockerd"]:
        res.notes.append("dockerd restarted during the window: its CPU figure is meaningless")
    if not pids["dockerd"]:
        res.notes.append("dockerd not found in /proc (engine in another namespace?)")
    res.raw = {
        "seconds": span,
        "process_time": ours,
        "rusage_cpu": ru,
        "engine_cpu_before": eng0,
        "engine_cpu_after": eng1,
        "pids": pids,
        "threads_cpu_before": th0,
        "threads_cpu_after": th1,
        "docker_events": ev1 - ev0,
    }
    return res
