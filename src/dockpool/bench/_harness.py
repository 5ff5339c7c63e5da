"""What every benchmark shares: the run (its id, label, spec, pools, cleanup), summaries, /proc.

A `BenchRun` owns everything a run creates: pools are closed and every container carrying the
run's label is removed at the end, whatever happened (error, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import docker
import docker.errors

from dockpool import POOL_LABEL, ContainerPool, ContainerSpec, HealthCheck, Readiness

RUN_LABEL = "dockpool.bench.run"
IMAGE = "dockpool-stub:latest"
ENGINE_WAIT = 120.0  # seconds to wait for an engine that someone else restarts
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    """One benchmark's outcome: latency series (seconds), scalar facts, notes and raw samples."""

    title: str
    series: dict[str, list[float]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "n": float(len(samples)),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "max": max(samples) if samples else math.nan,
    }


def outliers(samples: Sequence[float], factor: float = 3.0) -> list[int]:
    """Indexes of samples slower than `factor` times the median (worth a note)."""
    if len(samples) < 3:
        return []
    median = percentile(samples, 50)
    return [i for i, s in enumerate(samples) if s > factor * median]


class BenchRun:
    """One benchmark run: a unique id, the label on all its containers, its pools, its cleanup."""

    def __init__(self, health_interval: float = 120.0, base_url: str | None = None) -> None:
        self.hex = secrets.token_hex(4)
        self.health_interval = health_interval
        self.client: Any = (
            docker.DockerClient(base_url=base_url, timeout=60)
            if base_url
            else docker.from_env(timeout=60)
        )
        self.pools: list[ContainerPool] = []
        self.leftover: list[str] = []
        self._old_term: Any = None

    @property
    def label(self) -> dict[str, str]:
        return {RUN_LABEL: self.hex}

    def pool_name(self, what: str) -> str:
        return f"bench{self.hex}-{what}"

    def spec(self) -> ContainerSpec:
        """The stand-in as config.toml runs it: dockpool's readiness probe during warm-up (and
        once per claim), Docker's health check for liveness only (every `health_interval`
        seconds, 120 by default, as config.toml)."""
        return ContainerSpec(
            image=IMAGE,
            ports=[8000],
            environment={"STUB_PORT": "8000", "STUB_READY_DELAY": "0"},
            labels=self.label,
            healthcheck=HealthCheck(
                test=["CMD", "stub-check"],
                interval=self.health_interval,
                timeout=1.0,
                retries=2,
                start_period=30.0,
                start_interval=0.1,
            ),
            readiness=Readiness(port=8000, path="/ready", interval=0.05, timeout=1.0),
        )

    def pool(
        self, what: str, size: int, *, spec: ContainerSpec | None = None, **options: Any
    ) -> ContainerPool:
        """A started pool of `spec` (default: this run's stand-in spec), closed by `close()` at
        the latest. A spec of another image should carry `self.label` too (for the sweep)."""
        pool = ContainerPool(spec or self.spec(), size=size, name=self.pool_name(what), **options)
        self.pools.append(pool)
        return pool.start()

    @contextlib.contextmanager
    def session(
        self, what: str, size: int, *, spec: ContainerSpec | None = None, **options: Any
    ) -> Iterator[ContainerPool]:
        pool = self.pool(what, size, spec=spec, **options)
        try:
            yield pool
        finally:
            self.close_pool(pool)

    def close_pool(self, pool: ContainerPool) -> None:
        if pool in self.pools:
            self.pools.remove(pool)
        pool.close(timeout=60)

    def remove(self, container_id: str) -> None:
        """Remove a claimed container (it belongs to us, the session); gone already is fine."""
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: a removal already in progress
                raise

    def containers(self) -> list[str]:
        """Ids of every container of this run: by its label, or by one of its pools' names."""
        found = {c["Id"] for c in self._list({"label": f"{RUN_LABEL}={self.hex}"})}
        prefix = f"bench{self.hex}-"
        for c in self._list({"label": POOL_LABEL}):
            if (c.get("Labels") or {}).get(POOL_LABEL, "").startswith(prefix):
                found.add(c["Id"])
        return sorted(found)

    def _list(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        return list(self.client.api.containers(all=True, filters=filters))

    def wait_engine(self, timeout: float = ENGINE_WAIT) -> bool:
        """True once the engine answers (it may be restarting under someone else's test)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.ping()
                return True
            except Exception:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(1.0)

    def cleanup(self) -> None:
        """Close every pool, then remove every container of the run; Ctrl-C is held off."""
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for pool in list(self.pools):
                with contextlib.suppress(Exception):
                    self.close_pool(pool)
            self.leftover = self._sweep()
        finally:
            signal.signal(signal.SIGINT, old_int)

    def _sweep(self) -> list[str]:
        """Remove the run's containers, riding out an engine that restarts meanwhile."""
        deadline = time.monotonic() + 2 * ENGINE_WAIT
        while True:
            try:
                for cid in self.containers():
                    self.remove(cid)
                left = self.containers()
                if not left or time.monotonic() >= deadline:
                    return [cid[:12] for cid in left]
                time.sleep(1.0)  # a create that raced the close: once more
            except Exception:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.wait_engine(remaining):
                    selector = f"label={RUN_LABEL}={self.hex}"
                    return [
                        f"unknown (engine unreachable): docker rm -f $(docker ps -aq --filter {selector})"
                    ]

    def __enter__(self) -> BenchRun:
        # SIGTERM unwinds like Ctrl-C, so the cleanup in __exit__ runs
        self._old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.cleanup()
        finally:
            signal.signal(signal.SIGTERM, self._old_term)
            self.client.close()

    def engine_info(self) -> dict[str, Any]:
        v = self.client.version()
        return {
            "engine": v.get("Version"),
            "api": v.get("ApiVersion"),
            "kernel": v.get("KernelVersion"),
            "os_arch": f"{v.get('Os')}/{v.get('Arch')}",
        }


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# -- /proc readers -----------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "loadavg": _read("/proc/loadavg").split()[:3],
    }


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def pids_named(comm: str, *, prefix: bool = False) -> list[int]:
    """Pids whose /proc/<pid>/comm is `comm` (or starts with it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            name = _read(f"/proc/{entry}/comm").strip()
            if name == comm or (prefix and name.startswith(comm)):
                found.append(int(entry))
    return found


def cmdline(pid: int) -> str:
    return _read(f"/proc/{pid}/cmdline").replace("\0", " ")


def proc_cpu(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's cutime+cstime) of `pid`, in seconds; NaN if gone."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return math.nan, math.nan
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": field 3 is fields[0]
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / _CLK_TCK, (cutime + cstime) / _CLK_TCK


def vm_rss_kib() -> int:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1
