"""`ContainerPool`: the public face of the runtime, usable from threads and from asyncio.

pool = ContainerPool(spec, size=3, name="demo")
pool.start()                      # checks the engine and the image, then warms in the background
pool.wait_until_full(timeout=60)
lease = pool.claim("session-1")   # or: await pool.aclaim("session-1")
pool.close()                      # hands the upkeep on, or (last process) removes unclaimed members

Several processes may run a pool of one name on one engine: they share its members (see
peers.py for who does the upkeep, locks.py for why a member goes to exactly one claimer).
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
from loguru import logger

from dockpool import signals
from dockpool._adapters.api import EngineApi
from dockpool._adapters.config_watch import ConfigWatcher
from dockpool._adapters.docker_api import DockerAdapter
from dockpool._adapters.event_stream import DockerEventSource, EventSource
from dockpool._core.config import PoolConfig
from dockpool._core.config_change import ConfigChange
from dockpool._core.endpoint import Endpoint
from dockpool._core.errors import (
    ConfigError,
    DockpoolError,
    PoolClosedError,
)
from dockpool._core.spec import POOL_LABEL, ContainerSpec
from dockpool._core.timeouts import Timeouts
from dockpool._runtime import reload
from dockpool._runtime.backoff import Backoff
from dockpool._runtime.claims import check_name
from dockpool._runtime.lease import Lease, PoolStats
from dockpool._runtime.metrics import MetricsEndpoint
from dockpool._runtime.observe import Observer
from dockpool._runtime.reload import apply_config
from dockpool._runtime.runtime import Runtime
from dockpool._runtime.state import Lifecycle
from dockpool._runtime.status import process_status
from dockpool._runtime.workers import cancellable_in_own_thread


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
        refill_hold: float = 0.0,
        max_pool_size: int | None = None,
        metrics: Endpoint | None = None,
        docker_url: str | None = None,
        adapter: EngineApi | None = None,
        event_source: EventSource | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeouts: Timeouts | None = None,
    ) -> None:
        self._config = PoolConfig(
            spec=spec,
            size=size,
            name=name,
            max_containers=max_containers,
            create_concurrency=create_concurrency,
            max_age=max_age,
            ready_timeout=ready_timeout,
            resync_interval=resync_interval,
            refill_hold=refill_hold,
            max_pool_size=max_pool_size,
            metrics=metrics,
        )
        self._docker_url = docker_url
        self._adapter = adapter
        self._event_source = event_source
        self._backoff = backoff or Backoff(base=0.5, cap=30.0, clock=clock)
        self._clock = clock
        self._timeouts = timeouts or Timeouts()
        self._rt: Runtime | None = None
        self._lifecycle = Lifecycle.NEW
        self._watchers: list[ConfigWatcher] = []
        #: this process's token on the engine (names its presence and hands)
        self.token = secrets.token_hex(4)
        #: claims by outcome, their latency, recent events (for `status()` and metrics)
        self.observer = Observer(self)
        #: where this process serves metrics and status (`[dockpool.metrics]`)
        self.metrics_endpoint = MetricsEndpoint(name, self.status)

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
        """The configuration in force: its size is the floor (config or `resize`); with
        `max_pool_size` the target above it is `stats().size`."""
        rt = self._rt
        return rt.state.config.with_size(rt.autosize.floor) if rt else self._config

    @property
    def fingerprint(self) -> str:
        """The spec's fingerprint with the image resolved (empty before `start`)."""
        return self._rt.state.fingerprint if self._rt else ""

    @property
    def started(self) -> bool:
        return self._lifecycle is Lifecycle.RUNNING

    @property
    def leader(self) -> bool:
        """True while this process does the pool's upkeep (see `dockpool._runtime.peers`)."""
        return self._rt is not None and self._rt.peers.leader

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ContainerPool:
        """Check the engine and the image, join the pool on the engine, warm in the background.

        Raises DaemonUnavailableError if the engine cannot be reached and ImageNotFoundError if
        the image is missing; nothing is started then.
        """
        if self._lifecycle in (Lifecycle.CLOSING, Lifecycle.CLOSED):
            raise PoolClosedError(f"pool {self.name} was closed; make a new one")
        if self._rt is not None:
            return self
        cfg = self._config
        api = self._adapter or DockerAdapter(self._docker_url)
        source = self._event_source or DockerEventSource({POOL_LABEL: cfg.name}, self._docker_url)
        rt = Runtime.open(
            cfg, api, source, self._backoff, self._clock, self.token, self, self._timeouts
        )
        self._rt = rt
        self._lifecycle = rt.state.lifecycle = Lifecycle.RUNNING
        self.observer.connect()
        self.metrics_endpoint.apply(cfg.metrics)
        rt.run()
        role = "upkeep leader" if rt.peers.leader else "follower"
        logger.info("pool {}: started as {} ({}), target size {} ({})",
                    cfg.name, role, self.token, cfg.size, cfg.spec.image)  # fmt: skip
        return self

    def _running(self) -> Runtime:
        if self._rt is None or self._lifecycle is not Lifecycle.RUNNING:
            raise PoolClosedError(
                f"pool {self.name} is not running (call start(), not after close())"
            )
        return self._rt

    def wait_until_full(self, timeout: float = 60.0) -> None:
        """Block until the target number of members is ready; PoolTimeoutError after `timeout`."""
        self._running().wait_until_full(timeout)

    def claim(
        self, session_name: str, *, timeout: float | None = None, payload: str | None = None
    ) -> Lease:
        """Rename a ready member to `session_name` and hand it over; cold-start when none is ready.

        Thread-safe, and safe across processes sharing the pool. NameInUseError if the name is
        taken (nothing is touched then); ClaimError if neither the pool nor a cold start could
        serve it (the message says why). `payload`: the body of the spec's on-claim request
        (`Readiness.on_claim`) for this session, e.g. its keys, as JSON text.
        """
        return self._claim(session_name, timeout, payload=payload)

    def _claim(
        self,
        session: str,
        timeout: float | None,
        cancel: threading.Event | None = None,
        payload: str | None = None,
    ) -> Lease:
        rt = self._running()
        check_name(session)
        try:
            return rt.serve(session, timeout, cancel, payload)
        except DockpoolError as exc:
            signals.send("claim_failed", self, session=session, reason=str(exc))
            raise

    def try_claim(self, session_name: str, *, payload: str | None = None) -> Lease | None:
        """Like `claim`, but only from the pool: None (and nothing created) when none is ready.

        For hosts that have a cold path of their own and want to take it themselves. Hit or
        miss, refill creates then wait `refill_hold` s: the session's start, or the host's own
        cold start, gets the machine first.
        """
        rt = self._running()
        check_name(session_name)
        return rt.try_serve(session_name, payload)

    async def aclaim(
        self, session_name: str, *, timeout: float | None = None, payload: str | None = None
    ) -> Lease:
        """`claim` for asyncio hosts: runs in a thread of its own, never blocks the event loop.

        If the awaiting task is cancelled, the claim stops before its rename if it can; a
        container renamed for it all the same is removed (it was never handed to anyone).
        """
        job = functools.partial(self._claim, session_name, timeout, payload=payload)
        rt = self._running()
        return await cancellable_in_own_thread(job, f"dockpool-{self.name}-claim", rt.undelivered)

    def lease_for(self, session_name: str) -> Lease | None:
        """The lease of this pool's running container named `session_name`, rebuilt from the
        engine (None if there is none): how a host takes over a sandbox whose claim was
        interrupted (its process died after the rename, before the lease was returned).
        Raises DockerError if the engine cannot be asked. See `dockpool._runtime.recovery`."""
        check_name(session_name)
        return self._running().take_over(session_name)

    def release(self, session_name: str) -> bool:
        """Remove this pool's container named `session_name` on its host's behalf (a sandbox
        the host does not want, e.g. after an interrupted claim); True if one was removed."""
        check_name(session_name)
        return self._running().release(session_name)

    def resize(self, size: int) -> None:
        """Change the target size: growing creates members, shrinking retires the surplus."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"pool size must be an integer >= 0, got {size!r}")
        self._running().autosize.set_floor(size)

    def apply_config(self, config: PoolConfig) -> ConfigChange:
        """Apply a new config to the running pool (see `dockpool._runtime.reload` for what
        changes live); raises before changing anything if a new image cannot be resolved."""
        rt = self._running()
        change, effective = apply_config(rt, config)
        if "metrics" in change.live:
            self.metrics_endpoint.apply(effective.metrics)
        return change

    def watch_config(self, path: str | Path) -> ConfigWatcher:
        """Watch `path` and apply every valid edit; an invalid one is logged and ignored.

        The watcher is stopped by `close()`. Errors go to the log and to `config_rejected`.
        """
        self._running()
        watcher = reload.watcher(path, self.apply_config, self, f"dockpool-{self.name}-watcher")
        self._watchers.append(watcher)
        return watcher.start()

    def status(self) -> dict[str, Any]:
        """What `dockpool status` shows of this pool (plain data; see `_runtime/status.py`):
        members with state, age, health and spec; sizes and caps; claims by outcome, hit rate
        and latency histogram; recent events and failures."""
        return process_status(self)

    def stats(self) -> PoolStats:
        """A snapshot of the pool's counters."""
        if self._rt is None:
            return PoolStats(self._config.size, 0, 0, 0, 0, 0, 0, 0, 0, 0, False, 0, 0)
        return self._rt.stats()

    def close(self, timeout: float = 30.0) -> None:
        """Leave the pool within `timeout`: stop listening, end every thread, remove this
        process's presence and hands; the last process of the pool also removes every
        unclaimed member. Claimed containers keep running."""
        rt = self._rt
        if rt is None or self._lifecycle is not Lifecycle.RUNNING:
            self._lifecycle = Lifecycle.CLOSED
            return
        self._lifecycle = Lifecycle.CLOSING
        for watcher in self._watchers:
            watcher.stop(timeout=min(2.0, timeout))
        self.metrics_endpoint.close()
        ok = rt.close(timeout)
        self._lifecycle = Lifecycle.CLOSED
        self.observer.disconnect()
        logger.info("pool {}: closed{}", self.name, "" if ok else " (some calls still running)")

    def __enter__(self) -> ContainerPool:
        return self.start() if self._rt is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
