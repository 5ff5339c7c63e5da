"""CPU accounting of one Docker engine and its containers, from /proc and the cgroup tree.

The engine's dockerd is found by its pid file (never by name: two engines may run), its
containerd as dockerd's child, a container's shim by `-id <container id>` on its command line.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from dockpool.bench._harness import cmdline, pids_named, proc_cpu


def engine_pids(pidfile: str) -> dict[str, list[int]]:
    try:
        dockerd = int(Path(pidfile).read_text().strip())
    except (OSError, ValueError):
        return {"dockerd": [], "containerd": []}
    kids = [p for p in pids_named("containerd") if _ppid(p) == dockerd]
    return {"dockerd": [dockerd], "containerd": kids}


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


def shims(ids: list[str]) -> list[int]:
    return [p for p in pids_named("containerd-shim", prefix=True)
            if any(f"-id {cid}" in cmdline(p) for cid in ids)]  # fmt: skip


def _cgroup_cpu(cid: str) -> float:
    """CPU seconds used so far by everything in the container's cgroup (v1 or v2)."""
    for path in (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",
                 f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage"):  # fmt: skip
        with contextlib.suppress(OSError, ValueError):
            return int(Path(path).read_text()) / 1e9
    for path in (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat",
                 f"/sys/fs/cgroup/docker/{cid}/cpu.stat"):  # fmt: skip
        with contextlib.suppress(OSError, ValueError):
            for line in Path(path).read_text().splitlines():
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
    return float("nan")


def cpu(engine: dict[str, list[int]], shims: list[int], ids: list[str]) -> dict[str, float]:
    out = {group: sum(proc_cpu(p)[0] for p in pids) for group, pids in engine.items()}
    out["shims + reaped children"] = sum(sum(proc_cpu(p)) for p in shims)
    out["members' cgroups"] = sum(_cgroup_cpu(cid) for cid in ids)
    return out


def engine_idle_rate(pidfile: str, seconds: float) -> float:
    """CPU seconds per minute of the engine's dockerd + containerd with no pool of ours."""
    pids = engine_pids(pidfile)
    before = cpu(pids, [], [])
    time.sleep(seconds)
    after = cpu(pids, [], [])
    used = (after["dockerd"] - before["dockerd"]) + (after["containerd"] - before["containerd"])
    return 60 * used / seconds
