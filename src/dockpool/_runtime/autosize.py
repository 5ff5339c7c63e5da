"""The pool's target size: the floor an operator sets, and self-sizing above it.

`[sandbox] container_pool_size` (or `resize`) is the floor; with `max_pool_size` the target
follows the claim rate x the warm-up time (`dockpool._core.sizing`), fed by this process's
claims, claims other processes of the pool make (a ready member renamed away by someone else;
another process's cold start, seen by its `dockpool.origin=cold` label), and the warm-up
times of the members this process made. Every change of the target is logged with its reason
and announced by `pool_resized(old, new, reason)`; the upkeep then grows or shrinks the pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from loguru import logger

from dockpool import signals
from dockpool._core.sizing import Retarget, Sizer, SizingPolicy
from dockpool._runtime.state import PoolState


class AutoSize:
    """Owns `state.target`: every change of it goes through here."""

    def __init__(
        self, state: PoolState, upkeep: Any, sender: Callable[[], Any]
    ) -> None:  # upkeep: an Upkeep (shrink, top_up); typed loosely to avoid an import cycle
        self.state = state
        self.upkeep = upkeep
        self.sender = sender
        self._lock = threading.Lock()
        self.floor = state.target
        self.sizer = Sizer(self._policy(), state.clock())

    def _policy(self) -> SizingPolicy:
        config = self.state.config
        return SizingPolicy(
            floor=self.floor, ceiling=config.max_pool_size, cap=config.max_containers
        )

    @property
    def enabled(self) -> bool:
        return self.state.config.max_pool_size is not None

    def set_floor(self, floor: int) -> None:
        """A new size from the operator (config or `resize`): the floor, and the target."""
        with self._lock:
            self.floor = floor
            change = self.sizer.set_policy(self._policy(), self.state.clock())
            if change is not None:
                change = Retarget(change.old, change.new, "resize")
        self._apply(change)
        self.upkeep.shrink()
        self.upkeep.top_up()

    def refresh(self) -> None:
        """The config's bounds changed (max_pool_size, max_containers)."""
        with self._lock:
            change = self.sizer.set_policy(self._policy(), self.state.clock())
        self._apply(change)

    def claimed(self, hit: bool) -> None:
        """A claim was served here or elsewhere (`hit`: from the pool, else a cold start)."""
        if not self.enabled:
            return
        with self._lock:
            change = self.sizer.claimed(self.state.clock(), hit=hit)
        self._apply(change)

    def warmed(self, seconds: float) -> None:
        with self._lock:
            self.sizer.warmed(seconds)
            self.state.warmup = self.sizer.warmup  # the refill's yield to claims follows it

    def tick(self) -> None:
        """Decay, when due (the reconciler calls this at `next_deadline`)."""
        with self._lock:
            change = self.sizer.tick(self.state.clock())
        self._apply(change)

    def next_deadline(self) -> float | None:
        with self._lock:
            return self.sizer.next_tick() if self.enabled else None

    def _apply(self, change: Retarget | None) -> None:
        if change is None:
            return
        state = self.state
        with state.lock:
            state.target = change.new
            state.changed.notify_all()
        logger.info(
            "pool {}: size {} -> {} ({})", state.name, change.old, change.new, change.reason
        )
        signals.send(
            "pool_resized", self.sender(), old=change.old, new=change.new, reason=change.reason
        )
        if change.new < change.old:
            self.upkeep.shrink()
        else:
            self.upkeep.top_up()
