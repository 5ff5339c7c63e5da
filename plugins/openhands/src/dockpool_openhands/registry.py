"""Pools that outlive a request: one per effective container spec, drained at shutdown.

OpenHands makes a new sandbox service (V1) or runtime (V0) per request or session, so the pools
live here, at module level (`REGISTRY`), keyed by the `ContainerSpec` a sandbox would be made
of. A spec that has no pool yet gets one on first use; a pool that cannot start (engine down,
image not on the engine yet) is retried after `RETRY_AFTER` seconds, and meanwhile every
sandbox takes OpenHands' own cold path.

Threads: starting a pool checks the engine and the image (seconds, on a busy engine), so
`pool_for` blocks; asyncio hosts call it in a worker thread. Starts run one at a time under a
lock of their own; the registry's lock guards its tables only, so the other calls (made on the
host's event loop too) never wait for a start.

Shutdown: the pools are drained by `PooledAppLifespanService` when the app stops. Without it
(`OH_LIFESPAN_KIND` not set), uvicorn ends on SIGTERM without running `atexit`, and the warm
members would be left running; so the sandbox service, at its first pool, chains a SIGTERM
handler of its own to uvicorn's (`drain_on_sigterm`): the pools are drained, then uvicorn shuts
down as it would have (a warning in the log says so). A SIGKILLed server's members are adopted
(or removed) by the next start.

Claim times: a claimed member's Docker `Created` time is the pool-fill time, and labels cannot
change after creation, so the registry remembers when each member was claimed (container ID ->
UTC time) for as long as the process lives. It is the sandbox's `created_at` for OpenHands.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
from collections.abc import Hashable, Iterator
from datetime import UTC, datetime

from dockpool import (
    ContainerPool,
    ContainerSpec,
    DockpoolError,
    Lease,
    PoolClosedError,
    PoolConfig,
)
from dockpool_openhands.pool import PoolSettings, SandboxPool, ignored_keys
from dockpool_openhands.running import RunningSandboxes

__all__ = ["MEMBER_PREFIX", "REGISTRY", "PoolRegistry", "PoolSettings", "SandboxPool", "pool_name"]

_logger = logging.getLogger(__name__)

#: Seconds before a spec whose pool failed to start is tried again.
RETRY_AFTER = 30.0
#: Member names are `dockpool-<pool>-<token>` (dockpool's own prefix).
MEMBER_PREFIX = "dockpool-"


class PoolRegistry:
    """The process's pools, by spec; claim times; shutdown. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the tables below; never held across an engine call
        self._starting = threading.Lock()  # held by the one pool start under way
        self._pools: dict[ContainerSpec, SandboxPool] = {}
        self._failed: dict[ContainerSpec, float] = {}
        self._claims: dict[str, tuple[str, datetime]] = {}  # container ID -> (name, claimed at)
        self._closed = False
        self._hooked = False
        self._headroom: int | None = None
        self._routes: dict[Hashable, SandboxPool] = {}
        #: True when `PooledAppLifespanService` runs: it drains the pools when the app stops
        self.follows_app = False
        self._sigterm_hooked = False
        #: the sandboxes running now, by name (the V1 service's headroom)
        self.running = RunningSandboxes()

    def pools(self) -> Iterator[SandboxPool]:
        with self._lock:
            return iter(list(self._pools.values()))

    def pool_for(self, spec: ContainerSpec, settings: PoolSettings) -> SandboxPool | None:
        """The running pool for `spec`, started on first use; None when it cannot run now.

        Blocking while it starts one (asyncio hosts: call it in a worker thread); a second
        caller for a spec being started waits for that start, in its own thread."""
        with self._lock:
            settled, pool = self._settled(spec)
        if settled:
            return pool
        with self._starting:
            with self._lock:
                settled, pool = self._settled(spec)
                cap = self._room_left()
            if settled:
                return pool
            try:
                pool = _start_pool(spec, settings, cap)
            except DockpoolError as exc:
                _logger.warning(
                    "no pool for %s (cold starts until it can start): %s", spec.image, exc
                )
                with self._lock:
                    self._failed[spec] = time.monotonic()
                return None
            with self._lock:
                closed = self._closed
                if not closed:
                    self._failed.pop(spec, None)
                    self._pools[spec] = pool
                    if not self._hooked:
                        atexit.register(self.close_all)
                        self._hooked = True
        if closed:  # `close_all` ran while it started (and did not wait for it)
            pool.close()
            return None
        self._share_headroom()  # (a `set_headroom` during the start did not see this pool)
        return pool

    def _settled(self, spec: ContainerSpec) -> tuple[bool, SandboxPool | None]:
        """(True, the answer) when `spec` needs no start now, else (False, None). Call with
        the lock held."""
        if self._closed:
            return True, None
        pool = self._pools.get(spec)
        if pool is not None:
            return True, pool if pool.started else None
        failed = self._failed.get(spec)
        if failed is not None and time.monotonic() - failed < RETRY_AFTER:
            return True, None
        return False, None

    def try_claim(self, pool: ContainerPool, name: str) -> Lease | None:
        """Rename a ready member of `pool` to `name`; None when it has none ready (or is closed),
        so that the caller takes OpenHands' own cold path."""
        try:
            if not pool.started:
                return None
            lease = pool.try_claim(name)
        except PoolClosedError:
            return None
        if lease is not None:
            self._record(lease)
        return lease

    async def claim(self, pool: ContainerPool, name: str) -> Lease | None:
        """A ready member of `pool` renamed to `name`, or else `pool`'s own cold start, handed
        over once it answers (up to the pool's ready_timeout); None when the pool is closed.
        DockpoolError when neither could serve it."""
        try:
            if not pool.started:
                return None
            lease = await pool.aclaim(name)
        except PoolClosedError:
            return None
        self._record(lease)
        return lease

    def _record(self, lease: Lease) -> None:
        with self._lock:
            self._claims[lease.container_id] = (lease.name, datetime.now(UTC))

    def claimed_at(self, container_id: str) -> datetime | None:
        """When this process claimed the container (None: not claimed here)."""
        entry = self._claims.get(container_id)
        return entry[1] if entry else None

    def forget(self, name: str) -> None:
        """Drop the claim record of the container named `name` (it was deleted)."""
        with self._lock:
            for cid in [c for c, (n, _) in self._claims.items() if n == name]:
                del self._claims[cid]

    def set_headroom(self, headroom: int | None) -> None:
        """Let the pools hold at most `headroom` members in all (None: no bound), oldest first.

        A pool started later gets what its elders leave."""
        with self._lock:
            self._headroom = None if headroom is None else max(0, headroom)
        self._share_headroom()

    def _share_headroom(self) -> None:
        with self._lock:
            left = self._headroom
            pools = list(self._pools.values())
        for pool in pools:
            pool.set_cap(left)
            if left is not None:
                left -= min(pool.desired, left)

    def _room_left(self) -> int | None:
        """Headroom not taken by the existing pools (call with the lock held)."""
        if self._headroom is None:
            return None
        taken = sum(
            min(p.desired, p.cap if p.cap is not None else p.desired) for p in self._pools.values()
        )
        return max(0, self._headroom - taken)

    def has_pools(self) -> bool:
        with self._lock:
            return bool(self._pools)

    def remember(self, request: Hashable, pool: SandboxPool) -> None:
        """Note that sandboxes asked for as `request` come from `pool`."""
        with self._lock:
            self._routes[request] = pool

    def known_empty(self, request: Hashable) -> bool:
        """True if `request` is known to come from a pool with no ready member right now, so
        the caller can take its cold path without working out the spec again."""
        with self._lock:
            pool = self._routes.get(request)
        return pool is not None and pool.started and pool.stats().ready == 0

    def drain_on_sigterm(self, timeout: float = 15.0) -> None:
        """Drain the pools on SIGTERM, then let the handler that was there (uvicorn's) run, when
        nothing else drains them (no `PooledAppLifespanService`). Main thread only; once."""
        with self._lock:
            if self._sigterm_hooked or self.follows_app:
                return
            self._sigterm_hooked = True
        if threading.current_thread() is not threading.main_thread():
            _logger.warning("dockpool: cannot hook SIGTERM outside the main thread; set "
                            "OH_LIFESPAN_KIND=dockpool_openhands.PooledAppLifespanService, or "
                            "warm members outlive a SIGTERM of the server")  # fmt: skip
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: object) -> None:
            self.close_all(timeout=timeout)
            if callable(previous):
                previous(signum, frame)  # type: ignore[arg-type]
            elif previous in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.raise_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)
        _logger.warning(
            "dockpool: OH_LIFESPAN_KIND is not dockpool_openhands.PooledAppLifespanService: the "
            "pools start with the first request and are drained by a SIGTERM hook of their own "
            "(set it, to warm at start and drain with the app's lifespan)"
        )

    def close_all(self, timeout: float = 30.0) -> None:
        """Remove every unclaimed member of every pool (claimed ones keep running). Idempotent.
        A pool whose start is under way is closed by that start, once started."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
            self._routes.clear()
        for pool in pools:
            try:
                pool.close(timeout=timeout)
            except Exception as exc:  # shutdown must go on with the other pools
                _logger.warning("closing pool %s failed: %s", pool.name, exc)

    def reopen(self) -> None:
        """Accept new pools again after `close_all` (tests, or a host that restarts in-process)."""
        with self._lock:
            self._closed = False
            self._failed.clear()


def pool_name(settings_name: str, spec: ContainerSpec) -> str:
    """`<name>-<spec fingerprint>`: stable across restarts (so crash leftovers are adopted or
    removed) and distinct per spec (pools of one name must share one spec)."""
    return f"{settings_name[:32]}-{spec.fingerprint()[:8]}"


def _start_pool(spec: ContainerSpec, settings: PoolSettings, cap: int | None) -> SandboxPool:
    config = settings.pool_config(spec)
    ignored: list[str] = []
    if settings.config_path is not None:
        try:
            config = PoolConfig.from_toml(settings.config_path)
            ignored = ignored_keys(config.spec)
        except DockpoolError as exc:
            _logger.error("%s (using the built-in pool settings until it is fixed)", exc)
    pool = SandboxPool(spec, config, pool_name(config.name, spec), cap)
    if ignored:
        _logger.info(
            "pool %s: %s ignored: the sandbox spec defines the container",
            pool.name,
            ", ".join(ignored),
        )
    pool.start()
    if settings.config_path is not None:
        try:
            pool.watch_config(settings.config_path)
        except Exception as exc:  # the pool runs on; only hot reload is missing
            _logger.error("pool %s: cannot watch %s: %s", pool.name, settings.config_path, exc)
    _logger.info("pool %s: %s warm members of %s", pool.name, pool.config.size, spec.image)
    return pool


#: The process's registry: V1 services and V0 runtimes share it.
REGISTRY = PoolRegistry()
