"""Selecting the plugin the way an OpenHands user does: environment variables only; and hot
reload of the pool's config.toml through the injector's pool."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockpool_openhands.registry import REGISTRY
from dockpool_openhands.sandbox_injector import PooledDockerSandboxServiceInjector
from dockpool_openhands.sandbox_service import PooledDockerSandboxService
from oh_common import AGENT_IMAGE, RUN, pool_name_for, require_image
from openhands.app_server import config as app_config
from starlette.datastructures import State

from dockpool import POOL_LABEL, ContainerSpec

pytestmark = pytest.mark.oh1

POOL_TOML = """
[sandbox]
container_pool_size = {size}

[dockpool]
name = "{name}"
# Container keys are ignored by the plugin: the sandbox spec defines the container.
image = "dockpool-stub:latest"
environment = {{ IGNORED = "yes" }}
max_containers = 4
"""


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The environment of an app server using the plugin, and a fresh global config."""
    config_file = tmp_path / "config.toml"
    config_file.write_text(POOL_TOML.format(size=0, name=pool_name_for("inj")))
    spec = {"id": AGENT_IMAGE, "command": ["--port", "8000"], "working_dir": "/workspace/project"}
    env = {
        "OH_SANDBOX_KIND": "dockpool_openhands.PooledDockerSandboxServiceInjector",
        "OH_SANDBOX_POOL_CONFIG": str(config_file),
        "OH_SANDBOX_POOL_SIZE": "5",  # ignored: the config file names the size
        "OH_SANDBOX_CONTAINER_NAME_PREFIX": f"oh-t{RUN}-inj-",
        "OH_SANDBOX_SPEC_KIND": "DockerSandboxSpecServiceInjector",
        "OH_SANDBOX_SPEC_PULL_IF_MISSING": "0",
        "OH_SANDBOX_SPEC_SPECS": json.dumps([spec]),
        "OH_PERSISTENCE_DIR": str(tmp_path / "persistence"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(app_config, "_global_config", None)
    REGISTRY.reopen()
    try:
        yield config_file
    finally:
        REGISTRY.close_all()
        REGISTRY.reopen()


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"not within {timeout} s: {check}")


async def test_selected_by_env_and_hot_reloaded(app_env: Path, docker_api: Any) -> None:
    require_image(docker_api, AGENT_IMAGE)
    injector = app_config.get_global_config().sandbox
    assert isinstance(injector, PooledDockerSandboxServiceInjector)
    assert injector.pool_size == 5 and injector.pool_config == str(app_env)

    async with injector.context(State()) as service:
        assert isinstance(service, PooledDockerSandboxService)
        assert service.pool_settings is not None
        assert service.pool_settings.config_path == app_env
        assert service.container_name_prefix == f"oh-t{RUN}-inj-"
    pools = list(REGISTRY.pools())
    assert len(pools) == 1, "the first injection starts the default spec's pool"
    pool = pools[0]
    assert pool.name.startswith(pool_name_for("inj")) and pool.config.size == 0
    assert pool.config.spec.image == AGENT_IMAGE  # the sandbox spec's, not the file's
    assert pool.config.max_containers == 4  # the file's limit

    # Hot reload: the file's size applies live; members are still the sandbox's containers.
    app_env.write_text(POOL_TOML.format(size=1, name=pool_name_for("inj")))
    wait_for(lambda: pool.config.size == 1)
    rows = wait_for(lambda: docker_api.containers(filters={"label": f"{POOL_LABEL}={pool.name}"}))
    member = docker_api.inspect_container(rows[0]["Id"])
    # dockpool creates members from the image ID the tag resolves to (Config.Image shows the
    # ID; OpenHands reads the spec id back from the image's tags, which are the same).
    assert member["Image"] == docker_api.inspect_image(AGENT_IMAGE)["Id"]
    assert not any(e.startswith("IGNORED=") for e in member["Config"]["Env"])
    assert member["Name"].startswith(f"/dockpool-{pool.name}-")

    # A broken edit is rejected; the pool keeps its last good config.
    app_env.write_text("[sandbox]\ncontainer_pool_size = -3\n")
    time.sleep(1.5)
    assert pool.config.size == 1

    # A second injection reuses the pool (one pool per spec, across requests).
    async with injector.context(State()) as again:
        assert isinstance(again, PooledDockerSandboxService)
        assert await again.prepare_pool() is pool


def test_the_refill_hold_is_set_by_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """OH_SANDBOX_POOL_REFILL_HOLD reaches the pool's config (default 3 s; 0 refills at once)."""
    monkeypatch.setenv("OH_SANDBOX_KIND", "dockpool_openhands.PooledDockerSandboxServiceInjector")
    monkeypatch.setenv("OH_PERSISTENCE_DIR", str(tmp_path / "persistence"))
    for value, expected in ((None, 3.0), ("0", 0.0), ("1.5", 1.5)):
        if value is None:
            monkeypatch.delenv("OH_SANDBOX_POOL_REFILL_HOLD", raising=False)
        else:
            monkeypatch.setenv("OH_SANDBOX_POOL_REFILL_HOLD", value)
        monkeypatch.setattr(app_config, "_global_config", None)
        injector = app_config.get_global_config().sandbox
        assert isinstance(injector, PooledDockerSandboxServiceInjector)
        settings = injector.pool_settings()
        assert settings is not None
        assert settings.pool_config(ContainerSpec(image="img:1")).refill_hold == expected
