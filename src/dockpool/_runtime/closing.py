"""Leaving a pool: the order that loses nothing, and the last process's sweep.

Creates in flight land before a process steps down, so whichever process leaves last sees their
members. A closing process first steps down (its presence takes its leaving name: it no longer
leads, and no longer counts as staying), so of several closing at once at least the last sees
the others leaving and sweeps; its presence runs on until its removals are done, so its locks
stay its own meanwhile (peers.py). The sweep frees what gone processes left first (their hands
may hold the locks the removals need), then retires every unclaimed member, known or not, and
retries a removal that found a lock held. Claimed containers are never touched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger

from dockpool._core import machine as m
from dockpool._core.errors import DockerError
from dockpool._core.spec import POOL_LABEL, ROLE_LABEL, is_member_name
from dockpool._runtime.state import Lifecycle

if TYPE_CHECKING:
    from dockpool._runtime.runtime import Runtime

#: Seconds between the final sweep's retries of removals that found a lock held.
_SWEEP_RETRY = 2.0


def close(rt: Runtime, timeout: float) -> bool:
    """Leave the pool within `timeout`: stop listening and every thread, let the creates in
    flight land, step down, and, as the last process of the pool, sweep it; then leave."""
    state = rt.state
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    phases: list[tuple[str, float]] = []

    def done(phase: str) -> None:
        phases.append((phase, timeout - left()))

    with state.lock:
        state.lifecycle = Lifecycle.CLOSING
        state.changed.notify_all()
        # claims in flight end first (a cold start gives up on `closing`): each needs its rename
        # event, and its lock (a hand `leave` removes) until it has handed over or given up
        state.changed.wait_for(lambda: state.claims_in_flight == 0, timeout=left() / 2)
    done("claims")
    rt.listener.stop(timeout=min(5.0, timeout))
    rt.reconciler.stop(timeout=min(5.0, timeout))
    rt.executor.prober.stop(timeout=min(2.0, timeout))
    done("threads")
    rt.ahead.set_alone(False)  # (its let-go runs on the remove workers, joined below)
    # Creates in flight land before this process leaves (queued ones are dropped: closing),
    # so whichever process leaves last sees their members and removes them. Leaving first
    # let another process sweep an engine without them, and their members were nobody's.
    ok = rt.executor.creates.stop(left())
    done("creates")
    rt.peers.step_down()  # another process (if any) takes over the upkeep now; this
    try:  # one stays present (its locks its own) until its removals are done
        last = not rt.peers.others_alive()
    except DockerError as exc:
        logger.warning("pool {}: cannot see other processes ({}); leaving members", state.name, exc)
        last = False
    if last:
        _sweep(rt, left)
        done("sweep")
    ok = rt.executor.removes.stop(left()) and ok
    done("removes")
    rt.peers.leave()
    rt.locks.close()
    rt.api.close()
    with state.lock:
        state.lifecycle = Lifecycle.CLOSED
        left_over = len(state.table) if last else 0
    if not ok or left() <= 0 or left_over:
        logger.warning(
            "pool {}: close ran out of its {} s ({} members left; seconds into it: {})",
            state.name, timeout, left_over, ", ".join(f"{p} {s:.1f}" for p, s in phases),
        )  # fmt: skip
    return ok


def _sweep(rt: Runtime, left: Callable[[], float]) -> None:
    """The last process: free what gone processes left (their hands may hold the locks
    that removals need), then retire every unclaimed member, known or not, and wait for
    them (a removal that found a lock held is tried again)."""
    state = rt.state
    rt.sweeping = True
    _final_housekeeping(rt, left)
    try:
        views = rt.api.list({POOL_LABEL: state.name, ROLE_LABEL: "member"})
        views += [  # members of runs before roles were labelled
            v for v in rt.api.list({POOL_LABEL: state.name})
            if ROLE_LABEL not in v.labels
        ]  # fmt: skip
    except DockerError as exc:
        logger.warning("pool {}: final sweep failed: {}", state.name, exc)
        views = []
    for view in views:
        if is_member_name(state.name, view.name):
            rt.executor.discover(view)
    with state.lock:
        members = [mem for mem in state.table if mem.state is not m.State.CLAIMING]
    rt.upkeep.retire(members, "close")
    while True:  # removals run on the remove workers, each holding the member's lock
        with state.lock:
            done = state.changed.wait_for(
                lambda: all(mem.state is m.State.CLAIMING for mem in state.table),
                timeout=min(_SWEEP_RETRY, left()),
            )
            retiring = [mem for mem in state.table if mem.state is m.State.RETIRING]
        if done or left() <= 0:
            return
        rt.locks.repair()  # (a lock of ours that failed to go home holds a member)
        for mem in retiring:  # its removal found the lock held, or failed: again
            seen = m.Observed(status="running", health=None, name=mem.name)
            rt.executor.apply(mem.key, seen)


def _final_housekeeping(rt: Runtime, left: Callable[[], float]) -> None:
    """What gone processes left (their hands, dead presences), before a resync did; a
    process seen gone only just now may be alive, rejoining: its locks wait out the grace
    (peers.py), within close's timeout."""
    state = rt.state
    try:
        views = rt.api.list({POOL_LABEL: state.name})
        wait = min(rt.peers.departures.grace_left(views), left())
        if wait > 0:
            threading.Event().wait(wait)
            views = rt.api.list({POOL_LABEL: state.name})
        rt.upkeep.housekeep(rt.api, views, rt.peers.departures.gone(views), final=True)
    except DockerError as exc:
        logger.warning("pool {}: final housekeeping failed: {}", state.name, exc)
