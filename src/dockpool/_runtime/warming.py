"""A claim that finds no ready member waits for one that is warming, rather than cold-starting.

A member that is already starting or warming (the upkeep's refill, made after an earlier
claim) is ready sooner than a container created now would be: it has done part of the same
boot. A cold start beside it adds a boot the machine must pay for, and on a small machine,
where boots compete for the cores, every boot slows the others: a batch of claims that cold-
starts while refills boot pays for both (measured with benchmarks/sdk_workspace.py). So a
claim waits for a warming member, if one is warming that no other waiting claim counts on,
for about as long as a warm-up takes (`PoolState.warmup`, at least `_MIN_WAIT`); then it claims
it the usual way, or, if none became ready by then (it died, or took too long), it cold-starts.
"""

from __future__ import annotations

import threading
import time

from dockpool._core import machine as m
from dockpool._runtime.claims import claim_from_pool
from dockpool._runtime.executor import Executor
from dockpool._runtime.lease import Lease

#: Seconds a claim waits at least for a warming member (when no warm-up was measured yet).
_MIN_WAIT = 5.0
_WARMING = (m.State.STARTING, m.State.WARMING)


def _warming(ex: Executor) -> int:
    """Members of the current spec on their way to ready that no claim reserved (under lock)."""
    state = ex.state
    return sum(
        1
        for mem in state.table
        if mem.state in _WARMING
        and mem.reserved_for is None
        and mem.fingerprint == state.fingerprint
    )


def claim_warming(
    ex: Executor,
    session: str,
    started: float,
    timeout: float,
    cancel: threading.Event | None = None,
    payload: str | None = None,
) -> Lease | None:
    """Wait for a warming member and claim it; None (the caller cold-starts) if no warming
    member is left for this claim, or none became ready within `timeout` (or about a warm-up)."""
    state = ex.state
    with state.lock:
        if _warming(ex) <= state.warming_waiters:
            return None  # none warming for this claim: each waiting claim counts on one
        state.warming_waiters += 1
        deadline = time.monotonic() + min(timeout, max(_MIN_WAIT, state.warmup))
    try:
        while True:
            with state.lock:
                state.changed.wait_for(  # a member this claim could take (not one reserved)
                    lambda: (
                        state.table.pick_for_claim(state.fingerprint) is not None
                        or state.closing
                        or time.monotonic() >= deadline
                    ),
                    timeout=max(0.0, deadline - time.monotonic()),
                )
            if state.closing or (cancel is not None and cancel.is_set()):
                return None
            lease = claim_from_pool(ex, session, started, cancel, payload)
            if lease is not None:
                return lease
            with state.lock:
                if time.monotonic() >= deadline or _warming(ex) < state.warming_waiters:
                    return None
    finally:
        with state.lock:
            state.warming_waiters -= 1
