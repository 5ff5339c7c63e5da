"""`ContainerPool`: the public face of the runtime, usable from threads and from asyncio.

pool = ContainerPool(spec, size=3, name="demo")
pool.start()                      # checks the engine and the image, then warms in the background
pool.wait_until_full(timeout=60)
lease = pool.claim("session-1")   # or: await pool.aclaim("session-1")
pool.close()                      # removes unclaimed members; claimed ones keep running
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
from loguru import logger

from dockpool import signals
from dockpool._adapters.config_watch import ConfigWatcher
from dockpool._adapters.docker_api import DockerAdapter
from dockpool._adapters.event_stream import DockerEventSource, EventSource
from dockpool._core import machine as m
from dockpool._core.config import ConfigChange, PoolConfig
from dockpool._core.errors import (
    ConfigError,
    DockerError,
    DockpoolError,
    PoolClosedError,
    PoolTimeoutError,
)
from dockpool._core.spec import POOL_LABEL, ContainerSpec
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.claims import check_name, claim_from_pool, cold_start
from dockpool._runtime.engine import Engine, Recipe
from dockpool._runtime.lease import Lease, PoolStats
from dockpool._runtime.listener import Listener
from dockpool._runtime.reconciler import Reconciler
from dockpool._runtime.reload import apply_config, describe


class ContainerPool:
    """Keeps `size` containers of `spec` pre-started and healthy; hands one over per claim.

    `docker_url` selects the engine (default: DOCKER_HOST or the local socket). `adapter`,
    `event_source`, `backoff` and `clock` are seams for tests and embedders: a fake engine, a
    scripted event stream, a back-off without real waits, a fake clock.
    """

    def __init__(
        self,
        spec: ContainerSpec,
        size: int = 0,
        name: str = "default",
        *,
        max_containers: int = 16,
        create_concurrency: int = 2,
        max_age: float = 0.0,
        ready_timeout: float = 120.0,
        resync_interval: float = 60.0,
        docker_url: str | None = None,
        adapter: DockerAdapter | None = None,
        event_source: EventSource | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config = PoolConfig(
            spec=spec,
            size=size,
            name=name,
            max_containers=max_containers,
            create_concurrency=create_concurrency,
            max_age=max_age,
            ready_timeout=ready_timeout,
            resync_interval=resync_interval,
        )
        self._docker_url = docker_url
        self._adapter = adapter
        self._event_source = event_source
        self._backoff = backoff or Backoff(base=0.5, cap=30.0, clock=clock)
        self._clock = clock
        self._config = config
        self._engine: Engine | None = None
        self._reconciler: Reconciler | None = None
        self._listener: Listener | None = None
        self._closed = False
        self._watchers: list[ConfigWatcher] = []

    @classmethod
    def from_config(cls, config: PoolConfig, **options: Any) -> ContainerPool:
        """A pool built from a `PoolConfig` (e.g. `PoolConfig.from_toml(path)`)."""
        fields = attrs.asdict(config, recurse=False)
        fields.pop("path")
        return cls(**fields, **options)

    # -- properties ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def config(self) -> PoolConfig:
        """The configuration in force (its size follows `resize`)."""
        engine = self._engine
        return self._config.with_size(engine.target) if engine else self._config

    @property
    def fingerprint(self) -> str:
        """The spec's fingerprint with the image resolved (empty before `start`)."""
        return self._engine.fingerprint if self._engine else ""

    @property
    def started(self) -> bool:
        return self._engine is not None and not self._closed

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ContainerPool:
        """Check the engine and the image, then warm members in the background; returns at once.

        Raises DaemonUnavailableError if the engine cannot be reached and ImageNotFoundError if
        the image is missing; nothing is started then.
        """
        if self._closed:
            raise PoolClosedError(f"pool {self.name} was closed; make a new one")
        if self._engine is not None:
            return self
        cfg = self._config
        adapter = self._adapter or DockerAdapter(self._docker_url)
        try:
            adapter.ping()
            image_id = adapter.resolve_image(cfg.spec.image)
        except DockerError:
            adapter.close()
            raise
        engine = Engine(cfg, adapter, self._backoff, self._clock)
        engine.sender = self
        engine.use(Recipe(cfg.spec, image_id, cfg.spec.fingerprint(image_id)))
        reconciler = Reconciler(engine)
        engine.wake = reconciler.wake
        source = self._event_source or DockerEventSource({POOL_LABEL: cfg.name}, self._docker_url)
        listener = Listener(
            source,
            on_event=reconciler.post_event,
            on_connect=lambda again: self._on_connect(reconciler, again),
            on_lost=self._on_lost,
            name=f"dockpool-{cfg.name}-listener",
        )
        self._engine, self._reconciler, self._listener = engine, reconciler, listener
        reconciler.start()
        listener.start()
        logger.info("pool {}: started, target size {} ({})", cfg.name, cfg.size, cfg.spec.image)
        return self

    def _on_connect(self, reconciler: Reconciler, again: bool) -> None:
        if again:
            logger.info("pool {}: event stream restored; resyncing", self.name)
            signals.send("stream_restored", self)
            engine = self._engine
            if engine is not None:  # creates that failed while the engine was away were not
                with engine.lock:  # the members' fault: refill at once, without back-off
                    engine.backoff.succeed()
        reconciler.request_resync()

    def _on_lost(self, reason: str, retry_in: float) -> None:
        logger.warning("pool {}: {}; reconnecting in {:.1f} s", self.name, reason, retry_in)
        signals.send("stream_lost", self, error=reason, retry_in=retry_in)

    def _running(self) -> Engine:
        if self._engine is None or self._closed:
            raise PoolClosedError(
                f"pool {self.name} is not running (call start(), not after close())"
            )
        return self._engine

    def wait_until_full(self, timeout: float = 60.0) -> None:
        """Block until the target number of members is ready; PoolTimeoutError after `timeout`."""
        engine = self._running()
        with engine.lock:
            full = engine.changed.wait_for(
                lambda: engine.table.count(m.State.READY) >= engine.target or engine.closing,
                timeout=timeout,
            )
        if not full:
            stats = self.stats()
            last = engine.counters.last_failure
            raise PoolTimeoutError(
                f"pool {self.name}: {stats.ready} of {stats.size} members ready after {timeout} s"
                + (f" (last failure: {last})" if last else "")
            )

    def claim(self, session_name: str, *, timeout: float | None = None) -> Lease:
        """Rename a ready member to `session_name` and hand it over; cold-start when none is ready.

        Thread-safe. NameInUseError if the name is taken (nothing is touched then); ClaimError
        if neither the pool nor a cold start could serve it (the message says why).
        """
        engine = self._running()
        check_name(session_name)
        started = time.perf_counter()
        lease = claim_from_pool(engine, session_name, started)
        if lease is not None:
            return lease
        assert self._reconciler is not None
        wait = engine.config.ready_timeout if timeout is None else timeout
        return cold_start(engine, self._reconciler, session_name, started, wait)

    def try_claim(self, session_name: str) -> Lease | None:
        """Like `claim`, but only from the pool: None (and nothing created) when none is ready.

        For hosts that have a cold path of their own and want to take it themselves.
        """
        engine = self._running()
        check_name(session_name)
        return claim_from_pool(engine, session_name, time.perf_counter())

    async def aclaim(self, session_name: str, *, timeout: float | None = None) -> Lease:
        """`claim` for asyncio hosts: runs in a worker thread, never blocks the event loop."""
        return await asyncio.to_thread(self.claim, session_name, timeout=timeout)

    def resize(self, size: int) -> None:
        """Change the target size: growing creates members, shrinking retires the surplus."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"pool size must be an integer >= 0, got {size!r}")
        engine = self._running()
        with engine.lock:
            old, engine.target = engine.target, size
            surplus = engine.table.surplus(size)
        if old != size:
            logger.info("pool {}: size {} -> {}", self.name, old, size)
            signals.send("pool_resized", self, old=old, new=size)
        engine.retire(surplus, "shrink")
        engine.top_up()

    def apply_config(self, config: PoolConfig) -> ConfigChange:
        """Apply a new config to the running pool (see `dockpool._runtime.reload` for what
        changes live); raises before changing anything if a new image cannot be resolved."""
        engine = self._running()
        change, effective = apply_config(engine, config)
        if "size" in change.live:
            self.resize(effective.size)
        return change

    def watch_config(self, path: str | Path) -> ConfigWatcher:
        """Watch `path` and apply every valid edit; an invalid one is logged and ignored.

        The watcher is stopped by `close()`. Errors go to the log and to `config_rejected`.
        """
        self._running()
        watcher = ConfigWatcher(
            path, self._on_config, self._on_config_error, name=f"dockpool-{self.name}-watcher"
        )
        self._watchers.append(watcher)
        return watcher.start()

    def _on_config(self, config: PoolConfig) -> None:
        try:
            change = self.apply_config(config)
        except DockpoolError as exc:
            self._on_config_error(exc)
            return
        if not change.empty:
            logger.info("{}: applied (changed: {})", config.path, describe(change))

    def _on_config_error(self, error: DockpoolError) -> None:
        logger.error("{} (the pool keeps its last good config)", error)
        signals.send("config_rejected", self, error=error)

    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters."""
        if self._engine is None:
            return PoolStats(self._config.size, 0, 0, 0, 0, 0, 0, 0, 0, 0, False, 0, 0)
        connects = self._listener.connects if self._listener else 0
        return self._engine.stats(reconnects=max(0, connects - 1))

    def close(self, timeout: float = 30.0) -> None:
        """Stop listening, remove every unclaimed member, end every thread; within `timeout`."""
        engine, reconciler, listener = self._engine, self._reconciler, self._listener
        if engine is None or self._closed:
            self._closed = True
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        for watcher in self._watchers:
            watcher.stop(timeout=min(2.0, timeout))
        with engine.lock:
            engine.closing = True
            engine.changed.notify_all()
        assert listener is not None and reconciler is not None
        listener.stop(timeout=min(5.0, timeout))
        reconciler.stop(timeout=min(5.0, timeout))
        engine.retire(list(engine.table), "close")
        with engine.lock:
            engine.changed.wait_for(
                lambda: all(mem.state is m.State.CLAIMING for mem in engine.table),
                timeout=max(0.0, deadline - time.monotonic()),
            )
        ok = engine.creates.stop(max(0.0, deadline - time.monotonic()))
        engine.sweep_unclaimed()
        ok = engine.removes.stop(max(0.0, deadline - time.monotonic())) and ok
        engine.adapter.close()
        logger.info("pool {}: closed{}", self.name, "" if ok else " (some calls still running)")

    def __enter__(self) -> ContainerPool:
        return self.start() if self._engine is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
