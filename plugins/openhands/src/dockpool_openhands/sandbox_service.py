"""`PooledDockerSandboxService`: OpenHands' Docker sandbox service, served from a warm pool.

Only `start_sandbox` changes what happens: it renames a warm, healthy pool member (made with
exactly the arguments the stock service would use for that sandbox spec) to
`<container_name_prefix><sandbox_id>` and reports it RUNNING at once. With no ready member, the
pool cold-starts one for the sandbox and hands it over once its agent server answers (so the
start task's startup grace never fails it, and refills wait for it: see dockpool's "claims
first"); with `pool_cold_starts=False`, or no pool, or if that fails, it is the stock cold
path, `super().start_sandbox`. Everything else is read back from
the container by name, as the stock service does; unclaimed members are named
`dockpool-<pool>-...`, which never matches the service's prefix, so OpenHands never sees them.

`created_at` of a claimed sandbox is its claim time (see `registry`), so a fresh claim never
looks oldest to `pause_old_sandboxes`. Capacity: warm members count against
`max_num_sandboxes` (they are agent servers too): the pools hold at most
`max_num_sandboxes - running sandboxes` members and yield to real sandboxes. The running
sandboxes are counted from what the service does (`registry.running`: a start or a resume
runs one, a pause or a delete stops one), with a listing of the engine's containers now and
then, not per request.

The event loop is OpenHands': the service's own blocking work (a pool's start, the image
inspect that makes a spec, the count, the pools' resizing, reading a claimed container back)
runs in worker threads (`asyncio.to_thread`); a claim runs in a thread of dockpool's. The
stock service's own Docker calls (pause, resume, delete, search) stay as OpenHands makes them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import base62
from openhands.app_server.sandbox.docker_sandbox_service import DockerSandboxService
from openhands.app_server.sandbox.sandbox_models import SandboxInfo
from openhands.app_server.sandbox.sandbox_spec_models import SandboxSpecInfo, SandboxSpecInfoPage
from openhands.app_server.sandbox.sandbox_spec_service import (
    SandboxSpecService,
    resolve_sandbox_spec,
)

from dockpool import DockpoolError
from dockpool_openhands.probes import docker_image_config
from dockpool_openhands.registry import (
    MEMBER_PREFIX,
    REGISTRY,
    PoolRegistry,
    PoolSettings,
    SandboxPool,
)
from dockpool_openhands.v1_spec import poolable, sandbox_container_spec

_logger = logging.getLogger(__name__)


@dataclass
class PooledDockerSandboxService(DockerSandboxService):
    """`DockerSandboxService` + a pool. `pool_settings=None` is exactly the stock service."""

    pool_settings: PoolSettings | None = None
    registry: PoolRegistry = field(default=REGISTRY)

    # -- the pool ---------------------------------------------------------------------------

    async def prepare_pool(self, sandbox_spec_id: str | None = None) -> SandboxPool | None:
        """The pool for sandboxes of `sandbox_spec_id` (default: the default spec), started
        (warming in the background) if it was not; None when this service does not pool."""
        if self.pool_settings is None or self._why_not_pooled() is not None:
            return None
        sandbox_spec = await resolve_sandbox_spec(
            sandbox_spec_id, self.default_sandbox_spec_id, self.sandbox_spec_service, _logger
        )
        return await asyncio.to_thread(self._pool_for, sandbox_spec)

    def _why_not_pooled(self) -> str | None:
        reason = poolable(self)
        prefix = self.container_name_prefix
        overlaps = prefix.startswith(MEMBER_PREFIX) or MEMBER_PREFIX.startswith(prefix)
        if reason is None and overlaps:
            reason = f"container_name_prefix {prefix!r} could match warm members' names"
        return reason

    def _pool_for(self, sandbox_spec: SandboxSpecInfo) -> SandboxPool | None:
        """The pool for `sandbox_spec` (blocking: an image inspect, maybe the pool's start)."""
        assert self.pool_settings is not None
        image_config = docker_image_config(self.docker_client, sandbox_spec.id)
        if image_config is None:
            return None  # not on the engine (yet): the stock path pulls it
        warm_up = self.pool_settings.warm_up
        spec = sandbox_container_spec(self, sandbox_spec, dict(image_config), warm_up=warm_up)
        if not self.registry.has_pools():
            self._cap_pools()  # the first pool starts within the headroom
        return self.registry.pool_for(spec, self.pool_settings)

    async def _refresh_capacity(self, name: str, *, running: bool) -> int | None:
        """Note that the sandbox `name` runs now (`running`) or does not, then cap the pools at
        `max_num_sandboxes` minus the sandboxes running now; that number (None: unknown)."""
        if self.pool_settings is None:
            return None
        self.registry.running.note(name, running=running)
        if not self.registry.has_pools():
            return None
        return await asyncio.to_thread(self._cap_pools)

    def _cap_pools(self) -> int | None:
        """The blocking half of `_refresh_capacity`: the count (now and then a listing of the
        engine's containers: see `running`) and the pools' resizing."""
        try:
            running = self.registry.running.count(self.container_name_prefix, self._running_names)
        except Exception as exc:  # the next count tries again; the pools keep their size
            _logger.warning(f"dockpool: cannot count running sandboxes: {exc}")
            return None
        if running is not None:
            self.registry.set_headroom(self.max_num_sandboxes - running)
        return running

    def _running_names(self) -> list[str]:
        """Names of the containers Docker reports running (one cheap list: no inspect, no
        health probe)."""
        rows = self.docker_client.api.containers(filters={"status": "running"})
        return [str(name).lstrip("/") for row in rows for name in row.get("Names") or ()]

    def _read_container(self, container_id: str) -> _Container:
        """The container as the stock `_container_to_sandbox_info` reads it, read here
        (blocking) so that it makes no engine call of its own on the loop."""
        container = self.docker_client.containers.get(container_id)
        return _Container(
            str(container.id), container.name, container.status, container.attrs, container.image
        )

    # -- overrides --------------------------------------------------------------------------

    async def start_sandbox(
        self, sandbox_spec_id: str | None = None, sandbox_id: str | None = None
    ) -> SandboxInfo:
        """A warm member renamed to the sandbox's name; the stock cold start when none is."""
        resolved: list[SandboxSpecInfo] = []
        info = await self._start_from_pool(sandbox_spec_id, sandbox_id, resolved)
        if info is not None:
            return info
        if resolved:
            info = await self._stock_start(resolved[0], sandbox_id)
        else:
            info = await super().start_sandbox(sandbox_spec_id, sandbox_id)
        await self._refresh_capacity(info.id, running=True)
        return info

    async def _stock_start(self, spec: SandboxSpecInfo, sandbox_id: str | None) -> SandboxInfo:
        """The stock cold start for a spec the pool path has already resolved: OpenHands
        resolves it again, and is answered from this lookup rather than asking twice."""
        looked_up = self.sandbox_spec_service
        self.sandbox_spec_service = _AlreadyResolved(looked_up, spec)
        try:
            return await super().start_sandbox(spec.id, sandbox_id)
        finally:
            self.sandbox_spec_service = looked_up

    async def _start_from_pool(
        self,
        sandbox_spec_id: str | None,
        sandbox_id: str | None,
        resolved: list[SandboxSpecInfo],
    ) -> SandboxInfo | None:
        """A claimed member's info, or None (the cold path); the spec, once looked up, is
        appended to `resolved`."""
        if self.pool_settings is None:
            return None
        why_not = self._why_not_pooled()
        if why_not is not None:
            _logger.debug(f"dockpool: not pooling: {why_not}")
            return None
        request = (sandbox_spec_id, self.default_sandbox_spec_id, self.container_name_prefix)
        cold_here = self.pool_settings.pool_cold_starts
        if not cold_here and self.registry.known_empty(request):
            return None  # its pool has no ready member: the stock path as it is
        sandbox_spec = await resolve_sandbox_spec(
            sandbox_spec_id, self.default_sandbox_spec_id, self.sandbox_spec_service, _logger
        )
        resolved.append(sandbox_spec)
        pool = await asyncio.to_thread(self._pool_for, sandbox_spec)
        if pool is None:
            return None
        self.registry.remember(request, pool)
        if sandbox_id is None:
            sandbox_id = base62.encodebytes(os.urandom(16))
        name = f"{self.container_name_prefix}{sandbox_id}"
        try:
            if cold_here:
                lease = await self.registry.claim(pool, name)
            else:
                lease = await asyncio.to_thread(self.registry.try_claim, pool, name)
        except DockpoolError as exc:
            _logger.warning(f"dockpool: claim of {name} failed, OpenHands' cold start: {exc}")
            return None
        if lease is None:
            return None
        how = "from pool" if lease.from_pool else "cold-started by pool"
        _logger.info(f"dockpool: {name} {how} {pool.name} in {lease.seconds:.3f} s")
        # The stock service pauses down to max-1 before it starts one; the claimed sandbox
        # already runs (and is the newest), so the limit here is max. Warm members are capped
        # so that running + warm <= max, hence this is rarely over: count cheaply first, and
        # pay for pause_old_sandboxes (a search with a health probe per sandbox) only then.
        running = await self._refresh_capacity(lease.name, running=True)
        if running is None or running > self.max_num_sandboxes:
            await self.pause_old_sandboxes(self.max_num_sandboxes)
        container = await asyncio.to_thread(self._read_container, lease.container_id)
        info = await self._container_to_sandbox_info(container)
        assert info is not None
        return info

    async def _container_to_sandbox_info(self, container: Any) -> SandboxInfo | None:
        info = await super()._container_to_sandbox_info(container)
        if info is not None:
            claimed = self.registry.claimed_at(str(container.id))
            if claimed is not None:
                info.created_at = claimed
        return info

    async def resume_sandbox(self, sandbox_id: str) -> bool:
        resumed = await super().resume_sandbox(sandbox_id)
        await self._refresh_capacity(sandbox_id, running=resumed)
        return resumed

    async def pause_sandbox(self, sandbox_id: str) -> bool:
        paused = await super().pause_sandbox(sandbox_id)
        await self._refresh_capacity(sandbox_id, running=False)
        return paused

    async def delete_sandbox(self, sandbox_id: str) -> bool:
        deleted = await super().delete_sandbox(sandbox_id)
        if deleted:
            self.registry.forget(sandbox_id)
        await self._refresh_capacity(sandbox_id, running=False)
        return deleted


@dataclass(frozen=True)
class _Container:
    """What the stock `_container_to_sandbox_info` reads of a docker-py `Container`, read
    once: its `image` is an engine call each time it is read."""

    id: str
    name: str
    status: str
    attrs: Mapping[str, Any]
    image: Any


class _AlreadyResolved(SandboxSpecService):
    """`inner`, except that `spec` (looked up moments ago in this request) is not asked again."""

    def __init__(self, inner: SandboxSpecService, spec: SandboxSpecInfo) -> None:
        self._inner = inner
        self._spec = spec

    async def search_sandbox_specs(
        self, page_id: str | None = None, limit: int = 100
    ) -> SandboxSpecInfoPage:
        return await self._inner.search_sandbox_specs(page_id, limit)

    async def get_sandbox_spec(self, sandbox_spec_id: str) -> SandboxSpecInfo | None:
        if sandbox_spec_id == self._spec.id:
            return self._spec
        return await self._inner.get_sandbox_spec(sandbox_spec_id)

    async def get_default_sandbox_spec(self) -> SandboxSpecInfo:
        return await self._inner.get_default_sandbox_spec()
