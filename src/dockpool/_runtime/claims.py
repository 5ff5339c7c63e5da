"""Serving a claim: a ready member renamed to the session's name, or a cold start.

A claim picks a ready member (inside this process the table's lock decides: picking moves it
to CLAIMING), then the executor carries out the machine's Rename: it takes the member's lock on
the engine (one name per member, held by renaming one of this process's hands to it: across
processes exactly one claimer holds it; a loser learns it at once and picks again), renames
the member *by its member name* to the session's name, and reads it back. A member that died
on the way is never handed out: the machine discards it and the claim picks again.

A cold start is a member too: `reserved_for` the session from birth, its lock taken before its
create, so no other claimer or upkeep can take it; it is created and started in the claimer's
thread, the machine follows it to ready on its own events, and it is claimed like any other.
If anything fails, the lock is let go and the container is an ordinary unclaimed member that
upkeep removes; nothing is left under the session's name.
"""

from __future__ import annotations

import re
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
    NameConflictError,
    NameInUseError,
)
from dockpool._core.spec import NAME_PREFIX, member_name
from dockpool._runtime import handover
from dockpool._runtime.executor import Executor
from dockpool._runtime.lease import Lease
from dockpool._runtime.locks import Hand

_DOCKER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
#: While a cold start waits for its member to be ready, it re-reads it this often (events can
#: be lost; this wait is the only place dockpool looks twice).
_COLD_RECHECK = 2.0
#: A claim that found ready members locked by another process retries them for this long
#: before it cold-starts (a process alone holds its members' locks ahead, and lets go of them
#: as soon as it sees another process of the pool: see ahead.py).
_LOCKED_WAIT = 0.5


def check_name(name: str) -> None:
    """Refuse a session name that is not a container name, or that the pool could mistake for
    its own: every name beginning with `dockpool-` is dockpool's (members, locks, presences,
    the leader), and a claimed container under such a name would look unclaimed to a process
    that missed its rename."""
    if not _DOCKER_NAME.match(name):
        raise ClaimError(f"{name!r} is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)")
    if name.lstrip("/").startswith(NAME_PREFIX):
        raise ClaimError(
            f"{name!r} cannot be a session's name: names beginning with {NAME_PREFIX!r} are "
            "dockpool's own (its members, locks and processes)"
        )


def _lease(member: m.Member, session: str, ports: dict[int, int], pool: bool, t0: float) -> Lease:
    return Lease(
        container_id=member.container_id or m.ContainerId(""),
        name=session,
        ports=ports,
        from_pool=pool,
        seconds=time.perf_counter() - t0,
        spec_fingerprint=member.fingerprint,
    )


def _claim_member(
    ex: Executor,
    member: m.Member,
    session: str,
    cancel: threading.Event | None,
    hand: Hand | None = None,
    left: m.Effects | None = None,
    payload: str | None = None,
) -> tuple[m.Event | None, dict[int, int]]:
    """Ask the machine for `member`'s claim and carry it out; the outcome event and ports
    (None: the member was not claimable any more, nothing was done). `left`: the effects of
    a ClaimRequested the caller already applied; `payload`: the on-claim request's body."""
    if left is None:
        left = ex.apply(member.key, m.ClaimRequested(session))
    if not any(isinstance(e, m.Rename) for e in left):
        # another claimer picked it first (picks are not exclusive; the request is): this
        # outcome concerns no one but this claimer, and must not reach the member's record
        return None, {}
    claiming = ex.state.table.get(member.key) or member
    try:
        outcome, ports = handover.rename(ex, claiming, session, cancel, hand, payload)
    except NameConflictError as exc:
        raise NameInUseError(f"claim {session!r}: the name is already in use") from exc
    return outcome, dict(ports)


def claim_from_pool(
    ex: Executor,
    session: str,
    started: float,
    cancel: threading.Event | None = None,
    payload: str | None = None,
) -> Lease | None:
    """Hand over a ready member renamed to `session`; None when the pool has none."""
    state = ex.state
    tried: set[m.MemberKey] = set()
    locked: set[m.MemberKey] = set()  # held by another process: may be let go in a moment
    give_up = time.monotonic() + _LOCKED_WAIT
    while True:
        if cancel is not None and cancel.is_set():
            return None
        request = m.ClaimRequested(session)
        with state.lock:  # the pick and the request at once: concurrent claimers pick apart
            member = state.table.pick_for_claim(
                state.fingerprint, frozenset(tried), prefer=ex.locks.held()
            )
            moved = ex.transition(member.key, request) if member is not None else None
        if member is None and locked and time.monotonic() < give_up:
            with state.lock:  # a process that held locks ahead lets go when it sees us
                state.changed.wait(0.02)
            tried -= locked
            locked.clear()
            continue
        if member is None:
            return None
        tried.add(member.key)
        left = ex.follow(moved, request)
        outcome, ports = _claim_member(ex, member, session, cancel, left=left, payload=payload)
        if outcome is None:
            continue
        lease = _lease(member, session, ports, True, started)
        if _handed_over(ex, member, outcome, lease):
            with state.lock:
                state.counters.hits += 1
            return lease
        if isinstance(outcome, m.ClaimFailed) and outcome.reason == "locked by another process":
            locked.add(member.key)
            with state.lock:
                state.counters.lost_races += 1


def _handed_over(ex: Executor, member: m.Member, outcome: m.Event, lease: Lease) -> bool:
    """Give the machine the claim's outcome; True if it let the claim through.

    A member that died while its rename was in flight is turned down by the machine (and
    discarded) even though the rename succeeded: a dead sandbox is never handed out.
    """
    if not (isinstance(outcome, m.ClaimSucceeded) and outcome.alive):
        ex.apply(member.key, outcome)
        return False
    moved = ex.transition(member.key, outcome)
    # (not "it left the table": a member turned down is discarded, and so leaves it too)
    claimed = moved is not None and moved[1].state is m.State.CLAIMED
    ex.follow(moved, outcome, lease=lease)
    return claimed


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
        outcome, ports = _claim_member(ex, member, session, cancel, hand, payload=payload)
    except NameInUseError:
        ex.apply(key, m.RetireRequested("cold start abandoned: session name in use"))
        raise
    lease = _lease(member, session, ports, False, started)
    if outcome is None or not _handed_over(ex, member, outcome, lease):
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
                why = state.counters.last_failure or "failed"
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
