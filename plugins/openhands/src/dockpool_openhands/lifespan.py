"""`PooledAppLifespanService`: the pools live as long as the app server, whatever stops it.

    OH_LIFESPAN_KIND=dockpool_openhands.PooledAppLifespanService

OpenHands 1.x enters its lifespan service when the app starts and leaves it when the app stops.
uvicorn runs that shutdown on SIGTERM as on SIGINT, then restores the default SIGTERM handler
and raises the signal again, so the process ends without running `atexit` (exit status 143).
That is how `docker stop`, systemd and Kubernetes stop it. This service is OpenHands' own
(`OssAppLifespanService`: the database migrations), plus two steps:
- at start, the default sandbox spec's pool starts warming, so the first conversation after a
  restart is a pool hit. A pool that cannot start is logged and left to the first request,
  and the app starts all the same;
- at stop, every pool is drained: unclaimed members are removed, claimed sandboxes keep
  running. With several workers, each leaves its pools and the last one removes the members.

The atexit hook stays for hosts without this service. A SIGKILLed app server's members are
adopted (or removed) by the next start, as dockpool does for any pool.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from openhands.app_server.app_lifespan.oss_app_lifespan_service import OssAppLifespanService
from openhands.app_server.config import get_global_config
from starlette.datastructures import State

from dockpool_openhands.registry import REGISTRY
from dockpool_openhands.sandbox_injector import PooledDockerSandboxServiceInjector

_logger = logging.getLogger(__name__)


class PooledAppLifespanService(OssAppLifespanService):
    """OpenHands' lifespan, with the sandbox pools started at start and drained at stop."""

    warm_at_start: bool = True
    drain_timeout: float = 30.0

    async def __aenter__(self) -> PooledAppLifespanService:
        await super().__aenter__()  # type: ignore[no-untyped-call]
        REGISTRY.follows_app = True  # (no SIGTERM hook of the sandbox service's: see registry)
        if self.warm_at_start:
            await warm_default_pool()
        return self

    async def __aexit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        try:
            await asyncio.to_thread(REGISTRY.close_all, self.drain_timeout)
            _logger.info("dockpool: pools drained (unclaimed members removed)")
        finally:
            await super().__aexit__(exc_type, exc_value, traceback)  # type: ignore[no-untyped-call]


async def warm_default_pool() -> None:
    """Start the default sandbox spec's pool through the configured sandbox injector (its
    first injection does it); nothing if the injector is not dockpool's."""
    injector = get_global_config().sandbox
    if not isinstance(injector, PooledDockerSandboxServiceInjector):
        kind = type(injector).__name__
        _logger.warning(f"dockpool: the sandbox service is {kind}, not pooled: nothing to warm")
        return
    try:
        async with injector.context(State()):
            pass
    except Exception as exc:  # the app starts without a pool; the first request tries again
        _logger.warning(f"dockpool: cannot start the default pool at app start: {exc}")
