"""`PooledDockerRuntime`: OpenHands 0.62's `DockerRuntime`, attached to a warm pool member.

Selected in OpenHands' config.toml with `[core] runtime = "dockpool_openhands.PooledDockerRuntime"`
(0.62 imports a dotted runtime name with `get_impl`). dockpool's settings live in dockpool's
own config.toml, named by the environment variable `DOCKPOOL_CONFIG` (OpenHands' `[sandbox]`
rejects unknown keys); without it the pool keeps 2 members.

`connect()` first tries the container `openhands-runtime-<sid>` by name; so before it does, a
ready member is renamed to that name, and the stock `connect` attaches to it. With none ready
(or an existing container of that name, or a setting a member cannot reproduce) the stock path
runs unchanged (`init_container`, a cold start).

A member is what `init_container` would run for the config, with two differences that only
matter to the host: its ports are fixed container ports (the first of each of OpenHands' ranges)
published on Docker-chosen host ports, and per-session values (`OPENHANDS_SESSION_ID` and the
session's extra env vars) are not in the container's environment (the latter reach the shell
through `setup_initial_env`, as for every runtime). After attaching, the runtime reads the
host ports back from the container, so its API, VSCode and app URLs are right either way.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import docker
from openhands.core.config import OpenHandsConfig
from openhands.core.logger import DEBUG
from openhands.runtime.impl.docker.docker_runtime import (
    APP_PORT_RANGE_1,
    APP_PORT_RANGE_2,
    EXECUTION_SERVER_PORT_RANGE,
    VSCODE_PORT_RANGE,
    DockerRuntime,
)
from openhands.runtime.plugins import PluginRequirement, VSCodeRequirement
from openhands.runtime.utils.command import (
    DEFAULT_MAIN_MODULE,
    get_action_execution_server_startup_command,
)
from openhands.utils.async_utils import call_sync_from_async

from dockpool import ContainerSpec, DockpoolError
from dockpool_openhands.probes import http_probe, readiness
from dockpool_openhands.registry import REGISTRY, PoolSettings
from dockpool_openhands.v0_volumes import sandbox_volumes

#: Container ports of a member: the first port of each of DockerRuntime's ranges.
EXEC_PORT = EXECUTION_SERVER_PORT_RANGE[0]
VSCODE_PORT = VSCODE_PORT_RANGE[0]
APP_PORTS = (APP_PORT_RANGE_1[0], APP_PORT_RANGE_2[0])
#: The environment variable naming dockpool's config.toml.
CONFIG_ENV = "DOCKPOOL_CONFIG"

#: The plugin's own records (stdlib, like dockpool's once forwarded: see `logs`). Lines about
#: one session's runtime go through `Runtime.log` instead, with OpenHands' other runtime lines.
_logger = logging.getLogger(__name__)


def pool_settings() -> PoolSettings:
    """Defaults, or dockpool's config.toml named by $DOCKPOOL_CONFIG (hot reloaded)."""
    path = os.environ.get(CONFIG_ENV)
    return PoolSettings(name="openhands-v0", config_path=Path(path).resolve() if path else None)


def sandbox_env(config: OpenHandsConfig) -> dict[str, str]:
    """The session-independent part of a runtime's initial env: SANDBOX_ENV_<X> as <X>, and
    ENABLE_AUTO_LINT (as 0.62's `Runtime.__init__` starts it)."""
    env = {
        key.removeprefix("SANDBOX_ENV_"): value
        for key, value in os.environ.items()
        if key.startswith("SANDBOX_ENV_")
    }
    if config.sandbox.enable_auto_lint:
        env["ENABLE_AUTO_LINT"] = "true"
    return env


class PooledDockerRuntime(DockerRuntime):
    """`DockerRuntime` whose `connect` attaches to a warm member when the pool has one."""

    _host_app_ports: dict[int, int] | None = None

    # -- the pool's spec -----------------------------------------------------------------

    @classmethod
    def member_command(
        cls, config: OpenHandsConfig, plugins: list[PluginRequirement], port: int, main_module: str
    ) -> list[str]:
        """The action-execution server's command line (as `init_container` builds it)."""
        return get_action_execution_server_startup_command(
            server_port=port, plugins=plugins, app_config=config, main_module=main_module
        )

    def get_action_execution_server_startup_command(self) -> list[str]:
        return self.member_command(
            self.config, self.plugins, self._container_port, self.main_module
        )

    @classmethod
    def member_spec(
        cls,
        config: OpenHandsConfig,
        plugins: list[PluginRequirement],
        image: str | None,
        main_module: str = DEFAULT_MAIN_MODULE,
    ) -> ContainerSpec | None:
        """The pool-member spec for runtimes of this config; None if a member cannot be one."""
        sandbox = config.sandbox
        volumes = sandbox_volumes(config)
        if (
            not image
            or volumes is None
            or sandbox.use_host_network
            or sandbox.enable_gpu
            or sandbox.docker_runtime_kwargs
            or sandbox.vscode_port  # a fixed host port: one container only
        ):
            return None
        vscode_enabled = any(isinstance(p, VSCodeRequirement) for p in plugins)
        env = sandbox_env(config)
        env.update(
            port=str(EXEC_PORT),
            PYTHONUNBUFFERED="1",
            VSCODE_PORT=str(VSCODE_PORT),
            APP_PORT_1=str(APP_PORTS[0]),
            APP_PORT_2=str(APP_PORTS[1]),
            PIP_BREAK_SYSTEM_PACKAGES="1",
        )
        if config.debug or DEBUG:
            env["DEBUG"] = "true"
        env.update(sandbox.runtime_startup_env_vars)
        return ContainerSpec(
            image=image,
            command=cls.member_command(config, plugins, EXEC_PORT, main_module),
            entrypoint=[],
            environment=env,
            ports=[EXEC_PORT, *APP_PORTS, *([VSCODE_PORT] if vscode_enabled else [])],
            volumes=volumes,
            working_dir="/openhands/code/",
            healthcheck=http_probe(EXEC_PORT, "/alive"),
            readiness=readiness(EXEC_PORT, "/alive"),
            port_host_ip=sandbox.runtime_binding_address,
        )

    @classmethod
    def default_plugins(
        cls, config: OpenHandsConfig, headless_mode: bool
    ) -> list[PluginRequirement]:
        """The plugins a session of the default agent asks for (as the server makes them)."""
        import openhands.agenthub  # noqa: F401  (registers the agents)
        from openhands.controller.agent import Agent

        plugins = list(Agent.get_cls(config.default_agent).sandbox_plugins)
        return plugins if headless_mode else [*plugins, VSCodeRequirement()]

    # -- class hooks: start and drain --------------------------------------------------------

    @classmethod
    def setup(cls, config: OpenHandsConfig, headless_mode: bool = False) -> None:
        """Start the pool for the default agent's sessions (when the runtime image is known;
        otherwise it starts at the first `connect`, after OpenHands has built the image)."""
        super().setup(config, headless_mode)
        REGISTRY.reopen()
        try:
            plugins = cls.default_plugins(config, headless_mode)
            spec = cls.member_spec(config, plugins, config.sandbox.runtime_container_image)
            if spec is not None:
                REGISTRY.pool_for(spec, pool_settings())
        except Exception as exc:  # the server must start anyway; pools start lazily then
            _logger.warning("dockpool: pool not started at setup: %s", exc)

    @classmethod
    def teardown(cls, config: OpenHandsConfig) -> None:
        """Remove every unclaimed member (claimed runtimes are left to OpenHands)."""
        REGISTRY.close_all()
        super().teardown(config)

    # -- connect: claim, then the stock attach -----------------------------------------------

    async def connect(self) -> None:
        if not self.attach_to_existing:
            await call_sync_from_async(self._claim_member)
        await super().connect()

    def _claim_member(self) -> None:
        try:
            self.docker_client.containers.get(self.container_name)
            return  # the session's container exists: the stock attach takes it
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            return
        if self.runtime_container_image is None:  # the stock connect would build it next
            self.maybe_build_runtime_container_image()  # type: ignore[no-untyped-call]
        spec = self.member_spec(
            self.config, self.plugins, self.runtime_container_image, self.main_module
        )
        pool = REGISTRY.pool_for(spec, pool_settings()) if spec is not None else None
        if pool is None:
            return
        try:
            lease = REGISTRY.try_claim(pool, self.container_name)
        except DockpoolError as exc:
            self.log("warning", f"dockpool: claim failed, cold start instead: {exc}")
            return
        if lease is not None:
            self.log(
                "info", f"dockpool: warm runtime from pool {pool.name} in {lease.seconds:.3f} s"
            )

    def _attach_to_container(self) -> None:
        super()._attach_to_container()
        assert self.container is not None
        self.container.reload()
        published = host_ports(self.container.attrs)
        host = published.get(self._container_port)
        if host is None or host == self._container_port:
            return  # a container of the stock path: host ports are the container ports
        self._host_port = host
        self.api_url = f"{self.config.sandbox.local_runtime_url}:{host}"
        if self._vscode_port in published:
            self._vscode_port = published[self._vscode_port]
        self._host_app_ports = {p: published[p] for p in self._app_ports if p in published}

    def resume(self) -> None:
        """Restart the container; a member's host ports are re-chosen by Docker on start."""
        if not self.container:
            raise RuntimeError("Container not initialized")
        self.container.start()
        self._attach_to_container()
        self.wait_until_alive()

    @property
    def web_hosts(self) -> dict[str, int]:
        if not self._host_app_ports:
            return super().web_hosts
        addr = os.environ.get("DOCKER_HOST_ADDR", "localhost")
        return {f"http://{addr}:{host}": port for port, host in self._host_app_ports.items()}


def host_ports(attrs: dict[str, Any]) -> dict[int, int]:
    """Container port -> published host port (TCP), from `docker inspect` data."""
    raw = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    ports: dict[int, int] = {}
    for key, bindings in raw.items():
        port, _, proto = key.partition("/")
        if proto == "tcp" and bindings:
            ports[int(port)] = int(bindings[0]["HostPort"])
    return ports
