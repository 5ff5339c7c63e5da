"""Building V1 services directly, as `DockerSandboxServiceInjector.inject` would (no app)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from dockpool_openhands.registry import PoolRegistry, PoolSettings
from dockpool_openhands.sandbox_service import PooledDockerSandboxService
from oh_common import AGENT_IMAGE, RUN
from openhands.app_server.sandbox.docker_sandbox_service import DockerSandboxServiceInjector
from openhands.app_server.sandbox.docker_sandbox_spec_service import get_default_sandbox_specs
from openhands.app_server.sandbox.preset_sandbox_spec_service import PresetSandboxSpecService
from openhands.app_server.sandbox.sandbox_models import AGENT_SERVER, SandboxInfo, SandboxStatus
from openhands.app_server.sandbox.sandbox_spec_models import SandboxSpecInfo

PREFIX = f"oh-t{RUN}-"


def agent_spec_service(image: str = AGENT_IMAGE) -> PresetSandboxSpecService:
    """The stock default sandbox spec (command, working dir, env), with our image as its id."""
    # openhands-ai leaves get_default_sandbox_specs unannotated (it returns SandboxSpecInfo's)
    stock: list[SandboxSpecInfo] = get_default_sandbox_specs()  # type: ignore[no-untyped-call]
    spec = stock[0].model_copy(update={"id": image})
    return PresetSandboxSpecService(specs=[spec])


def make_service(
    httpx_client: httpx.AsyncClient,
    registry: PoolRegistry,
    pool: PoolSettings | None,
    *,
    max_num_sandboxes: int = 10,
    prefix: str = PREFIX,
    docker_client: Any = None,
) -> PooledDockerSandboxService:
    """The service the stock injector would make (its defaults for every field), pooled by
    `registry` with `pool` (None: not pooled); `docker_client`: a stand-in for the engine's."""
    stock = DockerSandboxServiceInjector()
    engine = {} if docker_client is None else {"docker_client": docker_client}
    return PooledDockerSandboxService(
        sandbox_spec_service=agent_spec_service(),
        container_name_prefix=prefix,
        host_port=stock.host_port,
        container_url_pattern=stock.container_url_pattern,
        mounts=stock.mounts,
        exposed_ports=stock.exposed_ports,
        health_check_path=stock.health_check_path,
        httpx_client=httpx_client,
        max_num_sandboxes=max_num_sandboxes,
        extra_hosts=stock.extra_hosts,
        startup_grace_seconds=stock.startup_grace_seconds,
        pool_settings=pool,
        registry=registry,
        **engine,
    )


def agent_url(info: SandboxInfo) -> str:
    assert info.exposed_urls, info
    return next(u.url for u in info.exposed_urls if u.name == AGENT_SERVER)


async def answers(client: httpx.AsyncClient, info: SandboxInfo) -> bool:
    """True if the agent server answers an authenticated API call with the sandbox's key."""
    try:
        response = await client.get(
            f"{agent_url(info)}/api/conversations/count",
            headers={"X-Session-API-Key": info.session_api_key or ""},
            timeout=5.0,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def wait_answering(
    service: PooledDockerSandboxService, sandbox_id: str, timeout: float = 180.0
) -> tuple[SandboxInfo, float]:
    """Poll until the sandbox is RUNNING and its agent server answers; (info, seconds)."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        info = await service.get_sandbox(sandbox_id)
        running = info is not None and info.status == SandboxStatus.RUNNING
        if running and info is not None and await answers(service.httpx_client, info):
            return info, time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{sandbox_id} not answering within {timeout} s")


async def wait_full(pool: Any, timeout: float = 180.0) -> None:
    await asyncio.to_thread(pool.wait_until_full, timeout)
