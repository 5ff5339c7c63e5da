"""What `dockpool status` shows, as plain JSON-able data, from two sources:

- `process_status`: a running pool process's own view (its member table, counters, claims and
  recent events), served on `/status` and read by `ContainerPool.status()`;
- `engine_status`: with no process to ask, the engine alone (a read-only list of every
  pool-labelled container: members, claimed sandboxes, the processes' presence markers).
"""

from __future__ import annotations

import collections
import os
import time
from typing import TYPE_CHECKING, Any

import attrs

from dockpool._adapters.api import EngineApi
from dockpool._core.machine import LIVE, Member, State
from dockpool._core.spec import POOL_LABEL, SPEC_LABEL, is_member_name, leader_name, role_of

if TYPE_CHECKING:
    from dockpool._runtime.pool import ContainerPool

#: Shape of the documents below; `dockpool status --json` prints them.
VERSION = 1


def _health(member: Member) -> str:
    if member.state is State.WARMING:
        return "warming up" if member.probed else "starting"
    if member.state in (State.READY, State.CLAIMING):
        return "answers" if member.probed else ("healthy" if member.needs_health else "running")
    return ""


def process_status(pool: ContainerPool) -> dict[str, Any]:
    """The status of a pool in this process (its lock held only to copy the table)."""
    rt = pool._rt
    stats = pool.stats()
    config = pool.config
    members: list[dict[str, Any]] = []
    counts: collections.Counter[str] = collections.Counter()
    degraded, last_failure, current = False, "", ""
    if rt is not None:
        state = rt.state
        with state.lock:
            table = list(state.table)
            now = state.clock()
            current, last_failure = state.fingerprint, state.counters.last_failure
        degraded = stats.degraded
        for m in sorted(table, key=lambda x: x.born):
            counts[m.state.value] += 1
            members.append({
                "name": m.name, "id": (m.container_id or "")[:12], "state": m.state.value,
                "age": round(max(0.0, now - m.born), 1), "health": _health(m),
                "spec": m.fingerprint, "current_spec": m.fingerprint == current,
                "reserved_for": m.reserved_for,
            })  # fmt: skip
    endpoint = pool.metrics_endpoint
    size = {"target": stats.size, "floor": config.size, "max_pool_size": config.max_pool_size,
            "max_containers": config.max_containers,
            "create_concurrency": config.create_concurrency}  # fmt: skip
    return {
        "version": VERSION,
        "source": "process",
        "at": time.time(),
        "pool": pool.name,
        "pid": os.getpid(),
        "token": pool.token,
        "leader": pool.leader,
        "running": pool.started,
        "image": config.spec.image,
        "fingerprint": current,
        "size": size,
        "counts": {s.value: counts.get(s.value, 0) for s in (*_ORDER, State.RETIRING)},
        "members": members,
        "stats": attrs.asdict(stats),
        "degraded": degraded,
        "last_failure": last_failure,
        "metrics": {
            "address": None if endpoint.address is None else str(endpoint.address),
            "error": endpoint.error,
        },
        **pool.observer.snapshot(),
    }


_ORDER = sorted(LIVE, key=lambda s: list(State).index(s))


def engine_status(api: EngineApi, pool: str | None = None) -> dict[str, Any]:
    """Every pool on the engine (or `pool` only), from its labelled containers alone."""
    views = api.list({POOL_LABEL: pool} if pool else {})
    pools: dict[str, dict[str, Any]] = {}
    now = time.time()
    for v in views:
        name = v.labels.get(POOL_LABEL)
        if name is None:
            continue
        entry = pools.setdefault(name, {"pool": name, "members": [], "claimed": [],
                                        "processes": 0, "leader": False})  # fmt: skip
        role = role_of(v.labels)
        if role == "presence":
            entry["processes"] += 1
            entry["leader"] = entry["leader"] or v.name == leader_name(name)
            continue
        if role != "member":
            continue  # a lock holder ("hand"): the pool's bookkeeping
        row = {
            "name": v.name, "id": v.id[:12], "status": v.status, "health": v.health or "",
            "age": round(max(0.0, now - v.created), 1) if v.created else None,
            "spec": v.labels.get(SPEC_LABEL, ""),
        }  # fmt: skip
        entry["members" if is_member_name(name, v.name) else "claimed"].append(row)
    for entry in pools.values():
        for rows in (entry["members"], entry["claimed"]):
            rows.sort(key=lambda r: -(r["age"] or 0.0))
    return {
        "version": VERSION,
        "source": "engine",
        "at": now,
        "pools": [pools[k] for k in sorted(pools)],
    }
