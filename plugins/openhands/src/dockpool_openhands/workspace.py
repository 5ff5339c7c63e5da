"""`PooledDockerWorkspace`: the SDK's `DockerWorkspace`, served from a pool of warm, dormant
agent servers.

    from dockpool_openhands import PooledDockerWorkspace

    with PooledDockerWorkspace(server_image="ghcr.io/openhands/agent-server:1.58.2-python") as ws:
        print(ws.execute_command("echo ok").stdout)

A drop-in: the same fields, the same use, the same operations. Its construction claims a warm
agent server instead of `docker run` + polling `/health`: the member is renamed to
`agent-server-<uuid4>` (the stock name), and its session's keys (a fresh `session_api_keys`
and `secret_key`) reach it at the claim through `POST /api/init`, before it is handed over;
a member that does not take them is discarded and the next one tried. A miss is a cold start
through the pool, handed over once it answers. `cleanup()` removes the workspace's container
(the stock `--rm` does the same).

One pool per distinct container spec (image, forwarded environment, volumes, ports, network):
every workspace of the process shares it, and so do other processes on the same engine (an
evaluation that runs its tasks in worker processes): dockpool's processes share a pool of one
name. Its warm members are removed when the last process using it exits (`atexit`; a SIGTERM
is turned into a normal exit when nothing else handles it; a SIGKILLed process's members are
adopted or removed by the next one). `pool_size` (default `DOCKPOOL_POOL_SIZE`, else 2) sets
the pool's size; 0 is the stock workspace. A workspace a pool cannot serve (a fixed
`host_port`, `enable_gpu`) is started the stock way (see `sdk_spec`).
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing
import os
import secrets
import signal
import sys
import threading
import uuid
from typing import Any

import docker
from openhands.workspace import DockerWorkspace
from pydantic import Field, PrivateAttr

from dockpool import ContainerSpec, DockpoolError, Lease, PoolConfig
from dockpool_openhands.pool import SandboxPool
from dockpool_openhands.probes import docker_image_config
from dockpool_openhands.registry import pool_name
from dockpool_openhands.sdk_spec import (
    AGENT_PORT,
    SESSION_KEY_VARIABLES,
    VSCODE_PORT,
    why_not_pooled,
    workspace_spec,
)

_logger = logging.getLogger(__name__)


def _default_size() -> int:
    return int(os.environ.get("DOCKPOOL_POOL_SIZE", "2"))


class PooledDockerWorkspace(DockerWorkspace):
    """`DockerWorkspace` whose container comes from a pool of warm, dormant agent servers."""

    pool_size: int = Field(
        default_factory=_default_size,
        ge=0,
        description="Warm agent servers kept for workspaces of this spec (0: the stock "
        "workspace). Default: DOCKPOOL_POOL_SIZE, else 2.",
    )
    pool_name: str = Field(
        default="sdk", description="Pool names are <pool_name>-<spec fingerprint>."
    )

    _lease: Lease | None = PrivateAttr(default=None)
    _pool: SandboxPool | None = PrivateAttr(default=None)

    def _start_container(self, image: str, context: Any) -> None:
        why = why_not_pooled(self.host_port, self.enable_gpu) if self.pool_size else "pool_size=0"
        if why is not None:
            _logger.info("workspace of %s: no pool (%s); started with docker run", image, why)
            super()._start_container(image, context)
            return
        self._image_name = image
        pool = POOLS.pool_for(self._spec(image), self.pool_size, self.pool_name)
        name = f"agent-server-{uuid.uuid4()}"
        key = os.environ.get(SESSION_KEY_VARIABLES[0]) or os.environ.get(SESSION_KEY_VARIABLES[1])
        key = key or secrets.token_urlsafe(32)
        init = {"session_api_keys": [key], "secret_key": secrets.token_urlsafe(32)}
        lease = pool.claim(name, timeout=self.health_check_timeout, payload=json.dumps(init))
        self._lease, self._pool, self._container_id = lease, pool, lease.container_id
        self.host_port = lease.ports[AGENT_PORT]
        if not self.host:
            object.__setattr__(self, "host", f"http://127.0.0.1:{self.host_port}")
        object.__setattr__(self, "api_key", key)
        _logger.info("workspace %s from pool %s in %.2f s (%s)", name, pool.name, lease.seconds,
                     "warm" if lease.from_pool else "cold start")  # fmt: skip
        if self.detach_logs:
            self._logs_thread = threading.Thread(target=self._stream_docker_logs, daemon=True)
            self._logs_thread.start()
        super(DockerWorkspace, self).model_post_init(context)  # RemoteWorkspace's

    def _spec(self, image: str) -> ContainerSpec:
        client = docker.from_env()
        try:
            image_config = docker_image_config(client, image)
        finally:
            client.close()
        return workspace_spec(
            image,
            forward_env=self.forward_env,
            volumes=self.volumes,
            extra_ports=self.extra_ports,
            network=self.network,
            image_config=image_config,
        )

    @property
    def vscode_port(self) -> int | None:
        """The host port of the container's VSCode port (with `extra_ports`), if published."""
        return self._lease.ports.get(VSCODE_PORT) if self._lease is not None else None

    def cleanup(self) -> None:
        """Remove this workspace's container (a pooled one: the session is over; `cleanup_image`
        is left to the stock workspace: the pool's warm members run that image)."""
        lease, pool = self._lease, self._pool
        if lease is None or pool is None:
            super().cleanup()
            return
        self._stop_logs.set()
        if self._logs_thread is not None and self._logs_thread.is_alive():
            self._logs_thread.join(timeout=2)
        self._lease = self._container_id = None
        try:
            pool.release(lease.name)
        except DockpoolError:  # the pool is closed (the process is ending): directly, by id
            _remove(lease.container_id, lease.name)


def _remove(container_id: str, name: str) -> None:
    client = docker.from_env()
    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.DockerException as exc:
        _logger.warning("removing workspace %s failed: %s", name, exc)
    finally:
        client.close()


class Pools:
    """The process's pools of workspaces, by spec; closed when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, ContainerSpec], SandboxPool] = {}
        self._hooked = False

    def pool_for(self, spec: ContainerSpec, size: int, prefix: str = "sdk") -> SandboxPool:
        """The running pool for `spec`, started (and warming) on first use. Raises
        DockpoolError if it cannot start (a missing image, an engine that does not answer)."""
        with self._lock:
            pool = self._pools.get((prefix, spec))
            if pool is not None and pool.started:
                return pool
            name = pool_name(prefix, spec)
            pool = SandboxPool(spec, PoolConfig(spec=spec, size=size, name=name), name).start()
            self._pools[(prefix, spec)] = pool
            if not self._hooked:
                atexit.register(self.close_all)
                _exit_on_sigterm()
                self._hooked = True
            return pool

    def close_all(self, timeout: float = 30.0) -> None:
        """Close every pool: the last process of a pool removes its warm members."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            try:
                pool.close(timeout=timeout)
            except Exception as exc:  # the other pools close all the same
                _logger.warning("closing pool %s failed: %s", pool.name, exc)


def _exit_on_sigterm() -> None:
    """A program that did not set a SIGTERM handler ends on SIGTERM without running `atexit`:
    make that signal a normal exit (status 143), so the pools are left as on Ctrl-C. Not in a
    `multiprocessing` child: its pool ends its workers with SIGTERM and expects them to die on
    the spot (one that exits holding the pool's queue lock hangs the others); a worker's
    presence ends with it, and the program's other processes clean up after it."""
    if threading.current_thread() is not threading.main_thread():
        return
    if multiprocessing.parent_process() is not None:
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


#: The process's pools of SDK workspaces.
POOLS = Pools()
