"""The container a V1 `DockerSandboxService.start_sandbox` would run, as a dockpool spec.

Read from openhands-ai 1.11's `DockerSandboxService.start_sandbox`: image = the sandbox spec's
id, its command and working dir, environment = the spec's `initial_env` + a random session key
(`OH_SESSION_API_KEYS_0`, here a per-member `random_env`) + the webhook URL + one
`OH_ALLOW_CORS_ORIGINS_<i>` per distinct origin + one variable per exposed port (its name =
its container port), every exposed port published (the stock service picks free host ports
and binds all interfaces; a member gets Docker-chosen ones on 0.0.0.0), the `sandbox_spec_id`
label, the mounts, `init=True` and the extra hosts. Only readiness and liveness are added: the
image's own health check (or an HTTP one), slow once warm, and dockpool's probe of `/ready` (see
`probes`), then a warm-up (`WARM_UP`): a member is ready once its agent server has made the
first uses a new conversation's start task makes, so that its first conversation starts as fast
as its tenth. The probe and the warm-up go where OpenHands itself reaches the sandbox's ports
(`probe_host`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
from openhands.app_server.sandbox.docker_sandbox_service import DockerSandboxService
from openhands.app_server.sandbox.sandbox_models import AGENT_SERVER
from openhands.app_server.sandbox.sandbox_service import (
    SESSION_API_KEY_VARIABLE,
    WEBHOOK_CALLBACK_VARIABLE,
)
from openhands.app_server.sandbox.sandbox_spec_models import SandboxSpecInfo
from openhands.app_server.utils.docker_utils import replace_localhost_hostname_for_docker

from dockpool import ContainerSpec, HealthCheck, Readiness, WarmUpRequest
from dockpool_openhands.probes import http_probe, image_healthcheck, liveness, readiness

#: The agent server is ready (initialised) once this answers 200.
READY_PATH = "/ready"
#: The agent server's API key header; the key is the member's own (a `random_env`).
_KEY = {"X-Session-API-Key": SESSION_API_KEY_VARIABLE}
#: What a fresh agent server does for the first time when a conversation starts, found by
#: timing each request of a start task, pooled against a sandbox that served one before
#: (bench_app.py): its first bash command (then cleared from its bash history), its first
#: skills load, and its first `GET /api/profiles` (OpenHands 1.11 mirrors the user's LLM
#: profiles into the sandbox at every start: 35 ms the first time, 5 ms later).
WARM_UP = (
    WarmUpRequest("/api/bash/execute_bash_command", method="POST",
                  body='{"command": "true", "timeout": 30}', env_headers=_KEY),
    WarmUpRequest("/api/bash/bash_events", method="DELETE", env_headers=_KEY),
    WarmUpRequest("/api/skills", method="POST", body="{}", env_headers=_KEY),
    WarmUpRequest("/api/profiles", env_headers=_KEY),
)  # fmt: skip


def poolable(service: DockerSandboxService) -> str | None:
    """Why sandboxes of this service cannot come from a pool (None: they can)."""
    if service.use_host_network:
        return "host network mode (every sandbox binds the same ports)"
    if service.kvm_enabled:
        return "KVM passthrough (a device mapping dockpool does not make)"
    return None


def sandbox_environment(
    service: DockerSandboxService, sandbox_spec: SandboxSpecInfo
) -> dict[str, str]:
    """Everything `start_sandbox` puts in the environment except the per-sandbox key."""
    env = dict(sandbox_spec.initial_env)
    env.pop(SESSION_API_KEY_VARIABLE, None)
    env[WEBHOOK_CALLBACK_VARIABLE] = (
        f"http://host.docker.internal:{service.host_port}/api/v1/webhooks"
    )
    origins = [service.web_url] if service.web_url else []
    origins.extend(service.permitted_cors_origins)
    for index, origin in enumerate(dict.fromkeys(origins)):
        env[f"OH_ALLOW_CORS_ORIGINS_{index}"] = origin
    for exposed in service.exposed_ports:
        env[exposed.name] = str(exposed.container_port)
    return env


def sandbox_container_spec(
    service: DockerSandboxService,
    sandbox_spec: SandboxSpecInfo,
    image_config: Mapping[str, Any] | None = None,
    *,
    warm_up: bool = True,
) -> ContainerSpec:
    """The pool-member spec for sandboxes of `sandbox_spec` started by `service`.

    `image_config` is the image's `.Config` (for its HEALTHCHECK); without one Docker checks the
    agent server's `/ready`. dockpool probes `/ready` itself, then sends `WARM_UP` (unless
    `warm_up` is False).
    """
    return ContainerSpec(
        image=sandbox_spec.id,
        command=sandbox_spec.command,
        environment=sandbox_environment(service, sandbox_spec),
        labels={"sandbox_spec_id": sandbox_spec.id},
        ports=[exposed.container_port for exposed in service.exposed_ports],
        volumes={
            mount.host_path: f"{mount.container_path}:{mount.mode}" for mount in service.mounts
        },
        working_dir=sandbox_spec.working_dir,
        healthcheck=liveness(image_healthcheck(image_config) or _ready_probe(service)),
        readiness=_readiness(service, warm_up),
        init=True,
        extra_hosts=service.extra_hosts or {},
        port_host_ip="0.0.0.0",
        random_env=[SESSION_API_KEY_VARIABLE],
    )


def _readiness(service: DockerSandboxService, warm_up: bool) -> Readiness | None:
    port = _agent_port(service)
    if not any(p.container_port == port for p in service.exposed_ports):
        return None
    probe = attrs.evolve(readiness(port, READY_PATH), host=probe_host(service))
    return attrs.evolve(probe, warmup=WARM_UP, warmup_timeout=60.0) if warm_up else probe


def probe_host(service: DockerSandboxService) -> str | None:
    """The host OpenHands reaches a sandbox's published ports at: that of its
    `container_url_pattern`, `localhost` turned into `host.docker.internal` when the app server
    runs in a container (as OpenHands does for its own requests to the sandbox); None (the
    published address, 127.0.0.1) for localhost, or a pattern that names no host."""
    try:
        url = service.container_url_pattern.format(port=1)
    except (KeyError, IndexError, ValueError):
        return None
    host = urlsplit(replace_localhost_hostname_for_docker(url)).hostname
    return None if host in (None, "", "localhost") else host


def _agent_port(service: DockerSandboxService) -> int:
    return next((p.container_port for p in service.exposed_ports if p.name == AGENT_SERVER), 8000)


def _ready_probe(service: DockerSandboxService) -> HealthCheck:
    return http_probe(_agent_port(service), READY_PATH)
