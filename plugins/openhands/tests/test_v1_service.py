"""The pooled V1 sandbox service against the real engine and the real agent server image."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from dockpool_openhands.registry import PoolRegistry, PoolSettings
from dockpool_openhands.running import RECOUNT_AFTER, RunningSandboxes
from oh_common import AGENT_IMAGE, pool_name_for, require_image
from openhands.app_server.sandbox.sandbox_models import SandboxStatus
from openhands.app_server.sandbox.sandbox_service import SESSION_API_KEY_VARIABLE
from v1_helpers import PREFIX, agent_url, answers, make_service, wait_answering, wait_full

from dockpool import POOL_LABEL

pytestmark = pytest.mark.oh1


@pytest.fixture
def registry() -> Iterator[PoolRegistry]:
    reg = PoolRegistry()
    yield reg
    reg.close_all()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15.0) as client:
        yield client


@pytest.fixture(autouse=True)
def _agent_image(docker_api: Any) -> None:
    require_image(docker_api, AGENT_IMAGE)


def container(docker_api: Any, name: str) -> dict[str, Any]:
    return docker_api.inspect_container(name)  # type: ignore[no-any-return]


async def test_pooled_sandbox_lifecycle(
    docker_api: Any, registry: PoolRegistry, http: httpx.AsyncClient
) -> None:
    """Claim, read back, search, key lookup, created_at, capacity, pause/resume, delete; and the
    stock cold path when the pool is empty, side by side."""
    settings = PoolSettings(size=2, name=pool_name_for("life"))
    now = [0.0]  # the running tally's clock (it lists the engine once per RECOUNT_AFTER)
    registry.running = RunningSandboxes(clock=lambda: now[0])
    service = make_service(http, registry, settings, max_num_sandboxes=3)
    pool = await service.prepare_pool()
    assert pool is not None and pool.config.size == 2
    await wait_full(pool)
    member_created = max(
        container(docker_api, row["Id"])["Created"]
        for row in docker_api.containers(filters={"label": f"{POOL_LABEL}={pool.name}"})
    )

    # An empty pool (size 0, its own name) that leaves misses to OpenHands: the stock path.
    stock_misses = PoolSettings(size=0, name=pool_name_for("empty"), pool_cold_starts=False)
    empty = make_service(http, PoolRegistry(), stock_misses)
    cold = await empty.start_sandbox()
    assert cold.id.startswith(PREFIX)
    assert POOL_LABEL not in container(docker_api, cold.id)["Config"]["Labels"]
    cold_info, _ = await wait_answering(service, cold.id)
    assert cold_info.created_at > datetime.fromisoformat(member_created.replace("Z", "+00:00"))
    # (another registry's start, as another worker's: this service counts it at its next
    # listing of the running containers, at most RECOUNT_AFTER seconds later)
    now[0] += RECOUNT_AFTER

    # From the pool: RUNNING at once, with its URLs and its own session key.
    before = datetime.now(UTC)
    info = await service.start_sandbox()
    assert pool.stats().hits == 1
    assert info.status == SandboxStatus.RUNNING and info.exposed_urls and info.session_api_key
    attrs = container(docker_api, info.id)
    assert attrs["Name"] == f"/{info.id}" and attrs["Config"]["Labels"][POOL_LABEL] == pool.name
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert env[SESSION_API_KEY_VARIABLE] == info.session_api_key
    assert info.created_at >= before  # the claim time, not the member's creation
    assert attrs["HostConfig"]["Init"] is True
    assert attrs["Config"]["Labels"]["sandbox_spec_id"] == AGENT_IMAGE

    got = await service.get_sandbox(info.id)
    assert got is not None and got.status == SandboxStatus.RUNNING
    assert got.session_api_key == info.session_api_key and agent_url(got) == agent_url(info)
    assert await answers(http, got)
    anonymous = await http.get(f"{agent_url(got)}/api/conversations/count")
    assert anonymous.status_code == 401

    # Search lists the claimed and the cold sandbox, never an unclaimed member.
    page = await service.search_sandboxes()
    ids = {item.id for item in page.items}
    assert {info.id, cold.id} <= ids
    assert all(i.startswith(PREFIX) for i in ids)
    members = docker_api.containers(all=True, filters={"label": f"{POOL_LABEL}={pool.name}"})
    unclaimed = {r["Names"][0].lstrip("/") for r in members} - {info.id}
    assert unclaimed and not unclaimed & ids

    found = await service.get_sandbox_by_session_api_key(info.session_api_key)
    assert found is not None and found.id == info.id

    # Capacity: 2 sandboxes run, max_num_sandboxes 3 -> at most 1 warm member.
    assert pool.config.size == 1

    # created_at: the claimed sandbox is newer than the cold one (its container is older).
    assert (await service.pause_old_sandboxes(1)) == [cold.id]
    paused_cold = await service.get_sandbox(cold.id)
    assert paused_cold is not None and paused_cold.status == SandboxStatus.PAUSED

    assert await service.pause_sandbox(info.id)
    paused = await service.get_sandbox(info.id)
    assert paused is not None and paused.status == SandboxStatus.PAUSED
    assert await service.resume_sandbox(info.id)
    resumed, _ = await wait_answering(service, info.id, timeout=60)
    assert resumed.session_api_key == info.session_api_key

    for sandbox_id in (info.id, cold.id):
        assert await service.delete_sandbox(sandbox_id)
        assert await service.get_sandbox(sandbox_id) is None
    assert registry.claimed_at(attrs["Id"]) is None
    assert pool.config.size == 2  # nothing runs: the pool may be full again


async def test_burst_of_claims(
    docker_api: Any, registry: PoolRegistry, http: httpx.AsyncClient
) -> None:
    """Concurrent starts, one more than the pool holds: each gets its own member (distinct
    names, keys and ports), the one too many a cold start of the pool's, all answering."""
    settings = PoolSettings(size=2, name=pool_name_for("burst"))
    service = make_service(http, registry, settings)
    pool = await service.prepare_pool()
    assert pool is not None
    await wait_full(pool)
    infos = await asyncio.gather(*(service.start_sandbox() for _ in range(3)))
    stats = pool.stats()
    assert (stats.hits, stats.misses) == (2, 1)  # the third was cold-started by the pool
    assert len({i.id for i in infos}) == 3
    assert len({i.session_api_key for i in infos}) == 3
    assert len({agent_url(i) for i in infos}) == 3
    for info in infos:
        # handed over answering, so OpenHands' startup grace cannot fail any of them
        assert info.status == SandboxStatus.RUNNING
        assert container(docker_api, info.id)["Config"]["Labels"][POOL_LABEL] == pool.name
        assert await answers(http, info)
        assert await service.delete_sandbox(info.id)


async def test_disabled_pool_is_the_stock_service(
    registry: PoolRegistry, http: httpx.AsyncClient
) -> None:
    service = make_service(http, registry, None)
    assert await service.prepare_pool() is None
    info = await service.start_sandbox()
    assert info.status in (SandboxStatus.STARTING, SandboxStatus.RUNNING)
    assert not registry.has_pools()
    assert await service.delete_sandbox(info.id)
