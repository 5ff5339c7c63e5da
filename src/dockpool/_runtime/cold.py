"""A cold start: a member created for one claim, when the pool has none ready (nor warming).

A cold start is a member too: `reserved_for` the session from birth, its lock taken before its
create, so no other claimer or upkeep can take it; it is created and started in the claimer's
thread, the machine follows it to ready on its own events, and it is claimed like any other.
If anything fails, the lock is let go and the container is an ordinary unclaimed member that
upkeep removes; nothing is left under the session's name.
"""

from __future__ import annotations

import secrets
import threading
import time

from loguru import logger

from dockpool import signals
from dockpool._core import machine as m
from dockpool._core.errors import (
    ClaimError,
    ContainerNotFoundError,
    DockerError,
    NameInUseError,
)
from dockpool._core.spec import member_name
from dockpool._runtime.claims import claim_member, handed_over, lease_of
from dockpool._runtime.executor import Executor
from dockpool._runtime.lease import Lease
from dockpool._runtime.locks import Hand

#: While a cold start waits for its member to be ready, it re-reads it this often (events can
#: be lost; this wait is the only place dockpool looks twice).
_COLD_RECHECK = 2.0


def cold_start(
    ex: Executor,
    session: str,
    started: float,
    timeout: float,
    cancel: threading.Event | None,
    payload: str | None = None,
) -> Lease:
    """Create, start and wait for a member reserved for `session`, then claim it."""
    state = ex.state
    deadline = time.monotonic() + timeout
    _name_free(ex, session)
    key = m.MemberKey(secrets.token_hex(6))
    name = member_name(state.name, key)
    try:
        hand = ex.locks.acquire(name)  # held from before the create: nobody else can take it
    except DockerError as exc:
        raise ClaimError(f"claim {session!r} (cold start): {exc}") from exc
    if hand is None:  # a fresh random name's lock is never held: the engine is confused
        raise ClaimError(f"claim {session!r} (cold start): could not lock {name}")
    try:
        member = _create_within_cap(ex, key, name, session, deadline)
        member = _wait_ready(ex, member, session, deadline, cancel)
        return _claim_cold(ex, member, session, started, cancel, hand, payload)
    finally:
        ex.locks.release(hand)


def _create_within_cap(
    ex: Executor, key: m.MemberKey, name: str, session: str, deadline: float
) -> m.Member:
    """Record, create and start the cold start's member; while the engine has max_containers
    of the pool's containers, wait for room (a claim or a removal anywhere makes some)."""
    state = ex.state
    while True:
        member, effects = _reserve(ex, key, name, session, max(0.0, deadline - time.monotonic()))
        ex.run(member, effects)  # creates and starts it, here
        if key not in ex.capped:
            return member
        ex.capped.discard(key)
        left = deadline - time.monotonic()
        if left <= 0:
            cap = state.config.max_containers
            raise ClaimError(f"claim {session!r}: max_containers ({cap}) reached on the engine")
        with state.lock:
            state.changed.wait(min(0.25, left))


def _reserve(
    ex: Executor, key: m.MemberKey, name: str, session: str, timeout: float
) -> tuple[m.Member, m.Effects]:
    """Wait for room under max_containers and record the member in the same critical section,
    so that concurrent cold starts never overshoot the cap."""
    state = ex.state
    with state.lock:
        cap = state.config.max_containers
        room = state.changed.wait_for(
            lambda: state.table.holding < cap or state.closing, timeout=timeout
        )
        if state.closing:
            raise ClaimError(f"claim {session!r}: the pool is closing")
        if not room:
            raise ClaimError(f"claim {session!r}: max_containers ({cap}) reached for {timeout} s")
        member, effects = m.provision(
            key,
            name,
            needs_health=state.needs_health,
            probed=state.probed,
            warms=state.warms,
            now=state.clock(),
            fingerprint=state.fingerprint,
            reserved_for=session,
        )
        ex.record(member)
    return member, effects


def _claim_cold(
    ex: Executor,
    member: m.Member,
    session: str,
    started: float,
    cancel: threading.Event | None,
    hand: Hand,
    payload: str | None,
) -> Lease:
    state = ex.state
    key = member.key
    if member.state is not m.State.READY or state.closing:
        ex.apply(key, m.RetireRequested("cold start abandoned"))
        why = "the pool is closing" if state.closing else "not ready in time (or cancelled)"
        raise ClaimError(f"claim {session!r} (cold start): {why}")
    try:
        outcome, ports = claim_member(ex, member, session, cancel, hand, payload=payload)
    except NameInUseError:
        ex.apply(key, m.RetireRequested("cold start abandoned: session name in use"))
        raise
    lease = lease_of(member, session, ports, False, started)
    if outcome is None or not handed_over(ex, member, outcome, lease):
        ex.apply(key, m.RetireRequested("cold start abandoned"))
        why = "it died during its claim"
        if isinstance(outcome, m.ClaimFailed):
            why = outcome.reason
        elif outcome is None:
            why = "it was no longer claimable"
        raise ClaimError(f"claim {session!r} (cold start): {why}")
    with state.lock:
        state.counters.misses += 1
    logger.info("claim {}: cold start in {:.2f} s (pool empty)", session, lease.seconds)
    signals.send("cold_start", ex.sender, lease=lease)
    return lease


def _name_free(ex: Executor, session: str) -> None:
    """Fail a cold start at once if its session name is taken (the final rename would)."""
    try:
        ex.api.inspect(session)
    except ContainerNotFoundError:
        return
    except DockerError as exc:
        raise ClaimError(f"claim {session!r} (cold start): {exc}") from exc
    raise NameInUseError(f"claim {session!r}: the name is already in use")


def _wait_ready(
    ex: Executor,
    member: m.Member,
    session: str,
    deadline: float,
    cancel: threading.Event | None,
) -> m.Member:
    """Wait until the machine has the cold start's member ready (or give up: returned as is)."""
    state = ex.state
    while True:
        with state.lock:
            current = state.table.get(member.key)
            if current is None or current.state is m.State.RETIRING:
                why = state.counters.causes.pop(member.key, "") or "no cause recorded"
                raise ClaimError(
                    f"claim {session!r} (cold start): its container exited before it was "
                    f"ready: {why}"
                )
            left = deadline - time.monotonic()
            done = current.state is m.State.READY or state.closing
            if done or left <= 0 or (cancel is not None and cancel.is_set()):
                return current
            news = state.changed.wait(min(left, _COLD_RECHECK))
        if not news:
            _recheck(ex, current)


def _recheck(ex: Executor, member: m.Member) -> None:
    """Read the cold start's container once (its events may have been lost)."""
    if member.container_id is None:
        return
    try:
        view = ex.api.inspect(member.container_id)
    except DockerError:
        return
    ex.apply(member.key, m.Observed(status=view.status, health=view.health, name=view.name))
