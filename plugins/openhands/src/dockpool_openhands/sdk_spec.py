"""The container an SDK `DockerWorkspace` would run, as a dockpool spec of a *dormant* agent server.

Read from openhands-workspace 1.58's `DockerWorkspace._start_container`: `docker run -d --rm
--name agent-server-<uuid4> [-e K=V for each forward_env variable set in the caller's
environment] [-v volume ...] -p 127.0.0.1:<host_port>:8000 [-p 127.0.0.1:<host_port+1>:8001]
[--network N] <image> --host 0.0.0.0 --port 8000`, then a poll of `/health`; the session's key
is the caller's `OH_SESSION_API_KEYS_0` or `SESSION_API_KEY`, forwarded in the environment.

A pool member is the same container with four differences, each for a reason:
- it starts dormant (`OH_DEFERRED_INIT=true`, agent server >= 1.29): its stateless services
  boot and `/ready` answers, but nothing of a session is there; its init key is its own random
  `OH_SECRET_KEY` (a `random_env`), never a session's. The session's keys arrive at the claim,
  by `POST /api/init` (dockpool's on-claim request, `INIT`), so the session-key variables are
  never forwarded into a member's environment;
- its ports are published on 127.0.0.1 at ports Docker picks (a member exists before anyone
  knows which port its workspace will use), read back into the lease;
- it asks for no `--ulimit nofile=65536:65536`: the engine's default applies (hosts whose hard
  limit is lower refuse that container: see ARCHITECTURE.md);
- `--platform` is not passed: the image on the engine is used as it is (there is no pull).

What a member cannot be made of: a fixed `host_port` (its port is chosen when it is created,
before any workspace asks), and `enable_gpu` (dockpool makes no device requests). Such a
workspace is started the stock way (`why_not_pooled` says why).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from dockpool import ContainerSpec, Readiness, WarmUpRequest
from dockpool_openhands.probes import http_probe, image_healthcheck, liveness

#: The agent server's port in its container, and VSCode's (extra_ports).
AGENT_PORT = 8000
VSCODE_PORT = 8001
#: The variables that carry a session's key: delivered at the claim, never forwarded.
SESSION_KEY_VARIABLES = ("OH_SESSION_API_KEYS_0", "SESSION_API_KEY")
#: A dormant member's own init key (the server's `secret_key` until the init replaces it).
INIT_KEY_VARIABLE = "OH_SECRET_KEY"
#: The claim's on-claim request: the agent server's deferred init (`InitRequest` is the body).
INIT = WarmUpRequest(
    "/api/init", method="POST", body="{}", env_headers={"X-Init-API-Key": INIT_KEY_VARIABLE}
)
#: Seconds an init may take (its services start then: conversations, bash, VSCode's token).
INIT_TIMEOUT = 60.0


def why_not_pooled(host_port: int | None, enable_gpu: bool) -> str | None:
    """Why a workspace with these fields cannot come from a pool (None: it can)."""
    if host_port is not None:
        return f"host_port={host_port} is fixed (a warm member's port is chosen at its creation)"
    if enable_gpu:
        return "enable_gpu (dockpool makes no device requests)"
    return None


def forwarded(
    forward_env: Iterable[str], environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The caller's values of `forward_env`, as `docker run -e` would pass them, without the
    session-key variables (the session's key is delivered at the claim)."""
    return {
        key: environ[key]
        for key in forward_env
        if key in environ and key not in SESSION_KEY_VARIABLES
    }


def volume_map(volumes: Iterable[str]) -> dict[str, str]:
    """`docker run -v` strings ("source:target[:mode]") as a spec's volumes (source -> target)."""
    mapped = {}
    for volume in volumes:
        source, sep, target = volume.partition(":")
        if not sep or not source or not target:
            raise ValueError(f"volume {volume!r} is not source:target[:mode]")
        mapped[source] = target
    return mapped


def workspace_spec(
    image: str,
    *,
    forward_env: Iterable[str],
    volumes: Iterable[str],
    extra_ports: bool,
    network: str | None,
    image_config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> ContainerSpec:
    """The pool-member spec for `DockerWorkspace(server_image=image, ...)`: a dormant agent
    server, probed at `/ready`, initialised with the session's keys at its claim."""
    ports = [AGENT_PORT] + ([VSCODE_PORT] if extra_ports else [])
    check = image_healthcheck(image_config) or http_probe(AGENT_PORT, "/ready")
    return ContainerSpec(
        image=image,
        command=["--host", "0.0.0.0", "--port", str(AGENT_PORT)],
        environment={**forwarded(forward_env, environ), "OH_DEFERRED_INIT": "true"},
        labels={"dockpool-openhands.kind": "sdk-workspace"},
        ports=ports,
        volumes=volume_map(volumes),
        network=network,
        healthcheck=liveness(check),
        readiness=Readiness(
            port=AGENT_PORT,
            path="/ready",
            interval=0.05,
            timeout=2.0,
            on_claim=INIT,
            on_claim_timeout=INIT_TIMEOUT,
        ),
        port_host_ip="127.0.0.1",
        random_env=[INIT_KEY_VARIABLE],
    )
