"""A pool made of the sandbox's spec: OpenHands defines the container, configs the rest.

`PoolSettings` are the pool's own knobs (from the injector's fields, 0.62's environment or a
dockpool config.toml); `SandboxPool` is a `ContainerPool` that keeps the sandbox's container
spec whatever a config (file) says about the container, and runs at `min(desired, cap)`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import attrs

from dockpool import ConfigChange, ConfigError, ContainerPool, ContainerSpec, Endpoint, PoolConfig
from dockpool_openhands import logs

_logger = logging.getLogger(__name__)


@attrs.frozen
class PoolSettings:
    """How big a pool is and how it runs; what its members are made of comes from OpenHands.

    With `config_path` (a dockpool config.toml), the file's `container_pool_size`, `name`,
    limits and `[dockpool.healthcheck]` are used instead, and edits to it apply live. Its
    container keys (image, command, environment, ports, ...) are ignored: the sandbox spec
    defines the container.
    """

    size: int = 2
    name: str = "openhands"
    #: On a miss, the pool cold-starts the sandbox itself and hands it over once its agent
    #: server answers (refills wait for it); False: OpenHands' own cold path, whose start
    #: task fails a server that misses the startup grace (15 s), as a burst on a small host does.
    pool_cold_starts: bool = True
    #: A member is ready once its agent server made a new conversation's first uses
    #: (v1_spec.WARM_UP); False: once it answers `/ready`.
    warm_up: bool = True
    config_path: Path | None = None
    #: "host:port" of the metrics and status endpoint (a config file's [dockpool.metrics]
    #: takes precedence); None: none
    metrics: str | None = None
    max_containers: int = 16
    create_concurrency: int = 2
    max_age: float = 0.0
    ready_timeout: float = 120.0
    resync_interval: float = 60.0
    #: after a claim, refills wait this long (within dockpool's bound): the conversation's
    #: start task and a cold start's boot get the machine before the refill's agent server
    refill_hold: float = 3.0

    def pool_config(self, spec: ContainerSpec) -> PoolConfig:
        """The config from these settings (before the file, if any, is read)."""
        return PoolConfig(
            spec=spec,
            size=self.size,
            name=self.name,
            max_containers=self.max_containers,
            create_concurrency=self.create_concurrency,
            max_age=self.max_age,
            ready_timeout=self.ready_timeout,
            resync_interval=self.resync_interval,
            refill_hold=self.refill_hold,
            metrics=self.metrics_endpoint(),
        )

    def metrics_endpoint(self) -> Endpoint | None:
        if not self.metrics:
            return None
        try:
            return Endpoint.parse(self.metrics)
        except ValueError as exc:
            raise ConfigError(f"OH_SANDBOX_POOL_METRICS: {exc}") from None


class SandboxPool(ContainerPool):
    """A pool whose members are always made of the sandbox's spec.

    Configs (from `apply_config`, hence from `watch_config` too) contribute the size, the
    limits and optionally a health check; their container spec and name are replaced by the
    sandbox's. `desired` is the configured size, `cap` an upper bound set by the host (e.g.
    OpenHands' `max_num_sandboxes`); the pool runs at `min(desired, cap)`.
    """

    def __init__(
        self, spec: ContainerSpec, config: PoolConfig, name: str, cap: int | None = None
    ) -> None:
        self.base_spec = spec
        self.desired = config.size
        self.cap = cap
        self._pool_name = name
        start = self.effective(config)
        super().__init__(
            start.spec,
            start.size,
            start.name,
            max_containers=start.max_containers,
            create_concurrency=start.create_concurrency,
            max_age=start.max_age,
            ready_timeout=start.ready_timeout,
            resync_interval=start.resync_interval,
            refill_hold=start.refill_hold,
            metrics=start.metrics,
        )

    def effective(self, config: PoolConfig) -> PoolConfig:
        """`config` with the sandbox's spec (keeping the file's health check) and the cap."""
        health = config.spec.healthcheck or self.base_spec.healthcheck
        size = config.size if self.cap is None else min(config.size, self.cap)
        spec = attrs.evolve(self.base_spec, healthcheck=health)
        return attrs.evolve(config, spec=spec, name=self._pool_name, size=size, path=None)

    def apply_config(self, config: PoolConfig) -> ConfigChange:
        ignored = ignored_keys(config.spec)
        if ignored:
            _logger.info(
                "pool %s: %s ignored: the sandbox spec defines the container",
                self._pool_name,
                ", ".join(ignored),
            )
        self.desired = config.size
        return super().apply_config(self.effective(config))

    def start(self) -> SandboxPool:
        """Start the pool (see `ContainerPool.start`), with dockpool's own log records going
        to the host's stdlib logging from now on (`logs.install`)."""
        logs.install()
        super().start()
        return self

    def set_cap(self, cap: int | None) -> None:
        """Bound the pool's size (None: no bound) and resize it if its target changes."""
        self.cap = cap
        target = self.desired if cap is None else max(0, min(self.desired, cap))
        if self.started and self.config.size != target:
            self.resize(target)


def ignored_keys(file_spec: ContainerSpec) -> list[str]:
    """Container keys a config file sets that a sandbox pool ignores (all but the image)."""
    plain = ContainerSpec(image=file_spec.image)
    skip = {"image", "healthcheck", "readiness"}
    return [
        f.name
        for f in attrs.fields(ContainerSpec)
        if f.name not in skip and getattr(file_spec, f.name) != getattr(plain, f.name)
    ]
