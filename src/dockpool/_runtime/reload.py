"""Applying a new configuration to a running pool (hot reload).

What can change live, and how (documented for operators in config.toml):
- `container_pool_size`: the pool grows (creates) or shrinks (retires the surplus: members not
  yet ready first, newest first, then the ready ones that have been warm longest).
- `max_containers`, `create_concurrency`, `max_age`, `ready_timeout`, `resync_interval`: at once.
- the container spec (image, command, environment, ports, health check ...): new members are
  made of the new spec; unclaimed members of the old one are retired and replaced. The new
  image must exist, or the whole reload is rejected and the old config stays.
- `name`: the pool's identity on the engine; a change is reported and needs a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
from loguru import logger

from dockpool import signals
from dockpool._adapters.config_watch import ConfigWatcher
from dockpool._core.config import PoolConfig
from dockpool._core.config_change import ConfigChange, diff
from dockpool._core.errors import DockpoolError
from dockpool._runtime.runtime import Runtime
from dockpool._runtime.state import Recipe


def apply_config(rt: Runtime, new: PoolConfig) -> tuple[ConfigChange, PoolConfig]:
    """Apply what can be applied of `new`; return the change and the config now in force.

    Raises a DockerError (e.g. ImageNotFoundError) before changing anything if a new spec's
    image cannot be resolved. A new size is the floor of self-sizing (`AutoSize`).
    """
    state = rt.state
    with state.lock:
        old = state.config.with_size(rt.autosize.floor)
    change = diff(old, new)
    if change.empty:
        return change, old
    recipe = None
    if change.spec:
        image_id = rt.api.resolve_image(new.spec.image)
        recipe = Recipe.of(new.spec, image_id)
    for key in change.restart:
        logger.warning(
            "{}: {} changed from {!r} to {!r}: this needs a restart; not applied",
            new.path or "config",
            key,
            getattr(old, key),
            getattr(new, key),
        )
    effective = attrs.evolve(new, **{key: getattr(old, key) for key in change.restart})
    with state.lock:
        state.config = attrs.evolve(effective, size=old.size)
    rt.executor.creates.resize(effective.create_concurrency)
    if recipe is not None and recipe.fingerprint == state.fingerprint:
        state.use(recipe)  # nothing a member is made of (readiness.check_at_claim): members stay
    elif recipe is not None:
        state.use(recipe)
        if rt.upkeep.active():
            with state.lock:
                outdated = state.table.outdated(recipe.fingerprint)
            logger.info(
                "new spec {}: retiring {} members of the old one", recipe.fingerprint, len(outdated)
            )
            rt.upkeep.retire(outdated, "spec changed")
    if "size" in change.live:
        rt.autosize.set_floor(effective.size)
    if {"max_pool_size", "max_containers"} & set(change.live):
        rt.autosize.refresh()
    rt.reconciler.wake()  # resync_interval and the timers apply at once
    signals.send("config_changed", rt.executor.sender, config=effective, old=old)
    return change, effective


def watcher(
    path: str | Path, apply: Callable[[PoolConfig], ConfigChange], sender: object, name: str
) -> ConfigWatcher:
    """A watcher of `path` that applies every valid edit with `apply` (logging what changed)
    and reports an invalid one (the log and `config_rejected`); not started yet."""

    def rejected(error: DockpoolError) -> None:
        logger.error("{} (the pool keeps its last good config)", error)
        signals.send("config_rejected", sender, error=error)

    def applied(config: PoolConfig) -> None:
        try:
            change = apply(config)
        except DockpoolError as exc:
            rejected(exc)
            return
        if not change.empty:
            logger.info("{}: applied (changed: {})", config.path, describe(change))

    return ConfigWatcher(path, applied, rejected, name=name)


def describe(change: ConfigChange) -> str:
    """A short list of what changed, for the log."""
    parts = list(change.live) + (["spec"] if change.spec else [])
    parts += [f"{key} (needs a restart)" for key in change.restart]
    return ", ".join(parts)
