"""The pooled 0.62 runtime against the real engine, with the stand-in image.

The stand-in (`dockpool-stub:latest`, busybox) answers `/alive` on `$STUB_PORT`; its command
here starts it with `STUB_PORT="$port"`, the port 0.62 puts in the container's environment
(`port=`; 30000 in a pool member, a free port of 30000-39999 on the stock path). It runs no
actions, so the shell set-up after connecting (`setup_initial_env`) is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dockpool_openhands.registry import REGISTRY
from dockpool_openhands.runtime_v0 import EXEC_PORT, PooledDockerRuntime, host_ports
from oh_common import RUN, STUB_IMAGE, pool_name_for, require_image
from openhands.core.config import OpenHandsConfig
from openhands.events import EventStream
from openhands.llm.llm_registry import LLMRegistry
from openhands.runtime import get_runtime_cls
from openhands.runtime.plugins import PluginRequirement
from openhands.storage.memory import InMemoryFileStore

from dockpool import POOL_LABEL

pytestmark = pytest.mark.oh062

STUB_COMMAND = ["/bin/sh", "-c", 'STUB_PORT="$port" STUB_READY_DELAY=0 exec /bin/stub-server']


class StubRuntime(PooledDockerRuntime):
    """PooledDockerRuntime running the stand-in instead of the action-execution server."""

    @classmethod
    def member_command(
        cls, config: OpenHandsConfig, plugins: list[PluginRequirement], port: int, main_module: str
    ) -> list[str]:
        return STUB_COMMAND

    def setup_initial_env(self) -> None:
        pass  # the stand-in cannot run shell actions


@pytest.fixture
def config(
    docker_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpenHandsConfig]:
    require_image(docker_api, STUB_IMAGE)
    pool_file = tmp_path / "dockpool.toml"
    pool_file.write_text(
        f'[sandbox]\ncontainer_pool_size = 1\n\n[dockpool]\nname = "{pool_name_for("v0")}"\n'
        f'image = "{STUB_IMAGE}"\n'
    )
    monkeypatch.setenv("DOCKPOOL_CONFIG", str(pool_file))
    cfg = OpenHandsConfig()
    cfg.sandbox.runtime_container_image = STUB_IMAGE
    StubRuntime.setup(cfg)
    try:
        yield cfg
    finally:
        StubRuntime.teardown(cfg)


def make_runtime(config: OpenHandsConfig, sid: str) -> StubRuntime:
    return StubRuntime(
        config,
        EventStream(sid, InMemoryFileStore()),
        LLMRegistry(config),
        sid=sid,
        plugins=StubRuntime.default_plugins(config, headless_mode=True),
        headless_mode=False,  # as the server makes them: the VSCode plugin is added
    )


def test_selected_by_dotted_name() -> None:
    assert get_runtime_cls("dockpool_openhands.PooledDockerRuntime") is PooledDockerRuntime


async def test_connect_attaches_to_a_renamed_member(
    config: OpenHandsConfig, docker_api: Any
) -> None:
    pools = list(REGISTRY.pools())
    assert len(pools) == 1, "setup starts the pool for the default agent's sessions"
    pool = pools[0]
    pool.wait_until_full(timeout=60)

    sid = f"t{RUN}-warm"
    runtime = make_runtime(config, sid)
    try:
        await runtime.connect()
        attrs = docker_api.inspect_container(f"openhands-runtime-{sid}")
        assert attrs["Config"]["Labels"][POOL_LABEL] == pool.name
        assert pool.stats().hits == 1
        published = host_ports(attrs)
        assert runtime.api_url == f"http://localhost:{published[EXEC_PORT]}"
        assert published[EXEC_PORT] != EXEC_PORT  # Docker chose the host port
        assert httpx.get(f"{runtime.api_url}/alive", timeout=5).status_code == 200
        assert runtime.runtime_initialized
        app_ports = {50000, 55000}
        assert set(runtime.web_hosts.values()) == app_ports
        assert set(runtime.web_hosts) == {f"http://localhost:{published[p]}" for p in app_ports}
    finally:
        runtime.close()

    # The pool empty: the stock cold path (init_container) serves the next session.
    pool.resize(0)
    cold_sid = f"t{RUN}-cold"
    cold = make_runtime(config, cold_sid)
    try:
        await cold.connect()
        attrs = docker_api.inspect_container(f"openhands-runtime-{cold_sid}")
        assert POOL_LABEL not in (attrs["Config"]["Labels"] or {})
        assert pool.stats().hits == 1
        port = int(cold.api_url.rsplit(":", 1)[1])
        assert 30000 <= port <= 39999 and host_ports(attrs)[port] == port
        assert httpx.get(f"{cold.api_url}/alive", timeout=5).status_code == 200
    finally:
        cold.close()


async def test_existing_session_container_is_attached_not_replaced(
    config: OpenHandsConfig, docker_api: Any
) -> None:
    """A session whose container exists (a resumed conversation) keeps it; no claim."""
    pool = next(iter(REGISTRY.pools()))
    pool.wait_until_full(timeout=60)
    sid = f"t{RUN}-again"
    first = make_runtime(config, sid)
    await first.connect()
    first_id = docker_api.inspect_container(f"openhands-runtime-{sid}")["Id"]
    first.close()  # stops the container, as OpenHands does

    again = make_runtime(config, sid)
    try:
        await again.connect()
        assert docker_api.inspect_container(f"openhands-runtime-{sid}")["Id"] == first_id
        assert pool.stats().hits == 1
        assert httpx.get(f"{again.api_url}/alive", timeout=5).status_code == 200
    finally:
        again.close()
