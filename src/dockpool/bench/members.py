"""The price of keeping a member warm: memory of each ready, unclaimed member, from the engine.

`used` is what `docker stats` shows as MEM USAGE: the cgroup's usage minus its inactive file
cache (cgroup v1: total_inactive_file; v2: inactive_file). `anon` is the member's anonymous
memory (v1: total_rss; v2: anon), the part that page cache reclaim cannot take back.
"""

from __future__ import annotations

import statistics
from typing import Any

from dockpool import POOL_LABEL, ContainerPool
from dockpool.bench._harness import BenchRun, Result

MIB = 1024 * 1024


def _memory(stats: dict[str, Any]) -> dict[str, float]:
    mem = stats.get("memory_stats") or {}
    detail = mem.get("stats") or {}
    usage = float(mem.get("usage") or 0)
    inactive = float(detail.get("total_inactive_file", detail.get("inactive_file", 0)))
    anon = float(detail.get("total_rss", detail.get("anon", 0)))
    return {"used_mib": (usage - inactive) / MIB, "anon_mib": anon / MIB, "usage_mib": usage / MIB}


def warm_members(run: BenchRun, pool: ContainerPool) -> list[str]:
    """Ids of the pool's running, unclaimed members (their names still carry the pool's)."""
    running = run.client.api.containers(
        filters={"label": f"{POOL_LABEL}={pool.name}", "status": "running"}
    )
    prefix = f"/dockpool-{pool.name}-"
    return [c["Id"] for c in running if c["Names"][0].startswith(prefix)]


def sample(run: BenchRun, pool: ContainerPool) -> list[dict[str, Any]]:
    """One reading per warm member (docker stats, one shot)."""
    out = []
    for cid in warm_members(run, pool):
        try:
            stats = run.client.api.stats(cid, stream=False, one_shot=True)
        except Exception:  # removed meanwhile
            continue
        out.append({"container": cid[:12], **_memory(stats)})
    return out


def report(readings: list[dict[str, Any]], pool_size: int) -> Result:
    res = Result(f"Memory per warm member (pool of {pool_size}, idle, ready)")
    if not readings:
        res.notes.append("no warm member could be read")
        return res
    for key, label in (("used_mib", "docker stats MEM USAGE"), ("anon_mib", "anonymous (rss)")):
        values = [r[key] for r in readings]
        res.values[label] = (
            f"median {statistics.median(values):.1f} MiB, min {min(values):.1f}, "
            f"max {max(values):.1f} (over {len(values)} readings)"
        )
    used = statistics.median(r["used_mib"] for r in readings)
    res.values["a full pool holds"] = f"~{pool_size * used:.0f} MiB ({pool_size} x {used:.1f})"
    res.raw["readings"] = readings
    res.raw["median_used_mib"] = used
    return res
