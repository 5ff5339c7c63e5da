"""A pool member's spec equals what the stock `start_sandbox` passes to `containers.run`
(captured from the stock service itself with a stand-in Docker client; no engine needed)."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock, patch

import httpx
import pytest
from dockpool_openhands.registry import PoolRegistry, PoolSettings
from dockpool_openhands.sandbox_service import PooledDockerSandboxService
from dockpool_openhands.v1_spec import WARM_UP, poolable, probe_host, sandbox_container_spec
from oh_common import AGENT_IMAGE
from openhands.app_server.sandbox.docker_sandbox_service import (
    DockerSandboxService,
    DockerSandboxServiceInjector,
    VolumeMount,
)
from openhands.app_server.sandbox.sandbox_service import SESSION_API_KEY_VARIABLE
from v1_helpers import agent_spec_service

pytestmark = pytest.mark.oh1


def stand_in_docker() -> MagicMock:
    """A docker-py client whose `containers.run` returns a plausible new container."""
    client = MagicMock()
    container = client.containers.run.return_value
    container.name, container.status, container.image.tags = "oh-spec-x", "created", [AGENT_IMAGE]
    container.attrs = {"Created": "2026-01-01T00:00:00Z", "Config": {"Env": []}}
    return client


def service_kwargs(**changes: Any) -> dict[str, Any]:
    stock = DockerSandboxServiceInjector()
    kwargs: dict[str, Any] = {
        "sandbox_spec_service": agent_spec_service(),
        "container_name_prefix": "oh-spec-",
        "host_port": 3123,
        "container_url_pattern": stock.container_url_pattern,
        "mounts": [
            VolumeMount(host_path="/srv/a", container_path="/data"),
            VolumeMount(host_path="cache", container_path="/cache", mode="ro"),
        ],
        "exposed_ports": stock.exposed_ports,
        "health_check_path": stock.health_check_path,
        "httpx_client": MagicMock(spec=httpx.AsyncClient),
        "max_num_sandboxes": 5,
        "web_url": "http://example.test:3000",
        "permitted_cors_origins": ["http://a.test", "http://example.test:3000", "http://b.test"],
        "extra_hosts": stock.extra_hosts,
        "docker_client": stand_in_docker(),
    }
    kwargs.update(changes)
    return kwargs


async def stock_run_kwargs(service: DockerSandboxService) -> dict[str, Any]:
    with patch.object(service, "pause_old_sandboxes", return_value=[]):
        await service.start_sandbox()
    return dict(service.docker_client.containers.run.call_args.kwargs)


async def test_member_spec_is_the_stock_container() -> None:
    stock = DockerSandboxService(**service_kwargs())
    run = await stock_run_kwargs(stock)
    sandbox_spec = await stock.sandbox_spec_service.get_default_sandbox_spec()
    spec = sandbox_container_spec(stock, sandbox_spec, image_config=None)

    assert spec.image == run["image"] == AGENT_IMAGE
    assert list(spec.command or ()) == run["command"]
    assert spec.working_dir == run["working_dir"]
    env = dict(run["environment"])
    assert env.pop(SESSION_API_KEY_VARIABLE)
    assert dict(spec.environment) == env
    assert spec.random_env == (SESSION_API_KEY_VARIABLE,)
    assert set(spec.ports) == set(run["ports"])
    assert spec.port_host_ip == "0.0.0.0"  # the stock mapping binds every interface
    assert dict(spec.labels) == run["labels"]
    assert {k: v.rsplit(":", 1) for k, v in spec.volumes.items()} == {
        k: [v["bind"], v["mode"]] for k, v in run["volumes"].items()
    }
    assert spec.init is run["init"] is True
    assert dict(spec.extra_hosts) == run["extra_hosts"]
    assert run["network_mode"] is None and run["devices"] is None
    assert spec.healthcheck is not None  # the only additions: readiness and liveness
    assert spec.readiness is not None and spec.readiness.path == "/ready"
    assert spec.readiness.port in spec.ports
    assert spec.readiness.warmup == WARM_UP  # the agent server's first uses, before a claim
    assert [(s.method, s.path) for s in WARM_UP] == [
        ("POST", "/api/bash/execute_bash_command"),
        ("DELETE", "/api/bash/bash_events"),  # the session's bash history starts empty
        ("POST", "/api/skills"),
        ("GET", "/api/profiles"),  # read only: OpenHands writes the user's profiles later
    ]
    assert all(step.env_headers == {"X-Session-API-Key": SESSION_API_KEY_VARIABLE}
               for step in spec.readiness.warmup)  # fmt: skip
    assert SESSION_API_KEY_VARIABLE in spec.random_env  # each member's own key


def test_image_healthcheck_is_kept_but_slow_once_warm() -> None:
    stock = DockerSandboxService(**service_kwargs())
    sandbox_spec = agent_spec_service().specs[0]
    ns = 1_000_000_000
    config = {
        "Healthcheck": {
            "Test": ["CMD", "/usr/local/bin/agent-server-ready"],
            "Interval": ns,
            "Timeout": 3 * ns,
            "StartPeriod": 120 * ns,
            "Retries": 3,
        }
    }
    health = sandbox_container_spec(stock, sandbox_spec, config).healthcheck
    assert health is not None
    assert health.test == ("CMD", "/usr/local/bin/agent-server-ready")
    # its test, timeout, start period and retries as the image has them; its 1 s interval
    # stretched to 120 s (liveness), fast probes only during warm-up where the engine can
    assert (health.interval, health.timeout, health.start_period, health.retries) == (
        120.0,
        3.0,
        120.0,
        3,
    )
    assert health.start_interval == 0.1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"use_host_network": True}, "host network"),
        ({"kvm_enabled": True}, "KVM"),
        ({"container_name_prefix": "dockpool-"}, "prefix"),
        ({"container_name_prefix": "dock"}, "prefix"),
    ],
)
async def test_unpoolable_services_take_the_stock_path(
    changes: dict[str, Any], reason: str
) -> None:
    registry = PoolRegistry()
    service = PooledDockerSandboxService(
        **service_kwargs(**changes), pool_settings=PoolSettings(), registry=registry
    )
    assert await service.prepare_pool() is None
    run = await stock_run_kwargs(service)
    assert run["name"].startswith(service.container_name_prefix)
    assert not registry.has_pools()
    if reason in ("host network", "KVM"):
        assert poolable(service) is not None


@pytest.mark.parametrize(
    ("pattern", "in_docker", "host"),
    [
        ("http://localhost:{port}", False, None),  # OpenHands' default, on the engine's host
        ("http://localhost:{port}", True, "host.docker.internal"),  # in OpenHands' image
        ("http://127.0.0.1:{port}", True, "127.0.0.1"),
        ("http://10.1.2.3:{port}", False, "10.1.2.3"),
        ("http://{host}:{port}", False, None),  # not a pattern OpenHands can use either
    ],
)
async def test_the_probe_goes_where_openhands_reaches_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, pattern: str, in_docker: bool, host: str | None
) -> None:
    monkeypatch.setattr("openhands.app_server.utils.docker_utils.is_running_in_docker",
                        lambda: in_docker)  # fmt: skip
    service = DockerSandboxService(**service_kwargs(container_url_pattern=pattern))
    assert probe_host(service) == host
    sandbox_spec = await service.sandbox_spec_service.get_default_sandbox_spec()
    spec = sandbox_container_spec(service, sandbox_spec, image_config=None)
    assert spec.readiness is not None and spec.readiness.host == host
