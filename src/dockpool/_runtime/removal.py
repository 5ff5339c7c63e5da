"""Removing an unclaimed member: holding its lock, by its member name, once the engine
confirmed that this name is still its container's (see locks.py: a claim renames a member only
holding its lock, so no claim can take it meanwhile)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loguru import logger

from dockpool._core import machine as m
from dockpool._core.errors import ContainerNotFoundError, DockerError
from dockpool._core.machine import ContainerId

if TYPE_CHECKING:
    from dockpool._runtime.executor import Executor


def remove(ex: Executor, member: m.Member) -> None:
    """Remove an unclaimed member, holding its lock (no claim can rename it meanwhile), by
    its member name once the engine confirmed that this name is still its container's: one
    renamed since (by anyone) is not removed, nor another container that took the name."""
    cid = member.container_id
    if cid is None:
        return
    try:
        hand = ex.locks.claim_hand(member.name)
    except DockerError as exc:
        logger.warning("removing {}: {} (retried at the next resync)", member.name, exc)
        return
    if hand is None:  # a claim elsewhere holds it: it is renamed, or let go, soon
        logger.debug("removing {}: locked by another process; retried soon", member.name)
        ex.state.resync_soon()
        ex.wake()
        return
    outcome: m.Event = m.Destroyed()
    try:
        if hand.lost or _named(ex, member.name) != cid or not ex.api.remove(member.name):
            outcome = m.Renamed(ex.api.inspect(cid).name)  # renamed, or 404: gone
    except ContainerNotFoundError:
        pass
    except DockerError as exc:
        logger.warning("removing {} failed: {} (retried at the next resync)", member.name, exc)
        return
    finally:
        ex.locks.release(hand)
    ex.apply(member.key, outcome)


def _named(ex: Executor, name: str) -> ContainerId | None:
    try:
        return ex.api.inspect(name).id
    except ContainerNotFoundError:
        return None
