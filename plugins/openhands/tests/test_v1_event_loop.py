"""The plugin never blocks OpenHands' event loop, and lists the engine's containers only now
and then, not per request.

Pure: a stand-in docker-py client whose every call is as slow as a busy engine's (`DELAY`),
a pool start as slow as a cold one (`_start_pool` swapped for a sleep), and OpenHands'
health checks answered by an httpx `MockTransport`. A ticker on the loop records the longest
the loop went without running it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from types import SimpleNamespace
from typing import Any, TypeVar

import docker
import httpx
import pytest
from dockpool_openhands import registry as registry_module
from dockpool_openhands.registry import PoolRegistry, PoolSettings
from oh_common import AGENT_IMAGE
from openhands.app_server.sandbox.sandbox_models import SandboxStatus
from openhands.app_server.sandbox.sandbox_service import SESSION_API_KEY_VARIABLE
from v1_helpers import PREFIX, make_service

from dockpool import ContainerSpec, Lease
from dockpool._core.machine import ContainerId

pytestmark = pytest.mark.oh1

T = TypeVar("T")

#: Seconds a stand-in engine call or pool start takes (a loaded engine, a cold pool start).
DELAY = 0.5
#: The longest the loop may go without running a ready task: far below `DELAY`, far above
#: what a busy 2-core machine adds to a 10 ms tick.
STALL = 0.2


class Container:
    """What docker-py's `Container` offers the stock service; `image` is an engine call."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name, self.id = engine, name, f"id-{name}"
        self.status = "running"
        self.attrs = {
            "Created": "2026-01-01T00:00:00Z",
            "Config": {"Env": [f"{SESSION_API_KEY_VARIABLE}=key-{name}"], "WorkingDir": "/w"},
            "NetworkSettings": {"Ports": {"8000/tcp": [{"HostPort": "40000"}]}},
        }

    @property
    def image(self) -> SimpleNamespace:
        self.engine.call("image")
        return SimpleNamespace(id="sha256:0", tags=[AGENT_IMAGE])

    def pause(self) -> None:
        self.status = "paused"

    def unpause(self) -> None:
        self.status = "running"

    def stop(self, timeout: int = 10) -> None:
        self.status = "exited"

    def remove(self) -> None:
        del self.engine.named[self.name]


class Engine:
    """A docker-py client for the calls the service makes, each taking `delay` s; `calls`
    names them in order (`list running` is the plugin's own listing)."""

    def __init__(self, delay: float = DELAY) -> None:
        self.delay = delay
        self.calls: list[str] = []
        self.named: dict[str, Container] = {}
        self.api = SimpleNamespace(containers=self.list_running)
        self.images = SimpleNamespace(get=lambda image: self.call("image", {"Config": {}}))
        self.containers = SimpleNamespace(get=self.get, list=self.list_all)
        self.volumes = SimpleNamespace(get=self.no_volume)

    def call(self, what: str, attrs: Any = None) -> SimpleNamespace:
        self.calls.append(what)
        time.sleep(self.delay)
        return SimpleNamespace(attrs=attrs)

    def list_running(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        self.call("list running")
        running = [c for c in self.named.values() if c.status == "running"]
        return [{"Names": [f"/{c.name}"]} for c in running]

    def list_all(self, all: bool = False) -> list[Container]:
        self.call("list all")
        return list(self.named.values())

    def get(self, key: str) -> Container:
        self.call("get")
        for container in self.named.values():
            if key in (container.name, container.id):
                return container
        raise docker.errors.NotFound(key)

    def no_volume(self, name: str) -> None:
        raise docker.errors.NotFound(name)


class Pool:
    """What the registry and the service use of a started pool; claims take no time."""

    name, started, desired, cap = "fake", True, 2, None

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.closed = False

    def set_cap(self, cap: int | None) -> None:
        self.cap = cap

    async def aclaim(self, session_name: str) -> Lease:
        container = self.engine.named[session_name] = Container(self.engine, session_name)
        return Lease(ContainerId(container.id), session_name, {8000: 40000}, True, 0.0, "fp")

    def close(self, timeout: float = 30.0) -> None:
        self.closed = True


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> list[Pool]:
    """Every pool start takes `DELAY` s; the pools started, in order."""
    started: list[Pool] = []

    def slow_start(spec: ContainerSpec, settings: PoolSettings, cap: int | None) -> Pool:
        time.sleep(DELAY)
        started.append(Pool(engine))
        return started[-1]

    monkeypatch.setattr(registry_module, "_start_pool", slow_start)
    return started


@pytest.fixture
def registry() -> Iterator[PoolRegistry]:
    reg = PoolRegistry()
    yield reg
    reg.close_all()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """OpenHands' client; every agent server answers its health check."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


async def longest_stall(work: Awaitable[T]) -> tuple[T, float]:
    """`work`'s result, and the longest the loop went without running a 10 ms ticker (up to
    the end of `work`: a stretch that never yields counts too)."""
    beats = [time.monotonic()]

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.01)
            beats.append(time.monotonic())

    ticker = asyncio.create_task(tick())
    try:
        result = await work
    finally:
        beats.append(time.monotonic())
        ticker.cancel()
    return result, max(later - earlier for earlier, later in itertools.pairwise(beats))


async def test_a_pooled_start_leaves_the_loop_free(
    engine: Engine, starts: list[Pool], registry: PoolRegistry, http: httpx.AsyncClient
) -> None:
    """A first start (pool start, image inspect, container count, claim, read back) runs its
    slow calls in worker threads: the loop keeps ticking throughout."""
    service = make_service(http, registry, PoolSettings(), docker_client=engine)
    info, stall = await longest_stall(service.start_sandbox())
    assert len(starts) == 1 and info.id.startswith(PREFIX)
    assert info.status == SandboxStatus.RUNNING and info.session_api_key == f"key-{info.id}"
    assert {"image", "list running", "get"} <= set(engine.calls)
    assert stall < STALL, f"the loop stalled for {stall:.3f} s"


async def test_no_container_listing_per_request(
    engine: Engine, starts: list[Pool], registry: PoolRegistry, http: httpx.AsyncClient
) -> None:
    """The plugin lists the running containers once, at its first pool; starts, pauses,
    resumes and deletes then keep the count (and the pools' headroom) from what they did."""
    service = make_service(
        http, registry, PoolSettings(), docker_client=engine, max_num_sandboxes=5
    )
    first = await service.start_sandbox()
    assert engine.calls.count("list running") == 1
    pool = starts[0]
    assert pool.cap == 4  # 5 - the first sandbox

    second = await service.start_sandbox()
    assert pool.cap == 3
    assert await service.pause_sandbox(first.id)
    assert pool.cap == 4
    assert await service.resume_sandbox(first.id)
    assert pool.cap == 3
    assert await service.delete_sandbox(second.id)
    assert pool.cap == 4
    assert engine.calls.count("list running") == 1


def test_the_registry_answers_while_a_pool_starts(
    starts: list[Pool], registry: PoolRegistry
) -> None:
    """A pool start holds no lock the loop's calls need: while one runs (and a second request
    for the same spec waits for it in its own thread), the registry answers at once; the
    spec's pool is started once."""
    spec = ContainerSpec(image=AGENT_IMAGE)
    got: list[Any] = []
    threads = [
        threading.Thread(target=lambda: got.append(registry.pool_for(spec, PoolSettings())))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    time.sleep(DELAY / 5)  # both are in: one starting, one waiting
    asked = time.monotonic()
    answers = registry.has_pools(), registry.known_empty("request"), list(registry.pools())
    assert time.monotonic() - asked < STALL
    assert answers == (False, False, [])
    for thread in threads:
        thread.join()
    assert len(starts) == 1 and got == [starts[0], starts[0]]


def test_a_pool_started_after_close_all_is_closed(
    starts: list[Pool], registry: PoolRegistry
) -> None:
    """`close_all` during a start does not wait for it: the start closes its own pool."""
    spec = ContainerSpec(image=AGENT_IMAGE)
    got: list[Any] = []
    starter = threading.Thread(target=lambda: got.append(registry.pool_for(spec, PoolSettings())))
    starter.start()
    time.sleep(DELAY / 5)
    asked = time.monotonic()
    registry.close_all()
    assert time.monotonic() - asked < STALL
    starter.join()
    assert got == [None] and starts[0].closed and not registry.has_pools()
