"""What a new config changes for a running pool, sorted by how it can be applied."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from dockpool._core.config import PoolConfig

#: Settings applied to a running pool at once.
LIVE_KEYS = (
    "size", "max_containers", "create_concurrency", "max_age", "ready_timeout", "resync_interval",
    "refill_hold", "max_pool_size", "metrics",
)  # fmt: skip
#: Settings that need a restart: the pool's name is its identity on the engine (labels, names).
RESTART_KEYS = ("name",)


@attrs.frozen
class ConfigChange:
    """What differs between two configs, sorted by how it can be applied."""

    live: tuple[str, ...] = ()  # applied at once (size resizes the pool)
    spec: bool = False  # new members use the new spec; unclaimed members of the old one retire
    restart: tuple[str, ...] = ()  # ignored until `dockpool run` restarts; reported

    @property
    def empty(self) -> bool:
        return not (self.live or self.spec or self.restart)


def diff(old: PoolConfig, new: PoolConfig) -> ConfigChange:
    """Classify the differences between the running config and a newly read one."""
    return ConfigChange(
        live=tuple(k for k in LIVE_KEYS if getattr(old, k) != getattr(new, k)),
        spec=old.spec != new.spec,
        restart=tuple(k for k in RESTART_KEYS if getattr(old, k) != getattr(new, k)),
    )
