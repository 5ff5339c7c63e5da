"""The images `dockpool bench` measures, and how many samples of each mode it takes.

`stub` is the stand-in image (2 MB busybox, ready ~0.25 s after start, no network); the
defaults fit a quick run. `agent-server` is the real OpenHands agent server (seconds of CPU to
boot, hundreds of MB each): smaller N and pools that fit 2 cores, and no 16-claimer round.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockpool import ContainerSpec, HealthCheck
from dockpool.bench._harness import IMAGE, BenchRun

AGENT_REPO = os.environ.get("DOCKPOOL_AGENT_IMAGE", "dockpool-agent-server")  # as the build
# The version pin of the checkout this module runs from (src/dockpool/bench/ -> the root); an
# installed dockpool has no such file, and `agent_image()` falls back to :latest.
_LOCK = Path(__file__).resolve().parents[3] / "images/agent-server/requirements.lock"
PORT = 8000
READY_PATH = "/ready"


@dataclass(frozen=True)
class Sizes:
    """How many samples each mode takes (0 skips the mode)."""

    pooled: int  # sequential claims, each from a full pool, then GET /ready
    pool: int  # size of that pool
    cold: int  # claims at pool size 0 (dockpool's cold path)
    docker_run: int  # plain docker-py create + start + poll /ready (no dockpool)
    burst_pool: int  # pool size for the burst
    burst: int  # concurrent claimers of a burst (larger than the pool)
    burst_rounds: int
    claims_1: int  # claim latency, 1 claimer (the existing claims.sequential)
    claimers: int  # claim latency, concurrent claimers (claims.concurrent), pool of that size
    rounds: int
    kills: int  # replacement latency after a kill (replacement.run_kills)
    kill_pool: int
    idle_seconds: float  # idle CPU and RSS window (resources.idle_and_rss)
    idle_pool: int


@dataclass(frozen=True)
class Target:
    key: str  # "stub" or "agent-server"
    image: str
    sizes: Sizes
    boot_timeout: float  # seconds one container may take to answer /ready
    poll: float  # seconds between GET /ready polls while waiting
    health: str  # how readiness is checked by the engine, for the report
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # ContainerPool options
    notes: tuple[str, ...] = ()

    def spec(self, run: BenchRun) -> ContainerSpec:
        if self.key == "stub":
            return run.spec()
        return agent_spec(self.image, run.label)


STUB_FULL = Sizes(
    pooled=30, pool=3, cold=20, docker_run=20, burst_pool=3, burst=8, burst_rounds=3,
    claims_1=30, claimers=16, rounds=3, kills=20, kill_pool=3, idle_seconds=30.0, idle_pool=5,
)  # fmt: skip
STUB_SMOKE = Sizes(
    pooled=3, pool=2, cold=2, docker_run=2, burst_pool=2, burst=4, burst_rounds=1,
    claims_1=0, claimers=4, rounds=1, kills=2, kill_pool=2, idle_seconds=3.0, idle_pool=2,
)  # fmt: skip
AGENT_FULL = Sizes(
    pooled=8, pool=2, cold=5, docker_run=5, burst_pool=2, burst=5, burst_rounds=1,
    claims_1=0, claimers=2, rounds=2, kills=3, kill_pool=2, idle_seconds=20.0, idle_pool=2,
)  # fmt: skip


def agent_image() -> str:
    """dockpool-agent-server:<version pinned by images/agent-server/requirements.lock>, or
    :latest outside a checkout (`--agent-image` names another)."""
    try:
        text = _LOCK.read_text()
    except OSError:
        return f"{AGENT_REPO}:latest"
    found = re.search(r"^openhands-agent-server==([^\s;]+)", text, re.MULTILINE)
    return f"{AGENT_REPO}:{found.group(1)}" if found else f"{AGENT_REPO}:latest"


def agent_spec(image: str, labels: dict[str, str]) -> ContainerSpec:
    """An agent server as OpenHands runs one: its port published, a per-sandbox session key.

    Healthy = the image's own probe (GET /ready from inside) passes; every 0.5 s (engines
    before API 1.44 ignore start_interval), start_period 120 s so a slow boot is not unhealthy.
    """
    return ContainerSpec(
        image=image,
        ports=[PORT],
        labels=labels,
        random_env=["OH_SESSION_API_KEYS_0"],
        healthcheck=HealthCheck(
            test=["CMD", "/usr/local/bin/agent-server-ready"],
            interval=0.5,
            timeout=3.0,
            retries=3,
            start_period=120.0,
            start_interval=0.25,
        ),
    )


def stub(smoke: bool = False) -> Target:
    return Target(
        key="stub",
        image=IMAGE,
        sizes=STUB_SMOKE if smoke else STUB_FULL,
        boot_timeout=60.0,
        poll=0.01,
        health="config.toml's: readiness GET /ready every 0.05 s during warm-up; stub-check every 120 s",
    )


def agent_server(image: str | None = None) -> Target:
    return Target(
        key="agent-server",
        image=image or agent_image(),
        sizes=AGENT_FULL,
        boot_timeout=300.0,
        poll=0.05,
        health="agent-server-ready (curl /ready inside) every 0.5 s, start_period 120 s",
        options={"ready_timeout": 300.0, "max_containers": 8},
        notes=(
            "16 concurrent claimers is too much for agent servers on this machine (16 pool "
            "members of hundreds of MB, and 16 boots at a time): claim latency with concurrent "
            "claimers uses a pool of 2 here; the 16-claimer figure is the stand-in's",
            "claim latency with 1 claimer: the claim part of each 'pooled' sample (no "
            "separate claims.sequential run: each claim costs an agent-server boot to refill)",
        ),
    )


def with_overrides(target: Target, **sizes: Any) -> Target:
    """The target with some sizes replaced (None values are ignored)."""
    given = {k: v for k, v in sizes.items() if v is not None}
    return dataclasses.replace(target, sizes=dataclasses.replace(target.sizes, **given))
