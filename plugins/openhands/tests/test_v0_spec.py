"""A 0.62 pool member's spec against what the stock `init_container` passes to
`containers.run` (captured with a stand-in Docker client): equal but for the port numbers and
the per-session variables."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

import pytest
from dockpool_openhands.runtime_v0 import APP_PORTS, EXEC_PORT, VSCODE_PORT, PooledDockerRuntime
from openhands.core.config import OpenHandsConfig
from openhands.events import EventStream
from openhands.llm.llm_registry import LLMRegistry
from openhands.storage.memory import InMemoryFileStore

pytestmark = pytest.mark.oh062

PORT_VARS = {"port", "VSCODE_PORT", "APP_PORT_1", "APP_PORT_2"}


def stock_run(config: OpenHandsConfig, sid: str) -> tuple[PooledDockerRuntime, dict[str, Any]]:
    runtime = PooledDockerRuntime(
        config,
        EventStream(sid, InMemoryFileStore()),
        LLMRegistry(config),
        sid=sid,
        plugins=PooledDockerRuntime.default_plugins(config, headless_mode=True),
        headless_mode=False,
    )
    runtime.docker_client = MagicMock()
    try:
        runtime.init_container()  # the stock cold path, up to containers.run
    finally:
        runtime._release_port_locks()
    call = runtime.docker_client.containers.run.call_args
    return runtime, {"image": call.args[0], **call.kwargs}


def test_member_spec_is_init_containers_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_ENV_EXTRA", "1")
    config = OpenHandsConfig()
    config.sandbox.runtime_container_image = "example/runtime:1"
    config.sandbox.volumes = "/srv/project:/workspace:rw,cache:/cache:ro"
    config.sandbox.runtime_startup_env_vars = {"STARTUP": "yes"}
    runtime, run = stock_run(config, "spec-check")
    spec = PooledDockerRuntime.member_spec(
        config, runtime.plugins, config.sandbox.runtime_container_image
    )
    assert spec is not None
    assert spec.image == run["image"]
    port = runtime._container_port
    assert list(spec.command or ()) == [
        str(EXEC_PORT) if a == str(port) else a for a in run["command"]
    ]
    assert list(spec.entrypoint or ()) == run["entrypoint"] == []
    assert spec.working_dir == run["working_dir"]
    env = dict(run["environment"])
    assert env.pop("OPENHANDS_SESSION_ID") == "spec-check"  # per session: not in a member
    assert {k: v for k, v in spec.environment.items() if k not in PORT_VARS} == {
        k: v for k, v in env.items() if k not in PORT_VARS
    }
    assert spec.environment["port"] == str(EXEC_PORT)
    assert set(spec.ports) == {EXEC_PORT, VSCODE_PORT, *APP_PORTS}
    assert len(run["ports"]) == len(spec.ports)  # the same services are published
    assert {k: v.rsplit(":", 1) for k, v in spec.volumes.items()} == {
        k: [v["bind"], v["mode"]] for k, v in run["volumes"].items()
    }
    assert spec.port_host_ip == config.sandbox.runtime_binding_address


@pytest.mark.parametrize(
    "change",
    [
        {"use_host_network": True},
        {"enable_gpu": True},
        {"docker_runtime_kwargs": {"cpu_count": 1}},
        {"vscode_port": 41234},
    ],
)
def test_settings_a_member_cannot_have_mean_no_pool(change: dict[str, Any]) -> None:
    config = OpenHandsConfig()
    for key, value in change.items():
        setattr(config.sandbox, key, value)
    plugins = PooledDockerRuntime.default_plugins(config, headless_mode=False)
    assert PooledDockerRuntime.member_spec(config, plugins, "example/runtime:1") is None
