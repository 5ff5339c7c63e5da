"""`PooledDockerSandboxServiceInjector`: selected with one environment variable,

    OH_SANDBOX_KIND=dockpool_openhands.PooledDockerSandboxServiceInjector

The app server reads `OH_SANDBOX_KIND` as a dotted class path, imports it, and fills the
injector's fields from `OH_SANDBOX_<FIELD>` (so the stock fields, e.g.
`OH_SANDBOX_MAX_NUM_SANDBOXES`, work as before, and the pool's are `OH_SANDBOX_POOL_SIZE`,
`OH_SANDBOX_POOL_CONFIG`, ...). Note that with `_KIND` set, the legacy `SANDBOX_*` variables
(`SANDBOX_HOST_PORT`, `SANDBOX_VOLUMES`, ...) are not applied: use `OH_SANDBOX_HOST_PORT`,
`OH_SANDBOX_MOUNTS`, ...

A new service is injected per request; the pools live in the module-level registry. The first
injection starts the default sandbox spec's pool, so it warms before the first conversation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import fields
from pathlib import Path

from fastapi import Request
from openhands.app_server.sandbox.docker_sandbox_service import (
    DockerSandboxService,
    DockerSandboxServiceInjector,
)
from openhands.app_server.sandbox.sandbox_service import SandboxService
from openhands.app_server.services.injector import InjectorState
from pydantic import Field

from dockpool_openhands.registry import REGISTRY, RETRY_AFTER, PoolSettings
from dockpool_openhands.sandbox_service import PooledDockerSandboxService

_logger = logging.getLogger(__name__)


class PooledDockerSandboxServiceInjector(DockerSandboxServiceInjector):
    """The stock Docker sandbox injector, handing out `PooledDockerSandboxService`s."""

    pool_size: int = Field(
        default=2,
        ge=0,
        description=(
            "Warm sandboxes to keep per sandbox spec (0 disables the pool). Warm ones count "
            "against max_num_sandboxes. Configure via OH_SANDBOX_POOL_SIZE."
        ),
    )
    pool_config: str | None = Field(
        default=None,
        description=(
            "Path of a dockpool config.toml. When set, its [sandbox] container_pool_size, "
            "[dockpool] name, limits and [dockpool.healthcheck] replace the pool_* fields and "
            "edits apply live; its container keys (image, command, ...) are ignored: the "
            "sandbox spec defines the container. Configure via OH_SANDBOX_POOL_CONFIG."
        ),
    )
    pool_name: str = Field(
        default="openhands",
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$",
        description=(
            "Pool name (labels and names of warm containers: dockpool-<name>-<spec>-...). "
            "Configure via OH_SANDBOX_POOL_NAME."
        ),
    )
    pool_max_age: float = Field(
        default=0.0,
        ge=0,
        description="Replace a warm sandbox after this many seconds (0: never).",
    )

    pool_refill_hold: float = Field(
        default=3.0,
        ge=0,
        description=(
            "After a claim, refills wait this many seconds (bounded), so that the "
            "conversation's start gets the machine before a new agent server boots beside it. "
            "Configure via OH_SANDBOX_POOL_REFILL_HOLD."
        ),
    )

    pool_cold_starts: bool = Field(
        default=True,
        description=(
            "On a miss (no warm sandbox ready), the pool cold-starts the sandbox and hands it "
            "over once its agent server answers, and refills wait for it. False: OpenHands' "
            "own cold path, whose start task fails a server that misses the startup grace. "
            "Configure via OH_SANDBOX_POOL_COLD_STARTS."
        ),
    )

    pool_warm_up: bool = Field(
        default=True,
        description=(
            "A warm sandbox counts as ready once its agent server has run a first bash "
            "command and loaded its skills, as a new conversation does (false: once it "
            "answers /ready). Configure via OH_SANDBOX_POOL_WARM_UP."
        ),
    )

    pool_metrics: str | None = Field(
        default=None,
        description=(
            "host:port where each pool serves Prometheus metrics (/metrics) and its status "
            "(/status, read by `dockpool status --url`), e.g. 127.0.0.1:9464; unset: none. "
            "With several workers, the first to bind serves it. "
            "Configure via OH_SANDBOX_POOL_METRICS."
        ),
    )

    def pool_settings(self) -> PoolSettings | None:
        """The pool's settings; None (the stock service) for size 0 without a config file."""
        if self.pool_size == 0 and not self.pool_config:
            return None
        return PoolSettings(
            size=self.pool_size,
            name=self.pool_name,
            config_path=Path(self.pool_config) if self.pool_config else None,
            max_age=self.pool_max_age,
            refill_hold=self.pool_refill_hold,
            pool_cold_starts=self.pool_cold_starts,
            warm_up=self.pool_warm_up,
            metrics=self.pool_metrics,
        )

    async def inject(
        self, state: InjectorState, request: Request | None = None
    ) -> AsyncGenerator[SandboxService, None]:
        stock = super().inject(state, request)
        try:
            service = await anext(stock)
            assert isinstance(service, DockerSandboxService)
            pooled = PooledDockerSandboxService(
                **{f.name: getattr(service, f.name) for f in fields(service)},
                pool_settings=self.pool_settings(),
                registry=REGISTRY,
            )
            await _warm_default_pool(pooled)
            yield pooled
        finally:
            await stock.aclose()


_last_warm = -RETRY_AFTER


async def _warm_default_pool(service: PooledDockerSandboxService) -> None:
    """Start the default spec's pool on the first injection (and retry now and then if it
    could not start), so it warms before the first conversation asks for a sandbox."""
    global _last_warm
    if service.pool_settings is None or REGISTRY.has_pools():
        return
    if time.monotonic() - _last_warm < RETRY_AFTER:
        return
    _last_warm = time.monotonic()
    try:
        await service.prepare_pool()
    except Exception as exc:  # never fail a request for the pool's sake
        _logger.warning(f"dockpool: cannot start the default pool yet: {exc}")
    if REGISTRY.has_pools():
        REGISTRY.drain_on_sigterm()  # (nothing if the lifespan service drains them)
