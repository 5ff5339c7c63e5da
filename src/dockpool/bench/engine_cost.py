"""`dockpool bench --readiness`: what readiness costs on each engine, side by side in one run.

For each engine (`--engines`, by the names scripts/engines.sh gives them) and each profile, a
pool of N members is started and measured:

- warm in: from `pool.start()` until all N are ready;
- ready lag (stand-in only): from the moment a member's server began answering /ready (the stub
  logs "ready"; `docker logs --timestamps` says when) to dockpool's `member_ready` signal;
- idle cost: a full pool left alone for a window: CPU seconds per minute of the engine's dockerd
  and containerd (minus their own rate with no pool, measured first in the same run), the
  members' shims with their reaped children (runc and the exec'd health-check processes), and
  the members' cgroups (their servers, and the probes again: the total is an upper bound).

Profiles: Docker's health check every 0.2 s (start_interval 0.1) for the member's whole life,
dockpool's example config before readiness; a 30 s and a 120 s liveness check (start_interval
0.1) plus `[dockpool.readiness]`, dockpool's warm-up probe (120 s is config.toml's); and, on
engines that honour start_interval, the 120 s check with no probe (Docker alone decides). With
--agent-server, the agent-server image too: its own 1 s HEALTHCHECK for life against what the
OpenHands plugin now runs it with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dockpool import ContainerPool, ContainerSpec, HealthCheck, Readiness, signals
from dockpool._core.spec import START_INTERVAL_API
from dockpool.bench._cpu import cpu, engine_idle_rate, engine_pids, shims
from dockpool.bench._harness import IMAGE, BenchRun, percentile
from dockpool.bench.targets import agent_image

ENGINES = {  # name -> (DOCKER_HOST, pid file), as scripts/engines.sh has them
    "default": ("unix:///var/run/docker.sock", "/var/run/docker.pid"),
    "modern": ("unix:///var/run/dockpool-docker28.sock", "/var/run/dockpool-docker28.pid"),
}
STUB_DELAY = 1.0  # seconds the stand-in takes to answer /ready: a sharp, logged moment
LIVENESS = 120.0  # config.toml's and the plugin's liveness interval


@dataclass(frozen=True)
class Profile:
    key: str
    image: str
    spec: Callable[[dict[str, str]], ContainerSpec]
    lag: bool  # the image logs its ready moment (the stand-in)
    slow: bool  # liveness every 30 s: a longer idle window, to hold whole probe cycles


def _stub(interval: float, probe: bool) -> Callable[[dict[str, str]], ContainerSpec]:
    def make(labels: dict[str, str]) -> ContainerSpec:
        return ContainerSpec(
            image=IMAGE,
            ports=[8000],
            environment={"STUB_PORT": "8000", "STUB_READY_DELAY": str(STUB_DELAY)},
            labels=labels,
            healthcheck=HealthCheck(
                test=["CMD", "stub-check"],
                interval=interval,
                timeout=1.0,
                retries=2,
                start_period=30,
                start_interval=0.1,
            ),
            readiness=Readiness(port=8000, path="/ready") if probe else None,
        )

    return make


def _agent(image: str, plugin: bool) -> Callable[[dict[str, str]], ContainerSpec]:
    def make(labels: dict[str, str]) -> ContainerSpec:
        return ContainerSpec(
            image=image,
            ports=[8000],
            labels=labels,
            random_env=["OH_SESSION_API_KEYS_0"],
            healthcheck=HealthCheck(
                test=["CMD", "/usr/local/bin/agent-server-ready"],
                interval=LIVENESS if plugin else 1.0,
                timeout=3.0,
                retries=3,
                start_period=120.0,
                start_interval=0.1 if plugin else None,
            ),
            readiness=Readiness(port=8000, path="/ready", timeout=2.0) if plugin else None,
        )

    return make


def profiles(agent_server: bool, api: tuple[int, int]) -> list[Profile]:
    out = [
        Profile("stub, check every 0.2 s for life", IMAGE, _stub(0.2, False), True, False),
        Profile("stub, 30 s liveness + ready probe", IMAGE, _stub(30.0, True), True, True),
        Profile(
            f"stub, {LIVENESS:.0f} s liveness + ready probe",
            IMAGE,
            _stub(LIVENESS, True),
            True,
            True,
        ),
    ]
    if api >= START_INTERVAL_API:  # on older engines this one waits one full interval
        out.append(Profile(f"stub, {LIVENESS:.0f} s check, start_interval 0.1, no probe", IMAGE,
                           _stub(LIVENESS, False), True, True))  # fmt: skip
    if agent_server:
        image = agent_image()
        out += [
            Profile(
                "agent-server, image's 1 s check for life",
                image,
                _agent(image, False),
                False,
                False,
            ),
            Profile(
                "agent-server, plugin's liveness + probe", image, _agent(image, True), False, True
            ),
        ]
    return out


# -- one measurement ------------------------------------------------------------------------------


def _log_ready_at(client: Any, cid: str) -> float | None:
    """Wall-clock time at which the stand-in logged "ready" (from the engine's timestamps)."""
    raw = client.api.logs(cid, timestamps=True).decode(errors="replace")
    for line in raw.splitlines():
        stamp, _, text = line.partition(" ")
        if text.strip() == "stub: ready":
            whole, _, frac = stamp.rstrip("Z").partition(".")
            at = datetime.fromisoformat(whole + "+00:00").timestamp()
            return at + float("0." + (frac or "0"))
    return None


def measure(run: BenchRun, engine: str, profile: Profile, size: int, idle: float,
            baseline: float) -> dict[str, Any]:  # fmt: skip
    host, pidfile = ENGINES[engine]
    readied: dict[str, float] = {}
    lock = threading.Lock()

    def on_ready(sender: object, **payload: Any) -> None:
        member = payload["member"]
        if member.container_id is not None:
            with lock:
                readied.setdefault(member.container_id, time.time())

    spec = profile.spec(run.label)
    t0 = time.monotonic()
    pool = ContainerPool(spec, size=size, name=run.pool_name(f"{engine}-r"), docker_url=host,
                         ready_timeout=300, max_containers=size + 2)  # fmt: skip
    signals.member_ready.connect(on_ready, sender=pool, weak=False)
    run.pools.append(pool)
    try:
        pool.start()
        pool.wait_until_full(timeout=600)
        warm = time.monotonic() - t0
        load_warm = os.getloadavg()[0]
        with lock:
            ready_at = dict(readied)
        lags = []
        if profile.lag:
            for cid, at in ready_at.items():
                logged = _log_ready_at(run.client, cid)
                if logged is not None:
                    lags.append(at - logged)
        time.sleep(2.0)  # the last health events settle
        ids = list(ready_at)
        pids, shim_pids = engine_pids(pidfile), shims(ids)
        c0, w0 = cpu(pids, shim_pids, ids), time.monotonic()
        time.sleep(idle)
        c1, span = cpu(pids, shim_pids, ids), time.monotonic() - w0
        stats = pool.stats()
    finally:
        signals.member_ready.disconnect(on_ready, sender=pool)
        run.close_pool(pool)
    per_min = {k: 60 * (c1[k] - c0[k]) / span for k in c0}
    engine_extra = max(0.0, per_min["dockerd"] + per_min["containerd"] - baseline)
    total = engine_extra + per_min["shims + reaped children"] + per_min["members' cgroups"]
    return {
        "engine": engine, "profile": profile.key, "size": size, "warm_s": warm,
        "load_at_warm": load_warm, "lag_s": lags, "idle_s": span,
        "cpu_per_min": per_min, "engine_baseline_per_min": baseline,
        "total_per_min": total, "per_member_pct": 100 * total / 60 / size,
        "replaced_in_window": stats.replaced, "load_after": os.getloadavg()[0],
    }  # fmt: skip


def row(r: Mapping[str, Any]) -> str:
    lags = r["lag_s"]
    lag = f"{1e3 * percentile(lags, 50):.0f} / {1e3 * max(lags):.0f}" if lags else "n/a"
    return (f"| {r['engine']} ({r['version']}) | {r['profile']} | {r['warm_s']:.1f} s "
            f"(load {r['load_at_warm']:.2f}) | {lag} | {r['total_per_min']:.2f} "
            f"| {r['per_member_pct']:.3f} % |")  # fmt: skip


HEADER = (
    "| engine | profile | warm in (N members) | ready lag p50 / max, ms | idle CPU-s per min, "
    "pool | per member, % of a core |\n|---|---|---|---|---|---|"
)


def _has_image(run: BenchRun, image: str, host: str) -> bool:
    """True if the engine has `image`, copied from the default engine if only that one has it
    (`docker save | docker load`: no registry here)."""
    try:
        run.client.api.inspect_image(image)
        return True
    except Exception:
        pass
    default = ENGINES["default"][0]
    if host == default:
        return False
    sys.stderr.write(f"copying {image} from the default engine to {host}\n")
    env = {**os.environ, "DOCKER_HOST": default}
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, env=env)
    load = subprocess.run(["docker", "load", "-q"], stdin=save.stdout, env={**env, "DOCKER_HOST": host},
                          capture_output=True, check=False)  # fmt: skip
    save.wait()
    return save.returncode == 0 and load.returncode == 0


def main(engines: list[str], size: int, idle: float, agent_server: bool, out: str) -> int:
    """Every profile on every engine; the table on stdout, every figure in `out` (JSON)."""

    results: list[dict[str, Any]] = []
    failed: list[str] = []
    for engine in engines:
        host, pidfile = ENGINES[engine]
        try:
            run = BenchRun(base_url=host)
        except Exception as exc:
            failed.append(f"{engine}: no engine answers on {host} ({exc})")
            continue
        with run:
            info = run.engine_info()
            version = f"{info['engine']}, API {info['api']}"
            major, minor = str(info["api"]).split(".")[:2]
            alone = min(15.0, idle)
            sys.stderr.write(f"[{engine}] {version}: engine alone for {alone:.0f} s\n")
            baseline = engine_idle_rate(pidfile, alone)
            for profile in profiles(agent_server, (int(major), int(minor))):
                if not _has_image(run, profile.image, host):
                    failed.append(f"{engine}: image {profile.image} missing; {profile.key} skipped")
                    continue
                window = 2 * idle if profile.slow else idle / 2
                n = size if profile.image == IMAGE else max(1, size // 4)
                sys.stderr.write(f"[{engine}] {profile.key}: pool of {n}, idle {window:.0f} s "
                                 f"(load {os.getloadavg()[0]:.2f})\n")  # fmt: skip
                try:
                    r = measure(run, engine, profile, n, window, baseline)
                except Exception as exc:
                    failed.append(f"{engine}: {profile.key}: {type(exc).__name__}: {exc}")
                    continue
                r["version"] = version
                results.append(r)
                print(row(r), flush=True) if len(results) > 1 else print(HEADER + "\n" + row(r))
    for problem in failed:
        print(f"not measured: {problem}")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump({"results": results, "failed": failed, "loadavg": os.getloadavg()}, f, indent=1)
    print(f"every figure: {out}; load average at the end {os.getloadavg()}")
    return 1 if failed and not results else 0
